//! AtomPubHandler: POST matching events as Atom entries to an AtomHopper feed on commit (spec §4.11).
//!
//! Params: `url` (required), `event_types` (globs, `!` excludes, default `*`),
//! `extra_info` ({}; merged into the CUF values), `content_format` (`json` or
//! `cuf_xml`), `title`, `categories`, `auth_user`/`auth_key`/`auth_server`
//! (Rackspace identity; only used when `auth_server` is set), `wait_interval`
//! (30 s), `max_wait` (600 s), `http_timeout` (120 s), and ours: `max_attempts` (5).
//!
//! Send loop: 2xx done; 409 duplicate = done; 400 invalid content = give up;
//! 401 re-authenticate and retry; anything else or a connection error: sleep
//! `min(attempt * wait_interval, max_wait)` and retry, **at most `max_attempts`
//! times** (the original retried forever and blocked the worker, §9.2 item 14).
//! JSON content is the flat event with canonical datetimes (the original had no
//! datetime encoder, so such events never serialized). CUF attribute values are
//! XML-escaped (the original did not escape).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use stv3_event::{Timestamp, TraitValue};
use tokio::sync::RwLock;

use crate::handler::{
    param_f64, param_str, param_str_list, Env, Handler, HandlerError, ParamError, Params,
    PipelineEvent,
};
use crate::handlers::usage::show;
use crate::handlers::HandlerContext;

/// The process-wide auth token (the original cached it class-wide).
#[derive(Debug, Default)]
pub struct TokenCache(RwLock<Option<String>>);

#[derive(Debug, Clone)]
pub struct AtomPubSettings {
    pub url: String,
    pub included: Vec<String>,
    pub excluded: Vec<String>,
    pub extra_info: BTreeMap<String, String>,
    pub cuf_xml: bool,
    pub title: Option<String>,
    pub categories: Vec<String>,
    pub auth_user: String,
    pub auth_key: String,
    pub auth_server: String,
    pub wait_interval: f64,
    pub max_wait: f64,
    pub http_timeout: f64,
    pub max_attempts: u32,
}

pub struct AtomPubHandler {
    settings: AtomPubSettings,
    events: Vec<PipelineEvent>,
    ctx: HandlerContext,
}

pub fn construct(params: &Params, ctx: &HandlerContext) -> Result<Box<dyn Handler>, ParamError> {
    Ok(Box::new(AtomPubHandler {
        settings: settings(params)?,
        events: Vec::new(),
        ctx: ctx.clone(),
    }))
}

/// Parse and check the params.
pub fn settings(params: &Params) -> Result<AtomPubSettings, ParamError> {
    let url = param_str(params, "url")?.ok_or_else(|| ParamError("No 'url' provided".into()))?;
    let (mut included, mut excluded) = (Vec::new(), Vec::new());
    for t in param_str_list(params, "event_types")?.unwrap_or_default() {
        match t.strip_prefix('!') {
            Some(x) => excluded.push(x.to_string()),
            None => included.push(t),
        }
    }
    if included.is_empty() {
        included.push("*".into());
    }
    let extra_info = match params.get("extra_info") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        Some(other) => {
            return Err(ParamError(format!(
                "param 'extra_info' must be a mapping, got {other}"
            )))
        }
    };
    let cuf_xml = match param_str(params, "content_format")?.as_deref() {
        None | Some("json") => false,
        Some("cuf_xml") => true,
        Some(other) => {
            return Err(ParamError(format!(
                "param 'content_format' must be json or cuf_xml, got {other:?}"
            )))
        }
    };
    let max_attempts = param_f64(params, "max_attempts")?.unwrap_or(5.0);
    if max_attempts < 1.0 {
        return Err(ParamError("param 'max_attempts' must be at least 1".into()));
    }
    Ok(AtomPubSettings {
        url,
        included,
        excluded,
        extra_info,
        cuf_xml,
        title: param_str(params, "title")?,
        categories: param_str_list(params, "categories")?.unwrap_or_default(),
        auth_user: param_str(params, "auth_user")?.unwrap_or_default(),
        auth_key: param_str(params, "auth_key")?.unwrap_or_default(),
        auth_server: param_str(params, "auth_server")?.unwrap_or_default(),
        wait_interval: param_f64(params, "wait_interval")?.unwrap_or(30.0),
        max_wait: param_f64(params, "max_wait")?.unwrap_or(600.0),
        http_timeout: param_f64(params, "http_timeout")?.unwrap_or(120.0),
        max_attempts: max_attempts as u32,
    })
}

