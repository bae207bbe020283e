//! stv3-api configuration. Two file forms:
//!
//! * the original **quincy.conf** INI (`[global] enabled_versions=1,2`,
//!   `[quince] winchester_config=/etc/stv3/winchester.yaml`), from which we read
//!   only `database.url` of winchester.yaml; an optional `[stv3]` section may
//!   carry the native keys below;
//! * a native **TOML** (`.toml`) or **YAML** (`.yaml`/`.yml`) file with `bind`,
//!   `database_url` (or `winchester_config`), `auth_token`, `max_limit`,
//!   `default_limit`, `archive_dir`, `enabled_versions`, `db_max_connections`.
//!
//! Loading is pure apart from reading the named files; errors name the file and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: key {key}: {message}")]
    Key {
        path: String,
        key: String,
        message: String,
    },
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub bind: SocketAddr,
    pub database_url: Option<String>,
    pub auth_token: Option<String>,
    pub default_limit: u32,
    pub max_limit: u32,
    pub archive_dir: Option<PathBuf>,
    pub enabled_versions: Vec<u8>,
    pub db_max_connections: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 8000)),
            database_url: None,
            auth_token: None,
            default_limit: 200,
            max_limit: 1000,
            archive_dir: None,
            enabled_versions: vec![1, 2],
            db_max_connections: 32,
        }
    }
}

/// Native keys (TOML/YAML, or the `[stv3]` INI section).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeFile {
    bind: Option<String>,
    database_url: Option<String>,
    winchester_config: Option<String>,
    auth_token: Option<String>,
    default_limit: Option<u32>,
    max_limit: Option<u32>,
    archive_dir: Option<String>,
    enabled_versions: Option<Vec<u8>>,
    db_max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct WinchesterYaml {
    database: Option<WinchesterDb>,
}

#[derive(Debug, Default, Deserialize)]
struct WinchesterDb {
    url: Option<String>,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Read `database.url` from a winchester.yaml (all other keys are ignored).
pub fn winchester_database_url(path: &Path) -> Result<String, ConfigError> {
    let text = read(path)?;
    let p = path.display().to_string();
    let doc: WinchesterYaml = serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
        path: p.clone(),
        message: e.to_string(),
    })?;
    doc.database
        .and_then(|d| d.url)
        .ok_or_else(|| ConfigError::Key {
            path: p,
            key: "database.url".into(),
            message: "missing".into(),
        })
}

/// Resolve a path named inside a config file: as given (the original resolved
/// it against the working directory), else relative to the config file's directory.
fn resolve(named: &str, config_file: &Path) -> PathBuf {
    let p = PathBuf::from(named);
    if p.is_absolute() || p.exists() {
        return p;
    }
    config_file
        .parent()
        .map(|d| d.join(&p))
        .filter(|c| c.exists())
        .unwrap_or(p)
}

fn apply_native(cfg: &mut ApiConfig, n: NativeFile, file: &Path) -> Result<(), ConfigError> {
    let p = file.display().to_string();
    if let Some(b) = n.bind {
        cfg.bind = parse_bind(&b).map_err(|message| ConfigError::Key {
            path: p.clone(),
            key: "bind".into(),
            message,
        })?;
    }
    if let Some(w) = n.winchester_config {
        cfg.database_url = Some(winchester_database_url(&resolve(&w, file))?);
    }
    if let Some(u) = n.database_url {
        cfg.database_url = Some(u);
    }
    if n.auth_token.is_some() {
        cfg.auth_token = n.auth_token.filter(|t| !t.is_empty());
    }
    if let Some(v) = n.default_limit {
        cfg.default_limit = v;
    }
    if let Some(v) = n.max_limit {
        if v == 0 {
            return Err(ConfigError::Key {
                path: p,
                key: "max_limit".into(),
                message: "must be at least 1".into(),
            });
        }
        cfg.max_limit = v;
    }
    if let Some(d) = n.archive_dir {
        cfg.archive_dir = Some(resolve(&d, file));
    }
    if let Some(v) = n.enabled_versions {
        check_versions(&v).map_err(|message| ConfigError::Key {
            path: p.clone(),
            key: "enabled_versions".into(),
            message,
        })?;
        cfg.enabled_versions = v;
    }
    if let Some(v) = n.db_max_connections {
        cfg.db_max_connections = v.max(1);
    }
    Ok(())
}

