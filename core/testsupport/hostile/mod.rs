//! Shared helpers for the hostile-input tests (issue #9, "Bad input at scale").
//!
//! Not a module of `stv3-testsupport` itself: each crate's
//! `tests/hostile_input.rs` includes this file with
//! `#[path = ".../core/testsupport/hostile/mod.rs"] mod hostile;`, so it is
//! compiled with that crate's dev-dependencies (`proptest`, `serde_json`).
//!
//! * [`config`]: the proptest config (256 cases, `PROPTEST_CASES` overrides).
//! * strategies: [`hostile_text`] (short hostile scalars: NUL, BOM, unicode,
//!   huge numbers, odd dates and timex), [`json_mutant`] (a valid JSON document
//!   with fields deleted, retyped, nested deeply, replaced by huge numbers or
//!   long strings), [`byte_mutant`] (byte edits of a text), [`line_mutant`]
//!   (line edits of a YAML or INI file: delete, duplicate, re-indent, replace a
//!   value).
//! * [`run_corpus`]: runs every file of a `tests/hostile/` folder through an
//!   entry point and compares the outcome class with the expected table; every
//!   file must be in the table and every table entry must exist; no input may
//!   panic or take longer than [`MAX_CASE_TIME`].

#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};

/// One hostile input may take at most this long (debug build).
pub const MAX_CASE_TIME: Duration = Duration::from_secs(2);

/// 256 cases unless `PROPTEST_CASES` says otherwise.
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Short hostile scalars, as text.
pub fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("\0".to_string()),
        Just("a\0b".to_string()),
        Just("\u{feff}".to_string()),
        Just("\u{202e}gnp.exe".to_string()),
        Just("é̴̡̛͚̙ ñ 日本 🦀 \u{10ffff}".to_string()),
        Just("\u{fffd}\u{fffe}".to_string()),
        Just("18446744073709551617".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1e309".to_string()),
        Just("-1e309".to_string()),
        Just("NaN".to_string()),
        Just("Infinity".to_string()),
        Just("-0".to_string()),
        Just("0x7fffffffffffffff".to_string()),
        Just("99999-01-01T00:00:00".to_string()),
        Just("-0001-01-01T00:00:00".to_string()),
        Just("0000-01-01T00:00:00+14:00".to_string()),
        Just("9999-12-31T23:59:59-14:00".to_string()),
        Just("2015-01-01T00:00:00+9999999999:00".to_string()),
        Just("2015-01-01T00:00:00-99999999999999999:00".to_string()),
        Just("2015-02-30 25:61:61.9999999".to_string()),
        Just("$timestamp + 99999999999999d".to_string()),
        Just("$timestamp - 9223372036854775807s".to_string()),
        Just("$timestamp.day + 1000000000000y".to_string()),
        Just("((((((((((((((((((((((((((((((((((($timestamp".to_string()),
        Just("%(x)s%(x)s%(x)s".to_string()),
        Just("*alias".to_string()),
        Just("&anchor".to_string()),
        Just("!!binary AAAA".to_string()),
        Just("{".to_string()),
        Just("[".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just(":".repeat(64)),
        Just(";".repeat(64)),
        Just("a:b;".repeat(200)),
        Just("%".to_string()),
        Just("\\".to_string()),
        Just("\r\n\r\n".to_string()),
        Just("x".repeat(70_000)),
        any::<String>(),
        "[ -~]{0,40}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
    ]
    .boxed()
}

/// A hostile JSON value (scalars, huge numbers, deep nesting, long strings).
pub fn hostile_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1.7976931348623157e308)),
        Just(json!(-0.0)),
        Just(json!(5e-324)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        hostile_text().prop_map(Value::String),
        (0usize..300).prop_map(|d| nest(Value::Null, d)),
        (0usize..300).prop_map(|d| nest_obj(json!("deep"), d)),
        Just(json!([])),
        Just(json!({})),
        Just(Value::String("y".repeat(1 << 20))),
    ]
    .boxed()
}

/// `v` inside `depth` arrays.
pub fn nest(v: Value, depth: usize) -> Value {
    (0..depth).fold(v, |acc, _| Value::Array(vec![acc]))
}

/// `v` inside `depth` objects (`{"a": ...}`).
pub fn nest_obj(v: Value, depth: usize) -> Value {
    (0..depth).fold(v, |acc, _| {
        let mut m = Map::new();
        m.insert("a".into(), acc);
        Value::Object(m)
    })
}

