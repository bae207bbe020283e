//! The load: one confirming publisher per cell (notigen's generator, at a
//! rate or as fast as the broker confirms), every k-th message timed from the
//! moment it is handed to the broker until the API returns its event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use stv3_amqp::{AmqpSettings, OutMessage, Publisher};
use stv3_notigen::{GenConfig, Generator};
use tokio::sync::mpsc;

/// Where and how one cell's notifications are published.
#[derive(Debug, Clone)]
pub struct CellLoad {
    pub exchange: String,
    pub routing_key: String,
    pub seed: u64,
    pub count: u64,
}

/// Shared by the publishers, the prober and the sampler.
pub struct LoadState {
    pub start: Instant,
    pub published: AtomicU64,
    /// (seconds since start when visible, publish-to-visible ms).
    pub latencies: Mutex<Vec<(f64, f64)>>,
    pub missing: AtomicU64,
    /// Set when the run is over: samples still unseen count as missing.
    pub stop: std::sync::atomic::AtomicBool,
}

impl LoadState {
    pub fn new() -> Arc<Self> {
        Arc::new(LoadState {
            start: Instant::now(),
            published: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            missing: AtomicU64::new(0),
            stop: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// The notifications of one cell, as the broker will see them.
pub fn notifications(
    cell: &CellLoad,
    instances: usize,
    start: NaiveDateTime,
    ops_per_hour: f64,
) -> impl Iterator<Item = OutMessage> + Send + 'static {
    let cfg = GenConfig {
        seed: cell.seed,
        instances,
        start,
        ops_per_hour,
        ..GenConfig::default()
    };
    let (exchange, routing_key) = (cell.exchange.clone(), cell.routing_key.clone());
    Generator::new(cfg).take(cell.count as usize).map(move |v| {
        let mut m = OutMessage::raw(&exchange, &routing_key, v.to_string().into_bytes());
        m.message_id = v
            .get("message_id")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        m
    })
}

/// The event types latency samples are taken from (as they appear in a compact JSON body).
const SAMPLED_TYPES: &[u8] = br#""event_type":"compute.instance."#;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Publish one cell's messages; every `sample_every`-th message id goes to `samples`
/// with the instant it was handed to the broker.
pub async fn publish_cell(
    settings: AmqpSettings,
    messages: impl Iterator<Item = OutMessage> + Send,
    rate: Option<f64>,
    sample_every: u64,
    state: Arc<LoadState>,
    samples: mpsc::UnboundedSender<(String, Instant)>,
) -> Result<stv3_amqp::PublishStats> {
    let mut p = Publisher::connect(&settings, "stv3-bench")
        .await
        .context("connect the bench publisher")?;
    p.mandatory = true;
    let mut n = 0u64;
    let mut want_sample = false;
    let stats = p
        .publish_observed(messages, rate, None, |m| {
            n += 1;
            state.published.fetch_add(1, Ordering::Relaxed);
            want_sample |= sample_every > 0 && n.is_multiple_of(sample_every);
            // Only notifications that become events are visible in the API: the sandbox
            // definitions keep compute.instance.* and drop scheduler.* and the like.
            if want_sample && contains(&m.body, SAMPLED_TYPES) {
                if let Some(id) = &m.message_id {
                    let _ = samples.send((id.clone(), Instant::now()));
                    want_sample = false;
                }
            }
        })
        .await
        .context("publish the workload")?;
    p.close().await;
    Ok(stats)
}

/// Poll `GET /v1/events/{message_id}` for each sample until it answers 200 (or
/// `give_up` passes), recording the latency. The poll interval is 5 % of the time the
/// sample has waited (10 ms to 2 s), so the error stays within 5 %, and at most
/// [`MAX_POLLS_IN_FLIGHT`] requests are out at once: a backlog (thousands of samples
/// waiting) does not turn the prober into the API's load or its memory.
pub const MAX_POLLS_IN_FLIGHT: usize = 16;

pub async fn probe_latencies(
    api: String,
    mut samples: mpsc::UnboundedReceiver<(String, Instant)>,
    state: Arc<LoadState>,
    give_up: Duration,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client");
    let polls = Arc::new(tokio::sync::Semaphore::new(MAX_POLLS_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((id, sent)) = samples.recv().await {
        let (client, state, polls, url) = (
            client.clone(),
            Arc::clone(&state),
            Arc::clone(&polls),
            format!("http://{api}/v1/events/{id}"),
        );
        tasks.spawn(async move {
            loop {
                let answer = {
                    let _permit = polls
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    client.get(&url).send().await
                };
                if let Ok(r) = answer {
                    if r.status().is_success() {
                        let ms = sent.elapsed().as_secs_f64() * 1000.0;
                        let t = state.start.elapsed().as_secs_f64();
                        state.latencies.lock().expect("latencies").push((t, ms));
                        return;
                    }
                }
                if sent.elapsed() > give_up || state.stop.load(Ordering::Relaxed) {
                    state.missing.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(poll_interval(sent.elapsed())).await;
            }
        });
        // Reap the finished ones as we go, so the set holds only waiting samples.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// How long a sample that has waited `waited` sleeps before its next poll.
fn poll_interval(waited: Duration) -> Duration {
    (waited / 20).clamp(Duration::from_millis(10), Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_slow_down_with_the_wait() {
        for (waited_ms, want_ms) in [
            (0, 10),
            (100, 10),
            (1_000, 50),
            (10_000, 500),
            (120_000, 2_000),
        ] {
            assert_eq!(
                poll_interval(Duration::from_millis(waited_ms)),
                Duration::from_millis(want_ms),
                "{waited_ms} ms"
            );
        }
    }

    #[test]
    fn samples_come_from_event_producing_types() {
        for (body, want) in [
            (
                &br#"{"event_type":"compute.instance.create.end","x":1}"#[..],
                true,
            ),
            (br#"{"event_type":"scheduler.run_instance.end"}"#, false),
            (br#"{"payload":{"event_type":"compute.instance.x"}}"#, true),
            (b"", false),
        ] {
            assert_eq!(
                contains(body, SAMPLED_TYPES),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// A stand-in API that answers every request after 20 ms and records the
    /// most requests it ever had open at once.
    async fn slow_api() -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (open, most) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let seen = Arc::clone(&most);
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (open, most) = (Arc::clone(&open), Arc::clone(&most));
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // One request per connection is enough: each answer closes it.
                    if sock.read(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn a_burst_of_samples_never_has_more_than_the_cap_in_flight() {
        let (api, most) = slow_api().await;
        let state = LoadState::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let samples = 5 * MAX_POLLS_IN_FLIGHT;
        for i in 0..samples {
            tx.send((format!("m{i}"), Instant::now())).unwrap();
        }
        drop(tx);
        probe_latencies(api, rx, Arc::clone(&state), Duration::from_secs(30)).await;
        assert_eq!(state.latencies.lock().unwrap().len(), samples);
        assert_eq!(state.missing.load(Ordering::SeqCst), 0);
        let most = most.load(Ordering::SeqCst) as usize;
        assert!(
            (2..=MAX_POLLS_IN_FLIGHT).contains(&most),
            "{most} requests were open at once"
        );
    }
}
