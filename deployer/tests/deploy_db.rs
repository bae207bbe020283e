//! The db role's database step (D8) against the real MariaDB, through the
//! local transport (the same script the SSH transport runs on a db host):
//! the admin creates the database and the app user with DML on that
//! database only; provisioning again converges (a new password, and grants
//! someone widened are cut back); the migrations run as the admin; the
//! admin credential is gone from the host afterwards. With
//! `database.install_server`, this machine's server (the Debian package,
//! running) is seen as installed and running and left alone.
//!
//! Needs MariaDB (`STV3_TEST_MYSQL_URL`, default root without password on
//! 127.0.0.1:3306) and the mysql client. The migration part needs
//! `winchester-db` built (`cargo build --workspace`; `cargo test --workspace`
//! builds it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use stv3_deployer::deploy::plan::{plan_host, PackageInfo};
use stv3_deployer::deploy::render::{render_host, HostFacts};
use stv3_deployer::deploy::{apply, facts};
use stv3_deployer::inventory::{self, InitKind, Region, SecretStore};
use stv3_deployer::transport::local::LocalTransport;
use stv3_testsupport::{require, scratch_name, Service};

/// `(host, port)` of the MariaDB URL.
fn server(url: &str) -> (String, u16) {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest
        .split('/')
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(3306)),
        None => (hostport.to_string(), 3306),
    }
}

/// Run `sql` with the mysql client as `user` (password `pw`, root: none);
/// `Ok(stdout)` or `Err(stderr)`.
fn mysql(
    srv: &(String, u16),
    user: &str,
    pw: Option<&str>,
    db: Option<&str>,
    sql: &str,
) -> Result<String, String> {
    let mut cmd = Command::new("mysql");
    cmd.args(["--batch", "--skip-column-names", "-h", &srv.0, "-P"])
        .arg(srv.1.to_string())
        .args(["-u", user, "-e", sql]);
    if let Some(db) = db {
        cmd.arg(db);
    }
    match pw {
        Some(p) => cmd.env("MYSQL_PWD", p),
        None => cmd.env_remove("MYSQL_PWD"),
    };
    let out = cmd.output().expect("the mysql client");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn region(
    dir: &Path,
    srv: &(String, u16),
    db: &str,
    app: &str,
    admin: &str,
    app_pw: &str,
    install_server: bool,
) -> Region {
    let d = dir.display();
    let yaml = format!(
        "regions:
  t:
    init: sysv
    paths: {{opt: {d}/opt, etc: {d}/etc, log: {d}/log, run: {d}/run, lib: {d}/lib, initd: {d}/initd, systemd: {d}/systemd}}
    database:
      url: mysql://{app}@{host}:{port}/{db}
      admin_user: {admin}
      client_hosts: ['127.0.0.1', localhost]
      install_server: {install_server}
    cells:
      - name: c1
        rabbit: {{url: 'amqp://stv3@127.0.0.1:5672'}}
    hosts:
      - {{name: dbhost, address: localhost, roles: [db, api, worker], pipeline_workers: 1}}
",
        host = srv.0,
        port = srv.1
    );
    let inv = inventory::parse(Path::new("inventory.yaml"), &yaml).unwrap();
    let secrets = SecretStore::from_values(
        [
            ("database", app_pw),
            ("database_admin", ADMIN_PW),
            ("rabbit_c1", "unused-rabbit-pw"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        Default::default(),
        false,
    );
    inventory::resolve(&inv, "t", &secrets).unwrap()
}

/// Quotes, a backslash, `#` and a space: the option file the step writes must carry it intact.
const ADMIN_PW: &str = "adm-\"pw\"#\\x'4 d8";

/// `s` as a MySQL string literal body.
fn sql_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "''")
}

fn winchester_db() -> Option<PathBuf> {
    let bin = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| common::root().join("target"))
        .join("debug/winchester-db");
    bin.exists().then_some(bin)
}

/// The app user's grants, one per line, sorted.
fn grants(srv: &(String, u16), app: &str) -> Vec<String> {
    let mut g: Vec<String> = mysql(
        srv,
        "root",
        None,
        None,
        &format!("SHOW GRANTS FOR '{app}'@'127.0.0.1'"),
    )
    .unwrap()
    .lines()
    .map(|l| l.split(" IDENTIFIED BY").next().unwrap_or(l).to_string())
    .collect();
    g.sort();
    g
}

