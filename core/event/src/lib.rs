//! The event model shared by every stv3 crate.
//!
//! An [`Event`] is what the distiller makes from one raw notification and what
//! winchester stores, groups into streams and hands to pipelines. It is plain
//! data: no I/O lives here.
//!
//! Time convention: every timestamp is a [`Timestamp`] (a `chrono::NaiveDateTime`)
//! that is **UTC by convention**, exactly like the original winchester, which
//! stripped tzinfo after converting to UTC.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};
/// The string type of trait names and text values: immutable, up to 23 bytes
/// stored inline (no allocation), longer ones shared (`Arc<str>`, O(1)
/// clone). Derefs to `str` and borrows as `str`, so maps keyed by it are
/// looked up with a `&str`; ordering, equality and hashing are `str`'s.
pub use smol_str::SmolStr;

pub mod stored;
pub mod traits;

pub use traits::Traits;

/// A UTC instant without a zone attached (the original's "naive UTC").
pub type Timestamp = NaiveDateTime;

/// Trait datatype codes, identical to the original `Datatype` enum and the
/// integer stored in the `trait.type` / `dist_trait.type` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum Datatype {
    None = 0,
    Text = 1,
    Int = 2,
    Float = 3,
    Datetime = 4,
    Timerange = 5,
}

impl Datatype {
    /// The config spelling (`text|int|float|datetime`), as used in event_definitions.yaml.
    pub fn name(self) -> &'static str {
        match self {
            Datatype::None => "none",
            Datatype::Text => "text",
            Datatype::Int => "int",
            Datatype::Float => "float",
            Datatype::Datetime => "datetime",
            Datatype::Timerange => "timerange",
        }
    }

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Datatype::None,
            1 => Datatype::Text,
            2 => Datatype::Int,
            3 => Datatype::Float,
            4 => Datatype::Datetime,
            5 => Datatype::Timerange,
            _ => return None,
        })
    }

    /// Parse a config type name. `string` is accepted as an alias of `text`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "text" | "string" => Datatype::Text,
            "int" => Datatype::Int,
            "float" => Datatype::Float,
            "datetime" => Datatype::Datetime,
            _ => return None,
        })
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Stream states with the original winchester integer codes, as stored in
/// `stream.state` and named on the REST API. One definition for every crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum StreamState {
    Active = 1,
    Firing = 2,
    Expiring = 3,
    Error = 4,
    ExpireError = 5,
    Completed = 6,
    RetryFire = 7,
    RetryExpire = 8,
}

impl StreamState {
    pub const ALL: [StreamState; 8] = [
        StreamState::Active,
        StreamState::Firing,
        StreamState::Expiring,
        StreamState::Error,
        StreamState::ExpireError,
        StreamState::Completed,
        StreamState::RetryFire,
        StreamState::RetryExpire,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: impl Into<i64>) -> Option<Self> {
        let code = code.into();
        StreamState::ALL
            .into_iter()
            .find(|s| i64::from(s.code()) == code)
    }

    /// The wire name (`active`, `expire_error`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StreamState::Active => "active",
            StreamState::Firing => "firing",
            StreamState::Expiring => "expiring",
            StreamState::Error => "error",
            StreamState::ExpireError => "expire_error",
            StreamState::Completed => "completed",
            StreamState::RetryFire => "retry_fire",
            StreamState::RetryExpire => "retry_expire",
        }
    }

    /// Case-insensitive lookup by wire name (the original did `StreamState[state.lower()]`).
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        StreamState::ALL.into_iter().find(|s| s.name() == lower)
    }

    /// The state a reset moves this state to: error→retry_fire, expire_error→retry_expire.
    pub fn reset_target(self) -> Option<StreamState> {
        match self {
            StreamState::Error => Some(StreamState::RetryFire),
            StreamState::ExpireError => Some(StreamState::RetryExpire),
            _ => None,
        }
    }
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One typed trait value.
#[derive(Debug, Clone, PartialEq)]
pub enum TraitValue {
    Text(SmolStr),
    Int(i64),
    Float(f64),
    Datetime(Timestamp),
}

impl TraitValue {
    pub fn datatype(&self) -> Datatype {
        match self {
            TraitValue::Text(_) => Datatype::Text,
            TraitValue::Int(_) => Datatype::Int,
            TraitValue::Float(_) => Datatype::Float,
            TraitValue::Datetime(_) => Datatype::Datetime,
        }
    }

