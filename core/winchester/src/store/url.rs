//! Database URL mapping: the original SQLAlchemy URLs of winchester.yaml to sqlx URLs.
//!
//! | winchester.yaml | sqlx |
//! | --- | --- |
//! | `mysql://u:p@h/db`, `mysql+pymysql://...`, `mysql+mysqldb://...` | `mysql://u:p@h/db` |
//! | `sqlite:///relative.db` | `sqlite://relative.db` |
//! | `sqlite:////abs/path.db` | `sqlite:///abs/path.db` |
//! | `sqlite://` (memory) | `sqlite::memory:` |
//! | `sqlite::memory:`, `sqlite:path` (sqlx forms) | unchanged |

use super::StoreError;

/// A parsed database URL, in sqlx form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(String),
    MySql(String),
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<DbUrl, StoreError> {
        let bad = |reason: &str| StoreError::Url {
            url: redact(url),
            reason: reason.to_string(),
        };
        let url = url.trim();
        let (scheme, rest) = url.split_once(':').ok_or_else(|| bad("no scheme"))?;
        let base = scheme
            .split('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        match base.as_str() {
            "mysql" | "mariadb" => {
                let rest = rest
                    .strip_prefix("//")
                    .ok_or_else(|| bad("expected mysql://user:password@host/db"))?;
                if rest.is_empty() {
                    return Err(bad("no host"));
                }
                Ok(DbUrl::MySql(format!("mysql://{rest}")))
            }
            "sqlite" => {
                if rest == "//" || rest == ":memory:" || rest == "//:memory:" {
                    return Ok(DbUrl::Sqlite("sqlite::memory:".to_string()));
                }
                if let Some(path) = rest.strip_prefix("///") {
                    // SQLAlchemy: sqlite:///relative, sqlite:////absolute
                    if path.is_empty() {
                        return Err(bad("no file name"));
                    }
                    return Ok(DbUrl::Sqlite(format!("sqlite://{path}")));
                }
                if let Some(path) = rest.strip_prefix("//") {
                    // sqlite://host/path is not meaningful in SQLAlchemy; accept as a path.
                    return Ok(DbUrl::Sqlite(format!("sqlite://{path}")));
                }
                if rest.is_empty() {
                    return Err(bad("no file name"));
                }
                Ok(DbUrl::Sqlite(format!("sqlite://{rest}")))
            }
            other => Err(bad(&format!(
                "unsupported database {other:?} (use mysql:// or sqlite://)"
            ))),
        }
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, DbUrl::Sqlite(u) if u.contains(":memory:") || u.contains("mode=memory"))
    }
}

/// The URL with its password replaced by `***` (defined once, in `stv3-event`).
pub use stv3_event::redact_url as redact;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<DbUrl>) {
        assert_eq!(DbUrl::parse(input).ok(), expected, "{input}");
    }

    #[test]
    fn maps_sqlalchemy_urls() {
        let my = |s: &str| Some(DbUrl::MySql(s.to_string()));
        let lite = |s: &str| Some(DbUrl::Sqlite(s.to_string()));
        check(
            "mysql://winchester:testpasswd@localhost/winchester",
            my("mysql://winchester:testpasswd@localhost/winchester"),
        );
        check(
            "mysql+pymysql://u:p@db:3307/w?charset=utf8",
            my("mysql://u:p@db:3307/w?charset=utf8"),
        );
        check("mysql+mysqldb://u@h/w", my("mysql://u@h/w"));
        check("sqlite://", lite("sqlite::memory:"));
        check("sqlite:///winchester.db", lite("sqlite://winchester.db"));
        check("sqlite:////var/lib/w.db", lite("sqlite:///var/lib/w.db"));
        check("sqlite::memory:", lite("sqlite::memory:"));
        check("postgresql://x/y", None);
        check("nonsense", None);
        check("mysql://", None);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://u:***@h/db");
        assert_eq!(redact("sqlite://"), "sqlite://");
    }
}
