//! What the deploy tests share: the repository root and the example region
//! (`examples/inventory.yaml`), with or without a database admin credential.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stv3_deployer::deploy::render::{render_host, HostFacts, HostModel};
use stv3_deployer::deploy::roles::Assets;
use stv3_deployer::inventory::{self, InitKind, Region, SecretStore};

pub fn root() -> PathBuf {
    // STV3_REPO_ROOT: when the crate is built from outside the workspace.
    std::env::var("STV3_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

pub fn assets() -> Assets {
    Assets::from_dir(&root()).unwrap()
}

/// Region `dfw` of the example inventory with the example secrets.
pub fn example_region() -> Region {
    let inv = inventory::load(&root().join("examples/inventory.yaml")).unwrap();
    let secrets =
        SecretStore::load(Some(&root().join("examples/secrets.example.yaml")), false).unwrap();
    inventory::resolve(&inv, "dfw", &secrets).unwrap()
}

/// The example region with `extra` (YAML lines, indented for the
/// `database:` mapping) added to its `database:` section.
pub fn example_region_with_db(extra: &str) -> Region {
    let text = std::fs::read_to_string(root().join("examples/inventory.yaml")).unwrap();
    let text = text.replace(
        "      password_secret: database\n",
        &format!("      password_secret: database\n{extra}"),
    );
    let inv = inventory::parse(Path::new("inventory.yaml"), &text).unwrap();
    let secrets =
        SecretStore::load(Some(&root().join("examples/secrets.example.yaml")), false).unwrap();
    inventory::resolve(&inv, "dfw", &secrets).unwrap()
}

/// The example region with a database admin credential (D8), and optionally
/// `database.client_hosts` (a YAML flow list).
pub fn region_with_admin(client_hosts: Option<&str>) -> Region {
    let text = std::fs::read_to_string(root().join("examples/inventory.yaml")).unwrap();
    let mut db = "      password_secret: database\n      admin_user: dbadmin\n".to_string();
    if let Some(h) = client_hosts {
        db.push_str(&format!("      client_hosts: {h}\n"));
    }
    let text = text.replace("      password_secret: database\n", &db);
    let inv = inventory::parse(Path::new("inventory.yaml"), &text).unwrap();
    let secrets = SecretStore::from_values(
        [
            ("database", "app-pw-'quoted'\\x"),
            ("database_admin", "admin-pw-\"q\"#1"),
            ("rabbit_global", "rg-pw"),
            ("rabbit_cell1", "rc-pw"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        BTreeMap::new(),
        false,
    );
    inventory::resolve(&inv, "dfw", &secrets).unwrap()
}

/// Render `host` of `region`.
pub fn render_in(region: &Region, host: &str, init: InitKind, cores: u32) -> HostModel {
    render_host(
        &assets(),
        region,
        region.host(host).unwrap(),
        &HostFacts { cores, init },
    )
    .unwrap()
}
