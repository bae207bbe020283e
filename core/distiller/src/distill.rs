//! The [`Distiller`]: picks the definition for a notification's event_type
//! (definitions scanned in reverse file order, first match wins, the
//! optional catchall last) and builds the [`Event`]: envelope
//! (`message_id`, `event_type`, `generated` from `timestamp`, else
//! `_context_timestamp`, else now) plus every trait that produced a value.
//!
//! Differences from the original, on purpose:
//! * an oslo.messaging v2 envelope (`{"oslo.version", "oslo.message": "<json>"}`)
//!   is unwrapped transparently;
//! * a trait whose conversion fails is dropped and reported in
//!   [`Diagnostics::dropped_traits`] instead of failing the notification;
//! * a missing or non-string `event_type`/`message_id`, or an unparseable
//!   timestamp, is a typed [`DistillError`] instead of an exception.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::RwLock;

use serde_json::Value;
use stv3_event::{Event, Timestamp, Traits};

use crate::definitions::{self, DefinitionError, EventDefinition};
use crate::json::{Doc, JsonNode, View};
use crate::jsonpath::{KeyPath, Source};
use crate::plugins::PluginRegistry;
use crate::scan::{Plan, PlanBuilder};

/// At most this many distinct event_types are remembered by the match cache.
const CACHE_LIMIT: usize = 4096;

/// Load-time options.
#[derive(Debug, Clone, Default)]
pub struct DistillerOptions {
    /// Append `{event_type: '*', traits: {}}` when no definition is a catchall.
    pub catchall: bool,
    pub plugins: PluginRegistry,
}

/// FxHash (rustc's hasher) for the match cache: event types are short and
/// the cache is bounded ([`CACHE_LIMIT`]), so SipHash's flooding
/// resistance buys nothing here.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.write_u64(u64::from(b));
    }
    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A notification that cannot be turned into an event at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistillError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("the notification is not a JSON object")]
    NotAnObject,
    #[error("invalid oslo.messaging v2 envelope: {0}")]
    BadEnvelope(String),
    #[error("{}missing '{field}'", prefix(.message_id))]
    Missing {
        field: &'static str,
        message_id: Option<String>,
    },
    #[error("{}'{field}' must be a string, found {found}", prefix(.message_id))]
    NotAString {
        field: &'static str,
        found: &'static str,
        message_id: Option<String>,
    },
    #[error("message {message_id}: invalid '{field}' {value}: {reason}")]
    BadTimestamp {
        field: &'static str,
        value: String,
        reason: String,
        message_id: String,
    },
}

fn prefix(message_id: &Option<String>) -> String {
    match message_id {
        Some(m) => format!("message {m}: "),
        None => String::new(),
    }
}

impl DistillError {
    /// The message_id, when the notification had a usable one.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            DistillError::Missing { message_id, .. }
            | DistillError::NotAString { message_id, .. } => message_id.as_deref(),
            DistillError::BadTimestamp { message_id, .. } => Some(message_id),
            _ => None,
        }
    }
}

/// A trait that had a value but was dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTrait {
    pub name: String,
    pub reason: String,
}

/// What else happened while distilling one notification.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostics {
    pub dropped_traits: Vec<DroppedTrait>,
    /// Neither `timestamp` nor `_context_timestamp` was usable: `generated` is now.
    pub generated_from_clock: bool,
    /// The notification came wrapped in an oslo.messaging v2 envelope.
    pub oslo_v2: bool,
}

/// The result for one notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Event {
        event: Event,
        diagnostics: Diagnostics,
    },
    /// No definition matched (the original's "Dropping Notification").
    Unmatched {
        event_type: String,
        message_id: String,
        oslo_v2: bool,
    },
}

impl Outcome {
    pub fn event(&self) -> Option<&Event> {
        match self {
            Outcome::Event { event, .. } => Some(event),
            Outcome::Unmatched { .. } => None,
        }
    }

    pub fn into_event(self) -> Option<Event> {
        match self {
            Outcome::Event { event, .. } => Some(event),
            Outcome::Unmatched { .. } => None,
        }
    }

    pub fn message_id(&self) -> &str {
        match self {
            Outcome::Event { event, .. } => &event.message_id,
            Outcome::Unmatched { message_id, .. } => message_id,
        }
    }

