//! The sandbox's live status: counts read from the running API and metrics
//! scraped from the ingest processes, rendered as one line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One status sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSample {
    pub events: u64,
    /// (state name, count) in the original state order.
    pub streams: Vec<(String, u64)>,
    pub consumed: u64,
    pub errors: u64,
}

/// The stream states as the API names them, in code order.
pub const STATES: &[&str] = &[
    "active",
    "firing",
    "expiring",
    "error",
    "expire_error",
    "completed",
    "retry_fire",
    "retry_expire",
];

/// A minimal HTTP/1.0 GET against a local address. Returns (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Parse the API's count shape: `[{"count": n}]` (v1) or `{"count": n}`.
pub fn parse_count(body: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let obj = if v.is_array() { v.get(0)?.clone() } else { v };
    obj.get("count")?.as_u64()
}

/// Sum every sample of a Prometheus counter (all label sets) in a /metrics body.
pub fn metric_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ') | Some(b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Sample the API for counts.
pub fn sample_api(api: &str) -> StatusSample {
    let mut s = StatusSample::default();
    if let Ok((200, body)) = http_get(api, "/v1/events/count") {
        s.events = parse_count(&body).unwrap_or(0);
    }
    for st in STATES {
        if let Ok((200, body)) = http_get(api, &format!("/v1/streams/count?state={st}")) {
            let n = parse_count(&body).unwrap_or(0);
            if n > 0 {
                s.streams.push((st.to_string(), n));
            }
        }
    }
    s
}

/// Render one status line.
pub fn render(s: &StatusSample, rate: f64, fired: u64) -> String {
    let streams = if s.streams.is_empty() {
        "none".to_string()
    } else {
        s.streams
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "notifications/s {rate:>8.0} | events {:>8} | streams {streams} | fired pipelines {fired} | errors {}",
        s.events, s.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_count_shapes() {
        for (body, want) in [
            (r#"[{"count": 12}]"#, Some(12)),
            (r#"{"count":3}"#, Some(3)),
            ("oops", None),
            ("[]", None),
        ] {
            assert_eq!(parse_count(body), want, "{body}");
        }
    }

    #[test]
    fn sums_counters_across_labels() {
        let m = "# TYPE x counter\nyagi_consumed_total{queue=\"a\"} 10\nyagi_consumed_total{queue=\"b\"} 5\nyagi_consumed_total_other 99\nyagi_consumed_total 1\n";
        assert_eq!(metric_sum(m, "yagi_consumed_total"), 16);
        assert_eq!(metric_sum(m, "missing"), 0);
    }

    #[test]
    fn renders_a_line() {
        let s = StatusSample {
            events: 10,
            streams: vec![("active".into(), 2), ("completed".into(), 1)],
            consumed: 0,
            errors: 0,
        };
        assert_eq!(
            render(&s, 1234.4, 1),
            "notifications/s     1234 | events       10 | streams active=2 completed=1 | fired pipelines 1 | errors 0"
        );
    }
}
