//! A thin adapter over `stv3-timex`: a timex expression parsed once at load,
//! evaluated many times with a variable environment.

use std::collections::BTreeMap;
use std::fmt;

use stv3_event::Timestamp;

/// The result of evaluating a timex expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMatch {
    /// A single instant; `matches` is equality.
    Timestamp(Timestamp),
    /// A half-open range `[begin, end)`.
    Range { begin: Timestamp, end: Timestamp },
}

impl TimeMatch {
    /// The instant (`begin` for a range), as the original's `.timestamp`.
    pub fn timestamp(&self) -> Timestamp {
        match self {
            TimeMatch::Timestamp(t) => *t,
            TimeMatch::Range { begin, .. } => *begin,
        }
    }

    pub fn begin(&self) -> Timestamp {
        self.timestamp()
    }

    pub fn end(&self) -> Timestamp {
        match self {
            TimeMatch::Timestamp(t) => *t,
            TimeMatch::Range { end, .. } => *end,
        }
    }

    /// `t in self`: equality for an instant, `begin <= t < end` for a range.
    pub fn matches(&self, t: Timestamp) -> bool {
        match self {
            TimeMatch::Timestamp(x) => *x == t,
            TimeMatch::Range { begin, end } => *begin <= t && t < *end,
        }
    }
}

/// A parsed timex expression with its source text.
#[derive(Clone)]
pub struct TimeExpr {
    src: String,
    expr: stv3_timex::Expr,
}

impl fmt::Debug for TimeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeExpr({:?})", self.src)
    }
}

impl TimeExpr {
    /// Parse once (at config load). The error is the timex message.
    pub fn parse(src: &str) -> Result<Self, String> {
        let expr = stv3_timex::parse(src).map_err(|e| e.to_string())?;
        Ok(TimeExpr {
            src: src.to_string(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    /// Evaluate with the given variables. An undefined variable is an error.
    /// `$timestamp` defaults to the wall clock when not bound (as the original).
    pub fn eval(&self, vars: &BTreeMap<String, Timestamp>) -> Result<TimeMatch, String> {
        let m = self.expr.eval(vars).map_err(|e| e.to_string())?;
        Ok(if m.is_range() {
            TimeMatch::Range {
                begin: m.begin(),
                end: m.end(),
            }
        } else {
            TimeMatch::Timestamp(m.timestamp())
        })
    }

    /// Evaluate with a single `$timestamp` binding.
    pub fn eval_at(&self, timestamp: Timestamp) -> Result<TimeMatch, String> {
        let mut vars = BTreeMap::new();
        vars.insert("timestamp".to_string(), timestamp);
        self.eval(&vars)
    }
}
