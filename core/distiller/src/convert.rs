//! Trait value conversions with the original's Python semantics:
//! `text` is `str(v)` (so `True`, `{'a': 1}`, `1e-05`), `int` is `int(v)`
//! (`"20"` -> 20, `12.7` -> 12, `"12.5"` fails), `float` is `float(v)`,
//! `datetime` parses an ISO-8601 string (space separator accepted, naive
//! means UTC) with `stv3_event::parse_timestamp`. A failure is a
//! [`ConvertError`]; the distiller drops only that trait.

use std::fmt::Write;

use stv3_event::{Datatype, TraitValue};

use crate::json::{JsonNode, View};

/// Why a value could not be converted to the trait's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot convert {value} to {datatype}: {reason}")]
pub struct ConvertError {
    /// The offending value, shortened, as Python `repr`.
    pub value: String,
    pub datatype: &'static str,
    pub reason: String,
}

fn fail<N: JsonNode>(v: &N, datatype: Datatype, reason: impl Into<String>) -> ConvertError {
    let mut value = py_repr(v);
    if value.chars().count() > 80 {
        value = value.chars().take(77).collect::<String>() + "...";
    }
    ConvertError {
        value,
        datatype: datatype.name(),
        reason: reason.into(),
    }
}

/// Convert a matched value. `Ok(None)` means "absent" (`""` for a non-text
/// type, which Nova sends for unset dates).
#[inline]
pub fn convert<N: JsonNode>(v: &N, datatype: Datatype) -> Result<Option<TraitValue>, ConvertError> {
    if datatype != Datatype::Text && v.as_str() == Some("") {
        return Ok(None);
    }
    match datatype {
        Datatype::Text => Ok(Some(TraitValue::Text(py_str(v).into()))),
        Datatype::Int => to_int(v).map(|i| Some(TraitValue::Int(i))),
        Datatype::Float => to_float(v).map(|f| Some(TraitValue::Float(f))),
        Datatype::Datetime => match v.view() {
            View::Str(s) => stv3_event::parse_timestamp(s)
                .map(|t| Some(TraitValue::Datetime(t)))
                .map_err(|e| fail(v, datatype, e.reason)),
            _ => Err(fail(v, datatype, "a datetime must be a string")),
        },
        Datatype::None | Datatype::Timerange => Err(fail(v, datatype, "not a trait type")),
    }
}

fn to_int<N: JsonNode>(v: &N) -> Result<i64, ConvertError> {
    match v.view() {
        View::Bool(b) => Ok(b as i64),
        View::Int(i) => Ok(i),
        View::UInt(_) => Err(fail(v, Datatype::Int, "out of the 64-bit range")),
        View::Float(f) => {
            if !f.is_finite() {
                Err(fail(v, Datatype::Int, "not a finite number"))
            } else if f.trunc() < i64::MIN as f64 || f.trunc() >= i64::MAX as f64 {
                Err(fail(v, Datatype::Int, "out of the 64-bit range"))
            } else {
                Ok(f.trunc() as i64)
            }
        }
        View::Str(s) => {
            parse_py_int(s).ok_or_else(|| fail(v, Datatype::Int, "not an integer literal"))
        }
        View::Null | View::Array | View::Object => {
            Err(fail(v, Datatype::Int, "not a number or a string"))
        }
    }
}

/// Python `int(str)`: surrounding whitespace, an optional sign, ASCII
/// digits with single underscores between them.
fn parse_py_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        match b {
            b'_' => {}
            b'0'..=b'9' => {
                n = n.checked_mul(10)?.checked_add((b - b'0') as i64)?;
            }
            _ => return None,
        }
    }
    Some(if neg { -n } else { n })
}

fn to_float<N: JsonNode>(v: &N) -> Result<f64, ConvertError> {
    match v.view() {
        View::Bool(b) => Ok(b as i64 as f64),
        View::Int(i) => Ok(i as f64),
        View::UInt(u) => Ok(u as f64),
        View::Float(f) => Ok(f),
        View::Str(s) => {
            let t = s.trim();
            let cleaned;
            let t = if t.contains('_') {
                if t.starts_with('_') || t.ends_with('_') || t.contains("__") {
                    return Err(fail(v, Datatype::Float, "not a float literal"));
                }
                cleaned = t.replace('_', "");
                cleaned.as_str()
            } else {
                t
            };
            t.parse::<f64>()
                .map_err(|_| fail(v, Datatype::Float, "not a float literal"))
        }
        View::Null | View::Array | View::Object => {
            Err(fail(v, Datatype::Float, "not a number or a string"))
        }
    }
}

/// Python 3 `str(v)` of a JSON value.
#[inline]
pub fn py_str<N: JsonNode>(v: &N) -> String {
    match v.view() {
        View::Str(s) => s.to_string(),
        _ => py_repr(v),
    }
}

