//! Trigger definitions and the pure trigger logic: matching an event,
//! computing its distinguishing traits, the stream expiration, and the
//! INCREMENTAL fire-criteria counters (one counter per fire criterion, kept in
//! `stream.fire_counts`; the original reloaded every stream event on each add).

use std::collections::BTreeMap;

use chrono::Duration;
use stv3_event::{Event, Timestamp, TraitValue};

use crate::criteria::Criteria;
use crate::debugger::{DebugManager, GroupRef};
use crate::store::{IngestRules, StreamAgg, StreamJoin};
use crate::stream::{stream_key, DistTraits, DistValue};
use crate::timexpr::TimeExpr;

/// One `distinguished_by` entry: a trait name, or `{trait: "<timex>"}`.
#[derive(Debug, Clone)]
pub struct DistSpec {
    pub name: String,
    pub expr: Option<TimeExpr>,
}

/// One trigger of triggers.yaml.
#[derive(Debug, Clone)]
pub struct TriggerDefinition {
    pub name: String,
    pub debug_level: u8,
    pub distinguished_by: Vec<DistSpec>,
    /// Evaluated with `$first`, `$last` (and `$timestamp` = now).
    pub expiration: TimeExpr,
    pub fire_pipeline: Option<String>,
    pub expire_pipeline: Option<String>,
    /// Added to now when the stream becomes ready to fire.
    pub fire_delay: Duration,
    pub fire_criteria: Vec<Criteria>,
    pub match_criteria: Vec<Criteria>,
    /// Parsed and kept, unused (as in the original).
    pub load_criteria: Vec<Criteria>,
    /// Line of the definition in its file (0 if built in code).
    pub line: u32,
}

/// Per-fire-criterion match counters of a stream, capped at each criterion's `number`.
/// Stored in `stream.fire_counts` as comma-separated integers (`"1,0"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FireCounts(pub Vec<u32>);

impl FireCounts {
    pub fn parse(s: Option<&str>, n: usize) -> FireCounts {
        let mut v: Vec<u32> = s
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect();
        v.resize(n, 0);
        FireCounts(v)
    }

    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Why an event could not be distinguished (the mapped source is missing or of the wrong type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("distinguishing trait {name:?} (from {source_trait:?}): {reason}")]
pub struct DistError {
    pub name: String,
    pub source_trait: String,
    pub reason: String,
}

impl TriggerDefinition {
    /// The first match criteria this event satisfies (with the §9.2 item 7 fix:
    /// the criteria's mapped source traits must exist in the event).
    pub fn match_event(&self, event: &Event) -> Option<&Criteria> {
        self.match_event_debug(event, &mut GroupRef::noop())
    }

    /// `match_event` recording into the "Match" debug group.
    pub fn match_event_debug(&self, event: &Event, group: &mut GroupRef<'_>) -> Option<&Criteria> {
        for d in &self.distinguished_by {
            if event.get(&d.name).is_none() {
                group.mismatch_with(|| format!("not '{}'", d.name));
                return None;
            }
        }
        for criteria in &self.match_criteria {
            if !criteria.matches(event, group) {
                continue;
            }
            // Fix of the original KeyError: the mapped source must exist too.
            if let Some(missing) = self
                .distinguished_by
                .iter()
                .map(|d| criteria.source_of(&d.name))
                .find(|src| event.get(src).is_none())
            {
                group.mismatch_with(|| format!("not '{missing}'"));
                continue;
            }
            group.matched();
            return Some(criteria);
        }
        group.mismatch("No matching criteria");
        None
    }

