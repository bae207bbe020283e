//! End to end on the SSH testbed (`testbed/testbed.sh`): 3 hosts on this
//! machine (h1, h2 workers; h3 api + db), each its own sshd and mount
//! namespace. Packages the real binaries from `target/debug` (stripped copies),
//! deploys a 2-cell region (the db role creating the database and a
//! least-privilege app user, D8), checks the services run and answer
//! /health, publishes notigen traffic to both cells and sees events and
//! fired streams through the API, redeploys with no changes (no restarts),
//! shrinks the region (a cell and a pipeline worker go: their services are
//! stopped and removed) and grows it back, deploys a broken release (its
//! yagi-event exits at once) and sees it rolled back, then rolls back by hand.
//!
//! Needs sshd (`stv3_testsupport::require(Service::Sshd, ..)`), root (mount
//! namespaces), RabbitMQ (guest) and MariaDB (root, no password) on 127.0.0.1,
//! the mysql client, and the workspace binaries (`cargo build --workspace`).

use std::path::{Path, PathBuf};
use std::process::Command;

use stv3_deployer::deploy::{self, roles::Assets, Options};
use stv3_deployer::inventory::{self, SecretStore};
use stv3_deployer::package::{self, probe, BuildInfo, PackageOptions};
use stv3_testsupport::{require, Service};

const CORE: [&str; 4] = ["yagi-event", "pipeline-worker", "stv3-api", "winchester-db"];

fn root() -> PathBuf {
    std::env::var("STV3_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn debug_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
        .join("debug")
}

/// Stripped copies of the debug binaries; `broken` replaces yagi-event by /bin/false.
fn bin_dir(dir: &Path, broken: bool) -> PathBuf {
    let debug = debug_dir();
    let missing: Vec<&str> = CORE
        .iter()
        .copied()
        .chain(["notigen"])
        .filter(|b| !debug.join(b).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "build the core binaries first (cargo build --workspace): missing {missing:?} in {}",
        debug.display()
    );
    let out = dir.join(if broken { "bins-broken" } else { "bins-good" });
    std::fs::create_dir_all(&out).unwrap();
    for b in CORE {
        if broken && b == "yagi-event" {
            std::fs::copy("/bin/false", out.join(b)).unwrap();
        } else {
            run(Command::new("strip")
                .arg("-o")
                .arg(out.join(b))
                .arg(debug.join(b)));
        }
    }
    out
}

fn make_package(dir: &Path, version: &str, broken: bool) -> PathBuf {
    let bins = bin_dir(dir, broken);
    let ws = probe::Workspace {
        root: root(),
        target_dir: root().join("target"),
        version: version.to_string(),
        bins: CORE.iter().map(|s| s.to_string()).collect(),
    };
    let info = BuildInfo {
        version: version.to_string(),
        git: probe::git_info(&root()),
        rustc: probe::rustc_info().unwrap(),
        profile: "debug".into(),
        source_date_epoch: 1_700_000_000,
    };
    let opts = PackageOptions {
        targets: vec![],
        out_dir: dir.join("dist"),
        profile: "debug".into(),
        from_dir: Some(bins),
        require_all: false,
    };
    let (_, outputs) = package::package(&opts, &ws, &info, false).unwrap();
    outputs[0].tarball.clone()
}

/// Run SQL as MariaDB's root; its output.
fn mysql_root(sql: &str) -> String {
    let out = Command::new("mysql")
        .args([
            "-uroot",
            "-h127.0.0.1",
            "--batch",
            "--skip-column-names",
            "-e",
            sql,
        ])
        .output()
        .expect("the mysql client");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GET `path` from the API; the first `count` in the answer.
fn api_count(bind: &str, path: &str) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(bind) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {bind}\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v[0]["count"].as_u64())
        .unwrap_or(0)
}

