//! The remote scripts on this machine, through the local transport, in a
//! scratch layout (no services started): facts from a real host directory,
//! one-command install of every file (mode, backup, atomic rename), the
//! managed list, removal of what left the inventory, and the rollback of a
//! rollout that fails halfway (every file and the release put back). The
//! database server install (`database.install_server`) runs against fake
//! `dpkg`, `apt-get`, `mariadb-admin`, `systemctl` and `update-rc.d` on a
//! PATH that holds nothing else but basic tools: no package is installed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use stv3_deployer::deploy::plan::{plan_host, refusal, FileAction, PackageInfo};
use stv3_deployer::deploy::render::{render_host, HostFacts, HostModel};
use stv3_deployer::deploy::{apply, facts};
use stv3_deployer::inventory::{self, InitKind, Region, SecretStore};
use stv3_deployer::transport::local::LocalTransport;
use stv3_deployer::transport::{ExecOutput, Transport, TransportError};

fn region(dir: &Path, cells: &[&str]) -> Region {
    let d = dir.display();
    let mut yaml = format!(
        "regions:
  t:
    init: sysv
    paths: {{opt: {d}/opt, etc: {d}/etc, log: {d}/log, run: {d}/run, lib: {d}/lib, initd: {d}/initd, systemd: {d}/systemd}}
    database:
      url: sqlite://{d}/lib/stv3.db
    cells:
"
    );
    for c in cells {
        yaml.push_str(&format!(
            "      - {{name: {c}, rabbit: {{url: 'amqp://stv3@127.0.0.1:5672'}}}}\n"
        ));
    }
    yaml.push_str("    hosts:\n      - {name: h, address: localhost, roles: [db, api, worker], pipeline_workers: 1}\n");
    let inv = inventory::parse(Path::new("inventory.yaml"), &yaml).unwrap();
    let secrets = SecretStore::from_values(
        cells
            .iter()
            .map(|c| (format!("rabbit_{c}"), format!("pw-{c}-x")))
            .collect(),
        Default::default(),
        false,
    );
    inventory::resolve(&inv, "t", &secrets).unwrap()
}

fn pkg(version: &str) -> PackageInfo {
    PackageInfo {
        version: version.into(),
        sha256: format!("sha-{version}"),
        binaries: Default::default(),
    }
}

fn model(r: &Region) -> HostModel {
    render_host(
        &common::assets(),
        r,
        r.host("h").unwrap(),
        &HostFacts {
            cores: 1,
            init: InitKind::Sysv,
        },
    )
    .unwrap()
}

