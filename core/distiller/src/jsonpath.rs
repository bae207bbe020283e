//! The JSONPath subset of `fields`, compiled once at load into a walker.
//!
//! Syntax (as python jsonpath-rw 1.x parses it): dotted fields `a.b`,
//! bracketed fields `a[b]`, quoted names `a.'x.y'` / `a."x.y"` (which may
//! contain dots), comma lists `a.b,c`, the wildcard `*` (every member of an
//! object), indexes `[n]` (negative counts from the end), `[*]` and slices
//! `[m:n]`, the root `$`, parentheses and unions `p|q`. `..`, `where`, `&`
//! and the backquoted operators are rejected at load.
//!
//! Evaluation returns matches in jsonpath-rw order: a union yields all
//! matches of its left side, then its right side. Each match carries its
//! dotted path (`payload.image_meta.org.openstack__1__architecture`,
//! `payload.list.[0]`), which is what trait plugins receive.

use std::fmt;

use crate::json::{Doc, JsonNode, View};
use crate::scan::{Binding, Parsed, Plan, PlanBuilder};

/// Where field paths read from: any [`JsonNode`] document, or a notification
/// read by [`crate::scan::parse`] (plain key paths are then slot reads).
pub trait Source {
    type Node: JsonNode;
    /// The document root (what general paths walk).
    fn root(&self) -> &Self::Node;
    /// The value at a plain key path.
    fn at(&self, path: &KeyPath) -> Option<&Self::Node>;
}

impl<N: JsonNode> Source for N {
    type Node = N;
    fn root(&self) -> &N {
        self
    }
    fn at(&self, path: &KeyPath) -> Option<&N> {
        path.keys.iter().try_fold(self, |node, k| node.get(k))
    }
}

impl<'a> Source for Parsed<'a> {
    type Node = Doc<'a>;
    fn root(&self) -> &Doc<'a> {
        &self.tree
    }
    #[inline]
    fn at(&self, path: &KeyPath) -> Option<&Doc<'a>> {
        match path.binding {
            Some(b) => self.get(b, &path.keys),
            None => {
                debug_assert!(false, "unbound path {}", path.dotted);
                self.tree.at(path)
            }
        }
    }
}

/// A chain of plain member names (`payload.image_meta.'x.y'`) with its
/// dotted form and, once bound to a [`Plan`], its slot.
#[derive(Debug, Clone)]
pub struct KeyPath {
    keys: Vec<Box<str>>,
    dotted: String,
    binding: Option<Binding>,
}

impl KeyPath {
    pub fn new<S: AsRef<str>>(keys: &[S]) -> KeyPath {
        let keys: Vec<Box<str>> = keys.iter().map(|k| k.as_ref().into()).collect();
        let dotted = keys.iter().map(|k| &**k).collect::<Vec<_>>().join(".");
        KeyPath {
            keys,
            dotted,
            binding: None,
        }
    }

    pub fn keys(&self) -> &[Box<str>] {
        &self.keys
    }

    /// `a.b.c`, what plugins see as the match path.
    pub fn dotted(&self) -> &str {
        &self.dotted
    }

    /// Ask `plan` for this path's value.
    pub fn register(&self, plan: &mut PlanBuilder) {
        plan.slot(&self.keys);
    }

    /// Find the slot in the built plan (after [`KeyPath::register`]).
    pub fn bind(&mut self, plan: &Plan) {
        self.binding = plan.binding(&self.keys);
    }
}

/// A compiled `fields` expression.
#[derive(Debug, Clone)]
pub struct FieldPath {
    source: String,
    alts: Vec<Alt>,
}

#[derive(Debug, Clone)]
enum Alt {
    /// A chain of plain field names (the overwhelmingly common case), with
    /// its dotted path precomputed.
    Simple(KeyPath),
    General(Expr),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Root,
    Fields(Vec<Box<str>>),
    AnyField,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Chain(Vec<Expr>),
    Union(Vec<Expr>),
}