/// fnmatch-style glob: `*`, `?`, everything else literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|i| rec(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && rec(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && rec(&p[1..], &t[1..]),
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

impl AtomPubSettings {
    pub fn match_type(&self, event_type: &str) -> bool {
        self.included.iter().any(|p| glob_match(p, event_type))
            && !self.excluded.iter().any(|p| glob_match(p, event_type))
    }

    /// `(content, content type, event type used in the entry)`.
    pub fn format(&self, event: &PipelineEvent) -> Result<(String, &'static str, String), String> {
        if self.cuf_xml {
            Ok((
                self.cuf_xml(event)?,
                "application/xml",
                format!("{}.cuf", event.event_type),
            ))
        } else {
            Ok((
                event.to_flat_json().to_string(),
                "application/json",
                event.event_type.clone(),
            ))
        }
    }

    /// The Atom entry.
    pub fn atom_entry(
        &self,
        event: &PipelineEvent,
        event_type: &str,
        content: &str,
        content_type: &str,
    ) -> String {
        let title = self.title.clone().unwrap_or_else(|| event_type.to_string());
        let mut cats = self.categories.clone();
        cats.push(event_type.to_string());
        if let Some(orig) = event.get("original_message_id") {
            cats.push(format!("original_message_id:{}", show(Some(&orig))));
        }
        let cattags: String = cats
            .iter()
            .map(|c| format!("<atom:category term=\"{}\" />", xml_escape(c)))
            .collect();
        format!(
            "<atom:entry xmlns:atom=\"http://www.w3.org/2005/Atom\"><atom:id>urn:uuid:{}</atom:id>{}<atom:title type=\"text\">{}</atom:title><atom:content type=\"{}\">{}</atom:content></atom:entry>",
            xml_escape(&event.message_id),
            cattags,
            xml_escape(&title),
            content_type,
            xml_escape(content)
        )
    }

    /// The Rackspace CUF usage document.
    pub fn cuf_xml(&self, event: &PipelineEvent) -> Result<String, String> {
        let val = |k: &str| -> String {
            if let Some(v) = self.extra_info.get(k) {
                return v.clone();
            }
            event.get(k).map(|v| show(Some(&v))).unwrap_or_default()
        };
        let (start, end) = cuf_times(event);
        let fmt = |t: Option<Timestamp>| {
            t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default()
        };
        Ok(format!(
            "<event xmlns=\"http://docs.rackspace.com/core/event\" xmlns:nova=\"http://docs.rackspace.com/event/nova\" version=\"1\" id=\"{}\" resourceId=\"{}\" resourceName=\"{}\" dataCenter=\"{}\" region=\"{}\" tenantId=\"{}\" startTime=\"{}\" endTime=\"{}\" type=\"USAGE\"><nova:product version=\"1\" serviceCode=\"CloudServersOpenStack\" resourceType=\"SERVER\" flavorId=\"{}\" flavorName=\"{}\" status=\"{}\" {} bandwidthIn=\"{}\" bandwidthOut=\"{}\"/></event>",
            xml_escape(&val("message_id")),
            xml_escape(&val("instance_id")),
            xml_escape(&val("display_name")),
            xml_escape(&val("data_center")),
            xml_escape(&val("region")),
            xml_escape(&val("tenant_id")),
            fmt(start),
            fmt(end),
            xml_escape(&val("instance_flavor_id")),
            xml_escape(&val("instance_flavor")),
            cuf_status(event),
            cuf_options(event)?,
            xml_escape(&val("bandwidth_in")),
            xml_escape(&val("bandwidth_out")),
        ))
    }
}

fn dt(event: &PipelineEvent, k: &str) -> Option<Timestamp> {
    event.get(k).and_then(|v| v.as_datetime())
}

/// startTime = max(launched_at, apb); endTime = ape or min(terminated_at|deleted_at, ape);
/// start > end gives start = apb. A missing value sorts lowest (as in Python 2).
pub fn cuf_times(event: &PipelineEvent) -> (Option<Timestamp>, Option<Timestamp>) {
    let apb = dt(event, "audit_period_beginning");
    let ape = dt(event, "audit_period_ending");
    let launched = dt(event, "launched_at");
    let terminated = dt(event, "terminated_at").or_else(|| dt(event, "deleted_at"));
    let mut start = launched.max(apb);
    let end = match terminated {
        None => ape,
        Some(t) => Some(t).min(ape),
    };
    if start > end {
        start = apb;
    }
    (start, end)
}

