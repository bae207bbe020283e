//! Executing a [`HostPlan`] on one host: prepare (account, directories,
//! tarball, unpack), then roll out (configs, migrations, switch `current`,
//! restart exactly the planned services, health gate). A failed gate restores
//! the previous files and release and restarts the services again.
//!
//! Every remote step is an argv or a constant script with its values passed
//! as positional arguments; nothing from the inventory is pasted into a shell
//! string.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::facts::HostFactsFull;
use super::plan::{FileAction, HostPlan, PackageInfo, ServiceAction};
use super::render::{HostModel, ServiceInstance, SERVICE_USER};
use crate::inventory::{InitKind, Region};
use crate::transport::{tail, Transport, TransportError};

const CREATE_USER_SCRIPT: &str = r#"user=$1; home=$2
getent group "$user" >/dev/null 2>&1 || groupadd --system "$user" || exit 1
getent passwd "$user" >/dev/null 2>&1 || useradd --system --gid "$user" --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$user" || exit 1
"#;

/// Arguments: triples of path, mode, owner:group.
const DIRS_SCRIPT: &str = r#"while [ $# -ge 3 ]; do
  mkdir -p "$1" && chmod "$2" "$1" && chown "$3" "$1" || exit 1
  shift 3
done
"#;

const UNPACK_SCRIPT: &str = r#"set -e
opt=$1; v=$2; tarball=$3; sha=$4
rel="$opt/releases/$v"; tmp="$rel.tmp"
rm -rf "$tmp"; mkdir -p "$tmp"
tar -xzf "$tarball" -C "$tmp" --strip-components=1 --no-same-owner
printf '%s\n' "$sha" > "$tmp/.stv3-tarball-sha256"
chown -R 0:0 "$tmp" 2>/dev/null || true
chmod 0755 "$tmp"
rm -rf "$rel"
mv "$tmp" "$rel"
"#;

const SWITCH_SCRIPT: &str = r#"set -e
opt=$1; v=$2; lib=$3
[ -d "$opt/releases/$v" ] || { echo "release $v is not installed" >&2; exit 1; }
ln -sfn "releases/$v" "$opt/current.stv3tmp"
mv -T "$opt/current.stv3tmp" "$opt/current"
printf '%s\n' "$v" >> "$lib/releases.log"
"#;

const MIGRATE_SCRIPT: &str = r#"lock=$1; user=$2; shift 2
if command -v flock >/dev/null 2>&1; then
  exec 9>"$lock"
  flock -w 600 9 || { echo "migration lock $lock is busy" >&2; exit 75; }
fi
if [ "$(id -u)" = 0 ] && [ "$user" != root ] && command -v runuser >/dev/null 2>&1; then
  runuser -u "$user" -- "$@"
else
  "$@"
fi
"#;

/// Restart (or start) several SysV services in parallel; prints `== name rc` + output.
const SYSV_PARALLEL_SCRIPT: &str = r#"initd=$1; action=$2; shift 2
dir=$(mktemp -d)
for s in "$@"; do ( "$initd/$s" "$action" > "$dir/$s.out" 2>&1; echo $? > "$dir/$s.rc" ) & done
wait
for s in "$@"; do echo "== $s $(cat "$dir/$s.rc")"; cat "$dir/$s.out"; done
rm -rf "$dir"
"#;

const ENABLE_SYSV_SCRIPT: &str = r#"for s; do
  if command -v update-rc.d >/dev/null 2>&1; then update-rc.d "$s" defaults >/dev/null 2>&1 || exit 1
  elif command -v chkconfig >/dev/null 2>&1; then chkconfig --add "$s" || exit 1
  fi
done
"#;

const LOCK_SCRIPT: &str = r#"lock=$1; info=$2
mkdir -p "${lock%/*}"
if mkdir "$lock" 2>/dev/null; then printf '%s\n' "$info" > "$lock/holder"; exit 0; fi
echo "$(cat "$lock/holder" 2>/dev/null)"
exit 75
"#;

