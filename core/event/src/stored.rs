//! The stored form of an event's traits: one compact JSON document per event
//! (the `event.traits` column), read back in one row instead of one row per
//! trait. Shared by the winchester store (writes, reads) and the API (reads,
//! filters on traits that have no index rows).
//!
//! Format: a JSON object, keys sorted by trait name, each value `[type, v]`
//! with the [`Datatype`] code and the value: a string (text), an integer (int),
//! a number (float; non-finite floats as the strings `"NaN"`, `"inf"`,
//! `"-inf"`), or microseconds since the epoch (datetime). Example:
//! `{"instance_id":[1,"abc"],"memory_mb":[2,512],"launched_at":[4,1425232860000000]}`.
//!
//! The encoding is canonical (serde_json's escaping and float formatting are
//! deterministic), so [`match_fragment`] gives a substring that occurs in the
//! document exactly when the trait has that typed value: a quote inside a text
//! value is always escaped, so no value can forge a `"name":[` boundary.

use std::collections::BTreeMap;

use crate::{from_micros, to_micros, Datatype, TraitValue, Traits};

/// An undecodable stored traits document.
#[derive(Debug, thiserror::Error)]
#[error("stored traits: {0}")]
pub struct StoredTraitsError(String);

/// Append the JSON of a trait value (see the module docs for the format).
/// Writing into a `Vec<u8>` cannot fail.
fn push_value(out: &mut Vec<u8>, v: &TraitValue) {
    use std::io::Write;
    let _ = match v {
        TraitValue::Text(s) => serde_json::to_writer(&mut *out, s.as_str()).map_err(|_| ()),
        TraitValue::Int(i) => write!(out, "{i}").map_err(|_| ()),
        TraitValue::Float(f) if f.is_nan() => out.write_all(b"\"NaN\"").map_err(|_| ()),
        TraitValue::Float(f) if f.is_infinite() => out
            .write_all(if *f > 0.0 { b"\"inf\"" } else { b"\"-inf\"" })
            .map_err(|_| ()),
        TraitValue::Float(f) => serde_json::to_writer(&mut *out, f).map_err(|_| ()),
        TraitValue::Datetime(t) => write!(out, "{}", to_micros(t)).map_err(|_| ()),
    };
}

/// Append `"name":[code,value]`, the member text of one trait.
fn push_member(out: &mut Vec<u8>, name: &str, v: &TraitValue) {
    use std::io::Write;
    let _ = serde_json::to_writer(&mut *out, name);
    let _ = write!(out, ":[{},", v.datatype().code());
    push_value(out, v);
    out.push(b']');
}

/// The text of bytes written by the functions above (JSON of `str`s: UTF-8).
fn into_text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Encode an event's traits (sorted by name, as the map is).
pub fn encode_traits(traits: &Traits) -> String {
    let mut out = Vec::with_capacity(48 * traits.len() + 2);
    out.push(b'{');
    for (i, (name, v)) in traits.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_member(&mut out, name, v);
    }
    out.push(b'}');
    into_text(out)
}

/// Decode a document written by [`encode_traits`]. Members with an unknown
/// type code are skipped (a newer writer); a malformed document is an error.
pub fn decode_traits(doc: &str) -> Result<Traits, StoredTraitsError> {
    let raw: BTreeMap<String, (i32, serde_json::Value)> =
        serde_json::from_str(doc).map_err(|e| StoredTraitsError(e.to_string()))?;
    let mut out = Vec::with_capacity(raw.len());
    for (name, (code, v)) in raw {
        let bad = || StoredTraitsError(format!("trait {name:?}: bad value {v} for type {code}"));
        let value = match Datatype::from_code(code) {
            Some(Datatype::Text) => TraitValue::Text(v.as_str().ok_or_else(bad)?.into()),
            Some(Datatype::Int) => TraitValue::Int(v.as_i64().ok_or_else(bad)?),
            Some(Datatype::Float) => TraitValue::Float(match &v {
                serde_json::Value::String(s) if s == "NaN" => f64::NAN,
                serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
                serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
                _ => v.as_f64().ok_or_else(bad)?,
            }),
            Some(Datatype::Datetime) => {
                TraitValue::Datetime(from_micros(v.as_i64().ok_or_else(bad)?))
            }
            _ => continue,
        };
        out.push((name.into(), value));
    }
    // the keys came out of a BTreeMap: sorted and unique
    Ok(Traits::from_sorted_vec(out))
}

