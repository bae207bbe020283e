//! timex: the StackTach time-expression language (`$last + 1h`, `day`, `$a to $b`), pure.
//!
//! Skeleton: the public API is final, the bodies are being filled in.
use std::collections::{BTreeMap, HashMap};

pub use stv3_event::Timestamp;

/// Errors of the lexer, the parser and the evaluation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimexError {
    #[error("timex lexer error at column {column}: {message} in {input:?}")]
    Lex { column: usize, message: String, input: String },
    #[error("timex parse error at column {column}: {message} in {input:?}")]
    Parse { column: usize, message: String, input: String },
    #[error("timex: variable ${0} is not defined")]
    UndefinedVariable(String),
    #[error("timex: unknown function {0}")]
    UnknownFunction(String),
    #[error("timex: invalid duration: {0}")]
    InvalidDuration(String),
}

/// A parsed time expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    src: String,
}

/// Parse a time expression once; evaluate it many times with [`Expr::eval`].
pub fn parse(src: &str) -> Result<Expr, TimexError> {
    Ok(Expr { src: src.to_string() })
}

/// The variables visible to an expression.
pub trait Vars {
    fn get(&self, name: &str) -> Option<Timestamp>;
}

impl Vars for BTreeMap<String, Timestamp> {
    fn get(&self, name: &str) -> Option<Timestamp> {
        BTreeMap::get(self, name).copied()
    }
}
impl Vars for HashMap<String, Timestamp> {
    fn get(&self, name: &str) -> Option<Timestamp> {
        HashMap::get(self, name).copied()
    }
}
impl Vars for [(&str, Timestamp)] {
    fn get(&self, name: &str) -> Option<Timestamp> {
        self.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }
}

impl Expr {
    /// Evaluate; `$timestamp` defaults to the wall clock.
    pub fn eval(&self, vars: &dyn Vars) -> Result<TimeMatcher, TimexError> {
        self.eval_at(vars, stv3_event::now())
    }
    /// Evaluate; `$timestamp` defaults to `now` when `vars` does not bind it.
    pub fn eval_at(&self, _vars: &dyn Vars, _now: Timestamp) -> Result<TimeMatcher, TimexError> {
        Err(TimexError::InvalidDuration(format!("not implemented yet: {}", self.src)))
    }
}

/// A half-open time range `[begin, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub begin: Timestamp,
    pub end: Timestamp,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMatcher {
    Timestamp(Timestamp),
    Range(TimeRange),
}

impl TimeMatcher {
    pub fn timestamp(&self) -> Timestamp {
        self.begin()
    }
    pub fn begin(&self) -> Timestamp {
        match self {
            TimeMatcher::Timestamp(t) => *t,
            TimeMatcher::Range(r) => r.begin,
        }
    }
    pub fn end(&self) -> Timestamp {
        match self {
            TimeMatcher::Timestamp(t) => *t,
            TimeMatcher::Range(r) => r.end,
        }
    }
    pub fn matches(&self, t: Timestamp) -> bool {
        match self {
            TimeMatcher::Timestamp(x) => *x == t,
            TimeMatcher::Range(r) => r.begin <= t && t < r.end,
        }
    }
    pub fn is_truthy(&self) -> bool {
        match self {
            TimeMatcher::Timestamp(_) => true,
            TimeMatcher::Range(r) => r.end > r.begin,
        }
    }
}