    pub fn as_datetime(&self) -> Option<Timestamp> {
        match self {
            TraitValue::Datetime(t) => Some(*t),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            TraitValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Canonical JSON value: text as a string, int as an integer, float as a
    /// number, datetime as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub fn to_json(&self) -> Value {
        match self {
            TraitValue::Text(s) => Value::String(s.to_string()),
            TraitValue::Int(i) => Value::from(*i),
            TraitValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            TraitValue::Datetime(t) => Value::String(format_timestamp(t)),
        }
    }
}

impl fmt::Display for TraitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraitValue::Text(s) => f.write_str(s),
            TraitValue::Int(i) => write!(f, "{i}"),
            TraitValue::Float(x) => write!(f, "{x}"),
            TraitValue::Datetime(t) => f.write_str(&format_timestamp(t)),
        }
    }
}

/// A distilled event: the envelope plus typed traits (sorted by name).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub message_id: String,
    pub event_type: String,
    /// The notification's own time (`timestamp`, else `_context_timestamp`, else now).
    pub generated: Timestamp,
    pub traits: Traits,
}

impl Event {
    pub fn new(
        message_id: impl Into<String>,
        event_type: impl Into<String>,
        generated: Timestamp,
    ) -> Self {
        Event {
            message_id: message_id.into(),
            event_type: event_type.into(),
            generated,
            traits: Traits::new(),
        }
    }

    pub fn with_trait(mut self, name: impl Into<SmolStr>, value: TraitValue) -> Self {
        self.traits.insert(name.into(), value);
        self
    }

    /// Look up a field the way winchester's flat event dict does: the
    /// envelope keys `message_id`, `event_type` and `timestamp` first, then traits.
    pub fn get(&self, name: &str) -> Option<TraitValue> {
        match name {
            "message_id" => Some(TraitValue::Text(self.message_id.as_str().into())),
            "event_type" => Some(TraitValue::Text(self.event_type.as_str().into())),
            "timestamp" => Some(TraitValue::Datetime(self.generated)),
            _ => self.traits.get(name).cloned(),
        }
    }

    /// Every datetime-valued field, including `timestamp` (= generated).
    /// These are the variables bound when a timex criterion is evaluated.
    pub fn datetime_fields(&self) -> BTreeMap<String, Timestamp> {
        let mut out: BTreeMap<String, Timestamp> = self
            .traits
            .iter()
            .filter_map(|(k, v)| v.as_datetime().map(|t| (k.to_string(), t)))
            .collect();
        out.insert("timestamp".to_string(), self.generated);
        out
    }

    /// The canonical JSON form shared by every stv3 tool (and the Python oracle):
    /// `{"event_type","generated","message_id","traits":[{"name","type","value"}...]}`,
    /// keys sorted, traits sorted by name.
    pub fn to_canonical_json(&self) -> Value {
        let traits: Vec<Value> = self
            .traits
            .iter()
            .map(|(name, v)| {
                let mut m = Map::new();
                m.insert("name".into(), Value::String(name.to_string()));
                m.insert("type".into(), Value::String(v.datatype().name().into()));
                m.insert("value".into(), v.to_json());
                Value::Object(m)
            })
            .collect();
        let mut m = Map::new();
        m.insert("event_type".into(), Value::String(self.event_type.clone()));
        m.insert(
            "generated".into(),
            Value::String(format_timestamp(&self.generated)),
        );
        m.insert("message_id".into(), Value::String(self.message_id.clone()));
        m.insert("traits".into(), Value::Array(traits));
        Value::Object(m)
    }

    /// One compact canonical line (no trailing newline).
    /// Written directly (no `Value` tree), byte for byte what
    /// `to_canonical_json().to_string()` gives.
    pub fn to_canonical_line(&self) -> String {
        let mut out = Vec::with_capacity(96 + 64 * self.traits.len());
        out.extend_from_slice(b"{\"event_type\":");
        write_json_str(&mut out, &self.event_type);
        out.extend_from_slice(b",\"generated\":\"");
        write_timestamp(&mut out, &self.generated);
        out.extend_from_slice(b"\",\"message_id\":");
        write_json_str(&mut out, &self.message_id);
        out.extend_from_slice(b",\"traits\":[");
        for (i, (name, v)) in self.traits.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            write_json_str(&mut out, name);
            out.extend_from_slice(b",\"type\":\"");
            out.extend_from_slice(v.datatype().name().as_bytes());
            out.extend_from_slice(b"\",\"value\":");
            match v {
                TraitValue::Text(s) => write_json_str(&mut out, s),
                TraitValue::Int(i) => {
                    let _ = std::io::Write::write_fmt(&mut out, format_args!("{i}"));
                }
                // serde_json's own float writer (NaN and infinities: null)
                TraitValue::Float(f) => {
                    serde_json::to_writer(&mut out, f).expect("writing to a Vec");
                }
                TraitValue::Datetime(t) => {
                    out.push(b'"');
                    write_timestamp(&mut out, t);
                    out.push(b'"');
                }
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        String::from_utf8(out).expect("JSON text is UTF-8")
    }

    /// A flat object (`{trait..., message_id, event_type, timestamp}`), the
    /// shape winchester pipelines and the replay output use.
    pub fn to_flat_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.traits {
            m.insert(k.to_string(), v.to_json());
        }
        m.insert("event_type".into(), Value::String(self.event_type.clone()));
        m.insert("message_id".into(), Value::String(self.message_id.clone()));
        m.insert(
            "timestamp".into(),
            Value::String(format_timestamp(&self.generated)),
        );
        Value::Object(sort_object(m))
    }
}

