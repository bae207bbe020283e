//! The `/ui` dashboard: its assets over HTTP (always), and the page itself in
//! headless Chromium (Debian's `chromium` package) against the real server and
//! a SQLite database filled with the testkit fixture: the numbers the page
//! shows must be the API's own, and a screenshot is taken.
//!
//! Chromium gate: like `stv3_testsupport::require` (which has no Chromium
//! variant): when no Chromium binary is found the test fails under
//! `STV3_TEST_REQUIRE_ALL=1`, otherwise it is skipped loudly and logged to
//! `$STV3_SKIP_LOG`. `STV3_CHROMIUM` names the binary explicitly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use stv3_api::testkit::{spawn_server, ScratchDb, ServerOptions};

const STATES: [&str; 8] = [
    "active",
    "firing",
    "expiring",
    "error",
    "expire_error",
    "completed",
    "retry_fire",
    "retry_expire",
];

// ------------------------------------------------------------------ gate

/// The Chromium binary, or `None` after a loud skip (panics under
/// `STV3_TEST_REQUIRE_ALL=1`). Same policy as `stv3_testsupport::require`.
fn require_chromium(test_name: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("STV3_CHROMIUM") {
        Some(p) => vec![PathBuf::from(p)],
        None => [
            "/usr/bin/chromium",
            "/usr/bin/chromium-headless-shell",
            "/usr/bin/chromium-browser",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
    };
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Some(p.clone());
    }
    let looked = format!("{candidates:?}");
    if stv3_testsupport::require_all() {
        panic!(
            "{test_name}: no Chromium at {looked} and STV3_TEST_REQUIRE_ALL=1 \
             (apt-get install -y chromium fonts-dejavu-core, or set STV3_CHROMIUM)"
        );
    }
    eprintln!("SKIPPED {test_name}: Chromium not found at {looked}");
    if let Ok(path) = std::env::var("STV3_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test_name} (needs Chromium)");
        }
    }
    None
}

// ------------------------------------------------------------------ chromium

/// Run headless Chromium with `args` + `url`; returns stdout. A private
/// profile directory per run; killed after two minutes.
fn chromium(bin: &Path, args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--mute-audio",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start chromium");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.expect("chromium output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("chromium did not finish within 120 s: {url}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium failed ({}) on {url}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The DOM after the page ran for `budget_ms` of virtual time (network waits
/// do not consume it, so every fetch of the first refreshes completes).
fn dump_dom(bin: &Path, url: &str, budget_ms: u32) -> Dom {
    let dom = chromium(
        bin,
        &[
            format!("--virtual-time-budget={budget_ms}"),
            "--dump-dom".into(),
        ],
        url,
    );
    assert!(
        dom.contains("data-testid"),
        "no dashboard in the DOM:\n{dom}"
    );
    Dom(dom)
}

// ------------------------------------------------------------------ DOM reading

/// A serialized DOM (`--dump-dom`), read by `data-testid`.
struct Dom(String);

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// One element carrying a `data-testid`: its start tag and the text up to the
/// next tag (testid elements hold plain text only).
struct Elem<'a> {
    tag: &'a str,
    text: String,
}

impl Elem<'_> {
    fn attr(&self, name: &str) -> Option<String> {
        let key = format!(" {name}=\"");
        let start = self.tag.find(&key)? + key.len();
        let end = self.tag[start..].find('"')? + start;
        Some(unescape(&self.tag[start..end]))
    }
}

impl Dom {
    fn all(&self, testid: &str) -> Vec<Elem<'_>> {
        let needle = format!("data-testid=\"{testid}\"");
        let s = &self.0;
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(i) = s[from..].find(&needle) {
            let at = from + i;
            let open = s[..at].rfind('<').expect("tag start");
            let close = at + s[at..].find('>').expect("tag end");
            let text_end = close + 1 + s[close + 1..].find('<').unwrap_or(s.len() - close - 1);
            out.push(Elem {
                tag: &s[open..=close],
                text: unescape(&s[close + 1..text_end]).trim().to_string(),
            });
            from = close;
        }
        out
    }

    fn text(&self, testid: &str) -> String {
        let all = self.all(testid);
        assert_eq!(all.len(), 1, "expected one data-testid={testid:?}");
        all[0].text.clone()
    }

    /// A number as shown (digits with `,` grouping).
    fn number(&self, testid: &str) -> u64 {
        let t = self.text(testid);
        t.replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("data-testid={testid:?} shows {t:?}, not a number"))
    }

    fn attrs(&self, testid: &str, attr: &str) -> Vec<String> {
        self.all(testid)
            .iter()
            .map(|e| e.attr(attr).unwrap_or_default())
            .collect()
    }
}

