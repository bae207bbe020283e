//! The inventory file as written (serde types). Every leaf that an operator
//! sets is `Spanned`, so the resolved model can say which line it came from.
//! Unknown keys are errors (D21: no configuration that looks meaningful but
//! does nothing).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryFile {
    /// One or several regions, by name.
    pub regions: BTreeMap<String, RegionRaw>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegionRaw {
    #[serde(default)]
    pub ssh: Option<SshRaw>,
    #[serde(default)]
    pub init: Option<S<String>>,
    #[serde(default)]
    pub keep_releases: Option<S<u32>>,
    #[serde(default)]
    pub paths: Option<PathsRaw>,
    #[serde(default)]
    pub database: Option<DatabaseRaw>,
    #[serde(default)]
    pub api: Option<ApiRaw>,
    #[serde(default)]
    pub ops: Option<OpsRaw>,
    #[serde(default)]
    pub retention: Option<RetentionRaw>,
    #[serde(default)]
    pub republish: Option<RepublishRaw>,
    #[serde(default)]
    pub health: Option<HealthRaw>,
    #[serde(default)]
    pub log_level: Option<S<String>>,
    #[serde(default)]
    pub cells: Vec<CellRaw>,
    #[serde(default)]
    pub hosts: Vec<HostRaw>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct SshRaw {
    pub user: Option<S<String>>,
    pub port: Option<S<u16>>,
    #[serde(rename = "become")]
    pub sudo: Option<S<bool>>,
    pub identity_file: Option<S<String>>,
    pub known_hosts: Option<S<String>>,
    pub connect_timeout_seconds: Option<S<u64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PathsRaw {
    pub opt: Option<S<String>>,
    pub etc: Option<S<String>>,
    pub log: Option<S<String>>,
    pub run: Option<S<String>>,
    pub lib: Option<S<String>>,
    pub initd: Option<S<String>>,
    pub systemd: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRaw {
    pub url: S<String>,
    pub password_secret: Option<S<String>>,
    /// The account the db role provisions and migrates with (D8).
    pub admin_user: Option<S<String>>,
    pub admin_password_secret: Option<S<String>>,
    /// MySQL host patterns the app user may connect from.
    pub client_hosts: Option<S<Vec<String>>>,
    /// Install (apt) and start the database server on the db host: `true`
    /// or `false`. Read as text so that a bad value is reported with its key.
    pub install_server: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ApiRaw {
    pub bind: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpsRaw {
    pub bind: Option<S<String>>,
    pub port_base: Option<S<u16>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetentionRaw {
    pub archive_days: Option<S<u32>>,
    pub log_days: Option<S<u32>>,
    pub trim_events_age: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RepublishRaw {
    pub cell: Option<S<String>>,
    pub exchange: Option<S<String>>,
    pub routing_key: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HealthRaw {
    pub settle_seconds: Option<S<u64>>,
    pub timeout_seconds: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellRaw {
    pub name: S<String>,
    pub rabbit: RabbitRaw,
    pub exchange: Option<S<String>>,
    pub queues: Option<Vec<QueueRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitRaw {
    pub url: S<String>,
    pub vhost: Option<S<String>>,
    pub password_secret: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRaw {
    pub name: S<String>,
    pub routing_key: S<String>,
    pub durable: Option<S<bool>>,
    pub max_messages: Option<S<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRaw {
    pub name: S<String>,
    pub address: Option<S<String>>,
    pub roles: S<Vec<String>>,
    pub port: Option<S<u16>>,
    pub user: Option<S<String>>,
    #[serde(rename = "become")]
    pub sudo: Option<S<bool>>,
    pub init: Option<S<String>>,
    pub pipeline_workers: Option<S<u32>>,
    pub ops_port_base: Option<S<u16>>,
}