/// The substring that occurs in a stored document exactly when trait `name`
/// has value `v` (same type, same value). Use with `INSTR(traits, ?) > 0`.
pub fn match_fragment(name: &str, v: &TraitValue) -> String {
    let mut out = Vec::new();
    push_member(&mut out, name, v);
    into_text(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_timestamp;

    fn traits(list: &[(&str, TraitValue)]) -> Traits {
        list.iter().map(|(n, v)| (*n, v.clone())).collect()
    }

    /// Encode, check the document, decode back to the same traits.
    fn check(input: &[(&str, TraitValue)], expected_doc: &str) {
        let t = traits(input);
        let doc = encode_traits(&t);
        assert_eq!(doc, expected_doc);
        let back = decode_traits(&doc).unwrap();
        assert_eq!(back.len(), t.len());
        for (n, v) in &t {
            match (v, &back[n]) {
                (TraitValue::Float(a), TraitValue::Float(b)) if a.is_nan() => assert!(b.is_nan()),
                (a, b) => assert_eq!(a, b, "{n}"),
            }
        }
    }

    #[test]
    fn round_trips() {
        let ts = parse_timestamp("2015-03-01T18:01:00.5Z").unwrap();
        check(&[], "{}");
        check(
            &[
                ("instance_id", TraitValue::Text("abc".into())),
                ("memory_mb", TraitValue::Int(-512)),
                ("ratio", TraitValue::Float(1.0)),
                ("launched_at", TraitValue::Datetime(ts)),
            ],
            r#"{"instance_id":[1,"abc"],"launched_at":[4,1425232860500000],"memory_mb":[2,-512],"ratio":[3,1.0]}"#,
        );
        check(
            &[("q", TraitValue::Text("a\"b\\c\nü".into()))],
            r#"{"q":[1,"a\"b\\c\nü"]}"#,
        );
        check(
            &[
                ("a", TraitValue::Float(f64::NAN)),
                ("b", TraitValue::Float(f64::INFINITY)),
                ("c", TraitValue::Float(f64::NEG_INFINITY)),
                ("d", TraitValue::Float(0.1)),
            ],
            r#"{"a":[3,"NaN"],"b":[3,"inf"],"c":[3,"-inf"],"d":[3,0.1]}"#,
        );
    }

    #[test]
    fn fragments_match_only_their_own_member() {
        let doc = encode_traits(&traits(&[
            ("xname", TraitValue::Text("v".into())),
            ("text", TraitValue::Text("\"name\":[1,\"v\"]".into())),
            ("n", TraitValue::Int(5)),
        ]));
        let has = |name: &str, v: TraitValue| doc.contains(&match_fragment(name, &v));
        assert!(has("xname", TraitValue::Text("v".into())));
        // A key suffix, a value that spells a member, another type, a prefix of a number.
        assert!(!has("name", TraitValue::Text("v".into())));
        assert!(!has("n", TraitValue::Text("5".into())));
        assert!(!has("n", TraitValue::Float(5.0)));
        assert!(has("n", TraitValue::Int(5)));
        assert!(!doc.contains(&match_fragment("n", &TraitValue::Int(55))));
    }

    #[test]
    fn rejects_garbage_and_skips_unknown_types() {
        assert!(decode_traits("not json").is_err());
        assert!(decode_traits(r#"{"a":[2,"x"]}"#).is_err());
        assert_eq!(
            decode_traits(r#"{"a":[9,1],"b":[2,3]}"#).unwrap(),
            traits(&[("b", TraitValue::Int(3))])
        );
    }
}
