//! Executing a [`HostPlan`] on one host, in as few remote commands as
//! possible:
//!
//! 1. [`prepare`]: one command creates the account and the directories and,
//!    when needed, receives the tarball on stdin, unpacks it while it arrives
//!    and checks its sha256 before moving the release into place;
//! 2. [`database`] (the db host): one command installs and starts the
//!    database server when the inventory asks for it and it is missing or
//!    down, provisions the database and the app user with the admin
//!    credential and runs the migrations, under a lock, from a root-only
//!    directory that is removed afterwards;
//! 3. [`rollout`]: one command stops and removes what left the model, installs
//!    every changed file from a tar stream (each one backed up, then renamed
//!    into place), switches `current`, enables new services and restarts
//!    exactly the planned ones in parallel; then a health gate polls liveness
//!    and `/health` until every service is up for the settle time. A failed
//!    gate runs one more command that puts the backups, the old release and
//!    the removed services back.
//!
//! Every remote step is the constant [`HOST_OPS_SCRIPT`] (or another
//! constant script) with its values passed as arguments; nothing from the
//! inventory is pasted into a shell string.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bundle;
use super::facts::HostFactsFull;
use super::plan::{FileAction, HostPlan, PackageInfo, ServiceAction};
use super::render::{parse_managed, HostModel, Managed, ServiceInstance, SERVICE_USER};
use crate::inventory::{InitKind, Region};
use crate::transport::{tail, Transport, TransportError};

/// Account, directories, and (mode `upload`/`unpack`) the release.
/// `$1` user (or `-`), `$2` its home, `$3` opt, `$4` lib, `$5` version,
/// `$6` tarball sha256, `$7` tarball path, `$8` none|unpack|upload, then
/// triples of directory, mode, owner:group. With `upload` the tarball comes
/// on stdin: it is unpacked as it arrives and kept only when its sha256 matches.
const PREPARE_SCRIPT: &str = r#"set -e
user=$1; home=$2; opt=$3; lib=$4; v=$5; sha=$6; tarball=$7; mode=$8; shift 8
if [ "$user" != - ]; then
  getent group "$user" >/dev/null 2>&1 || groupadd --system "$user"
  getent passwd "$user" >/dev/null 2>&1 || useradd --system --gid "$user" --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$user"
