//! Recursive-descent parser for the timex grammar (spec §3.2), producing the AST
//! `Node`. Precedence TO < PLUS/MINUS < REPLACE: operators are postfix on the operand
//! to their left, so everything after `to` belongs to its right-hand side. A unit-less
//! duration is rejected on timestamp expressions. Nesting is bounded (no stack overflow).
use std::fmt;

use crate::duration::Duration;
use crate::error::TimexError;
use crate::lexer::{lex, Tok, Token};
use crate::matcher::Op;

/// Deepest allowed expression tree (parentheses, function calls, operators).
pub(crate) const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Var(String),
    Func {
        name: String,
        arg: Option<Box<Node>>,
    },
    To(Box<Node>, Box<Node>),
    Op {
        op: Op,
        expr: Box<Node>,
        duration: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Timestamp,
    Range,
}

struct Parsed {
    node: Node,
    kind: Kind,
    depth: usize,
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

pub(crate) fn parse_node(input: &str) -> Result<(Node, Kind), TimexError> {
    let tokens = lex(input)?;
    let mut p = Parser {
        input,
        tokens,
        pos: 0,
    };
    let parsed = p.expression(0)?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(p.error(t.column, format!("unexpected {}", t.tok.describe())));
    }
    Ok((parsed.node, parsed.kind))
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        // The token list always ends with Eof and `pos` never moves past it.
        self.tokens[self.pos.min(self.tokens.len() - 1)].clone()
    }

    fn advance(&mut self) -> Token {
        let t = self.peek();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    #[cold]
    #[inline(never)]
    fn error(&self, column: usize, message: impl Into<String>) -> TimexError {
        TimexError::Parse {
            column,
            message: message.into(),
            input: self.input.to_string(),
        }
    }

    fn check_depth(&self, depth: usize, column: usize) -> Result<(), TimexError> {
        if depth > MAX_DEPTH {
            Err(self.too_deep(column))
        } else {
            Ok(())
        }
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self, column: usize) -> TimexError {
        self.error(
            column,
            format!("expression is nested more than {MAX_DEPTH} levels deep"),
        )
    }

    /// time_expression: chain [TO chain]
    fn expression(&mut self, depth: usize) -> Result<Parsed, TimexError> {
        let left = self.chain(depth)?;
        let t = self.peek();
        if t.tok != Tok::To {
            return Ok(left);
        }
        if left.kind == Kind::Range {
            return Err(self.error(
                t.column,
                "the left side of 'to' must be a timestamp expression, not a range",
            ));
        }
        self.advance();
        let right_col = self.peek().column;
        let right = self.chain(depth)?;
        if right.kind == Kind::Range {
            return Err(self.error(
                right_col,
                "the right side of 'to' must be a timestamp expression, not a range",
            ));
        }
        let d = left.depth.max(right.depth) + 1;
        self.check_depth(d, t.column)?;
        Ok(Parsed {
            node: Node::To(Box::new(left.node), Box::new(right.node)),
            kind: Kind::Range,
            depth: d,
        })
    }

    /// chain: primary (('+'|'-'|'@') duration)*
    fn chain(&mut self, depth: usize) -> Result<Parsed, TimexError> {
        let mut cur = self.primary(depth)?;
        loop {
            let t = self.peek();
            let op = match t.tok {
                Tok::Plus => Op::Plus,
                Tok::Minus => Op::Minus,
                Tok::At => Op::Replace,
                _ => return Ok(cur),
            };
            self.advance();
            let dcol = self.peek().column;
            let duration = self.duration()?;
            if duration.is_ambiguous() && cur.kind == Kind::Timestamp {
                return Err(
                    self.error(dcol, "durations must have a unit for timestamp expressions")
                );
            }
            let d = cur.depth + 1;
            self.check_depth(depth + d, t.column)?;
            cur = Parsed {
                node: Node::Op {
                    op,
                    expr: Box::new(cur.node),
                    duration,
                },
                kind: cur.kind,
                depth: d,
            };
        }
    }

    /// primary: '(' time_expression ')' | '$' IDENT | IDENT ['(' timestamp_expression ')']
    fn primary(&mut self, depth: usize) -> Result<Parsed, TimexError> {
        let t = self.advance();
        self.check_depth(depth + 1, t.column)?;
        match t.tok {
            Tok::LParen => {
                let inner = self.expression(depth + 1)?;
                self.expect_rparen(t.column)?;
                Ok(Parsed {
                    depth: inner.depth + 1,
                    ..inner
                })
            }
            Tok::Dollar => {
                let n = self.advance();
                match n.tok {
                    Tok::Ident(name) => Ok(Parsed {
                        node: Node::Var(name),
                        kind: Kind::Timestamp,
                        depth: 1,
                    }),
                    _ => Err(self.bad_variable(&n)),
                }
            }
            Tok::Ident(name) => {
                if self.peek().tok != Tok::LParen {
                    return Ok(Parsed {
                        node: Node::Func { name, arg: None },
                        kind: Kind::Range,
                        depth: 1,
                    });
                }
                let open = self.advance();
                let arg_col = self.peek().column;
                let arg = self.expression(depth + 1)?;
                if arg.kind == Kind::Range {
                    return Err(self.range_argument(arg_col, &name));
                }
                self.expect_rparen(open.column)?;
                Ok(Parsed {
                    node: Node::Func {
                        name,
                        arg: Some(Box::new(arg.node)),
                    },
                    kind: Kind::Range,
                    depth: arg.depth + 1,
                })
            }
            _ => Err(self.bad_operand(&t)),
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_variable(&self, n: &Token) -> TimexError {
        let message = match n.tok {
            Tok::To | Tok::Unit(_) => format!(
                "{} is a reserved word and cannot be a variable name",
                n.tok.describe()
            ),
            _ => format!(
                "expected a variable name after '$', found {}",
                n.tok.describe()
            ),
        };
        self.error(n.column, message)
    }

    #[cold]
    #[inline(never)]
    fn range_argument(&self, column: usize, name: &str) -> TimexError {
        self.error(
            column,
            format!("the argument of {name}() must be a timestamp expression, not a range"),
        )
    }

    #[cold]
    #[inline(never)]
    fn bad_operand(&self, t: &Token) -> TimexError {
        let message = if t.tok == Tok::Eof {
            "unexpected end of expression: expected '$variable', a range function or '('"
                .to_string()
        } else {
            format!(
                "unexpected {}: expected '$variable', a range function or '('",
                t.tok.describe()
            )
        };
        self.error(t.column, message)
    }

    #[cold]
    #[inline(never)]
    fn expect_rparen_failed(&self, t: &Token, open_column: usize) -> TimexError {
        self.error(
            t.column,
            format!(
                "expected ')' to close the '(' at column {open_column}, found {}",
                t.tok.describe()
            ),
        )
    }

    fn expect_rparen(&mut self, open_column: usize) -> Result<(), TimexError> {
        let t = self.advance();
        if t.tok == Tok::RParen {
            Ok(())
        } else {
            Err(self.expect_rparen_failed(&t, open_column))
        }
    }

    /// duration: (NUMBER [unit])+
    fn duration(&mut self) -> Result<Duration, TimexError> {
        let mut total: Option<Duration> = None;
        loop {
            let t = self.peek();
            let Tok::Number(n) = t.tok else {
                if total.is_none() {
                    return Err(self.error(
                        t.column,
                        format!("expected a duration (e.g. 1h), found {}", t.tok.describe()),
                    ));
                }
                break;
            };
            self.advance();
            let piece = match self.peek().tok {
                Tok::Unit(u) => {
                    self.advance();
                    Duration::of(u, n)
                }
                _ => Duration::ambiguous(n),
            };
            total = Some(match total {
                None => piece,
                Some(d) => d
                    .checked_add(&piece)
                    .ok_or_else(|| self.error(t.column, "duration is too large"))?,
            });
        }
        Ok(total.unwrap_or_default())
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Var(name) => write!(f, "${name}"),
            Node::Func { name, arg: None } => f.write_str(name),
            Node::Func {
                name,
                arg: Some(arg),
            } => write!(f, "{name}({arg})"),
            Node::To(a, b) => write!(f, "{a} to {b}"),
            Node::Op { op, expr, duration } => {
                if matches!(**expr, Node::To(..)) {
                    write!(f, "({expr}) {} {duration}", op.symbol())
                } else {
                    write!(f, "{expr} {} {duration}", op.symbol())
                }
            }
        }
    }
}
