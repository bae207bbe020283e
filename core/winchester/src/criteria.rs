//! Criteria of triggers.yaml (match, fire and load criteria) and trait
//! criteria. Pure: matching needs only the event (and a debug group).
//!
//! Differences from the original (documented in docs/):
//! * the numeric operators `>=`, `<=`, `!=` (and `==`) work; the original only
//!   matched `=`, `>`, `<` and silently mismatched anything else;
//! * an unknown operator or criterion type (e.g. `numeric:`) is a load-time
//!   error naming file and line; the original crashed at match time;
//! * comparing values of different types (text vs int) is a mismatch.

use std::collections::BTreeMap;

use stv3_event::{Event, TraitValue};

use crate::debugger::GroupRef;
use crate::timexpr::TimeExpr;

/// A comparison operator of `{int: "> 4096"}` / `{float: "< 4.02"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "=" | "==" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            _ => return None,
        })
    }

    fn apply(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Gt => ord == Greater,
            Op::Ge => ord != Less,
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
        }
    }

    /// The original debug reason for a failed comparison (`== failed`, `> failed`, ...).
    fn reason(self) -> &'static str {
        match self {
            Op::Eq => "== failed",
            Op::Ne => "!= failed",
            Op::Gt => "> failed",
            Op::Ge => ">= failed",
            Op::Lt => "< failed",
            Op::Le => "<= failed",
        }
    }
}

/// A constant from the config (a scalar criterion value).
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Constant {
    /// Compare a trait value with this constant; None when the types do not compare.
    fn compare(&self, v: &TraitValue) -> Option<std::cmp::Ordering> {
        match (v, self) {
            (TraitValue::Text(a), Constant::Text(b)) => Some(a.as_str().cmp(b.as_str())),
            (TraitValue::Int(a), Constant::Int(b)) => Some(a.cmp(b)),
            (TraitValue::Int(a), Constant::Float(b)) => (*a as f64).partial_cmp(b),
            (TraitValue::Float(a), Constant::Int(b)) => a.partial_cmp(&(*b as f64)),
            (TraitValue::Float(a), Constant::Float(b)) => a.partial_cmp(b),
            // Python: True == 1, False == 0.
            (TraitValue::Int(a), Constant::Bool(b)) => Some(a.cmp(&(*b as i64))),
            _ => None,
        }
    }
}

/// One trait criterion (`traits: {name: <criterion>}`).
#[derive(Debug, Clone)]
pub enum Criterion {
    /// `name: value`, `{string: v}`, `{text: v}`: equality.
    Equals(Constant),
    /// `{int: "> 4096"}`, `{float: "< 4.02"}`, `{int: 3}`.
    Compare { op: Op, value: Constant },
    /// `{datetime: "<timex>"}`: the trait must be `in` the expression evaluated
    /// with the event's datetime traits.
    Time(TimeExpr),
}

impl Criterion {
    /// Match the trait `name` of `event`, recording the original debug reasons.
    pub fn matches(&self, name: &str, event: &Event, group: &mut GroupRef<'_>) -> bool {
        match self {
            Criterion::Time(expr) => {
                let Some(value) = event.get(name) else {
                    return group.mismatch_with(|| format!("Time: not '{name}'"));
                };
                let Ok(range) = expr.eval(&event.datetime_fields()) else {
                    return group.mismatch("Time: no referenced trait");
                };
                let inside = value
                    .as_datetime()
                    .map(|t| range.matches(t))
                    .unwrap_or(false);
                group.check(inside, "Not in timerange")
            }
            Criterion::Equals(c)
            | Criterion::Compare {
                op: Op::Eq,
                value: c,
            } => {
                let Some(value) = event.get(name) else {
                    return group.mismatch_with(|| format!("not {name}"));
                };
                group.check(
                    c.compare(&value) == Some(std::cmp::Ordering::Equal),
                    "== failed",
                )
            }
            Criterion::Compare { op, value: c } => {
                let Some(value) = event.get(name) else {
                    return group.mismatch_with(|| format!("not {name}"));
                };
                let ok = c.compare(&value).map(|o| op.apply(o)).unwrap_or(false);
                group.check(ok, op.reason())
            }
        }
    }
}

/// A compiled `fnmatch` glob (`*`, `?`, `[seq]`, `[!seq]`), case-sensitive (POSIX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.to_string(),
        }
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.pattern == "*" {
            return true;
        }
        let p: Vec<char> = self.pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        glob_match(&p, &t)
    }
}