// ------------------------------------------------------------------ API side

async fn get_json(base: &str, path: &str, token: Option<&str>) -> Value {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.expect("json")
}

async fn api_count(base: &str, path: &str, token: Option<&str>) -> u64 {
    let v = get_json(base, path, token).await;
    v[0]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{path}: {v}"))
}

async fn fixture_server(token: Option<&str>) -> (ScratchDb, String) {
    let db = ScratchDb::sqlite().await.expect("sqlite scratch db");
    db.load_fixture().await.expect("fixture");
    let base = spawn_server(
        &db.url,
        ServerOptions {
            auth_token: token.map(str::to_string),
            ..Default::default()
        },
    )
    .await
    .expect("server");
    (db, base)
}

/// Every number on the page equals the API's answer for the same question.
async fn check_numbers_match_api(dom: &Dom, base: &str, token: Option<&str>) {
    assert_eq!(dom.text("status"), "ok", "error box: {}", dom.0);
    assert_eq!(
        dom.number("total-events"),
        api_count(base, "/v1/events/count", token).await
    );
    assert_eq!(
        dom.number("total-streams"),
        api_count(base, "/v1/streams/count", token).await
    );
    for s in STATES {
        let want = api_count(base, &format!("/v1/streams/count?state={s}"), token).await;
        assert_eq!(dom.number(&format!("count-{s}")), want, "state {s}");
    }
    let streams = get_json(base, "/v1/streams?limit=500", token).await;
    let mut names: Vec<String> = streams
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    assert!(!names.is_empty());
    for name in &names {
        let want = api_count(
            base,
            &format!("/v1/streams/count?trigger_name={name}"),
            token,
        )
        .await;
        assert_eq!(
            dom.number(&format!("trigger-total-{name}")),
            want,
            "trigger {name}"
        );
        for s in STATES {
            let want = api_count(
                base,
                &format!("/v1/streams/count?trigger_name={name}&state={s}"),
                token,
            )
            .await;
            assert_eq!(
                dom.number(&format!("trigger-{name}-{s}")),
                want,
                "trigger {name} state {s}"
            );
        }
    }
    let events = get_json(base, "/v1/events?limit=20", token).await;
    let want: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dom.attrs("event-row", "data-message-id"), want);
    let streams = get_json(base, "/v1/streams?limit=15", token).await;
    let want: Vec<String> = streams
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].to_string())
        .collect();
    assert_eq!(dom.attrs("stream-row", "data-id"), want);
}

// ------------------------------------------------------------------ HTTP only

#[tokio::test]
async fn assets_are_served_without_a_token_and_the_api_still_needs_one() {
    let (_db, base) = fixture_server(Some("sekrit")).await;
    let http = reqwest::Client::new();
    // (path, content type prefix, text the body must contain)
    let cases = [
        ("/ui", "text/html", "data-testid=\"total-events\""),
        ("/ui/", "text/html", "<script src=\"/ui/app.js\""),
        ("/ui/index.html", "text/html", "stv3 dashboard"),
        ("/ui/app.js", "text/javascript", "/streams/count"),
        ("/ui/style.css", "text/css", ".timeline"),
    ];
    for (path, ctype, needle) in cases {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(ctype),
            "{path}: {:?}",
            h["content-type"]
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle:?}");
    }
    for path in ["/ui/nope.js", "/ui/app.js/x", "/ui/style.css.map"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_ne!(r.status(), 200, "{path}");
    }
    let r = http.get(format!("{base}/v1/streams")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the API itself still needs the token");
}

