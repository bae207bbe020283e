//! Quarantine for poison messages: one JSON line per message in `quarantine.jsonl`
//! (fsynced) and, for AMQP consumers, a copy published with confirms to the durable
//! queue `<queue>.quarantine` (default exchange) with the reason in `x-stv3-reason`.
//! Both happen before the original is acked. [`read_records`] feeds
//! `yagi-event replay-quarantine`.
//!
//! Record fields: `ts` (UTC), `consumer`, `queue`, `exchange`, `routing_key`, `reason`
//! (a [`Reason`] code), `detail`, `message_id` (when readable), and the body as `body`
//! (text, when UTF-8) or `body_base64`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use stv3_amqp::{OutMessage, Publisher};

use crate::parse::Poison;

/// One quarantined message.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    pub ts: String,
    pub consumer: String,
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
    pub reason: String,
    pub detail: String,
    pub message_id: Option<String>,
    pub body: Vec<u8>,
}

impl QuarantineRecord {
    pub fn new(
        consumer: &str,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        p: &Poison,
    ) -> Self {
        QuarantineRecord {
            ts: stv3_event::format_timestamp(&stv3_event::now()),
            consumer: consumer.to_string(),
            queue: queue.to_string(),
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            reason: p.reason.code().to_string(),
            detail: p.detail.clone(),
            message_id: p.message_id.clone(),
            body: body.to_vec(),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "ts": self.ts, "consumer": self.consumer, "queue": self.queue, "exchange": self.exchange,
            "routing_key": self.routing_key, "reason": self.reason, "detail": self.detail,
            "message_id": self.message_id,
        });
        match std::str::from_utf8(&self.body) {
            Ok(s) => v["body"] = Value::String(s.to_string()),
            Err(_) => v["body_base64"] = Value::String(base64_encode(&self.body)),
        }
        v
    }

    pub fn from_json(v: &Value) -> Result<Self, String> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let body = if let Some(b) = v.get("body").and_then(|b| b.as_str()) {
            b.as_bytes().to_vec()
        } else if let Some(b) = v.get("body_base64").and_then(|b| b.as_str()) {
            base64_decode(b)?
        } else {
            return Err("record has neither body nor body_base64".into());
        };
        Ok(QuarantineRecord {
            ts: s("ts"),
            consumer: s("consumer"),
            queue: s("queue"),
            exchange: s("exchange"),
            routing_key: s("routing_key"),
            reason: s("reason"),
            detail: s("detail"),
            message_id: v
                .get("message_id")
                .and_then(|x| x.as_str())
                .map(str::to_string),
            body,
        })
    }

    /// The copy published to `<queue>.quarantine`.
    pub fn to_amqp(&self) -> OutMessage {
        let mut m = OutMessage::raw("", &format!("{}.quarantine", self.queue), self.body.clone())
            .with_header("x-stv3-reason", &self.reason)
            .with_header("x-stv3-detail", &self.detail)
            .with_header("x-stv3-queue", &self.queue)
            .with_header("x-original-exchange", &self.exchange)
            .with_header("x-original-routing-key", &self.routing_key);
        m.message_id = self.message_id.clone();
        m
    }
}

/// Where quarantined messages go.
pub struct Quarantine {
    path: PathBuf,
    file: Option<File>,
    publisher: Option<Publisher>,
}

impl Quarantine {
    /// Local file only (file/stdin sources, tests).
    pub fn file_only(dir: &Path) -> Self {
        Quarantine {
            path: dir.join("quarantine.jsonl"),
            file: None,
            publisher: None,
        }
    }

    /// Local file plus the `<queue>.quarantine` AMQP queue through `publisher`.
    pub fn with_publisher(dir: &Path, publisher: Publisher) -> Self {
        Quarantine {
            path: dir.join("quarantine.jsonl"),
            file: None,
            publisher: Some(publisher),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The topology a quarantine publisher declares: the durable `<queue>.quarantine`.
    pub fn topology(queue: &str) -> stv3_amqp::Topology {
        stv3_amqp::Topology {
            queues: vec![stv3_amqp::QueueSpec {
                name: format!("{queue}.quarantine"),
                durable: true,
                auto_delete: false,
                arguments: vec![],
            }],
            ..Default::default()
        }
    }

    /// Write (fsync) and publish (confirmed) every record; Ok means all are durable.
    pub async fn put(&mut self, records: &[QuarantineRecord]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| anyhow::anyhow!("open {}: {e}", self.path.display()))?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        let mut buf = String::new();
        for r in records {
            buf.push_str(&r.to_json().to_string());
            buf.push('\n');
        }
        f.write_all(buf.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| {
                self.file = None;
                anyhow::anyhow!("write {}: {e}", self.path.display())
            })?;
        if let Some(p) = &mut self.publisher {
            let msgs: Vec<OutMessage> = records.iter().map(QuarantineRecord::to_amqp).collect();
            p.publish_at_rate(msgs, None, None).await?;
        }
        Ok(())
    }
}

/// Read a quarantine file; errors name the line.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<QuarantineRecord>> {
    let f = File::open(path).map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        out.push(
            QuarantineRecord::from_json(&v)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64
            .iter()
            .position(|&x| x == c)
            .ok_or_else(|| format!("invalid base64 character {:?}", c as char))?
            as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Reason;

    #[test]
    fn base64_round_trip() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"\xff\x00\xfe", "/wD+"),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).unwrap(), raw);
        }
        assert!(base64_decode("a$").is_err());
    }

    #[test]
    fn records_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Quarantine::file_only(dir.path());
        let p = Poison {
            reason: Reason::NotUtf8,
            detail: "bad".into(),
            message_id: None,
        };
        let a = QuarantineRecord::new("c", "q", "nova", "monitor.info", &[0xff, 0x01], &p);
        let p2 = Poison {
            reason: Reason::MissingEventType,
            detail: "no".into(),
            message_id: Some("m".into()),
        };
        let b = QuarantineRecord::new(
            "c",
            "q",
            "nova",
            "monitor.info",
            b"{\"message_id\":\"m\"}",
            &p2,
        );
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(q.put(&[a.clone(), b.clone()]))
            .unwrap();
        let back = read_records(q.path()).unwrap();
        assert_eq!(back, vec![a, b]);
        let m = back[1].to_amqp();
        assert_eq!(m.routing_key, "q.quarantine");
        assert!(m
            .headers
            .contains(&("x-stv3-reason".into(), "missing_event_type".into())));
    }
}