/// A syntax error in a path, with the 1-based character position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?} at character {position}: {message}")]
pub struct PathError {
    pub path: String,
    pub position: usize,
    pub message: String,
}

/// One match: the node and its dotted path.
#[derive(Debug, Clone)]
pub struct Match<'n, N> {
    pub path: String,
    pub node: &'n N,
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FieldPath {
    /// Compile one path expression.
    pub fn parse(source: &str) -> Result<FieldPath, PathError> {
        let expr = compile(source)?;
        Ok(Self::from_expr(source, expr))
    }

    /// Compile a list of paths into their union, in list order (the
    /// original joins them as `(p1)|(p2)|...`).
    pub fn parse_union<S: AsRef<str>>(sources: &[S]) -> Result<FieldPath, PathError> {
        let mut exprs = Vec::with_capacity(sources.len());
        let mut total = 0usize;
        for s in sources {
            let expr = compile(s.as_ref())?;
            total = total.saturating_add(alternatives(&expr));
            exprs.push(expr);
        }
        let source = if sources.len() == 1 {
            sources[0].as_ref().to_string()
        } else {
            sources
                .iter()
                .map(|s| format!("({})", s.as_ref()))
                .collect::<Vec<_>>()
                .join("|")
        };
        if total > MAX_ALTERNATIVES {
            return Err(too_many_alternatives(&source));
        }
        Ok(Self::from_expr(&source, Expr::Union(exprs)))
    }

    fn from_expr(source: &str, expr: Expr) -> FieldPath {
        let mut flat = Vec::new();
        flatten_union(expr, &mut flat);
        let alts = flat
            .into_iter()
            .map(|e| match simple_keys(&e) {
                Some(keys) => Alt::Simple(KeyPath::new(&keys)),
                None => Alt::General(e),
            })
            .collect();
        FieldPath {
            source: source.to_string(),
            alts,
        }
    }

    /// Ask `plan` for what this path reads: a slot per plain alternative,
    /// the reachable subtrees for the others.
    pub fn register(&self, plan: &mut PlanBuilder) {
        for alt in &self.alts {
            match alt {
                Alt::Simple(k) => k.register(plan),
                Alt::General(e) => {
                    for (seq, _) in sequences(e, vec![(Vec::new(), false)]) {
                        plan.tree(&seq);
                    }
                }
            }
        }
    }

    /// Find the slots of the plain alternatives in the built plan.
    pub fn bind(&mut self, plan: &Plan) {
        for alt in &mut self.alts {
            if let Alt::Simple(k) = alt {
                k.bind(plan);
            }
        }
    }

    /// The expression as written (lists shown as `(p1)|(p2)`).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first match whose value is not null (what a trait without a
    /// plugin uses). Stops at the first hit.
    pub fn first_non_null<'n, S: Source>(&self, src: &'n S) -> Option<&'n S::Node> {
        for alt in &self.alts {
            match alt {
                Alt::Simple(k) => {
                    if let Some(node) = src.at(k) {
                        if !node.is_null() {
                            return Some(node);
                        }
                    }
                }
                Alt::General(e) => {
                    let mut found = None;
                    let mut trail = Vec::new();
                    let root = src.root();
                    eval(e, root, root, &mut trail, &mut |n, _| {
                        if found.is_none() && !n.is_null() {
                            found = Some(n);
                        }
                    });
                    if found.is_some() {
                        return found;
                    }
                }
            }
        }
        None
    }

    /// Every non-null match with its dotted path, in union order.
    pub fn matches<'n, S: Source>(&self, src: &'n S) -> Vec<Match<'n, S::Node>> {
        let mut out = Vec::new();
        for alt in &self.alts {
            match alt {
                Alt::Simple(k) => {
                    if let Some(n) = src.at(k) {
                        if !n.is_null() {
                            out.push(Match {
                                path: k.dotted.clone(),
                                node: n,
                            });
                        }
                    }
                }
                Alt::General(e) => {
                    let mut trail = Vec::new();
                    let root = src.root();
                    eval(e, root, root, &mut trail, &mut |n, t| {
                        if !n.is_null() {
                            out.push(Match {
                                path: trail_string(t),
                                node: n,
                            });
                        }
                    });
                }
            }
        }
        out
    }
}