fn sort_object(m: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// A JSON string literal, escaped by serde_json.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to a Vec");
}

/// [`format_timestamp`] into a buffer, digit by digit for years 0-9999
/// (and no leap second).
fn write_timestamp(out: &mut Vec<u8>, t: &Timestamp) {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) || t.nanosecond() >= 1_000_000_000 {
        out.extend_from_slice(format_timestamp(t).as_bytes());
        return;
    }
    let micros = t.nanosecond() / 1000;
    fn digits(out: &mut Vec<u8>, v: u32, n: u32) {
        for i in (0..n).rev() {
            out.push(b'0' + (v / 10u32.pow(i) % 10) as u8);
        }
    }
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    digits(out, t.second(), 2);
    out.push(b'.');
    digits(out, micros, 6);
    out.push(b'Z');
}

/// Format a timestamp canonically: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, always 6 fractional digits.
pub fn format_timestamp(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Errors from [`parse_timestamp`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid datetime {input:?}: {reason}")]
pub struct TimestampError {
    pub input: String,
    pub reason: &'static str,
}

/// Parse an ISO-8601 datetime the way the original (`iso8601.parse_date`) did:
/// `T` or space separator, optional fraction, optional `Z` or `±HH:MM` offset
/// (converted to UTC); a naive value is UTC. A bare date is midnight UTC.
pub fn parse_timestamp(input: &str) -> Result<Timestamp, TimestampError> {
    let err = |reason| TimestampError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.len() < 10 {
        return Err(err("too short"));
    }
    // Digit-level parse of `YYYY-MM-DD` (hot path: every datetime trait of
    // every notification). Checking the bytes first also makes the slice
    // below safe for non-ASCII input.
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = match (digits(0..4), b[4], digits(5..7), b[7], digits(8..10)) {
        (Some(y), b'-', Some(m), b'-', Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d),
        _ => None,
    }
    .ok_or_else(|| err("bad date part"))?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight"));
    }
    let sep = rest.as_bytes()[0];
    if sep != b'T' && sep != b't' && sep != b' ' {
        return Err(err("expected 'T' or ' ' after the date"));
    }
    let time = &rest[1..];
    // Hot path: `HH:MM:SS[.ffffff][Z]`, what Nova and oslo send.
    if let Some(t) = plain_clock(time.as_bytes()) {
        return Ok(date.and_time(t));
    }
    // Split off a zone suffix.
    let (clock, offset_secs) = split_zone(time).ok_or_else(|| err("bad zone offset"))?;
    let naive_time = parse_clock(clock).ok_or_else(|| err("bad time part"))?;
    let local = date.and_time(naive_time);
    local
        .checked_sub_signed(chrono::Duration::seconds(offset_secs))
        .ok_or_else(|| err("zone offset moves the time out of range"))
}

/// `HH:MM:SS`, an optional `.`/`,` fraction (first 6 digits used) and an
/// optional `Z`: the same result as the general path below, without its
/// splitting and number parsing. `None` for anything else.
fn plain_clock(t: &[u8]) -> Option<chrono::NaiveTime> {
    let t = match t.last() {
        Some(b'Z' | b'z') => &t[..t.len() - 1],
        _ => t,
    };
    if t.len() < 8 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<u32> {
        let (a, b) = (t[i].wrapping_sub(b'0'), t[i + 1].wrapping_sub(b'0'));
        (a < 10 && b < 10).then(|| u32::from(a) * 10 + u32::from(b))
    };
    let (h, m, s) = (two(0)?, two(3)?, two(6)?);
    let micros = match t.get(8) {
        None => 0,
        Some(b'.' | b',') if t.len() > 9 => {
            let frac = &t[9..];
            if !frac.iter().all(u8::is_ascii_digit) {
                return None;
            }
            (0..6).fold(0u32, |acc, i| {
                acc * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'))
            })
        }
        Some(_) => return None,
    };
    chrono::NaiveTime::from_hms_micro_opt(h, m, s, micros)
}

fn split_zone(time: &str) -> Option<(&str, i64)> {
    if let Some(stripped) = time.strip_suffix('Z').or_else(|| time.strip_suffix('z')) {
        return Some((stripped, 0));
    }
    // Look for a +/- after the clock part (position >= 2 so we never take a sign at 0).
    if let Some(pos) = time.rfind(['+', '-']) {
        if pos >= 2 {
            let (clock, zone) = time.split_at(pos);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let z = &zone[1..];
            let (h, m) = if let Some((h, m)) = z.split_once(':') {
                (h, m)
            } else if z.len() == 4 {
                (&z[..2], &z[2..])
            } else {
                (z, "0")
            };
            let h: i64 = h.parse().ok()?;
            let m: i64 = m.parse().ok()?;
            // A real offset is under a day; bounding it keeps the arithmetic
            // below (and the subtraction from the date) from overflowing on
            // input like `+9999999999:00`.
            if !(0..=99).contains(&h) || !(0..=59).contains(&m) {
                return None;
            }
            return Some((clock, sign * (h * 3600 + m * 60)));
        }
    }
    Some((time, 0))
}

fn parse_clock(clock: &str) -> Option<chrono::NaiveTime> {
    let (hms, frac) = match clock.split_once(['.', ',']) {
        Some((a, b)) => (a, Some(b)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(0))?;
    let s: u32 = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(0))?;
    if parts.next().is_some() {
        return None;
    }
    let micros = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut digits: String = f.chars().take(6).collect();
            while digits.len() < 6 {
                digits.push('0');
            }
            digits.parse().ok()?
        }
        Some(_) => return None,
    };
    chrono::NaiveTime::from_hms_micro_opt(h, m, s, micros)
}