#[test]
fn db_step_provisions_least_privilege_and_migrates_as_the_admin() {
    let Some(url) = require(
        Service::MariaDb,
        "db_step_provisions_least_privilege_and_migrates_as_the_admin",
    ) else {
        return;
    };
    let srv = server(&url);
    let db = scratch_name("d8");
    let app = format!("{db}_app");
    let admin = format!("{db}_adm");
    let cleanup = |srv: &(String, u16)| {
        let _ = mysql(srv, "root", None, None, &format!(
            "DROP DATABASE IF EXISTS `{db}`; DROP USER IF EXISTS '{app}'@'127.0.0.1', '{app}'@'localhost', '{admin}'@'127.0.0.1', '{admin}'@'localhost'"
        ));
    };
    cleanup(&srv);
    // An admin that may create users and do anything on this database only.
    let apw = sql_escape(ADMIN_PW);
    mysql(&srv, "root", None, None, &format!(
        "CREATE USER '{admin}'@'127.0.0.1' IDENTIFIED BY '{apw}';
         CREATE USER '{admin}'@'localhost' IDENTIFIED BY '{apw}';
         GRANT CREATE USER ON *.* TO '{admin}'@'127.0.0.1', '{admin}'@'localhost';
         GRANT ALL PRIVILEGES ON `{db}`.* TO '{admin}'@'127.0.0.1', '{admin}'@'localhost' WITH GRANT OPTION"
    )).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let pw1 = "app-pw-1'\"\\#x";
    let r = region(dir.path(), &srv, &db, &app, &admin, pw1, false);
    let facts = HostFacts {
        cores: 1,
        init: InitKind::Sysv,
    };
    let model = render_host(&common::assets(), &r, r.host("dbhost").unwrap(), &facts).unwrap();
    let task_dir = model.db.as_ref().unwrap().dir.clone();
    let migrate = match winchester_db() {
        Some(bin) => {
            let rel = dir.path().join("opt/releases/t1/bin");
            std::fs::create_dir_all(&rel).unwrap();
            std::os::unix::fs::symlink(bin, rel.join("winchester-db")).unwrap();
            true
        }
        None => {
            eprintln!("winchester-db is not built: the migration part is not exercised (cargo build --workspace)");
            false
        }
    };
    for d in ["lib", "etc"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let mut t = LocalTransport::new("dbhost");

    // 1. Provision (and migrate).
    let steps = apply::DbSteps {
        provision: true,
        migrate,
        ..Default::default()
    };
    let out = apply::database(&mut t, &r, &model, "t1", steps).unwrap();
    assert!(out.contains("database provisioned"), "{out}");
    let want = vec![
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO `{app}`@`127.0.0.1`"),
        format!("GRANT USAGE ON *.* TO `{app}`@`127.0.0.1`"),
    ];
    assert_eq!(grants(&srv, &app), want);
    assert!(
        !Path::new(&task_dir).exists(),
        "the admin credential must not stay on the host"
    );
    // The app user reads and writes, but cannot change the schema or see other databases.
    mysql(&srv, &app, Some(pw1), Some(&db), "SELECT 1").unwrap();
    let err = mysql(
        &srv,
        &app,
        Some(pw1),
        Some(&db),
        "CREATE TABLE d8_probe (x INT)",
    )
    .unwrap_err();
    assert!(err.contains("denied"), "{err}");
    let err = mysql(&srv, &app, Some(pw1), Some("mysql"), "SELECT 1").unwrap_err();
    assert!(err.contains("denied"), "{err}");
    if migrate {
        let n = mysql(
            &srv,
            &app,
            Some(pw1),
            Some(&db),
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1",
        )
        .unwrap();
        assert!(
            n.trim().parse::<u32>().unwrap() > 0,
            "migrations applied: {n}"
        );
        mysql(&srv, &app, Some(pw1), Some(&db), "INSERT INTO event_type (`desc`) VALUES ('d8.probe'); DELETE FROM event_type WHERE `desc` = 'd8.probe'").unwrap();
        let err = mysql(
            &srv,
            &app,
            Some(pw1),
            Some(&db),
            "ALTER TABLE event_type ADD COLUMN d8 INT",
        )
        .unwrap_err();
        assert!(err.contains("denied"), "{err}");
    }

    // 2. Someone widened the grants; a new password: provisioning converges.
    mysql(
        &srv,
        "root",
        None,
        None,
        &format!("GRANT ALL PRIVILEGES ON *.* TO '{app}'@'127.0.0.1'"),
    )
    .unwrap();
    let pw2 = "app-pw-2-rotated";
    let r2 = region(dir.path(), &srv, &db, &app, &admin, pw2, false);
    let model2 = render_host(&common::assets(), &r2, r2.host("dbhost").unwrap(), &facts).unwrap();
    assert_ne!(
        model
            .file(&format!("{}/etc/db-provisioned", dir.path().display()))
            .unwrap()
            .content,
        model2
            .file(&format!("{}/etc/db-provisioned", dir.path().display()))
            .unwrap()
            .content,
        "a new password re-provisions"
    );
    apply::database(&mut t, &r2, &model2, "t1", steps).unwrap();
    assert_eq!(grants(&srv, &app), want);
    mysql(&srv, &app, Some(pw2), Some(&db), "SELECT 1").unwrap();
    assert!(
        mysql(&srv, &app, Some(pw1), Some(&db), "SELECT 1").is_err(),
        "the old password still works"
    );

    // 3. A wrong admin password fails the step with the client's message.
    let mut bad = r2.clone();
    bad.database_admin.as_mut().unwrap().password =
        stv3_deployer::inventory::Secret::new("database_admin", "wrong-admin-pw");
    let model3 = render_host(&common::assets(), &bad, bad.host("dbhost").unwrap(), &facts).unwrap();
    let provision_only = apply::DbSteps {
        provision: true,
        ..Default::default()
    };
    let err = apply::database(&mut t, &bad, &model3, "t1", provision_only).unwrap_err();
    assert!(err.contains("Access denied"), "{err}");
    assert!(!err.contains("wrong-admin-pw"), "{err}");
    assert!(!Path::new(&task_dir).exists());

    cleanup(&srv);
}

#[test]
fn installed_and_running_server_is_left_alone() {
    let Some(url) = require(
        Service::MariaDb,
        "installed_and_running_server_is_left_alone",
    ) else {
        return;
    };
    // Only where the server here is the Debian package: the step would
    // otherwise want to install it, and this test never installs anything.
    let packaged = Command::new("dpkg")
        .args(["-s", "mariadb-server"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("Status: install ok installed")
        });
    if !packaged {
        eprintln!("skipped: mariadb-server is not an installed dpkg package on this machine");
        return;
    }
    let srv = server(&url);
    let dir = tempfile::tempdir().unwrap();
    let r = region(
        dir.path(),
        &srv,
        "unused",
        "unused_app",
        "unused_adm",
        "pw-unused",
        true,
    );
    let model = render_host(
        &common::assets(),
        &r,
        r.host("dbhost").unwrap(),
        &HostFacts {
            cores: 1,
            init: InitKind::Sysv,
        },
    )
    .unwrap();
    for d in ["lib", "etc"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let mut t = LocalTransport::new("dbhost");
    // The facts: installed (dpkg), apt-get present, accepting connections.
    let f = facts::gather(&mut t, &r.paths, true, &facts::probes(&model)).unwrap();
    let s = f.db_server.clone().unwrap();
    assert_eq!(
        (s.package.as_str(), s.installed, s.apt, s.up),
        ("mariadb-server", true, true, true)
    );
    // So the plan has no server step...
    let pkg = PackageInfo {
        version: "t1".into(),
        sha256: "sha-t1".into(),
        binaries: Default::default(),
    };
    assert!(plan_host(&model, &f, &pkg, None).server.is_none());
    // ...and the step, run anyway, only looks (its init.d dir is a scratch
    // one, so it could not even start anything).
    let steps = apply::DbSteps {
        server: true,
        ..Default::default()
    };
    let out = apply::database(&mut t, &r, &model, "t1", steps).unwrap();
    assert!(
        out.contains("server: mariadb-server installed and running (unchanged)"),
        "{out}"
    );
}
