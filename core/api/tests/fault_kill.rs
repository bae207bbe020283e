//! Fault (#9): the real `stv3-api` binary killed with SIGKILL at random
//! moments, repeatedly, under a client that keeps reading and writing.
//!
//! A scratch MariaDB store is filled by `api-bulkload` (events with trait
//! documents, streams in every state with distinguishing traits and event
//! links). While readers poll `/v1/events/count`, `/v1/streams?...`,
//! `/v1/streams/count` and `/v1/events/{message_id}` and a writer resets every
//! error/expire_error stream (PUT) and purges a set of completed streams
//! (DELETE), the API is killed -9 [`KILLS`] times and restarted on the same
//! port. Asserted:
//!
//! * every restart serves `/health` 200 again within [`SERVE_AGAIN`];
//! * every HTTP answer a client got is right (no 5xx; the event count never
//!   moves; the stream count never goes up; a listed stream has the asked state);
//! * after each kill the database holds no half-done write: a stream is either
//!   intact (same distinguishing traits and links, old state or exactly one
//!   reset) or gone with no orphan `dist_trait` / `streamevent` rows, and the
//!   events are exactly the ones loaded;
//! * after the last restart the counts and the full paged lists (every page via
//!   the mark) equal the database before the first kill, minus exactly the
//!   purged streams: nothing lost, nothing duplicated, GET wrote nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{MySqlPool, Row};
use stv3_api::testkit::ScratchDb;
use stv3_testsupport::{free_port, random_moment, require, scratch_name, Service};

const KILLS: usize = 5;
const EVENTS: u64 = 4000;
const STREAMS: u64 = 400;
/// Completed streams the writer purges.
const DELETES: usize = 150;
/// A restarted API serves `/health` again within this.
const SERVE_AGAIN: Duration = Duration::from_secs(10);

const ERROR: i64 = 4;
const EXPIRE_ERROR: i64 = 5;
const COMPLETED: i64 = 6;
const RETRY_FIRE: i64 = 7;
const RETRY_EXPIRE: i64 = 8;

/// A stream as the database holds it: state, serial, dist_trait rows, streamevent rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamRow {
    state: i64,
    serial: i64,
    dist_traits: i64,
    links: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// (id, message_id) by id.
    events: Vec<(i64, String)>,
    streams: BTreeMap<i64, StreamRow>,
    orphan_dist_traits: i64,
    orphan_links: i64,
}

async fn snapshot(pool: &MySqlPool) -> Snapshot {
    let events = sqlx::query("SELECT id, message_id FROM event ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let mid: Vec<u8> = r.get(1);
            (r.get::<i64, _>(0), String::from_utf8(mid).unwrap())
        })
        .collect();
    let streams = sqlx::query(
        "SELECT s.id, CAST(s.state AS SIGNED), CAST(s.state_serial_no AS SIGNED), \
         (SELECT COUNT(*) FROM dist_trait d WHERE d.stream_id = s.id), \
         (SELECT COUNT(*) FROM streamevent e WHERE e.stream_id = s.id) \
         FROM stream s ORDER BY s.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get::<i64, _>(0),
            StreamRow {
                state: r.get(1),
                serial: r.get(2),
                dist_traits: r.get(3),
                links: r.get(4),
            },
        )
    })
    .collect();
    let scalar = |sql: &'static str| async move {
        sqlx::query(sql)
            .fetch_one(pool)
            .await
            .unwrap()
            .get::<i64, _>(0)
    };
    Snapshot {
        events,
        streams,
        orphan_dist_traits: scalar(
            "SELECT COUNT(*) FROM dist_trait d LEFT JOIN stream s ON s.id = d.stream_id WHERE s.id IS NULL",
        )
        .await,
        orphan_links: scalar(
            "SELECT COUNT(*) FROM streamevent e LEFT JOIN stream s ON s.id = e.stream_id WHERE s.id IS NULL",
        )
        .await,
    }
}

