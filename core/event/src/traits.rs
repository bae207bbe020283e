//! [`Traits`]: an event's traits, a map from trait name to [`TraitValue`]
//! kept as one vector sorted by name.
//!
//! An event has a handful to a few dozen traits, is built once (the
//! distiller produces them already in name order) and read many times, so a
//! sorted vector beats a `BTreeMap`: one allocation instead of one per node,
//! no sorting or deduplication when it is built in order, a linear drop, and
//! binary-search lookups. The API follows `BTreeMap`'s (`get`, `insert`,
//! `remove`, `iter` in name order, `map["name"]`, `collect()` where the last
//! of repeated names wins), so it reads the same at every use.

use std::fmt;
use std::ops::Index;

use crate::{SmolStr, TraitValue};

/// Trait name → value, sorted by name, names unique.
#[derive(Clone, Default, PartialEq)]
pub struct Traits {
    entries: Vec<(SmolStr, TraitValue)>,
}

/// Iterator over `(&name, &value)` in name order.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, (SmolStr, TraitValue)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a SmolStr, &'a TraitValue);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Traits {
    pub fn new() -> Self {
        Traits {
            entries: Vec::new(),
        }
    }

    /// Entries already sorted by name with no repeated name (what the
    /// distiller builds). The order is checked in debug builds only: an
    /// unsorted vector makes lookups miss but is otherwise harmless.
    pub fn from_sorted_vec(entries: Vec<(SmolStr, TraitValue)>) -> Self {
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "Traits::from_sorted_vec: names not sorted and unique"
        );
        Traits { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&TraitValue> {
        self.position(name).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut TraitValue> {
        self.position(name).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Set a trait; returns the value it replaces.
    pub fn insert(&mut self, name: SmolStr, value: TraitValue) -> Option<TraitValue> {
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (name, value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<TraitValue> {
        self.position(name).ok().map(|i| self.entries.remove(i).1)
    }

    /// `(&name, &value)` in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &SmolStr> + ExactSizeIterator {
        self.entries.iter().map(|(n, _)| n)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &TraitValue> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The entries, sorted by name.
    pub fn as_slice(&self) -> &[(SmolStr, TraitValue)] {
        &self.entries
    }
}

impl fmt::Debug for Traits {
    /// Like a map (`{"name": value, ...}`), as `BTreeMap` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Index<&str> for Traits {
    type Output = TraitValue;

    /// # Panics
    /// When there is no trait `name` (like `BTreeMap`).
    fn index(&self, name: &str) -> &TraitValue {
        self.get(name)
            .unwrap_or_else(|| panic!("no trait named {name:?}"))
    }
}

impl<K: Into<SmolStr>> FromIterator<(K, TraitValue)> for Traits {
    /// Any order; of repeated names the last one wins (like `BTreeMap`).
    fn from_iter<I: IntoIterator<Item = (K, TraitValue)>>(iter: I) -> Self {
        let mut entries: Vec<(SmolStr, TraitValue)> =
            iter.into_iter().map(|(k, v)| (k.into(), v)).collect();
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            // stable: repeated names stay in input order, then the last wins
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out: Vec<(SmolStr, TraitValue)> = Vec::with_capacity(entries.len());
            for e in entries {
                match out.last_mut() {
                    Some(last) if last.0 == e.0 => *last = e,
                    _ => out.push(e),
                }
            }
            entries = out;
        }
        Traits { entries }
    }
}

impl<K: Into<SmolStr>> Extend<(K, TraitValue)> for Traits {
    fn extend<I: IntoIterator<Item = (K, TraitValue)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k.into(), v);
        }
    }
}

impl<K: Into<SmolStr>, const N: usize> From<[(K, TraitValue); N]> for Traits {
    fn from(list: [(K, TraitValue); N]) -> Self {
        list.into_iter().collect()
    }
}

impl IntoIterator for Traits {
    type Item = (SmolStr, TraitValue);
    type IntoIter = std::vec::IntoIter<(SmolStr, TraitValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Traits {
    type Item = (&'a SmolStr, &'a TraitValue);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn t(i: i64) -> TraitValue {
        TraitValue::Int(i)
    }

    #[test]
    fn behaves_like_a_btreemap() {
        let input = [("b", 1), ("a", 2), ("c", 3), ("a", 4), ("", 5), ("b", 6)];
        let ours: Traits = input.iter().map(|(k, v)| (*k, t(*v))).collect();
        let theirs: BTreeMap<&str, TraitValue> = input.iter().map(|(k, v)| (*k, t(*v))).collect();
        let pairs = |m: &Traits| {
            m.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<Vec<_>>()
        };
        let expected: Vec<_> = theirs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(pairs(&ours), expected);
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        assert_eq!(ours.len(), 4);
        assert_eq!(ours["a"], t(4));
        assert_eq!(ours.get("z"), None);
        assert!(ours.contains_key(""));

        let mut m = ours.clone();
        assert_eq!(m.insert("bb".into(), t(7)), None);
        assert_eq!(m.insert("a".into(), t(8)), Some(t(4)));
        assert_eq!(m.remove("c"), Some(t(3)));
        assert_eq!(m.remove("c"), None);
        assert_eq!(
            m.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["", "a", "b", "bb"]
        );
        assert_eq!(
            m.values().cloned().collect::<Vec<_>>(),
            [t(5), t(8), t(6), t(7)]
        );
        *m.get_mut("b").unwrap() = t(9);
        m.extend([("0", t(0))]);
        let owned: Vec<(SmolStr, TraitValue)> = m.clone().into_iter().collect();
        assert_eq!(owned[0], ("".into(), t(5)));
        assert_eq!(owned[1], ("0".into(), t(0)));
        assert_eq!(owned[3].1, t(9));
        assert_eq!(Traits::from_sorted_vec(owned), m);
        assert_ne!(m, ours);
        assert_eq!(Traits::from([("x", t(1))]).len(), 1);
        assert!(Traits::new().is_empty());
    }
}