fn check_versions(v: &[u8]) -> Result<(), String> {
    if v.is_empty() {
        return Err("at least one version is needed".into());
    }
    match v.iter().find(|x| !matches!(x, 1 | 2)) {
        Some(bad) => Err(format!("unsupported API version {bad} (1 and 2 exist)")),
        None => Ok(()),
    }
}

/// `host:port`, `:port` or a bare port.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let s = s.replace("localhost", "127.0.0.1");
    s.parse().map_err(|_| format!("{s:?} is not host:port"))
}

/// Strip a ConfigParser inline comment (`value ; comment`).
fn ini_value(v: &str) -> &str {
    let cut = [" ;", "\t;", " #", "\t#"]
        .iter()
        .filter_map(|m| v.find(m))
        .min();
    match cut {
        Some(i) => v[..i].trim(),
        None => v.trim(),
    }
}

fn load_ini(cfg: &mut ApiConfig, text: &str, file: &Path) -> Result<(), ConfigError> {
    let p = file.display().to_string();
    let ini = ini::Ini::load_from_str_noescape(text).map_err(|e| ConfigError::Parse {
        path: p.clone(),
        message: e.to_string(),
    })?;
    if let Some(v) = ini.get_from(Some("global"), "enabled_versions") {
        let mut versions = Vec::new();
        for part in ini_value(v)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let n: u8 = part.parse().map_err(|_| ConfigError::Key {
                path: p.clone(),
                key: "global.enabled_versions".into(),
                message: format!("{part:?} is not a version number"),
            })?;
            versions.push(n);
        }
        check_versions(&versions).map_err(|message| ConfigError::Key {
            path: p.clone(),
            key: "global.enabled_versions".into(),
            message,
        })?;
        cfg.enabled_versions = versions;
    } else {
        // quincy's default when a config file is given without the key.
        cfg.enabled_versions = vec![1];
    }
    for key in ["v1_impl", "v2_impl"] {
        if let Some(v) = ini.get_from(Some("global"), key) {
            let v = ini_value(v);
            if !v.starts_with("quince.") {
                tracing::warn!(file = %p, key, value = v, "impl ignored: stv3-api always serves the database (quince) implementation");
            }
        }
    }
    if let Some(w) = ini.get_from(Some("quince"), "winchester_config") {
        let path = resolve(ini_value(w), file);
        let url = winchester_database_url(&path).map_err(|e| ConfigError::Key {
            path: p.clone(),
            key: "quince.winchester_config".into(),
            message: e.to_string(),
        })?;
        cfg.database_url = Some(url);
    }
    if let Some(section) = ini.section(Some("stv3")) {
        let mut n = NativeFile::default();
        for (k, v) in section.iter() {
            let v = ini_value(v).to_string();
            let key_err = |message: String| ConfigError::Key {
                path: p.clone(),
                key: format!("stv3.{k}"),
                message,
            };
            let num = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| key_err(format!("{v:?} is not a number")))
            };
            match k {
                "bind" => n.bind = Some(v),
                "database_url" => n.database_url = Some(v),
                "winchester_config" => n.winchester_config = Some(v),
                "auth_token" => n.auth_token = Some(v),
                "archive_dir" => n.archive_dir = Some(v),
                "default_limit" => n.default_limit = Some(num(&v)?),
                "max_limit" => n.max_limit = Some(num(&v)?),
                "db_max_connections" => n.db_max_connections = Some(num(&v)?),
                other => return Err(key_err(format!("unknown key {other:?}"))),
            }
        }
        apply_native(cfg, n, file)?;
    }
    Ok(())
}