/// No half-done write: each stream intact (old state, or reset exactly once) or wholly gone.
fn assert_consistent(before: &Snapshot, now: &Snapshot, deletable: &BTreeSet<i64>, when: &str) {
    assert_eq!(
        (now.orphan_dist_traits, now.orphan_links),
        (0, 0),
        "{when}: orphan dist_trait / streamevent rows"
    );
    assert!(
        now.events == before.events,
        "{when}: the events changed ({} before, {} now)",
        before.events.len(),
        now.events.len()
    );
    for (id, b) in &before.streams {
        match now.streams.get(id) {
            None => assert!(deletable.contains(id), "{when}: stream {id} vanished"),
            Some(n) => {
                assert_eq!(
                    (n.dist_traits, n.links),
                    (b.dist_traits, b.links),
                    "{when}: stream {id} half purged"
                );
                let reset = match b.state {
                    ERROR => Some(RETRY_FIRE),
                    EXPIRE_ERROR => Some(RETRY_EXPIRE),
                    _ => None,
                };
                let ok = (n.state, n.serial) == (b.state, b.serial)
                    || reset.is_some_and(|t| (n.state, n.serial) == (t, b.serial + 1));
                assert!(ok, "{when}: stream {id} was {b:?}, is {n:?}");
            }
        }
    }
    assert!(
        now.streams.keys().all(|id| before.streams.contains_key(id)),
        "{when}: a stream appeared"
    );
}

