//! Rendering the example inventory: snapshot of every file each host gets
//! (insta), plus the rules the rendered files must follow (D1, D3, D9-D12, D20).

mod common;

use std::collections::BTreeMap;

use common::{assets, example_region, example_region_with_db, region_with_admin, render_in, root};
use stv3_deployer::deploy::facts::probes;
use stv3_deployer::deploy::render::{render_host, HostFacts, HostModel, ServerTask};
use stv3_deployer::deploy::roles::Assets;
use stv3_deployer::inventory::InitKind;

fn render(host: &str, init: InitKind, cores: u32) -> HostModel {
    render_in(&example_region(), host, init, cores)
}

fn uber_snapshot(m: &HostModel) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# host {} roles {:?} init {:?} pipeline_workers {}\n",
        m.host, m.roles, m.init, m.pipeline_workers
    ));
    for s in &m.services {
        out.push_str(&format!(
            "# service {} | sysv {} | {} {} | health {} | inputs {}\n",
            s.unit,
            s.sysv_name,
            s.binary,
            s.args.join(" "),
            s.health_addr,
            s.inputs.join(",")
        ));
    }
    for d in &m.dirs {
        out.push_str(&format!(
            "# dir {} {:o} {}:{}\n",
            d.path, d.mode, d.owner, d.group
        ));
    }
    if let Some(db) = &m.db {
        out.push_str(&format!(
            "# database step in {} (files {}) | migrate {} as {} | provision {}: {}\n",
            db.dir,
            db.files
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            db.migrate.join(" "),
            if db.run_as_root { "root" } else { "stv3" },
            db.provision,
            db.summary
        ));
    }
    for f in &m.files {
        out.push_str(&format!(
            "\n===== {} ({:o} {}:{}{}) from {}\n",
            f.path,
            f.mode,
            f.owner,
            f.group,
            if f.secret { ", secret" } else { "" },
            f.source
        ));
        out.push_str(&String::from_utf8_lossy(&f.content));
    }
    out
}

#[test]
fn snapshot_worker1_sysv() {
    insta::assert_snapshot!(
        "worker1_sysv",
        uber_snapshot(&render("worker1", InitKind::Sysv, 8))
    );
}

#[test]
fn snapshot_worker2_systemd() {
    insta::assert_snapshot!(
        "worker2_systemd",
        uber_snapshot(&render("worker2", InitKind::Systemd, 2))
    );
}

#[test]
fn snapshot_api1_sysv() {
    insta::assert_snapshot!(
        "api1_sysv",
        uber_snapshot(&render("api1", InitKind::Sysv, 2))
    );
}

#[test]
fn one_model_for_config_and_units() {
    for init in [InitKind::Sysv, InitKind::Systemd] {
        let m = render("worker1", init, 2);
        // D1: each yagi gets its own cell's config, and that file exists.
        for cell in ["global", "cell1"] {
            let s = m.services.iter().find(|s| s.instance == cell).unwrap();
            let conf = format!("/etc/stv3/yagi-{cell}.conf");
            assert_eq!(s.args, vec!["--config".to_string(), conf.clone()]);
            assert!(m.file(&conf).is_some());
            let env = m
                .file(&format!("/etc/stv3/instances/stv3-yagi-{cell}.env"))
                .unwrap();
            assert!(String::from_utf8_lossy(&env.content).contains(&format!("--config {conf}")));
        }
        // pipeline_workers: 4 from the inventory, not the core count.
        assert_eq!(m.services.iter().filter(|s| s.id == "pipeline").count(), 4);
    }
    // worker2 has no pipeline_workers: one per core.
    assert_eq!(
        render("worker2", InitKind::Sysv, 3)
            .services
            .iter()
            .filter(|s| s.id == "pipeline")
            .count(),
        3
    );
}

#[test]
fn secrets_are_0640_root_stv3_and_code_root_owned() {
    let m = render("api1", InitKind::Sysv, 2);
    let w = m.file("/etc/stv3/winchester.yaml").unwrap();
    assert_eq!(
        (w.mode, w.owner.as_str(), w.group.as_str(), w.secret),
        (0o640, "root", "stv3", true)
    );
    assert!(String::from_utf8_lossy(&w.content).contains("change-me-db-password"));
    let init = m.file("/etc/init.d/stv3-api").unwrap();
    assert_eq!((init.mode, init.owner.as_str()), (0o755, "root"));
    for d in &m.dirs {
        if d.path.starts_with("/opt/stv3") || d.path == "/etc/stv3" {
            assert_eq!(d.owner, "root", "{}", d.path);
        }
    }
    // D20: republish goes to the `global` cell's broker, not localhost.
    let p =
        String::from_utf8_lossy(&m.file("/etc/stv3/pipelines.yaml").unwrap().content).into_owned();
    assert!(
        p.contains("host: rabbit.global.dfw.example.com") && !p.contains("localhost"),
        "{p}"
    );
    // D7: migrations only on the db role.
    assert!(m.db.is_some());
    assert!(render("worker1", InitKind::Sysv, 2).db.is_none());
}