fn mode(p: &str) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_remove_and_roll_back_files_in_one_command_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["etc", "lib", "initd"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let install = |v: &str| {
        let rel = d.join("opt/releases").join(v);
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::write(rel.join(".stv3-tarball-sha256"), format!("sha-{v}\n")).unwrap();
    };
    install("1.0");
    install("2.0");
    let mut t = LocalTransport::new("h");
    let etc = format!("{}/etc", d.display());

    // 1. First rollout of a two-cell region: every file is created.
    let r1 = region(d, &["c1", "c2"]);
    let m1 = model(&r1);
    let f1 = facts::gather(&mut t, &r1.paths, true, &facts::probes(&m1)).unwrap();
    assert!(f1.managed.is_empty() && f1.current.is_none());
    let mut p1 = plan_host(&m1, &f1, &pkg("1.0"), None);
    assert!(p1.files.iter().all(|f| f.action == FileAction::Create));
    p1.services.clear(); // no processes in this test
    let o = apply::rollout(&mut t, &r1, &m1, &p1, &f1, &pkg("1.0"));
    assert!(o.ok, "{o:#?}");
    for f in &m1.files {
        assert_eq!(std::fs::read(&f.path).unwrap(), f.content, "{}", f.path);
        assert_eq!(mode(&f.path), f.mode, "{}", f.path);
        assert!(!Path::new(&format!("{}.stv3new", f.path)).exists());
    }
    assert_eq!(
        std::fs::read_link(d.join("opt/current")).unwrap(),
        Path::new("releases/1.0")
    );

    // 2. The facts of the converged host give an empty plan.
    let f2 = facts::gather(&mut t, &r1.paths, true, &facts::probes(&m1)).unwrap();
    assert_eq!(f2.current.as_deref(), Some("1.0"));
    assert!(!f2.managed.is_empty());
    let mut p2 = plan_host(&m1, &f2, &pkg("1.0"), None);
    p2.services.clear();
    // (Without a `stv3` group on this machine, tar leaves those files root's:
    // then only that metadata differs.)
    let stv3_group = std::process::Command::new("getent")
        .args(["group", "stv3"])
        .output()
        .is_ok_and(|o| o.status.success());
    p2.files
        .retain(|f| stv3_group || !(f.action == FileAction::Metadata && f.group == "stv3"));
    assert!(p2.files.is_empty() && !p2.switch, "{p2:#?}");

    // 3. Cell c2 leaves and release 2.0 comes, but the switch fails (its
    //    directory is gone): everything is put back as it was.
    let r2 = region(d, &["c1"]);
    let m2 = model(&r2);
    let f3 = facts::gather(&mut t, &r2.paths, true, &facts::probes(&m2)).unwrap();
    let mut p3 = plan_host(&m2, &f3, &pkg("2.0"), None);
    let removed: Vec<&str> = p3
        .files
        .iter()
        .filter(|f| f.action == FileAction::Remove)
        .map(|f| f.path.as_str())
        .collect();
    assert!(
        removed.contains(&format!("{etc}/yagi-c2.conf").as_str()),
        "{removed:?}"
    );
    assert_eq!(
        p3.remove_services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["stv3-yagi-c2"]
    );
    p3.services.clear();
    p3.remove_services.clear(); // nothing runs: no init script to stop
    std::fs::remove_dir_all(d.join("opt/releases/2.0")).unwrap();
    let o = apply::rollout(&mut t, &r2, &m2, &p3, &f3, &pkg("2.0"));
    assert!(!o.ok && o.rolled_back, "{o:#?}");
    assert!(
        o.error
            .as_deref()
            .unwrap()
            .contains("release 2.0 is not installed"),
        "{o:#?}"
    );
    for f in &m1.files {
        assert_eq!(
            std::fs::read(&f.path).unwrap(),
            f.content,
            "restored {}",
            f.path
        );
        assert_eq!(mode(&f.path), f.mode, "restored {}", f.path);
    }
    assert_eq!(
        std::fs::read_link(d.join("opt/current")).unwrap(),
        Path::new("releases/1.0")
    );

    // 4. The same without the failure: c2's files are gone, the rest stays.
    install("2.0");
    let o = apply::rollout(&mut t, &r2, &m2, &p3, &f3, &pkg("2.0"));
    assert!(o.ok, "{o:#?}");
    assert!(!Path::new(&format!("{etc}/yagi-c2.conf")).exists());
    assert!(!Path::new(&format!("{}/initd/stv3-yagi-c2", d.display())).exists());
    for f in &m2.files {
        assert_eq!(std::fs::read(&f.path).unwrap(), f.content, "{}", f.path);
    }
    let list = std::fs::read_to_string(format!("{etc}/managed-by-stv3ctl")).unwrap();
    assert!(!list.contains("c2"), "{list}");
}

/// The local machine with `PATH` replaced for every command.
struct WithPath {
    inner: LocalTransport,
    path: String,
}

impl Transport for WithPath {
    fn host(&self) -> &str {
        self.inner.host()
    }
    fn exec_input(&mut self, argv: &[&str], stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        let path = format!("PATH={}", self.path);
        let mut a = vec!["env", path.as_str()];
        a.extend_from_slice(argv);
        self.inner.exec_input(&a, stdin)
    }
    fn http_get(
        &mut self,
        addr: &str,
        path: &str,
        timeout: std::time::Duration,
    ) -> Result<(u16, String), TransportError> {
        self.inner.http_get(addr, path, timeout)
    }
}