/// Load a config file (INI, TOML or YAML, chosen by extension; INI otherwise).
pub fn load(path: &Path) -> Result<ApiConfig, ConfigError> {
    let text = read(path)?;
    let p = path.display().to_string();
    let mut cfg = ApiConfig::default();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "toml" => {
            let n: NativeFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: p,
                message: e.to_string(),
            })?;
            apply_native(&mut cfg, n, path)?;
        }
        "yaml" | "yml" => {
            let n: NativeFile = serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
                path: p,
                message: e.to_string(),
            })?;
            apply_native(&mut cfg, n, path)?;
        }
        _ => load_ini(&mut cfg, &text, path)?,
    }
    if cfg.default_limit > cfg.max_limit {
        cfg.default_limit = cfg.max_limit;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn original_quincy_conf_points_at_winchester_yaml() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "winchester.yaml",
            "---\nconfig_path:\n  - /etc/stv3\ndatabase:\n  url: mysql://winchester:testpasswd@localhost/winchester\n  echo_sql: false\npurge_completed_streams: false\n",
        );
        let conf = write(
            d.path(),
            "quincy.conf",
            "[global]\nenabled_versions=1,2\nv1_impl=quince.v1_impl:Impl\nv2_impl=quince.v2_impl:Impl\n\n[quince]\nwinchester_config=winchester.yaml\noahu_config=../../..|oahu_config:Config        ; legacy\n",
        );
        let cfg = load(&conf).unwrap();
        assert_eq!(
            cfg.database_url.as_deref(),
            Some("mysql://winchester:testpasswd@localhost/winchester")
        );
        assert_eq!(cfg.enabled_versions, vec![1, 2]);
        assert_eq!(cfg.bind, "0.0.0.0:8000".parse().unwrap());
    }

    #[test]
    fn ini_without_versions_serves_v1_only_and_stv3_section_applies() {
        let d = tempfile::tempdir().unwrap();
        let conf = write(
            d.path(),
            "q.ini",
            "[global]\n[stv3]\ndatabase_url=sqlite:///x.db\nbind=127.0.0.1:9000\nmax_limit=50\n",
        );
        let cfg = load(&conf).unwrap();
        assert_eq!(cfg.enabled_versions, vec![1]);
        assert_eq!(cfg.max_limit, 50);
        assert_eq!(cfg.default_limit, 50);
        assert_eq!(cfg.bind, "127.0.0.1:9000".parse().unwrap());
    }

    #[test]
    fn native_toml_and_yaml() {
        let d = tempfile::tempdir().unwrap();
        let t = write(
            d.path(),
            "api.toml",
            "bind = \"127.0.0.1:8001\"\ndatabase_url = \"mysql://root@127.0.0.1/x\"\nauth_token = \"s3cret\"\nmax_limit = 500\narchive_dir = \"/var/lib/stv3/archive\"\n",
        );
        let cfg = load(&t).unwrap();
        assert_eq!(cfg.auth_token.as_deref(), Some("s3cret"));
        assert_eq!(cfg.max_limit, 500);
        assert_eq!(
            cfg.archive_dir,
            Some(PathBuf::from("/var/lib/stv3/archive"))
        );
        let y = write(
            d.path(),
            "api.yaml",
            "bind: ':8002'\ndatabase_url: sqlite:///e.db\nenabled_versions: [1]\n",
        );
        let cfg = load(&y).unwrap();
        assert_eq!(cfg.bind.port(), 8002);
        assert_eq!(cfg.enabled_versions, vec![1]);
    }

    #[test]
    fn errors_name_file_and_key() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            ("a.toml", "bnd = \"x\"\n", "a.toml"),
            ("b.toml", "bind = \"nowhere\"\n", "key bind"),
            ("c.yaml", "enabled_versions: [3]\n", "enabled_versions"),
            (
                "d.conf",
                "[global]\nenabled_versions=1,x\n",
                "global.enabled_versions",
            ),
            (
                "e.conf",
                "[quince]\nwinchester_config=/nonexistent/w.yaml\n",
                "/nonexistent/w.yaml",
            ),
            ("f.conf", "[stv3]\nmax_limt=5\n", "stv3.max_limt"),
        ];
        for (name, text, want) in cases {
            let p = write(d.path(), name, text);
            let e = load(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{name}: {e}");
            assert!(e.contains(name), "{name}: {e}");
        }
        let w = write(d.path(), "w.yaml", "database: {}\n");
        let e = winchester_database_url(&w).unwrap_err().to_string();
        assert!(e.contains("database.url"), "{e}");
    }
}