/// Extend every open prefix with `e`. A prefix marked `true` is closed: it
/// already needs its whole subtree.
fn sequences(e: &Expr, prefixes: Vec<(Vec<Box<str>>, bool)>) -> Vec<(Vec<Box<str>>, bool)> {
    match e {
        Expr::Root => vec![(Vec::new(), prefixes.iter().any(|p| p.1))],
        Expr::Fields(names) => prefixes
            .into_iter()
            .flat_map(|(p, closed)| {
                names.iter().map(move |n| {
                    if closed {
                        (p.clone(), true)
                    } else {
                        let mut q = p.clone();
                        q.push(n.clone());
                        (q, false)
                    }
                })
            })
            .collect(),
        Expr::AnyField | Expr::Index(_) | Expr::Slice(..) => {
            prefixes.into_iter().map(|(p, _)| (p, true)).collect()
        }
        Expr::Chain(items) => items
            .iter()
            .fold(prefixes, |acc, item| sequences(item, acc)),
        Expr::Union(items) => items
            .iter()
            .flat_map(|item| sequences(item, prefixes.clone()))
            .collect(),
    }
}

fn flatten_union(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Union(items) => {
            for i in items {
                flatten_union(i, out);
            }
        }
        other => out.push(other),
    }
}

fn simple_keys(e: &Expr) -> Option<Vec<Box<str>>> {
    let one = |e: &Expr| match e {
        Expr::Fields(f) if f.len() == 1 && &*f[0] != "*" => Some(f[0].clone()),
        _ => None,
    };
    match e {
        Expr::Chain(items) => items.iter().map(one).collect(),
        e => one(e).map(|k| vec![k]),
    }
}

/// One step of a match's path, already rendered (`name` or `[3]`).
type Seg = String;

fn trail_string(t: &[Seg]) -> String {
    t.join(".")
}

type Cont<'k, 'n, N> = dyn FnMut(&'n N, &mut Vec<Seg>) + 'k;

fn eval<'n, N: JsonNode>(
    e: &Expr,
    root: &'n N,
    node: &'n N,
    trail: &mut Vec<Seg>,
    k: &mut Cont<'_, 'n, N>,
) {
    match e {
        Expr::Root => {
            let mut fresh = Vec::new();
            k(root, &mut fresh);
        }
        Expr::Fields(names) => {
            for name in names {
                if let Some(child) = node.get(name) {
                    trail.push(name.to_string());
                    k(child, trail);
                    trail.pop();
                }
            }
        }
        Expr::AnyField => {
            let mut children: Vec<(&'n str, &'n N)> = Vec::new();
            node.for_each_member(&mut |kk, v| children.push((kk, v)));
            for (kk, v) in children {
                trail.push(kk.to_string());
                k(v, trail);
                trail.pop();
            }
        }
        Expr::Index(i) => {
            if matches!(node.view(), View::Array) {
                let items = node.items();
                let idx = if *i < 0 { items.len() as i64 + *i } else { *i };
                if idx >= 0 && (idx as usize) < items.len() {
                    trail.push(format!("[{idx}]"));
                    k(&items[idx as usize], trail);
                    trail.pop();
                }
            }
        }
        Expr::Slice(start, end) => match node.view() {
            View::Array => {
                let items = node.items();
                let (s, e) = slice_bounds(*start, *end, items.len() as i64);
                for idx in s..e.max(s) {
                    trail.push(format!("[{idx}]"));
                    k(&items[idx as usize], trail);
                    trail.pop();
                }
            }
            // jsonpath-rw wraps a dict, an int or a string in a one-element
            // list before slicing it.
            View::Object | View::Int(_) | View::UInt(_) | View::Bool(_) | View::Str(_)
                if slice_bounds(*start, *end, 1).0 == 0 && slice_bounds(*start, *end, 1).1 == 1 =>
            {
                trail.push("[0]".to_string());
                k(node, trail);
                trail.pop();
            }
            _ => {}
        },
        Expr::Chain(items) => eval_chain(items, root, node, trail, k),
        Expr::Union(items) => {
            for item in items {
                eval(item, root, node, trail, k);
            }
        }
    }
}