    pub fn dropped_traits(&self) -> &[DroppedTrait] {
        match self {
            Outcome::Event { diagnostics, .. } => &diagnostics.dropped_traits,
            Outcome::Unmatched { .. } => &[],
        }
    }
}

/// Compiled event definitions, ready to distill notifications. `Sync`: one
/// instance can serve many threads.
#[derive(Debug)]
pub struct Distiller {
    /// In match order: reversed file order, then the implicit catchall.
    definitions: Vec<EventDefinition>,
    catchall: bool,
    warnings: Vec<String>,
    cache: RwLock<HashMap<Box<str>, Option<u32>, BuildHasherDefault<FxHasher>>>,
    /// What `distill_bytes` reads from a notification.
    plan: Plan,
    envelope: Envelope,
    /// Per definition, its trait indexes in name order (so the event's
    /// traits are built as a sorted list), each with whether its name
    /// repeats the previous one's.
    by_name: Vec<Box<[(usize, bool)]>>,
}

/// The envelope members every notification is read for.
#[derive(Debug)]
struct Envelope {
    message_id: KeyPath,
    event_type: KeyPath,
    timestamp: KeyPath,
    context_timestamp: KeyPath,
    oslo_message: KeyPath,
}

impl Envelope {
    fn paths(&mut self) -> [&mut KeyPath; 5] {
        [
            &mut self.message_id,
            &mut self.event_type,
            &mut self.timestamp,
            &mut self.context_timestamp,
            &mut self.oslo_message,
        ]
    }
}

impl Distiller {
    /// Load a definitions file with the built-in plugins.
    pub fn from_file(path: impl AsRef<Path>, catchall: bool) -> Result<Distiller, DefinitionError> {
        Self::from_file_with(
            path,
            &DistillerOptions {
                catchall,
                ..Default::default()
            },
        )
    }

