//! `stv3ctl sandbox`: the whole system on one machine in one command.
//!
//! Layout of the work directory (`.stv3-sandbox/` by default):
//!
//! ```text
//! etc/      rendered configs (winchester.yaml, triggers.yaml, pipelines.yaml,
//!           event_definitions.yaml, yagi-<cell>.conf, api.conf)
//! data/     the SQLite database (embedded default)
//! feed/     notigen output, one JSON-lines file per cell (file source)
//! archive/  shoebox archives, per cell
//! logs/     one log per process, every line prefixed with `[name]`
//! pids/     one pid file per running process (for `down` and `status`)
//! ```
//!
//! `up` builds the binaries, renders the configs, runs migrations once, then
//! starts the API, two pipeline workers, one yagi-event per cell and notigen,
//! and prints a live status line until Ctrl-C, which stops everything cleanly.

pub mod cli;
pub mod configs;
pub mod status;
pub mod supervisor;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use supervisor::{read_pids, signal, ProcSpec, Signal, Supervisor};

/// Options for `stv3ctl sandbox up`.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub dir: PathBuf,
    /// Real RabbitMQ instead of the file source.
    pub amqp: Option<String>,
    /// Real database URL instead of the embedded SQLite.
    pub db: Option<String>,
    pub api_addr: String,
    pub cells: Vec<String>,
    pub workers: usize,
    /// Notifications notigen generates per cell.
    pub count: u64,
    pub instances: u64,
    pub seed: u64,
    /// Build with `--release`.
    pub release: bool,
    /// Do not run cargo build (use binaries already built).
    pub no_build: bool,
    /// Stop after this long (for tests and demos); run until Ctrl-C when None.
    pub duration: Option<Duration>,
    /// Cell queues are `<queue_prefix>.<cell>.monitor.info`.
    pub queue_prefix: String,
    /// The exchange the cells' queues are bound to (notifications are published there).
    pub exchange: String,
    /// First port of the processes' `/health` + `/metrics` addresses.
    pub ops_port_base: u16,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            dir: PathBuf::from(".stv3-sandbox"),
            amqp: None,
            db: None,
            api_addr: "127.0.0.1:8000".into(),
            cells: vec!["cell1".into(), "cell2".into()],
            workers: 2,
            count: 20_000,
            instances: 200,
            seed: 42,
            release: false,
            no_build: false,
            duration: None,
            queue_prefix: "stv3.sandbox".into(),
            exchange: "nova".into(),
            ops_port_base: OPS_PORT_BASE,
        }
    }
}

/// The binaries the sandbox runs.
pub const SANDBOX_BINS: &[&str] = &[
    "yagi-event",
    "pipeline-worker",
    "winchester-db",
    "stv3-api",
    "notigen",
    "klugman",
];

/// Build the binaries (unless `no_build`) and return the directory holding them.
pub fn build_binaries(opts: &SandboxOptions) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = if opts.release { "release" } else { "debug" };
    if !opts.no_build {
        let mut cmd = Command::new(&cargo);
        cmd.args(["build", "--workspace"]);
        if opts.release {
            cmd.arg("--release");
        }
        for b in SANDBOX_BINS {
            cmd.args(["--bin", b]);
        }
        eprintln!("building {} ({profile})...", SANDBOX_BINS.join(", "));
        let status = cmd.status().context("run cargo build")?;
        if !status.success() {
            bail!("cargo build failed ({status})");
        }
    }
    let target = target_dir(&cargo)?;
    let bin_dir = target.join(profile);
    for b in SANDBOX_BINS {
        if !bin_dir.join(b).exists() {
            bail!(
                "binary {b} not found in {} (build first, or drop --no-build)",
                bin_dir.display()
            );
        }
    }
    Ok(bin_dir)
}

fn target_dir(cargo: &str) -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parse cargo metadata")?;
    v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// Stop a sandbox started from another shell, by its pid files.
