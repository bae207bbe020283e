//! Planning (pure): which files change and exactly which services restart,
//! for the example inventory and hand-made host facts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stv3_deployer::deploy::facts::{FileFact, HostFactsFull};
use stv3_deployer::deploy::plan::{plan_host, sha256_hex, FileAction, PackageInfo};
use stv3_deployer::deploy::render::{render_host, HostFacts, HostModel};
use stv3_deployer::deploy::roles::Assets;
use stv3_deployer::inventory::{self, InitKind, SecretStore};

fn root() -> PathBuf {
    std::env::var("STV3_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn model(host: &str) -> HostModel {
    let inv = inventory::load(&root().join("examples/inventory.yaml")).unwrap();
    let secrets =
        SecretStore::load(Some(&root().join("examples/secrets.example.yaml")), false).unwrap();
    let region = inventory::resolve(&inv, "dfw", &secrets).unwrap();
    let assets = Assets::from_dir(&root()).unwrap();
    render_host(
        &assets,
        &region,
        region.host(host).unwrap(),
        &HostFacts {
            cores: 2,
            init: InitKind::Sysv,
        },
    )
    .unwrap()
}

/// A host where everything of `m` is in place, release 1.0 running.
fn converged(m: &HostModel) -> HostFactsFull {
    HostFactsFull {
        cores: 2,
        init: Some(InitKind::Sysv),
        current: Some("1.0".into()),
        releases: [("1.0".to_string(), "sha-1.0".to_string())].into(),
        tarballs: vec!["sha-1.0.tar.gz".into()],
        user_exists: true,
        history: vec!["1.0".into()],
        files: m
            .files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    Some(FileFact {
                        sha256: sha256_hex(&f.content),
                        mode: f.mode,
                        owner: f.owner.clone(),
                        group: f.group.clone(),
                    }),
                )
            })
            .collect(),
        dirs: m
            .dirs
            .iter()
            .map(|d| {
                (
                    d.path.clone(),
                    Some((d.mode, d.owner.clone(), d.group.clone())),
                )
            })
            .collect(),
        running: m
            .services
            .iter()
            .map(|s| (s.sysv_name.clone(), true))
            .collect(),
    }
}

fn bins(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(b, s)| (format!("bin/{b}"), s.to_string()))
        .collect()
}

fn pkg(version: &str, sha: &str, b: &BTreeMap<String, String>) -> PackageInfo {
    PackageInfo {
        version: version.into(),
        sha256: sha.into(),
        binaries: b.clone(),
    }
}

const OLD: &[(&str, &str)] = &[
    ("yagi-event", "y1"),
    ("pipeline-worker", "p1"),
    ("stv3-api", "a1"),
    ("winchester-db", "w1"),
];

/// Plan `host` from converged facts changed by `edit`; compare the services
/// (`name:Action`) and file changes.
fn check(
    host: &str,
    edit: impl Fn(&mut HostFactsFull),
    new_bins: &[(&str, &str)],
    version: &str,
    restarts: &[&str],
    files: &[(&str, FileAction)],
) {
    let m = model(host);
    let mut facts = converged(&m);
    edit(&mut facts);
    let old = bins(OLD);
    let p = plan_host(
        &m,
        &facts,
        &pkg(
            version,
            if version == "1.0" {
                "sha-1.0"
            } else {
                "sha-new"
            },
            &bins(new_bins),
        ),
        Some(&old),
    );
    let mut got: Vec<String> = p
        .services
        .iter()
        .map(|s| format!("{}:{:?}", s.name, s.action))
        .collect();
    got.sort();
    let mut want: Vec<String> = restarts.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "restarts on {host}");
    let got_files: Vec<(String, FileAction)> =
        p.files.iter().map(|f| (f.path.clone(), f.action)).collect();
    let want_files: Vec<(String, FileAction)> =
        files.iter().map(|(p, a)| (p.to_string(), *a)).collect();
    assert_eq!(got_files, want_files, "files on {host}");
}

#[test]
fn converged_host_is_a_noop() {
    let m = model("worker1");
    let p = plan_host(
        &m,
        &converged(&m),
        &pkg("1.0", "sha-1.0", &bins(OLD)),
        Some(&bins(OLD)),
    );
    assert!(p.is_noop(), "{p:#?}");
}

