//! Query-parameter parsing with the original's names and leniency, but real
//! 400 errors instead of 500s: datetimes, `k:v;k:v` trait lists (split on the
//! first `:` only, typed), states, `mark`, `limit` and `details`. Pure.

use std::collections::BTreeMap;

use stv3_event::{parse_timestamp, to_micros, Timestamp};

use crate::error::ApiError;
use crate::model::{EventQuery, Mark, StreamQuery, StreamState, TraitFilter};

/// Query parameters as falcon saw them: the last value of a repeated name
/// wins and blank values count as absent.
#[derive(Debug, Clone, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut m = BTreeMap::new();
        for (k, v) in pairs {
            if v.trim().is_empty() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
        Params(m)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Paging limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub default: u32,
    pub max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default: 200,
            max: 1000,
        }
    }
}

/// A lenient datetime parser (the original used `dateutil.parser.parse`):
/// ISO-8601 with `T` or space, optional seconds/fraction/zone (converted to
/// UTC), a bare date, `MM-DD-YYYY[Thh:mm[:ss]]` (the klugman README form) and
/// `/` as the date separator (`YYYY/MM/DD`, `MM/DD/YYYY`).
pub fn parse_datetime(raw: &str) -> Option<Timestamp> {
    let s = raw.trim();
    if let Ok(t) = parse_timestamp(s) {
        return Some(t);
    }
    let normalized: String = s
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 10 && c == '/' { '-' } else { c })
        .collect();
    if let Ok(t) = parse_timestamp(&normalized) {
        return Some(t);
    }
    // MM-DD-YYYY...
    let b = normalized.as_bytes();
    if b.len() >= 10
        && b[2] == b'-'
        && b[5] == b'-'
        && b[..10]
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
    {
        let iso = format!(
            "{}-{}-{}{}",
            &normalized[6..10],
            &normalized[0..2],
            &normalized[3..5],
            &normalized[10..]
        );
        return parse_timestamp(&iso).ok();
    }
    None
}

fn datetime_param(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some(raw) => parse_datetime(raw)
            .map(|t| Some(to_micros(&t)))
            .ok_or_else(|| {
                ApiError::bad(
                    name,
                    format!("cannot parse {raw:?} as a datetime (use e.g. 2015-02-28T13:30:00)"),
                )
            }),
    }
}

/// `limit`: absent → default; a non-negative integer, clamped to the maximum.
pub fn parse_limit(raw: Option<&str>, limits: Limits) -> Result<u32, ApiError> {
    match raw {
        None => Ok(limits.default.min(limits.max)),
        Some(s) => {
            let n: i64 = s
                .trim()
                .parse()
                .map_err(|_| ApiError::bad("limit", format!("{s:?} is not an integer")))?;
            if n < 0 {
                return Err(ApiError::bad("limit", format!("{n} is negative")));
            }
            Ok(n.min(limits.max as i64) as u32)
        }
    }
}

/// `mark`: see [`Mark`]. A leading space is read as `+` (an unescaped `+` in a
/// query string decodes to a space).
pub fn parse_mark(raw: Option<&str>) -> Result<Mark, ApiError> {
    let Some(raw) = raw else {
        return Ok(Mark::default());
    };
    let s = raw.trim_end();
    let (ascending, hex) = if let Some(rest) = s.strip_prefix('+').or_else(|| s.strip_prefix(' ')) {
        (true, rest.trim_start())
    } else if let Some(rest) = s.strip_prefix('-') {
        (false, rest)
    } else {
        (false, s)
    };
    if hex.is_empty() {
        return Ok(Mark {
            ascending,
            bound: None,
        });
    }
    let bound = Some(hex)
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|h| i64::from_str_radix(h, 16).ok())
        .ok_or(())
        .map_err(|()| {
            ApiError::bad(
                "mark",
                format!("{raw:?} is not a mark (hex id, optionally prefixed by + or -)"),
            )
        })?;
    Ok(Mark {
        ascending,
        bound: Some(bound),
    })
}

