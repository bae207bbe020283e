//! Inventory parsing and resolution: one `check` helper, a table of cases.

use super::*;
use std::collections::BTreeMap;

fn secrets() -> SecretStore {
    let mut v = BTreeMap::new();
    for (k, s) in [
        ("database", "db-pw-1"),
        ("rabbit_c1", "r1-pw"),
        ("rabbit_c2", "r2-pw"),
        ("special", "p@ss:w/rd"),
    ] {
        v.insert(k.to_string(), s.to_string());
    }
    SecretStore::from_values(v, BTreeMap::new(), false)
}

const BASE: &str = "regions:
  r1:
    database:
      url: mysql://winchester@db1:3306/winchester
    cells:
      - name: c1
        rabbit: {url: amqp://stv3@rabbit1}
      - name: c2
        rabbit: {url: amqp://stv3@rabbit2:5673, vhost: /c2}
    hosts:
      - {name: w1, roles: [worker], pipeline_workers: 3}
      - {name: a1, address: 10.0.0.5, roles: [api, db], port: 2222}
";

fn check(yaml: &str, expected: Result<&dyn Fn(&Region), &str>) {
    let result = parse(Path::new("inv.yaml"), yaml).and_then(|inv| resolve(&inv, "r1", &secrets()));
    match (result, expected) {
        (Ok(region), Ok(f)) => f(&region),
        (Err(e), Err(msg)) => assert!(
            e.to_string().contains(msg),
            "error `{e}` does not contain `{msg}`"
        ),
        (Ok(_), Err(msg)) => panic!("expected an error containing `{msg}`"),
        (Err(e), Ok(_)) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn resolves_defaults_and_values() {
    check(
        BASE,
        Ok(&|r: &Region| {
            assert_eq!(r.cells.len(), 2);
            assert_eq!(r.cells[0].rabbit.host, "rabbit1");
            assert_eq!(r.cells[0].rabbit.port, 5672);
            assert_eq!(r.cells[1].rabbit.port, 5673);
            assert_eq!(r.cells[1].vhost, "/c2");
            assert_eq!(r.cells[0].queues[0].name, "monitor.info3");
            assert_eq!(r.cells[0].queues[0].routing_key, "monitor.info");
            assert_eq!(r.cells[0].queues[0].max_messages, DEFAULT_MAX_MESSAGES);
            assert_eq!(r.cells[0].rabbit.password.expose(), "r1-pw");
            assert_eq!(
                r.database.with_password(),
                "mysql://winchester:db-pw-1@db1:3306/winchester"
            );
            assert_eq!(
                r.database.redacted(),
                "mysql://winchester:<redacted>@db1:3306/winchester"
            );
            assert_eq!(r.hosts[0].address, "w1");
            assert_eq!(r.hosts[0].pipeline_workers, Some(3));
            assert_eq!(r.hosts[1].roles, vec![RoleName::Db, RoleName::Api]);
            assert_eq!(r.hosts[1].port, 2222);
            assert_eq!(r.republish.cell, "c1");
            assert_eq!(r.paths.etc, "/etc/stv3");
            assert_eq!(r.api_bind, "0.0.0.0:8000");
        }),
    );
}

#[test]
fn provenance_names_lines_defaults_and_secrets() {
    check(
        BASE,
        Ok(&|r: &Region| {
            let find = |k: &str| {
                r.provenance
                    .iter()
                    .find(|p| p.key == k)
                    .unwrap_or_else(|| panic!("no {k}"))
            };
            assert_eq!(
                find("cells[1].rabbit.vhost").origin.to_string(),
                "inv.yaml:9:56"
            );
            assert_eq!(find("api.bind").origin, Origin::Default);
            assert_eq!(
                find("cells[0].rabbit.password").origin.to_string(),
                "secrets file <memory> key rabbit_c1"
            );
            assert_eq!(find("cells[0].rabbit.password").value, "<redacted>");
            assert_eq!(find("hosts[0].pipeline_workers").value, "3");
            let json = serde_json::to_string(r).unwrap();
            assert!(
                !json.contains("db-pw-1") && !json.contains("r1-pw"),
                "secret leaked into JSON"
            );
        }),
    );
}

#[test]
fn error_table() {
    let cases: &[(&str, &str)] = &[
        (
            &BASE.replace(
                "rabbit: {url: amqp://stv3@rabbit1}",
                "rabbit: {url: amqp://stv3@rabbit1}\n        queues: [{name: q, routing_key: k, max_messages: 0}]",
            ),
            "inv.yaml:8: cells[0].queues[0].max_messages: max_messages is 1 to 20000",
        ),
        (
            &BASE.replace("amqp://stv3@rabbit1", "amqp://stv3:guest@rabbit1"),
            "inv.yaml:7: cells[0].rabbit.url: passwords do not belong in the inventory",
        ),
        (
            &BASE.replace("roles: [worker]", "roles: [wrker]"),
            "inv.yaml:11: hosts[0].roles: unknown role `wrker`",
        ),
        (
            &BASE.replace("pipeline_workers: 3", "pipeline_workers: 0"),
            "hosts[0].pipeline_workers: must be at least 1",
        ),
        (&BASE.replace("name: c2", "name: c1"), "duplicate cell `c1`"),
        (
            &BASE.replace("roles: [api, db]", "roles: [api]"),
            "no host has role `db`",
        ),
        (
            &BASE.replace("mysql://winchester@db1", "postgres://winchester@db1"),
            "scheme `postgres`",
        ),
        (
            &BASE.replace("    cells:", "    cellz: 1\n    cells:"),
            "inv.yaml",
        ),
        (
            &BASE.replace(
                "rabbit: {url: amqp://stv3@rabbit1}",
                "rabbit: {url: amqp://stv3@rabbit1, password_secret: nope}",
            ),
            "secret `nope` (needed by cells[0].rabbit.url) is missing: set STV3_SECRET_NOPE",
        ),
        (&BASE.replace("port: 2222", "port: notaport"), "inv.yaml"),
        (
            &format!("{BASE}    init: upstart\n"),
            "init: expected auto, systemd or sysv",
        ),
    ];
    for (yaml, msg) in cases {
        check(yaml, Err(msg));
    }
}

#[test]
fn unknown_key_error_names_line_and_key() {
    let yaml = BASE.replace("    cells:", "    cellz: 1\n    cells:");
    let err = parse(Path::new("inv.yaml"), &yaml).unwrap_err().to_string();
    assert!(err.contains("cellz"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    eprintln!("{err}");
}

#[test]
fn insecure_default_refused() {
    let mut v = BTreeMap::new();
    v.insert("database".to_string(), "testpasswd".to_string());
    let inv = parse(Path::new("inv.yaml"), BASE).unwrap();
    let err = resolve(
        &inv,
        "r1",
        &SecretStore::from_values(v, BTreeMap::new(), false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("known default password"), "{err}");
}

#[test]
fn unknown_region() {
    let inv = parse(Path::new("inv.yaml"), BASE).unwrap();
    let err = resolve(&inv, "nope", &secrets()).unwrap_err().to_string();
    assert!(
        err.contains("region `nope` is not in the inventory (regions: r1)"),
        "{err}"
    );
}

#[test]
fn password_is_percent_encoded() {
    let yaml = BASE.replace(
        "url: mysql://winchester@db1:3306/winchester",
        "url: mysql://winchester@db1:3306/winchester\n      password_secret: special",
    );
    check(
        &yaml,
        Ok(&|r: &Region| {
            assert_eq!(
                r.database.with_password(),
                "mysql://winchester:p%40ss%3Aw%2Frd@db1:3306/winchester"
            )
        }),
    );
}

#[test]
fn example_inventory_resolves() {
    let root = std::env::var("STV3_REPO_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let inv = load(&root.join("examples/inventory.yaml")).unwrap();
    let store =
        SecretStore::load(Some(&root.join("examples/secrets.example.yaml")), false).unwrap();
    let r = resolve(&inv, "dfw", &store).unwrap();
    assert_eq!(
        r.cells.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["global", "cell1"]
    );
    assert_eq!(r.hosts.len(), 3);
}

#[test]
fn sqlite_database_needs_no_secret() {
    let yaml = BASE.replace(
        "mysql://winchester@db1:3306/winchester",
        "sqlite:///var/lib/stv3/stv3.db",
    );
    check(
        &yaml,
        Ok(&|r: &Region| {
            assert_eq!(r.database.with_password(), "sqlite:///var/lib/stv3/stv3.db");
            assert!(r.provenance.iter().all(|p| p.key != "database.password"));
        }),
    );
}

#[test]
fn database_admin_and_client_hosts() {
    // No admin secret: nothing provisions; the clients are the worker and api hosts.
    check(
        BASE,
        Ok(&|r: &Region| {
            assert!(r.database_admin.is_none());
            assert_eq!(r.database_clients, ["w1", "10.0.0.5"]);
            let p = r
                .provenance
                .iter()
                .find(|p| p.key == "database.admin_password")
                .unwrap();
            assert!(p.value.contains("not set"), "{}", p.value);
        }),
    );
    // With the admin secret (default name `database_admin`) and explicit clients.
    let yaml = BASE.replace(
        "url: mysql://winchester@db1:3306/winchester",
        "url: mysql://winchester@db1:3306/winchester\n      admin_user: dba\n      client_hosts: ['10.0.0.%', localhost]",
    );
    let mut v = BTreeMap::new();
    for (k, s) in [
        ("database", "db-pw-1"),
        ("database_admin", "adm-pw-1"),
        ("rabbit_c1", "r1-pw"),
        ("rabbit_c2", "r2-pw"),
    ] {
        v.insert(k.to_string(), s.to_string());
    }
    let inv = parse(Path::new("inv.yaml"), &yaml).unwrap();
    let r = resolve(
        &inv,
        "r1",
        &SecretStore::from_values(v.clone(), BTreeMap::new(), false),
    )
    .unwrap();
    let admin = r.database_admin.as_ref().unwrap();
    assert_eq!(
        (admin.user.as_str(), admin.password.expose()),
        ("dba", "adm-pw-1")
    );
    assert_eq!(r.database_clients, ["10.0.0.%", "localhost"]);
    assert!(!serde_json::to_string(&r).unwrap().contains("adm-pw-1"));
    // A known default admin password is refused like any other secret.
    v.insert("database_admin".into(), "password".into());
    let err = resolve(
        &inv,
        "r1",
        &SecretStore::from_values(v, BTreeMap::new(), false),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("known default password"), "{err}");
    // Loopback hosts are `localhost` and `127.0.0.1` to MySQL.
    check(
        &BASE.replace("address: 10.0.0.5", "address: 127.0.0.1"),
        Ok(&|r: &Region| assert_eq!(r.database_clients, ["w1", "localhost", "127.0.0.1"])),
    );
    for bad in ["[]", "[\"x'y\"]"] {
        check(
            &BASE.replace(
                "url: mysql://winchester@db1:3306/winchester",
                &format!("url: mysql://winchester@db1:3306/winchester\n      client_hosts: {bad}"),
            ),
            Err("database.client_hosts: a non-empty list of MySQL host patterns"),
        );
    }
}

#[test]
fn database_install_server_flag() {
    let with = |v: &str| {
        BASE.replace(
            "url: mysql://winchester@db1:3306/winchester",
            &format!("url: mysql://winchester@db1:3306/winchester\n      install_server: {v}"),
        )
    };
    // Off unless asked for.
    check(
        BASE,
        Ok(&|r: &Region| {
            assert!(!r.database_install_server);
            assert_eq!(r.origin("database.install_server"), Some(&Origin::Default));
        }),
    );
    for (v, want) in [("true", true), ("false", false), ("True", true)] {
        check(
            &with(v),
            Ok(&|r: &Region| {
                assert_eq!(r.database_install_server, want, "{v}");
                assert_eq!(
                    r.origin("database.install_server").unwrap().to_string(),
                    "inv.yaml:5:23"
                );
            }),
        );
    }
    // A bad value names the file, the line and the key.
    for v in ["maybe", "yes", "1"] {
        check(
            &with(v),
            Err(&format!(
                "inv.yaml:5: database.install_server: expected true or false, not `{v}`"
            )),
        );
    }
    // SQLite has no server to install.
    check(
        &with("true").replace(
            "mysql://winchester@db1:3306/winchester",
            "sqlite:///var/lib/stv3/stv3.db",
        ),
        Err("inv.yaml:5: database.install_server: a sqlite database.url has no server to install"),
    );
}
