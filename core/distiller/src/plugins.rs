//! Trait plugins: the [`TraitPlugin`] interface, the [`PluginRegistry`]
//! (plugin name -> constructor from the `parameters` mapping) and the
//! built-in plugins:
//!
//! * `split` (original): `separator` (default `"."`), `segment` (default 0,
//!   negative counts from the end like Python), `max_split` (default none).
//!   Splits `str()` of the first match and returns one segment, or nothing
//!   when the segment does not exist.
//! * `bitfield` (original): `initial_bitfield` (default 0) and `flags`, a
//!   list of `{path, bit, value?}`. A flag's bit is set when its `path` is
//!   among the matches and, if `value` is given, the matched value equals it
//!   (Python `==`: `12 == 12.0`, `"12" != 12`). Always returns an int.
//! * `timedelta` (new, after Ceilometer's TimedeltaPlugin): no parameters;
//!   the trait's `fields` must yield exactly two datetime strings and the
//!   value is `abs(second - first)` in seconds, as a float. Fewer than two
//!   matches (or an empty string, Nova's "unset") gives no trait; more than
//!   two, or an unparseable datetime, drops the trait with a reason.
//!
//! Plugins receive every non-null match as `(dotted path, value)` and are
//! called even when there is none, so they can supply a default. Unknown
//! parameters are ignored, as in the original (which passed `**kwargs`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::convert::py_str;

/// One non-null match handed to a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMatch {
    /// Dotted path of the match, e.g. `payload.instance_id`.
    pub path: String,
    pub value: Value,
}

impl FieldMatch {
    pub fn new(path: impl Into<String>, value: Value) -> Self {
        FieldMatch {
            path: path.into(),
            value,
        }
    }
}

/// A configured plugin instance (one per trait definition).
pub trait TraitPlugin: Send + Sync + fmt::Debug {
    /// The trait value before type conversion. `Ok(None)`: no trait.
    /// `Err(reason)`: the trait is dropped and the reason reported.
    fn trait_value(&self, matches: &[FieldMatch]) -> Result<Option<Value>, String>;

    /// True for plugins that read nothing but the text (`str()`) of the
    /// first match: the distiller then calls [`TraitPlugin::value_of_first_text`]
    /// instead of building the match list.
    fn first_text_only(&self) -> bool {
        false
    }

    /// The trait value from the first match's text (`None`: no match). Must
    /// agree with [`TraitPlugin::trait_value`] on the same input.
    /// For a [`TraitPlugin::first_text_only`] plugin whose value is a piece
    /// of that text (`split`): the piece, borrowed (`Some(None)`: no value),
    /// so the distiller makes the trait without an intermediate `String`.
    /// `None` (the default): the distiller calls
    /// [`TraitPlugin::value_of_first_text`]. Must agree with it (a piece `p`
    /// stands for `Ok(Some(Value::String(p)))`).
    fn piece_of_first_text<'s>(&self, _first: Option<&'s str>) -> Option<Option<&'s str>> {
        None
    }

    fn value_of_first_text(&self, first: Option<&str>) -> Result<Option<Value>, String> {
        let matches: Vec<FieldMatch> = first
            .map(|s| FieldMatch::new("", Value::String(s.to_string())))
            .into_iter()
            .collect();
        self.trait_value(&matches)
    }
}

/// Builds a plugin from its `parameters` mapping; the error says what is wrong.
pub type PluginFactory =
    Arc<dyn Fn(&Map<String, Value>) -> Result<Box<dyn TraitPlugin>, String> + Send + Sync>;

/// Plugin name -> constructor.
#[derive(Clone)]
pub struct PluginRegistry {
    factories: BTreeMap<String, PluginFactory>,
}

impl fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("names", &self.names())
            .finish()
    }
}

impl Default for PluginRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PluginRegistry {
    /// No plugins at all.
    pub fn empty() -> Self {
        PluginRegistry {
            factories: BTreeMap::new(),
        }
    }

