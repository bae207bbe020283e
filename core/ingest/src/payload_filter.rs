//! yagi's payload rewrite filters (`[consumer:X] filters = NAME` → `[filter:NAME]
//! map_file, method`): a JSON map applied to each notification before the handlers see it.
//!
//! * `FilterMessage`: for each map key present (truthy) in the message, recurse into
//!   objects, otherwise replace the value with the map's value.
//! * `FilterMessageMatch`: map values are objects (recurse) or lists of `{from: to}`
//!   objects (replace the value when its string form matches a `from`).
//! * `FilterMessageTimestamp` / `FilterMessageTimestampForUsageRetards`: shift a
//!   timestamp by N hours, written as `%Y-%m-%d %H:%M:%S.%f` (`T` separator for the second).
//!
//! Pure; the map file is read once at start-up.

use serde_json::Value;

pub const METHODS: [&str; 4] = [
    "FilterMessage",
    "FilterMessageMatch",
    "FilterMessageTimestamp",
    "FilterMessageTimestampForUsageRetards",
];

#[derive(Debug, Clone, PartialEq)]
pub struct PayloadFilter {
    pub method: String,
    pub map: Value,
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

impl PayloadFilter {
    pub fn load(method: &str, map_file: &std::path::Path) -> Result<Self, String> {
        if !METHODS.contains(&method) {
            return Err(format!("unknown filter method {method:?}"));
        }
        let text = std::fs::read_to_string(map_file)
            .map_err(|e| format!("{}: {e}", map_file.display()))?;
        let map: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", map_file.display()))?;
        if !map.is_object() {
            return Err(format!(
                "{}: the map must be a JSON object",
                map_file.display()
            ));
        }
        Ok(PayloadFilter {
            method: method.to_string(),
            map,
        })
    }

    pub fn apply(&self, message: &mut Value) {
        let map = self.map.clone();
        match self.method.as_str() {
            "FilterMessage" => replace(&map, message),
            "FilterMessageMatch" => {
                let out = matched(&map, message.take());
                *message = out;
            }
            "FilterMessageTimestamp" => shift(&map, message, ' '),
            _ => shift(&map, message, 'T'),
        }
    }
}

fn replace(map: &Value, message: &mut Value) {
    let (Some(m), Some(obj)) = (map.as_object(), message.as_object_mut()) else {
        return;
    };
    for (k, v) in m {
        if let Some(cur) = obj.get_mut(k) {
            if truthy(cur) {
                if cur.is_object() {
                    replace(v, cur);
                } else {
                    *cur = v.clone();
                }
            }
        }
    }
}

fn matched(map: &Value, mut message: Value) -> Value {
    let Some(m) = map.as_object() else {
        return message;
    };
    for (k, v) in m {
        let present = message
            .as_object()
            .and_then(|o| o.get(k))
            .map(truthy)
            .unwrap_or(false);
        if present {
            let obj = message.as_object_mut().expect("checked object");
            let cur = obj.get_mut(k).expect("checked key");
            if v.is_object() {
                *cur = matched(v, cur.take());
            } else if let Some(list) = v.as_array() {
                let key = py_str(cur);
                for d in list {
                    if let Some(to) = d.get(&key).filter(|x| truthy(x)) {
                        *cur = to.clone();
                        break;
                    }
                }
            }
        } else if message.as_str() == Some(k.as_str()) {
            return v.clone();
        }
    }
    message
}

fn shift(map: &Value, message: &mut Value, sep: char) {
    let (Some(m), Some(obj)) = (map.as_object(), message.as_object_mut()) else {
        return;
    };
    for (k, v) in m {
        let Some(cur) = obj.get_mut(k) else { continue };
        if !truthy(cur) {
            continue;
        }
        if cur.is_object() {
            shift(v, cur, sep);
            continue;
        }
        let hours = py_str(v).trim().parse::<i64>();
        let ts = cur.as_str().map(stv3_event::parse_timestamp);
        match (hours, ts) {
            (Ok(h), Some(Ok(t))) => {
                let t = t + chrono::Duration::hours(h);
                *cur = Value::String(t.format(&format!("%Y-%m-%d{sep}%H:%M:%S%.6f")).to_string());
            }
            _ => {
                tracing::error!(key = %k, value = %cur, "payload filter: bad timestamp in message, left unchanged")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(method: &str, map: Value, input: Value, expected: Value) {
        let f = PayloadFilter {
            method: method.into(),
            map,
        };
        let mut m = input.clone();
        f.apply(&mut m);
        assert_eq!(m, expected, "{method} on {input}");
    }

    #[test]
    fn filters() {
        check(
            "FilterMessage",
            json!({"payload": {"tenant_id": "X"}}),
            json!({"payload": {"tenant_id": "1", "a": 1}}),
            json!({"payload": {"tenant_id": "X", "a": 1}}),
        );
        check(
            "FilterMessage",
            json!({"a": "X"}),
            json!({"a": ""}),
            json!({"a": ""}),
        );
        check(
            "FilterMessageMatch",
            json!({"payload": {"os": [{"linux": "LNX"}, {"win": "WIN"}]}}),
            json!({"payload": {"os": "win"}}),
            json!({"payload": {"os": "WIN"}}),
        );
        check(
            "FilterMessageMatch",
            json!({"payload": {"os": [{"linux": "LNX"}]}}),
            json!({"payload": {"os": "bsd"}}),
            json!({"payload": {"os": "bsd"}}),
        );
        check(
            "FilterMessageTimestamp",
            json!({"payload": {"launched_at": "-2"}}),
            json!({"payload": {"launched_at": "2015-01-01 01:00:00"}}),
            json!({"payload": {"launched_at": "2014-12-31 23:00:00.000000"}}),
        );
        check(
            "FilterMessageTimestampForUsageRetards",
            json!({"t": 1}),
            json!({"t": "2015-01-01 01:00:00.5"}),
            json!({"t": "2015-01-01T02:00:00.500000"}),
        );
        check(
            "FilterMessageTimestamp",
            json!({"t": 1}),
            json!({"t": "garbage"}),
            json!({"t": "garbage"}),
        );
    }
}