    pub fn from_file_with(
        path: impl AsRef<Path>,
        options: &DistillerOptions,
    ) -> Result<Distiller, DefinitionError> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|source| DefinitionError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str_with(&src, &path.display().to_string(), options)
    }

    /// Load definitions from YAML text; `origin` names it in errors.
    pub fn from_yaml_str(
        src: &str,
        origin: &str,
        catchall: bool,
    ) -> Result<Distiller, DefinitionError> {
        Self::from_yaml_str_with(
            src,
            origin,
            &DistillerOptions {
                catchall,
                ..Default::default()
            },
        )
    }

    pub fn from_yaml_str_with(
        src: &str,
        origin: &str,
        options: &DistillerOptions,
    ) -> Result<Distiller, DefinitionError> {
        let loaded = definitions::load(src, origin, &options.plugins)?;
        Ok(Self::from_definitions(
            loaded.definitions,
            loaded.warnings,
            options,
        ))
    }

    /// Build from already compiled definitions given in FILE order.
    pub fn from_definitions(
        mut defs: Vec<EventDefinition>,
        warnings: Vec<String>,
        options: &DistillerOptions,
    ) -> Distiller {
        defs.reverse();
        if options.catchall && !defs.iter().any(EventDefinition::is_catchall) {
            defs.push(EventDefinition::catchall(&options.plugins));
        }
        let mut envelope = Envelope {
            message_id: KeyPath::new(&["message_id"]),
            event_type: KeyPath::new(&["event_type"]),
            timestamp: KeyPath::new(&["timestamp"]),
            context_timestamp: KeyPath::new(&["_context_timestamp"]),
            oslo_message: KeyPath::new(&["oslo.message"]),
        };
        let mut builder = PlanBuilder::default();
        for k in envelope.paths() {
            k.register(&mut builder);
        }
        for d in &defs {
            for t in &d.traits {
                t.fields.register(&mut builder);
            }
        }
        let plan = builder.build();
        for k in envelope.paths() {
            k.bind(&plan);
        }
        for d in &mut defs {
            for t in &mut d.traits {
                t.fields.bind(&plan);
            }
        }
        let by_name = defs
            .iter()
            .map(|d| {
                let mut order: Vec<usize> = (0..d.traits.len()).collect();
                // stable: a repeated name keeps its file order (the last wins)
                order.sort_by(|&a, &b| d.traits[a].name.cmp(&d.traits[b].name));
                let mut prev: Option<&str> = None;
                order
                    .into_iter()
                    .map(|i| {
                        let name = d.traits[i].name.as_str();
                        let repeat = prev == Some(name);
                        prev = Some(name);
                        (i, repeat)
                    })
                    .collect()
            })
            .collect();
        Distiller {
            definitions: defs,
            catchall: options.catchall,
            warnings,
            cache: RwLock::new(HashMap::default()),
            plan,
            envelope,
            by_name,
        }
    }

    /// Definitions in match order (reversed file order, catchall last).
    pub fn definitions(&self) -> &[EventDefinition] {
        &self.definitions
    }

    pub fn catchall(&self) -> bool {
        self.catchall
    }

    /// Non-fatal remarks from loading (unknown keys).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Index (in match order) of the definition for `event_type`.
    pub fn definition_for(&self, event_type: &str) -> Option<usize> {
        if let Ok(cache) = self.cache.read() {
            if let Some(hit) = cache.get(event_type) {
                return hit.map(|i| i as usize);
            }
        }
        let found = self
            .definitions
            .iter()
            .position(|d| d.matches_type(event_type));
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() < CACHE_LIMIT {
                cache.insert(event_type.into(), found.map(|i| i as u32));
            }
        }
        found
    }

    /// Distill a parsed notification.
    pub fn distill(&self, notification: &Value) -> Result<Outcome, DistillError> {
        self.distill_node(notification)
    }

    /// Parse one JSON notification and distill it (the hot path: only the
    /// members the definitions read are kept, see [`crate::scan`]).
    pub fn distill_bytes(&self, bytes: &[u8]) -> Result<Outcome, DistillError> {
        let parsed = crate::scan::parse(bytes, &self.plan)
            .map_err(|e| DistillError::Json(json_error_message(bytes, e)))?;
        if let Some(inner) = parsed.at(&self.envelope.oslo_message) {
            let Some(text) = inner.as_str() else {
                return Err(DistillError::BadEnvelope(
                    "'oslo.message' is not a string".into(),
                ));
            };
            let inner = crate::scan::parse(text.as_bytes(), &self.plan).map_err(|e| {
                DistillError::BadEnvelope(format!(
                    "'oslo.message': {}",
                    json_error_message(text.as_bytes(), e)
                ))
            })?;
            if !matches!(inner.tree, Doc::Object(_)) {
                return Err(DistillError::BadEnvelope(
                    "'oslo.message' is not a JSON object".into(),
                ));
            }
            return self.distill_body(&inner, true);
        }
        if !matches!(parsed.tree, Doc::Object(_)) {
            return Err(DistillError::NotAnObject);
        }
        self.distill_body(&parsed, false)
    }

    /// Distill any [`JsonNode`] document.
    pub fn distill_node<N: JsonNode>(&self, root: &N) -> Result<Outcome, DistillError> {
        if !matches!(root.view(), View::Object) {
            return Err(DistillError::NotAnObject);
        }
        if let Some(inner) = root.at(&self.envelope.oslo_message) {
            let Some(text) = inner.as_str() else {
                return Err(DistillError::BadEnvelope(
                    "'oslo.message' is not a string".into(),
                ));
            };
            let doc = Doc::parse_str(text)
                .map_err(|e| DistillError::BadEnvelope(format!("'oslo.message': {e}")))?;
            if !matches!(doc.view(), View::Object) {
                return Err(DistillError::BadEnvelope(
                    "'oslo.message' is not a JSON object".into(),
                ));
            }
            return self.distill_body(&doc, true);
        }
        self.distill_body(root, false)
    }

    fn distill_body<S: Source>(&self, src: &S, oslo_v2: bool) -> Result<Outcome, DistillError> {
        let env = &self.envelope;
        let message_id = match src.at(&env.message_id) {
            None => {
                return Err(DistillError::Missing {
                    field: "message_id",
                    message_id: None,
                })
            }
            Some(v) => match v.as_str() {
                Some(s) => s,
                None => {
                    return Err(DistillError::NotAString {
                        field: "message_id",
                        found: kind_name(v),
                        message_id: None,
                    })
                }
            },
        };
        let event_type = match src.at(&env.event_type) {
            None => {
                return Err(DistillError::Missing {
                    field: "event_type",
                    message_id: Some(message_id.to_string()),
                })
            }
            Some(v) => match v.as_str() {
                Some(s) => s,
                None => {
                    return Err(DistillError::NotAString {
                        field: "event_type",
                        found: kind_name(v),
                        message_id: Some(message_id.to_string()),
                    })
                }
            },
        };
        let Some(index) = self.definition_for(event_type) else {
            return Ok(Outcome::Unmatched {
                event_type: event_type.to_string(),
                message_id: message_id.to_string(),
                oslo_v2,
            });
        };
        let (generated, from_clock) = self.extract_when(src, message_id)?;
        let def = &self.definitions[index];
        let mut event = Event::new(message_id, event_type, generated);
        let mut diagnostics = Diagnostics {
            generated_from_clock: from_clock,
            oslo_v2,
            ..Default::default()
        };
        let mut traits = Vec::with_capacity(def.traits.len());
        let mut dropped = Vec::new();
        for &(i, repeat) in self.by_name[index].iter() {
            let t = &def.traits[i];
            match t.extract(src) {
                Ok(Some(value)) => match traits.last_mut() {
                    // of traits with the same name the last with a value wins
                    Some((name, last)) if repeat && *name == t.name => *last = value,
                    _ => traits.push((t.name.clone(), value)),
                },
                Ok(None) => {}
                Err(reason) => dropped.push((
                    i,
                    DroppedTrait {
                        name: t.name.to_string(),
                        reason: reason.to_string(),
                    },
                )),
            }
        }
        // sorted by name, names unique
        event.traits = Traits::from_sorted_vec(traits);
        // reported in definition order
        dropped.sort_by_key(|d| d.0);
        diagnostics.dropped_traits = dropped.into_iter().map(|d| d.1).collect();
        Ok(Outcome::Event { event, diagnostics })
    }

    /// `body.get('timestamp', body.get('_context_timestamp'))`, then now when
    /// falsy. Returns the time and whether it came from the clock.
    fn extract_when<S: Source>(
        &self,
        src: &S,
        message_id: &str,
    ) -> Result<(Timestamp, bool), DistillError> {
        let (field, value) = match src.at(&self.envelope.timestamp) {
            Some(v) => ("timestamp", Some(v)),
            None => (
                "_context_timestamp",
                src.at(&self.envelope.context_timestamp),
            ),
        };
        match value {
            Some(v) if truthy(v) => match v.view() {
                View::Str(s) => stv3_event::parse_timestamp(s)
                    .map(|t| (t, false))
                    .map_err(|e| DistillError::BadTimestamp {
                        field,
                        value: s.chars().take(64).collect(),
                        reason: e.reason.to_string(),
                        message_id: message_id.to_string(),
                    }),
                _ => Err(DistillError::BadTimestamp {
                    field,
                    value: crate::convert::py_repr(v).chars().take(64).collect(),
                    reason: "not a string".into(),
                    message_id: message_id.to_string(),
                }),
            },
            _ => Ok((stv3_event::now(), true)),
        }
    }
}

