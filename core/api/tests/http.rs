//! Every v1/v2 route, filter and defect fix over real HTTP, against a scratch
//! MariaDB database and a SQLite file filled with the testkit fixture.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::Value;
use stv3_api::params::Limits;
use stv3_api::testkit::{spawn_server, ScratchDb, ServerOptions};
use stv3_testsupport::{require, scratch_name, Service};

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send(reqwest::Method::GET, path).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path))
            .send()
            .await
            .expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        (status, headers, body)
    }

    /// `ids` of a stream list, `message_id`s of an event list.
    async fn keys(&self, path: &str) -> Vec<String> {
        let (status, _, body) = self.get(path).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{method} {path}: {body}",
            method = "GET"
        );
        body.as_array()
            .unwrap_or_else(|| panic!("{path}: not a list: {body}"))
            .iter()
            .map(|v| match v.get("message_id") {
                Some(m) => m.as_str().unwrap().to_string(),
                None => v["id"].to_string(),
            })
            .collect()
    }

    /// `/v1/{what}?{query}` lists exactly `want` (ids or message_ids, in
    /// order) and `/v1/{what}/count?{query}` counts as many.
    async fn check_list_and_count(&self, what: &str, query: &str, want: &[&str]) {
        assert_eq!(
            self.keys(&format!("/v1/{what}?{query}")).await,
            strs(want),
            "{what}?{query}"
        );
        assert_eq!(
            self.count(&format!("/v1/{what}/count?{query}")).await,
            want.len() as u64,
            "{what}/count?{query}"
        );
    }

    async fn count(&self, path: &str) -> u64 {
        let (status, _, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body[0]["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{path}: {body}"))
    }

    /// A 4xx with a JSON error body.
    async fn error(
        &self,
        method: reqwest::Method,
        path: &str,
        want: StatusCode,
        parameter: Option<&str>,
    ) {
        let (status, headers, body) = self.send(method.clone(), path).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(
            headers[reqwest::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}: {headers:?}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
        if let Some(p) = parameter {
            assert_eq!(body["parameter"], p, "{path}: {body}");
        }
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn msgs(ids: &[i64]) -> Vec<String> {
    ids.iter()
        .map(|i| {
            if *i == 24 {
                "Mixed-Case-ID".to_string()
            } else {
                format!("msg-{i:04}")
            }
        })
        .collect()
}

async fn stream_cases(c: &Client, v: &str) {
    // (query, expected stream ids in order)
    let cases: &[(&str, &[&str])] = &[
        ("", &["6", "5", "4", "3", "2", "1"]),
        ("?state=error", &["3"]),
        ("?state=ERROR", &["3"]),
        ("?trigger_name=usage", &["5", "4", "3"]),
        ("?trigger_name=nope", &[]),
        ("?distinguishing_traits=instance_id:inst-a", &["3", "1"]),
        ("?distinguishing_traits=instance_id:inst-a;state:x", &[]),
        ("?distinguishing_traits=memory_mb:4096", &["5"]),
        (
            "?distinguishing_traits=timestamp:2015-03-02T12:00:00",
            &["6"],
        ),
        (
            "?distinguishing_traits=instance_id:inst-c&trigger_name=test_trigger",
            &["6"],
        ),
        ("?older_than=2015-03-01T19:00:00", &["3", "1"]),
        ("?older_than=2015-03-01T19:30:00", &["4", "3", "2", "1"]),
        ("?younger_than=2015-03-01T21:00:00", &["6", "5"]),
        (
            "?older_than=2015-03-01T20:00&younger_than=2015-03-01T20:00",
            &["4", "2"],
        ),
        ("?limit=2", &["6", "5"]),
        ("?limit=2&mark=5", &["4", "3"]),
        ("?mark=-3", &["2", "1"]),
        ("?mark=%2B&limit=2", &["1", "2"]),
        ("?mark=%2B2&limit=2", &["3", "4"]),
        ("?mark=+2&limit=2", &["3", "4"]),
        ("?limit=0", &[]),
        ("?state=", &["6", "5", "4", "3", "2", "1"]),
        ("?unknown_param=1", &["6", "5", "4", "3", "2", "1"]),
    ];
    for (query, want) in cases {
        let path = format!("/{v}/streams{query}");
        assert_eq!(c.keys(&path).await, strs(want), "{path}");
    }
    let counts: &[(&str, u64)] = &[
        ("", 6),
        ("?state=active", 1),
        ("?trigger_name=usage", 3),
        ("?distinguishing_traits=instance_id:inst-b", 2),
        ("?mark=3", 2),
        ("?limit=1", 6),
    ];
    for (query, want) in counts {
        assert_eq!(
            c.count(&format!("/{v}/streams/count{query}")).await,
            *want,
            "{v} streams/count{query}"
        );
    }
    assert_eq!(c.count(&format!("/{v}/streams/COUNT")).await, 6);

    // Shape of one stream (list form, quincy JSON).
    let (_, _, body) = c.get(&format!("/{v}/streams?limit=1&mark=2")).await;
    let s = &body[0];
    assert_eq!(s["_mark"], "1");
    assert_eq!(s["state"], "active");
    assert_eq!(s["fire_timestamp"], Value::Null);
    assert_eq!(
        s["first_event"],
        serde_json::json!({"__type__": "datetime", "datetime": "2015-03-01T18:00:00"})
    );
    assert_eq!(
        s["distinguishing_traits"]["timestamp"],
        serde_json::json!({"__type__": "timex.TimeRange", "begin": "2015-03-01T00:00:00", "end": "2015-03-02T00:00:00"})
    );
    let (_, _, body) = c.get(&format!("/{v}/streams?mark=%2B&limit=1")).await;
    assert_eq!(body[0]["_mark"], "+1");

    // Paging: Link header + X-Next-Mark on a full page, following it yields the next page.
    let (_, h, _) = c.get(&format!("/{v}/streams?limit=2&state=")).await;
    let link = h["link"].to_str().unwrap();
    assert_eq!(link, format!("</{v}/streams?limit=2&mark=5>; rel=\"next\""));
    assert_eq!(h["x-next-mark"], "5");
    let (_, h, _) = c.get(&format!("/{v}/streams?limit=2&mark=%2B2")).await;
    assert_eq!(
        h["link"].to_str().unwrap(),
        format!("</{v}/streams?limit=2&mark=%2B4>; rel=\"next\"")
    );
    let (_, h, _) = c.get(&format!("/{v}/streams?limit=10")).await;
    assert!(h.get("link").is_none(), "partial page has no next link");

    // Single stream: a list of one; details adds events ordered by generated; details=false is false.
    let (status, _, body) = c.get(&format!("/{v}/streams/3")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["name"], "usage");
    assert!(body[0].get("events").is_none());
    let (_, _, body) = c.get(&format!("/{v}/streams/3?details=true")).await;
    let evs: Vec<&str> = body[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        evs,
        (1..=8).map(|i| format!("msg-{i:04}")).collect::<Vec<_>>()
    );
    assert!(body[0]["events"][0].get("_mark").is_none());
    for off in ["false", "False", "0", "no"] {
        let (_, _, body) = c.get(&format!("/{v}/streams/3?details={off}")).await;
        assert!(body[0].get("events").is_none(), "details={off}");
    }

    // Errors: real 4xx with JSON bodies.
    use reqwest::Method as M;
    c.error(
        M::GET,
        &format!("/{v}/streams/999"),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams/abc"),
        StatusCode::BAD_REQUEST,
        Some("stream_id"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams?state=collecting"),
        StatusCode::BAD_REQUEST,
        Some("state"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams?older_than=yesterday"),
        StatusCode::BAD_REQUEST,
        Some("older_than"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams?younger_than=2015-13-45"),
        StatusCode::BAD_REQUEST,
        Some("younger_than"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams?distinguishing_traits=instance_id"),
        StatusCode::BAD_REQUEST,
        Some("distinguishing_traits"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams?mark=zz"),
        StatusCode::BAD_REQUEST,
        Some("mark"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams?limit=-1"),
        StatusCode::BAD_REQUEST,
        Some("limit"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/streams/count?state=bogus"),
        StatusCode::BAD_REQUEST,
        Some("state"),
    )
    .await;
    c.error(
        M::DELETE,
        &format!("/{v}/streams/999"),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    c.error(
        M::PUT,
        &format!("/{v}/streams/999"),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    c.error(
        M::DELETE,
        &format!("/{v}/streams/count"),
        StatusCode::METHOD_NOT_ALLOWED,
        None,
    )
    .await;
    c.error(
        M::PUT,
        &format!("/{v}/streams/x1"),
        StatusCode::BAD_REQUEST,
        Some("stream_id"),
    )
    .await;
    c.error(
        M::POST,
        &format!("/{v}/streams"),
        StatusCode::METHOD_NOT_ALLOWED,
        None,
    )
    .await;
    c.error(
        M::DELETE,
        &format!("/{v}/events/msg-0001"),
        StatusCode::METHOD_NOT_ALLOWED,
        None,
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/nothing"),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    // Trailing slash tolerated (falcon did).
    assert_eq!(
        c.keys(&format!("/{v}/streams/?state=error")).await,
        strs(&["3"])
    );
}

async fn event_cases(c: &Client, v: &str) {
    let all: Vec<i64> = (1..=24).rev().collect();
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("", all.clone()),
        ("?limit=3", vec![24, 23, 22]),
        ("?limit=3&mark=10", vec![15, 14, 13]),
        ("?mark=%2B&limit=2", vec![1, 2]),
        ("?event_name=compute.instance.exists", vec![24, 16, 8]),
        ("?event_name=no.such.event", vec![]),
        ("?traits=instance_id:inst-b", (9..=16).rev().collect()),
        ("?traits=tenant_id:t2;state:deleted", vec![24]),
        ("?traits=memory_mb:2048", (9..=16).rev().collect()),
        ("?traits=memory_mb:2048.0", (9..=16).rev().collect()),
        ("?traits=ratio:0.5&limit=3", vec![23, 21, 19]),
        (
            "?traits=launched_at:2015-03-01T19:00:00",
            (17..=24).rev().collect(),
        ),
        (
            "?traits=launched_at:2015-03-01 19:00",
            (17..=24).rev().collect(),
        ),
        ("?traits=url:http://nova:8774/v2", vec![5]),
        ("?traits=url:http://nova", vec![]),
        ("?from_datetime=2015-03-01T21:30:00", vec![24, 23]),
        ("?from_datetime=2015-03-01T21:40:00", vec![24]),
        ("?to_datetime=2015-03-01T18:10:00", vec![2, 1]),
        (
            "?from_datetime=2015-03-01T18:00&to_datetime=2015-03-01T18:20",
            vec![3, 2],
        ),
        (
            "?from_datetime=2015-03-01T18:00Z&to_datetime=2015-03-01T19:20:00%2B01:00",
            vec![3, 2],
        ),
        (
            "?traits=instance_id:inst-a&event_name=compute.instance.update&limit=2",
            vec![7, 6],
        ),
    ];
    for (query, want) in &cases {
        let path = format!("/{v}/events{query}");
        assert_eq!(c.keys(&path).await, msgs(want), "{path}");
    }
    let counts: &[(&str, u64)] = &[
        ("", 24),
        ("?traits=memory_mb:4096", 8),
        ("?event_name=compute.instance.create.end", 3),
        ("?from_datetime=2015-03-01T21:00", 5),
    ];
    for (query, want) in counts {
        assert_eq!(
            c.count(&format!("/{v}/events/count{query}")).await,
            *want,
            "{v} events/count{query}"
        );
    }

    let (_, _, list) = c.get(&format!("/{v}/events?limit=1&mark=6")).await;
    assert_eq!(list[0]["_mark"], "5");
    // Single event: a bare object, typed trait values, no _mark.
    let (status, _, e) = c.get(&format!("/{v}/events/msg-0005")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(e.is_object(), "{e}");
    assert!(e.get("_mark").is_none());
    assert_eq!(e["event_type"], "compute.instance.update");
    assert_eq!(e["memory_mb"], 512);
    assert_eq!(e["ratio"], 0.5);
    assert_eq!(e["url"], "http://nova:8774/v2");
    assert_eq!(
        e["launched_at"],
        serde_json::json!({"__type__": "datetime", "datetime": "2015-03-01T17:00:00"})
    );
    assert_eq!(
        e["timestamp"],
        serde_json::json!({"__type__": "datetime", "datetime": "2015-03-01T18:40:00"})
    );
    // Mixed-case ids are found as given; the original lower-cased them.
    let (status, _, e) = c.get(&format!("/{v}/events/Mixed-Case-ID")).await;
    assert_eq!(
        (status, e["message_id"].as_str()),
        (StatusCode::OK, Some("Mixed-Case-ID"))
    );
    let (status, _, _) = c.get(&format!("/{v}/events/MSG-0005")).await;
    assert_eq!(status, StatusCode::OK, "lower-case fallback");

    use reqwest::Method as M;
    c.error(
        M::GET,
        &format!("/{v}/events/no-such-id"),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/events?from_datetime=soon"),
        StatusCode::BAD_REQUEST,
        Some("from_datetime"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/events?traits=a:1;b"),
        StatusCode::BAD_REQUEST,
        Some("traits"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/events?mark=%2Bxyz"),
        StatusCode::BAD_REQUEST,
        Some("mark"),
    )
    .await;
    c.error(
        M::GET,
        &format!("/{v}/events/count?to_datetime=x"),
        StatusCode::BAD_REQUEST,
        Some("to_datetime"),
    )
    .await;
}

async fn admin_cases(c: &Client, db: &ScratchDb) {
    use reqwest::Method as M;
    // No writes on GET: an unknown event_name does not create an event_type row.
    let before = db.scalar("SELECT COUNT(*) FROM event_type").await.unwrap();
    c.keys("/v1/events?event_name=brand.new.type").await;
    c.count("/v1/events/count?event_name=brand.new.type").await;
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM event_type").await.unwrap(),
        before
    );

    // Reset: error -> retry_fire, expire_error -> retry_expire, others unchanged.
    let (status, _, body) = c.send(M::PUT, "/v1/streams/3").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["reset"].as_bool(), body["state"].as_str()),
        (Some(true), Some("retry_fire"))
    );
    let (_, _, body) = c.get("/v1/streams/3").await;
    assert_eq!(body[0]["state"], "retry_fire");
    let (status, _, body) = c.send(M::PUT, "/v2/streams/4").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("retry_expire"))
    );
    let (status, _, body) = c.send(M::PUT, "/v1/streams/1").await;
    assert_eq!(
        (status, body["reset"].as_bool(), body["state"].as_str()),
        (StatusCode::OK, Some(false), Some("active"))
    );
    assert_eq!(
        db.scalar("SELECT state_serial_no FROM stream WHERE id = 3")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.scalar("SELECT state_serial_no FROM stream WHERE id = 1")
            .await
            .unwrap(),
        0
    );

    // Delete: the stream, its dist traits and links go; events stay.
    let events = db.scalar("SELECT COUNT(*) FROM event").await.unwrap();
    let (status, _, body) = c.send(M::DELETE, "/v1/streams/5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    c.error(M::GET, "/v1/streams/5", StatusCode::NOT_FOUND, None)
        .await;
    c.error(M::DELETE, "/v1/streams/5", StatusCode::NOT_FOUND, None)
        .await;
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM dist_trait WHERE stream_id = 5")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM streamevent WHERE stream_id = 5")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM event").await.unwrap(),
        events
    );
    assert_eq!(c.count("/v1/streams/count").await, 5);
}

async fn ops_and_archive_cases(c: &Client) {
    let (status, _, body) = c.get("/health").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _, body) = c.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.as_str().unwrap().contains("stv3_api_requests_total"),
        "{body}"
    );
    let (status, _, doc) = c.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for p in [
        "/v1/streams",
        "/v1/streams/{stream_id}",
        "/v2/events/count",
        "/v2/archives/{archive_id}",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    let (_, _, root) = c.get("/").await;
    assert_eq!(root["versions"][1]["href"], "/v2");

    let (status, _, list) = c.get("/v2/archives").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["2015/03/events_a.json.gz", "events_b.json.gz"]);
    assert_eq!(list[0]["filename"], "events_a.json.gz");
    assert!(list[0]["size"].as_u64().unwrap() > 0);
    assert_eq!(list[0]["mtime"]["__type__"], "datetime");
    let (_, _, none) = c.get("/v2/archives?start_ts=2999-01-01").await;
    assert_eq!(none, serde_json::json!([]));

    let r = c
        .http
        .get(format!("{}/v2/archives/2015/03/events_a.json.gz", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let bytes = r.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    assert_eq!(text, "{\"event_type\":\"a\"}\n{\"event_type\":\"b\"}\n");

    use reqwest::Method as M;
    c.error(
        M::GET,
        "/v2/archives/..%2F..%2Fetc%2Fpasswd",
        StatusCode::BAD_REQUEST,
        Some("archive_id"),
    )
    .await;
    c.error(
        M::GET,
        "/v2/archives/2015/..%2F..%2F..%2Fsecret.json.gz",
        StatusCode::BAD_REQUEST,
        Some("archive_id"),
    )
    .await;
    c.error(
        M::GET,
        "/v2/archives/nope.json.gz",
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    c.error(M::GET, "/v1/archives", StatusCode::NOT_FOUND, None)
        .await;
}

fn archive_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("2015/03")).unwrap();
    for (name, body) in [
        (
            "2015/03/events_a.json.gz",
            "{\"event_type\":\"a\"}\n{\"event_type\":\"b\"}\n",
        ),
        ("events_b.json.gz", "{}\n"),
    ] {
        let f = std::fs::File::create(d.path().join(name)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        gz.write_all(body.as_bytes()).unwrap();
        gz.finish().unwrap();
    }
    std::fs::write(d.path().join("working.json"), "{}\n").unwrap();
    d
}

async fn full_suite(db: ScratchDb) {
    db.load_fixture().await.unwrap();
    let archives = archive_dir();
    let base = spawn_server(
        &db.url,
        ServerOptions {
            archive_dir: Some(archives.path().to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let c = Client {
        base,
        http: reqwest::Client::new(),
    };
    for v in ["v1", "v2"] {
        stream_cases(&c, v).await;
        event_cases(&c, v).await;
    }
    ops_and_archive_cases(&c).await;
    admin_cases(&c, &db).await;

    // The IN filter strategy gives the same answers.
    let base = spawn_server(
        &db.url,
        ServerOptions {
            style: Some(stv3_api::query::FilterStyle::In),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let c2 = Client {
        base,
        http: reqwest::Client::new(),
    };
    assert_eq!(
        c2.keys("/v1/events?traits=memory_mb:2048;ratio:0.5").await,
        msgs(&[15, 13, 11, 9])
    );
    assert_eq!(
        c2.keys("/v1/streams?distinguishing_traits=timestamp:2015-03-01T05:00")
            .await,
        strs(&["4", "3", "2", "1"])
    );

    overlapping_range_cases(&c, &db).await;
    hostile_value_cases(&c, &db).await;
}

/// Every byte of a query value percent-encoded, so the server sees it verbatim.
fn percent(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Filter values holding quotes, backslashes, comment starts and non-ASCII
/// reach the database as data, whether it is matched through index rows
/// (`request_id`), traits documents (`note`) or distinguishing traits: each
/// finds exactly its own event or stream, never more, and never an error.
/// (Values are trimmed by the filter parser, so none ends in a space.)
async fn hostile_value_cases(c: &Client, db: &ScratchDb) {
    use stv3_event::TraitValue;
    const H1: &str = "it's \\ \"quoted\" é";
    const H2: &str = "x\\' OR 1=1 --";
    const H3: &str = "\\";
    let generated = stv3_api::testkit::DAY0;
    let mut sql = Vec::new();
    for (id, request_id, note) in [(25, H1, H2), (26, H2, H1), (27, H3, H3)] {
        let mut doc = stv3_event::Traits::new();
        doc.insert("request_id".into(), TraitValue::Text(request_id.into()));
        doc.insert("note".into(), TraitValue::Text(note.into()));
        let doc = stv3_event::stored::encode_traits(&doc);
        sql.push(format!(
            "INSERT INTO event (id, message_id, generated, event_type_id, traits) \
             VALUES ({id}, 'msg-00{id}', {generated}, 3, {})",
            db.literal(&doc)
        ));
        sql.extend(db.index_entries(&[(id, "request_id", TraitValue::Text(request_id.into()))]));
    }
    sql.push(
        "INSERT INTO stream (id, first_event, last_event, expire_timestamp, fire_timestamp, name, state, state_serial_no) \
         VALUES (10, 1, 2, 3, NULL, 'hostile', 1, 0)"
            .to_string(),
    );
    sql.push(format!(
        "INSERT INTO dist_trait (stream_id, name, type, dt_string, dt_float, dt_int, dt_datetime, dt_timerange_begin, dt_timerange_end) \
         VALUES (10, 'instance_id', 1, {}, NULL, NULL, NULL, NULL, NULL)",
        db.literal(H2)
    ));
    db.exec_all(&sql).await.unwrap();
    let events: &[(&str, &str, &[&str])] = &[
        ("request_id", H1, &["msg-0025"]),
        ("request_id", H2, &["msg-0026"]),
        ("request_id", H3, &["msg-0027"]),
        ("request_id", "it's", &[]),
        ("request_id", "x\\", &[]),
        ("note", H2, &["msg-0025"]),
        ("note", H1, &["msg-0026"]),
        ("note", H3, &["msg-0027"]),
        ("note", "x\\' OR 1=1 -", &[]),
    ];
    for (name, value, want) in events {
        let q = format!("traits={name}:{}", percent(value));
        c.check_list_and_count("events", &q, want).await;
    }
    for (value, want) in [(H2, &["10"][..]), (H1, &[]), ("x", &[])] {
        let q = format!("distinguishing_traits=instance_id:{}", percent(value));
        c.check_list_and_count("streams", &q, want).await;
    }
}

/// Time ranges of other lengths beside the fixture's days: one that starts
/// with them but ends later (its start then has ranges with different ends),
/// one that starts earlier and contains them, one that ends before them. A
/// stream page (driven from the ranges containing the time) and the count
/// (walking the streams) must agree with each other and with the expectation.
async fn overlapping_range_cases(c: &Client, db: &ScratchDb) {
    const DAY: i64 = 86_400_000_000;
    let d0 = stv3_api::testkit::DAY0;
    let mut sql = vec![
        "INSERT INTO stream (id, first_event, last_event, expire_timestamp, fire_timestamp, name, state, state_serial_no) VALUES \
         (7, 1, 2, 3, NULL, 'wide', 1, 0), (8, 1, 2, 3, NULL, 'wide', 1, 0), (9, 1, 2, 3, NULL, 'wide', 1, 0)"
            .to_string(),
    ];
    for (id, begin, end) in [
        (7, d0, d0 + 2 * DAY),
        (8, d0 - DAY, d0 + 3 * DAY),
        (9, d0 - 2 * DAY, d0 - DAY),
    ] {
        sql.push(format!(
            "INSERT INTO dist_trait (stream_id, name, type, dt_string, dt_float, dt_int, dt_datetime, dt_timerange_begin, dt_timerange_end) \
             VALUES ({id}, 'timestamp', 5, NULL, NULL, NULL, NULL, {begin}, {end})"
        ));
    }
    db.exec_all(&sql).await.unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("timestamp:2015-03-01T05:00", &["8", "7"]),
        ("timestamp:2015-03-02T12:00", &["8", "7"]),
        ("timestamp:2015-03-03T12:00", &["8"]),
        ("timestamp:2015-03-04T00:00", &[]),
        ("timestamp:2015-02-28T12:00", &["8"]),
        ("timestamp:2015-02-27T12:00", &["9"]),
        ("timestamp:2015-02-27T00:00", &["9"]),
        ("timestamp:2015-02-26T23:59", &[]),
    ];
    for (filter, want) in cases {
        let q = format!("distinguishing_traits={filter}&trigger_name=wide");
        c.check_list_and_count("streams", &q, want).await;
    }
    // Paging through the union, both ways.
    let q = "distinguishing_traits=timestamp:2015-03-01T05:00&trigger_name=wide&limit=1";
    assert_eq!(c.keys(&format!("/v1/streams?{q}")).await, strs(&["8"]));
    assert_eq!(
        c.keys(&format!("/v1/streams?{q}&mark=8")).await,
        strs(&["7"])
    );
    assert_eq!(c.keys(&format!("/v1/streams?{q}&mark=7")).await, strs(&[]));
    assert_eq!(
        c.keys(&format!("/v1/streams?{q}&mark=%2B7")).await,
        strs(&["8"])
    );
    assert_eq!(
        c.keys(&format!("/v1/streams?{q}&mark=%2B")).await,
        strs(&["7"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_routes_filters_and_fixes() {
    let Some(server) = require(Service::MariaDb, "mariadb_routes_filters_and_fixes") else {
        return;
    };
    let db = ScratchDb::mysql(&server, &scratch_name("api"))
        .await
        .unwrap();
    full_suite(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_routes_filters_and_fixes() {
    let db = ScratchDb::sqlite().await.unwrap();
    full_suite(db).await;
}

#[tokio::test]
async fn limit_is_capped_and_auth_is_enforced() {
    let db = ScratchDb::sqlite().await.unwrap();
    db.load_fixture().await.unwrap();
    let base = spawn_server(
        &db.url,
        ServerOptions {
            auth_token: Some("s3cret".into()),
            limits: Some(Limits { default: 4, max: 5 }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/v1/streams")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let r = http
        .get(format!("{base}/v1/streams"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        http.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let get = |path: &str, header: (&'static str, String)| {
        http.get(format!("{base}{path}"))
            .header(header.0, header.1)
            .send()
    };
    let r = get("/v1/events", ("authorization", "Bearer s3cret".into()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        4,
        "default limit"
    );
    let r = get("/v1/events?limit=100", ("x-auth-token", "s3cret".into()))
        .await
        .unwrap();
    assert!(
        r.headers()["link"].to_str().unwrap().contains("mark=14"),
        "{:?}",
        r.headers()
    );
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        5,
        "max limit"
    );
}