    /// The distinguishing trait values of `event` under `criteria`.
    pub fn distinguishing_traits(
        &self,
        event: &Event,
        criteria: &Criteria,
    ) -> Result<DistTraits, DistError> {
        let mut out = DistTraits::new();
        for d in &self.distinguished_by {
            let src = criteria.source_of(&d.name);
            let err = |reason: String| DistError {
                name: d.name.clone(),
                source_trait: src.to_string(),
                reason,
            };
            let value = event.get(src).ok_or_else(|| err("missing".into()))?;
            let dv = match &d.expr {
                None => DistValue::Trait(value),
                Some(expr) => {
                    let TraitValue::Datetime(t) = value else {
                        return Err(err(format!(
                            "a timex needs a datetime, got {}",
                            value.datatype()
                        )));
                    };
                    let m = expr
                        .eval_at(t)
                        .map_err(|e| err(format!("timex {:?}: {e}", expr.source())))?;
                    match m {
                        crate::timexpr::TimeMatch::Timestamp(ts) => {
                            DistValue::Trait(TraitValue::Datetime(ts))
                        }
                        crate::timexpr::TimeMatch::Range { begin, end } => {
                            DistValue::Range { begin, end }
                        }
                    }
                }
            };
            out.insert(d.name.clone(), dv);
        }
        Ok(out)
    }

    /// `expiration` evaluated with `$first`, `$last` and `$timestamp = now`.
    pub fn expire_timestamp(
        &self,
        first: Timestamp,
        last: Timestamp,
        now: Timestamp,
    ) -> Result<Timestamp, String> {
        let mut vars = BTreeMap::new();
        vars.insert("first".to_string(), first);
        vars.insert("last".to_string(), last);
        vars.insert("timestamp".to_string(), now);
        self.expiration.eval(&vars).map(|m| m.timestamp())
    }

    /// now + fire_delay.
    pub fn fire_timestamp(&self, now: Timestamp) -> Timestamp {
        now + self.fire_delay
    }

    /// Count `event` against each fire criterion (capped at `number`). Returns
    /// true when every criterion has reached its number ("should fire").
    pub fn update_fire_counts(
        &self,
        counts: &mut FireCounts,
        event: &Event,
        group: &mut GroupRef<'_>,
    ) -> bool {
        counts.0.resize(self.fire_criteria.len(), 0);
        for (c, n) in self.fire_criteria.iter().zip(counts.0.iter_mut()) {
            if *n < c.number && c.matches(event, group) {
                *n += 1;
            }
        }
        let ready = self.fire_ready(counts);
        if ready {
            group.matched();
        } else {
            group.mismatch("Not enough matching criteria");
        }
        ready
    }

    /// All fire criteria reached their number.
    pub fn fire_ready(&self, counts: &FireCounts) -> bool {
        self.fire_criteria
            .iter()
            .enumerate()
            .all(|(i, c)| counts.0.get(i).copied().unwrap_or(0) >= c.number)
    }

    /// The original non-incremental `should_fire` over all stream events (tests, parity).
    pub fn should_fire(&self, events: &[Event]) -> bool {
        let mut counts = FireCounts::default();
        let mut ready = self.fire_criteria.is_empty();
        for e in events {
            ready = self.update_fire_counts(&mut counts, e, &mut GroupRef::noop());
        }
        ready
    }
}

/// The loaded triggers, in config order, with their debuggers.
#[derive(Debug, Default)]
pub struct TriggerSet {
    pub triggers: Vec<TriggerDefinition>,
    debug: std::sync::Mutex<DebugManager>,
}

impl TriggerSet {
    pub fn new(triggers: Vec<TriggerDefinition>) -> Self {
        let mut dm = DebugManager::new();
        for t in &triggers {
            dm.debugger(&t.name, t.debug_level);
        }
        TriggerSet {
            triggers,
            debug: std::sync::Mutex::new(dm),
        }
    }

    pub fn get(&self, name: &str) -> Option<&TriggerDefinition> {
        self.triggers.iter().find(|t| t.name == name)
    }

    /// Add triggers at runtime; a name already present is ignored (as the original).
    pub fn add(&mut self, defs: Vec<TriggerDefinition>) {
        for d in defs {
            if self.get(&d.name).is_none() {
                self.debug_manager().debugger(&d.name, d.debug_level);
                self.triggers.push(d);
            }
        }
    }

