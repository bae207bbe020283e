//! The set of recently archived message_ids, so a redelivered message is not archived
//! twice (see `chain` for why this makes each archive hold exactly the published set).
//! Bounded: the oldest ids are forgotten first. Pure.

use std::collections::{HashSet, VecDeque};

#[derive(Debug, Clone)]
pub struct RecentIds {
    cap: usize,
    set: HashSet<String>,
    order: VecDeque<String>,
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
        self.set.contains(id)
    }

    /// Remember `id`; returns false if it was already known.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
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
