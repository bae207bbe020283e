//! The original quincy wire format: `{"__type__":"datetime","datetime":iso}`
//! for datetimes, `{"__type__":"timex.TimeRange",...}` for time ranges,
//! `_mark` hex row ids, streams and events as flat JSON objects with sorted keys.
//! Pure functions from rows to JSON: [`EventJson`] and [`StreamJson`] serialize
//! a row straight to the response body (no `serde_json::Value` tree per row,
//! the list routes' main cost); [`event`] and [`stream`] give the same JSON as
//! a `Value`.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};
use stv3_event::{Timestamp, TraitValue};

use crate::model::{DistValue, EventRow, Mark, StreamRow, StreamState};

/// Python's `datetime.isoformat()` for a naive datetime: microseconds are
/// omitted when they are zero.
pub fn isoformat(t: &Timestamp) -> String {
    use chrono::{Datelike, Timelike};
    let micros = t.nanosecond() / 1000;
    if !(0..=9999).contains(&t.year()) || micros >= 1_000_000 {
        // Outside what four digits and six fractional digits hold: chrono's own form.
        return if micros == 0 {
            t.format("%Y-%m-%dT%H:%M:%S").to_string()
        } else {
            t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
        };
    }
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros != 0 {
        use std::fmt::Write;
        let _ = write!(out, ".{micros:06}");
    }
    out
}

/// `{"__type__":"datetime","datetime":"2015-02-27T15:27:18.603932"}`.
pub fn datetime(t: &Timestamp) -> Value {
    to_value(&DatetimeJson(t))
}

/// A datetime in the `__type__` convention, serialized in place.
struct DatetimeJson<'a>(&'a Timestamp);

impl Serialize for DatetimeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("__type__", "datetime")?;
        m.serialize_entry("datetime", &isoformat(self.0))?;
        m.end()
    }
}

/// A trait value: text, number (a non-finite float is `null`, as
/// `serde_json::Number` has it) or datetime.
struct TraitJson<'a>(&'a TraitValue);

impl Serialize for TraitJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TraitValue::Text(t) => s.serialize_str(t),
            TraitValue::Int(i) => s.serialize_i64(*i),
            TraitValue::Float(f) if f.is_finite() => s.serialize_f64(*f),
            TraitValue::Float(_) => s.serialize_unit(),
            TraitValue::Datetime(t) => DatetimeJson(t).serialize(s),
        }
    }
}

/// A distinguishing trait's value: a trait value, a time range or `null`.
struct DistJson<'a>(&'a DistValue);

impl Serialize for DistJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            DistValue::Value(v) => TraitJson(v).serialize(s),
            DistValue::Range { begin, end } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("__type__", "timex.TimeRange")?;
                m.serialize_entry("begin", &begin.as_ref().map(isoformat))?;
                m.serialize_entry("end", &end.as_ref().map(isoformat))?;
                m.end()
            }
            DistValue::Null => s.serialize_unit(),
        }
    }
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("wire JSON has string keys only")
}

/// Entries serialized in key order; of equal keys the last one given wins
/// (as repeated inserts into a map would have it).
fn serialize_sorted<S: Serializer, V: Serialize>(
    s: S,
    mut entries: Vec<(&str, V)>,
) -> Result<S::Ok, S::Error> {
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut m = s.serialize_map(None)?;
    let mut it = entries.iter().peekable();
    while let Some((k, v)) = it.next() {
        if it.peek().is_some_and(|(next, _)| next == k) {
            continue;
        }
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// One value of an event object.
enum EventField<'a> {
    Trait(Option<&'a TraitValue>),
    Text(&'a str),
    Time(&'a Timestamp),
}

impl Serialize for EventField<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EventField::Trait(Some(v)) => TraitJson(v).serialize(s),
            EventField::Trait(None) => s.serialize_unit(),
            EventField::Text(t) => s.serialize_str(t),
            EventField::Time(t) => DatetimeJson(t).serialize(s),
        }
    }
}

/// An event as `Event.as_dict` rendered it: traits, then the reserved keys
/// `message_id`, `event_type` and `timestamp`, which win over same-named traits.
/// `mark` adds `_mark` (list endpoints only).
pub struct EventJson<'a> {
    pub row: &'a EventRow,
    pub mark: Option<&'a Mark>,
}

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let row = self.row;
        let mark = self.mark.map(|m| m.for_row(row.id));
        let mut entries: Vec<(&str, EventField)> = Vec::with_capacity(row.traits.len() + 4);
        for (name, v) in &row.traits {
            entries.push((name, EventField::Trait(v.as_ref())));
        }
        entries.push(("message_id", EventField::Text(&row.message_id)));
        entries.push(("event_type", EventField::Text(&row.event_type)));
        entries.push(("timestamp", EventField::Time(&row.generated)));
        if let Some(mark) = &mark {
            entries.push(("_mark", EventField::Text(mark)));
        }
        serialize_sorted(s, entries)
    }
}

pub fn event(row: &EventRow, mark: Option<&Mark>) -> Value {
    to_value(&EventJson { row, mark })
}

/// Wire name of a state code (unknown codes render as their number, as text).
pub fn state_name(code: i64) -> String {
    StreamState::from_code(code)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| code.to_string())
}