// ------------------------------------------------------------------ Chromium

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_api_numbers_in_chromium() {
    let Some(bin) = require_chromium("dashboard_shows_the_api_numbers_in_chromium") else {
        return;
    };
    let (_db, base) = fixture_server(None).await;
    // Stream 5 open with its timeline; the newest event (id 24) expanded.
    let url = format!("{base}/ui?refresh=1#stream=5&event=Mixed-Case-ID");
    let b = bin.clone();
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b, &url, 6000))
        .await
        .unwrap();
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-dashboard.html"),
        &dom.0,
    )
    .unwrap();
    check_numbers_match_api(&dom, &base, None).await;

    // The expanded event shows the traits /v1/events/{id} has, typed.
    let ev = get_json(&base, "/v1/events/Mixed-Case-ID", None).await;
    let names = dom.attrs("trait", "data-name");
    let values: Vec<String> = dom
        .all("trait-value")
        .iter()
        .map(|e| e.text.clone())
        .collect();
    assert_eq!(names.len(), values.len());
    let shown: std::collections::BTreeMap<_, _> = names.into_iter().zip(values).collect();
    let want: std::collections::BTreeMap<String, String> = ev
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !["message_id", "event_type", "timestamp"].contains(&k.as_str()))
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o["datetime"].as_str().unwrap().replace('T', " "),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    assert_eq!(shown, want);
    assert_eq!(shown["memory_mb"], "4096");
    assert_eq!(shown["launched_at"], "2015-03-01 19:00:00");

    // Stream 5: its events, in the API's order, each a dot on the timeline.
    let stream = get_json(&base, "/v1/streams/5?details=true", None).await;
    let s = &stream[0];
    assert_eq!(dom.text("sd-id"), "5");
    assert_eq!(dom.text("sd-name"), s["name"].as_str().unwrap());
    assert_eq!(
        dom.text("sd-first"),
        s["first_event"]["datetime"]
            .as_str()
            .unwrap()
            .replace('T', " ")
    );
    let want: Vec<String> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(want.len(), 8);
    assert_eq!(dom.text("sd-count"), "8");
    assert_eq!(dom.attrs("sd-event-row", "data-message-id"), want);
    assert_eq!(dom.attrs("timeline-dot", "data-message-id"), want);
    let dtraits = dom.attrs("dtrait", "data-name");
    assert_eq!(dtraits, ["instance_id", "memory_mb", "timestamp"]);

    // Static data: several samples, nothing ingested, nothing processed.
    assert!(
        dom.number("samples") >= 2,
        "samples: {}",
        dom.text("samples")
    );
    assert_eq!(dom.text("rate-events"), "0.00");
    assert_eq!(dom.text("rate-pipeline"), "0.00");
    assert!(dom.all("error")[0].tag.contains("hidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_uses_the_token_and_says_when_it_is_missing() {
    let Some(bin) = require_chromium("dashboard_uses_the_token_and_says_when_it_is_missing") else {
        return;
    };
    let (_db, base) = fixture_server(Some("sekrit")).await;
    let (b, url) = (bin.clone(), format!("{base}/ui?token=sekrit"));
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b, &url, 3000))
        .await
        .unwrap();
    check_numbers_match_api(&dom, &base, Some("sekrit")).await;

    let (b, url) = (bin.clone(), format!("{base}/ui"));
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b, &url, 3000))
        .await
        .unwrap();
    assert_eq!(dom.text("status"), "unauthorized");
    assert!(!dom.all("error")[0].tag.contains("hidden"));
    assert!(dom.0.contains("The API needs a token"));
    assert_eq!(dom.text("total-events"), "–");
}

/// PNG width and height from the IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((w, h))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_screenshot() {
    let Some(bin) = require_chromium("dashboard_screenshot") else {
        return;
    };
    let (_db, base) = fixture_server(None).await;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-dashboard.png");
    let _ = std::fs::remove_file(&out);
    let args = vec![
        "--virtual-time-budget=4000".to_string(),
        format!("--screenshot={}", out.display()),
        "--window-size=1280,900".to_string(),
    ];
    let url = format!("{base}/ui?refresh=1#stream=3");
    tokio::task::spawn_blocking(move || chromium(&bin, &args, &url))
        .await
        .unwrap();
    let png = std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    assert_eq!(png_size(&png), Some((1280, 900)), "{}", out.display());
    // A blank or error page compresses to a few KB; the dashboard does not.
    assert!(
        png.len() > 30_000,
        "{} is only {} bytes",
        out.display(),
        png.len()
    );
    eprintln!("screenshot: {} ({} bytes)", out.display(), png.len());
}