pub fn down(dir: &Path) -> Result<usize> {
    let mut n = 0;
    // The `sandbox up` process first: on SIGTERM it stops its children itself.
    if let Some(pid) = read_owner(dir) {
        if signal(pid, Signal::Term) {
            n += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(25);
        while Instant::now() < deadline && read_owner(dir).is_some() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let procs = read_pids(dir);
    for (_, pid, alive) in &procs {
        if *alive && signal(*pid, Signal::Term) {
            n += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && read_pids(dir).iter().any(|p| p.2) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (_, pid, alive) in read_pids(dir) {
        if alive {
            signal(pid, Signal::Kill);
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("pids"));
    Ok(n)
}

/// The pid file of the `sandbox up` process that owns a work directory.
pub const OWNER_PID: &str = "sandbox.pid";

/// The pid of a live `sandbox up` owning `dir`, if any.
pub fn read_owner(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(OWNER_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    signal(pid, Signal::Probe).then_some(pid)
}

/// Deletes a file when dropped (the owner pid file, on every exit path).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Remove the whole work directory (after stopping everything in it).
pub fn reset(dir: &Path) -> Result<()> {
    down(dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    Ok(())
}

/// The process's Ctrl-C / SIGTERM flag. The first call installs the handlers;
/// every call returns the same flag, so a caller may install it early (before
/// starting children, so an interrupt cannot orphan them) and look it up later.
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        #[cfg(unix)]
        {
            extern "C" fn on_signal(_: libc::c_int) {
                if let Some(f) = FLAG.get() {
                    f.store(true, Ordering::SeqCst);
                }
            }
            for sig in [libc::SIGINT, libc::SIGTERM] {
                // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
                unsafe {
                    libc::signal(sig, on_signal as *const () as libc::sighandler_t);
                }
            }
        }
        Arc::new(AtomicBool::new(false))
    }))
}

/// Wait until `stop` is set or `duration` elapses, calling `tick` every interval.
pub fn wait_loop(
    stop: &AtomicBool,
    duration: Option<Duration>,
    every: Duration,
    mut tick: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if let Some(d) = duration {
            if start.elapsed() >= d {
                break;
            }
        }
        if Instant::now() >= next {
            if !tick()? {
                break;
            }
            next = Instant::now() + every;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Helper for building a [`ProcSpec`].
pub fn spec(name: &str, bin_dir: &Path, bin: &str, args: &[String]) -> ProcSpec {
    ProcSpec {
        name: name.into(),
        program: bin_dir.join(bin),
        args: args.to_vec(),
        // STV3_SANDBOX_LOG: the processes' log filter (e.g. `info,stv3_ingest::chain=debug`)
        env: vec![(
            "RUST_LOG".into(),
            std::env::var("STV3_SANDBOX_LOG").unwrap_or_else(|_| "info".into()),
        )],
    }
}

/// First port of the ops (`/health`, `/metrics`) addresses given to sandbox processes.
pub const OPS_PORT_BASE: u16 = 9100;

/// A started region: its layout and the `/health` address of each service.
pub struct Region {
    pub layout: configs::Layout,
    /// (process name, ops address serving `/health` and `/metrics`).
    pub ops: Vec<(String, String)>,
}

/// Render the configs into `dir`, run the migrations once, and start the
/// service instances a deploy would start (API, pipeline workers, one
/// yagi-event per cell) under `sup`. In file mode (no `opts.amqp`) each
/// cell's feed is generated first and its yagi-event follows it.
pub fn start_region(
    assets: &crate::deploy::roles::Assets,
    opts: &SandboxOptions,
    bin_dir: &Path,
    dir: &Path,
    sup: &mut Supervisor,
) -> Result<Region> {
    let layout = configs::render(assets, opts, dir)?;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    if let Some(db) = &layout.model.db {
        std::fs::create_dir_all(&db.dir).with_context(|| format!("create {}", db.dir))?;
        for f in &db.files {
            let path = Path::new(&db.dir).join(&f.name);
            std::fs::write(&path, &f.content)
                .with_context(|| format!("write {}", path.display()))?;
        }
        let (bin, args) = db.migrate.split_first().context("empty migrate command")?;
        let bin = Path::new(bin)
            .file_name()
            .map(|b| b.to_string_lossy().to_string())
            .unwrap_or_default();
        sup.run_once(spec("winchester-db", bin_dir, &bin, args))?;
    }

    // The same service instances (binary + arguments) a deploy would start.
    let mut ops = Vec::new();
    for kind in ["api", "pipeline", "yagi"] {
        for svc in configs::services(&layout, kind) {
            let name = if svc.instance.is_empty() {
                svc.id.clone()
            } else {
                format!("{}-{}", svc.id, svc.instance)
            };
            let bin = Path::new(&svc.binary)
                .file_name()
                .map(|b| b.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut args = svc.args.clone();
            if kind == "yagi" && opts.amqp.is_none() {
                let index = layout
                    .cells
                    .iter()
                    .position(|c| c.name == svc.instance)
                    .context("yagi instance without a cell")?;
                let cell = &layout.cells[index];
                // Embedded default: notigen writes the cell's feed, yagi-event follows it.
                let gen = s(&[
                    "--seed",
                    &cell_seed(opts.seed, index).to_string(),
                    "--count",
                    &opts.count.to_string(),
                    "--instances",
                    &opts.instances.to_string(),
                    "--out",
                    &cell.feed.display().to_string(),
                ]);
                let gen = [gen, sim_clock_args(opts)].concat();
                sup.run_once(spec(
                    &format!("notigen-{}", cell.name),
                    bin_dir,
                    "notigen",
                    &gen,
                ))?;
                args.extend(s(&[
                    "--source",
                    &format!("file:{}", cell.feed.display()),
                    "--follow",
                ]));
            }
            sup.spawn(spec(&name, bin_dir, &bin, &args))?;
            ops.push((name, svc.health_addr.clone()));
        }
    }
    Ok(Region { layout, ops })
}

/// `sandbox up`: build, render, migrate, start, report until stopped.
pub fn up(assets: &crate::deploy::roles::Assets, opts: &SandboxOptions) -> Result<i32> {
    // Before anything starts: a Ctrl-C during the build or start-up stops what
    // was started instead of killing this process and orphaning its children.
    let stop = stop_flag();
    let bin_dir = build_binaries(opts)?;
    if stop.load(Ordering::SeqCst) {
        println!("interrupted before start-up.");
        return Ok(130);
    }
    std::fs::create_dir_all(&opts.dir).with_context(|| format!("create {}", opts.dir.display()))?;
    let dir = opts.dir.canonicalize()?;
    let owner = dir.join(OWNER_PID);
    if let Some(pid) = read_owner(&dir) {
        bail!(
            "a sandbox is already running in {} (pid {pid}); stop it with `stv3ctl sandbox down`",
            dir.display()
        );
    }
    std::fs::write(&owner, std::process::id().to_string())?;
    let _owner_guard = RemoveOnDrop(owner);
    let mut sup = Supervisor::new(&dir)?;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let Region { layout, ops } = start_region(assets, opts, &bin_dir, &dir, &mut sup)?;
    if let Some(url) = &opts.amqp {
        for (n, cell) in layout.cells.iter().enumerate() {
            let gen = s(&[
                "--seed",
                &cell_seed(opts.seed, n).to_string(),
                "--count",
                &opts.count.to_string(),
                "--instances",
                &opts.instances.to_string(),
                "--amqp",
                url,
                "--exchange",
                &cell.exchange,
                "--routing-key",
                &cell.routing_key,
                "--rate",
                "2000",
            ]);
            let gen = [gen, sim_clock_args(opts)].concat();
            sup.spawn(spec(
                &format!("notigen-{}", cell.name),
                &bin_dir,
                "notigen",
                &gen,
            ))?;
        }
    }

    println!("stv3 sandbox is up in {}", dir.display());
    println!("  configs   {}", dir.join("etc").display());
    println!("  database  {}", layout.database_url);
    println!(
        "  logs      {}  (one file per process, lines prefixed [name])",
        dir.join("logs").display()
    );
    println!(
        "  API       http://{}/v1/streams   (klugman --url http://{} streams)",
        opts.api_addr, opts.api_addr
    );
    for (name, addr) in &ops {
        println!("  {name:<16} http://{addr}/health  /metrics");
    }
    println!("Ctrl-C stops everything.");

    let mut last: Option<(Instant, u64)> = None;
    let mut failed = Vec::new();
    wait_loop(&stop, opts.duration, Duration::from_secs(2), || {
        for (name, status) in sup.exited() {
            if !failed.contains(&name) {
                eprintln!(
                    "!! {name} exited ({status}); last lines of {}:",
                    sup.log_path(&name).display()
                );
                for line in tail(&sup.log_path(&name), 10) {
                    eprintln!("   {line}");
                }
                failed.push(name);
            }
        }
        let mut sample = status::sample_api(&opts.api_addr);
        sample.errors = *sup.errors.lock().expect("errors lock");
        let rate = match last {
            Some((t, n)) => {
                (sample.events.saturating_sub(n)) as f64 / t.elapsed().as_secs_f64().max(0.001)
            }
            None => 0.0,
        };
        last = Some((Instant::now(), sample.events));
        let fired: u64 = sample
            .streams
            .iter()
            .filter(|(k, _)| k == "completed" || k == "error")
            .map(|(_, v)| v)
            .sum();
        println!("{}", status::render(&sample, rate, fired));
        Ok(true)
    })?;
    println!("stopping...");
    sup.stop_all(Duration::from_secs(15));
    println!("stopped. Logs are in {}", dir.join("logs").display());
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// Each cell gets its own seed, so the cells' notifications (and message_ids) differ.
pub fn cell_seed(seed: u64, cell_index: usize) -> u64 {
    seed.wrapping_add(cell_index as u64 * 1_000_003)
}

/// notigen's simulated clock: start two days ago, at a pace that brings the
/// generated activity up to about now, so that end-of-day `.exists` fire usage
/// streams and older streams expire while recent ones stay active.
pub fn sim_clock_args(opts: &SandboxOptions) -> Vec<String> {
    let start = utc_now_minus_hours(48);
    // ~20 notifications per operation on average, spread over 48 hours.
    let ops_per_hour = (opts.count as f64 / 20.0 / 48.0).max(1.0);
    vec![
        "--start".into(),
        start,
        "--ops-per-hour".into(),
        format!("{ops_per_hour:.0}"),
    ]
}

/// `YYYY-MM-DDTHH:MM:SS` for (now - hours), UTC, without a date library.
fn utc_now_minus_hours(hours: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_sub(hours * 3600);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `sandbox status`: processes and counts.
pub fn print_status(dir: &Path, api: &str) -> Result<i32> {
    let procs = read_pids(dir);
    if procs.is_empty() {
        println!("no sandbox processes recorded in {}", dir.display());
    }
    for (name, pid, alive) in &procs {
        println!(
            "{name:<16} pid {pid:<8} {}",
            if *alive { "running" } else { "dead" }
        );
    }
    let sample = status::sample_api(api);
    println!("{}", status::render(&sample, 0.0, 0));
    Ok(if procs.iter().all(|p| p.2) { 0 } else { 1 })
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        for (days, want) in [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (20_782, (2026, 11, 25)),
        ] {
            assert_eq!(civil_from_days(days), want, "{days}");
        }
    }
}