    /// Remove a trigger by name. Returns whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.triggers.len();
        self.triggers.retain(|t| t.name != name);
        before != self.triggers.len()
    }

    /// The debug manager (poison-tolerant).
    pub fn debug_manager(&self) -> std::sync::MutexGuard<'_, DebugManager> {
        self.debug.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Render and reset all debuggers (lines to log at info).
    pub fn dump_debug(&self) -> Vec<String> {
        self.debug_manager().dump()
    }

    /// Bump a counter of a trigger's debugger.
    pub fn bump(&self, trigger: usize, counter: &str) {
        if let Some(t) = self.triggers.get(trigger) {
            if t.debug_level > 0 {
                self.debug_manager()
                    .debugger(&t.name, t.debug_level)
                    .bump(counter, 1);
            }
        }
    }
}

impl IngestRules for TriggerSet {
    fn trigger_name(&self, trigger: usize) -> &str {
        self.triggers
            .get(trigger)
            .map(|t| t.name.as_str())
            .unwrap_or("")
    }

    fn plan(&self, event: &Event) -> Vec<StreamJoin> {
        let mut out = Vec::new();
        for (i, t) in self.triggers.iter().enumerate() {
            let matched = if t.debug_level > 0 {
                let mut dm = self.debug_manager();
                let d = dm.debugger(&t.name, t.debug_level);
                let mut g = d.group("Match");
                t.match_event_debug(event, &mut g)
                    .map(|c| t.distinguishing_traits(event, c))
            } else {
                t.match_event(event)
                    .map(|c| t.distinguishing_traits(event, c))
            };
            match matched {
                None => {}
                Some(Ok(dist)) => out.push(StreamJoin {
                    trigger: i,
                    key: stream_key(&t.name, &dist),
                    dist,
                }),
                Some(Err(e)) => {
                    tracing::warn!(trigger = %t.name, message_id = %event.message_id, "event not added to a stream: {e}");
                }
            }
        }
        out
    }

    fn apply(
        &self,
        trigger: usize,
        agg: &mut StreamAgg,
        event: &Event,
        new_stream: bool,
        now: Timestamp,
    ) -> Result<bool, String> {
        let t = self
            .triggers
            .get(trigger)
            .ok_or_else(|| format!("unknown trigger index {trigger}"))?;
        if new_stream {
            agg.first_event = event.generated;
            agg.last_event = event.generated;
        } else {
            agg.first_event = agg.first_event.min(event.generated);
            agg.last_event = agg.last_event.max(event.generated);
        }
        agg.event_count += 1;
        agg.expire_timestamp = Some(t.expire_timestamp(agg.first_event, agg.last_event, now)?);
        let mut became_ready = false;
        if agg.fire_timestamp.is_none() {
            let mut counts = FireCounts::parse(agg.fire_counts.as_deref(), t.fire_criteria.len());
            let ready = if t.debug_level > 0 {
                let mut dm = self.debug_manager();
                let d = dm.debugger(&t.name, t.debug_level);
                if new_stream {
                    d.bump("New stream", 1);
                }
                d.bump("Added events", 1);
                let mut g = d.group("Fire");
                t.update_fire_counts(&mut counts, event, &mut g)
            } else {
                t.update_fire_counts(&mut counts, event, &mut GroupRef::noop())
            };
            agg.fire_counts = Some(counts.render());
            if ready {
                agg.fire_timestamp = Some(t.fire_timestamp(now));
                became_ready = true;
                self.bump(trigger, "Ready to fire");
            }
        } else if t.debug_level > 0 {
            let mut dm = self.debug_manager();
            let d = dm.debugger(&t.name, t.debug_level);
            if new_stream {
                d.bump("New stream", 1);
            }
            d.bump("Added events", 1);
        }
        Ok(became_ready)
    }
}
