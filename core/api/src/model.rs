//! Plain data the API works with: stream states, query descriptions
//! ([`StreamQuery`], [`EventQuery`], [`Mark`], [`TraitFilter`]) and the rows
//! the store hands back ([`StreamRow`], [`EventRow`]). No I/O, no SQL.

use stv3_event::{SmolStr, Timestamp, TraitValue};

pub use stv3_event::StreamState;

/// Keyset paging position (`mark` parameter). The original's rules:
/// absent or `-` → newest first; `<hex>`/`-<hex>` → `id < hex`, newest first;
/// `+` → oldest first; `+<hex>` → `id > hex`, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub ascending: bool,
    pub bound: Option<i64>,
}

impl Mark {
    /// The `_mark` value of a row returned under this ordering.
    pub fn for_row(&self, id: i64) -> String {
        if self.ascending {
            format!("+{id:x}")
        } else {
            format!("{id:x}")
        }
    }
}

/// One `name:value` trait filter. The value is kept as text and, when it
/// parses as such, as int, float and datetime, so typed traits can match.
#[derive(Debug, Clone, PartialEq)]
pub struct TraitFilter {
    pub name: String,
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Microseconds since the epoch (UTC).
    pub datetime: Option<i64>,
}

/// Filters of `GET /vN/streams` and `/vN/streams/count`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamQuery {
    /// `first_event < older_than` (micros).
    pub older_than: Option<i64>,
    /// `last_event > younger_than` (micros).
    pub younger_than: Option<i64>,
    pub state: Option<i64>,
    pub trigger_name: Option<String>,
    pub traits: Vec<TraitFilter>,
    pub mark: Mark,
    pub limit: u32,
}

/// Filters of `GET /vN/events` and `/vN/events/count`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// `generated > from_datetime` (micros).
    pub from: Option<i64>,
    /// `generated <= to_datetime` (micros).
    pub to: Option<i64>,
    pub event_name: Option<String>,
    pub traits: Vec<TraitFilter>,
    pub mark: Mark,
    pub limit: u32,
}

/// A distinguishing-trait value (a trait value, a time range, or none).
#[derive(Debug, Clone, PartialEq)]
pub enum DistValue {
    Value(TraitValue),
    Range {
        begin: Option<Timestamp>,
        end: Option<Timestamp>,
    },
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub id: i64,
    pub name: String,
    pub state: i64,
    pub first_event: Timestamp,
    pub last_event: Timestamp,
    pub fire_timestamp: Option<Timestamp>,
    pub expire_timestamp: Option<Timestamp>,
    pub dist_traits: Vec<(String, DistValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub message_id: String,
    pub event_type: String,
    pub generated: Timestamp,
    /// `None` for a trait stored with datatype none (rendered as null).
    pub traits: Vec<(SmolStr, Option<TraitValue>)>,
}

/// Result of a reset request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetOutcome {
    NotFound,
    /// The state changed from → to.
    Reset {
        from: i64,
        to: i64,
    },
    /// The stream is not in an error state; nothing changed.
    Unchanged {
        state: i64,
    },
    /// Someone else changed the stream between our read and our write.
    Conflict,
}