/// A db host in `dir` whose package manager, database server and init
/// system are fakes recording every call in `dir/state/calls`. `apt`: the
/// host has apt-get. State files: `installed` (dpkg says so), `up` (ping
/// answers), `needs-update` (apt-get install fails until apt-get update),
/// `unit-<name>` (systemd knows that unit), `conflict` (apt-get install
/// would have to remove a package).
fn fake_db_host(dir: &Path, apt: bool) -> WithPath {
    let bin = dir.join("bin");
    let fake = dir.join("fake");
    let state = dir.join("state");
    for d in [&bin, &fake, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    for tool in [
        "sh",
        "tar",
        "grep",
        "mkdir",
        "rm",
        "cat",
        "sleep",
        "tail",
        "date",
        "id",
        "chown",
        "flock",
        "nproc",
        "getconf",
        "readlink",
        "getent",
        "sha256sum",
        "sed",
        "stat",
        "cut",
        "touch",
        "env",
    ] {
        if let Some(p) = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
        {
            std::os::unix::fs::symlink(p, bin.join(tool)).unwrap();
        }
    }
    let st = state.display();
    let mut fakes = vec![
        (
            "dpkg",
            format!(
                "echo \"dpkg $*\" >> {st}/calls\n[ \"$1 $2\" = \"-s mariadb-server\" ] && [ -f {st}/installed ] || {{ echo \"package '$2' is not installed\" >&2; exit 1; }}\necho 'Package: mariadb-server'; echo 'Status: install ok installed'"
            ),
        ),
        (
            "mariadb-admin",
            format!("echo \"ping\" >> {st}/calls\n[ -f {st}/up ] && echo 'mysqld is alive'"),
        ),
        (
            "systemctl",
            format!(
                "echo \"systemctl $*\" >> {st}/calls\ncase $1 in\n  cat) [ -f {st}/unit-\"${{2%.service}}\" ] ;;\n  start) touch {st}/up ;;\nesac"
            ),
        ),
        ("update-rc.d", format!("echo \"update-rc.d $*\" >> {st}/calls")),
    ];
    if apt {
        fakes.push((
            "apt-get",
            format!(
                "echo \"apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND\" >> {st}/calls\ncase $1 in\n  update) rm -f {st}/needs-update ;;\n  install) if [ -f {st}/conflict ]; then echo 'E: Packages need to be removed but remove is disabled.' >&2; exit 100; fi\n    if [ -f {st}/needs-update ]; then echo 'E: Unable to locate package' >&2; exit 100; fi; touch {st}/installed ;;\nesac"
            ),
        ));
    }
    for (name, body) in fakes {
        std::fs::write(fake.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(fake.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The package's SysV script.
    let initd = dir.join("initd");
    std::fs::create_dir_all(&initd).unwrap();
    std::fs::write(
        initd.join("mariadb"),
        format!("#!/bin/sh\necho \"initd mariadb $*\" >> {st}/calls\n[ \"$1\" = start ] && touch {st}/up\nexit 0\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        initd.join("mariadb"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    WithPath {
        inner: LocalTransport::new("db9"),
        path: format!("{}:{}", fake.display(), bin.display()),
    }
}

/// A MySQL region on the fake db host with `database.install_server: true`.
fn server_region(dir: &Path, init: &str) -> Region {
    let d = dir.display();
    let yaml = format!(
        "regions:
  t:
    init: {init}
    paths: {{opt: {d}/opt, etc: {d}/etc, log: {d}/log, run: {d}/run, lib: {d}/lib, initd: {d}/initd, systemd: {d}/systemd}}
    database:
      url: mysql://app@127.0.0.1:3306/app
      install_server: true
    cells:
      - {{name: c1, rabbit: {{url: 'amqp://stv3@127.0.0.1:5672'}}}}
    hosts:
      - {{name: db9, address: localhost, roles: [db, api, worker], pipeline_workers: 1}}
"
    );
    let inv = inventory::parse(Path::new("inventory.yaml"), &yaml).unwrap();
    let secrets = SecretStore::from_values(
        [("database", "app-pw-x"), ("rabbit_c1", "pw-c1-x")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        Default::default(),
        false,
    );
    inventory::resolve(&inv, "t", &secrets).unwrap()
}

/// Run the server part of the database step; (result, the fakes' calls since the last run).
/// A fake db host (`fake_db_host`) in `d` with `database.install_server` on,
/// rendered for `init` ("sysv" or "systemd").
fn server_host(d: &Path, init: &str, apt: bool) -> (WithPath, Region, HostModel) {
    for sub in ["etc", "lib"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let t = fake_db_host(d, apt);
    let r = server_region(d, init);
    let kind = if init == "systemd" {
        InitKind::Systemd
    } else {
        InitKind::Sysv
    };
    let m = render_host(
        &common::assets(),
        &r,
        r.host("db9").unwrap(),
        &HostFacts {
            cores: 1,
            init: kind,
        },
    )
    .unwrap();
    (t, r, m)
}

fn run_server_step(
    t: &mut WithPath,
    r: &Region,
    m: &HostModel,
    dir: &Path,
) -> (Result<String, String>, Vec<String>) {
    let calls = dir.join("state/calls");
    let _ = std::fs::remove_file(&calls);
    let steps = apply::DbSteps {
        server: true,
        ..Default::default()
    };
    let res = apply::database(t, r, m, "t1", steps);
    let log = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        !Path::new(&m.db.as_ref().unwrap().dir).exists(),
        "the task dir stays behind"
    );
    (res, log.lines().map(str::to_string).collect())
}

#[test]
fn database_server_install_start_and_no_op_against_fakes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut t, r, m) = server_host(d, "sysv", true);
    let state = d.join("state");
    let server_facts = |t: &mut WithPath| {
        facts::gather(t, &r.paths, true, &facts::probes(&m))
            .unwrap()
            .db_server
            .map(|f| (f.package, f.installed, f.apt, f.up))
    };

    // 0. Installing would remove another package: apt-get refuses, the step
    //    fails with its message, nothing is started.
    std::fs::write(state.join("conflict"), "").unwrap();
    let (res, calls) = run_server_step(&mut t, &r, &m, d);
    let err = res.unwrap_err();
    assert!(
        err.contains("E: Packages need to be removed but remove is disabled.")
            && err.contains("apt-get install mariadb-server failed (it never removes packages"),
        "{err}"
    );
    assert!(!calls.iter().any(|c| c.contains("start")), "{calls:?}");
    std::fs::remove_file(state.join("conflict")).unwrap();

    // 1. Missing, and the package lists are empty: install (after an
    //    update), enable at boot, start, wait for it.
    std::fs::write(state.join("needs-update"), "").unwrap();
    assert_eq!(
        server_facts(&mut t),
        Some(("mariadb-server".into(), false, true, false))
    );
    let (res, calls) = run_server_step(&mut t, &r, &m, d);
    let out = res.unwrap();
    assert!(
        out.contains("server: installed mariadb-server")
            && out.contains("server: enabled and started mariadb"),
        "{out}"
    );
    assert_eq!(
        calls,
        [
            "dpkg -s mariadb-server",
            "apt-get install -y --no-remove -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold mariadb-server DEBIAN_FRONTEND=noninteractive",
            "apt-get update DEBIAN_FRONTEND=noninteractive",
            "apt-get install -y --no-remove -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold mariadb-server DEBIAN_FRONTEND=noninteractive",
            "update-rc.d mariadb defaults",
            "initd mariadb start",
            "ping",
        ]
    );

    // 2. Installed and running: the facts say so, the plan has nothing to
    //    do, and the step itself (if run anyway) only looks.
    let f = facts::gather(&mut t, &r.paths, true, &facts::probes(&m)).unwrap();
    assert_eq!(
        f.db_server.as_ref().map(|s| (s.installed, s.apt, s.up)),
        Some((true, true, true))
    );
    let pkg = pkg("t1");
    assert!(plan_host(&m, &f, &pkg, None).server.is_none());
    let (res, calls) = run_server_step(&mut t, &r, &m, d);
    assert!(
        res.as_deref()
            .unwrap()
            .contains("server: mariadb-server installed and running (unchanged)"),
        "{res:?}"
    );
    assert_eq!(calls, ["dpkg -s mariadb-server", "ping"]);

    // 3. Installed but down: started again, no apt-get.
    std::fs::remove_file(state.join("up")).unwrap();
    let f = facts::gather(&mut t, &r.paths, true, &facts::probes(&m)).unwrap();
    let step = plan_host(&m, &f, &pkg, None).server.unwrap();
    assert!(!step.install);
    let (res, calls) = run_server_step(&mut t, &r, &m, d);
    assert!(res.unwrap().contains("server: enabled and started mariadb"));
    assert_eq!(
        calls,
        [
            "dpkg -s mariadb-server",
            "ping",
            "update-rc.d mariadb defaults",
            "initd mariadb start",
            "ping"
        ]
    );

    // 4. It never comes up: the step fails after the wait, naming it.
    std::fs::remove_file(state.join("up")).unwrap();
    std::fs::remove_file(d.join("initd/mariadb")).unwrap();
    std::fs::write(d.join("initd/mariadb"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        d.join("initd/mariadb"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut slow = m.clone();
    slow.db
        .as_mut()
        .unwrap()
        .server
        .as_mut()
        .unwrap()
        .wait_seconds = 1;
    let (res, _) = run_server_step(&mut t, &r, &slow, d);
    let err = res.unwrap_err();
    assert!(
        err.contains("mariadb-server (mariadb) did not accept connections within 1s"),
        "{err}"
    );
}

#[test]
fn database_server_with_systemd_uses_the_unit_the_host_has() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut t, r, m) = server_host(d, "systemd", true);
    let state = d.join("state");
    // Installed, down, and only the older `mysql` unit exists.
    std::fs::write(state.join("installed"), "").unwrap();
    std::fs::write(state.join("unit-mysql"), "").unwrap();
    let (res, calls) = run_server_step(&mut t, &r, &m, d);
    assert!(res.unwrap().contains("server: enabled and started mysql"));
    assert_eq!(
        calls,
        [
            "dpkg -s mariadb-server",
            "ping",
            "systemctl cat mariadb.service",
            "systemctl cat mysql.service",
            "systemctl enable mysql",
            "systemctl start mysql",
            "ping"
        ]
    );
    // No unit at all: a clear error.
    std::fs::remove_file(state.join("unit-mysql")).unwrap();
    std::fs::remove_file(state.join("up")).unwrap();
    let (res, _) = run_server_step(&mut t, &r, &m, d);
    let err = res.unwrap_err();
    assert!(
        err.contains(
            "mariadb-server is installed but systemd knows none of its services (mariadb mysql)"
        ),
        "{err}"
    );
}

#[test]
fn database_server_refused_on_a_host_without_apt_get() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut t, r, m) = server_host(d, "sysv", false);
    // The plan refuses, naming the host and the key...
    let f = facts::gather(&mut t, &r.paths, true, &facts::probes(&m)).unwrap();
    let p = plan_host(&m, &f, &pkg("t1"), None);
    let why = refusal(&m, &f, &p).unwrap();
    assert!(
        why.starts_with(
            "db9: database.install_server is true (inventory.yaml:7:23) but db9 has no apt-get"
        ),
        "{why}"
    );
    // ...and so does the step itself, installing nothing.
    let (res, calls) = run_server_step(&mut t, &r, &m, d);
    let err = res.unwrap_err();
    assert!(
        err.contains("database.install_server: this host has no apt-get; install mariadb-server"),
        "{err}"
    );
    assert_eq!(calls, ["dpkg -s mariadb-server"]);
}