/// One structural edit of a JSON document.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Delete the member/item picked by the index.
    Delete(usize),
    /// Replace the picked node with a hostile value.
    Retype(usize, Value),
    /// Wrap the picked node in `n` arrays.
    Nest(usize, usize),
    /// Add a member with a hostile name and value to the picked object.
    Add(usize, String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), hostile_value()).prop_map(|(i, v)| Edit::Retype(i, v)),
        (any::<usize>(), 1usize..200).prop_map(|(i, n)| Edit::Nest(i, n)),
        (any::<usize>(), hostile_text(), hostile_value()).prop_map(|(i, k, v)| Edit::Add(i, k, v)),
    ]
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(m) => m.values().map(count).sum(),
        _ => 0,
    }
}

/// The `i`-th node in pre-order.
fn node_mut<'a>(v: &'a mut Value, i: &mut usize) -> Option<&'a mut Value> {
    if *i == 0 {
        return Some(v);
    }
    *i -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|c| node_mut(c, i)),
        Value::Object(m) => m.values_mut().find_map(|c| node_mut(c, i)),
        _ => None,
    }
}

fn pick(doc: &mut Value, at: usize) -> &mut Value {
    let mut i = at % count(doc);
    node_mut(doc, &mut i).expect("index below count")
}

/// Apply one edit.
pub fn apply(doc: &mut Value, e: &Edit) {
    match e {
        Edit::Delete(at) => {
            let n = pick(doc, *at);
            match n {
                Value::Object(m) if !m.is_empty() => {
                    let k = m.keys().nth(at % m.len()).cloned().unwrap_or_default();
                    m.remove(&k);
                }
                Value::Array(a) if !a.is_empty() => {
                    a.remove(at % a.len());
                }
                other => *other = Value::Null,
            }
        }
        Edit::Retype(at, v) => *pick(doc, *at) = v.clone(),
        Edit::Nest(at, d) => {
            let n = pick(doc, *at);
            *n = nest(n.take(), *d);
        }
        Edit::Add(at, k, v) => {
            if let Value::Object(m) = pick(doc, *at) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `seed` with 1-4 structural edits.
pub fn json_mutant(seed: Value) -> impl Strategy<Value = Value> {
    proptest::collection::vec(edit(), 1..5).prop_map(move |edits| {
        let mut doc = seed.clone();
        for e in &edits {
            apply(&mut doc, e);
        }
        doc
    })
}

/// One byte-level edit of a text.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
    Flip(usize, u8),
}

/// `seed` with 1-8 byte edits (may produce invalid UTF-8).
pub fn byte_mutant(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        hostile_text().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
        Just(vec![0xef, 0xbb, 0xbf]),
        Just(vec![0xff, 0xfe]),
        Just(vec![0xc3]),
        Just(b"\\u0000".to_vec()),
        Just(b"\\ud800".to_vec()),
    ];
    let e = prop_oneof![
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| ByteEdit::Delete(a, n)),
        (any::<usize>(), token).prop_map(|(a, t)| ByteEdit::Insert(a, t)),
        (any::<usize>(), 1usize..256).prop_map(|(a, n)| ByteEdit::Duplicate(a, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| ByteEdit::Flip(a, b)),
    ];
    proptest::collection::vec(e, 1..9).prop_map(move |edits| {
        let mut t = seed.clone();
        for e in edits {
            let len = t.len().max(1);
            match e {
                ByteEdit::Delete(a, n) => {
                    let a = a % len;
                    let b = (a + n).min(t.len());
                    if a < b {
                        t.drain(a..b);
                    }
                }
                ByteEdit::Insert(a, tok) => {
                    let a = a % (t.len() + 1);
                    t.splice(a..a, tok);
                }
                ByteEdit::Duplicate(a, n) => {
                    let a = a % len;
                    let b = (a + n).min(t.len());
                    if a < b {
                        let piece = t[a..b].to_vec();
                        t.splice(b..b, piece);
                    }
                }
                ByteEdit::Flip(a, x) => {
                    if !t.is_empty() {
                        let a = a % t.len();
                        t[a] ^= x;
                    }
                }
            }
        }
        t
    })
}

/// One line-level edit of a YAML/INI text.
#[derive(Debug, Clone)]
pub enum LineEdit {
    Delete(usize),
    Duplicate(usize),
    Indent(usize, usize),
    Dedent(usize),
    /// Replace what follows the first `:` or `=` with a hostile scalar.
    Value(usize, String),
    /// Insert a hostile line.
    Insert(usize, String),
}

/// `seed` with 1-6 line edits.
pub fn line_mutant(seed: &str) -> impl Strategy<Value = String> {
    let lines: Vec<String> = seed.lines().map(str::to_string).collect();
    let e = prop_oneof![
        any::<usize>().prop_map(LineEdit::Delete),
        any::<usize>().prop_map(LineEdit::Duplicate),
        (any::<usize>(), 1usize..9).prop_map(|(a, n)| LineEdit::Indent(a, n)),
        any::<usize>().prop_map(LineEdit::Dedent),
        (any::<usize>(), hostile_text()).prop_map(|(a, v)| LineEdit::Value(a, v)),
        (any::<usize>(), hostile_text()).prop_map(|(a, v)| LineEdit::Insert(a, v)),
    ];
    proptest::collection::vec(e, 1..7).prop_map(move |edits| {
        let mut l = lines.clone();
        for e in edits {
            let n = l.len().max(1);
            match e {
                LineEdit::Delete(a) if !l.is_empty() => {
                    l.remove(a % n);
                }
                LineEdit::Duplicate(a) if !l.is_empty() => {
                    let x = l[a % n].clone();
                    l.insert(a % n, x);
                }
                LineEdit::Indent(a, k) if !l.is_empty() => {
                    l[a % n] = format!("{}{}", " ".repeat(k), l[a % n]);
                }
                LineEdit::Dedent(a) if !l.is_empty() => {
                    l[a % n] = l[a % n].trim_start().to_string();
                }
                LineEdit::Value(a, v) if !l.is_empty() => {
                    let line = &mut l[a % n];
                    if let Some(p) = line.find([':', '=']) {
                        line.truncate(p + 1);
                        line.push(' ');
                        line.push_str(&v);
                    }
                }
                LineEdit::Insert(a, v) => {
                    let a = a % (l.len() + 1);
                    l.insert(a, v);
                }
                _ => {}
            }
        }
        let mut out = l.join("\n");
        out.push('\n');
        out
    })
}

/// CPU time of the calling thread (user + system), from
/// `/proc/thread-self/stat` (clock ticks, 100 per second); `None` off Linux.
/// Used instead of wall time so a loaded 2-core machine does not turn a
/// slow-but-bounded input into a "hang".
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // fields after the `(comm)`: state is field 3, utime 14, stime 15
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Run `f` and fail (with `name`) when it panics or uses more than
/// [`MAX_CASE_TIME`] of CPU (wall time where CPU time is unavailable).
pub fn timed<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    let (start, cpu_start) = (Instant::now(), thread_cpu_time());
    let r = catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{name}: PANIC: {msg}")
    })?;
    let took = match (cpu_start, thread_cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => start.elapsed(),
    };
    if took > MAX_CASE_TIME {
        return Err(format!(
            "{name}: took {took:?} of CPU (> {MAX_CASE_TIME:?})"
        ));
    }
    Ok(r)
}

