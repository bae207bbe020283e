//! Streams: states (original integer codes), the stream row, distinguishing
//! trait values and the stream key that makes "one active stream per
//! (trigger, distinguishing traits)" enforceable in the database.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use stv3_event::{format_timestamp, to_micros, Datatype, Timestamp, TraitValue};

/// Stream state, stored as INT with the original codes (defined once, in `stv3-event`).
pub use stv3_event::StreamState;

/// A distinguishing trait value: a plain trait value or a timex range.
#[derive(Debug, Clone, PartialEq)]
pub enum DistValue {
    Trait(TraitValue),
    /// A `[begin, end)` range, e.g. from `{timestamp: "day"}`.
    Range {
        begin: Timestamp,
        end: Timestamp,
    },
}

impl DistValue {
    pub fn datatype(&self) -> Datatype {
        match self {
            DistValue::Trait(v) => v.datatype(),
            DistValue::Range { .. } => Datatype::Timerange,
        }
    }

    /// JSON form: the trait's canonical value, or `{"begin","end"}` for a range.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            DistValue::Trait(v) => v.to_json(),
            DistValue::Range { begin, end } => serde_json::json!({
                "begin": format_timestamp(begin),
                "end": format_timestamp(end),
            }),
        }
    }

    /// A stable text encoding used in the stream key (type-tagged, so `1` and `"1"` differ).
    fn key_part(&self) -> String {
        match self {
            DistValue::Trait(TraitValue::Text(s)) => format!("t:{s}"),
            DistValue::Trait(TraitValue::Int(i)) => format!("i:{i}"),
            DistValue::Trait(TraitValue::Float(x)) => format!("f:{:016x}", x.to_bits()),
            DistValue::Trait(TraitValue::Datetime(t)) => format!("d:{}", to_micros(t)),
            DistValue::Range { begin, end } => format!("r:{}:{}", to_micros(begin), to_micros(end)),
        }
    }
}

/// Distinguishing traits of a stream, by name.
pub type DistTraits = BTreeMap<String, DistValue>;

/// The stream key: hex sha256 over the trigger name and the type-tagged,
/// name-sorted distinguishing values. Equal keys <=> same logical stream.
pub fn stream_key(trigger_name: &str, dist: &DistTraits) -> String {
    let mut h = Sha256::new();
    h.update(trigger_name.as_bytes());
    for (name, value) in dist {
        h.update([0u8]);
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(value.key_part().as_bytes());
    }
    hex::encode(h.finalize())
}

/// One stream row plus its distinguishing traits.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub id: i64,
    /// The trigger name.
    pub name: String,
    pub first_event: Timestamp,
    pub last_event: Timestamp,
    pub expire_timestamp: Option<Timestamp>,
    pub fire_timestamp: Option<Timestamp>,
    pub state: StreamState,
    pub state_serial_no: i32,
    /// Set while a worker holds the stream in firing/expiring.
    pub lease_expires: Option<Timestamp>,
    pub event_count: i64,
    /// Per fire-criterion match counters (see [`crate::trigger::FireCounts`]).
    pub fire_counts: Option<String>,
    pub stream_key: Option<String>,
    pub distinguishing_traits: DistTraits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_and_names_round_trip() {
        for s in StreamState::ALL {
            assert_eq!(StreamState::from_code(s.code()), Some(s));
            assert_eq!(StreamState::from_name(s.name()), Some(s));
        }
        assert_eq!(StreamState::RetryExpire.code(), 8);
        assert_eq!(StreamState::from_code(9), None);
    }

    #[test]
    fn stream_key_depends_on_types_and_names() {
        let mut a = DistTraits::new();
        a.insert("x".into(), DistValue::Trait(TraitValue::Int(1)));
        let mut b = DistTraits::new();
        b.insert("x".into(), DistValue::Trait(TraitValue::Text("1".into())));
        assert_ne!(stream_key("t", &a), stream_key("t", &b));
        assert_ne!(stream_key("t", &a), stream_key("u", &a));
        assert_eq!(stream_key("t", &a), stream_key("t", &a.clone()));
        assert_eq!(stream_key("t", &a).len(), 64);
    }
}