fi
while [ $# -ge 3 ]; do
  mkdir -p "$1"; chmod "$2" "$1"; chown "$3" "$1"
  shift 3
done
[ "$mode" = none ] && exit 0
rel="$opt/releases/$v"; tmp="$rel.tmp"
rm -rf "$tmp"; mkdir -p "$tmp"
if [ "$mode" = upload ]; then
  part="$tarball.part"
  rm -f "$part" "$part.fifo" "$part.sum"; (umask 077; : > "$part")
  # One pass over the stream: saved, hashed and unpacked as it arrives.
  mkfifo "$part.fifo"
  sha256sum < "$part.fifo" > "$part.sum" &
  tee "$part" "$part.fifo" | { tar -xzf - -C "$tmp" --strip-components=1 --no-same-owner; rc=$?; cat > /dev/null; exit $rc; }
  wait
  got=$(cut -c1-64 "$part.sum"); rm -f "$part.fifo" "$part.sum"
  if [ "$got" != "$sha" ]; then
    rm -rf "$part" "$tmp"
    echo "checksum mismatch after upload: $got != $sha" >&2
    exit 1
  fi
  mv -f "$part" "$tarball"
else
  tar -xzf "$tarball" -C "$tmp" --strip-components=1 --no-same-owner
fi
printf '%s\n' "$sha" > "$tmp/.stv3-tarball-sha256"
chown -R 0:0 "$tmp" 2>/dev/null || true
chmod 0755 "$tmp"
rm -rf "$rel"
mv "$tmp" "$rel"
"#;

/// The database step. `$1` task dir, `$2` lock file, `$3` provision (0/1),
/// `$4` migrate (0/1), `$5` run the migration as (a user, or `root`), `$6`
/// the server package to install and start first (or `-`), `$7` its possible
/// service names (one word each), `$8` init (sysv|systemd), `$9` the init.d
/// dir, `$10` seconds to wait for the server, then the migration argv. Stdin:
/// a tar of the task files. The directory is root-only and removed on exit,
/// whatever happens.
///
/// The server part is idempotent. `apt-get install` runs only when `dpkg -s`
/// does not say installed, never removes a package (`--no-remove`: another
/// server such as mysql-server stays, and the step fails), keeps existing
/// config files, and retries after `apt-get update` (a fresh host may have
/// no package lists). The service is enabled and started after an install
/// or when `mariadb-admin ping` fails (it succeeds for a running server
/// even when the login is refused), then the step waits until it answers.
const DATABASE_SCRIPT: &str = r#"dir=$1; lock=$2; provision=$3; migrate=$4; run_as=$5; pkg=$6; services=$7; init=$8; initd=$9; wait_s=${10}; shift 10
umask 077
rm -rf "$dir"; mkdir -m 700 "$dir" || exit 1
trap 'rm -rf "$dir"' EXIT
tar -xf - -C "$dir" --no-same-owner || { echo "cannot write $dir" >&2; exit 1; }
if [ "$pkg" != - ]; then
  db_up() { adm=$(command -v mariadb-admin || command -v mysqladmin) && "$adm" --connect-timeout=2 ping >/dev/null 2>&1; }
  changed=
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    command -v apt-get >/dev/null 2>&1 || { echo "database.install_server: this host has no apt-get; install $pkg (or another database server) yourself" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y --no-remove -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$pkg" </dev/null >>"$dir/apt.log" 2>&1; }
    if ! apt_install; then
      apt-get update </dev/null >>"$dir/apt.log" 2>&1
      apt_install || { tail -n 20 "$dir/apt.log" >&2; echo "apt-get install $pkg failed (it never removes packages: is another database server installed?)" >&2; exit 1; }
    fi
    echo "server: installed $pkg"; changed=1
  fi
  if [ -n "$changed" ] || ! db_up; then
    svc=
    for s in $services; do
      if [ "$init" = systemd ]; then
        if systemctl cat "$s.service" >/dev/null 2>&1; then svc=$s; break; fi
      elif [ -x "$initd/$s" ]; then svc=$s; break
      fi
    done
    [ -n "$svc" ] || { echo "$pkg is installed but $init knows none of its services ($services)" >&2; exit 1; }
    if [ "$init" = systemd ]; then
      systemctl enable "$svc" >"$dir/start.log" 2>&1 && systemctl start "$svc" >>"$dir/start.log" 2>&1 \
        || { tail -n 20 "$dir/start.log" >&2; echo "systemctl enable + start $svc failed" >&2; exit 1; }
    else
      if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d "$svc" defaults >"$dir/start.log" 2>&1 || { tail -n 20 "$dir/start.log" >&2; echo "update-rc.d $svc defaults failed" >&2; exit 1; }
      elif command -v chkconfig >/dev/null 2>&1; then chkconfig --add "$svc" >/dev/null 2>&1 || true
      fi
      "$initd/$svc" start >"$dir/start.log" 2>&1 || { tail -n 20 "$dir/start.log" >&2; echo "$initd/$svc start failed" >&2; exit 1; }
    fi
    end=$(( $(date +%s) + wait_s ))
    until db_up; do
      [ "$(date +%s)" -lt "$end" ] || { echo "$pkg ($svc) did not accept connections within ${wait_s}s" >&2; exit 1; }
      sleep 1
    done
    echo "server: enabled and started $svc"; changed=1
  fi
  [ -n "$changed" ] || echo "server: $pkg installed and running (unchanged)"
fi
[ "$provision" = 1 ] || [ "$migrate" = 1 ] || exit 0
if command -v flock >/dev/null 2>&1; then
  exec 9>"$lock"
  flock -w 600 9 || { echo "database lock $lock is busy" >&2; exit 75; }
fi
if [ "$provision" = 1 ]; then
  client=$(command -v mariadb || command -v mysql) || { echo "the db role needs the mariadb or mysql client on this host" >&2; exit 127; }
  "$client" --defaults-extra-file="$dir/admin.cnf" --batch < "$dir/provision.sql" || { echo "provisioning the database failed" >&2; exit 1; }
  echo "database provisioned"
fi
[ "$migrate" = 1 ] || exit 0
if [ "$run_as" != root ] && [ "$(id -u)" = 0 ]; then
  chown -R "$run_as" "$dir"
  if command -v runuser >/dev/null 2>&1; then exec runuser -u "$run_as" -- "$@"; fi
fi
"$@"
"#;

/// Everything a rollout (and its undo) does on a host, as a list of
/// operations run in order. `$1` backup dir, `$2` opt, `$3` lib, `$4` init.d
/// dir, `$5` init (sysv|systemd), `$6` strict (1: stop at the first failure,
/// printing `FAILED <what>`; 0: go on, printing `WARN <what>`), then:
///
/// * `fresh:` empty the backup dir;
/// * `tar:` extract stdin (files named `<path>.stv3new`, mode and owner set) at `/`;
/// * `put:<path>` back up `<path>` (or note it did not exist), rename `<path>.stv3new` over it;
/// * `del:<path>` back up and delete `<path>`;
/// * `stop:<svc>` stop a service and disable it at boot (consecutive stops
///   run in parallel; the next operation waits for them);
/// * `restore:` put every backed-up file back, delete the ones that did not exist;
/// * `clean:<path>` delete a leftover `<path>.stv3new`;
/// * `switch:<version>` point `current` at `releases/<version>` (atomic rename);
/// * `reload:` `systemctl daemon-reload`;
/// * `enable:<svc>` enable at boot (update-rc.d/chkconfig, or systemctl);
/// * `restart:<svc>` / `start:<svc>` in the background, all at once; each
///   prints `== <svc> <rc>` and its output at the end. SysV scripts get
///   `STV3_SETTLE=0`: the health gate, not the script, waits.
const HOST_OPS_SCRIPT: &str = r#"bk=$1; opt=$2; lib=$3; initd=$4; init=$5; strict=$6; shift 6
umask 022
out=$(mktemp -d) || exit 1
started=
fail() {
  if [ "$strict" = 1 ]; then echo "FAILED $*"; rm -rf "$out"; exit 1; fi
  echo "WARN $*"
}
backup() {
  if [ -e "$1" ]; then
    mkdir -p "$bk${1%/*}" && cp -p "$1" "$bk$1" || fail "back up $1"
  else
    echo "$1" >> "$bk/.created"
  fi
}
stopping=
svc_stop() {
  if [ "$init" = systemd ]; then
    systemctl disable --now "$1" >/dev/null 2>&1 || return 1
  else
    if [ -x "$initd/$1" ]; then "$initd/$1" stop >/dev/null 2>&1 || return 1; fi
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d -f "$1" remove >/dev/null 2>&1 || return 1
    elif command -v chkconfig >/dev/null 2>&1; then chkconfig --del "$1" >/dev/null 2>&1 || true
    fi
  fi
}
for a; do
  v=${a#*:}
  case $a in
    stop:*) ;;
    *)
      if [ -n "$stopping" ]; then
        wait
        for s in $stopping; do [ "$(cat "$out/stop-$s.rc" 2>/dev/null)" = 0 ] || fail "stop and disable $s"; done
        stopping=
      fi ;;
  esac
  case $a in
    fresh:) rm -rf "$bk" && mkdir -p "$bk" && chmod 700 "$bk" && : > "$bk/.created" || fail "create $bk" ;;
    tar:) (umask 077; tar -xf - -C / --same-owner -p) || fail "unpack the new files" ;;
    put:*) backup "$v"; mv -f "$v.stv3new" "$v" || fail "install $v" ;;
    del:*) if [ -e "$v" ]; then backup "$v"; rm -f "$v" || fail "remove $v"; fi ;;
    stop:*) ( svc_stop "$v"; echo $? > "$out/stop-$v.rc" ) & stopping="$stopping $v" ;;
    restore:)
      if [ -f "$bk/.created" ]; then while read -r p; do rm -f "$p"; done < "$bk/.created"; fi
      if [ -d "$bk" ]; then
        (cd "$bk" && find . -type f ! -path ./.created) | while read -r rel; do
          p=${rel#.}
          mkdir -p "${p%/*}" && cp -p "$bk$p" "$p.stv3old" && mv -f "$p.stv3old" "$p" || echo "WARN restore $p"
        done
      fi ;;
    clean:*) rm -f "$v.stv3new" ;;
    switch:*)
      if [ -d "$opt/releases/$v" ]; then
        ln -sfn "releases/$v" "$opt/current.stv3tmp" && mv -T "$opt/current.stv3tmp" "$opt/current" \
          && printf '%s\n' "$v" >> "$lib/releases.log" || fail "switch current to $v"
      else
        fail "release $v is not installed"
      fi ;;
    reload:) systemctl daemon-reload || fail "systemctl daemon-reload" ;;
    enable:*)
      if [ "$init" = systemd ]; then systemctl enable "$v" >/dev/null 2>&1 || fail "enable $v"
      elif command -v update-rc.d >/dev/null 2>&1; then update-rc.d "$v" defaults >/dev/null 2>&1 || fail "enable $v"
      elif command -v chkconfig >/dev/null 2>&1; then chkconfig --add "$v" || fail "enable $v"
      fi ;;
    restart:*|start:*)
      act=${a%%:*}
      if [ "$init" = systemd ]; then
        ( systemctl "$act" "$v" > "$out/$v.out" 2>&1; echo $? > "$out/$v.rc" ) &
      else
        ( STV3_SETTLE=0 "$initd/$v" "$act" > "$out/$v.out" 2>&1; echo $? > "$out/$v.rc" ) &
      fi
      started="$started $v" ;;
    *) fail "unknown operation $a" ;;
  esac
