//! End to end on the SSH testbed (`testbed/testbed.sh`): 3 hosts on this
//! machine (h1, h2 workers; h3 api + db), each its own sshd and mount
//! namespace. Packages the real binaries from `target/debug` (stripped copies),
//! deploys a 2-cell region, checks the services run and answer /health,
//! redeploys with no changes (no restarts), deploys a broken release (its
//! yagi-event exits at once) and sees it rolled back, then rolls back by hand.
//!
//! Needs sshd (`stv3_testsupport::require(Service::Sshd, ..)`), root (mount
//! namespaces), RabbitMQ (guest) and MariaDB (root, no password) on 127.0.0.1.

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

/// Stripped copies of the debug binaries; `broken` replaces yagi-event by /bin/false.
fn bin_dir(dir: &Path, broken: bool) -> PathBuf {
    let debug = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
        .join("debug");
    let missing: Vec<&str> = CORE
        .iter()
        .copied()
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

    // 2. Same package again: no changes, no restarts.
    let r = deploy::deploy(&assets, &region, &good, &opts).unwrap();
    print!("{}", r.table());
    assert_eq!(r.failed(), 0);
    for h in &r.hosts {
        assert_eq!((h.changed, h.restarted.len()), (0, 0), "{}", r.table());
    }
    assert!(r.plans.iter().all(|p| p.is_noop()));

    // 3. --check with a new release: a plan, nothing changed, exit code 2.
    let check = Options {
        check: true,
        ..Options::default()
    };
    let r = deploy::deploy(&assets, &region, &broken, &check).unwrap();
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
