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

use crate::{to_micros, TraitValue, Traits};

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
/// type code are skipped (a newer writer); a malformed document is an error
/// that names the trait. The document is read in one pass straight into the
/// sorted entries (no intermediate JSON values); names are kept in the order
/// written, and only a document not in name order (another writer) is sorted,
/// the last of repeated names winning.
pub fn decode_traits(doc: &str) -> Result<Traits, StoredTraitsError> {
    let mut de = serde_json::Deserializer::from_str(doc);
    let mut out = serde::Deserializer::deserialize_map(&mut de, decode::DocVisitor)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| StoredTraitsError(e.to_string()))?;
    if !out.windows(2).all(|w| w[0].0 < w[1].0) {
        out.reverse();
        out.sort_by(|a, b| a.0.cmp(&b.0)); // stable: of equal names the last written comes first
        out.dedup_by(|later, first| later.0 == first.0);
    }
    Ok(Traits::from_sorted_vec(out))
}

/// The serde visitors of [`decode_traits`].
mod decode {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use crate::{from_micros, Datatype, SmolStr, TraitValue};

    pub(super) struct DocVisitor;

    impl<'de> Visitor<'de> for DocVisitor {
        type Value = Vec<(SmolStr, TraitValue)>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a traits document (a JSON object)")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(name) = map.next_key::<SmolStr>()? {
                if let Some(v) = map.next_value_seed(Member(&name))? {
                    out.push((name, v));
                }
            }
            Ok(out)
        }
    }

    /// A float: a JSON number, or `"NaN"`, `"inf"`, `"-inf"`.
    struct Float(f64);

    impl<'de> serde::Deserialize<'de> for Float {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Float;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str(r#"a number, "NaN", "inf" or "-inf""#)
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Float, E> {
                    Ok(Float(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Float, E> {
                    Ok(Float(v as f64))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Float, E> {
                    Ok(Float(v as f64))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Float, E> {
                    match s {
                        "NaN" => Ok(Float(f64::NAN)),
                        "inf" => Ok(Float(f64::INFINITY)),
                        "-inf" => Ok(Float(f64::NEG_INFINITY)),
                        _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                    }
                }
            }
            d.deserialize_any(V)
        }
    }

    /// One member's `[code, value]`; `None` for an unknown type code.
    struct Member<'a>(&'a str);

    impl<'de> DeserializeSeed<'de> for Member<'_> {
        type Value = Option<TraitValue>;

        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Member<'_> {
        type Value = Option<TraitValue>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "trait {:?} as [type code, value]", self.0)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let name = self.0;
            let bad = |e: A::Error| de::Error::custom(format_args!("trait {name:?}: {e}"));
            let missing = |i| de::Error::invalid_length(i, &self);
            let code: i32 = seq.next_element()?.ok_or_else(|| missing(0))?;
            let value = match Datatype::from_code(code) {
                Some(Datatype::Text) => seq
                    .next_element::<SmolStr>()
                    .map_err(bad)?
                    .map(TraitValue::Text),
                Some(Datatype::Int) => seq.next_element::<i64>().map_err(bad)?.map(TraitValue::Int),
                Some(Datatype::Float) => seq
                    .next_element::<Float>()
                    .map_err(bad)?
                    .map(|f| TraitValue::Float(f.0)),
                Some(Datatype::Datetime) => seq
                    .next_element::<i64>()
                    .map_err(bad)?
                    .map(|us| TraitValue::Datetime(from_micros(us))),
                _ => {
                    seq.next_element::<IgnoredAny>()?
                        .ok_or_else(|| missing(1))?;
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(None);
                }
            };
            let value = value.ok_or_else(|| missing(1))?;
            if seq.next_element::<IgnoredAny>()?.is_some() {
                return Err(de::Error::invalid_length(3, &self));
            }
            Ok(Some(value))
        }
    }
}

