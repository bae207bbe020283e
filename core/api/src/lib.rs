//! quincy/quince: the stv3 REST API (v1/v2 wire-compatible) on axum.
//!
//! * [`config`]: quincy.conf INI (→ winchester.yaml `database.url`) or native TOML/YAML.
//! * [`query`]: the API's read layer ([`query::ApiStore`]) over MySQL/MariaDB and SQLite.
//! * [`params`] / [`wire`]: query-parameter parsing and the `__type__` JSON format (pure).
//! * [`routes`]: the v1/v2 handlers; [`archives`]: `/v2/archives`; [`openapi`]: `/openapi.json`.
//! * [`app`]: middleware (auth, metrics, request log), graceful shutdown.

pub mod app;
pub mod archives;
pub mod config;
pub mod error;
pub mod model;
pub mod openapi;
pub mod params;
pub mod query;
pub mod routes;
pub mod testkit;
pub mod ui;
pub mod wire;

pub use app::{build, serve, spawn, AppOptions};
pub use config::ApiConfig;
pub use routes::AppState;