pub fn cuf_status(event: &PipelineEvent) -> &'static str {
    let s = |k: &str| {
        event
            .get(k)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let (state, desc) = (s("state"), s("state_description"));
    match state.as_str() {
        "building" => "BUILD",
        "stopped" => "SHUTOFF",
        "paused" => "PAUSED",
        "suspended" => "SUSPENDED",
        "rescued" => "RESCUE",
        "error" => "ERROR",
        "deleted" => "DELETED",
        "soft-delete" => "SOFT_DELETED",
        "shelved" => "SHELVED",
        "shelved_offloaded" => "SHELVED_OFFLOADED",
        "resized" if desc == "resize_reverting" => "REVERT_RESIZE",
        "resized" => "VERIFY_RESIZE",
        "active" => match desc.as_str() {
            "rebooting" => "REBOOT",
            "rebooting_hard" => "HARD_REBOOT",
            "updating_password" => "PASSWORD",
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            "migrating" => "MIGRATING",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            _ => "ACTIVE",
        },
        _ => {
            tracing::error!(
                "Unknown status for event {}: state {} ({})",
                event.message_id,
                state,
                desc
            );
            "UNKNOWN"
        }
    }
}

pub fn cuf_options(event: &PipelineEvent) -> Result<String, String> {
    let opt: i64 = match event.get("rax_options") {
        None => 0,
        Some(TraitValue::Int(i)) => i,
        Some(TraitValue::Float(f)) => f as i64,
        Some(TraitValue::Text(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("rax_options {s:?} is not an integer"))?,
        Some(TraitValue::Datetime(_)) => return Err("rax_options is a datetime".into()),
    };
    let bit = |i: u32| opt & (1 << i) != 0;
    let mut os = "LINUX";
    if bit(0) {
        os = "RHEL";
    }
    if bit(2) {
        os = "WINDOWS";
    }
    if bit(6) {
        os = "VYATTA";
    }
    let mut app = None;
    if bit(3) {
        app = Some("MSSQL");
    }
    if bit(5) {
        app = Some("MSSQL_WEB");
    }
    Ok(match app {
        None => format!("osLicenseType=\"{os}\""),
        Some(a) => format!("osLicenseType=\"{os}\" applicationLicense=\"{a}\""),
    })
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// What happened to one POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Sent(u16),
    Duplicate,
    Rejected,
}

impl AtomPubHandler {
    async fn auth(&self, force: bool) -> Result<Option<String>, String> {
        let s = &self.settings;
        if s.auth_server.is_empty() {
            return Ok(None);
        }
        if !force {
            if let Some(t) = self.ctx.atompub_tokens.0.read().await.clone() {
                return Ok(Some(t));
            }
        }
        let body = serde_json::json!({"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": s.auth_user, "apiKey": s.auth_key}}});
        let res = self
            .ctx
            .http
            .post(&s.auth_server)
            .header("User-Agent", "Winchester")
            .header("Accept", "application/json")
            .json(&body)
            .timeout(Duration::from_secs_f64(s.http_timeout))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("auth server {}: {e}", s.auth_server))?;
        let v: Value = res
            .json()
            .await
            .map_err(|e| format!("auth response: {e}"))?;
        let token = v["access"]["token"]["id"]
            .as_str()
            .ok_or("auth response has no access.token.id")?
            .to_string();
        *self.ctx.atompub_tokens.0.write().await = Some(token.clone());
        Ok(Some(token))
    }

    /// POST one entry with bounded retries.
    pub async fn send(&self, atom: &str) -> Result<SendOutcome, String> {
        let s = &self.settings;
        let mut token = self.auth(false).await?;
        let mut last_err = String::new();
        for attempt in 1..=s.max_attempts {
            let mut req = self
                .ctx
                .http
                .post(&s.url)
                .header("Content-Type", "application/atom+xml")
                .body(atom.to_string())
                .timeout(Duration::from_secs_f64(s.http_timeout));
            if let Some(t) = &token {
                req = req.header("X-Auth-Token", t);
            }
            match req.send().await {
                Ok(res) => {
                    let code = res.status().as_u16();
                    match code {
                        200..=299 => return Ok(SendOutcome::Sent(code)),
                        409 => {
                            tracing::debug!("Duplicate message: {atom}");
                            return Ok(SendOutcome::Duplicate);
                        }
                        400 => {
                            tracing::error!("Invalid Content: Server rejected content: {atom}");
                            return Ok(SendOutcome::Rejected);
                        }
                        401 => {
                            tracing::info!("Auth expired, reauthorizing...");
                            token = self.auth(true).await?;
                            last_err = "401 Unauthorized".into();
                            continue;
                        }
                        _ => last_err = format!("HTTP {code}"),
                    }
                }
                Err(e) => last_err = format!("{e}"),
            }
            if attempt < s.max_attempts {
                let wait = (attempt as f64 * s.wait_interval).min(s.max_wait);
                tracing::warn!(url = %s.url, attempt, "AtomPub POST failed ({last_err}); retrying in {wait}s");
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
        }
        Err(format!(
            "giving up on {} after {} attempts: {last_err}",
            s.url, s.max_attempts
        ))
    }
}

