//! Planning (pure): which files change and exactly which services restart,
//! for the example inventory and hand-made host facts.

mod common;

use std::collections::BTreeMap;

use common::{example_region, example_region_with_db, region_with_admin, render_in};
use stv3_deployer::deploy::facts::{DbServerFact, FileFact, HostFactsFull};
use stv3_deployer::deploy::plan::{
    plan_host, refusal, render_plan, sha256_hex, FileAction, PackageInfo, ServerChange,
};
use stv3_deployer::deploy::render::{managed_list_path, HostModel};
use stv3_deployer::inventory::InitKind;

fn model(host: &str) -> HostModel {
    render_in(&example_region(), host, InitKind::Sysv, 2)
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
        managed: managed_lines(m),
        db_server: None,
    }
}

/// The managed list of `m` as the facts script reports it (no comments).
fn managed_lines(m: &HostModel) -> Vec<String> {
    let f = m.file(&managed_list_path("/etc/stv3")).unwrap();
    String::from_utf8_lossy(&f.content)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
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

#[test]
fn what_left_the_inventory_is_stopped_and_removed() {
    let m = model("worker1");
    let mut facts = converged(&m);
    // The last deploy also had a cell `old` and a fifth pipeline worker; a
    // foreign or odd path in the list is never deleted.
    facts.managed.extend(
        [
            "file /etc/stv3/yagi-old.conf",
            "file /etc/init.d/stv3-yagi-old",
            "file /etc/stv3/instances/stv3-yagi-old.env",
            "file /etc/init.d/stv3-pipeline-5",
            "file /etc/passwd",
            "file /etc/stv3/../shadow",
            "service sysv stv3-yagi-old",
            "service sysv stv3-pipeline-5",
            "service systemd stv3-yagi@global.service",
            "garbage line",
        ]
        .map(String::from),
    );
    facts.running.insert("stv3-pipeline-5".into(), false);
    let p = plan_host(
        &m,
        &facts,
        &pkg("1.0", "sha-1.0", &bins(OLD)),
        Some(&bins(OLD)),
    );
    let removed: Vec<(&str, FileAction)> = p
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.action))
        .collect();
    assert_eq!(
        removed,
        [
            ("/etc/stv3/yagi-old.conf", FileAction::Remove),
            ("/etc/init.d/stv3-yagi-old", FileAction::Remove),
            ("/etc/stv3/instances/stv3-yagi-old.env", FileAction::Remove),
            ("/etc/init.d/stv3-pipeline-5", FileAction::Remove),
        ]
    );
    let services: Vec<(&str, InitKind, bool)> = p
        .remove_services
        .iter()
        .map(|s| (s.name.as_str(), s.init, s.running))
        .collect();
    assert_eq!(
        services,
        [
            ("stv3-yagi-old", InitKind::Sysv, true),
            ("stv3-pipeline-5", InitKind::Sysv, false),
            ("stv3-yagi@global.service", InitKind::Systemd, true),
        ]
    );
    assert!(p.services.is_empty(), "nothing that stays restarts");
    assert!(!p.is_noop());
    let text = render_plan(&p, false);
    assert!(
        text.contains("Remove stv3-yagi-old: no longer in the inventory")
            && text.contains("file Remove /etc/stv3/yagi-old.conf"),
        "{text}"
    );
}

#[test]
fn provisioning_runs_when_its_stamp_changes() {
    let region = region_with_admin(None);
    let m = render_in(&region, "api1", InitKind::Sysv, 2);
    let stamp = "/etc/stv3/db-provisioned";
    let converged_plan =
        |f: &HostFactsFull| plan_host(&m, f, &pkg("1.0", "sha-1.0", &bins(OLD)), Some(&bins(OLD)));
    let facts = converged(&m);
    let p = converged_plan(&facts);
    assert!(p.is_noop() && !p.provision && !p.migrate, "{p:#?}");
    // A new password, user or client host set renders another stamp:
    // provision, then migrate (the database may be new), restart nothing.
    let mut f = facts.clone();
    f.files.get_mut(stamp).unwrap().as_mut().unwrap().sha256 = "old".into();
    let p = converged_plan(&f);
    assert!(p.provision && p.migrate && !p.switch, "{p:#?}");
    assert!(render_plan(&p, false)
        .contains("provision database winchester on db1.dfw.example.com:3306 as dbadmin"));
    // First deploy: no stamp yet.
    let mut f = facts.clone();
    *f.files.get_mut(stamp).unwrap() = None;
    assert!(converged_plan(&f).provision);
    // Without an admin credential there is no stamp and nothing to provision.
    let plain = model("api1");
    assert!(plain.file(stamp).is_none());
    let p = plan_host(
        &plain,
        &converged(&plain),
        &pkg("1.1", "x", &bins(OLD)),
        Some(&bins(OLD)),
    );
    assert!(!p.provision && p.migrate);
    assert!(render_plan(&p, false).contains("database not provisioned: no admin credential"));
}

