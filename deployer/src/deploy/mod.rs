//! `stv3ctl deploy`, `rollback`, `status` and `render`.
//!
//! The flow (plan, then apply, from the same code, like cargo-dist); each
//! remote step is one command per host:
//!
//! 1. read the package (checksum against its sidecar, manifest) while
//!    connecting to every selected host (one session each, `--forks` at a
//!    time) and gathering its facts ([`facts`], one command);
//! 2. [`render`] each host's desired state and [`plan`] the changes
//!    (including what an earlier deploy installed that left the model);
//! 3. `--check` prints the plan (with `--diff`, unified diffs, secrets
//!    redacted) and stops: exit 2 if anything would change; a converged
//!    region stops here too, with nothing locked or verified;
//! 4. take the region lock (on the first db host) while the package is
//!    fully verified;
//! 5. [`apply::prepare`] every host (account, dirs, streamed upload and
//!    unpack), the db hosts then running the database step
//!    ([`apply::database`]: the server package when `database.install_server`
//!    asks for it and it is missing or down; on the first db host,
//!    provisioning with the admin credential, D8, and the migrations, D7)
//!    while the others still prepare;
//! 6. roll out ([`apply::rollout`]): every host at once, or with `--serial N`
//!    the db hosts first and then N at a time; each host removes what left,
//!    installs its changed files, switches release, restarts exactly the
//!    services whose code or config changed and passes a polled health gate,
//!    or is rolled back; the rollout stops once more than `--max-fail` hosts
//!    failed;
//! 7. prune old releases, release the lock, print the result table.

pub mod apply;
pub mod bundle;
pub mod cli;
pub mod facts;
pub mod plan;
pub mod render;
pub mod roles;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::inventory::{Host, InitKind, Region, RoleName};
use crate::transport::{local::LocalTransport, ssh, Transport, TransportError};
use apply::HostOutcome;
use facts::HostFactsFull;
use plan::{HostPlan, PackageInfo};
use render::{HostFacts, HostModel};
use roles::Assets;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{role}: {message}")]
    Role { role: String, message: String },
    #[error("render {what}: {message}")]
    Render { what: String, message: String },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Other(String),
}

/// Options shared by deploy, rollback and status.
#[derive(Debug, Clone)]
pub struct Options {
    pub limit: Vec<String>,
    pub forks: usize,
    pub serial: usize,
    pub max_fail: usize,
    pub accept_new_host_keys: bool,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub check: bool,
    pub diff: bool,
    pub skip_migrate: bool,
    pub break_lock: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limit: vec![],
            forks: 10,
            serial: 0,
            max_fail: 0,
            accept_new_host_keys: false,
            identity_file: None,
            known_hosts: None,
            check: false,
            diff: false,
            skip_migrate: false,
            break_lock: false,
        }
    }
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(rest)
        }
        None => PathBuf::from(p),
    }
}

/// Open a transport to `host`.
pub fn connect(
    region: &Region,
    host: &Host,
    opts: &Options,
) -> Result<Box<dyn Transport>, TransportError> {
    if host.is_local() {
        return Ok(Box::new(LocalTransport::new(&host.name)));
    }
    let known_hosts = opts
        .known_hosts
        .clone()
        .or_else(|| region.ssh.known_hosts.as_deref().map(expand_home))
        .unwrap_or_else(|| expand_home("~/.ssh/known_hosts"));
    let cfg = ssh::SshConfig {
        name: host.name.clone(),
        address: host.address.clone(),
        port: host.port,
        user: host.user.clone(),
        sudo: host.sudo && host.user != "root",
        identity_file: opts
            .identity_file
            .clone()
            .or_else(|| region.ssh.identity_file.as_deref().map(expand_home)),
        known_hosts,
        accept_new_host_keys: opts.accept_new_host_keys,
        connect_timeout: Duration::from_secs(region.ssh.connect_timeout_seconds),
        op_timeout: Duration::from_secs(300),
    };
    Ok(Box::new(ssh::Ssh2Transport::connect(cfg)?))
}