/// A URL with its password replaced by `***`, for messages and logs
/// (`mysql://u:secret@h/db` → `mysql://u:***@h/db`). Shared by every crate
/// that prints a database or broker URL.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.rsplit_once('@') {
            if let Some((user, _pw)) = auth.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

/// Wall-clock now, as naive UTC.
pub fn now() -> Timestamp {
    Utc::now().naive_utc()
}

/// Convert an aware UTC datetime to the naive-UTC convention.
pub fn from_utc(t: DateTime<Utc>) -> Timestamp {
    t.naive_utc()
}

/// Microseconds since the Unix epoch (the store's portable representation).
pub fn to_micros(t: &Timestamp) -> i64 {
    t.and_utc().timestamp_micros()
}

/// Inverse of [`to_micros`].
pub fn from_micros(us: i64) -> Timestamp {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        let got = parse_timestamp(input).ok().map(|t| format_timestamp(&t));
        assert_eq!(got.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn parses_the_formats_nova_emits() {
        check(
            "2013-08-08 21:06:37.803826",
            Some("2013-08-08T21:06:37.803826Z"),
        );
        check(
            "2013-08-08T21:06:37.803826",
            Some("2013-08-08T21:06:37.803826Z"),
        );
        check("2013-08-08T21:06:37Z", Some("2013-08-08T21:06:37.000000Z"));
        check(
            "2013-08-08T21:06:37+02:00",
            Some("2013-08-08T19:06:37.000000Z"),
        );
        check(
            "2013-08-08T21:06:37.5-0130",
            Some("2013-08-08T22:36:37.500000Z"),
        );
        check("2013-08-08 21:06", Some("2013-08-08T21:06:00.000000Z"));
        check("2013-08-08", Some("2013-08-08T00:00:00.000000Z"));
        check("2012-05-08 20:23:41", Some("2012-05-08T20:23:41.000000Z"));
        check("", None);
        check("yesterday", None);
        // hostile zone offsets (issue #9): an error, never an overflow panic
        check("2015-03-01T18:01:00+9999999999:00", None);
        check("2015-03-01T18:01:00-99999999999999999:00", None);
        check("2015-03-01T18:01:00+99:60", None);
        check(
            "0000-01-01T00:00:00+99:59",
            Some("-0001-12-27T20:01:00.000000Z"),
        );
        check("2013-13-08 21:06:37", None);
        check("2013-08-08X21:06:37", None);
        check("2015-03-0\u{e9}T00:00:00", None);
        check("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}", None);
        check("2015/03/01 00:00:00", None);
        check("2015-02-29 00:00:00", None);
        check(
            "2016-02-29 23:59:59.999999",
            Some("2016-02-29T23:59:59.999999Z"),
        );
        check("2013-08-08 21:06:37.8", Some("2013-08-08T21:06:37.800000Z"));
        check(
            "2013-08-08 21:06:37,1234567z",
            Some("2013-08-08T21:06:37.123456Z"),
        );
        check("2013-08-08 21:06:37.", None);
        check("2013-08-08 21:06:37.5x", None);
        check("2013-08-08 24:00:00", None);
        check("2013-08-08 21:60:00", None);
        check("2013-08-08 2a:06:37", None);
    }

    #[test]
    fn the_hot_path_agrees_with_the_general_parser() {
        // every clock the fast path takes must read the same through the
        // general path (zone splitting + parse_clock)
        for clock in [
            "00:00:00",
            "23:59:59.999999",
            "21:06:37.8",
            "21:06:37,80",
            "21:06:37.1234567",
            "21:06:37Z",
            "21:06:37.5z",
            "09:05:01.000001",
        ] {
            let fast = plain_clock(clock.as_bytes()).expect(clock);
            let (c, off) = split_zone(clock).unwrap();
            assert_eq!(off, 0);
            assert_eq!(parse_clock(c), Some(fast), "{clock}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_traits() {
        let t = parse_timestamp("2015-03-01 18:01:00").unwrap();
        let e = Event::new("m1", "compute.instance.update", t)
            .with_trait("zeta", TraitValue::Int(3))
            .with_trait("alpha", TraitValue::Text("x".into()))
            .with_trait("when", TraitValue::Datetime(t))
            .with_trait("f", TraitValue::Float(1.5));
        assert_eq!(
            e.to_canonical_line(),
            r#"{"event_type":"compute.instance.update","generated":"2015-03-01T18:01:00.000000Z","message_id":"m1","traits":[{"name":"alpha","type":"text","value":"x"},{"name":"f","type":"float","value":1.5},{"name":"when","type":"datetime","value":"2015-03-01T18:01:00.000000Z"},{"name":"zeta","type":"int","value":3}]}"#
        );
    }

    #[test]
    fn canonical_line_is_the_canonical_json_text() {
        let t = parse_timestamp("2015-03-01 18:01:00.000007").unwrap();
        let far = chrono::NaiveDate::from_ymd_opt(12345, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 6)
            .unwrap();
        let early = chrono::NaiveDate::from_ymd_opt(7, 8, 9)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 999_999)
            .unwrap();
        let mut events = vec![Event::new("m", "t", t)];
        let mut e = Event::new("m\"1\\é\u{1}\u{7f}\u{2028}", "compute.\n\tx", early)
            .with_trait("a", TraitValue::Text("x\"y\\z\u{0}\u{1f}ü😀".into()))
            .with_trait("", TraitValue::Text(SmolStr::default()))
            .with_trait("when", TraitValue::Datetime(far));
        for (i, f) in [
            0.0,
            -0.0,
            1.5,
            1e16,
            1e-7,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
        ]
        .into_iter()
        .enumerate()
        {
            e = e.with_trait(format!("f{i}"), TraitValue::Float(f));
        }
        for (i, n) in [0, -1, i64::MIN, i64::MAX, 42].into_iter().enumerate() {
            e = e.with_trait(format!("i{i}"), TraitValue::Int(n));
        }
        events.push(e);
        for e in &events {
            assert_eq!(e.to_canonical_line(), e.to_canonical_json().to_string());
        }
    }

    #[test]
    fn stream_state_codes_and_names() {
        for (code, name) in [
            (1, "active"),
            (2, "firing"),
            (5, "expire_error"),
            (8, "retry_expire"),
        ] {
            let st = StreamState::from_code(code).unwrap();
            assert_eq!((st.code(), st.name()), (code, name));
            assert_eq!(StreamState::from_name(&name.to_uppercase()), Some(st));
        }
        assert_eq!(StreamState::from_code(0), None);
        assert_eq!(StreamState::from_code(9i64), None);
        assert_eq!(
            StreamState::Error.reset_target(),
            Some(StreamState::RetryFire)
        );
        assert_eq!(StreamState::Active.reset_target(), None);
    }

    #[test]
    fn micros_round_trip() {
        let t = parse_timestamp("2015-03-01 18:01:00.123456").unwrap();
        assert_eq!(from_micros(to_micros(&t)), t);
    }
}