/// Run every file in `dir` through `f` (which returns an outcome class such as
/// `ok` or `err:file:line`) and compare with `expected` (file name, class).
/// A class ending in `*` matches as a prefix. Every file must be listed and
/// every listed file must exist; all mismatches are reported together.
pub fn run_corpus(dir: &Path, expected: &[(&str, &str)], f: impl Fn(&str, &[u8]) -> String) {
    let mut failures = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "README.md")
        .collect();
    names.sort();
    for n in &names {
        if !expected.iter().any(|(e, _)| e == n) {
            let path = dir.join(n);
            let bytes = std::fs::read(&path).unwrap_or_default();
            let got = timed(n, || f(&path.display().to_string(), &bytes));
            failures.push(format!(
                "{n}: not in the expected table (add its outcome; got {got:?})"
            ));
        }
    }
    for (name, want) in expected {
        let path = dir.join(name);
        let Ok(bytes) = std::fs::read(&path) else {
            failures.push(format!("{name}: listed but missing in {}", dir.display()));
            continue;
        };
        match timed(name, || f(&path.display().to_string(), &bytes)) {
            Err(e) => failures.push(e),
            Ok(got) => {
                let ok = match want.strip_suffix('*') {
                    Some(prefix) => got.starts_with(prefix),
                    None => got == *want,
                };
                if !ok {
                    failures.push(format!("{name}: got {got:?}, want {want:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "hostile corpus {}:\n{}",
        dir.display(),
        failures.join("\n")
    );
}