/// Python slice bounds `[start:end]` on a sequence of `len` items.
fn slice_bounds(start: Option<i64>, end: Option<i64>, len: i64) -> (i64, i64) {
    let norm = |v: Option<i64>, dflt: i64| match v {
        None => dflt,
        Some(x) if x < 0 => (len + x).max(0),
        Some(x) => x.min(len),
    };
    (norm(start, 0), norm(end, len))
}

fn eval_chain<'n, N: JsonNode>(
    items: &[Expr],
    root: &'n N,
    node: &'n N,
    trail: &mut Vec<Seg>,
    k: &mut Cont<'_, 'n, N>,
) {
    match items.split_first() {
        None => k(node, trail),
        Some((first, rest)) => eval(first, root, node, trail, &mut |n, t| {
            eval_chain(rest, root, n, t, k)
        }),
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Id(String),
    Num(i64),
    Punct(char),
    DoubleDot,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, PathError> {
    let err = |pos: usize, msg: &str| PathError {
        path: src.to_string(),
        position: pos + 1,
        message: msg.to_string(),
    };
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '.' if chars.get(i + 1) == Some(&'.') => {
                out.push((Tok::DoubleDot, start));
                i += 2;
            }
            '*' | '.' | '[' | ']' | '(' | ')' | '$' | ',' | ':' | '|' | '&' => {
                out.push((Tok::Punct(c), start));
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated quoted name")),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(e) => s.push(*e),
                                None => return Err(err(i, "unterminated quoted name")),
                            }
                            i += 2;
                        }
                        Some(q) if *q == quote => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            s.push(*other);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Id(s), start));
            }
            '`' => {
                return Err(err(
                    start,
                    "backquoted operators (`this`, `parent`) are not supported",
                ))
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '@' => {
                let mut s = String::new();
                while let Some(&d) = chars.get(i) {
                    if d.is_ascii_alphanumeric() || d == '_' || d == '@' || d == '-' {
                        s.push(d);
                        i += 1;
                    } else {
                        break;
                    }
                }
                if s == "where" {
                    return Err(err(start, "'where' is not supported"));
                }
                out.push((Tok::Id(s), start));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let mut s = String::from(c);
                i += 1;
                while let Some(&d) = chars.get(i) {
                    if d.is_ascii_digit() {
                        s.push(d);
                        i += 1;
                    } else {
                        break;
                    }
                }
                let n: i64 = s.parse().map_err(|_| err(start, "number out of range"))?;
                out.push((Tok::Num(n), start));
            }
            other => return Err(err(start, &format!("unexpected character {other:?}"))),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- limits

/// At most this many nested parentheses (deeper input would overflow the
/// stack of the recursive-descent parser).
const MAX_PAREN_NESTING: usize = 32;

/// At most this many segments in one chain (`a.b[0].c` has four). JSON
/// nesting stops at 127 levels, so longer chains can only be `$` repeats,
/// which would recurse once per segment at distill time.
const MAX_SEGMENTS: usize = 256;

/// At most this many key sequences one `fields` expression expands to
/// (`(a|b).(a|b)` is four, `a,b.c,d` too). Unions and `,` lists multiply,
/// so a short path could otherwise ask the plan for billions of slots.
const MAX_ALTERNATIVES: usize = 4096;

/// Lex and parse one path, enforcing the limits above.
fn compile(source: &str) -> Result<Expr, PathError> {
    let toks = lex(source)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        src: source,
        depth: 0,
    };
    let expr = p.union()?;
    if p.pos < toks.len() {
        return Err(p.err_at(p.pos, "unexpected token"));
    }
    if alternatives(&expr) > MAX_ALTERNATIVES {
        return Err(too_many_alternatives(source));
    }
    Ok(expr)
}