/// A stream's distinguishing traits, by name.
struct DistTraitsJson<'a>(&'a [(String, DistValue)]);

impl Serialize for DistTraitsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_sorted(
            s,
            self.0
                .iter()
                .map(|(n, v)| (n.as_str(), DistJson(v)))
                .collect(),
        )
    }
}

/// A stream with `_mark`; `events` adds the `events` list (details). Keys in
/// sorted order.
pub struct StreamJson<'a> {
    pub row: &'a StreamRow,
    pub mark: &'a Mark,
    pub events: Option<&'a [EventRow]>,
}

impl Serialize for StreamJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let row = self.row;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("_mark", &self.mark.for_row(row.id))?;
        m.serialize_entry("distinguishing_traits", &DistTraitsJson(&row.dist_traits))?;
        if let Some(events) = self.events {
            let events: Vec<EventJson> = events
                .iter()
                .map(|row| EventJson { row, mark: None })
                .collect();
            m.serialize_entry("events", &events)?;
        }
        m.serialize_entry(
            "expire_timestamp",
            &row.expire_timestamp.as_ref().map(DatetimeJson),
        )?;
        m.serialize_entry(
            "fire_timestamp",
            &row.fire_timestamp.as_ref().map(DatetimeJson),
        )?;
        m.serialize_entry("first_event", &DatetimeJson(&row.first_event))?;
        m.serialize_entry("id", &row.id)?;
        m.serialize_entry("last_event", &DatetimeJson(&row.last_event))?;
        m.serialize_entry("name", &row.name)?;
        m.serialize_entry("state", &state_name(row.state))?;
        m.end()
    }
}

pub fn stream(row: &StreamRow, mark: &Mark, events: Option<&[EventRow]>) -> Value {
    to_value(&StreamJson { row, mark, events })
}

/// `[{"count": n}]`.
pub fn count(n: u64) -> Value {
    json!([{ "count": n }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use stv3_event::parse_timestamp;

    fn ts(s: &str) -> Timestamp {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn isoformat_drops_zero_micros_like_python() {
        let cases = [
            ("2015-02-27T15:27:18.603932", "2015-02-27T15:27:18.603932"),
            ("2015-02-27T00:00:00", "2015-02-27T00:00:00"),
            ("2015-02-27T00:00:00.000001", "2015-02-27T00:00:00.000001"),
            ("2015-02-27T00:00:00.5", "2015-02-27T00:00:00.500000"),
        ];
        for (input, want) in cases {
            assert_eq!(isoformat(&ts(input)), want, "{input}");
        }
    }

    #[test]
    fn stream_matches_the_documented_sample() {
        let row = StreamRow {
            id: 2,
            name: "test_trigger".into(),
            state: 6,
            first_event: ts("2015-02-27T18:27:18.603932"),
            last_event: ts("2015-02-28T00:27:18.603932"),
            fire_timestamp: None,
            expire_timestamp: Some(ts("2015-03-02T00:27:18.603932")),
            dist_traits: vec![
                (
                    "instance_id".into(),
                    DistValue::Value(TraitValue::Text("8f81".into())),
                ),
                (
                    "timestamp".into(),
                    DistValue::Range {
                        begin: Some(ts("2015-02-27")),
                        end: Some(ts("2015-02-28")),
                    },
                ),
            ],
        };
        let got = stream(&row, &Mark::default(), None).to_string();
        assert_eq!(
            got,
            r#"{"_mark":"2","distinguishing_traits":{"instance_id":"8f81","timestamp":{"__type__":"timex.TimeRange","begin":"2015-02-27T00:00:00","end":"2015-02-28T00:00:00"}},"expire_timestamp":{"__type__":"datetime","datetime":"2015-03-02T00:27:18.603932"},"fire_timestamp":null,"first_event":{"__type__":"datetime","datetime":"2015-02-27T18:27:18.603932"},"id":2,"last_event":{"__type__":"datetime","datetime":"2015-02-28T00:27:18.603932"},"name":"test_trigger","state":"completed"}"#
        );
    }

    #[test]
    fn event_reserved_keys_win_and_mark_is_hex() {
        let row = EventRow {
            id: 640,
            message_id: "m-1".into(),
            event_type: "compute.instance.create.end".into(),
            generated: ts("2015-03-04T22:33:55.204441"),
            traits: vec![
                ("memory_mb".into(), Some(TraitValue::Int(512))),
                (
                    "message_id".into(),
                    Some(TraitValue::Text("shadowed".into())),
                ),
                ("ratio".into(), Some(TraitValue::Float(0.5))),
                ("gone".into(), None),
            ],
        };
        let got = event(&row, Some(&Mark::default())).to_string();
        assert_eq!(
            got,
            r#"{"_mark":"280","event_type":"compute.instance.create.end","gone":null,"memory_mb":512,"message_id":"m-1","ratio":0.5,"timestamp":{"__type__":"datetime","datetime":"2015-03-04T22:33:55.204441"}}"#
        );
        let asc = Mark {
            ascending: true,
            bound: None,
        };
        assert_eq!(event(&row, Some(&asc))["_mark"], "+280");
        assert!(event(&row, None).get("_mark").is_none());
    }
}