/// Python 3 `repr(v)` of a JSON value (strings quoted, dicts and lists as
/// Python literals, `None`/`True`/`False`).
pub fn py_repr<N: JsonNode>(v: &N) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

fn write_repr<N: JsonNode>(v: &N, out: &mut String) {
    match v.view() {
        View::Null => out.push_str("None"),
        View::Bool(true) => out.push_str("True"),
        View::Bool(false) => out.push_str("False"),
        View::Int(i) => {
            let _ = write!(out, "{i}");
        }
        View::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        View::Float(f) => out.push_str(&py_float_repr(f)),
        View::Str(s) => write_str_repr(s, out),
        View::Array => {
            out.push('[');
            for (i, item) in v.items().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        View::Object => {
            out.push('{');
            let mut first = true;
            v.for_each_member(&mut |k, val| {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                write_str_repr(k, out);
                out.push_str(": ");
                write_repr(val, out);
            });
            out.push('}');
        }
    }
}

fn write_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python 3 `repr(float)`: the shortest round-trip digits, positional
/// notation when the decimal exponent is in [-4, 16), scientific otherwise
/// (`1e-05`, `1e+16`), and always a `.0` on integral positional values.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-5".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                for _ in digits.len()..point {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn check(v: Value, dt: Datatype, expected: Result<Option<TraitValue>, ()>) {
        let got = convert(&v, dt).map_err(|_| ());
        assert_eq!(got, expected, "{v} as {dt}");
        let bytes = serde_json::to_vec(&v).unwrap();
        let d = crate::json::Doc::parse(&bytes).unwrap();
        assert_eq!(
            convert(&d, dt).map_err(|_| ()),
            expected,
            "{v} as {dt} (Doc)"
        );
    }

    fn text(s: &str) -> Result<Option<TraitValue>, ()> {
        Ok(Some(TraitValue::Text(s.into())))
    }

    #[test]
    fn conversion_vectors() {
        use Datatype::{Datetime, Float, Int, Text};
        let ts = |s: &str| {
            Ok(Some(TraitValue::Datetime(
                stv3_event::parse_timestamp(s).unwrap(),
            )))
        };
        let cases: Vec<(Value, Datatype, Result<Option<TraitValue>, ()>)> = vec![
            (json!("abc"), Text, text("abc")),
            (json!(""), Text, text("")),
            (json!(true), Text, text("True")),
            (json!(false), Text, text("False")),
            (json!(12), Text, text("12")),
            (json!(12.5), Text, text("12.5")),
            (json!(12.0), Text, text("12.0")),
            (json!(1e-5), Text, text("1e-05")),
            (json!(1e16), Text, text("1e+16")),
            (json!(123456789012345.6), Text, text("123456789012345.6")),
            (json!(0.0001), Text, text("0.0001")),
            (
                json!({"a": 1, "b": [true, null, "x'y"]}),
                Text,
                text("{'a': 1, 'b': [True, None, \"x'y\"]}"),
            ),
            (json!([]), Text, text("[]")),
            (json!({}), Text, text("{}")),
            (json!("20"), Int, Ok(Some(TraitValue::Int(20)))),
            (json!(" -20 "), Int, Ok(Some(TraitValue::Int(-20)))),
            (json!("1_000"), Int, Ok(Some(TraitValue::Int(1000)))),
            (json!(12.7), Int, Ok(Some(TraitValue::Int(12)))),
            (json!(-12.7), Int, Ok(Some(TraitValue::Int(-12)))),
            (json!(true), Int, Ok(Some(TraitValue::Int(1)))),
            (json!(512), Int, Ok(Some(TraitValue::Int(512)))),
            (json!(""), Int, Ok(None)),
            (json!("12.5"), Int, Err(())),
            (json!("abc"), Int, Err(())),
            (json!([1]), Int, Err(())),
            (json!(18446744073709551615u64), Int, Err(())),
            (json!("2.5"), Float, Ok(Some(TraitValue::Float(2.5)))),
            (json!(3), Float, Ok(Some(TraitValue::Float(3.0)))),
            (json!("1e3"), Float, Ok(Some(TraitValue::Float(1000.0)))),
            (json!("x"), Float, Err(())),
            (json!(""), Float, Ok(None)),
            (
                json!("2013-08-08 21:06:37.803826"),
                Datetime,
                ts("2013-08-08T21:06:37.803826"),
            ),
            (
                json!("2013-08-08T23:06:37+02:00"),
                Datetime,
                ts("2013-08-08T21:06:37"),
            ),
            (json!(""), Datetime, Ok(None)),
            (json!("not a date"), Datetime, Err(())),
            (json!(1375995997), Datetime, Err(())),
        ];
        for (v, dt, e) in cases {
            check(v, dt, e);
        }
    }

    #[test]
    fn float_repr_vectors() {
        for (f, s) in [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.25e-4, "0.000125"),
            (1.25e-5, "1.25e-05"),
            (-2.5e100, "-2.5e+100"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(py_float_repr(f), s);
        }
    }
}
