//! The set of recently archived message_ids, so a redelivered message is not archived
//! twice (see `chain` for why this makes each archive hold exactly the published set).
//! Bounded: the oldest ids are forgotten first. Pure.

use std::collections::{HashSet, VecDeque};

/// A message_id as the window keeps it: a UUID in canonical lowercase text form
/// as its 128 bits (no heap allocation; notifications' ids are nearly all such),
/// any other id as its text. Two keys are equal exactly when the ids are:
/// only the one text form of a UUID is packed, so `ABC…` and `abc…` stay apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Uuid(u128),
    Text(Box<str>),
}

impl Key {
    fn of(id: &str) -> Key {
        uuid_bits(id).map_or_else(|| Key::Text(id.into()), Key::Uuid)
    }
}

/// The bits of `8-4-4-4-12` lowercase hex, or `None` for any other text.
fn uuid_bits(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

#[derive(Debug, Clone)]
pub struct RecentIds {
    cap: usize,
    set: HashSet<Key>,
    order: VecDeque<Key>,
}

impl RecentIds {
    pub fn new(cap: usize) -> Self {
        RecentIds {
            cap: cap.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(&Key::of(id))
    }

    /// Remember `id`; returns false if it was already known.
    pub fn insert(&mut self, id: &str) -> bool {
        let key = Key::of(id);
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The message_id of an archived line (plain or region-wrapped), if it has one.
pub fn message_id_of_line(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let n = if v.get("notification").is_some_and(|n| n.is_object()) && v.get("message_id").is_none()
    {
        v.get("notification")?
    } else {
        &v
    };
    n.get("message_id")
        .and_then(|m| m.as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_set() {
        let mut r = RecentIds::new(2);
        assert!(r.insert("a"));
        assert!(!r.insert("a"));
        assert!(r.insert("b"));
        assert!(r.insert("c"));
        assert!(!r.contains("a"), "oldest forgotten");
        assert!(r.contains("b") && r.contains("c"));
        assert_eq!(r.len(), 2);
    }

    fn check_same(a: &str, b: &str, same: bool) {
        let mut r = RecentIds::new(8);
        r.insert(a);
        assert_eq!(r.contains(b), same, "{a:?} vs {b:?}");
        assert_eq!(!r.insert(b), same, "{a:?} then {b:?}");
    }

    #[test]
    fn uuid_ids_are_packed_without_merging_other_texts() {
        let u = "8f81e4b2-2a3c-4d5e-9f60-0123456789ab";
        assert_eq!(uuid_bits(u), Some(0x8f81e4b2_2a3c_4d5e_9f60_0123456789ab));
        assert_eq!(uuid_bits("00000000-0000-0000-0000-000000000000"), Some(0));
        check_same(u, u, true);
        // Other spellings of the same bits are other ids.
        check_same(u, &u.to_uppercase(), false);
        check_same(u, &u.replace('-', ""), false);
        check_same(u, &format!("{{{u}}}"), false);
        check_same(u, "8f81e4b2-2a3c-4d5e-9f60-0123456789ac", false);
        // Not UUIDs: kept as text.
        for id in [
            "8f81e4b2+2a3c-4d5e-9f60-0123456789ab",
            "8f81e4b2-2a3c-4d5e-9f60-0123456789ag",
            "m1",
            "",
            "é",
        ] {
            assert_eq!(uuid_bits(id), None, "{id}");
            check_same(id, id, true);
        }
        check_same("m1", "M1", false);
    }

    #[test]
    fn ids_from_lines() {
        let cases = [
            (r#"{"message_id":"m1","event_type":"x"}"#, Some("m1")),
            (
                r#"{"region":"r","cell":"c","notification":{"message_id":"m2"}}"#,
                Some("m2"),
            ),
            (r#"{"nope":1}"#, None),
            ("garbage", None),
        ];
        for (line, want) in cases {
            assert_eq!(message_id_of_line(line).as_deref(), want, "{line}");
        }
    }
}
