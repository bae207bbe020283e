//! Hand-written lexer: `+ - @ $ ( )`, numbers (`\d+`), identifiers
//! (`[a-zA-Z_][a-zA-Z0-9_]*`) with the reserved words `to` and the unit names,
//! whitespace (space, tab, newlines). Columns are 1-based character positions.
use crate::duration::Unit;
use crate::error::TimexError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Plus,
    Minus,
    At,
    Dollar,
    LParen,
    RParen,
    To,
    Number(i64),
    Unit(Unit),
    Ident(String),
    Eof,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Plus => "'+'".into(),
            Tok::Minus => "'-'".into(),
            Tok::At => "'@'".into(),
            Tok::Dollar => "'$'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::To => "'to'".into(),
            Tok::Number(n) => format!("number {n}"),
            Tok::Unit(u) => format!("unit '{}'", u.suffix()),
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Eof => "end of expression".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub column: usize,
}

pub(crate) fn lex(input: &str) -> Result<Vec<Token>, TimexError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let single = match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
                continue;
            }
            '+' => Some(Tok::Plus),
            '-' => Some(Tok::Minus),
            '@' => Some(Tok::At),
            '$' => Some(Tok::Dollar),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            _ => None,
        };
        if let Some(tok) = single {
            out.push(Token { tok, column });
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text.parse::<i64>().map_err(|_| TimexError::Lex {
                column,
                message: format!("number {text} is too large"),
                input: input.to_string(),
            })?;
            out.push(Token {
                tok: Tok::Number(n),
                column,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = if word == "to" {
                Tok::To
            } else if let Some(u) = Unit::from_word(&word) {
                Tok::Unit(u)
            } else {
                Tok::Ident(word)
            };
            out.push(Token { tok, column });
            continue;
        }
        return Err(TimexError::Lex {
            column,
            message: format!("unexpected character {c:?}"),
            input: input.to_string(),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        column: chars.len() + 1,
    });
    Ok(out)
}