/// The page's pure helpers (rates, datetimes, ticks), run in Chromium from a
/// harness page that loads the served `app.js` with `window.stv3UiTest` set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_helpers_in_chromium() {
    let Some(bin) = require_chromium("script_helpers_in_chromium") else {
        return;
    };
    let (_db, base) = fixture_server(None).await;
    // (JavaScript expression over the exports `U`, expected JSON of its value)
    let cases: &[(&str, &str)] = &[
        (r#"U.isoMillis("2015-03-01T18:00:00")"#, "1425232800000"),
        (
            r#"U.isoMillis("2015-03-01T18:00:00.123456")"#,
            "1425232800123",
        ),
        (r#"U.isoMillis("bogus")"#, "null"),
        (r#"U.fmtValue(null)"#, r#""null""#),
        (r#"U.fmtValue(0.5)"#, r#""0.5""#),
        (
            r#"U.fmtValue({"__type__": "datetime", "datetime": "2015-03-01T18:00:00.000001"})"#,
            r#""2015-03-01 18:00:00.000001""#,
        ),
        (
            r#"U.fmtValue({"__type__": "timex.TimeRange", "begin": "2015-03-01T00:00:00", "end": "2015-03-02T00:00:00"})"#,
            r#""2015-03-01 00:00:00 → 2015-03-02 00:00:00""#,
        ),
        (
            r#"U.shortValue({"__type__": "timex.TimeRange", "begin": "2015-03-01T00:00:00", "end": "2015-03-02T06:00:00"})"#,
            r#""2015-03-01 → 2015-03-02 06:00:00""#,
        ),
        (
            r#"[512, 0.5, "x", null, {"__type__": "datetime", "datetime": "2015-03-01T00:00:00"}].map(U.typeOf)"#,
            r#"["int","float","text","null","datetime"]"#,
        ),
        (r#"U.rateOf([], "events")"#, "null"),
        (r#"U.rateOf([{t: 0, events: 5}], "events")"#, "null"),
        (
            r#"U.rateOf([{t: 0, events: 100}, {t: 2000, events: 150}, {t: 4000, events: 300}], "events")"#,
            "50",
        ),
        (
            r#"U.rateOf([{t: 0, done: 10}, {t: 1000, done: 4}], "done")"#,
            "0",
        ),
        (
            r#"U.rateOf([{t: 5, done: 1}, {t: 5, done: 4}], "done")"#,
            "null",
        ),
        (
            r#"U.intervalRates([{t: 0, events: 0}, {t: 1000, events: 10}, {t: 3000, events: 50}], "events")"#,
            "[10,20]",
        ),
        (
            r#"(() => { const s = []; for (let i = 0; i <= 10; i++) U.pushSample(s, {t: i * 10000, events: i}, 60000); return s.map((x) => x.t); })()"#,
            "[40000,50000,60000,70000,80000,90000,100000]",
        ),
        (
            r#"(() => { const s = []; for (const t of [0, 120000, 240000]) U.pushSample(s, {t, events: 1}, 60000); return s.map((x) => x.t); })()"#,
            "[120000,240000]",
        ),
        (
            r#"[null, 0, 15.678, 1234.4].map(U.fmtRate)"#,
            r#"["–","0.00","15.7","1,234"]"#,
        ),
        (r#"U.fmtInt(1234567)"#, r#""1,234,567""#),
        (
            r#"[U.nextDelay(5000, 300), U.nextDelay(5000, 2000)]"#,
            "[5000,8000]",
        ),
        (r#"U.slug("usage trigger/x")"#, r#""usage_trigger_x""#),
        (
            r#"(() => { const k = U.ticks(Date.UTC(2015, 2, 1, 17, 58), Date.UTC(2015, 2, 1, 19, 10)); return k.list.map((t) => U.fmtTick(t, k.step, false)); })()"#,
            r#"["18:00","18:15","18:30","18:45","19:00"]"#,
        ),
        (
            r#"U.fmtTick(Date.UTC(2026, 10, 24), 6 * 3600000, true)"#,
            r#""11-24 00:00""#,
        ),
    ];
    let exprs: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let harness = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"></head><body><pre data-testid="out"></pre>
<script>window.stv3UiTest = {{}};</script>
<script src="{base}/ui/app.js"></script>
<script>
const U = window.stv3UiTest.exports;
const out = {cases}.map((expr) => {{
  try {{ return JSON.stringify(eval(expr)); }} catch (e) {{ return "throws " + e.message; }}
}});
document.querySelector("pre").textContent = JSON.stringify(out);
</script></body></html>"#,
        cases = serde_json::to_string(&exprs).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("harness.html");
    std::fs::write(&page, harness).unwrap();
    let url = format!("file://{}", page.display());
    let dom = tokio::task::spawn_blocking(move || dump_dom(&bin, &url, 1000))
        .await
        .unwrap();
    let got: Vec<String> = serde_json::from_str(&dom.text("out"))
        .unwrap_or_else(|e| panic!("harness output: {e}\n{}", dom.0));
    assert_eq!(got.len(), cases.len());
    let mut failures = Vec::new();
    for ((expr, want), got) in cases.iter().zip(&got) {
        if got != want {
            failures.push(format!("{expr}\n    want {want}\n    got  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