#[test]
fn restart_table() {
    // New release where only pipeline-worker changed: only the pipeline workers restart (D2).
    check(
        "worker1",
        |_| {},
        &[
            ("yagi-event", "y1"),
            ("pipeline-worker", "p2"),
            ("stv3-api", "a1"),
            ("winchester-db", "w1"),
        ],
        "1.1",
        &[
            "stv3-pipeline-1:Restart",
            "stv3-pipeline-2:Restart",
            "stv3-pipeline-3:Restart",
            "stv3-pipeline-4:Restart",
        ],
        &[],
    );
    // Same release, one cell's config changed: only that cell's yagi restarts.
    check(
        "worker1",
        |f| {
            f.files
                .get_mut("/etc/stv3/yagi-cell1.conf")
                .unwrap()
                .as_mut()
                .unwrap()
                .sha256 = "old".into()
        },
        OLD,
        "1.0",
        &["stv3-yagi-cell1:Restart"],
        &[("/etc/stv3/yagi-cell1.conf", FileAction::Update)],
    );
    // winchester.yaml changed on the api+db host: the API restarts (D4).
    check(
        "api1",
        |f| {
            f.files
                .get_mut("/etc/stv3/winchester.yaml")
                .unwrap()
                .as_mut()
                .unwrap()
                .sha256 = "old".into()
        },
        OLD,
        "1.0",
        &["stv3-api:Restart"],
        &[("/etc/stv3/winchester.yaml", FileAction::Update)],
    );
    // Only the mode of a file differs: fixed, nothing restarts.
    check(
        "api1",
        |f| {
            f.files
                .get_mut("/etc/stv3/winchester.yaml")
                .unwrap()
                .as_mut()
                .unwrap()
                .mode = 0o644
        },
        OLD,
        "1.0",
        &[],
        &[("/etc/stv3/winchester.yaml", FileAction::Metadata)],
    );
    // A stopped service is started, nothing else.
    check(
        "worker1",
        |f| *f.running.get_mut("stv3-yagi-cell1").unwrap() = false,
        OLD,
        "1.0",
        &["stv3-yagi-cell1:Start"],
        &[],
    );
    // A missing init script: created, and its service restarted.
    check(
        "worker1",
        |f| *f.files.get_mut("/etc/init.d/stv3-pipeline-2").unwrap() = None,
        OLD,
        "1.0",
        &["stv3-pipeline-2:Restart"],
        &[("/etc/init.d/stv3-pipeline-2", FileAction::Create)],
    );
}

#[test]
fn release_steps() {
    let m = model("api1");
    let facts = converged(&m);
    let p = plan_host(
        &m,
        &facts,
        &pkg("1.1", "sha-new", &bins(OLD)),
        Some(&bins(OLD)),
    );
    assert!(
        p.switch && p.unpack && p.upload_tarball && p.migrate,
        "{p:#?}"
    );
    assert!(
        p.services.is_empty(),
        "same binaries, same configs: no restart"
    );
    // The tarball is already on the host: no upload.
    let mut f2 = facts.clone();
    f2.tarballs.push("sha-new.tar.gz".into());
    let p = plan_host(
        &m,
        &f2,
        &pkg("1.1", "sha-new", &bins(OLD)),
        Some(&bins(OLD)),
    );
    assert!(!p.upload_tarball && p.unpack);
    // Back to an installed release: no unpack, just a switch.
    let mut f3 = facts.clone();
    f3.releases.insert("0.9".into(), "sha-0.9".into());
    let p = plan_host(
        &m,
        &f3,
        &pkg("0.9", "sha-0.9", &bins(OLD)),
        Some(&bins(OLD)),
    );
    assert!(!p.unpack && !p.upload_tarball && p.switch);
    // Workers never migrate.
    let w = model("worker1");
    assert!(!plan_host(&w, &converged(&w), &pkg("1.1", "x", &bins(OLD)), None).migrate);
    // Unknown installed manifest: every service restarts on a release change.
    let p = plan_host(&w, &converged(&w), &pkg("1.1", "x", &bins(OLD)), None);
    assert_eq!(p.services.len(), w.services.len());
}
