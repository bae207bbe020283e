//! The handler contract and the handler registry.
//!
//! **Events.** A pipeline event is a [`stv3_event::Event`]: the flat winchester
//! dict (`message_id`, `event_type`, `timestamp` = `generated`, plus typed
//! traits; [`Event::get`] looks a field up the way the dict did). Only values
//! that can be stored as traits (text, int, float, datetime) travel in events,
//! exactly what the original kept when it saved handler output (it dropped
//! bool/list/dict traits with `InvalidTraitType`). Anything else a handler wants
//! to hand to a later handler goes into the shared [`Env`] scratch map as JSON.
//!
//! **Contract** (as winchester's `PipelineHandlerBase`):
//! * `handle_events` gets the previous handler's output and returns the next
//!   input. It must have no side effects: it may be re-run after an error or a
//!   lease expiry. It is synchronous (pure CPU work); the manager runs it on a
//!   blocking thread under a timeout.
//! * `commit` runs on every handler once every `handle_events` succeeded; this is
//!   where side effects (AMQP, HTTP) happen. Errors are logged and counted.
//! * `rollback` runs on every handler when any `handle_events` failed.
//!
//! **Registry.** [`Registry`] maps a handler class to a constructor taking the
//! `params` of a pipelines.yaml entry. Original class strings
//! (`winchester.pipeline_handler:UsageHandler`) and short names (`usage`) both
//! resolve. Adding a handler = one file under `handlers/` + one `register` line
//! in [`Registry::builtin`].

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
pub use stv3_event::Event;

use crate::handlers::HandlerContext;

/// A pipeline event (see the module docs).
pub type PipelineEvent = Event;

/// Parameters of one pipelines.yaml handler entry (`params:`), as JSON.
pub type Params = Map<String, Value>;

/// The scratch space shared by all the handlers of one pipeline run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Env {
    /// `env['stream_id']`.
    pub stream_id: i64,
    /// `env['stream_name']` (the trigger name).
    pub stream_name: String,
    /// Every other key (e.g. `usage_notifications`), as JSON.
    pub data: BTreeMap<String, Value>,
}

impl Env {
    pub fn new(stream_id: i64, stream_name: impl Into<String>) -> Self {
        Env {
            stream_id,
            stream_name: stream_name.into(),
            data: BTreeMap::new(),
        }
    }

    /// `env.get(key, [])` for a list-valued key: the JSON array items, or none.
    pub fn list(&self, key: &str) -> Vec<Value> {
        match self.data.get(key) {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![other.clone()],
        }
    }
}

/// A failure inside a handler (handle_events, commit or rollback).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    pub fn new(msg: impl Into<String>) -> Self {
        HandlerError(msg.into())
    }
}

/// A bad `params` block (reported at load time with the pipelines.yaml location).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// One pipeline handler. A new instance is built for every stream run.
pub trait Handler: Send {
    /// Process the events (no side effects). Returns the events for the next handler.
    fn handle_events(
        &mut self,
        events: Vec<PipelineEvent>,
        env: &mut Env,
    ) -> Result<Vec<PipelineEvent>, HandlerError>;

    /// Perform side effects after every handler succeeded.
    fn commit(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(async { Ok(()) })
    }

    /// Undo or forget pending work after a failure.
    fn rollback(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Builds a handler from its params.
pub type Constructor =
    Arc<dyn Fn(&Params, &HandlerContext) -> Result<Box<dyn Handler>, ParamError> + Send + Sync>;

/// Handler classes by name.
#[derive(Clone, Default)]
pub struct Registry {
    classes: BTreeMap<String, Constructor>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.classes.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The built-in handlers under their short names and their original class strings.
    pub fn builtin() -> Self {
        use crate::handlers::{atompub, journal, logging, notabene, usage};
        let mut r = Registry::empty();
        r.register("logging", &["logger", "LoggingHandler"], logging::construct);
        r.register("usage", &["UsageHandler"], usage::construct);
        r.register("notabene", &["NotabeneHandler"], notabene::construct);
        r.register("atompub", &["AtomPubHandler"], atompub::construct);
        r.register("journal", &["JournalHandler"], journal::construct);
        r
    }

    /// Register `ctor` as `name`, plus `aliases`. A `FooHandler` alias is also
    /// reachable as `winchester.pipeline_handler:FooHandler`.
    pub fn register<F>(&mut self, name: &str, aliases: &[&str], ctor: F)
    where
        F: Fn(&Params, &HandlerContext) -> Result<Box<dyn Handler>, ParamError>
            + Send
            + Sync
            + 'static,
    {
        let ctor: Constructor = Arc::new(ctor);
        self.classes.insert(name.to_string(), ctor.clone());
        for alias in aliases {
            self.classes.insert(alias.to_string(), ctor.clone());
            if alias.ends_with("Handler") {
                self.classes
                    .insert(format!("winchester.pipeline_handler:{alias}"), ctor.clone());
            }
        }
    }

    /// Find a class by short name, `module:Class` or bare `Class`.
    pub fn resolve(&self, class: &str) -> Option<Constructor> {
        let class = class.trim();
        if let Some(c) = self.classes.get(class) {
            return Some(c.clone());
        }
        // "some.other.module:UsageHandler" or "module.UsageHandler": match on the class part.
        let tail = class.rsplit([':', '.']).next().unwrap_or(class);
        self.classes.get(tail).cloned()
    }

    /// Every registered name (for error messages).
    pub fn names(&self) -> Vec<String> {
        self.classes.keys().cloned().collect()
    }
}

/// Convenience for params: an optional string.
pub fn param_str(params: &Params, key: &str) -> Result<Option<String>, ParamError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(ParamError(format!(
            "param '{key}' must be a string, got {other}"
        ))),
    }
}