/// The running API; killed when dropped (also when the test panics).
struct Api(Child);

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_api(db_url: &str, port: u16, log: &Path) -> Api {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Api(Command::new(env!("CARGO_BIN_EXE_stv3-api"))
        .args(["--db", db_url, "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("STV3_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start stv3-api"))
}

fn logs(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Poll `/health` until it is 200; the time it took.
async fn wait_serving(http: &reqwest::Client, base: &str, log: &Path) -> Duration {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            assert_eq!(r.status(), StatusCode::OK, "/health: {:?}", r.text().await);
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < SERVE_AGAIN,
            "stv3-api did not serve within {SERVE_AGAIN:?}\n{}",
            logs(log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the clients saw: transport errors (the kills) and wrong answers (bugs).
#[derive(Default)]
struct Seen {
    transport_errors: AtomicU64,
    answers: AtomicU64,
    /// Writes sent again because a kill took their answer.
    writes_resent: AtomicU64,
    wrong: Mutex<Vec<String>>,
}

impl Seen {
    fn wrong(&self, what: String) {
        self.wrong.lock().unwrap().push(what);
    }
}

/// One request; `None` when the transport failed (the API died or is down).
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    seen: &Seen,
) -> Option<(StatusCode, Value)> {
    let r = match http.request(method, url).send().await {
        Ok(r) => r,
        Err(_) => {
            seen.transport_errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    let status = r.status();
    match r.text().await {
        Ok(t) => {
            seen.answers.fetch_add(1, Ordering::Relaxed);
            Some((status, serde_json::from_str(&t).unwrap_or(Value::String(t))))
        }
        Err(_) => {
            seen.transport_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

async fn reader(
    k: usize,
    base: String,
    message_ids: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
) {
    let http = client();
    let mut last_stream_count = u64::MAX;
    let mut i = k * 7919;
    let get = reqwest::Method::GET;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let url = match i % 4 {
            0 => format!("{base}/v1/events/count"),
            1 => format!("{base}/v1/streams?state=completed&limit=50"),
            2 => format!("{base}/v1/streams/count"),
            _ => format!(
                "{base}/v1/events/{}",
                message_ids[(i * 31) % message_ids.len()]
            ),
        };
        let Some((status, body)) = call(&http, get.clone(), &url, &seen).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if status != StatusCode::OK {
            seen.wrong(format!("GET {url}: {status} {body}"));
            continue;
        }
        match i % 4 {
            0 => {
                if body[0]["count"].as_u64() != Some(message_ids.len() as u64) {
                    seen.wrong(format!("GET {url}: {body}, want {}", message_ids.len()));
                }
            }
            1 => {
                let ok = body
                    .as_array()
                    .is_some_and(|l| l.iter().all(|s| s["state"] == "completed"));
                if !ok {
                    seen.wrong(format!("GET {url}: {body}"));
                }
            }
            2 => match body[0]["count"].as_u64() {
                Some(n) if n <= last_stream_count => last_stream_count = n,
                _ => seen.wrong(format!("GET {url}: {body} after {last_stream_count}")),
            },
            _ => {
                let want = &message_ids[(i * 31) % message_ids.len()];
                if body["message_id"].as_str() != Some(want.as_str()) {
                    seen.wrong(format!("GET {url}: {body}"));
                }
            }
        }
    }
}

/// Reset every error/expire_error stream and purge `deletes`, retrying each
/// write until it is answered (a write whose answer was lost in a kill is sent
/// again: a repeated reset answers reset=false with the reset state, a repeated
/// purge 404).
async fn writer(base: String, resets: Vec<i64>, deletes: Vec<i64>, seen: Arc<Seen>) {
    let http = client();
    let mut writes: Vec<(reqwest::Method, i64)> = Vec::new();
    let (mut r, mut d) = (resets.into_iter(), deletes.into_iter());
    loop {
        let (a, b) = (r.next(), d.next());
        if a.is_none() && b.is_none() {
            break;
        }
        writes.extend(a.map(|id| (reqwest::Method::PUT, id)));
        writes.extend(b.map(|id| (reqwest::Method::DELETE, id)));
    }
    for (method, id) in writes {
        let url = format!("{base}/v1/streams/{id}");
        let mut unanswered = false;
        loop {
            let Some((status, body)) = call(&http, method.clone(), &url, &seen).await else {
                if !unanswered {
                    seen.writes_resent.fetch_add(1, Ordering::Relaxed);
                }
                unanswered = true;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let ok = if method == reqwest::Method::PUT {
                status == StatusCode::OK
                    && (body["reset"] == true
                        || (unanswered
                            && body["reset"] == false
                            && matches!(
                                body["state"].as_str(),
                                Some("retry_fire" | "retry_expire")
                            )))
            } else {
                status == StatusCode::OK || (unanswered && status == StatusCode::NOT_FOUND)
            };
            if !ok {
                seen.wrong(format!(
                    "{method} {url} (retried: {unanswered}): {status} {body}"
                ));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Every page of a list, following `X-Next-Mark`; the `key` of each item.
async fn all_pages(http: &reqwest::Client, base: &str, path: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut mark: Option<String> = None;
    loop {
        let url = match &mark {
            None => format!("{base}{path}?limit=1000"),
            Some(m) => format!("{base}{path}?limit=1000&mark={m}"),
        };
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        let next = r
            .headers()
            .get("x-next-mark")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Value> = r.json().await.unwrap();
        out.extend(page.iter().map(|v| v[key].clone()));
        match next {
            Some(m) if !page.is_empty() => mark = Some(m),
            _ => return out,
        }
    }
}

async fn count(http: &reqwest::Client, url: &str) -> u64 {
    let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    v[0]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{url}: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_killed_9_repeatedly_loses_duplicates_and_half_applies_nothing() {
    let test = "api_killed_9_repeatedly_loses_duplicates_and_half_applies_nothing";
    let Some(server) = require(Service::MariaDb, test) else {
        return;
    };
    let t_start = Instant::now();
    let name = scratch_name("apikill");
    let db = ScratchDb::mysql(&server, &name).await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_api-bulkload"))
        .args([
            "--server",
            &server,
            "--database",
            &name,
            "--replace",
            "--events",
            &EVENTS.to_string(),
            "--streams",
            &STREAMS.to_string(),
        ])
        .output()
        .expect("api-bulkload");
    assert!(
        out.status.success(),
        "api-bulkload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = MySqlPool::connect(&db.url).await.unwrap();
    let before = snapshot(&pool).await;
    assert_eq!(before.events.len() as u64, EVENTS);
    let in_state = |s: i64| -> Vec<i64> {
        before
            .streams
            .iter()
            .filter(|(_, r)| r.state == s)
            .map(|(id, _)| *id)
            .collect()
    };
    let mut resets = in_state(ERROR);
    resets.extend(in_state(EXPIRE_ERROR));
    let deletes: Vec<i64> = in_state(COMPLETED).into_iter().take(DELETES).collect();
    assert!(
        resets.len() >= 4 && deletes.len() == DELETES,
        "data set: {} resets, {} deletes",
        resets.len(),
        deletes.len()
    );
    let deletable: BTreeSet<i64> = deletes.iter().copied().collect();

    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("stv3-api.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let mut api = start_api(&db.url, port, &log);
    wait_serving(&http, &base, &log).await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let message_ids = Arc::new(
        before
            .events
            .iter()
            .map(|(_, m)| m.clone())
            .collect::<Vec<_>>(),
    );
    let readers: Vec<_> = (0..2)
        .map(|k| {
            tokio::spawn(reader(
                k,
                base.clone(),
                message_ids.clone(),
                stop.clone(),
                seen.clone(),
            ))
        })
        .collect();
    let writes = tokio::spawn(writer(
        base.clone(),
        resets.clone(),
        deletes.clone(),
        seen.clone(),
    ));

    let mut restarts = Vec::new();
    for k in 0..KILLS {
        tokio::time::sleep(random_moment(300, 900)).await;
        api.0.kill().unwrap(); // SIGKILL
        api.0.wait().unwrap();
        let now = snapshot(&pool).await;
        assert_consistent(&before, &now, &deletable, &format!("after kill {k}"));
        api = start_api(&db.url, port, &log);
        restarts.push(wait_serving(&http, &base, &log).await);
        assert_eq!(
            count(&http, &format!("{base}/v1/events/count")).await,
            EVENTS,
            "after restart {k}"
        );
    }
    tokio::time::timeout(Duration::from_secs(30), writes)
        .await
        .expect("the writer finished")
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.unwrap();
    }
    let wrong = seen.wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        logs(&log)
    );
    let transport_errors = seen.transport_errors.load(Ordering::Relaxed);
    assert!(
        transport_errors > 0,
        "the kills never met a request: the test did not test anything"
    );

    // Every write applied exactly once, nothing else changed.
    let after = snapshot(&pool).await;
    assert_consistent(&before, &after, &deletable, "at the end");
    for id in &deletes {
        assert!(!after.streams.contains_key(id), "stream {id} not purged");
    }
    for id in &resets {
        let (b, a) = (before.streams[id], after.streams[id]);
        assert_eq!(a.serial, b.serial + 1, "stream {id} reset once: {a:?}");
    }
    assert_eq!(after.streams.len(), before.streams.len() - DELETES);

    // The API after the last restart: counts and every page equal the database before the first kill.
    assert_eq!(
        count(&http, &format!("{base}/v1/events/count")).await,
        EVENTS
    );
    assert_eq!(
        count(&http, &format!("{base}/v1/streams/count")).await,
        (before.streams.len() - DELETES) as u64
    );
    let listed: Vec<String> = all_pages(&http, &base, "/v1/events", "message_id")
        .await
        .into_iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = before.events.iter().rev().map(|(_, m)| m.clone()).collect();
    assert_eq!(listed.len(), want.len(), "paged event list length");
    assert!(
        listed == want,
        "the paged event list differs from the store"
    );
    let listed: Vec<i64> = all_pages(&http, &base, "/v1/streams", "id")
        .await
        .into_iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let want: Vec<i64> = after.streams.keys().rev().copied().collect();
    assert_eq!(listed, want, "paged stream list");
    let r = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    eprintln!(
        "{KILLS} kills: back in {restarts:?}; {} answers, {transport_errors} transport errors, \
         {} writes resent; {} resets + {DELETES} purges applied once; {:.1}s",
        seen.answers.load(Ordering::Relaxed),
        seen.writes_resent.load(Ordering::Relaxed),
        resets.len(),
        t_start.elapsed().as_secs_f64()
    );
    drop(api);
    pool.close().await;
    drop(db);
}