done
wait
for s in $stopping; do [ "$(cat "$out/stop-$s.rc" 2>/dev/null)" = 0 ] || fail "stop and disable $s"; done
for s in $started; do echo "== $s $(cat "$out/$s.rc" 2>/dev/null || echo 1)"; cat "$out/$s.out" 2>/dev/null; done
rm -rf "$out"
"#;

/// Liveness of services: `<rc> <name>` per service (0 = running).
const LIVENESS_SCRIPT: &str = r#"initd=$1; init=$2; shift 2
for s; do
  if [ "$init" = systemd ]; then systemctl is-active --quiet "$s"; else "$initd/$s" status >/dev/null 2>&1; fi
  echo "$? $s"
done
"#;

const LOCK_SCRIPT: &str = r#"lock=$1; info=$2
mkdir -p "${lock%/*}"
if mkdir "$lock" 2>/dev/null; then printf '%s\n' "$info" > "$lock/holder"; exit 0; fi
echo "$(cat "$lock/holder" 2>/dev/null)"
exit 75
"#;

/// How one host's rollout ended.
#[derive(Debug, Clone, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub roles: String,
    pub release: String,
    /// Files written or removed + release switched.
    pub changed: usize,
    pub restarted: Vec<String>,
    /// Services stopped and removed (no longer in the inventory).
    pub removed: Vec<String>,
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
            removed: vec![],
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