/// How many key sequences `e` expands to (saturating): the size of what
/// [`sequences`] returns and the branching of [`eval`].
fn alternatives(e: &Expr) -> usize {
    match e {
        Expr::Root | Expr::AnyField | Expr::Index(_) | Expr::Slice(..) => 1,
        Expr::Fields(names) => names.len(),
        Expr::Chain(items) => items
            .iter()
            .fold(1usize, |n, i| n.saturating_mul(alternatives(i))),
        Expr::Union(items) => items
            .iter()
            .fold(0usize, |n, i| n.saturating_add(alternatives(i))),
    }
}

fn too_many_alternatives(source: &str) -> PathError {
    PathError {
        path: source.to_string(),
        position: 1,
        message: format!(
            "the path expands to more than {MAX_ALTERNATIVES} alternatives (unions and ',' lists multiply)"
        ),
    }
}

// ---------------------------------------------------------------- parser

struct Parser<'t> {
    toks: &'t [(Tok, usize)],
    pos: usize,
    src: &'t str,
    /// Open parentheses around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn err_at(&self, tok_index: usize, msg: &str) -> PathError {
        let position = self
            .toks
            .get(tok_index)
            .map(|t| t.1 + 1)
            .unwrap_or(self.src.chars().count() + 1);
        let message = if tok_index >= self.toks.len() {
            format!("{msg} (end of path)")
        } else {
            msg.to_string()
        };
        PathError {
            path: self.src.to_string(),
            position,
            message,
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn union(&mut self) -> Result<Expr, PathError> {
        let mut items = vec![self.chain()?];
        while self.eat('|') {
            items.push(self.chain()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Expr::Union(items)
        })
    }

    fn chain(&mut self) -> Result<Expr, PathError> {
        let mut items = vec![self.atom()?];
        loop {
            if items.len() > MAX_SEGMENTS {
                return Err(self.err_at(
                    self.pos,
                    &format!("more than {MAX_SEGMENTS} segments in one path"),
                ));
            }
            match self.peek() {
                Some(Tok::Punct('.')) => {
                    self.pos += 1;
                    items.push(self.atom()?);
                }
                Some(Tok::Punct('[')) => items.push(self.bracket()?),
                Some(Tok::DoubleDot) => {
                    return Err(
                        self.err_at(self.pos, "the descendant operator '..' is not supported")
                    )
                }
                Some(Tok::Punct('&')) => {
                    return Err(self.err_at(self.pos, "intersection '&' is not supported"))
                }
                _ => break,
            }
        }
        // Flatten nested chains so simple paths stay simple.
        let mut flat = Vec::new();
        for i in items {
            match i {
                Expr::Chain(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        if flat.len() > MAX_SEGMENTS {
            return Err(self.err_at(
                self.pos,
                &format!("more than {MAX_SEGMENTS} segments in one path"),
            ));
        }
        Ok(if flat.len() == 1 {
            flat.pop().expect("one")
        } else {
            Expr::Chain(flat)
        })
    }

    fn atom(&mut self) -> Result<Expr, PathError> {
        match self.peek().cloned() {
            Some(Tok::Punct('$')) => {
                self.pos += 1;
                Ok(Expr::Root)
            }
            Some(Tok::Punct('*')) => {
                self.pos += 1;
                Ok(Expr::AnyField)
            }
            Some(Tok::Punct('(')) => {
                if self.depth >= MAX_PAREN_NESTING {
                    return Err(self.err_at(
                        self.pos,
                        &format!("parentheses nested more than {MAX_PAREN_NESTING} deep"),
                    ));
                }
                self.pos += 1;
                self.depth += 1;
                let e = self.union()?;
                self.depth -= 1;
                if !self.eat(')') {
                    return Err(self.err_at(self.pos, "expected ')'"));
                }
                Ok(e)
            }
            Some(Tok::Punct('[')) => self.bracket(),
            Some(Tok::Id(_)) => self.fields(),
            _ => Err(self.err_at(self.pos, "expected a field name, '*', '$', '[' or '('")),
        }
    }

    fn fields(&mut self) -> Result<Expr, PathError> {
        let mut names: Vec<Box<str>> = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Tok::Id(s)) => {
                    self.pos += 1;
                    names.push(s.into_boxed_str());
                }
                _ => return Err(self.err_at(self.pos, "expected a field name")),
            }
            if !self.eat(',') {
                break;
            }
        }
        Ok(Expr::Fields(names))
    }

    fn bracket(&mut self) -> Result<Expr, PathError> {
        if !self.eat('[') {
            return Err(self.err_at(self.pos, "expected '['"));
        }
        let e = match self.peek().cloned() {
            Some(Tok::Punct('*')) => {
                self.pos += 1;
                Expr::Slice(None, None)
            }
            Some(Tok::Id(_)) => self.fields()?,
            Some(Tok::Num(n)) => {
                self.pos += 1;
                if self.eat(':') {
                    let end = self.maybe_num();
                    Expr::Slice(Some(n), end)
                } else {
                    Expr::Index(n)
                }
            }
            Some(Tok::Punct(':')) => {
                self.pos += 1;
                let end = self.maybe_num();
                Expr::Slice(None, end)
            }
            _ => {
                return Err(self.err_at(
                    self.pos,
                    "expected a field name, an index, '*' or a slice inside '[...]'",
                ))
            }
        };
        if !self.eat(']') {
            return Err(self.err_at(self.pos, "expected ']'"));
        }
        Ok(e)
    }

    fn maybe_num(&mut self) -> Option<i64> {
        if let Some(Tok::Num(n)) = self.peek().cloned() {
            self.pos += 1;
            Some(n)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn doc() -> Value {
        json!({
            "publisher_id": "compute.host-1",
            "payload": {
                "host": "h1",
                "instance_id": "id-1",
                "instance_uuid": "uuid-1",
                "nothing": null,
                "image_meta": {"org.openstack__1__architecture": "x64", "disk_gb": "20"},
                "list": [10, 20, 30],
                "thing": {"bar": 12, "boing": 13},
            }
        })
    }

    /// (path, expected [(dotted path, value)])
    fn check(path: &str, expected: &[(&str, Value)]) {
        let d = doc();
        let p = FieldPath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let got: Vec<(String, Value)> = p
            .matches(&d)
            .into_iter()
            .map(|m| (m.path, m.node.clone()))
            .collect();
        let want: Vec<(String, Value)> = expected
            .iter()
            .map(|(p, v)| (p.to_string(), v.clone()))
            .collect();
        assert_eq!(got, want, "path {path}");
        // the doc walker agrees with the Value walker
        let bytes = serde_json::to_vec(&d).unwrap();
        let bd = crate::json::Doc::parse(&bytes).unwrap();
        let got2: Vec<(String, Value)> = p
            .matches(&bd)
            .into_iter()
            .map(|m| (m.path, m.node.to_value()))
            .collect();
        assert_eq!(got2, want, "path {path} on Doc");
        assert_eq!(
            p.first_non_null(&d).cloned(),
            want.first().map(|w| w.1.clone()),
            "first of {path}"
        );
    }

    #[test]
    fn path_vectors() {
        check("payload.host", &[("payload.host", json!("h1"))]);
        check("payload[host]", &[("payload.host", json!("h1"))]);
        check("payload.['host']", &[("payload.host", json!("h1"))]);
        check("$.payload.host", &[("payload.host", json!("h1"))]);
        check("payload.nothing", &[]);
        check("payload.missing", &[]);
        check("payload.host.deeper", &[]);
        check(
            "payload.image_meta.'org.openstack__1__architecture'",
            &[(
                "payload.image_meta.org.openstack__1__architecture",
                json!("x64"),
            )],
        );
        check(
            "payload.image_meta.\"org.openstack__1__architecture\"",
            &[(
                "payload.image_meta.org.openstack__1__architecture",
                json!("x64"),
            )],
        );
        check(
            "payload.thing.*",
            &[
                ("payload.thing.bar", json!(12)),
                ("payload.thing.boing", json!(13)),
            ],
        );
        check("payload.list[1]", &[("payload.list.[1]", json!(20))]);
        check("payload.list[-1]", &[("payload.list.[2]", json!(30))]);
        check("payload.list[7]", &[]);
        check(
            "payload.list[*]",
            &[
                ("payload.list.[0]", json!(10)),
                ("payload.list.[1]", json!(20)),
                ("payload.list.[2]", json!(30)),
            ],
        );
        check(
            "payload.list[1:]",
            &[
                ("payload.list.[1]", json!(20)),
                ("payload.list.[2]", json!(30)),
            ],
        );
        check("payload.host[*]", &[("payload.host.[0]", json!("h1"))]);
        check(
            "payload.instance_id|payload.instance_uuid",
            &[
                ("payload.instance_id", json!("id-1")),
                ("payload.instance_uuid", json!("uuid-1")),
            ],
        );
        check(
            "(payload.instance_uuid)|(payload.nothing)|(payload.instance_id)",
            &[
                ("payload.instance_uuid", json!("uuid-1")),
                ("payload.instance_id", json!("id-1")),
            ],
        );
        check(
            "payload.(host|instance_id)",
            &[
                ("payload.host", json!("h1")),
                ("payload.instance_id", json!("id-1")),
            ],
        );
        check(
            "payload.host,instance_id",
            &[
                ("payload.host", json!("h1")),
                ("payload.instance_id", json!("id-1")),
            ],
        );
        check("publisher_id", &[("publisher_id", json!("compute.host-1"))]);
    }

    #[test]
    fn union_of_list_keeps_list_order() {
        let d = doc();
        let p = FieldPath::parse_union(&["payload.image_meta.disk_gb", "payload.list[0]"]).unwrap();
        assert_eq!(p.first_non_null(&d), Some(&json!("20")));
        let p = FieldPath::parse_union(&["payload.list[0]", "payload.image_meta.disk_gb"]).unwrap();
        assert_eq!(p.first_non_null(&d), Some(&json!(10)));
        assert_eq!(p.as_str(), "(payload.list[0])|(payload.image_meta.disk_gb)");
    }

    #[test]
    fn bad_paths_are_rejected_with_a_position() {
        for (src, pos) in [
            ("payload.bogus(", 14),
            ("payload..host", 8),
            ("payload.'open", 9),
            ("payload[", 9),
            ("payload.", 9),
            ("payload.#", 9),
            ("", 1),
            ("a.`this`", 3),
            ("a where b", 3),
        ] {
            let e = FieldPath::parse(src).expect_err(src);
            assert_eq!(e.position, pos, "{src}: {e}");
        }
    }

    #[test]
    fn hostile_paths_hit_the_limits() {
        let deep = format!("{}payload{}", "(".repeat(5000), ")".repeat(5000));
        let product = vec!["(a|b)"; 40].join(".");
        let commas = vec!["a,b,c"; 30].join(".");
        let roots = format!("{}*", "$.".repeat(10_000));
        let ok_parens = format!("{}payload.a{}", "(".repeat(32), ")".repeat(32));
        for (src, msg) in [
            (deep.as_str(), "parentheses nested more than 32 deep"),
            (product.as_str(), "more than 4096 alternatives"),
            (commas.as_str(), "more than 4096 alternatives"),
            (roots.as_str(), "more than 256 segments"),
        ] {
            let e = FieldPath::parse(src).expect_err(&src[..40]);
            assert!(e.message.contains(msg), "{e}");
        }
        assert!(FieldPath::parse(&ok_parens).is_ok());
        let many: Vec<String> = (0..5000).map(|i| format!("payload.k{i}")).collect();
        let e = FieldPath::parse_union(&many).unwrap_err();
        assert!(e.message.contains("alternatives"), "{e}");
    }
}
