//! `stv3-api`: serve the StackTach.v3 REST API (v1/v2) over the event store.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use stv3_api::config::{self, ApiConfig};
use stv3_api::params::Limits;
use stv3_api::query::{self, FilterStyle};
use stv3_api::{AppOptions, AppState};

#[derive(Debug, Parser)]
#[command(name = "stv3-api", version = stv3_telemetry::version_string(env!("CARGO_PKG_VERSION")),
          about = "StackTach.v3 REST API (quincy/quince compatible)")]
struct Cli {
    /// quincy.conf (INI, pointing at winchester.yaml) or a native .toml/.yaml config.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address (host:port or :port); overrides the config. Default 0.0.0.0:8000.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Database URL (mysql://user:pw@host/db, sqlite:///path.db); overrides the config.
    #[arg(long = "db", value_name = "URL", env = "STV3_API_DB")]
    db: Option<String>,
    /// Directory of .json.gz archives served under /v2/archives.
    #[arg(long, value_name = "DIR")]
    archive_dir: Option<PathBuf>,
    /// Require this bearer token (or X-Auth-Token / X-API-Key) on API requests.
    #[arg(long, env = "STV3_API_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Maximum page size (`limit` is clamped to it).
    #[arg(long)]
    max_limit: Option<u32>,
    /// Trait-filter SQL strategy (exists: scan by id and probe; in: start from the trait index).
    #[arg(long, value_parser = ["exists", "in"], default_value = "exists")]
    trait_filter: String,
    #[command(flatten)]
    log: stv3_telemetry::LogArgs,
}

fn effective_config(cli: &Cli) -> anyhow::Result<ApiConfig> {
    let mut cfg = match &cli.config {
        Some(p) => config::load(p)?,
        None => ApiConfig::default(),
    };
    if let Some(b) = &cli.bind {
        cfg.bind = config::parse_bind(b).map_err(|e| anyhow::anyhow!("--bind: {e}"))?;
    }
    if let Some(db) = &cli.db {
        cfg.database_url = Some(db.clone());
    }
    if let Some(d) = &cli.archive_dir {
        cfg.archive_dir = Some(d.clone());
    }
    if let Some(t) = &cli.auth_token {
        cfg.auth_token = Some(t.clone()).filter(|t| !t.is_empty());
    }
    if let Some(m) = cli.max_limit {
        if m == 0 {
            bail!("--max-limit must be at least 1");
        }
        cfg.max_limit = m;
        cfg.default_limit = cfg.default_limit.min(m);
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    stv3_telemetry::tune_allocator();
    stv3_telemetry::spawn_heap_trimmer();
    stv3_telemetry::init_logging(&cli.log);
    let cfg = effective_config(&cli)?;
    let Some(url) = cfg.database_url.clone() else {
        bail!("no database: give --db URL, or --config with database_url / winchester_config / [quince] winchester_config");
    };
    let style = if cli.trait_filter == "in" {
        FilterStyle::In
    } else {
        FilterStyle::Exists
    };
    let store = query::connect(&url, cfg.db_max_connections, style)
        .await
        .with_context(|| format!("opening database {}", query::url::redact(&url)))?;
    let state = AppState {
        store,
        limits: Limits {
            default: cfg.default_limit,
            max: cfg.max_limit,
        },
        archive_dir: cfg.archive_dir.clone(),
        versions: cfg.enabled_versions.clone(),
    };
    let app = stv3_api::build(AppOptions {
        state,
        auth_token: cfg.auth_token.clone(),
    });
    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .with_context(|| format!("binding {}", cfg.bind))?;
    tracing::info!(
        bind = %listener.local_addr()?,
        db = %query::url::redact(&url),
        versions = ?cfg.enabled_versions,
        auth = cfg.auth_token.is_some(),
        max_limit = cfg.max_limit,
        "stv3-api listening"
    );
    stv3_api::serve(listener, app, stv3_api::app::shutdown_signal()).await?;
    tracing::info!("stv3-api stopped");
    Ok(())
}
