//! Per-trigger debug counters (the original `debugging.py`, §4.13).
//!
//! `debug_level` 0 keeps nothing; 1 keeps per-group check/pass counts and
//! named counters; 2 also keeps the mismatch reasons. Groups are "Match" and
//! "Fire". [`DebugManager::dump`] renders the original log lines and resets.

use std::collections::BTreeMap;

/// Check/pass counts of one group ("Match" or "Fire") and its mismatch reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub matched: u64,
    pub mismatched: u64,
    /// Reason -> count, in first-seen order.
    pub reasons: Vec<(String, u64)>,
}

impl Group {
    fn add_reason(&mut self, reason: &str) {
        if let Some(r) = self.reasons.iter_mut().find(|(r, _)| r == reason) {
            r.1 += 1;
        } else {
            self.reasons.push((reason.to_string(), 1));
        }
    }
}

/// A handle on a group that may be disabled (debug_level 0). The methods
/// mirror the original: `matched()` returns true, `mismatch()` returns false,
/// `check(v, reason)` returns `v`.
pub struct GroupRef<'a>(pub Option<&'a mut Group>);

impl GroupRef<'_> {
    /// A disabled group.
    pub fn noop() -> GroupRef<'static> {
        GroupRef(None)
    }

    pub fn matched(&mut self) -> bool {
        if let Some(g) = self.0.as_deref_mut() {
            g.matched += 1;
        }
        true
    }

    pub fn mismatch(&mut self, reason: &str) -> bool {
        if let Some(g) = self.0.as_deref_mut() {
            g.mismatched += 1;
            g.add_reason(reason);
        }
        false
    }

    /// Like `mismatch` but builds the reason only when it will be kept.
    pub fn mismatch_with(&mut self, reason: impl FnOnce() -> String) -> bool {
        if self.0.is_some() {
            let r = reason();
            return self.mismatch(&r);
        }
        false
    }

    pub fn check(&mut self, value: bool, reason: &str) -> bool {
        if value {
            self.matched()
        } else {
            self.mismatch(reason)
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }
}

/// The debugger of one trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Debugger {
    pub name: String,
    pub level: u8,
    /// Group name -> group, in first-use order.
    pub groups: Vec<(String, Group)>,
    /// Counter name -> value, in first-use order.
    pub counters: Vec<(String, u64)>,
}

impl Debugger {
    pub fn new(name: &str, level: u8) -> Self {
        Debugger {
            name: name.to_string(),
            level,
            ..Default::default()
        }
    }

    /// The group, or a disabled handle at level 0.
    pub fn group(&mut self, name: &str) -> GroupRef<'_> {
        if self.level == 0 {
            return GroupRef(None);
        }
        let idx = match self.groups.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.groups.push((name.to_string(), Group::default()));
                self.groups.len() - 1
            }
        };
        GroupRef(Some(&mut self.groups[idx].1))
    }

    pub fn bump(&mut self, counter: &str, inc: u64) {
        if self.level == 0 {
            return;
        }
        if let Some(c) = self.counters.iter_mut().find(|(n, _)| n == counter) {
            c.1 += inc;
        } else {
            self.counters.push((counter.to_string(), inc));
        }
    }

    pub fn reset(&mut self) {
        self.groups.clear();
        self.counters.clear();
    }

    /// The original dump lines (empty at level 0). Does not reset.
    pub fn render(&self) -> Vec<String> {
        if self.level == 0 {
            return Vec::new();
        }
        let mut out = vec![format!("---- Trigger Definition: {} ----", self.name)];
        for (name, g) in &self.groups {
            out.push(format!(
                "{} Criteria: {} checks, {} passed",
                name,
                g.matched + g.mismatched,
                g.matched
            ));
            if self.level > 1 {
                for (r, n) in &g.reasons {
                    out.push(format!(" - {r} = {n}"));
                }
            }
        }
        for (c, n) in &self.counters {
            out.push(format!("Counter \"{c}\" = {n}"));
        }
        out.push("----------------------------".to_string());
        out
    }
}

/// All debuggers, by trigger name. An unknown trigger ("n/a") debugs at level 2.
#[derive(Debug, Clone, Default)]
pub struct DebugManager {
    debuggers: BTreeMap<String, Debugger>,
}

impl DebugManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// The debugger for `name`, created at `level` on first use.
    pub fn debugger(&mut self, name: &str, level: u8) -> &mut Debugger {
        self.debuggers
            .entry(name.to_string())
            .or_insert_with(|| Debugger::new(name, level))
    }

    /// The debugger for a stream whose trigger definition is unknown.
    pub fn unknown(&mut self) -> &mut Debugger {
        self.debugger("n/a", 2)
    }

    pub fn get(&self, name: &str) -> Option<&Debugger> {
        self.debuggers.get(name)
    }

    /// Render every enabled debugger and reset them (the original `dump_debuggers`).
    pub fn dump(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for d in self.debuggers.values_mut() {
            if d.level == 0 {
                continue;
            }
            out.extend(d.render());
            d.reset();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_0_keeps_nothing_and_renders_nothing() {
        let mut m = DebugManager::new();
        let d = m.debugger("t", 0);
        assert!(!d.group("Match").mismatch("Wrong event type"));
        assert!(d.group("Match").matched());
        d.bump("New stream", 1);
        assert!(m.dump().is_empty());
    }

    #[test]
    fn level_1_counts_without_reasons_level_2_with() {
        for (level, expected) in [
            (
                1u8,
                vec![
                    "---- Trigger Definition: t ----",
                    "Fire Criteria: 3 checks, 1 passed",
                    "Counter \"New stream\" = 2",
                    "----------------------------",
                ],
            ),
            (
                2,
                vec![
                    "---- Trigger Definition: t ----",
                    "Fire Criteria: 3 checks, 1 passed",
                    " - Wrong event type = 2",
                    "Counter \"New stream\" = 2",
                    "----------------------------",
                ],
            ),
        ] {
            let mut m = DebugManager::new();
            let d = m.debugger("t", level);
            let mut g = d.group("Fire");
            g.mismatch("Wrong event type");
            g.check(false, "Wrong event type");
            g.check(true, "unused");
            d.bump("New stream", 1);
            d.bump("New stream", 1);
            assert_eq!(m.dump(), expected, "level {level}");
            // dump resets
            assert_eq!(
                m.dump(),
                vec![
                    "---- Trigger Definition: t ----",
                    "----------------------------"
                ]
            );
        }
    }

    #[test]
    fn unknown_trigger_debugs_at_level_2() {
        let mut m = DebugManager::new();
        m.unknown().bump("Unknown trigger def 'x'", 1);
        assert_eq!(m.get("n/a").unwrap().level, 2);
    }
}
