//! Read-only views of JSON documents.
//!
//! The distiller walks notifications through the [`JsonNode`] trait, which is
//! implemented for `serde_json::Value` (the public API) and for [`Doc`], a
//! borrowed tree that the bytes hot path builds straight from the input
//! buffer: strings without escapes are not copied and objects are plain
//! vectors in document order (no hashing), which is several times cheaper than
//! building a `serde_json::Value`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A scalar or container seen through [`JsonNode::view`].
pub enum View<'n> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'n str),
    Array,
    Object,
}

/// The operations the path walker, the converters and the plugins need.
pub trait JsonNode {
    fn view(&self) -> View<'_>;
    /// Member `key` of an object (the last one when a key repeats, like
    /// Python's `json.loads`). `None` for non-objects.
    fn get(&self, key: &str) -> Option<&Self>;
    /// Elements of an array (empty for non-arrays).
    fn items(&self) -> &[Self]
    where
        Self: Sized;
    /// Calls `f` for every member of an object, in document order.
    fn for_each_member<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s Self));
    /// An owned `serde_json::Value` copy (given to plugins).
    fn to_value(&self) -> Value;

    fn is_null(&self) -> bool {
        matches!(self.view(), View::Null)
    }
    fn as_str(&self) -> Option<&str> {
        match self.view() {
            View::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl JsonNode for Value {
    fn view(&self) -> View<'_> {
        match self {
            Value::Null => View::Null,
            Value::Bool(b) => View::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    View::Int(i)
                } else if let Some(u) = n.as_u64() {
                    View::UInt(u)
                } else {
                    View::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => View::Str(s),
            Value::Array(_) => View::Array,
            Value::Object(_) => View::Object,
        }
    }
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(key),
            _ => None,
        }
    }
    fn items(&self) -> &[Value] {
        match self {
            Value::Array(a) => a,
            _ => &[],
        }
    }
    fn for_each_member<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s Value)) {
        if let Value::Object(m) = self {
            for (k, v) in m {
                f(k, v);
            }
        }
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// A borrowed JSON tree: strings point into the input when they have no
/// escapes, objects keep their members in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Doc<'a>>),
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

impl<'a> Doc<'a> {
    /// Parse one JSON document from `bytes` (which the result borrows).
    pub fn parse(bytes: &'a [u8]) -> Result<Doc<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Parse a JSON document held in a string.
    pub fn parse_str(s: &'a str) -> Result<Doc<'a>, serde_json::Error> {
        serde_json::from_str(s)
    }
}

impl JsonNode for Doc<'_> {
    fn view(&self) -> View<'_> {
        match self {
            Doc::Null => View::Null,
            Doc::Bool(b) => View::Bool(*b),
            Doc::Int(i) => View::Int(*i),
            Doc::UInt(u) => View::UInt(*u),
            Doc::Float(f) => View::Float(*f),
            Doc::Str(s) => View::Str(s),
            Doc::Array(_) => View::Array,
            Doc::Object(_) => View::Object,
        }
    }
    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Doc::Object(members) => {
                let (len, first) = (key.len(), key.as_bytes().first());
                // cheap rejections before the byte comparison
                members
                    .iter()
                    .rev()
                    .find(|(k, _)| {
                        k.len() == len && k.as_bytes().first() == first && k.as_ref() == key
                    })
                    .map(|(_, v)| v)
            }
            _ => None,
        }
    }
    fn items(&self) -> &[Self] {
        match self {
            Doc::Array(a) => a,
            _ => &[],
        }
    }
    fn for_each_member<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s Self)) {
        if let Doc::Object(members) = self {
            // Python dicts (and serde_json's ordered map) keep the last value
            // of a repeated key at the position of the first.
            for (i, (k, v)) in members.iter().enumerate() {
                if members[..i].iter().any(|(k0, _)| k0 == k) {
                    continue;
                }
                let last = members[i + 1..]
                    .iter()
                    .rev()
                    .find(|(k2, _)| k2 == k)
                    .map_or(v, |(_, v2)| v2);
                f(k, last);
            }
        }
    }
    fn to_value(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Int(i) => Value::from(*i),
            Doc::UInt(u) => Value::from(*u),
            Doc::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Doc::Str(s) => Value::String(s.to_string()),
            Doc::Array(a) => Value::Array(a.iter().map(|d| d.to_value()).collect()),
            Doc::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(k.to_string(), v.to_value());
                }
                Value::Object(out)
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Doc<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor(std::marker::PhantomData))
    }
}

/// Wrapper so object keys borrow from the input when they can.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

struct DocVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for DocVisitor<'a> {
    type Value = Doc<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Doc<'a>, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc<'a>, E> {
        Ok(Doc::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Doc<'a>, E> {
        Ok(Doc::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Doc<'a>, E> {
        Ok(Doc::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Doc<'a>, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Doc::Int(i),
            Err(_) => Doc::UInt(v),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Doc<'a>, E> {
        Ok(Doc::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Doc<'a>, E> {
        Ok(Doc::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Doc<'a>, E> {
        Ok(Doc::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Doc<'a>, E> {
        Ok(Doc::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'a>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<Doc<'a>>()? {
            out.push(item);
        }
        Ok(Doc::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'a>, A::Error> {
        let mut out = Vec::with_capacity(8);
        while let Some(Key(k)) = map.next_key::<Key<'a>>()? {
            let v = map.next_value::<Doc<'a>>()?;
            out.push((k, v));
        }
        Ok(Doc::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_and_value_agree() {
        let src = br#"{"a":1,"b":"x\"y","c":[true,null,2.5],"d":{"e":18446744073709551615},"a":2}"#;
        let doc = Doc::parse(src).unwrap();
        let val: Value = serde_json::from_slice(src).unwrap();
        assert_eq!(doc.to_value(), val);
        assert!(matches!(doc.get("a").unwrap().view(), View::Int(2)));
        assert_eq!(doc.get("b").unwrap().as_str(), Some("x\"y"));
        assert!(matches!(doc.get("b").unwrap(), Doc::Str(Cow::Owned(_))));
        let mut keys = vec![];
        doc.for_each_member(&mut |k, _| keys.push(k.to_string()));
        assert_eq!(keys, ["a", "b", "c", "d"]);
        assert!(matches!(
            doc.get("d").unwrap().get("e").unwrap().view(),
            View::UInt(u64::MAX)
        ));
    }
}
