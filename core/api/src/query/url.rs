//! Database URL normalisation: the original SQLAlchemy URLs
//! (`mysql://u:p@h/db`, `mysql+pymysql://...?charset=utf8`, `sqlite:///relative.db`,
//! `sqlite:////absolute.db`, `sqlite://` = memory) and sqlx URLs. Pure.

use std::path::{Path, PathBuf};

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    Memory,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A URL sqlx's MySQL driver accepts.
    MySql(String),
    Sqlite(SqliteTarget),
}

/// Query parameters sqlx's MySQL driver understands; SQLAlchemy-only ones
/// (`charset=utf8`, `use_unicode`, ...) are dropped (sqlx always speaks utf8mb4).
const MYSQL_PARAMS: &[&str] = &[
    "ssl-mode",
    "sslmode",
    "ssl-ca",
    "sslca",
    "ssl-cert",
    "sslcert",
    "ssl-key",
    "sslkey",
    "socket",
    "statement-cache-capacity",
];

pub fn normalize(raw: &str) -> Result<DbUrl, StoreError> {
    let err = |reason: &str| StoreError::Url {
        url: redact(raw),
        reason: reason.to_string(),
    };
    let s = raw.trim();
    let Some((scheme, rest)) = s.split_once(':') else {
        return Err(err("no scheme (expected mysql://... or sqlite://...)"));
    };
    let base = scheme
        .split('+')
        .next()
        .unwrap_or(scheme)
        .to_ascii_lowercase();
    match base.as_str() {
        "mysql" | "mariadb" => {
            let Some(rest) = rest.strip_prefix("//") else {
                return Err(err("expected mysql://host/db"));
            };
            let (main, query) = match rest.split_once('?') {
                Some((m, q)) => (m, Some(q)),
                None => (rest, None),
            };
            let kept: Vec<&str> = query
                .map(|q| {
                    q.split('&')
                        .filter(|kv| MYSQL_PARAMS.contains(&kv.split('=').next().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            let mut url = format!("mysql://{main}");
            if !kept.is_empty() {
                url.push('?');
                url.push_str(&kept.join("&"));
            }
            Ok(DbUrl::MySql(url))
        }
        "sqlite" => {
            let path = if let Some(after) = rest.strip_prefix("//") {
                // SQLAlchemy: sqlite:// = memory, sqlite:///rel, sqlite:////abs
                if after.is_empty() {
                    return Ok(DbUrl::Sqlite(SqliteTarget::Memory));
                }
                let Some(p) = after.strip_prefix('/') else {
                    return Err(err(
                        "expected sqlite:///relative/path or sqlite:////absolute/path",
                    ));
                };
                let p = p.split('?').next().unwrap_or(p);
                if p.starts_with('/') {
                    PathBuf::from(p)
                } else if !Path::new(p).exists() && Path::new(&format!("/{p}")).exists() {
                    // sqlx spelling: sqlite:///abs/path
                    PathBuf::from(format!("/{p}"))
                } else {
                    PathBuf::from(p)
                }
            } else {
                let p = rest.split('?').next().unwrap_or(rest);
                if p.is_empty() || p == ":memory:" {
                    return Ok(DbUrl::Sqlite(SqliteTarget::Memory));
                }
                PathBuf::from(p)
            };
            if path.as_os_str() == ":memory:" {
                return Ok(DbUrl::Sqlite(SqliteTarget::Memory));
            }
            Ok(DbUrl::Sqlite(SqliteTarget::File(path)))
        }
        other => Err(err(&format!(
            "unsupported scheme {other:?} (expected mysql or sqlite)"
        ))),
    }
}

/// The URL with its password replaced by `***` (defined once, in `stv3-event`).
pub use stv3_event::redact_url as redact;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<DbUrl>) {
        assert_eq!(normalize(input).ok(), expected, "input {input:?}");
    }

    #[test]
    fn urls() {
        let my = |s: &str| Some(DbUrl::MySql(s.to_string()));
        let file = |s: &str| Some(DbUrl::Sqlite(SqliteTarget::File(PathBuf::from(s))));
        check(
            "mysql://winchester:testpasswd@localhost/winchester",
            my("mysql://winchester:testpasswd@localhost/winchester"),
        );
        check(
            "mysql+pymysql://u:p@h:3307/db?charset=utf8",
            my("mysql://u:p@h:3307/db"),
        );
        check(
            "mysql://u@h/db?charset=utf8&ssl-mode=disabled",
            my("mysql://u@h/db?ssl-mode=disabled"),
        );
        check(
            "mariadb://root@127.0.0.1/test",
            my("mysql://root@127.0.0.1/test"),
        );
        check("sqlite://", Some(DbUrl::Sqlite(SqliteTarget::Memory)));
        check("sqlite::memory:", Some(DbUrl::Sqlite(SqliteTarget::Memory)));
        check("sqlite:////var/x.db", file("/var/x.db"));
        check("sqlite:///winchester.db", file("winchester.db"));
        check("sqlite:///tmp", file("/tmp"));
        check("sqlite:data/x.db", file("data/x.db"));
        check("postgres://x/y", None);
        check("nonsense", None);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://u:***@h/db");
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
