//! A generic YAML tree with source positions, read with serde-saphyr
//! (anchors, aliases and `<<` merge keys resolved by the parser). The
//! definitions loader validates its shape and reports errors at the line and
//! column of the offending node.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// 1-based line and column (0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

impl Node {
    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Mapping entries (`None` when not a mapping).
    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Value of `key` in a mapping (the last one if repeated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Scalar text of a key node (YAML allows `1: x`; Python would keep an int key).
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Bool(b) => b.to_string(),
            Kind::Null => "null".into(),
            Kind::Seq(_) | Kind::Map(_) => "<complex key>".into(),
        }
    }

    /// The node as JSON (plugin parameters).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parse one YAML document. An empty document is `Null`.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    if src.trim().is_empty()
        || src
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Ok(Node {
            kind: Kind::Null,
            pos: Pos { line: 1, column: 1 },
        });
    }
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(src, options()) {
        Ok(n) => Ok(from_spanned(n)),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
                .unwrap_or_default();
            // The rendered error carries a source snippet; keep the first line.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML").to_string();
            let message = first.strip_prefix("error: ").unwrap_or(&first).to_string();
            let message = match message.split_once(": ") {
                Some((head, rest)) if head.starts_with("line ") => rest.to_string(),
                _ => message,
            };
            Err(SyntaxError { pos, message })
        }
    }
}

/// Nesting this deep is already absurd for event definitions (a trait's
/// plugin parameters sit at depth 6).
pub const MAX_DEPTH: usize = 24;

/// Nodes after alias expansion: the shipped files have a few thousand; an
/// alias bomb stops here instead of after serde-saphyr's default 250,000.
pub const MAX_NODES: usize = 50_000;

/// serde-saphyr's options with a tighter budget: depth bounds the recursion
/// of the tree builder (serde-saphyr's default of 64 levels overflowed a 2 MiB
/// thread stack in debug builds), nodes bound alias expansion time.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

fn pos_of<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

fn from_spanned(s: Spanned<Raw>) -> Node {
    let pos = pos_of(&s);
    let kind = match s.value {
        Raw::Null => Kind::Null,
        Raw::Bool(b) => Kind::Bool(b),
        Raw::Int(i) => Kind::Int(i),
        Raw::Float(f) => Kind::Float(f),
        Raw::Str(s) => Kind::Str(s),
        Raw::Seq(items) => Kind::Seq(items.into_iter().map(from_spanned).collect()),
        Raw::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (from_spanned(k), from_spanned(v)))
                .collect(),
        ),
    };
    Node { kind, pos }
}

/// The deserialization target (positions attached by `Spanned`).
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(i64::try_from(v)
                    .map(Raw::Int)
                    .unwrap_or(Raw::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = a.next_element()? {
                    out.push(x);
                }
                Ok(Raw::Seq(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = a.next_key()? {
                    let v = a.next_value()?;
                    out.push((k, v));
                }
                Ok(Raw::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_merge_keys() {
        let src = "- a: &x\n    k1: 1\n    k2: 2\n- <<: *x\n  k2: 3\n";
        let n = parse(src).unwrap();
        let Kind::Seq(items) = &n.kind else {
            panic!("seq")
        };
        assert_eq!(items[0].pos, Pos { line: 1, column: 3 });
        let second = &items[1];
        assert_eq!(second.get("k2").unwrap().kind, Kind::Int(3));
        assert_eq!(second.get("k1").unwrap().kind, Kind::Int(1));
        assert!(second.get("<<").is_none());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("- event_type: a\n  traits:\n    x: {fields: [a, b\n").unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 3,
                column: 17
            }
        );
        assert!(e.message.contains("bracket"), "{}", e.message);
        let e = parse("- x: *nope\n").unwrap_err();
        assert_eq!(e.pos.line, 1);
        assert!(e.message.contains("anchor"), "{}", e.message);
    }

    #[test]
    fn empty_documents_are_null() {
        assert_eq!(parse("").unwrap().kind, Kind::Null);
        assert_eq!(parse("# nothing\n---\n").unwrap().kind, Kind::Null);
    }
}