impl Handler for AtomPubHandler {
    fn handle_events(
        &mut self,
        events: Vec<PipelineEvent>,
        _env: &mut Env,
    ) -> Result<Vec<PipelineEvent>, HandlerError> {
        self.events = events
            .iter()
            .filter(|e| self.settings.match_type(&e.event_type))
            .cloned()
            .collect();
        tracing::debug!("Matched {} events.", self.events.len());
        Ok(events)
    }

    fn commit(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(async move {
            let events = std::mem::take(&mut self.events);
            let mut failures = 0;
            for e in &events {
                let result = match self.settings.format(e) {
                    Ok((content, ctype, etype)) => {
                        self.send(&self.settings.atom_entry(e, &etype, &content, ctype))
                            .await
                    }
                    Err(msg) => Err(msg),
                };
                if let Err(msg) = result {
                    failures += 1;
                    tracing::error!(
                        "Error publishing {} event {} (original id: {}): {msg}",
                        e.event_type,
                        e.message_id,
                        show(e.get("original_message_id").as_ref())
                    );
                }
            }
            if failures > 0 {
                Err(HandlerError::new(format!(
                    "{failures} of {} AtomPub events not published",
                    events.len()
                )))
            } else {
                Ok(())
            }
        })
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
        self.events.clear();
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stv3_event::parse_timestamp;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn event_type_filter() {
        let check = |types: &str, et: &str, expected: bool| {
            let s = settings(&params(&format!(
                r#"{{"url":"http://x","event_types":{types}}}"#
            )))
            .unwrap();
            assert_eq!(s.match_type(et), expected, "{types} {et}");
        };
        check("null", "anything", true);
        check(
            r#"["compute.instance.exists.*"]"#,
            "compute.instance.exists.verified",
            true,
        );
        check(
            r#"["compute.instance.exists.*"]"#,
            "compute.instance.create.end",
            false,
        );
        check(
            r#"["!compute.instance.exists.warnings"]"#,
            "compute.instance.exists.warnings",
            false,
        );
        check(
            r#"["!compute.instance.exists.warnings"]"#,
            "compute.instance.exists.verified",
            true,
        );
        check(r#""compute.*""#, "compute.x", true);
        check(r#"["a?c"]"#, "abc", true);
    }

    fn exists_event() -> PipelineEvent {
        let t = |s: &str| TraitValue::Datetime(parse_timestamp(s).unwrap());
        PipelineEvent::new(
            "a1b2",
            "compute.instance.exists.verified",
            parse_timestamp("2015-03-02 00:01:00").unwrap(),
        )
        .with_trait("instance_id", TraitValue::Text("inst-1".into()))
        .with_trait("display_name", TraitValue::Text("web <1>".into()))
        .with_trait("tenant_id", TraitValue::Text("t1".into()))
        .with_trait("instance_flavor_id", TraitValue::Text("2".into()))
        .with_trait("instance_flavor", TraitValue::Text("512MB".into()))
        .with_trait("state", TraitValue::Text("active".into()))
        .with_trait("state_description", TraitValue::Text("".into()))
        .with_trait("rax_options", TraitValue::Text("4".into()))
        .with_trait("bandwidth_in", TraitValue::Int(0))
        .with_trait("bandwidth_out", TraitValue::Int(0))
        .with_trait("original_message_id", TraitValue::Text("orig-1".into()))
        .with_trait("launched_at", t("2015-02-01 10:00:00"))
        .with_trait("audit_period_beginning", t("2015-03-01 00:00:00"))
        .with_trait("audit_period_ending", t("2015-03-02 00:00:00"))
    }

    #[test]
    fn cuf_and_atom_strings() {
        let s = settings(&params(
            r#"{"url":"http://x","content_format":"cuf_xml","extra_info":{"data_center":"DFW1","region":"DFW"},"categories":["c1"]}"#,
        ))
        .unwrap();
        let e = exists_event();
        let (content, ctype, etype) = s.format(&e).unwrap();
        assert_eq!(etype, "compute.instance.exists.verified.cuf");
        assert_eq!(ctype, "application/xml");
        insta::assert_snapshot!("cuf_xml", content);
        insta::assert_snapshot!("atom_entry", s.atom_entry(&e, &etype, &content, ctype));
    }

    #[test]
    fn status_options_and_times() {
        let mut e = exists_event();
        assert_eq!(cuf_status(&e), "ACTIVE");
        e.traits.insert(
            "state_description".into(),
            TraitValue::Text("rebuild_spawning".into()),
        );
        assert_eq!(cuf_status(&e), "REBUILD");
        e.traits
            .insert("state".into(), TraitValue::Text("resized".into()));
        assert_eq!(cuf_status(&e), "VERIFY_RESIZE");
        let opts = |v: &str| {
            let mut e = exists_event();
            e.traits
                .insert("rax_options".into(), TraitValue::Text(v.into()));
            cuf_options(&e)
        };
        assert_eq!(opts("0").unwrap(), r#"osLicenseType="LINUX""#);
        assert_eq!(opts("1").unwrap(), r#"osLicenseType="RHEL""#);
        assert_eq!(opts("4").unwrap(), r#"osLicenseType="WINDOWS""#);
        assert_eq!(
            opts("12").unwrap(),
            r#"osLicenseType="WINDOWS" applicationLicense="MSSQL""#
        );
        assert_eq!(
            opts("96").unwrap(),
            r#"osLicenseType="VYATTA" applicationLicense="MSSQL_WEB""#
        );
        assert!(opts("x").is_err());
        let mut e = exists_event();
        e.traits.insert(
            "deleted_at".into(),
            TraitValue::Datetime(parse_timestamp("2015-03-01 12:00:00").unwrap()),
        );
        let (a, b) = cuf_times(&e);
        assert_eq!(a, Some(parse_timestamp("2015-03-01 00:00:00").unwrap()));
        assert_eq!(b, Some(parse_timestamp("2015-03-01 12:00:00").unwrap()));
    }

    #[test]
    fn json_content_is_datetime_safe() {
        let s = settings(&params(r#"{"url":"http://x"}"#)).unwrap();
        let (content, ctype, _) = s.format(&exists_event()).unwrap();
        assert_eq!(ctype, "application/json");
        let v: Value = serde_json::from_str(&content).unwrap();
        assert_eq!(v["launched_at"], "2015-02-01T10:00:00.000000Z");
    }

    /// A one-shot HTTP server answering each request with the next status code.
    async fn server(codes: Vec<u16>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            for code in codes {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let resp =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        (format!("http://{addr}/feed"), hits)
    }

    /// Status codes the server returns -> (outcome, POSTs made).
    async fn check_send(codes: Vec<u16>, expected: Result<SendOutcome, ()>, posts: usize) {
        let (url, hits) = server(codes.clone()).await;
        let p = params(&format!(
            r#"{{"url":"{url}","wait_interval":0.01,"max_wait":0.02,"max_attempts":3,"http_timeout":5}}"#
        ));
        let h = AtomPubHandler {
            settings: settings(&p).unwrap(),
            events: vec![],
            ctx: HandlerContext::offline(),
        };
        let got = h.send("<x/>").await.map_err(|_| ());
        assert_eq!(got, expected, "codes {codes:?}");
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            posts,
            "codes {codes:?}"
        );
    }

    #[tokio::test]
    async fn send_loop_is_bounded() {
        check_send(vec![201], Ok(SendOutcome::Sent(201)), 1).await;
        check_send(vec![409], Ok(SendOutcome::Duplicate), 1).await;
        check_send(vec![400], Ok(SendOutcome::Rejected), 1).await;
        check_send(vec![503, 502, 200], Ok(SendOutcome::Sent(200)), 3).await;
        check_send(vec![503, 503, 503, 503], Err(()), 3).await;
    }
}