/// Run `f` for every item, at most `forks` at a time, each on its own thread.
pub fn parallel<T: Send, R: Send>(
    items: Vec<T>,
    forks: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let queue = Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..forks.max(1).min(n.max(1)) {
            s.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.pop()).ok().flatten();
                let Some((i, item)) = next else { break };
                let r = f(item);
                if let Ok(mut res) = results.lock() {
                    res[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// The hosts selected by `--limit` (names or roles), in rollout order:
/// db hosts first, then workers, then API hosts.
pub fn select_hosts<'a>(
    region: &'a Region,
    limit: &[String],
) -> Result<Vec<&'a Host>, DeployError> {
    for l in limit {
        let known = region.host(l).is_some() || ["db", "worker", "api"].contains(&l.as_str());
        if !known {
            return Err(DeployError::Other(format!(
                "--limit {l}: no such host or role in region {} (hosts: {})",
                region.name,
                region
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut hosts: Vec<&Host> = region
        .hosts
        .iter()
        .filter(|h| {
            limit.is_empty()
                || limit
                    .iter()
                    .any(|l| l == &h.name || h.roles.iter().any(|r| r.as_str() == l))
        })
        .collect();
    hosts.sort_by_key(|h| h.roles.first().copied().unwrap_or(RoleName::Api));
    Ok(hosts)
}

/// One connected host with its model and facts.
pub struct Target {
    pub host: Host,
    pub transport: Box<dyn Transport>,
    pub model: HostModel,
    pub facts: HostFactsFull,
}

/// Connect, probe, render and gather facts for each host (one facts
/// command per host when the model rendered before knowing the host's core
/// count and init system covers the real one). Unreachable hosts come back
/// as failed outcomes.
pub fn survey(
    assets: &Assets,
    region: &Region,
    hosts: &[&Host],
    opts: &Options,
) -> (Vec<Target>, Vec<HostOutcome>) {
    let results = parallel(
        hosts.iter().map(|h| (*h).clone()).collect(),
        opts.forks,
        |host| {
            let roles = host
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let survey_one = || -> Result<Target, DeployError> {
                let mut t = connect(region, &host, opts)?;
                let guess = render::render_host(
                    assets,
                    region,
                    &host,
                    &HostFacts {
                        cores: host.pipeline_workers.unwrap_or(1),
                        init: match host.init {
                            InitKind::Auto => InitKind::Systemd,
                            other => other,
                        },
                    },
                )?;
                let (model, facts) =
                    facts::gather_for(t.as_mut(), &region.paths, &guess, |basic| {
                        let init = match host.init {
                            InitKind::Auto => basic.init.unwrap_or(InitKind::Sysv),
                            other => other,
                        };
                        render::render_host(
                            assets,
                            region,
                            &host,
                            &HostFacts {
                                cores: basic.cores,
                                init,
                            },
                        )
                    })?;
                Ok(Target {
                    host: host.clone(),
                    transport: t,
                    model,
                    facts,
                })
            };
            survey_one().map_err(|e| Box::new(HostOutcome::new(&host.name, &roles).fail(e)))
        },
    );
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(t) => ok.push(t),
            Err(o) => failed.push(*o),
        }
    }
    (ok, failed)
}

/// The package as planning needs it, read cheaply: the tarball's sha256
/// (checked against its `.sha256` sidecar) and its `MANIFEST.json` (the first
/// entry). The full verification ([`verify_package`]) runs only when some
/// host will unpack it; hosts record the sha256 of the tarball each release
/// came from, so an installed release was verified when it was unpacked.
pub fn read_package(path: &Path) -> Result<PackageInfo, DeployError> {
    use sha2::Digest;
    use std::io::Read;
    let err = |m: String| DeployError::Other(format!("{}: {m}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    let sidecar = PathBuf::from(format!("{}.sha256", path.display()));
    let text = std::fs::read_to_string(&sidecar)
        .map_err(|e| err(format!("sidecar {}: {e}", sidecar.display())))?;
    let (want, _) = crate::package::archive::parse_sidecar(&text)
        .map_err(|e| err(format!("sidecar {}: {e}", sidecar.display())))?;
    if want != sha256 {
        return Err(err(format!(
            "sha256 {sha256} does not match the sidecar ({want})"
        )));
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut manifest = None;
    for entry in archive.entries().map_err(|e| err(e.to_string()))? {
        let mut entry = entry.map_err(|e| err(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| err(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if name.ends_with("/MANIFEST.json") && name.matches('/').count() == 1 {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| err(e.to_string()))?;
            manifest = Some(text);
            break;
        }
    }
    let manifest = manifest.ok_or_else(|| err("no MANIFEST.json in the tarball".into()))?;
    let m: crate::package::manifest::Manifest =
        serde_json::from_str(&manifest).map_err(|e| err(format!("MANIFEST.json: {e}")))?;
    let binaries = m
        .files
        .iter()
        .filter(|f| f.path.starts_with("bin/"))
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect();
    Ok(PackageInfo {
        version: m.version,
        sha256,
        binaries,
    })
}

/// Full verification (`package verify`) plus the bytes to upload.
pub fn verify_package(path: &Path, pkg: &PackageInfo) -> Result<Vec<u8>, DeployError> {
    let v = crate::package::verify::verify_tarball(path)
        .map_err(|e| DeployError::Other(e.to_string()))?;
    if v.sha256 != pkg.sha256 || v.manifest.version != pkg.version {
        return Err(DeployError::Other(format!(
            "{}: changed while deploying",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| DeployError::Other(format!("{}: {e}", path.display())))
}

/// Per-binary checksums of the installed release `version` (from its MANIFEST.json).
fn installed_binaries(
    t: &mut dyn Transport,
    region: &Region,
    version: &str,
) -> Option<BTreeMap<String, String>> {
    let text = t
        .read_file(&format!(
            "{}/releases/{version}/MANIFEST.json",
            region.paths.opt
        ))
        .ok()??;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some(
        v["files"]
            .as_array()?
            .iter()
            .filter_map(|f| {
                Some((
                    f["path"].as_str()?.to_string(),
                    f["sha256"].as_str()?.to_string(),
                ))
            })
            .filter(|(p, _)| p.starts_with("bin/"))
            .collect(),
    )
}

/// The result of a deploy, rollback or status run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub region: String,
    pub version: Option<String>,
    pub check: bool,
    pub plans: Vec<HostPlan>,
    pub hosts: Vec<HostOutcome>,
    pub seconds: f64,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.hosts.iter().filter(|h| !h.ok).count()
    }
    pub fn exit_code(&self) -> i32 {
        if self.failed() > 0 {
            1
        } else if self.check && self.plans.iter().any(|p| !p.is_noop()) {
            2
        } else {
            0
        }
    }
    /// The human result table (host, role, release, changed, restarted, health, time).
    pub fn table(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "host",
            "roles",
            "release",
            "changed",
            "restarted",
            "removed",
            "health",
            "time",
            "result",
        ]);
        for h in &self.hosts {
            t.add_row(vec![
                h.host.clone(),
                h.roles.clone(),
                h.release.clone(),
                h.changed.to_string(),
                h.restarted.len().to_string(),
                h.removed.len().to_string(),
                h.health.clone(),
                format!("{:.1}s", h.seconds),
                match (&h.error, h.rolled_back) {
                    (None, _) => "ok".into(),
                    (Some(e), true) => format!("FAILED, rolled back: {e}"),
                    (Some(e), false) => format!("FAILED: {e}"),
                },
            ]);
        }
        let mut out = format!("{t}\n");
        for h in &self.hosts {
            if let Some(l) = &h.logs {
                out.push_str(&format!(
                    "--- last log lines on {} ---\n{}\n",
                    h.host,
                    l.trim_end()
                ));
            }
        }
        out.push_str(&format!(
            "{} {}: {} host(s), {} failed, {:.1}s\n",
            self.command,
            self.region,
            self.hosts.len(),
            self.failed(),
            self.seconds
        ));
        out
    }
}

/// `stv3ctl deploy`.
pub fn deploy(
    assets: &Assets,
    region: &Region,
    package: &Path,
    opts: &Options,
) -> Result<Report, DeployError> {
    let started = Instant::now();
    apply::start_clock();
    let hosts = select_hosts(region, &opts.limit)?;
    // The package's checksum and manifest are read while the hosts are surveyed.
    let (pkg, (mut targets, mut failed)) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_package(package));
        let surveyed = survey(assets, region, &hosts, opts);
        let pkg = reader
            .join()
            .unwrap_or_else(|_| Err(DeployError::Other("reading the package panicked".into())));
        pkg.map(|p| (p, surveyed))
    })?;
    apply::progress(
        "-",
        &format!(
            "package {} {} (sha256 {}); {} host(s) surveyed",
            package.display(),
            pkg.version,
            &pkg.sha256[..12],
            targets.len()
        ),
    );

    let plans: Vec<HostPlan> = parallel(targets.iter_mut().collect(), opts.forks, |tg| {
        plan_target(tg, region, &pkg, opts)
    });
    for (tg, p) in targets.iter().zip(&plans) {
        if let Some(why) = plan::refusal(&tg.model, &tg.facts, p) {
            return Err(DeployError::Other(why));
        }
    }
    if opts.check {
        failed.sort_by(|a, b| a.host.cmp(&b.host));
        return Ok(Report {
            command: "deploy --check (PLAN ONLY, nothing changed)".into(),
            region: region.name.clone(),
            version: Some(pkg.version),
            check: true,
            plans,
            hosts: failed,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    if !failed.is_empty() && opts.max_fail < failed.len() {
        return Ok(Report {
            command: "deploy (aborted: unreachable hosts)".into(),
            region: region.name.clone(),
            version: Some(pkg.version),
            check: false,
            plans,
            hosts: failed,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    // Nothing to do anywhere: no lock, no verification, no rollout.
    if failed.is_empty() && plans.iter().all(|p| p.is_noop()) {
        let hosts_out = targets
            .iter()
            .map(|t| {
                let mut o = HostOutcome::new(&t.host.name, &plan_roles(&plans, &t.host.name));
                o.release = pkg.version.clone();
                o.health = "ok (no changes)".into();
                o
            })
            .collect();
        return Ok(Report {
            command: "deploy".into(),
            region: region.name.clone(),
            version: Some(pkg.version),
            check: false,
            plans,
            hosts: hosts_out,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    // Verify the package while the region lock is taken.
    let verifier = plans.iter().any(|p| p.unpack).then(|| {
        let pkg = pkg.clone();
        let path = package.to_path_buf();
        std::thread::spawn(move || verify_package(&path, &pkg))
    });

    // Region lock on the first db host (or the first host).
    if targets.is_empty() {
        return Err(DeployError::Other("no reachable host".into()));
    }
    let lock_idx = targets
        .iter()
        .position(|t| t.host.has(RoleName::Db))
        .unwrap_or(0);
    let who = format!(
        "{}@{} pid {} version {} at {}",
        std::env::var("USER").unwrap_or_else(|_| "?".into()),
        hostname(),
        std::process::id(),
        pkg.version,
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    {
        let t = targets[lock_idx].transport.as_mut();
        if opts.break_lock {
            apply::unlock(t, &region.paths.lib)?;
        }
        apply::lock(t, &region.paths.lib, &who).map_err(DeployError::Other)?;
        apply::progress(t.host(), "region lock taken");
    }
    let tarball = match verifier {
        Some(v) => match v
            .join()
            .unwrap_or_else(|_| Err(DeployError::Other("package verification panicked".into())))
        {
            Ok(b) => {
                apply::progress("-", &format!("package {} verified", package.display()));
                b
            }
            Err(e) => {
                let _ = apply::unlock(targets[lock_idx].transport.as_mut(), &region.paths.lib);
                return Err(e);
            }
        },
        None => Vec::new(),
    };
    let outcome = rollout_all(
        region,
        &mut targets,
        &plans,
        &pkg,
        &tarball,
        opts,
        failed.len(),
    );
    let t = targets[lock_idx].transport.as_mut();
    if let Err(e) = apply::unlock(t, &region.paths.lib) {
        eprintln!("warning: could not release the region lock: {e}");
    }
    let mut hosts_out = failed;
    hosts_out.extend(outcome);
    let order: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    hosts_out.sort_by_key(|o| {
        order
            .iter()
            .position(|n| *n == o.host)
            .unwrap_or(usize::MAX)
    });
    Ok(Report {
        command: "deploy".into(),
        region: region.name.clone(),
        version: Some(pkg.version),
        check: false,
        plans,
        hosts: hosts_out,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The plan of one surveyed host (reads the running release's manifest only
/// when the release changes; with `--check`/`--diff`, the old contents).
fn plan_target(tg: &mut Target, region: &Region, pkg: &PackageInfo, opts: &Options) -> HostPlan {
    let switching = tg.facts.current.as_deref() != Some(pkg.version.as_str())
        || tg
            .facts
            .releases
            .get(&pkg.version)
            .is_some_and(|sha| sha != &pkg.sha256);
    let cur_bins = match (&tg.facts.current, switching) {
        (Some(v), true) => installed_binaries(tg.transport.as_mut(), region, v),
        _ => None,
    };
    let mut p = plan::plan_host(&tg.model, &tg.facts, pkg, cur_bins.as_ref());
    if opts.skip_migrate {
        p.migrate = false;
    }
    if opts.check || opts.diff {
        for fc in p.files.iter_mut() {
            if matches!(
                fc.action,
                plan::FileAction::Metadata | plan::FileAction::Remove
            ) {
                continue;
            }
            if let Some(f) = tg.model.file(&fc.path) {
                let old = if fc.action == plan::FileAction::Update {
                    tg.transport.read_file(&fc.path).ok().flatten()
                } else {
                    None
                };
                fc.diff = Some(plan::file_diff(f, old.as_deref()));
            }
        }
    }
    p
}

/// Prepare every host (the db host then runs the database step), then roll
/// out in batches. `already_failed` hosts count against `--max-fail`.
fn rollout_all(
    region: &Region,
    targets: &mut [Target],
    plans: &[HostPlan],
    pkg: &PackageInfo,
    tarball: &[u8],
    opts: &Options,
    already_failed: usize,
) -> Vec<HostOutcome> {
    // The database step runs once, on the first db host, right after its
    // prepare; the other hosts prepare meanwhile.
    let db_idx = (0..targets.len()).find(|&i| targets[i].host.has(RoleName::Db));
    let items: Vec<(usize, &mut Target)> = targets.iter_mut().enumerate().collect();
    let prep = parallel(items, opts.forks, |(i, tg)| {
        let p = &plans[i];
        let started = Instant::now();
        let r = apply::prepare(tg.transport.as_mut(), region, p, pkg, tarball)
            .map_err(|e| format!("prepare: {e}"));
        // Every db host installs/starts its server when planned; only the
        // first one provisions and migrates.
        let first_db = Some(i) == db_idx;
        let steps = apply::DbSteps {
            server: p.server.is_some(),
            provision: first_db && p.provision,
            migrate: first_db && p.migrate,
        };
        let r = r.and_then(|()| {
            apply::database(
                tg.transport.as_mut(),
                region,
                &tg.model,
                &pkg.version,
                steps,
            )
            .map(|_| ())
        });
        (i, r, started.elapsed().as_secs_f64())
    });
    let mut outcomes: Vec<HostOutcome> = Vec::new();
    let mut prepared: Vec<usize> = Vec::new();
    let mut db_failed: Option<String> = None;
    for (i, r, secs) in prep {
        match r {
            Ok(()) => prepared.push(i),
            Err(e) => {
                if Some(i) == db_idx && !e.starts_with("prepare:") {
                    db_failed = Some(targets[i].host.name.clone());
                }
                let mut o =
                    HostOutcome::new(&targets[i].host.name, &plans[i].roles.join(",")).fail(e);
                o.seconds = secs;
                o.release = targets[i].facts.current.clone().unwrap_or_default();
                outcomes.push(o);
            }
        }
    }
    if let Some(db_host) = db_failed {
        // Nothing restarts on a schema that is not there.
        for i in prepared {
            outcomes.push(
                HostOutcome::new(&targets[i].host.name, &plans[i].roles.join(","))
                    .fail(format!("skipped: the database step failed on {db_host}")),
            );
        }
        return outcomes;
    }
    prepared.sort();
    // Batches: everything at once (`--serial 0`), else the db hosts first,
    // then `serial` hosts at a time.
    let mut batches: Vec<Vec<usize>> = Vec::new();
    if opts.serial == 0 {
        batches.push(prepared.clone());
    } else {
        let (db, rest): (Vec<usize>, Vec<usize>) = prepared
            .iter()
            .partition(|&&i| targets[i].host.has(RoleName::Db));
        if !db.is_empty() {
            batches.push(db);
        }
        for chunk in rest.chunks(opts.serial) {
            batches.push(chunk.to_vec());
        }
    }
    let mut failures = already_failed + outcomes.len();
    let mut stopped = false;
    for batch in batches {
        if stopped {
            for i in batch {
                outcomes.push(
                    HostOutcome::new(&targets[i].host.name, &plans[i].roles.join(","))
                        .fail("skipped: rollout stopped"),
                );
            }
            continue;
        }
        let items: Vec<(usize, &mut Target)> = targets
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| batch.contains(i))
            .collect();
        let res = parallel(items, opts.forks, |(i, tg)| {
            let p = &plans[i];
            if p.is_noop() {
                let mut o = HostOutcome::new(&tg.host.name, &p.roles.join(","));
                o.release = pkg.version.clone();
                o.health = "ok (no changes)".into();
                return o;
            }
            let o = apply::rollout(tg.transport.as_mut(), region, &tg.model, p, &tg.facts, pkg);
            if o.ok {
                if let Err(e) = apply::prune(
                    tg.transport.as_mut(),
                    region,
                    &tg.facts,
                    &pkg.version,
                    region.keep_releases,
                ) {
                    apply::progress(&tg.host.name, &format!("prune: {e}"));
                }
            }
            o
        });
        failures += res.iter().filter(|o| !o.ok).count();
        outcomes.extend(res);
        if failures > opts.max_fail {
            stopped = true;
        }
    }
    outcomes
}

fn plan_roles(plans: &[HostPlan], host: &str) -> String {
    plans
        .iter()
        .find(|p| p.host == host)
        .map(|p| p.roles.join(","))
        .unwrap_or_default()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `stv3ctl rollback`: switch every selected host to `to` (or to its previous
/// release) and restart its services, with health gates.
pub fn rollback(
    assets: &Assets,
    region: &Region,
    to: Option<&str>,
    opts: &Options,
) -> Result<Report, DeployError> {
    let started = Instant::now();
    let hosts = select_hosts(region, &opts.limit)?;
    let (mut targets, failed) = survey(assets, region, &hosts, opts);
    if !failed.is_empty() {
        return Ok(Report {
            command: "rollback (aborted: unreachable hosts)".into(),
            region: region.name.clone(),
            version: to.map(str::to_string),
            check: false,
            plans: vec![],
            hosts: failed,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    // Decide the target per host first; refuse before touching anything.
    let mut versions = Vec::new();
    for tg in &targets {
        let v = match to {
            Some(v) => {
                if !tg.facts.releases.contains_key(v) {
                    return Err(DeployError::Other(format!(
                        "{}: release {v} is not installed (installed: {})",
                        tg.host.name,
                        tg.facts
                            .releases
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                v.to_string()
            }
            None => tg.facts.previous().ok_or_else(|| {
                DeployError::Other(format!(
                    "{}: no previous release to roll back to",
                    tg.host.name
                ))
            })?,
        };
        versions.push(v);
    }
    let lock_idx = targets
        .iter()
        .position(|t| t.host.has(RoleName::Db))
        .unwrap_or(0);
    apply::lock(
        targets[lock_idx].transport.as_mut(),
        &region.paths.lib,
        &format!("rollback pid {}", std::process::id()),
    )
    .map_err(DeployError::Other)?;
    let items: Vec<(usize, &mut Target)> = targets.iter_mut().enumerate().collect();
    let size = if opts.serial == 0 {
        items.len().max(1)
    } else {
        opts.serial
    };
    let mut outcomes = Vec::new();
    let mut pending = items;
    let mut stopped = false;
    while !pending.is_empty() {
        let rest = pending.split_off(size.min(pending.len()));
        let batch = std::mem::replace(&mut pending, rest);
        if stopped {
            for (_, tg) in batch {
                outcomes
                    .push(HostOutcome::new(&tg.host.name, "").fail("skipped: rollback stopped"));
            }
            continue;
        }
        let res = parallel(batch, opts.forks, |(i, tg)| {
            apply::progress(&tg.host.name, &format!("roll back to {}", versions[i]));
            apply::switch_and_restart(tg.transport.as_mut(), region, &tg.model, &versions[i])
        });
        if res.iter().filter(|o| !o.ok).count() > opts.max_fail {
            stopped = true;
        }
        outcomes.extend(res);
    }
    let _ = apply::unlock(targets[lock_idx].transport.as_mut(), &region.paths.lib);
    Ok(Report {
        command: "rollback".into(),
        region: region.name.clone(),
        version: to.map(str::to_string),
        check: false,
        plans: vec![],
        hosts: outcomes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One service's state, for `stv3ctl status`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub host: String,
    pub release: String,
    pub service: String,
    pub running: bool,
    pub health: String,
}

/// `stv3ctl status`: release per host, each service running or not, `/health`.
pub fn status(
    assets: &Assets,
    region: &Region,
    opts: &Options,
) -> Result<(Vec<ServiceStatus>, Vec<HostOutcome>), DeployError> {
    let hosts = select_hosts(region, &opts.limit)?;
    let (mut targets, failed) = survey(assets, region, &hosts, opts);
    let mut rows = Vec::new();
    for tg in targets.iter_mut() {
        let release = tg.facts.current.clone().unwrap_or_else(|| "(none)".into());
        if tg.model.services.is_empty() {
            rows.push(ServiceStatus {
                host: tg.host.name.clone(),
                release: release.clone(),
                service: "(no services)".into(),
                running: true,
                health: "-".into(),
            });
        }
        for s in &tg.model.services {
            let name = s.name(tg.model.init).to_string();
            let running = tg.facts.running.get(&name).copied().unwrap_or(false);
            let health =
                match tg
                    .transport
                    .http_get(&s.health_addr, "/health", Duration::from_secs(3))
                {
                    Ok((code, _)) => code.to_string(),
                    Err(_) => "no answer".into(),
                };
            rows.push(ServiceStatus {
                host: tg.host.name.clone(),
                release: release.clone(),
                service: name,
                running,
                health,
            });
        }
    }
    Ok((rows, failed))
}

/// `stv3ctl render`: the files `host` would get, written under `out`.
/// Without a connection the core count is `cores` and the init system is
/// the inventory's (auto = systemd).
pub fn render_to_dir(
    assets: &Assets,
    region: &Region,
    host_name: &str,
    cores: u32,
    out: &Path,
) -> Result<HostModel, DeployError> {
    let host = region.host(host_name).ok_or_else(|| {
        DeployError::Other(format!(
            "no host `{host_name}` in region {} (hosts: {})",
            region.name,
            region
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let init = match host.init {
        InitKind::Auto => InitKind::Systemd,
        x => x,
    };
    let model = render::render_host(assets, region, host, &HostFacts { cores, init })?;
    for f in &model.files {
        let dest = out.join(f.path.trim_start_matches('/'));
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| DeployError::Other(format!("{}: {e}", d.display())))?;
        }
        std::fs::write(&dest, &f.content)
            .map_err(|e| DeployError::Other(format!("{}: {e}", dest.display())))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(f.mode));
    }
    Ok(model)
}