/// The substring that occurs in a stored document exactly when trait `name`
/// has value `v` (same type, same value). Use with `INSTR(traits, ?) > 0`.
pub fn match_fragment(name: &str, v: &TraitValue) -> String {
    let mut out = Vec::new();
    push_member(&mut out, name, v);
    into_text(out)
}

/// The key of trait `name` with value `v` in a value index that stores one
/// integer per indexed trait (SQLite's `trait_key` table): the 64-bit FNV-1a
/// hash of its [`match_fragment`], as a signed integer.
///
/// The key is stored, so this function must never change. Different values
/// can share a key (a hash collision); readers confirm a key's events against
/// the traits document, so for them a collision costs a row read, never a
/// wrong match. Events stored before documents existed are matched on the key
/// alone.
pub fn index_key(name: &str, v: &TraitValue) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut member = Vec::with_capacity(64);
    push_member(&mut member, name, v);
    let hash = member
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    hash as i64
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

    /// Keys are stored: pinned to values computed outside this code (FNV-1a
    /// 64 of the fragment, as two's complement).
    fn check_key(name: &str, v: TraitValue, expected: i64) {
        assert_eq!(index_key(name, &v), expected, "{name} {v:?}");
    }

    #[test]
    fn index_keys_are_the_fnv1a_of_the_fragment() {
        use TraitValue::*;
        let ts = parse_timestamp("2015-03-01T18:01:00Z").unwrap();
        check_key("instance_id", Text("abc".into()), -9159397992281909303);
        check_key("memory_mb", Int(512), -8450316379061254468);
        check_key("memory_mb", Float(512.0), 8709864653599247491);
        check_key("launched_at", Datetime(ts), -1300962870487884172);
        check_key("a\"b", Text("ü".into()), 8652492864881928560);
        // The type is part of the key.
        check_key("n", Text("5".into()), 4488047392836217007);
        check_key("n", Int(5), -9154107782363865354);
    }

    fn check_decode(doc: &str, expected: Result<&[(&str, TraitValue)], &str>) {
        match (decode_traits(doc), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, traits(want), "{doc}"),
            (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{doc}: {e}"),
            (got, want) => panic!("{doc}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn decodes_every_shape_and_names_the_bad_trait() {
        use TraitValue::*;
        let ts = parse_timestamp("2015-03-01T18:01:00Z").unwrap();
        check_decode(r#"{"f":[3,2048]}"#, Ok(&[("f", Float(2048.0))]));
        check_decode(r#"{"f":[3,-1.5e3]}"#, Ok(&[("f", Float(-1500.0))]));
        check_decode(r#"{"t":[4,1425232860000000]}"#, Ok(&[("t", Datetime(ts))]));
        check_decode(
            r#"{"a\"b":[1,"\u00fc"]}"#,
            Ok(&[("a\"b", Text("ü".into()))]),
        );
        // Another writer's order, and a repeated name (the last wins).
        check_decode(
            r#"{"b":[2,1],"a":[2,2],"b":[2,3]}"#,
            Ok(&[("a", Int(2)), ("b", Int(3))]),
        );
        // Unknown type codes are skipped whatever their value.
        check_decode(r#"{"x":[7,{"y":[1]}],"n":[2,1]}"#, Ok(&[("n", Int(1))]));
        check_decode(
            r#"{"n":[2,"x"]}"#,
            Err(r#"trait "n": invalid type: string"#),
        );
        check_decode(r#"{"n":[3,"nan"]}"#, Err(r#"trait "n""#));
        check_decode(r#"{"n":[2]}"#, Err("invalid length 1"));
        check_decode(r#"{"n":[2,1,2]}"#, Err("invalid length 3"));
        check_decode(r#"{"n":[]}"#, Err("invalid length 0"));
        check_decode(r#"{"n":[2,1]} x"#, Err("trailing characters"));
        check_decode(r#"[1]"#, Err("a traits document"));
    }
}