    /// `split`, `bitfield` and `timedelta`.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register("split", |p| {
            Ok(Box::new(Split::from_params(p)?) as Box<dyn TraitPlugin>)
        });
        r.register("bitfield", |p| {
            Ok(Box::new(Bitfield::from_params(p)?) as Box<dyn TraitPlugin>)
        });
        r.register("timedelta", |p| {
            Ok(Box::new(Timedelta::from_params(p)?) as Box<dyn TraitPlugin>)
        });
        r
    }

    /// Add or replace a plugin constructor.
    pub fn register<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&Map<String, Value>) -> Result<Box<dyn TraitPlugin>, String> + Send + Sync + 'static,
    {
        self.factories.insert(name.to_string(), Arc::new(factory));
        self
    }

    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(|s| s.as_str()).collect()
    }

    /// Instantiate `name` with `params`. `None` when the name is unknown.
    pub fn build(
        &self,
        name: &str,
        params: &Map<String, Value>,
    ) -> Option<Result<Box<dyn TraitPlugin>, String>> {
        self.factories.get(name).map(|f| f(params))
    }
}

fn int_param(params: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(format!("parameter '{key}' must be an integer, got {other}")),
    }
}

/// The `split` plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub separator: String,
    pub segment: i64,
    pub max_split: Option<i64>,
}

impl Split {
    pub fn from_params(params: &Map<String, Value>) -> Result<Split, String> {
        let separator = match params.get("separator") {
            None | Some(Value::Null) => ".".to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => return Err("parameter 'separator' must not be empty".into()),
            Some(other) => {
                return Err(format!(
                    "parameter 'separator' must be a string, got {other}"
                ))
            }
        };
        Ok(Split {
            separator,
            segment: int_param(params, "segment")?.unwrap_or(0),
            max_split: int_param(params, "max_split")?,
        })
    }
}

impl Split {
    /// `s.split(separator, max_split)[segment]`, Python style.
    fn segment_of<'s>(&self, s: &'s str) -> Option<&'s str> {
        let limit = match self.max_split {
            Some(n) if n >= 0 => n as usize + 1,
            _ => usize::MAX,
        };
        if let ([sep], Ok(segment)) = (self.separator.as_bytes(), usize::try_from(self.segment)) {
            if sep.is_ascii() {
                return nth_piece(s, *sep, limit, segment);
            }
        }
        // the same walk for a one-character separator (the usual `.`,
        // found with memchr) and for a longer one
        macro_rules! segment {
            ($sep:expr) => {{
                let idx = if self.segment < 0 {
                    s.splitn(limit, $sep).count() as i64 + self.segment
                } else {
                    self.segment
                };
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| s.splitn(limit, $sep).nth(i))
            }};
        }
        let mut chars = self.separator.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => segment!(c),
            _ => segment!(self.separator.as_str()),
        }
    }
}

/// `s.splitn(limit, sep).nth(segment)` for an ASCII separator, walked over
/// the bytes (the usual `split` of one segment of a short text).
fn nth_piece(s: &str, sep: u8, limit: usize, segment: usize) -> Option<&str> {
    let b = s.as_bytes();
    let mut start = 0;
    let mut pieces = 1; // pieces started so far: the one at `start`
    for _ in 0..segment {
        if pieces == limit {
            return None;
        }
        start += b[start..].iter().position(|&c| c == sep)? + 1;
        pieces += 1;
    }
    let end = if pieces == limit {
        b.len()
    } else {
        b[start..]
            .iter()
            .position(|&c| c == sep)
            .map_or(b.len(), |i| start + i)
    };
    // an ASCII separator is a char boundary on both sides
    Some(&s[start..end])
}

impl TraitPlugin for Split {
    fn trait_value(&self, matches: &[FieldMatch]) -> Result<Option<Value>, String> {
        let Some(first) = matches.first() else {
            return Ok(None);
        };
        self.value_of_first_text(Some(&py_str(&first.value)))
    }