#[test]
fn database_server_step_only_with_the_flag_and_only_when_missing_or_down() {
    let on = render_in(
        &example_region_with_db("      install_server: true\n"),
        "api1",
        InitKind::Sysv,
        2,
    );
    let off = model("api1");
    let same = pkg("1.0", "sha-1.0", &bins(OLD));
    let where_set = "inventory.yaml:18:23";
    let note = Some(
        "database.url connects to db1.dfw.example.com, not to api1 (10.20.0.21): make sure that name is this host"
            .to_string(),
    );
    // (model, the host's server: (installed, apt-get, accepts connections)) ->
    // the server step (None: nothing to do) and a line of the plan.
    let check = |m: &HostModel,
                 fact: Option<(bool, bool, bool)>,
                 want: Option<ServerChange>,
                 text: &str| {
        let mut facts = converged(m);
        facts.db_server = fact.map(|(installed, apt, up)| DbServerFact {
            package: "mariadb-server".into(),
            installed,
            apt,
            up,
        });
        let p = plan_host(m, &facts, &same, Some(&bins(OLD)));
        assert_eq!(p.server, want, "{fact:?}");
        assert_eq!(p.is_noop(), want.is_none(), "{fact:?}");
        let shown = render_plan(&p, false);
        assert!(shown.contains(text), "{fact:?}: `{text}` not in\n{shown}");
        if want.is_none() {
            assert!(!shown.contains("database server"), "{shown}");
        }
    };
    let step = |install: bool| {
        Some(ServerChange {
            package: "mariadb-server".into(),
            install,
            set_by: where_set.into(),
            note: note.clone(),
        })
    };
    // Without the flag, whatever the host has: nothing (and nothing asked).
    check(&off, None, None, "no changes");
    check(&off, Some((false, true, false)), None, "no changes");
    // Installed and running: a no-op.
    check(&on, Some((true, true, true)), None, "no changes");
    // Installed, down: enable and start it, no apt-get.
    check(
        &on,
        Some((true, true, false)),
        step(false),
        "database server: mariadb-server is installed but not accepting connections: enable and start it, wait until it accepts connections (database.install_server, inventory.yaml:18:23)",
    );
    // Missing (or no answer from the host): install, enable, start.
    for fact in [Some((false, true, false)), Some((false, true, true)), None] {
        check(
            &on,
            fact,
            step(true),
            "database server: install mariadb-server (apt-get), enable and start it, wait until it accepts connections (database.install_server, inventory.yaml:18:23)\n      note: database.url connects to db1.dfw.example.com",
        );
    }
    // Workers have no database step, flag or not.
    let w = render_in(
        &example_region_with_db("      install_server: true\n"),
        "worker1",
        InitKind::Sysv,
        2,
    );
    assert!(plan_host(&w, &converged(&w), &same, Some(&bins(OLD)))
        .server
        .is_none());
}

#[test]
fn database_server_refused_without_apt_get() {
    let on = render_in(
        &example_region_with_db("      install_server: true\n"),
        "api1",
        InitKind::Sysv,
        2,
    );
    let off = model("api1");
    let same = pkg("1.0", "sha-1.0", &bins(OLD));
    let why = |m: &HostModel, apt: bool, up: bool| {
        let mut facts = converged(m);
        facts.db_server = Some(DbServerFact {
            package: "mariadb-server".into(),
            installed: false,
            apt,
            up,
        });
        refusal(m, &facts, &plan_host(m, &facts, &same, Some(&bins(OLD))))
    };
    let msg = "api1: database.install_server is true (inventory.yaml:18:23) but api1 has no apt-get: stv3ctl installs mariadb-server only on Debian/Ubuntu; install and start the database server yourself and set database.install_server: false";
    assert_eq!(why(&on, false, false).as_deref(), Some(msg));
    // Refused even when a server runs there: the flag cannot be honoured.
    assert_eq!(why(&on, false, true).as_deref(), Some(msg));
    assert_eq!(why(&on, true, false), None);
    assert_eq!(why(&off, false, false), None);
    // The other refusal: a running version from another tarball.
    let mut facts = converged(&off);
    facts.releases.insert("1.0".into(), "sha-other".into());
    let p = plan_host(&off, &facts, &same, Some(&bins(OLD)));
    assert_eq!(
        refusal(&off, &facts, &p).as_deref(),
        Some("api1: version 1.0 is running there from a different tarball; bump the version")
    );
}