#[test]
fn region_in_archive_names() {
    let m = render("worker1", InitKind::Sysv, 2);
    let y =
        String::from_utf8_lossy(&m.file("/etc/stv3/yagi-cell1.conf").unwrap().content).into_owned();
    assert!(
        y.contains("filename_template = %Y%m%d-[[TIMESTAMP]]-dfw-cell1-stv3-[[CRC]].json"),
        "{y}"
    );
    assert!(y.contains("wrap_region = dfw"));
    assert!(y.contains("working_directory = /var/lib/stv3/archive/cell1/events"));
}

#[test]
fn ops_addresses_are_unique_per_host() {
    let m = render("worker1", InitKind::Sysv, 2);
    let mut seen = BTreeMap::new();
    for s in &m.services {
        assert!(
            seen.insert(s.ops_addr.clone(), s.unit.clone()).is_none(),
            "{} reused",
            s.ops_addr
        );
    }
}

#[test]
fn secret_diffs_are_redacted() {
    use stv3_deployer::deploy::plan::file_diff;
    let m = render("api1", InitKind::Sysv, 2);
    let w = m.file("/etc/stv3/winchester.yaml").unwrap();
    let old = String::from_utf8_lossy(&w.content)
        .replace("change-me-db-password", "old-secret-value")
        .replace("log_level: info", "log_level: debug");
    let d = file_diff(w, Some(old.as_bytes()));
    assert!(
        !d.contains("change-me-db-password") && !d.contains("old-secret-value"),
        "{d}"
    );
    assert!(
        d.contains("-log_level: debug") && d.contains("+log_level: info"),
        "{d}"
    );
    // Only the secret changed: say so without showing it.
    let old =
        String::from_utf8_lossy(&w.content).replace("change-me-db-password", "old-secret-value");
    let d = file_diff(w, Some(old.as_bytes()));
    assert!(
        d.contains("a secret value changed; redacted") && !d.contains("old-secret-value"),
        "{d}"
    );
}

#[test]
fn embedded_templates_and_roles_all_load() {
    let assets = Assets::from_dir(&root()).unwrap();
    for r in ["common", "worker", "api", "db"] {
        assets.role(r).unwrap();
    }
}

fn task_file(m: &HostModel, name: &str) -> String {
    let db = m.db.as_ref().unwrap();
    String::from_utf8_lossy(&db.files.iter().find(|f| f.name == name).unwrap().content).into_owned()
}

#[test]
fn db_role_provisions_a_least_privilege_app_user() {
    let assets = assets();
    let region = region_with_admin(None);
    // Default client hosts: the worker and api hosts' addresses.
    assert_eq!(
        region.database_clients,
        ["10.20.0.11", "10.20.0.12", "10.20.0.21"]
    );
    let facts = HostFacts {
        cores: 2,
        init: InitKind::Sysv,
    };
    let m = render_host(&assets, &region, region.host("api1").unwrap(), &facts).unwrap();
    let db = m.db.as_ref().unwrap();
    assert!(db.provision && db.run_as_root);
    assert_eq!(
        db.migrate,
        [
            "bin/winchester-db",
            "--config",
            "/etc/stv3/.dbtask/winchester.yaml",
            "upgrade"
        ]
    );
    let sql = task_file(&m, "provision.sql");
    insta::assert_snapshot!("db_provision_sql", sql);
    // Grants: DML on the app's database only, for each client host; nothing global.
    assert_eq!(
        sql.matches("GRANT SELECT, INSERT, UPDATE, DELETE ON `winchester`.* TO 'winchester'@")
            .count(),
        3
    );
    assert!(
        !sql.contains("*.*") && !sql.contains("ALL PRIVILEGES ON"),
        "{sql}"
    );
    // The admin credential: only in the task files, quoted for the mysql client.
    let cnf = task_file(&m, "admin.cnf");
    assert!(
        cnf.contains("user=\"dbadmin\"") && cnf.contains("password=\"admin-pw-\\\"q\\\"#1\""),
        "{cnf}"
    );
    assert!(
        cnf.contains("host=\"db1.dfw.example.com\"") && cnf.contains("port=3306"),
        "{cnf}"
    );
    let mig = task_file(&m, "winchester.yaml");
    assert!(
        mig.contains("mysql://dbadmin:admin-pw-%22q%22%231@db1.dfw.example.com:3306/winchester"),
        "{mig}"
    );
    for f in &m.files {
        let text = String::from_utf8_lossy(&f.content);
        assert!(
            !text.contains("admin-pw"),
            "{} holds the admin password",
            f.path
        );
    }
    // The services connect as the app user.
    let w =
        String::from_utf8_lossy(&m.file("/etc/stv3/winchester.yaml").unwrap().content).into_owned();
    assert!(
        w.contains(
            "mysql://winchester:app-pw-%27quoted%27%5Cx@db1.dfw.example.com:3306/winchester"
        ),
        "{w}"
    );
    // The stamp that makes a changed grant set or password re-provision: root-only.
    let stamp = m.file("/etc/stv3/db-provisioned").unwrap();
    assert_eq!(
        (stamp.mode, stamp.owner.as_str(), stamp.group.as_str()),
        (0o600, "root", "root")
    );
    assert!(!String::from_utf8_lossy(&stamp.content).contains("app-pw"));
    // Another password gives another stamp; other client hosts too.
    let other = region_with_admin(Some("[\"10.20.0.%\"]"));
    assert_eq!(other.database_clients, ["10.20.0.%"]);
    let m2 = render_host(&assets, &other, other.host("api1").unwrap(), &facts).unwrap();
    assert_ne!(
        m2.file("/etc/stv3/db-provisioned").unwrap().content,
        stamp.content
    );
    assert!(task_file(&m2, "provision.sql").contains("'winchester'@'10.20.0.%'"));
    // Workers have no database step.
    assert!(
        render_host(&assets, &region, region.host("worker1").unwrap(), &facts)
            .unwrap()
            .db
            .is_none()
    );
}