fn glob_match(p: &[char], t: &[char]) -> bool {
    // Iterative matcher with single-star backtracking.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p[pi..], t[ti]) {
                        if matched {
                            pi += next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        // Unclosed '[' is a literal.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if c == t[ti] {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Match `c` against a `[...]` class at the start of `p`. Returns (matched, length of the class),
/// or None if the class is not closed.
fn class_match(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = p.get(i) == Some(&'!');
    if negate {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    while i < p.len() {
        if p[i] == ']' && i > start {
            return Some((matched != negate, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// One criteria entry (of match_criteria, fire_criteria or load_criteria).
#[derive(Debug, Clone)]
pub struct Criteria {
    pub included_types: Vec<Glob>,
    pub excluded_types: Vec<Glob>,
    /// fire_criteria: how many events must match.
    pub number: u32,
    pub timestamp: Option<TimeExpr>,
    /// dist trait name -> event trait name.
    pub map_distinguished_by: BTreeMap<String, String>,
    /// Trait criteria, in file order; all must match.
    pub traits: Vec<(String, Criterion)>,
    /// Line of the entry in its file (0 if built in code).
    pub line: u32,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            included_types: vec![Glob::new("*")],
            excluded_types: Vec::new(),
            number: 1,
            timestamp: None,
            map_distinguished_by: BTreeMap::new(),
            traits: Vec::new(),
            line: 0,
        }
    }
}

impl Criteria {
    /// Build the event-type filter from the config list (`!` = exclude; only
    /// excludes => include `*`).
    pub fn set_event_types<S: AsRef<str>>(&mut self, types: &[S]) {
        self.included_types.clear();
        self.excluded_types.clear();
        for t in types {
            let t = t.as_ref();
            if let Some(x) = t.strip_prefix('!') {
                self.excluded_types.push(Glob::new(x));
            } else {
                self.included_types.push(Glob::new(t));
            }
        }
        if self.included_types.is_empty() {
            self.included_types.push(Glob::new("*"));
        }
    }

    pub fn match_type(&self, event_type: &str) -> bool {
        self.included_types.iter().any(|g| g.matches(event_type))
            && !self.excluded_types.iter().any(|g| g.matches(event_type))
    }

    /// The original `Criteria.match`, with its debug reasons.
    pub fn matches(&self, event: &Event, group: &mut GroupRef<'_>) -> bool {
        if !self.match_type(&event.event_type) {
            return group.mismatch("Wrong event type");
        }
        if let Some(expr) = &self.timestamp {
            let Ok(t) = expr.eval(&event.datetime_fields()) else {
                return group.mismatch("No timestamp trait");
            };
            if !t.matches(event.generated) {
                return group.mismatch("Not time yet.");
            }
        }
        if self.traits.is_empty() {
            return group.matched();
        }
        self.traits
            .iter()
            .all(|(name, c)| c.matches(name, event, group))
    }

    /// The event trait a distinguishing trait takes its value from.
    pub fn source_of<'a>(&'a self, dist_name: &'a str) -> &'a str {
        self.map_distinguished_by
            .get(dist_name)
            .map(String::as_str)
            .unwrap_or(dist_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_fnmatch() {
        for (pat, text, expected) in [
            ("*", "anything", true),
            ("compute.instance.*", "compute.instance.create.end", true),
            ("compute.instance.*", "compute.instances", false),
            ("compute.instance.exists", "compute.instance.exists", true),
            (
                "compute.instance.exists",
                "compute.instance.exists.verified",
                false,
            ),
            ("test.?hing", "test.thing", true),
            ("test.[st]hing", "test.thing", true),
            ("test.[!t]hing", "test.thing", false),
            ("test.[a-z]hing", "test.thing", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("*.end", "compute.instance.create.end", true),
            ("Compute.*", "compute.x", false),
            ("[", "[", true),
        ] {
            assert_eq!(Glob::new(pat).matches(text), expected, "{pat} vs {text}");
        }
    }

    #[test]
    fn event_type_include_exclude() {
        let mut c = Criteria::default();
        c.set_event_types(&["compute.instance.*", "!compute.instance.exists"]);
        assert!(c.match_type("compute.instance.create.start"));
        assert!(!c.match_type("compute.instance.exists"));
        assert!(!c.match_type("image.upload"));
        c.set_event_types(&["!compute.instance.exists"]);
        assert!(c.match_type("image.upload"), "only excludes include *");
        assert!(!c.match_type("compute.instance.exists"));
    }

    #[test]
    fn numeric_operators() {
        use std::cmp::Ordering::*;
        for (op, ord, expected) in [
            (">", Greater, true),
            (">", Equal, false),
            (">=", Equal, true),
            ("<", Less, true),
            ("<=", Greater, false),
            ("!=", Less, true),
            ("!=", Equal, false),
            ("=", Equal, true),
        ] {
            assert_eq!(Op::parse(op).unwrap().apply(ord), expected, "{op} {ord:?}");
        }
        assert_eq!(Op::parse("~"), None);
    }
}