/// Why input is not a JSON document: serde_json's wording (with line and
/// column) when it agrees, else the scanner's.
#[cold]
fn json_error_message(bytes: &[u8], e: crate::scan::ScanError) -> String {
    match std::str::from_utf8(bytes) {
        Err(u) => format!("not UTF-8: {u}"),
        Ok(text) => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(se) => se.to_string(),
            Ok(_) => format!("{} at byte {}", e.message, e.offset),
        },
    }
}

fn kind_name<N: JsonNode>(v: &N) -> &'static str {
    match v.view() {
        View::Null => "null",
        View::Bool(_) => "a boolean",
        View::Int(_) | View::UInt(_) | View::Float(_) => "a number",
        View::Str(_) => "a string",
        View::Array => "a list",
        View::Object => "an object",
    }
}

/// Python truthiness of a JSON value.
fn truthy<N: JsonNode>(v: &N) -> bool {
    match v.view() {
        View::Null => false,
        View::Bool(b) => b,
        View::Int(i) => i != 0,
        View::UInt(u) => u != 0,
        View::Float(f) => f != 0.0,
        View::Str(s) => !s.is_empty(),
        View::Array => !v.items().is_empty(),
        View::Object => {
            let mut any = false;
            v.for_each_member(&mut |_, _| any = true);
            any
        }
    }
}
