//! Poison detection and the archive line (pure).
//!
//! A body is good when it is at most `max_bytes`, UTF-8, a JSON object (an oslo.messaging
//! v2 envelope `{"oslo.version": .., "oslo.message": "<json>"}` is unwrapped), and has
//! non-empty string `event_type` and `message_id` (at most 50 characters, the width of
//! `event.message_id`). Anything else is poison, with a [`Reason`] for the quarantine.
//!
//! The archive line is the notification's JSON text on one line: the body itself when it
//! is a plain single-line object (byte-exact), otherwise the unwrapped notification
//! re-serialized compactly; wrapped as `{"region", "cell", "notification"}` when the
//! shoebox config asks for it (the original's `wrap_payload_with_region`).

use serde_json::Value;

/// Why a message was quarantined (also the `x-stv3-reason` header and metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Oversized,
    NotUtf8,
    InvalidJson,
    NotAnObject,
    BadEnvelope,
    MissingEventType,
    MissingMessageId,
    BadMessageId,
    Distill,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::Oversized => "oversized",
            Reason::NotUtf8 => "not_utf8",
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::BadEnvelope => "bad_oslo_envelope",
            Reason::MissingEventType => "missing_event_type",
            Reason::MissingMessageId => "missing_message_id",
            Reason::BadMessageId => "bad_message_id",
            Reason::Distill => "distill_error",
        }
    }
}

/// A poison message: the reason, a human detail, and the message_id when it was readable.
#[derive(Debug, Clone, PartialEq)]
pub struct Poison {
    pub reason: Reason,
    pub detail: String,
    pub message_id: Option<String>,
}

/// A good notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub message_id: String,
    pub event_type: String,
    /// The notification object (envelope unwrapped).
    pub value: Value,
    /// True when the body was an oslo v2 envelope.
    pub unwrapped: bool,
}

fn poison(reason: Reason, detail: impl Into<String>, message_id: Option<String>) -> Poison {
    Poison {
        reason,
        detail: detail.into(),
        message_id,
    }
}

/// Validate one body.
pub fn parse(body: &[u8], max_bytes: usize) -> Result<Notification, Poison> {
    if body.len() > max_bytes {
        return Err(poison(
            Reason::Oversized,
            format!("{} bytes > max_payload_bytes {max_bytes}", body.len()),
            None,
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        poison(
            Reason::NotUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            None,
        )
    })?;
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| poison(Reason::InvalidJson, format!("invalid JSON: {e}"), None))?;
    if !value.is_object() {
        return Err(poison(
            Reason::NotAnObject,
            format!("JSON {} is not an object", kind(&value)),
            None,
        ));
    }
    let mut unwrapped = false;
    if let Some(inner) = value.get("oslo.message") {
        let Some(s) = inner.as_str() else {
            return Err(poison(
                Reason::BadEnvelope,
                "oslo.message is not a string",
                None,
            ));
        };
        let v: Value = serde_json::from_str(s).map_err(|e| {
            poison(
                Reason::BadEnvelope,
                format!("oslo.message is not valid JSON: {e}"),
                None,
            )
        })?;
        if !v.is_object() {
            return Err(poison(
                Reason::BadEnvelope,
                format!("oslo.message holds {}, not an object", kind(&v)),
                None,
            ));
        }
        value = v;
        unwrapped = true;
    }
    if depth(&value) > MAX_DEPTH {
        return Err(poison(
            Reason::InvalidJson,
            format!("the notification is nested more than {MAX_DEPTH} levels"),
            None,
        ));
    }
    let message_id = match value.get("message_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(poison(Reason::MissingMessageId, "no message_id", None));
        }
        Some(other) => {
            return Err(poison(
                Reason::BadMessageId,
                format!("message_id is {}, not a string", kind(other)),
                None,
            ))
        }
    };
    if message_id.chars().count() > 50 {
        return Err(poison(
            Reason::BadMessageId,
            format!(
                "message_id is {} characters (at most 50)",
                message_id.chars().count()
            ),
            Some(message_id.chars().take(60).collect()),
        ));
    }
    let event_type = match value.get("event_type") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(poison(
                Reason::MissingEventType,
                "no event_type",
                Some(message_id),
            ));
        }
        Some(other) => {
            return Err(poison(
                Reason::MissingEventType,
                format!("event_type is {}, not a string", kind(other)),
                Some(message_id),
            ))
        }
    };
    Ok(Notification {
        message_id,
        event_type,
        value,
        unwrapped,
    })
}

/// Deepest accepted nesting of arrays and objects. serde_json (and so the
/// archive reader) stops at 127 levels, and the region wrap adds one: a
/// notification at 127 levels parsed here but its archive line could not be
/// read back.
pub const MAX_DEPTH: usize = 126;

/// Nesting depth of `v` (a scalar is 0), without recursion.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(m) => Box::new(m.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// How archived lines are shaped (`[shoebox] wrap_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wrap {
    pub enabled: bool,
    pub region: String,
    pub cell: String,
}

