//! The original quincy wire format: `{"__type__":"datetime","datetime":iso}`
//! for datetimes, `{"__type__":"timex.TimeRange",...}` for time ranges,
//! `_mark` hex row ids, streams and events as flat JSON objects with sorted keys.
//! Pure functions from rows to `serde_json::Value`.

use serde_json::{json, Map, Value};
use stv3_event::{Timestamp, TraitValue};

use crate::model::{DistValue, EventRow, Mark, StreamRow, StreamState};

/// Python's `datetime.isoformat()` for a naive datetime: microseconds are
/// omitted when they are zero.
pub fn isoformat(t: &Timestamp) -> String {
    use chrono::Timelike;
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// `{"__type__":"datetime","datetime":"2015-02-27T15:27:18.603932"}`.
pub fn datetime(t: &Timestamp) -> Value {
    json!({"__type__": "datetime", "datetime": isoformat(t)})
}

fn opt_datetime(t: &Option<Timestamp>) -> Value {
    t.as_ref().map(datetime).unwrap_or(Value::Null)
}

pub fn trait_value(v: &TraitValue) -> Value {
    match v {
        TraitValue::Text(s) => Value::String(s.to_string()),
        TraitValue::Int(i) => Value::from(*i),
        TraitValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        TraitValue::Datetime(t) => datetime(t),
    }
}

pub fn dist_value(v: &DistValue) -> Value {
    match v {
        DistValue::Value(v) => trait_value(v),
        DistValue::Range { begin, end } => json!({
            "__type__": "timex.TimeRange",
            "begin": begin.as_ref().map(isoformat),
            "end": end.as_ref().map(isoformat),
        }),
        DistValue::Null => Value::Null,
    }
}

fn sorted(m: Map<String, Value>) -> Value {
    let mut entries: Vec<(String, Value)> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(entries.into_iter().collect())
}

/// An event as `Event.as_dict` rendered it: traits, then the reserved keys
/// `message_id`, `event_type` and `timestamp`, which win over same-named traits.
/// `mark` adds `_mark` (list endpoints only).
pub fn event(row: &EventRow, mark: Option<&Mark>) -> Value {
    let mut m = Map::new();
    for (name, v) in &row.traits {
        m.insert(
            name.clone(),
            v.as_ref().map(trait_value).unwrap_or(Value::Null),
        );
    }
    m.insert("message_id".into(), Value::String(row.message_id.clone()));
    m.insert("event_type".into(), Value::String(row.event_type.clone()));
    m.insert("timestamp".into(), datetime(&row.generated));
    if let Some(mark) = mark {
        m.insert("_mark".into(), Value::String(mark.for_row(row.id)));
    }
    sorted(m)
}

/// Wire name of a state code (unknown codes render as their number, as text).
pub fn state_name(code: i64) -> String {
    StreamState::from_code(code)
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| code.to_string())
}

/// A stream with `_mark`; `events` adds the `events` list (details).
pub fn stream(row: &StreamRow, mark: &Mark, events: Option<&[EventRow]>) -> Value {
    let mut dt = Map::new();
    for (name, v) in &row.dist_traits {
        dt.insert(name.clone(), dist_value(v));
    }
    let mut m = Map::new();
    m.insert("_mark".into(), Value::String(mark.for_row(row.id)));
    m.insert("distinguishing_traits".into(), sorted(dt));
    m.insert(
        "expire_timestamp".into(),
        opt_datetime(&row.expire_timestamp),
    );
    m.insert("fire_timestamp".into(), opt_datetime(&row.fire_timestamp));
    m.insert("first_event".into(), datetime(&row.first_event));
    m.insert("id".into(), Value::from(row.id));
    m.insert("last_event".into(), datetime(&row.last_event));
    m.insert("name".into(), Value::String(row.name.clone()));
    m.insert("state".into(), Value::String(state_name(row.state)));
    if let Some(events) = events {
        m.insert(
            "events".into(),
            Value::Array(events.iter().map(|e| event(e, None)).collect()),
        );
    }
    sorted(m)
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
