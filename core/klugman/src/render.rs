//! Rendering API JSON for people: prettytable-style ASCII tables (comfy-table)
//! in the layouts of the original klugman (Section/Property/Value for a
//! stream, Property/Value per event), a compact one-row-per-stream list, and
//! `__type__` values shown as readable datetimes. Pure: JSON in, text out.

use comfy_table::{Cell, Table};
use serde_json::Value;

/// prettytable's look: `+---+` borders, `-` under the header.
const PRESET: &str = "||--+-++|    ++++++";

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(PRESET);
    t.set_header(header.iter().map(Cell::new));
    t
}

/// `2015-02-27T15:27:18.603932` → `2015-02-27 15:27:18.603932` (Python's `str(datetime)`).
fn dt(s: &str) -> String {
    s.replacen('T', " ", 1)
}

/// A JSON value as one table cell.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) => match m.get("__type__").and_then(Value::as_str) {
            Some("datetime") => m
                .get("datetime")
                .and_then(Value::as_str)
                .map(dt)
                .unwrap_or_else(|| "n/a".into()),
            Some("timex.Timestamp") => m
                .get("timestamp")
                .and_then(Value::as_str)
                .map(dt)
                .unwrap_or_else(|| "n/a".into()),
            Some("timex.TimeRange") => {
                let side = |k: &str| {
                    m.get(k)
                        .and_then(Value::as_str)
                        .map(dt)
                        .unwrap_or_else(|| "n/a".into())
                };
                format!("{} .. {}", side("begin"), side("end"))
            }
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

const STREAM_KEYS: [&str; 7] = [
    "id",
    "state",
    "name",
    "first_event",
    "last_event",
    "fire_timestamp",
    "expire_timestamp",
];

/// One stream in detail (Section | Property | Value), then its events if present.
pub fn stream_detail(s: &Value) -> String {
    let mut t = table(&["Section", "Property", "Value"]);
    for k in STREAM_KEYS {
        t.add_row(vec![
            "Stream".to_string(),
            k.to_string(),
            value(s.get(k).unwrap_or(&Value::Null)),
        ]);
    }
    if let Some(Value::Object(dt)) = s.get("distinguishing_traits") {
        for (k, v) in dt {
            t.add_row(vec!["D.Trait".to_string(), k.clone(), value(v)]);
        }
    }
    let mut out = format!("{t}\n");
    if let Some(Value::Array(events)) = s.get("events") {
        out.push_str(&format!("Events: {}\n", events.len()));
        out.push_str(&events_tables(events));
    }
    out
}

/// Many streams, one row each.
pub fn streams_list(streams: &[Value]) -> String {
    let mut t = table(&[
        "id",
        "name",
        "state",
        "first_event",
        "last_event",
        "fire_timestamp",
        "expire_timestamp",
        "distinguishing_traits",
    ]);
    for s in streams {
        let traits = match s.get("distinguishing_traits") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", value(v)))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        };
        let mut row: Vec<String> = [
            "id",
            "name",
            "state",
            "first_event",
            "last_event",
            "fire_timestamp",
            "expire_timestamp",
        ]
        .iter()
        .map(|k| value(s.get(*k).unwrap_or(&Value::Null)))
        .collect();
        row.push(traits);
        t.add_row(row);
    }
    format!("{t}\n")
}

/// One Property | Value table per event, keys sorted (`_mark` first), as klugman 0.5 printed them.
pub fn events_tables(events: &[Value]) -> String {
    let mut out = String::new();
    for e in events {
        let mut t = table(&["Property", "Value"]);
        if let Value::Object(m) = e {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                t.add_row(vec![k.clone(), value(&m[k])]);
            }
        }
        out.push_str(&format!("{t}\n"));
    }
    out
}

/// `[{"count": n}]` → Property | Value.
pub fn count(body: &Value) -> String {
    let n = body
        .get(0)
        .and_then(|c| c.get("count"))
        .map(value)
        .unwrap_or_else(|| value(body));
    let mut t = table(&["Property", "Value"]);
    t.add_row(vec!["count".to_string(), n]);
    format!("{t}\n")
}

pub fn archives(list: &[Value]) -> String {
    let mut t = table(&["id", "size", "mtime"]);
    for a in list {
        t.add_row(vec![
            value(a.get("id").unwrap_or(&Value::Null)),
            value(a.get("size").unwrap_or(&Value::Null)),
            value(a.get("mtime").unwrap_or(&Value::Null)),
        ]);
    }
    format!("{t}\n")
}

/// A key/value object (reset/delete results).
pub fn object(v: &Value) -> String {
    let mut t = table(&["Property", "Value"]);
    if let Value::Object(m) = v {
        for (k, x) in m {
            t.add_row(vec![k.clone(), value(x)]);
        }
    }
    format!("{t}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values() {
        let cases = [
            (json!(null), "None"),
            (json!("x"), "x"),
            (json!(512), "512"),
            (json!(0.5), "0.5"),
            (
                json!({"__type__": "datetime", "datetime": "2015-04-22T21:06:09.400561"}),
                "2015-04-22 21:06:09.400561",
            ),
            (json!({"__type__": "datetime"}), "n/a"),
            (
                json!({"__type__": "timex.TimeRange", "begin": "2015-04-22T00:00:00", "end": "2015-04-23T00:00:00"}),
                "2015-04-22 00:00:00 .. 2015-04-23 00:00:00",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(value(&v), want, "{v}");
        }
    }

    #[test]
    fn count_table() {
        assert_eq!(
            count(&json!([{"count": 44216}])),
            "+----------+-------+\n| Property | Value |\n+----------+-------+\n| count    | 44216 |\n+----------+-------+\n"
        );
    }
}