/// Convenience for params: an optional list of strings (a single string is a one-item list).
pub fn param_str_list(params: &Params, key: &str) -> Result<Option<Vec<String>>, ParamError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(ParamError(format!(
                    "param '{key}' must be a list of strings, got item {other}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ParamError(format!(
            "param '{key}' must be a list of strings, got {other}"
        ))),
    }
}

/// The largest numeric param: they are seconds or counts, and a larger one
/// made `Duration::from_secs_f64` panic in the middle of a run.
pub const MAX_PARAM_F64: f64 = 1e9;

/// Convenience for params: an optional non-negative number (int, float or numeric string).
pub fn param_f64(params: &Params, key: &str) -> Result<Option<f64>, ParamError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| (0.0..=MAX_PARAM_F64).contains(x))
            .map(Some)
            .ok_or_else(|| {
                ParamError(format!(
                    "param '{key}' must be a non-negative number up to {MAX_PARAM_F64:e}, got {n}"
                ))
            }),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| (0.0..=MAX_PARAM_F64).contains(x))
            .map(Some)
            .ok_or_else(|| {
                ParamError(format!(
                    "param '{key}' must be a non-negative number up to {MAX_PARAM_F64:e}, got {s:?}"
                ))
            }),
        Some(other) => Err(ParamError(format!(
            "param '{key}' must be a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_original_class_strings_and_short_names() {
        let r = Registry::builtin();
        let check = |class: &str, ok: bool| assert_eq!(r.resolve(class).is_some(), ok, "{class}");
        check("winchester.pipeline_handler:LoggingHandler", true);
        check("winchester.pipeline_handler:UsageHandler", true);
        check("winchester.pipeline_handler:NotabeneHandler", true);
        check("winchester.pipeline_handler:AtomPubHandler", true);
        check("logging", true);
        check("logger", true);
        check("usage", true);
        check("notabene", true);
        check("atompub", true);
        check("winchester.pipeline_handler:NoSuchHandler", false);
        check("nosuch", false);
        check("", false);
    }

    #[test]
    fn params_helpers() {
        let p: Params =
            serde_json::from_str(r#"{"a":"x","n":5,"l":["p","q"],"s":"2.5","bad":-1,"o":{}}"#)
                .unwrap();
        assert_eq!(param_str(&p, "a").unwrap().as_deref(), Some("x"));
        assert_eq!(param_str(&p, "n").unwrap().as_deref(), Some("5"));
        assert!(param_str(&p, "o").is_err());
        assert_eq!(param_str(&p, "missing").unwrap(), None);
        assert_eq!(param_str_list(&p, "l").unwrap().unwrap(), vec!["p", "q"]);
        assert_eq!(param_str_list(&p, "a").unwrap().unwrap(), vec!["x"]);
        assert_eq!(param_f64(&p, "s").unwrap(), Some(2.5));
        assert!(param_f64(&p, "bad").is_err());
        let huge: Params = serde_json::from_str(r#"{"a": 1e300, "b": "1e10", "c": 1e9}"#).unwrap();
        assert!(param_f64(&huge, "a").is_err());
        assert!(param_f64(&huge, "b").is_err());
        assert_eq!(param_f64(&huge, "c").unwrap(), Some(1e9));
    }
}
