//! Rendering the example inventory: snapshot of every file each host gets
//! (insta), plus the rules the rendered files must follow (D1, D3, D9-D12, D20).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stv3_deployer::deploy::render::{render_host, HostFacts, HostModel};
use stv3_deployer::deploy::roles::Assets;
use stv3_deployer::inventory::{self, InitKind, Region, SecretStore};

fn root() -> PathBuf {
    // STV3_REPO_ROOT: when the crate is built from outside the workspace.
    std::env::var("STV3_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn region() -> Region {
    let inv = inventory::load(&root().join("examples/inventory.yaml")).unwrap();
    let secrets =
        SecretStore::load(Some(&root().join("examples/secrets.example.yaml")), false).unwrap();
    inventory::resolve(&inv, "dfw", &secrets).unwrap()
}

fn render(host: &str, init: InitKind, cores: u32) -> HostModel {
    let assets = Assets::from_dir(&root()).unwrap();
    let region = region();
    render_host(
        &assets,
        &region,
        region.host(host).unwrap(),
        &HostFacts { cores, init },
    )
    .unwrap()
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
    assert!(m.migrate.is_some());
    assert!(render("worker1", InitKind::Sysv, 2).migrate.is_none());
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