static CLOCK: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Start the clock progress lines show (the start of the command).
pub fn start_clock() {
    CLOCK.get_or_init(Instant::now);
}

/// A progress line: `[  1.2s host] message`.
pub fn progress(host: &str, msg: &str) {
    let t = CLOCK.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{t:5.1}s {host}] {msg}");
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

/// Prepare a host without touching what runs, in one command: account,
/// directories, tarball upload (only when missing) and unpack into
/// `releases/<version>`.
pub fn prepare(
    t: &mut dyn Transport,
    region: &Region,
    plan: &HostPlan,
    pkg: &PackageInfo,
    tarball: &[u8],
) -> Result<(), TransportError> {
    let mode = match (plan.upload_tarball, plan.unpack) {
        (true, _) => "upload",
        (false, true) => "unpack",
        _ => "none",
    };
    if !plan.create_user && plan.dirs.is_empty() && mode == "none" {
        return Ok(());
    }
    let remote_tarball = format!("{}/tarballs/{}.tar.gz", region.paths.lib, pkg.sha256);
    let mut what = Vec::new();
    if plan.create_user {
        what.push("create user stv3".to_string());
    }
    if !plan.dirs.is_empty() {
        what.push(format!("{} dir(s)", plan.dirs.len()));
    }
    match mode {
        "upload" => what.push(format!(
            "upload + unpack {} ({:.1} MB)",
            pkg.version,
            tarball.len() as f64 / 1e6
        )),
        "unpack" => what.push(format!("unpack {}", pkg.version)),
        _ => {}
    }
    progress(&plan.host, &what.join(", "));
    let mut argv: Vec<String> = [
        "sh",
        "-c",
        PREPARE_SCRIPT,
        "stv3-prepare",
        if plan.create_user { SERVICE_USER } else { "-" },
        &region.paths.lib,
        &region.paths.opt,
        &region.paths.lib,
        &pkg.version,
        &pkg.sha256,
        &remote_tarball,
        mode,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for d in &plan.dirs {
        argv.extend([
            d.path.clone(),
            format!("{:o}", d.mode),
            format!("{}:{}", d.owner, d.group),
        ]);
    }
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    let input = if mode == "upload" { tarball } else { &[] };
    let out = t.exec_input(&a, input)?;
    if out.ok() {
        Ok(())
    } else {
        Err(TransportError::Command {
            host: t.host().to_string(),
            command: format!("prepare ({})", what.join(", ")),
            code: out.code,
            stderr: tail(&(out.stdout_str() + &out.stderr_str()), 20),
        })
    }
}

/// What the database step of one db host does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSteps {
    /// Install the server package when missing, start it when it does not
    /// accept connections (`database.install_server`).
    pub server: bool,
    /// Create the database and the app user with the admin credential (D8).
    pub provision: bool,
    /// Run the migrations of the release (D7).
    pub migrate: bool,
}