/// A file's previous state: `None` = it did not exist; else (content, mode, owner:group).
type Undo = (String, Option<(Vec<u8>, u32, String)>);

/// How one host's rollout ended.
#[derive(Debug, Clone, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub roles: String,
    pub release: String,
    /// Files written + release switched.
    pub changed: usize,
    pub restarted: Vec<String>,
    pub health: String,
    pub seconds: f64,
    pub ok: bool,
    pub error: Option<String>,
    pub rolled_back: bool,
    /// Last log lines of the failing service.
    pub logs: Option<String>,
}

impl HostOutcome {
    pub fn new(host: &str, roles: &str) -> Self {
        HostOutcome {
            host: host.into(),
            roles: roles.into(),
            release: String::new(),
            changed: 0,
            restarted: vec![],
            health: "-".into(),
            seconds: 0.0,
            ok: true,
            error: None,
            rolled_back: false,
            logs: None,
        }
    }
    pub fn fail(mut self, e: impl std::fmt::Display) -> Self {
        self.ok = false;
        self.error = Some(e.to_string());
        self
    }
}

fn progress(host: &str, msg: &str) {
    eprintln!("[{host}] {msg}");
}

/// Acquire the region lock; `Err` names the holder.
pub fn lock(t: &mut dyn Transport, lib: &str, info: &str) -> Result<(), String> {
    let path = format!("{lib}/deploy.lock");
    match t.exec(&["sh", "-c", LOCK_SCRIPT, "stv3-lock", &path, info]) {
        Ok(o) if o.ok() => Ok(()),
        Ok(o) => Err(format!(
            "region is locked ({path} on {}): {}",
            t.host(),
            o.stdout_str().trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

pub fn unlock(t: &mut dyn Transport, lib: &str) -> Result<(), TransportError> {
    t.run(&["rm", "-rf", &format!("{lib}/deploy.lock")])
        .map(|_| ())
}

/// Prepare a host without touching what runs: account, directories,
/// tarball upload (only when missing), unpack into `releases/<version>`.
pub fn prepare(
    t: &mut dyn Transport,
    region: &Region,
    plan: &HostPlan,
    pkg: &PackageInfo,
    tarball: &[u8],
) -> Result<(), TransportError> {
    let host = plan.host.clone();
    if plan.create_user {
        progress(&host, "create user stv3");
        t.run(&[
            "sh",
            "-c",
            CREATE_USER_SCRIPT,
            "stv3-user",
            SERVICE_USER,
            &region.paths.lib,
        ])?;
    }
    if !plan.dirs.is_empty() {
        let mut argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            DIRS_SCRIPT.into(),
            "stv3-dirs".into(),
        ];
        for d in &plan.dirs {
            argv.extend([
                d.path.clone(),
                format!("{:o}", d.mode),
                format!("{}:{}", d.owner, d.group),
            ]);
        }
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        t.run(&a)?;
    }
    let remote_tarball = format!("{}/tarballs/{}.tar.gz", region.paths.lib, pkg.sha256);
    if plan.upload_tarball {
        progress(
            &host,
            &format!(
                "upload {} ({:.1} MB)",
                pkg.version,
                tarball.len() as f64 / 1e6
            ),
        );
        t.upload_owned(tarball, &remote_tarball, 0o600, Some("0:0"))?;
        let got = t.sha256(&remote_tarball)?;
        if got.as_deref() != Some(pkg.sha256.as_str()) {
            let _ = t.exec(&["rm", "-f", &remote_tarball]);
            return Err(TransportError::Io {
                host,
                op: format!("upload {remote_tarball}"),
                message: format!("checksum mismatch after upload: {got:?} != {}", pkg.sha256),
            });
        }
    }
    if plan.unpack {
        progress(
            &host,
            &format!(
                "unpack {} into {}/releases/{}",
                pkg.version, region.paths.opt, pkg.version
            ),
        );
        t.run(&[
            "sh",
            "-c",
            UNPACK_SCRIPT,
            "stv3-unpack",
            &region.paths.opt,
            &pkg.version,
            &remote_tarball,
            &pkg.sha256,
        ])?;
    }
    Ok(())
}

fn service_by_name<'a>(model: &'a HostModel, name: &str) -> Option<&'a ServiceInstance> {
    model.services.iter().find(|s| s.name(model.init) == name)
}

/// Start/stop/restart a set of services; returns the failures as (name, output).
fn control(
    t: &mut dyn Transport,
    region: &Region,
    init: InitKind,
    action: &str,
    names: &[String],
) -> Result<Vec<(String, String)>, TransportError> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    match init {
        InitKind::Sysv => {
            let mut argv = vec![
                "sh",
                "-c",
                SYSV_PARALLEL_SCRIPT,
                "stv3-svc",
                region.paths.initd.as_str(),
                action,
            ];
            argv.extend(names.iter().map(String::as_str));
            let out = t.run(&argv)?;
            let mut failures = Vec::new();
            let mut cur: Option<(String, bool, String)> = None;
            for line in out.stdout_str().lines() {
                if let Some(rest) = line.strip_prefix("== ") {
                    if let Some((n, ok, text)) = cur.take() {
                        if !ok {
                            failures.push((n, text));
                        }
                    }
                    let (n, rc) = rest.rsplit_once(' ').unwrap_or((rest, "1"));
                    cur = Some((n.to_string(), rc.trim() == "0", String::new()));
                } else if let Some((_, _, text)) = cur.as_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            if let Some((n, ok, text)) = cur {
                if !ok {
                    failures.push((n, text));
                }
            }
            Ok(failures)
        }
        _ => {
            let mut argv = vec!["systemctl", action];
            argv.extend(names.iter().map(String::as_str));
            let out = t.exec(&argv)?;
            if out.ok() {
                Ok(vec![])
            } else {
                Ok(names
                    .iter()
                    .map(|n| (n.clone(), out.stderr_str()))
                    .collect())
            }
        }
    }
}

fn is_running(
    t: &mut dyn Transport,
    region: &Region,
    init: InitKind,
    name: &str,
) -> Result<bool, TransportError> {
    let out = match init {
        InitKind::Sysv => t.exec(&[&format!("{}/{name}", region.paths.initd), "status"])?,
        _ => t.exec(&["systemctl", "is-active", "--quiet", name])?,
    };
    Ok(out.ok())
}

/// The last lines of a service's log.
pub fn last_logs(
    t: &mut dyn Transport,
    region: &Region,
    init: InitKind,
    s: &ServiceInstance,
) -> String {
    match init {
        InitKind::Sysv => {
            let path = format!("{}/{}.log", region.paths.log, s.sysv_name);
            match t.read_file(&path) {
                Ok(Some(b)) => tail(&String::from_utf8_lossy(&b), 25),
                Ok(None) => format!("({path} does not exist)"),
                Err(e) => format!("(cannot read {path}: {e})"),
            }
        }
        _ => match t.exec(&["journalctl", "-u", &s.unit, "-n", "25", "--no-pager"]) {
            Ok(o) => o.stdout_str(),
            Err(e) => format!("(journalctl failed: {e})"),
        },
    }
}

/// Health gate: each service stays alive and its `/health` answers 200
/// within the timeout. Returns the first failure: (service, reason).
pub fn health_gate(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    names: &[String],
) -> Result<(), (String, String)> {
    if names.is_empty() {
        return Ok(());
    }
    if model.init != InitKind::Sysv {
        // The SysV script already waited the settle time before returning.
        std::thread::sleep(Duration::from_secs(region.health.settle_seconds));
    }
    let deadline = Instant::now() + Duration::from_secs(region.health.timeout_seconds);
    for name in names {
        let Some(s) = service_by_name(model, name) else {
            continue;
        };
        loop {
            match is_running(t, region, model.init, name) {
                Ok(true) => {}
                Ok(false) => return Err((name.clone(), "process is not running".into())),
                Err(e) => return Err((name.clone(), e.to_string())),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match t.http_get(
                &s.health_addr,
                "/health",
                remaining
                    .min(Duration::from_secs(3))
                    .max(Duration::from_millis(200)),
            ) {
                Ok((200, _)) => break,
                Ok((code, body)) if Instant::now() >= deadline => {
                    return Err((
                        name.clone(),
                        format!(
                            "/health on {} answered {code}: {}",
                            s.health_addr,
                            tail(&body, 3)
                        ),
                    ))
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err((
                        name.clone(),
                        format!("/health on {} did not answer: {e}", s.health_addr),
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }
    Ok(())
}

/// Roll out on one prepared host.
#[allow(clippy::too_many_arguments)]
pub fn rollout(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    plan: &HostPlan,
    facts: &HostFactsFull,
    pkg: &PackageInfo,
    run_migrations: bool,
) -> HostOutcome {
    let start = Instant::now();
    let mut out = HostOutcome::new(&plan.host, &plan.roles.join(","));
    out.release = pkg.version.clone();
    let result = rollout_inner(t, region, model, plan, facts, pkg, run_migrations, &mut out);
    if let Err(e) = result {
        out = out.fail(e);
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

#[allow(clippy::too_many_arguments)]
fn rollout_inner(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    plan: &HostPlan,
    facts: &HostFactsFull,
    pkg: &PackageInfo,
    run_migrations: bool,
    out: &mut HostOutcome,
) -> Result<(), String> {
    let host = plan.host.clone();
    // 1. Files, remembering the old contents for a rollback.
    let mut undo: Vec<Undo> = Vec::new();
    for fc in &plan.files {
        let Some(f) = model.file(&fc.path) else {
            continue;
        };
        let old = facts.files.get(&fc.path).cloned().flatten();
        if fc.action != FileAction::Metadata {
            let prev = match &old {
                Some(o) => t
                    .read_file(&fc.path)
                    .map_err(|e| e.to_string())?
                    .map(|b| (b, o.mode, format!("{}:{}", o.owner, o.group))),
                None => None,
            };
            undo.push((fc.path.clone(), prev));
        }
        t.upload_owned(
            &f.content,
            &f.path,
            f.mode,
            Some(&format!("{}:{}", f.owner, f.group)),
        )
        .map_err(|e| e.to_string())?;
        out.changed += 1;
    }
    if !plan.files.is_empty() {
        progress(&host, &format!("{} file(s) written", plan.files.len()));
    }
    // 2. Migrations, once, before anything restarts.
    if run_migrations {
        if let Some(m) = &model.migrate {
            progress(&host, "run migrations");
            let bin = format!("{}/releases/{}/{}", region.paths.opt, pkg.version, m[0]);
            let lock = format!("{}/migrate.lock", region.paths.lib);
            let mut argv = vec![
                "sh",
                "-c",
                MIGRATE_SCRIPT,
                "stv3-migrate",
                lock.as_str(),
                SERVICE_USER,
                bin.as_str(),
            ];
            argv.extend(m[1..].iter().map(String::as_str));
            let r = t.exec(&argv).map_err(|e| e.to_string())?;
            if !r.ok() {
                let msg = format!(
                    "migrations failed (exit {}): {}",
                    r.code,
                    tail(&(r.stdout_str() + &r.stderr_str()), 15)
                );
                restore(t, region, model, &undo, None, &[]);
                out.rolled_back = !undo.is_empty();
                return Err(msg);
            }
        }
    }
    // 3. Switch `current`.
    if plan.switch {
        progress(&host, &format!("switch current -> {}", pkg.version));
        t.run(&[
            "sh",
            "-c",
            SWITCH_SCRIPT,
            "stv3-switch",
            &region.paths.opt,
            &pkg.version,
            &region.paths.lib,
        ])
        .map_err(|e| e.to_string())?;
        out.changed += 1;
    }
    // 4. Units changed: reload; new scripts/units: enable.
    let unit_changed = plan
        .files
        .iter()
        .any(|f| f.path.starts_with(&format!("{}/", region.paths.systemd)));
    if model.init == InitKind::Systemd && unit_changed {
        t.run(&["systemctl", "daemon-reload"])
            .map_err(|e| e.to_string())?;
    }
    let names: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let mut to_enable: Vec<String> = Vec::new();
    for s in &model.services {
        let input = match model.init {
            InitKind::Sysv => format!("{}/{}", region.paths.initd, s.sysv_name),
            _ => format!("{}/{}", region.paths.systemd, s.unit_file),
        };
        if plan
            .files
            .iter()
            .any(|f| f.path == input && f.action == FileAction::Create)
        {
            to_enable.push(s.name(model.init).to_string());
        }
    }
    if !to_enable.is_empty() {
        let r = match model.init {
            InitKind::Sysv => {
                let mut argv = vec!["sh", "-c", ENABLE_SYSV_SCRIPT, "stv3-enable"];
                argv.extend(to_enable.iter().map(String::as_str));
                t.run(&argv).map(|_| ())
            }
            _ => {
                let mut argv = vec!["systemctl", "enable", "stv3.target"];
                argv.extend(to_enable.iter().map(String::as_str));
                t.run(&argv).map(|_| ())
            }
        };
        r.map_err(|e| format!("enable services: {e}"))?;
    }
    // 5. Restart exactly the planned services, then gate.
    if !names.is_empty() {
        let restart: Vec<String> = plan
            .services
            .iter()
            .filter(|s| s.action == ServiceAction::Restart)
            .map(|s| s.name.clone())
            .collect();
        let start: Vec<String> = plan
            .services
            .iter()
            .filter(|s| s.action == ServiceAction::Start)
            .map(|s| s.name.clone())
            .collect();
        progress(&host, &format!("restart {}", names.join(" ")));
        let mut failures =
            control(t, region, model.init, "restart", &restart).map_err(|e| e.to_string())?;
        failures
            .extend(control(t, region, model.init, "start", &start).map_err(|e| e.to_string())?);
        out.restarted = names.clone();
        let gate = match failures.first() {
            Some((n, text)) => Err((
                n.clone(),
                format!(
                    "start failed: {}",
                    text.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("(no output)")
                ),
            )),
            None => health_gate(t, region, model, &names),
        };
        if let Err((svc, why)) = gate {
            out.health = "FAILED".into();
            if let Some(s) = service_by_name(model, &svc) {
                let mut logs = last_logs(t, region, model.init, s);
                if let Some((_, text)) = failures.iter().find(|(n, _)| n == &svc) {
                    logs = format!("{}\n(init script) {}", logs.trim_end(), tail(text, 10));
                }
                out.logs = Some(logs);
            }
            progress(
                &host,
                &format!("health gate failed: {svc}: {why}; rolling back"),
            );
            let back_to = if plan.switch {
                plan.release_from.clone()
            } else {
                None
            };
            let created: Vec<String> = names
                .iter()
                .filter(|n| {
                    service_by_name(model, n).is_some_and(|s| {
                        let input = match model.init {
                            InitKind::Sysv => format!("{}/{}", region.paths.initd, s.sysv_name),
                            _ => format!("{}/{}", region.paths.systemd, s.unit_file),
                        };
                        plan.files
                            .iter()
                            .any(|f| f.path == input && f.action == FileAction::Create)
                    })
                })
                .cloned()
                .collect();
            let _ = control(t, region, model.init, "stop", &created);
            restore(t, region, model, &undo, back_to.as_deref(), &[]);
            let again: Vec<String> = names
                .iter()
                .filter(|n| !created.contains(n))
                .cloned()
                .collect();
            if model.init == InitKind::Systemd {
                let _ = t.exec(&["systemctl", "daemon-reload"]);
            }
            let _ = control(t, region, model.init, "restart", &again);
            out.rolled_back = true;
            out.release = back_to.unwrap_or_else(|| facts.current.clone().unwrap_or_default());
            return Err(format!("{svc}: {why}"));
        }
        out.health = "ok".into();
    } else {
        out.health = "ok (no restart)".into();
    }
    Ok(())
}

/// Put back the old files and, if given, the old release.
fn restore(
    t: &mut dyn Transport,
    region: &Region,
    _model: &HostModel,
    undo: &[Undo],
    release: Option<&str>,
    _extra: &[String],
) {
    for (path, prev) in undo.iter().rev() {
        let r = match prev {
            Some((bytes, mode, owner)) => t.upload_owned(bytes, path, *mode, Some(owner)),
            None => t.exec(&["rm", "-f", path]).map(|_| ()),
        };
        if let Err(e) = r {
            progress(t.host(), &format!("restore {path}: {e}"));
        }
    }
    if let Some(v) = release {
        if let Err(e) = t.run(&[
            "sh",
            "-c",
            SWITCH_SCRIPT,
            "stv3-switch",
            &region.paths.opt,
            v,
            &region.paths.lib,
        ]) {
            progress(t.host(), &format!("switch back to {v}: {e}"));
        }
    }
}

/// Switch a host to an installed release and restart all its services
/// (`stv3ctl rollback`).
pub fn switch_and_restart(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    version: &str,
) -> HostOutcome {
    let start = Instant::now();
    let mut out = HostOutcome::new(
        &model.host,
        &model
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    out.release = version.to_string();
    let names: Vec<String> = model
        .services
        .iter()
        .map(|s| s.name(model.init).to_string())
        .collect();
    let r = (|| -> Result<(), String> {
        t.run(&[
            "sh",
            "-c",
            SWITCH_SCRIPT,
            "stv3-switch",
            &region.paths.opt,
            version,
            &region.paths.lib,
        ])
        .map_err(|e| e.to_string())?;
        out.changed = 1;
        let failures =
            control(t, region, model.init, "restart", &names).map_err(|e| e.to_string())?;
        out.restarted = names.clone();
        let gate = match failures.first() {
            Some((n, text)) => Err((
                n.clone(),
                format!(
                    "start failed: {}",
                    text.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("(no output)")
                ),
            )),
            None => health_gate(t, region, model, &names),
        };
        if let Err((svc, why)) = gate {
            out.health = "FAILED".into();
            if let Some(s) = service_by_name(model, &svc) {
                out.logs = Some(last_logs(t, region, model.init, s));
            }
            return Err(format!("{svc}: {why}"));
        }
        out.health = "ok".into();
        Ok(())
    })();
    if let Err(e) = r {
        out = out.fail(e);
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// Remove releases (and their tarballs) beyond the newest `keep` in the
/// history; never the current one.
pub fn prune(
    t: &mut dyn Transport,
    region: &Region,
    facts: &HostFactsFull,
    current: &str,
    keep: u32,
) -> Result<(), TransportError> {
    let mut order: Vec<String> = facts.history.clone();
    order.retain(|v| v != current);
    order.push(current.to_string());
    let mut keep_set: Vec<String> = order.iter().rev().take(keep as usize).cloned().collect();
    // Installed releases that never made it into the history are kept only if recent enough to matter: drop them.
    keep_set.push(current.to_string());
    let doomed: Vec<&String> = facts
        .releases
        .keys()
        .filter(|v| !keep_set.contains(v))
        .collect();
    if doomed.is_empty() {
        return Ok(());
    }
    let mut argv: Vec<String> = vec!["rm".into(), "-rf".into()];
    for v in &doomed {
        argv.push(format!("{}/releases/{v}", region.paths.opt));
        if let Some(sha) = facts.releases.get(*v) {
            argv.push(format!("{}/tarballs/{sha}.tar.gz", region.paths.lib));
        }
    }
    progress(
        t.host(),
        &format!(
            "prune releases {}",
            doomed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    t.run(&a).map(|_| ())
}