/// Poll `f` until it holds or `secs` pass (then fail with `what`).
fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {secs}s"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// This machine's MariaDB is the Debian package and accepts connections.
fn local_mariadb_package_running() -> bool {
    let ok = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    let packaged = Command::new("dpkg")
        .args(["-s", "mariadb-server"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("Status: install ok installed")
        });
    packaged && ok(Command::new("mariadb-admin").args(["--connect-timeout=2", "ping"]))
}

struct Testbed(PathBuf);

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("testbed/testbed.sh"))
            .arg("down")
            .arg(&self.0)
            .status();
    }
}

fn check_opts() -> Options {
    Options {
        check: true,
        ..Options::default()
    }
}

#[test]
fn deploy_redeploy_broken_release_and_rollback_on_the_ssh_testbed() {
    let Some(_) = require(
        Service::Sshd,
        "deploy_redeploy_broken_release_and_rollback_on_the_ssh_testbed",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tb = tmp.path().join("tb");
    run(Command::new("bash")
        .arg(root().join("testbed/testbed.sh"))
        .arg("up")
        .arg(&tb)
        .arg("3")
        .arg("23001"));
    let _guard = Testbed(tb.clone());

    let good = make_package(tmp.path(), "0.1.0-tb1", false);
    let broken = make_package(tmp.path(), "0.1.0-tb2", true);

    let assets = Assets::from_dir(&root()).unwrap();
    let inv = inventory::load(&tb.join("inventory.yaml")).unwrap();
    let secrets = SecretStore::load(Some(&tb.join("secrets.yaml")), true).unwrap();
    let region = inventory::resolve(&inv, "tb", &secrets).unwrap();
    let opts = Options::default();

    // 0. Host keys: unknown = refused unless --accept-new-host-keys (then
    //    recorded); a different key for a known host = always refused.
    let h1 = region.host("h1").unwrap();
    let kh = tmp.path().join("kh");
    let with_kh = |accept: bool| Options {
        known_hosts: Some(kh.clone()),
        accept_new_host_keys: accept,
        ..Options::default()
    };
    let err = deploy::connect(&region, h1, &with_kh(false))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("is not in") && err.contains("--accept-new-host-keys"),
        "{err}"
    );
    deploy::connect(&region, h1, &with_kh(true)).unwrap();
    assert!(std::fs::read_to_string(&kh)
        .unwrap()
        .contains("[127.0.0.1]:23001"));
    deploy::connect(&region, h1, &with_kh(false)).unwrap();
    let h2_key = std::fs::read_to_string(tb.join("h2/etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
    let wrong: Vec<&str> = h2_key.split_whitespace().take(2).collect();
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:23001 {} {}\n", wrong[0], wrong[1]),
    )
    .unwrap();
    let err = deploy::connect(&region, h1, &with_kh(true))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does NOT match"), "{err}");

    // 1. First deploy: everything created, started, healthy.
    let r = deploy::deploy(&assets, &region, &good, &opts).unwrap();
    print!("{}", r.table());
    assert_eq!(r.failed(), 0, "{}", r.table());
    let restarted: usize = r.hosts.iter().map(|h| h.restarted.len()).sum();
    assert_eq!(restarted, 9, "2 yagi + 2 pipeline on each worker, 1 api");
    let (rows, unreachable) = deploy::status(&assets, &region, &opts).unwrap();
    assert!(unreachable.is_empty());
    assert_eq!(rows.len(), 9);
    for row in &rows {
        assert!(row.running && row.health == "200", "{row:?}");
        assert_eq!(row.release, "0.1.0-tb1");
    }
    // D8: the db role created the app user with DML on its database only;
    // the workers and the API connect as that user.
    let app = &region.database.user;
    let grants = mysql_root(&format!("SHOW GRANTS FOR '{app}'@'127.0.0.1'"));
    let db = region.database.path.trim_start_matches('/');
    assert!(
        grants.contains(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO `{app}`@`127.0.0.1`"
        )) && grants.lines().count() == 2,
        "{grants}"
    );
    for h in ["h1", "h3"] {
        let w = std::fs::read_to_string(tb.join(h).join("etc/stv3/winchester.yaml")).unwrap();
        assert!(w.contains(&format!("mysql://{app}:")), "{h}: {w}");
    }

    // 1b. Traffic through both cells: events, then fired (completed) streams, via the API.
    for (i, cell) in region.cells.iter().enumerate() {
        run(Command::new(debug_dir().join("notigen"))
            .args(["-n", "1500", "--seed", &(i + 1).to_string()])
            .args(["--amqp", "amqp://guest:guest@127.0.0.1:5672/%2F"])
            .args(["--exchange", &cell.exchange])
            .args(["--routing-key", &cell.queues[0].routing_key]));
    }
    wait_until(90, "events from both cells in the API", || {
        api_count(&region.api_bind, "/v1/events/count") >= 2000
    });
    wait_until(120, "fired streams in the API", || {
        api_count(&region.api_bind, "/v1/streams/count?state=completed") > 0
    });

    // 2. Same package again: no changes, no restarts.
    let r = deploy::deploy(&assets, &region, &good, &opts).unwrap();
    print!("{}", r.table());
    assert_eq!(r.failed(), 0);
    for h in &r.hosts {
        assert_eq!((h.changed, h.restarted.len()), (0, 0), "{}", r.table());
    }
    assert!(r.plans.iter().all(|p| p.is_noop()));

    // 2a. `database.install_server: true` on that converged region: h3 sees
    //     this machine's MariaDB (the Debian package, running) as installed
    //     and running, so its plan stays empty. Only with `--check` (nothing
    //     can be installed) and only where the server here is that package.
    if local_mariadb_package_running() {
        let text = std::fs::read_to_string(tb.join("inventory.yaml")).unwrap();
        let flagged = text.replacen(
            "      admin_user: stv3tb_admin\n",
            "      admin_user: stv3tb_admin\n      install_server: true\n",
            1,
        );
        assert_ne!(flagged, text);
        std::fs::write(tb.join("inventory-server.yaml"), flagged).unwrap();
        let inv = inventory::load(&tb.join("inventory-server.yaml")).unwrap();
        let flagged_region = inventory::resolve(&inv, "tb", &secrets).unwrap();
        let only_h3 = Options {
            limit: vec!["h3".into()],
            ..check_opts()
        };
        let r = deploy::deploy(&assets, &flagged_region, &good, &only_h3).unwrap();
        let p = r.plans.iter().find(|p| p.host == "h3").unwrap();
        assert!(p.server.is_none() && p.is_noop(), "{p:#?}");
        assert_eq!(r.exit_code(), 0);
    }

    // 2b. The region shrinks (cell2 goes, h1 keeps one pipeline worker): the
    //     plan names what goes; the deploy stops, disables and removes it.
    let text = std::fs::read_to_string(tb.join("inventory.yaml")).unwrap();
    let cell2 = text.find("      - name: cell2").unwrap();
    let hosts = text.find("    hosts:").unwrap();
    let small = format!("{}{}", &text[..cell2], &text[hosts..]).replacen(
        "pipeline_workers: 2",
        "pipeline_workers: 1",
        1,
    );
    std::fs::write(tb.join("inventory-small.yaml"), small).unwrap();
    let small_inv = inventory::load(&tb.join("inventory-small.yaml")).unwrap();
    let small_region = inventory::resolve(&small_inv, "tb", &secrets).unwrap();
    let r = deploy::deploy(&assets, &small_region, &good, &check_opts()).unwrap();
    let removing = |host: &str| -> Vec<String> {
        let p = r.plans.iter().find(|p| p.host == host).unwrap();
        p.remove_services.iter().map(|s| s.name.clone()).collect()
    };
    assert_eq!(removing("h1"), ["stv3-yagi-cell2", "stv3-pipeline-2"]);
    assert_eq!(removing("h2"), ["stv3-yagi-cell2"]);
    assert!(removing("h3").is_empty());
    let r = deploy::deploy(&assets, &small_region, &good, &opts).unwrap();
    print!("{}", r.table());
    assert_eq!(r.failed(), 0, "{}", r.table());
    let removed: usize = r.hosts.iter().map(|h| h.removed.len()).sum();
    let restarted: usize = r.hosts.iter().map(|h| h.restarted.len()).sum();
    assert_eq!((removed, restarted), (3, 0), "{}", r.table());
    let (rows, _) = deploy::status(&assets, &small_region, &opts).unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.running && r.health == "200"),
        "{rows:?}"
    );
    for gone in [
        "etc/init.d/stv3-yagi-cell2",
        "etc/init.d/stv3-pipeline-2",
        "etc/stv3/yagi-cell2.conf",
        "run/stv3-yagi-cell2.pid",
        "run/stv3-pipeline-2.pid",
    ] {
        assert!(!tb.join("h1").join(gone).exists(), "h1 still has {gone}");
    }
    assert!(tb.join("h2/etc/init.d/stv3-pipeline-2").exists());
    // And back: the services return.
    let r = deploy::deploy(&assets, &region, &good, &opts).unwrap();
    print!("{}", r.table());
    assert_eq!(r.failed(), 0, "{}", r.table());
    let (rows, _) = deploy::status(&assets, &region, &opts).unwrap();
    assert_eq!(rows.len(), 9);
    assert!(
        rows.iter().all(|r| r.running && r.health == "200"),
        "{rows:?}"
    );

    // 3. --check with a new release: a plan, nothing changed, exit code 2.
    let r = deploy::deploy(&assets, &region, &broken, &check_opts()).unwrap();
    assert_eq!(r.exit_code(), 2);
    assert!(r
        .plans
        .iter()
        .all(|p| p.switch && p.release_to == "0.1.0-tb2"));

    // 4. Broken release (yagi-event exits at once): the first worker fails its
    //    gate, is rolled back, and the rollout stops. h3 (db, first) has no yagi.
    let serial = Options {
        serial: 1,
        ..Options::default()
    };
    let r = deploy::deploy(&assets, &region, &broken, &serial).unwrap();
    print!("{}", r.table());
    assert_eq!(r.exit_code(), 1);
    let h1 = r.hosts.iter().find(|h| h.host == "h1").unwrap();
    assert!(!h1.ok && h1.rolled_back, "{}", r.table());
    assert_eq!(h1.release, "0.1.0-tb1");
    assert!(
        h1.error.as_deref().unwrap_or("").contains("stv3-yagi-cell"),
        "{:?}",
        h1.error
    );
    let h2 = r.hosts.iter().find(|h| h.host == "h2").unwrap();
    assert!(
        h2.error.as_deref().unwrap_or("").contains("skipped"),
        "{}",
        r.table()
    );
    let (rows, _) = deploy::status(&assets, &region, &opts).unwrap();
    for row in rows.iter().filter(|r| r.host != "h3") {
        assert!(
            row.running && row.health == "200",
            "after the automatic rollback: {row:?}"
        );
        assert_eq!(row.release, "0.1.0-tb1");
    }

    // 5. Manual rollback of h3 (which took tb2: it runs no yagi) to tb1.
    let h3_release = rows
        .iter()
        .find(|r| r.host == "h3")
        .unwrap()
        .release
        .clone();
    assert_eq!(h3_release, "0.1.0-tb2");
    let only_h3 = Options {
        limit: vec!["h3".into()],
        ..Options::default()
    };
    let r = deploy::rollback(&assets, &region, None, &only_h3).unwrap();
    print!("{}", r.table());
    assert_eq!(r.failed(), 0, "{}", r.table());
    let (rows, _) = deploy::status(&assets, &region, &opts).unwrap();
    assert!(
        rows.iter()
            .all(|r| r.release == "0.1.0-tb1" && r.running && r.health == "200"),
        "{rows:?}"
    );

    // 6. Rolling back to a release that is not installed is refused up front.
    let err = deploy::rollback(&assets, &region, Some("9.9.9"), &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("release 9.9.9 is not installed"), "{err}");
}