/// The db host's database step (one command): the server first when
/// `steps.server`, then provisioning with the admin credential, then the
/// migrations of release `version`, under a lock. Returns the step's output.
pub fn database(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    version: &str,
    steps: DbSteps,
) -> Result<String, String> {
    let Some(db) = &model.db else {
        return Ok(String::new());
    };
    let server = db.server.as_ref().filter(|_| steps.server);
    if server.is_none() && !steps.provision && !steps.migrate {
        return Ok(String::new());
    }
    let mut what = Vec::new();
    if let Some(s) = server {
        what.push(format!("database server {}", s.package));
    }
    if steps.provision {
        what.push("provision the database".into());
    }
    if steps.migrate {
        what.push("run migrations".into());
    }
    progress(&model.host, &what.join(", "));
    // The task files (the admin credential among them) go only where they are used.
    let entries: Vec<bundle::Entry> = db
        .files
        .iter()
        .filter(|_| steps.provision || steps.migrate)
        .map(|f| bundle::Entry {
            path: f.name.clone(),
            data: &f.content,
            mode: 0o600,
            owner: "root",
            group: "root",
        })
        .collect();
    let input = bundle::tar(&entries).map_err(|e| format!("bundle the database files: {e}"))?;
    let bin = format!("{}/releases/{version}/{}", region.paths.opt, db.migrate[0]);
    let lock = format!("{}/migrate.lock", region.paths.lib);
    let run_as = if db.run_as_root { "root" } else { SERVICE_USER };
    let services = server.map(|s| s.services.join(" "));
    let wait = server.map(|s| s.wait_seconds.to_string());
    let mut argv = vec![
        "sh",
        "-c",
        DATABASE_SCRIPT,
        "stv3-database",
        db.dir.as_str(),
        lock.as_str(),
        if steps.provision { "1" } else { "0" },
        if steps.migrate { "1" } else { "0" },
        run_as,
        server.map_or("-", |s| s.package.as_str()),
        services.as_deref().unwrap_or("-"),
        init_word(model.init),
        region.paths.initd.as_str(),
        wait.as_deref().unwrap_or("0"),
        bin.as_str(),
    ];
    argv.extend(db.migrate[1..].iter().map(String::as_str));
    let r = t.exec_input(&argv, &input).map_err(|e| e.to_string())?;
    let text = r.stdout_str() + &r.stderr_str();
    if r.ok() {
        Ok(text)
    } else {
        Err(format!(
            "{} failed (exit {}): {}",
            what.join(" and "),
            r.code,
            tail(&text, 15)
        ))
    }
}

fn service_by_name<'a>(model: &'a HostModel, name: &str) -> Option<&'a ServiceInstance> {
    model.services.iter().find(|s| s.name(model.init) == name)
}

fn init_word(init: InitKind) -> &'static str {
    match init {
        InitKind::Systemd => "systemd",
        _ => "sysv",
    }
}

/// What [`host_ops`] reported.
#[derive(Debug, Default)]
struct OpsResult {
    /// `FAILED <what>` (strict mode): the step that stopped the run.
    failed: Option<String>,
    warnings: Vec<String>,
    /// Services whose restart/start failed: (name, output).
    service_failures: Vec<(String, String)>,
}