/// `state`: one of the eight state names, case-insensitive.
pub fn parse_state(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw {
        None => Ok(None),
        Some(s) => StreamState::from_name(s)
            .map(|st| Some(i64::from(st.code())))
            .ok_or_else(|| {
                let names: Vec<&str> = StreamState::ALL.iter().map(|s| s.name()).collect();
                ApiError::bad(
                    "state",
                    format!("unknown state {s:?}; expected one of {}", names.join(", ")),
                )
            }),
    }
}

fn looks_numeric(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

/// One filter value, typed: always text; also int, float and datetime when it parses as such.
pub fn trait_filter(name: &str, value: &str) -> TraitFilter {
    let float = if looks_numeric(value) {
        value.parse::<f64>().ok().filter(|f| f.is_finite())
    } else {
        None
    };
    // `2048.0` also matches the int 2048.
    let int = value.parse::<i64>().ok().or_else(|| {
        float
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    let datetime = if value.len() >= 8 && !looks_numeric(value) {
        parse_datetime(value).map(|t| to_micros(&t))
    } else {
        None
    };
    TraitFilter {
        name: name.to_string(),
        text: value.to_string(),
        int,
        float,
        datetime,
    }
}

/// `k:v;k:v`. Pairs split on the **first** `:` (so values may contain `:`);
/// names and values are trimmed; an empty trailing pair is ignored; a pair
/// without `:` or with an empty name is a 400. Duplicate names: the last wins.
pub fn parse_traits(raw: Option<&str>, param: &str) -> Result<Vec<TraitFilter>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut out: Vec<TraitFilter> = Vec::new();
    for pair in raw.split(';') {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once(':') else {
            return Err(ApiError::bad(
                param,
                format!("{pair:?} is not name:value (pairs are separated by ';')"),
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(ApiError::bad(
                param,
                format!("{pair:?} has an empty trait name"),
            ));
        }
        out.retain(|f| f.name != name);
        out.push(trait_filter(name, value));
    }
    Ok(out)
}

/// `details`: absent, empty, `false`, `0`, `no`, `off` → false; anything else → true.
pub fn parse_details(raw: Option<&str>) -> bool {
    match raw {
        None => false,
        Some(s) => !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "0" | "no" | "off" | "n" | "f"
        ),
    }
}

pub fn stream_query(p: &Params, limits: Limits) -> Result<StreamQuery, ApiError> {
    Ok(StreamQuery {
        older_than: datetime_param(p, "older_than")?,
        younger_than: datetime_param(p, "younger_than")?,
        state: parse_state(p.get("state"))?,
        trigger_name: p.get("trigger_name").map(str::to_string),
        traits: parse_traits(p.get("distinguishing_traits"), "distinguishing_traits")?,
        mark: parse_mark(p.get("mark"))?,
        limit: parse_limit(p.get("limit"), limits)?,
    })
}

pub fn event_query(p: &Params, limits: Limits) -> Result<EventQuery, ApiError> {
    Ok(EventQuery {
        from: datetime_param(p, "from_datetime")?,
        to: datetime_param(p, "to_datetime")?,
        event_name: p.get("event_name").map(str::to_string),
        traits: parse_traits(p.get("traits"), "traits")?,
        mark: parse_mark(p.get("mark"))?,
        limit: parse_limit(p.get("limit"), limits)?,
    })
}

/// A stream id path segment.
pub fn parse_stream_id(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| ApiError::bad("stream_id", format!("{raw:?} is not an integer stream id")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stv3_event::format_timestamp;

    fn check_dt(input: &str, expected: Option<&str>) {
        let got = parse_datetime(input).map(|t| format_timestamp(&t));
        assert_eq!(got.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn datetimes() {
        check_dt("2015-02-28T13:30", Some("2015-02-28T13:30:00.000000Z"));
        check_dt(
            "2015-02-28 13:30:05.25",
            Some("2015-02-28T13:30:05.250000Z"),
        );
        check_dt("2015-02-28", Some("2015-02-28T00:00:00.000000Z"));
        check_dt(
            "2015-02-28T13:30:00+01:00",
            Some("2015-02-28T12:30:00.000000Z"),
        );
        check_dt("01-31-2015T13:30", Some("2015-01-31T13:30:00.000000Z"));
        check_dt("2015/01/31", Some("2015-01-31T00:00:00.000000Z"));
        check_dt("01/31/2015 10:00", Some("2015-01-31T10:00:00.000000Z"));
        check_dt("yesterday", None);
        check_dt("2015-13-01", None);
        check_dt("", None);
    }

    fn check_mark(input: Option<&str>, expected: Option<(bool, Option<i64>)>) {
        let got = parse_mark(input).ok().map(|m| (m.ascending, m.bound));
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn marks() {
        check_mark(None, Some((false, None)));
        check_mark(Some("1a"), Some((false, Some(26))));
        check_mark(Some("-1a"), Some((false, Some(26))));
        check_mark(Some("-"), Some((false, None)));
        check_mark(Some("+"), Some((true, None)));
        check_mark(Some("+ff"), Some((true, Some(255))));
        check_mark(Some(" ff"), Some((true, Some(255))));
        check_mark(Some("zz"), None);
        check_mark(Some("+-1"), None);
    }

    type Parsed<'a> = Result<Vec<(&'a str, &'a str, Option<i64>, bool)>, ()>;

    fn check_traits(input: &str, expected: Parsed<'_>) {
        let got = parse_traits(Some(input), "traits")
            .map(|v| {
                v.iter()
                    .map(|f| (f.name.clone(), f.text.clone(), f.int, f.datetime.is_some()))
                    .collect::<Vec<_>>()
            })
            .map_err(|_| ());
        let expected = expected.map(|v| {
            v.into_iter()
                .map(|(n, t, i, d)| (n.to_string(), t.to_string(), i, d))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn trait_lists() {
        check_traits("a:1", Ok(vec![("a", "1", Some(1), false)]));
        check_traits(
            " a : x ; b:y;",
            Ok(vec![("a", "x", None, false), ("b", "y", None, false)]),
        );
        check_traits(
            "launched_at:2015-01-01T10:00",
            Ok(vec![("launched_at", "2015-01-01T10:00", None, true)]),
        );
        check_traits("a:1;a:2", Ok(vec![("a", "2", Some(2), false)]));
        check_traits(
            "url:http://x:8/y",
            Ok(vec![("url", "http://x:8/y", None, false)]),
        );
        check_traits("a", Err(()));
        check_traits(":v", Err(()));
        check_traits("a:1;junk", Err(()));
    }

    #[test]
    fn trait_filter_types() {
        let f = trait_filter("x", "1.5");
        assert_eq!((f.int, f.float, f.datetime), (None, Some(1.5), None));
        let f = trait_filter("x", "512");
        assert_eq!((f.int, f.float, f.datetime), (Some(512), Some(512.0), None));
        let f = trait_filter("x", "inf");
        assert_eq!((f.int, f.float), (None, None));
        let f = trait_filter("x", "20150101");
        assert_eq!(f.datetime, None);
    }

    #[test]
    fn limits_states_details() {
        let l = Limits {
            default: 200,
            max: 1000,
        };
        assert_eq!(parse_limit(None, l).unwrap(), 200);
        assert_eq!(parse_limit(Some("5"), l).unwrap(), 5);
        assert_eq!(parse_limit(Some("0"), l).unwrap(), 0);
        assert_eq!(parse_limit(Some("5000"), l).unwrap(), 1000);
        assert!(parse_limit(Some("-1"), l).is_err());
        assert!(parse_limit(Some("ten"), l).is_err());
        assert_eq!(parse_state(Some("Expire_Error")).unwrap(), Some(5));
        assert!(parse_state(Some("collecting")).is_err());
        for (raw, want) in [
            (None, false),
            (Some("false"), false),
            (Some("0"), false),
            (Some("True"), true),
            (Some("yes"), true),
        ] {
            assert_eq!(parse_details(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn blank_params_are_absent_and_last_wins() {
        let p = Params::from_pairs(vec![
            ("state".into(), "".into()),
            ("limit".into(), "5".into()),
            ("limit".into(), "7".into()),
        ]);
        assert_eq!(p.get("state"), None);
        assert_eq!(p.get("limit"), Some("7"));
    }
}