    fn first_text_only(&self) -> bool {
        true
    }

    fn value_of_first_text(&self, first: Option<&str>) -> Result<Option<Value>, String> {
        Ok(first
            .and_then(|s| self.segment_of(s))
            .map(|part| Value::String(part.to_string())))
    }

    fn piece_of_first_text<'s>(&self, first: Option<&'s str>) -> Option<Option<&'s str>> {
        Some(first.and_then(|s| self.segment_of(s)))
    }
}

/// One `bitfield` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub path: String,
    pub bit: u32,
    pub value: Option<Value>,
}

/// The `bitfield` plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitfield {
    pub initial: i64,
    pub flags: Vec<Flag>,
}

impl Bitfield {
    pub fn from_params(params: &Map<String, Value>) -> Result<Bitfield, String> {
        let initial = int_param(params, "initial_bitfield")?.unwrap_or(0);
        let mut flags = Vec::new();
        match params.get("flags") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let Value::Object(m) = item else {
                        return Err(format!(
                            "flags[{i}] must be a mapping with 'path' and 'bit'"
                        ));
                    };
                    let path = match m.get("path") {
                        Some(Value::String(s)) => s.clone(),
                        _ => return Err(format!("flags[{i}] needs a string 'path'")),
                    };
                    let bit = match int_param(m, "bit").map_err(|e| format!("flags[{i}]: {e}"))? {
                        Some(b) if (0..63).contains(&b) => b as u32,
                        Some(b) => return Err(format!("flags[{i}]: bit {b} is outside 0..=62")),
                        None => return Err(format!("flags[{i}] needs an integer 'bit'")),
                    };
                    flags.push(Flag {
                        path,
                        bit,
                        value: m.get("value").cloned(),
                    });
                }
            }
            Some(other) => return Err(format!("parameter 'flags' must be a list, got {other}")),
        }
        Ok(Bitfield { initial, flags })
    }
}

impl TraitPlugin for Bitfield {
    fn trait_value(&self, matches: &[FieldMatch]) -> Result<Option<Value>, String> {
        let mut bits = self.initial;
        for flag in &self.flags {
            // dict(match_list): the last match of a path wins.
            let Some(m) = matches.iter().rev().find(|m| m.path == flag.path) else {
                continue;
            };
            if flag.value.as_ref().is_none_or(|want| py_eq(&m.value, want)) {
                bits |= 1i64 << flag.bit;
            }
        }
        Ok(Some(Value::from(bits)))
    }
}

/// Python `==` on JSON values: numbers (and booleans) compare numerically.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(*b as i64 as f64),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_i64() && y.is_i64() => {
            x.as_i64() == y.as_i64()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// The `timedelta` plugin.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timedelta;

impl Timedelta {
    pub fn from_params(_params: &Map<String, Value>) -> Result<Timedelta, String> {
        Ok(Timedelta)
    }
}

