//! The remote scripts on this machine, through the local transport, in a
//! scratch layout (no services started): facts from a real host directory,
//! one-command install of every file (mode, backup, atomic rename), the
//! managed list, removal of what left the inventory, and the rollback of a
//! rollout that fails halfway (every file and the release put back).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use stv3_deployer::deploy::plan::{plan_host, FileAction, PackageInfo};
use stv3_deployer::deploy::render::{render_host, HostFacts, HostModel};
use stv3_deployer::deploy::{apply, facts};
use stv3_deployer::inventory::{self, InitKind, Region, SecretStore};
use stv3_deployer::transport::local::LocalTransport;

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