/// Run [`HOST_OPS_SCRIPT`] with `ops` (and `input` on stdin).
fn host_ops(
    t: &mut dyn Transport,
    region: &Region,
    init: InitKind,
    strict: bool,
    ops: &[String],
    input: &[u8],
) -> Result<OpsResult, TransportError> {
    let bk = backup_dir(region);
    let mut argv: Vec<&str> = vec![
        "sh",
        "-c",
        HOST_OPS_SCRIPT,
        "stv3-ops",
        bk.as_str(),
        region.paths.opt.as_str(),
        region.paths.lib.as_str(),
        region.paths.initd.as_str(),
        init_word(init),
        if strict { "1" } else { "0" },
    ];
    argv.extend(ops.iter().map(String::as_str));
    let out = t.exec_input(&argv, input)?;
    let mut r = OpsResult::default();
    let mut cur: Option<(String, bool, String)> = None;
    let flush = |cur: &mut Option<(String, bool, String)>, r: &mut OpsResult| {
        if let Some((n, ok, text)) = cur.take() {
            if !ok {
                r.service_failures.push((n, text));
            }
        }
    };
    for line in out.stdout_str().lines() {
        if let Some(rest) = line.strip_prefix("== ") {
            flush(&mut cur, &mut r);
            let (n, rc) = rest.rsplit_once(' ').unwrap_or((rest, "1"));
            cur = Some((n.to_string(), rc.trim() == "0", String::new()));
        } else if let Some(what) = line.strip_prefix("FAILED ") {
            r.failed = Some(what.to_string());
        } else if let Some(what) = line.strip_prefix("WARN ") {
            r.warnings.push(what.to_string());
        } else if let Some((_, _, text)) = cur.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    flush(&mut cur, &mut r);
    if r.failed.is_none() && !out.ok() {
        r.failed = Some(format!(
            "exit {}: {}",
            out.code,
            tail(&out.stderr_str(), 10)
        ));
    }
    if let Some(f) = &mut r.failed {
        let err = out.stderr_str();
        if !err.trim().is_empty() {
            f.push_str(&format!(": {}", tail(&err, 5)));
        }
    }
    Ok(r)
}

/// Where a rollout keeps the files it replaces (root-only, in the config dir).
fn backup_dir(region: &Region) -> String {
    format!("{}/.rollback", region.paths.etc)
}

/// Which of `names` are running: one command for all.
fn liveness(
    t: &mut dyn Transport,
    region: &Region,
    init: InitKind,
    names: &[String],
) -> Result<Vec<(String, bool)>, TransportError> {
    let mut argv = vec![
        "sh",
        "-c",
        LIVENESS_SCRIPT,
        "stv3-alive",
        region.paths.initd.as_str(),
        init_word(init),
    ];
    argv.extend(names.iter().map(String::as_str));
    let out = t.run(&argv)?;
    Ok(out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            let (rc, n) = l.split_once(' ')?;
            Some((n.to_string(), rc == "0"))
        })
        .collect())
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

/// Health gate for services (re)started at `since`: each answers `/health`
/// with 200 and is still running once it has been up `settle_seconds`.
/// Polls liveness (one command for all) and `/health` (through the SSH
/// connection) instead of sleeping a fixed time; fails at once when a
/// process dies. Returns the first failure: (service, reason).
pub fn health_gate(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    names: &[String],
    since: Instant,
) -> Result<(), (String, String)> {
    if names.is_empty() {
        return Ok(());
    }
    let settle = Duration::from_secs(region.health.settle_seconds);
    let deadline = since + settle.max(Duration::from_secs(region.health.timeout_seconds));
    let mut pending: Vec<&ServiceInstance> = names
        .iter()
        .filter_map(|n| service_by_name(model, n))
        .collect();
    let mut last_answer: Vec<(String, String)> = Vec::new();
    loop {
        let checked_at = Instant::now();
        match liveness(t, region, model.init, names) {
            Ok(states) => {
                if let Some((n, _)) = states.iter().find(|(_, up)| !up) {
                    return Err((n.clone(), "process is not running".into()));
                }
            }
            Err(e) => return Err((names[0].clone(), e.to_string())),
        }
        let mut still = Vec::new();
        last_answer.clear();
        for s in pending {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(200), Duration::from_secs(2));
            match t.http_get(&s.health_addr, "/health", wait) {
                Ok((200, _)) => {}
                Ok((code, body)) => {
                    last_answer.push((
                        s.name(model.init).to_string(),
                        format!(
                            "/health on {} answered {code}: {}",
                            s.health_addr,
                            tail(&body, 3)
                        ),
                    ));
                    still.push(s);
                }
                Err(e) => {
                    last_answer.push((
                        s.name(model.init).to_string(),
                        format!("/health on {} did not answer: {e}", s.health_addr),
                    ));
                    still.push(s);
                }
            }
        }
        pending = still;
        let settled = checked_at.duration_since(since) >= settle;
        if pending.is_empty() && settled {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(last_answer.into_iter().next().unwrap_or_else(|| {
                (
                    names[0].clone(),
                    "did not stay up for the settle time".into(),
                )
            }));
        }
        // Healthy but not settled yet: wait until the settle time is over
        // (then check liveness once more); else poll again shortly.
        let pause = if pending.is_empty() {
            (since + settle).saturating_duration_since(now)
        } else {
            Duration::from_millis(100)
        };
        std::thread::sleep(pause.min(deadline.saturating_duration_since(now)));
    }
}