impl TraitPlugin for Timedelta {
    fn trait_value(&self, matches: &[FieldMatch]) -> Result<Option<Value>, String> {
        let present: Vec<&FieldMatch> = matches
            .iter()
            .filter(|m| m.value.as_str() != Some(""))
            .collect();
        if present.len() < 2 {
            return Ok(None);
        }
        if present.len() > 2 {
            return Err(format!(
                "timedelta needs exactly 2 datetime fields, got {}",
                present.len()
            ));
        }
        let parse = |m: &FieldMatch| match &m.value {
            Value::String(s) => {
                stv3_event::parse_timestamp(s).map_err(|e| format!("{}: {e}", m.path))
            }
            other => Err(format!("{}: {other} is not a datetime string", m.path)),
        };
        let start = parse(present[0])?;
        let end = parse(present[1])?;
        let micros = (end - start)
            .num_microseconds()
            .ok_or("timedelta out of range")?;
        Ok(Some(Value::from((micros as f64 / 1e6).abs())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn matches(items: &[(&str, Value)]) -> Vec<FieldMatch> {
        items
            .iter()
            .map(|(p, v)| FieldMatch::new(*p, v.clone()))
            .collect()
    }

    fn check(plugin: &str, p: Value, input: &[(&str, Value)], expected: Result<Option<Value>, ()>) {
        let reg = PluginRegistry::builtin();
        let plug = reg
            .build(plugin, &params(p.clone()))
            .expect("known")
            .expect("valid params");
        let got = plug.trait_value(&matches(input)).map_err(|_| ());
        assert_eq!(got, expected, "{plugin} {p} on {input:?}");
        if plug.first_text_only() {
            let first = input.first().map(|(_, v)| crate::convert::py_str(v));
            let fast = plug.value_of_first_text(first.as_deref()).map_err(|_| ());
            assert_eq!(fast, expected, "{plugin} {p} on {input:?} (first text)");
            if let Some(piece) = plug.piece_of_first_text(first.as_deref()) {
                let piece = Ok(piece.map(|s| Value::String(s.into())));
                assert_eq!(piece, expected, "{plugin} {p} on {input:?} (piece)");
            }
        }
    }

    #[test]
    fn nth_piece_is_splitn_nth() {
        for s in [
            "",
            ".",
            "a",
            "a.b",
            ".a.",
            "a..b.c",
            "publisher-291704",
            "é.ü.x",
            "...",
        ] {
            for limit in [1, 2, 3, 4, usize::MAX] {
                for segment in 0..6 {
                    assert_eq!(
                        nth_piece(s, b'.', limit, segment),
                        s.splitn(limit, '.').nth(segment),
                        "{s:?} {limit} {segment}"
                    );
                }
            }
        }
    }

    #[test]
    fn split_vectors() {
        let tfb = [("test.thing", json!("test-foobar-baz"))];
        check(
            "split",
            json!({"separator": "-", "segment": 0}),
            &tfb,
            Ok(Some(json!("test"))),
        );
        check(
            "split",
            json!({"separator": "-", "segment": 1}),
            &tfb,
            Ok(Some(json!("foobar"))),
        );
        check(
            "split",
            json!({"separator": "-", "segment": 1, "max_split": 1}),
            &tfb,
            Ok(Some(json!("foobar-baz"))),
        );
        check(
            "split",
            json!({"separator": "-", "segment": 5}),
            &tfb,
            Ok(None),
        );
        check(
            "split",
            json!({"separator": "-", "segment": -1}),
            &tfb,
            Ok(Some(json!("baz"))),
        );
        check(
            "split",
            json!({"separator": "-", "segment": 0}),
            &[("t", json!("test.foobar.baz"))],
            Ok(Some(json!("test.foobar.baz"))),
        );
        check(
            "split",
            json!({"separator": "-", "segment": 0}),
            &[],
            Ok(None),
        );
        // separators of more than one character, and non-ASCII ones
        let multi = [("t", json!("a::b::c:d"))];
        for (params, want) in [
            (json!({"separator": "::", "segment": 1}), Some("b")),
            (json!({"separator": "::", "segment": -1}), Some("c:d")),
            (
                json!({"separator": "::", "segment": 1, "max_split": 0}),
                None,
            ),
            (json!({"separator": "::", "segment": 3}), None),
            (json!({"separator": "é", "segment": 1}), None),
        ] {
            check("split", params, &multi, Ok(want.map(|w| json!(w))));
        }
        check(
            "split",
            json!({"separator": "é", "segment": -2}),
            &[("t", json!("xéyéz"))],
            Ok(Some(json!("y"))),
        );
        let pid = [("publisher_id", json!("compute.host-1-2-3"))];
        check("split", json!({}), &pid, Ok(Some(json!("compute"))));
        check(
            "split",
            json!({"segment": 1, "max_split": 1}),
            &pid,
            Ok(Some(json!("host-1-2-3"))),
        );
        check(
            "split",
            json!({"segment": 1, "max_split": 1}),
            &[("p", json!("publisher-291704"))],
            Ok(None),
        );
        check(
            "split",
            json!({"segment": 1}),
            &[("p", json!(1.5))],
            Ok(Some(json!("5"))),
        );
        check(
            "split",
            json!({"unknown": "ignored"}),
            &pid,
            Ok(Some(json!("compute"))),
        );
    }

    fn bitfield_params(initial: i64) -> Value {
        json!({"initial_bitfield": initial, "flags": [
            {"path": "payload.foo", "bit": 0, "value": 42},
            {"path": "payload.foo", "bit": 1, "value": 12},
            {"path": "payload.thud", "bit": 1, "value": 23},
            {"path": "thingy.boink", "bit": 4},
            {"path": "thingy.quux", "bit": 6, "value": "wokka"},
            {"path": "payload.bar", "bit": 10, "value": "test"}
        ]})
    }

    #[test]
    fn bitfield_vectors() {
        let base = [
            ("payload.foo", json!(12)),
            ("payload.bar", json!("test")),
            ("thingy.boink", json!("testagain")),
        ];
        check(
            "bitfield",
            bitfield_params(0),
            &base,
            Ok(Some(json!(0x412))),
        );
        check(
            "bitfield",
            bitfield_params(0x2000),
            &base,
            Ok(Some(json!(0x2412))),
        );
        check("bitfield", bitfield_params(0), &[], Ok(Some(json!(0))));
        let multi = [
            ("payload.foo", json!(12)),
            ("payload.thud", json!(23)),
            ("payload.bar", json!("test")),
            ("thingy.boink", json!("testagain")),
        ];
        check(
            "bitfield",
            bitfield_params(0),
            &multi,
            Ok(Some(json!(0x412))),
        );
        // Python equality: 12.0 == 12, "12" != 12
        check(
            "bitfield",
            bitfield_params(0),
            &[("payload.foo", json!(12.0))],
            Ok(Some(json!(2))),
        );
        check(
            "bitfield",
            bitfield_params(0),
            &[("payload.foo", json!("12"))],
            Ok(Some(json!(0))),
        );
    }

    #[test]
    fn timedelta_vectors() {
        let two = [
            ("payload.created_at", json!("2015-03-01 18:00:00")),
            ("payload.launched_at", json!("2015-03-01 18:01:30.5")),
        ];
        check("timedelta", json!({}), &two, Ok(Some(json!(90.5))));
        let rev = [two[1].clone(), two[0].clone()];
        check("timedelta", json!({}), &rev, Ok(Some(json!(90.5))));
        check("timedelta", json!({}), &two[..1], Ok(None));
        check(
            "timedelta",
            json!({}),
            &[two[0].clone(), ("payload.launched_at", json!(""))],
            Ok(None),
        );
        check(
            "timedelta",
            json!({}),
            &[two[0].clone(), ("payload.launched_at", json!("soon"))],
            Err(()),
        );
        check(
            "timedelta",
            json!({}),
            &[two[0].clone(), two[1].clone(), two[1].clone()],
            Err(()),
        );
    }

    #[test]
    fn bad_params_are_reported() {
        let reg = PluginRegistry::builtin();
        for (name, p) in [
            ("split", json!({"separator": ""})),
            ("split", json!({"segment": "x"})),
            ("split", json!({"separator": 3})),
            ("bitfield", json!({"flags": "x"})),
            ("bitfield", json!({"flags": [{"bit": 1}]})),
            ("bitfield", json!({"flags": [{"path": "a", "bit": 99}]})),
            ("bitfield", json!({"flags": [{"path": "a"}]})),
        ] {
            assert!(
                reg.build(name, &params(p.clone())).unwrap().is_err(),
                "{name} {p}"
            );
        }
        assert!(reg.build("bogus", &Map::new()).is_none());
        assert_eq!(reg.names(), ["bitfield", "split", "timedelta"]);
    }
}
