//! Observability shared by every long-running stv3 process.
//!
//! * [`init_logging`]: `tracing` to stderr, human or JSON, filtered by `RUST_LOG`
//!   or the `--log-level` flag.
//! * [`serve_ops`]: a small axum server with `/health` and Prometheus `/metrics`.
//! * [`version_string`]: the version and git sha stamped by the root `build.rs`
//!   through `STV3_GIT_SHA` (set at compile time, when available).
//! * [`tune_allocator`]: glibc malloc settings that keep a long-running
//!   process's RSS flat (called first thing by every daemon's `main`), and
//!   [`spawn_heap_trimmer`], which hands freed heap pages back every 30 s.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{routing::get, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Common logging flags, flattened into every binary's clap struct.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log level or RUST_LOG-style filter (e.g. `info`, `stv3=debug`).
    #[arg(long, env = "STV3_LOG", default_value = "info", global = true)]
    pub log_level: String,
    /// Log format: human or json.
    #[arg(long, env = "STV3_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
}

/// Initialise tracing once. Safe to call twice (the second call is ignored).
pub fn init_logging(args: &LogArgs) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&args.log_level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match args.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Environment variables through which an operator sets glibc malloc
/// directly; when any is set, [`tune_allocator`] leaves malloc alone.
pub const MALLOC_ENV: [&str; 3] = [
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
];
/// Arenas glibc may create ([`tune_allocator`]); its default is 8 per core.
pub const ARENA_MAX: i32 = 2;
/// Allocations of at least this many bytes are mmapped and unmapped on free
/// ([`tune_allocator`]).
pub const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Make glibc malloc hand memory back steadily in a daemon that runs for
/// months. Two defaults make RSS climb in steps at every burst and never come
/// down (the 30-minute soak saw yagi-event +12 % at its first backlog):
/// - the mmap threshold is dynamic: once a large buffer (a batch) is freed,
///   the threshold rises to its size, so later batches come from the heap and
///   their pages stay with the process once the heap is fragmented;
/// - up to 8 arenas per core, each keeping its own high-water mark.
///
/// Fixing the threshold ([`MMAP_THRESHOLD`]; this also fixes the trim
/// threshold at its default) and capping arenas ([`ARENA_MAX`]) keeps batch
/// buffers out of the heaps. Returns whether it changed anything: not when an
/// operator set one of [`MALLOC_ENV`], nor on a libc other than glibc.
pub fn tune_allocator() -> bool {
    if MALLOC_ENV.iter().any(|k| std::env::var_os(k).is_some()) {
        return false;
    }
    glibc_tune()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_tune() -> bool {
    // SAFETY: mallopt only sets malloc parameters; it is thread-safe in glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_tune() -> bool {
    false
}

/// How often [`spawn_heap_trimmer`] hands free heap pages back.
pub const HEAP_TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Hand the free pages inside malloc's heaps back to the kernel (glibc
/// `malloc_trim(0)`: the free top of each heap, and whole free pages in the
/// middle through `madvise`). After a burst, memory freed below the mmap
/// threshold stays in the process until then; this takes RSS back to the live
/// data. Returns whether anything was released (always false off glibc).
pub fn trim_heap() -> bool {
    glibc_trim()
}

/// Run [`trim_heap`] every [`HEAP_TRIM_EVERY`] on the current tokio runtime,
/// for as long as the process lives (every daemon starts it next to
/// [`tune_allocator`]). A trim takes about a millisecond per 100 MB of heap.
pub fn spawn_heap_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(HEAP_TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            trim_heap();
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_trim() -> bool {
    // SAFETY: malloc_trim only releases memory malloc holds free; thread-safe in glibc.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_trim() -> bool {
    false
}

/// What malloc holds, in bytes ([`heap_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// Handed out to the program and not yet freed: the live data (heap
    /// chunks and the large buffers mmapped on their own).
    pub in_use: u64,
    /// Free inside malloc's heaps: kept by the process (resident until trimmed).
    pub free: u64,
}

/// malloc's own account of the heap (glibc `mallinfo2`, summed over every
/// arena); None off glibc. RSS far above `in_use` and climbing while
/// `in_use` stays flat is fragmentation, not a leak.
pub fn heap_usage() -> Option<HeapUsage> {
    glibc_heap_usage()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_heap_usage() -> Option<HeapUsage> {
    // SAFETY: mallinfo2 only reads malloc's statistics (under each arena's lock).
    let m = unsafe { libc::mallinfo2() };
    Some(HeapUsage {
        in_use: (m.uordblks + m.hblkhd) as u64,
        free: m.fordblks as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_heap_usage() -> Option<HeapUsage> {
    None
}

/// Gauge: bytes malloc has handed out and not had back ([`HeapUsage::in_use`]).
pub const HEAP_IN_USE_METRIC: &str = "stv3_process_heap_in_use_bytes";
/// Gauge: bytes free inside malloc's heaps ([`HeapUsage::free`]).
pub const HEAP_FREE_METRIC: &str = "stv3_process_heap_free_bytes";

/// Set the heap gauges from [`heap_usage`] (every `/metrics` scrape does).
pub fn record_heap_usage() {
    if let Some(h) = heap_usage() {
        metrics::gauge!(HEAP_IN_USE_METRIC).set(h.in_use as f64);
        metrics::gauge!(HEAP_FREE_METRIC).set(h.free as f64);
    }
}

/// `<crate version> (<git sha>)`.
pub fn version_string(pkg_version: &'static str) -> &'static str {
    let sha = env!("STV3_GIT_SHA");
    Box::leak(format!("{pkg_version} ({sha})").into_boxed_str())
}

/// The process's health: healthy while every component is. [`Health::set`]
/// flips the process-wide component; [`Health::component`] gives a named one
/// (one per consumer, broker connection, ...) so that one failing part keeps
/// the process unhealthy even while the others succeed. `/health` names the
/// failing components with their reasons.
#[derive(Clone, Default)]
pub struct Health(Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>);

/// One named part of a [`Health`].
#[derive(Clone)]
pub struct HealthComponent {
    health: Health,
    name: String,
}

impl Health {
    pub fn healthy() -> Self {
        Health::default()
    }

    /// The process-wide component.
    pub fn set(&self, ok: bool) {
        self.set_component("process", if ok { None } else { Some("unhealthy".into()) });
    }

    fn set_component(&self, name: &str, failure: Option<String>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            None => {
                m.remove(name);
            }
            Some(why) => {
                m.insert(name.to_string(), why);
            }
        }
    }

    /// A named component (healthy until it reports a failure).
    pub fn component(&self, name: impl Into<String>) -> HealthComponent {
        HealthComponent {
            health: self.clone(),
            name: name.into(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Failing components and why, sorted by name.
    pub fn failures(&self) -> Vec<(String, String)> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl HealthComponent {
    pub fn ok(&self) {
        self.health.set_component(&self.name, None);
    }

    pub fn fail(&self, why: impl Into<String>) {
        self.health.set_component(&self.name, Some(why.into()));
    }
}

/// Install the global Prometheus recorder (once) and return its handle. Also
/// starts the upkeep thread, which drains histograms every [`UPKEEP_EVERY`].
pub fn install_metrics() -> PrometheusHandle {
    use std::sync::OnceLock;
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .expect("install prometheus recorder");
            // Histogram samples pile up in the recorder until upkeep (or a scrape)
            // drains them: without this, a process nobody scrapes grows forever
            // (found by the 30-minute soak: stv3-api +290 % RSS).
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name(UPKEEP_THREAD.into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are drained only by scrapes");
            }
            handle
        })
        .clone()
}

/// Name of the thread that drains histogram samples ([`install_metrics`]).
pub const UPKEEP_THREAD: &str = "metrics-upkeep";
/// How often it runs.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A router with `/health` and `/metrics`, to merge into an existing server.
pub fn ops_router(process: &'static str, health: Health) -> Router {
    let handle = install_metrics();
    Router::new()
        .route(
            "/health",
            get(move || {
                let health = health.clone();
                async move {
                    let failures = health.failures();
                    let ok = failures.is_empty();
                    let mut body = serde_json::json!({"status": if ok {"ok"} else {"unhealthy"}, "process": process});
                    if !ok {
                        body["failing"] = failures.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
                    }
                    let code = if ok {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, axum::Json(body))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                record_heap_usage();
                std::future::ready(handle.render())
            }),
        )
}

/// Serve `/health` and `/metrics` on `addr` in a background task.
/// Returns the bound address (useful with port 0).
pub async fn serve_ops(
    process: &'static str,
    addr: SocketAddr,
    health: Health,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = ops_router(process, health);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "ops server stopped");
        }
    });
    tracing::info!(%bound, "serving /health and /metrics");
    Ok(bound)
}