#[test]
fn without_an_admin_credential_nothing_is_provisioned() {
    let m = render("api1", InitKind::Sysv, 2);
    let db = m.db.as_ref().unwrap();
    assert!(!db.provision && db.stamp.is_none());
    assert!(db.summary.starts_with("not provisioned"), "{}", db.summary);
    assert_eq!(db.files.len(), 1, "only the migration config");
    assert!(task_file(&m, "winchester.yaml").contains("mysql://winchester:change-me-db-password@"));
    assert!(m.file("/etc/stv3/db-provisioned").is_none());
}

#[test]
fn a_changed_user_does_not_leak_the_old_password_in_diffs() {
    use stv3_deployer::deploy::plan::file_diff;
    let m = render("api1", InitKind::Sysv, 2);
    let w = m.file("/etc/stv3/winchester.yaml").unwrap();
    let old = String::from_utf8_lossy(&w.content).replace(
        "mysql://winchester:change-me-db-password@",
        "mysql://olduser:old-secret-value@",
    );
    let d = file_diff(w, Some(old.as_bytes()));
    assert!(
        !d.contains("old-secret-value") && !d.contains("change-me-db-password"),
        "{d}"
    );
}

#[test]
fn database_server_install_is_rendered_only_with_the_flag() {
    // Off (the example inventory): no server, and the facts do not ask about one.
    let m = render("api1", InitKind::Sysv, 2);
    assert_eq!(m.db.as_ref().unwrap().server, None);
    assert!(!probes(&m).iter().any(|p| p.starts_with("m:")));
    let mut region = example_region_with_db("      install_server: true\n");
    let want = |note: Option<&str>| ServerTask {
        package: "mariadb-server".into(),
        services: vec!["mariadb".into(), "mysql".into()],
        wait_seconds: 120,
        set_by: "inventory.yaml:18:23".into(),
        note: note.map(str::to_string),
    };
    for init in [InitKind::Sysv, InitKind::Systemd] {
        let m = render_in(&region, "api1", init, 2);
        assert_eq!(
            m.db.as_ref().unwrap().server,
            Some(want(Some(
                "database.url connects to db1.dfw.example.com, not to api1 (10.20.0.21): make sure that name is this host"
            )))
        );
        assert!(probes(&m).contains(&"m:mariadb-server".to_string()));
        // The installed files do not change: the step is not a file.
        assert_eq!(
            m.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            render("api1", init, 2)
                .files
                .iter()
                .map(|f| &f.path)
                .collect::<Vec<_>>()
        );
    }
    // Workers never get it.
    let w = render_in(&region, "worker1", InitKind::Sysv, 2);
    assert!(w.db.is_none() && !probes(&w).iter().any(|p| p.starts_with("m:")));
    // A URL that names the db host (or loopback): no note.
    for host in ["10.20.0.21", "api1", "127.0.0.1", "localhost"] {
        region.database.host = host.into();
        let m = render_in(&region, "api1", InitKind::Sysv, 2);
        assert_eq!(m.db.unwrap().server, Some(want(None)), "{host}");
    }
}
