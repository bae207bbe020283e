//! Worker statistics with the original counter names (spec §4.13).
//!
//! Counters are kept per trigger name (streams of an unknown trigger use
//! `n/a`) and dumped every `statistics_period` as
//! `---- Trigger Definition: <name> ----` / `Counter "<name>" = <n>`, after the
//! `Loaded N streams. Fired F, Expired E.` line, then reset. Every bump is also
//! a Prometheus counter `stv3_pipeline_events_total{trigger,counter}`.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<String, BTreeMap<String, u64>>,
    loaded: u64,
    fired: u64,
    expired: u64,
}

/// Thread-safe counter book.
#[derive(Debug, Default)]
pub struct Stats(Mutex<Inner>);

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bump `counter` for trigger `trigger`.
    pub fn bump(&self, trigger: &str, counter: &str) {
        let mut g = self.0.lock().expect("stats lock");
        *g.counters
            .entry(trigger.to_string())
            .or_default()
            .entry(counter.to_string())
            .or_default() += 1;
        metrics::counter!("stv3_pipeline_events_total", "trigger" => trigger.to_string(), "counter" => counter.to_string())
            .increment(1);
    }

    pub fn loaded(&self, n: u64) {
        self.0.lock().expect("stats lock").loaded += n;
        metrics::counter!("stv3_pipeline_streams_loaded_total").increment(n);
    }

    pub fn fired(&self) {
        self.0.lock().expect("stats lock").fired += 1;
        metrics::counter!("stv3_pipeline_streams_fired_total").increment(1);
    }

    pub fn expired(&self) {
        self.0.lock().expect("stats lock").expired += 1;
        metrics::counter!("stv3_pipeline_streams_expired_total").increment(1);
    }

    /// A counter's current value (tests).
    pub fn get(&self, trigger: &str, counter: &str) -> u64 {
        let g = self.0.lock().expect("stats lock");
        g.counters
            .get(trigger)
            .and_then(|c| c.get(counter))
            .copied()
            .unwrap_or(0)
    }

    /// Render the stats lines and reset.
    pub fn take_report(&self) -> Vec<String> {
        let mut g = self.0.lock().expect("stats lock");
        let mut lines = vec![format!(
            "Loaded {} streams. Fired {}, Expired {}.",
            g.loaded, g.fired, g.expired
        )];
        for (trigger, counters) in &g.counters {
            lines.push(format!("---- Trigger Definition: {trigger} ----"));
            for (name, n) in counters {
                lines.push(format!("Counter \"{name}\" = {n}"));
            }
        }
        *g = Inner::default();
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_format_and_reset() {
        let s = Stats::new();
        s.loaded(3);
        s.fired();
        s.bump("t1", "Streams fired");
        s.bump("t1", "Commit successful");
        s.bump("t1", "Commit successful");
        s.bump("n/a", "Unknown trigger def 'zz'");
        assert_eq!(
            s.take_report(),
            [
                "Loaded 3 streams. Fired 1, Expired 0.",
                "---- Trigger Definition: n/a ----",
                "Counter \"Unknown trigger def 'zz'\" = 1",
                "---- Trigger Definition: t1 ----",
                "Counter \"Commit successful\" = 2",
                "Counter \"Streams fired\" = 1",
            ]
        );
        assert_eq!(s.take_report(), ["Loaded 0 streams. Fired 0, Expired 0."]);
    }
}
