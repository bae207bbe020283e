//! `Vars`: the variables an expression is evaluated with (`$first`, `$last`,
//! `$timestamp`, event traits), implemented for the usual maps and pair slices.
use std::collections::{BTreeMap, HashMap};

use crate::Timestamp;

/// The variables visible to an expression.
pub trait Vars {
    /// The value of `$name`, if bound.
    fn get(&self, name: &str) -> Option<Timestamp>;
}

impl<V: Vars + ?Sized> Vars for &V {
    fn get(&self, name: &str) -> Option<Timestamp> {
        (**self).get(name)
    }
}

impl Vars for BTreeMap<String, Timestamp> {
    fn get(&self, name: &str) -> Option<Timestamp> {
        BTreeMap::get(self, name).copied()
    }
}

impl Vars for BTreeMap<&str, Timestamp> {
    fn get(&self, name: &str) -> Option<Timestamp> {
        BTreeMap::get(self, name).copied()
    }
}

impl<S: std::hash::BuildHasher> Vars for HashMap<String, Timestamp, S> {
    fn get(&self, name: &str) -> Option<Timestamp> {
        HashMap::get(self, name).copied()
    }
}

impl Vars for [(&str, Timestamp)] {
    fn get(&self, name: &str) -> Option<Timestamp> {
        self.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }
}

impl<const N: usize> Vars for [(&str, Timestamp); N] {
    fn get(&self, name: &str) -> Option<Timestamp> {
        Vars::get(&self[..], name)
    }
}

impl Vars for [(String, Timestamp)] {
    fn get(&self, name: &str) -> Option<Timestamp> {
        self.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }
}

impl Vars for Vec<(String, Timestamp)> {
    fn get(&self, name: &str) -> Option<Timestamp> {
        Vars::get(&self[..], name)
    }
}

/// No variables at all (only `$timestamp`, which defaults to "now").
impl Vars for () {
    fn get(&self, _name: &str) -> Option<Timestamp> {
        None
    }
}

/// `vars` with `$timestamp` defaulting to `now` when `vars` does not bind it.
pub struct WithTimestamp<'a> {
    pub vars: &'a dyn Vars,
    pub now: Timestamp,
}

impl Vars for WithTimestamp<'_> {
    fn get(&self, name: &str) -> Option<Timestamp> {
        self.vars
            .get(name)
            .or_else(|| (name == "timestamp").then_some(self.now))
    }
}