/// The one-line JSON text to archive for `n` (whose original body was `body`).
/// `rewritten` says a payload filter changed the value (so the body is stale).
pub fn archive_line(body: &[u8], n: &Notification, wrap: &Wrap, rewritten: bool) -> String {
    let inner = match std::str::from_utf8(body) {
        Ok(t) if !n.unwrapped && !rewritten && !t.contains(['\n', '\r']) => t.trim().to_string(),
        _ => n.value.to_string(),
    };
    if wrap.enabled {
        format!(
            "{{\"region\":{},\"cell\":{},\"notification\":{inner}}}",
            Value::String(wrap.region.clone()),
            Value::String(wrap.cell.clone())
        )
    } else {
        inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &[u8], expected: Result<(&str, &str), (Reason, Option<&str>)>) {
        let got = parse(body, 1000);
        match (got, expected) {
            (Ok(n), Ok((id, et))) => {
                assert_eq!((n.message_id.as_str(), n.event_type.as_str()), (id, et))
            }
            (Err(p), Err((r, id))) => {
                assert_eq!(
                    p.reason,
                    r,
                    "{:?}: {}",
                    String::from_utf8_lossy(body),
                    p.detail
                );
                assert_eq!(p.message_id.as_deref(), id);
            }
            (g, e) => panic!("{:?}: got {g:?}, want {e:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn classifies_bodies() {
        check(
            br#"{"message_id":"m1","event_type":"a.b"}"#,
            Ok(("m1", "a.b")),
        );
        check(br#"{"oslo.version":"2.0","oslo.message":"{\"message_id\":\"m2\",\"event_type\":\"x\"}"}"#, Ok(("m2", "x")));
        check(&[b'{', 0xff, b'}'], Err((Reason::NotUtf8, None)));
        check(b"{nope", Err((Reason::InvalidJson, None)));
        check(b"[1,2]", Err((Reason::NotAnObject, None)));
        check(br#"{"oslo.message": 5}"#, Err((Reason::BadEnvelope, None)));
        check(
            br#"{"oslo.message": "[]"}"#,
            Err((Reason::BadEnvelope, None)),
        );
        check(
            br#"{"event_type":"a"}"#,
            Err((Reason::MissingMessageId, None)),
        );
        check(
            br#"{"event_type":"a","message_id":""}"#,
            Err((Reason::MissingMessageId, None)),
        );
        check(
            br#"{"event_type":"a","message_id":7}"#,
            Err((Reason::BadMessageId, None)),
        );
        check(
            br#"{"message_id":"m3"}"#,
            Err((Reason::MissingEventType, Some("m3"))),
        );
        check(
            br#"{"message_id":"m3","event_type":null}"#,
            Err((Reason::MissingEventType, Some("m3"))),
        );
        let long = format!(r#"{{"message_id":"{}","event_type":"a"}}"#, "x".repeat(51));
        check(
            long.as_bytes(),
            Err((Reason::BadMessageId, Some(&"x".repeat(51)))),
        );
        let big = format!(
            r#"{{"message_id":"m","event_type":"a","p":"{}"}}"#,
            "x".repeat(1000)
        );
        check(big.as_bytes(), Err((Reason::Oversized, None)));
        // 126 levels parse; 127 would make an unreadable region-wrapped archive line
        let nested = |n: usize| {
            format!(
                r#"{{"message_id":"m","event_type":"a","p":{}{}}}"#,
                "[".repeat(n - 1),
                "]".repeat(n - 1)
            )
        };
        check(nested(126).as_bytes(), Ok(("m", "a")));
        check(nested(127).as_bytes(), Err((Reason::InvalidJson, None)));
        let env = |n: usize| serde_json::json!({"oslo.message": nested(n)}).to_string();
        check(env(126).as_bytes(), Ok(("m", "a")));
        check(env(127).as_bytes(), Err((Reason::InvalidJson, None)));
    }

    #[test]
    fn archive_lines() {
        let body = br#"{"message_id":"m1","event_type":"a.b", "k": 1.50}"#;
        let n = parse(body, 1000).unwrap();
        assert_eq!(
            archive_line(body, &n, &Wrap::default(), false),
            r#"{"message_id":"m1","event_type":"a.b", "k": 1.50}"#
        );
        let wrap = Wrap {
            enabled: true,
            region: "r\"1".into(),
            cell: "c1".into(),
        };
        assert_eq!(
            archive_line(body, &n, &wrap, false),
            r#"{"region":"r\"1","cell":"c1","notification":{"message_id":"m1","event_type":"a.b", "k": 1.50}}"#
        );
        let pretty = b"{\n \"message_id\": \"m1\",\n \"event_type\": \"a\"\n}";
        let n = parse(pretty, 1000).unwrap();
        assert_eq!(
            archive_line(pretty, &n, &Wrap::default(), false),
            r#"{"message_id":"m1","event_type":"a"}"#
        );
        let env = br#"{"oslo.version":"2.0","oslo.message":"{\"message_id\":\"m2\",\"event_type\":\"x\"}"}"#;
        let n = parse(env, 1000).unwrap();
        assert_eq!(
            archive_line(env, &n, &Wrap::default(), false),
            r#"{"message_id":"m2","event_type":"x"}"#
        );
    }
}