/// Roll out on one prepared host.
pub fn rollout(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    plan: &HostPlan,
    facts: &HostFactsFull,
    pkg: &PackageInfo,
) -> HostOutcome {
    let start = Instant::now();
    let mut out = HostOutcome::new(&plan.host, &plan.roles.join(","));
    out.release = pkg.version.clone();
    if let Err(e) = rollout_inner(t, region, model, plan, facts, pkg, &mut out) {
        out = out.fail(e);
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// The script or unit file that defines a service instance.
fn service_definition(region: &Region, init: InitKind, s: &ServiceInstance) -> String {
    match init {
        InitKind::Sysv => format!("{}/{}", region.paths.initd, s.sysv_name),
        _ => format!("{}/{}", region.paths.systemd, s.unit_file),
    }
}

/// Services to enable at boot: those new since the last deploy (not in its
/// managed list) and those whose script or unit file is created now. SysV
/// boot links (update-rc.d, chkconfig) exist only for `/etc/init.d`; with
/// another `paths.initd` (tests) there is nothing to enable.
fn services_to_enable(
    region: &Region,
    model: &HostModel,
    plan: &HostPlan,
    facts: &HostFactsFull,
) -> Vec<String> {
    if model.init == InitKind::Sysv && region.paths.initd != "/etc/init.d" {
        return Vec::new();
    }
    let known: BTreeSet<String> = parse_managed(&facts.managed)
        .into_iter()
        .filter_map(|m| match m {
            Managed::Service { init, name } if init == model.init => Some(name),
            _ => None,
        })
        .collect();
    model
        .services
        .iter()
        .filter(|s| {
            let def = service_definition(region, model.init, s);
            !known.contains(s.name(model.init))
                || plan
                    .files
                    .iter()
                    .any(|f| f.path == def && f.action == FileAction::Create)
        })
        .map(|s| s.name(model.init).to_string())
        .collect()
}

fn rollout_inner(
    t: &mut dyn Transport,
    region: &Region,
    model: &HostModel,
    plan: &HostPlan,
    facts: &HostFactsFull,
    pkg: &PackageInfo,
    out: &mut HostOutcome,
) -> Result<(), String> {
    let host = plan.host.clone();
    let systemd = model.init == InitKind::Systemd;
    let unit_dir = format!("{}/", region.paths.systemd);
    let units_changed = plan.files.iter().any(|f| f.path.starts_with(&unit_dir))
        || plan
            .remove_services
            .iter()
            .any(|s| s.init == InitKind::Systemd);

    // One command: stop what left, install files, switch, enable, (re)start.
    let mut ops: Vec<String> = vec!["fresh:".into()];
    for s in &plan.remove_services {
        ops.push(format!("stop:{}", s.name));
    }
    let writes: Vec<&super::plan::FileChange> = plan.writes().collect();
    let mut entries = Vec::new();
    for fc in &writes {
        let Some(f) = model.file(&fc.path) else {
            continue;
        };
        entries.push(bundle::Entry {
            path: format!("{}.stv3new", f.path.trim_start_matches('/')),
            data: &f.content,
            mode: f.mode,
            owner: &f.owner,
            group: &f.group,
        });
    }
    if !entries.is_empty() {
        ops.push("tar:".into());
    }
    for fc in &writes {
        ops.push(format!("put:{}", fc.path));
    }
    for fc in plan.files.iter().filter(|f| f.action == FileAction::Remove) {
        ops.push(format!("del:{}", fc.path));
    }
    if plan.switch {
        ops.push(format!("switch:{}", pkg.version));
    }
    if systemd && units_changed {
        ops.push("reload:".into());
    }
    let names: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let to_enable = services_to_enable(region, model, plan, facts);
    if systemd && !to_enable.is_empty() {
        ops.push("enable:stv3.target".into());
    }
    for n in &to_enable {
        ops.push(format!("enable:{n}"));
    }
    for s in &plan.services {
        let act = match s.action {
            ServiceAction::Restart => "restart",
            ServiceAction::Start => "start",
        };
        ops.push(format!("{act}:{}", s.name));
    }
    let input = if entries.is_empty() {
        Vec::new()
    } else {
        bundle::tar(&entries).map_err(|e| format!("bundle the files: {e}"))?
    };
    let mut steps = Vec::new();
    if !plan.remove_services.is_empty() {
        steps.push(format!(
            "remove {}",
            plan.remove_services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if !plan.files.is_empty() {
        steps.push(format!("{} file(s)", plan.files.len()));
    }
    if plan.switch {
        steps.push(format!("switch current -> {}", pkg.version));
    }
    for (action, word) in [
        (ServiceAction::Restart, "restart"),
        (ServiceAction::Start, "start"),
    ] {
        let these: Vec<&str> = plan
            .services
            .iter()
            .filter(|s| s.action == action)
            .map(|s| s.name.as_str())
            .collect();
        if !these.is_empty() {
            steps.push(format!("{word} {}", these.join(" ")));
        }
    }
    progress(&host, &steps.join("; "));
    let r = host_ops(t, region, model.init, true, &ops, &input).map_err(|e| e.to_string())?;
    let since = Instant::now();
    if !names.is_empty() && r.failed.is_none() && r.service_failures.is_empty() {
        progress(&host, "started; health gate");
    }
    out.changed = plan.files.len() + usize::from(plan.switch) + usize::from(plan.server.is_some());
    out.removed = plan
        .remove_services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    if !names.is_empty() {
        out.restarted = names.clone();
    }

    let gate = if let Some(step) = &r.failed {
        Err((String::new(), step.clone()))
    } else if let Some((n, text)) = r.service_failures.first() {
        Err((
            n.clone(),
            format!(
                "start failed: {}",
                text.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("(no output)")
            ),
        ))
    } else {
        health_gate(t, region, model, &names, since)
    };
    let Err((svc, why)) = gate else {
        if !names.is_empty() {
            progress(&host, "healthy");
        }
        out.health = if names.is_empty() {
            "ok (no restart)".into()
        } else {
            "ok".into()
        };
        return Ok(());
    };

    // Failed: show the logs, put everything back.
    out.health = "FAILED".into();
    if let Some(s) = service_by_name(model, &svc) {
        let mut logs = last_logs(t, region, model.init, s);
        if let Some((_, text)) = r.service_failures.iter().find(|(n, _)| n == &svc) {
            logs = format!("{}\n(init script) {}", logs.trim_end(), tail(text, 10));
        }
        out.logs = Some(logs);
    }
    let what = if svc.is_empty() {
        why.clone()
    } else {
        format!("{svc}: {why}")
    };
    progress(&host, &format!("failed: {what}; rolling back"));
    let back_to = if plan.switch {
        plan.release_from.clone()
    } else {
        None
    };
    // New services are stopped and disabled; the others are restarted on the
    // old files and release; removed services come back.
    let created: Vec<String> = model
        .services
        .iter()
        .filter(|s| {
            let def = service_definition(region, model.init, s);
            plan.files
                .iter()
                .any(|f| f.path == def && f.action == FileAction::Create)
        })
        .map(|s| s.name(model.init).to_string())
        .collect();
    let mut undo: Vec<String> = created.iter().map(|n| format!("stop:{n}")).collect();
    undo.push("restore:".into());
    for fc in &writes {
        undo.push(format!("clean:{}", fc.path));
    }
    if let Some(v) = &back_to {
        undo.push(format!("switch:{v}"));
    }
    if systemd && (units_changed || !created.is_empty()) {
        undo.push("reload:".into());
    }
    for s in &plan.remove_services {
        if s.init == model.init {
            undo.push(format!("enable:{}", s.name));
        }
    }
    for n in names.iter().filter(|n| !created.contains(n)) {
        undo.push(format!("restart:{n}"));
    }
    for s in plan
        .remove_services
        .iter()
        .filter(|s| s.running && s.init == model.init)
    {
        undo.push(format!("start:{}", s.name));
    }
    match host_ops(t, region, model.init, false, &undo, &[]) {
        Ok(u) => {
            for w in &u.warnings {
                progress(&host, &format!("rollback: {w}"));
            }
            for (n, text) in &u.service_failures {
                progress(
                    &host,
                    &format!("rollback: {n} did not start again: {}", tail(text, 3)),
                );
            }
        }
        Err(e) => progress(&host, &format!("rollback failed: {e}")),
    }
    out.rolled_back = true;
    out.release = back_to.unwrap_or_else(|| facts.current.clone().unwrap_or_default());
    Err(what)
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
        let mut ops = vec![format!("switch:{version}")];
        ops.extend(names.iter().map(|n| format!("restart:{n}")));
        let r = host_ops(t, region, model.init, true, &ops, &[]).map_err(|e| e.to_string())?;
        let since = Instant::now();
        if let Some(step) = r.failed {
            return Err(step);
        }
        out.changed = 1;
        out.restarted = names.clone();
        let gate = match r.service_failures.first() {
            Some((n, text)) => Err((
                n.clone(),
                format!(
                    "start failed: {}",
                    text.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("(no output)")
                ),
            )),
            None => health_gate(t, region, model, &names, since),
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
