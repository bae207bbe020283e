//! Secrets: the [`Secret`] value type (redacted in `Debug`, `Display` and
//! serialisation) and the [`SecretStore`] that resolves a secret name from
//! the environment (`STV3_SECRET_<NAME>`) or a secrets file (YAML map).
//!
//! Secrets never live in the inventory. Known default passwords (`guest`,
//! `testpasswd`, `password`) are refused unless explicitly allowed (D9).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::{InventoryError, Origin};

/// Passwords shipped as defaults by the original deployment; refused unless
/// `--allow-insecure-defaults`.
pub const INSECURE_DEFAULTS: &[&str] = &["guest", "testpasswd", "password"];

/// The text every secret prints as.
pub const REDACTED: &str = "<redacted>";

/// A secret string. It never prints itself: `Debug`, `Display` and `Serialize`
/// all give [`REDACTED`]. Use [`Secret::expose`] only to render a file.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    name: String,
    value: String,
}

impl Secret {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Secret {
            name: name.into(),
            value: value.into(),
        }
    }
    /// The secret's name (its key in the secrets file).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The secret value. Only for rendering files that are written 0640.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}: {REDACTED})", self.name)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Where secrets come from: environment variables first, then the secrets file.
#[derive(Debug, Default, Clone)]
pub struct SecretStore {
    file: Option<PathBuf>,
    values: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    allow_insecure: bool,
}

/// The environment variable that carries secret `name`: `STV3_SECRET_` plus
/// the name upper-cased with every non-alphanumeric character turned into `_`.
pub fn env_var_name(name: &str) -> String {
    let mut s = String::from("STV3_SECRET_");
    for c in name.chars() {
        s.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    s
}

impl SecretStore {
    /// A store reading the process environment and, optionally, a secrets file.
    pub fn load(file: Option<&Path>, allow_insecure: bool) -> Result<Self, InventoryError> {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("STV3_SECRET_"))
            .collect();
        let mut store = SecretStore {
            env,
            allow_insecure,
            ..Default::default()
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| InventoryError::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
            store.values = parse_secrets_file(path, &text)?;
            store.file = Some(path.to_path_buf());
        }
        Ok(store)
    }

    /// A store from explicit values (tests, or a file already read).
    pub fn from_values(
        values: BTreeMap<String, String>,
        env: BTreeMap<String, String>,
        allow_insecure: bool,
    ) -> Self {
        SecretStore {
            file: Some(PathBuf::from("<memory>")),
            values,
            env,
            allow_insecure,
        }
    }

    /// Resolve secret `name`; `used_by` names the inventory key that needs it,
    /// for the error message.
    pub fn get(&self, name: &str, used_by: &str) -> Result<(Secret, Origin), InventoryError> {
        self.get_optional(name)?
            .ok_or_else(|| InventoryError::MissingSecret {
                name: name.to_string(),
                used_by: used_by.to_string(),
                env: env_var_name(name),
                file: self.file.clone(),
            })
    }

    /// Resolve secret `name` when it is set; `None` when it is in neither the
    /// environment nor the secrets file. A set value is checked like [`Self::get`].
    pub fn get_optional(&self, name: &str) -> Result<Option<(Secret, Origin)>, InventoryError> {
        let var = env_var_name(name);
        let (value, origin) = if let Some(v) = self.env.get(&var) {
            (v.clone(), Origin::Env(var.clone()))
        } else if let Some(v) = self.values.get(name) {
            (
                v.clone(),
                Origin::SecretsFile(self.file.clone().unwrap_or_default(), name.to_string()),
            )
        } else {
            return Ok(None);
        };
        if !self.allow_insecure && INSECURE_DEFAULTS.contains(&value.as_str()) {
            return Err(InventoryError::InsecureSecret {
                name: name.to_string(),
                origin: origin.to_string(),
            });
        }
        // An empty password is a lab-only setup (a local MariaDB root), like the known defaults.
        if !self.allow_insecure && value.is_empty() {
            return Err(InventoryError::InsecureSecret {
                name: name.to_string(),
                origin: format!("{origin} (empty)"),
            });
        }
        Ok(Some((Secret::new(name, value), origin)))
    }
}

fn parse_secrets_file(path: &Path, text: &str) -> Result<BTreeMap<String, String>, InventoryError> {
    let raw: BTreeMap<String, serde_saphyr::Spanned<SecretValue>> = serde_saphyr::from_str(text)
        .map_err(|e| InventoryError::Yaml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let s = match v.value {
                SecretValue::Text(s) => s,
                SecretValue::Int(i) => i.to_string(),
            };
            (k, s)
        })
        .collect())
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum SecretValue {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("db", "hunter2hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2hunter2");
    }

    fn check(
        values: &[(&str, &str)],
        env: &[(&str, &str)],
        allow: bool,
        name: &str,
        expected: Result<(&str, &str), &str>,
    ) {
        let store = SecretStore::from_values(
            values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allow,
        );
        match (store.get(name, "test.key"), expected) {
            (Ok((s, o)), Ok((v, origin))) => {
                assert_eq!(s.expose(), v);
                assert_eq!(o.to_string(), origin);
            }
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{e}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn resolution_table() {
        check(
            &[("db", "s3cret-db")],
            &[],
            false,
            "db",
            Ok(("s3cret-db", "secrets file <memory> key db")),
        );
        check(
            &[("db", "s3cret-db")],
            &[("STV3_SECRET_DB", "from-env-1")],
            false,
            "db",
            Ok(("from-env-1", "env STV3_SECRET_DB")),
        );
        check(
            &[],
            &[("STV3_SECRET_RABBIT_CELL_1", "x-cell-pw")],
            false,
            "rabbit_cell-1",
            Ok(("x-cell-pw", "env STV3_SECRET_RABBIT_CELL_1")),
        );
        check(
            &[],
            &[],
            false,
            "db",
            Err("secret `db` (needed by test.key) is missing"),
        );
        check(
            &[("db", "guest")],
            &[],
            false,
            "db",
            Err("known default password"),
        );
        check(
            &[("db", "testpasswd")],
            &[],
            false,
            "db",
            Err("known default password"),
        );
        check(
            &[("db", "password")],
            &[],
            true,
            "db",
            Ok(("password", "secrets file <memory> key db")),
        );
        check(&[("db", "")], &[], false, "db", Err("empty"));
        check(
            &[("db", "")],
            &[],
            true,
            "db",
            Ok(("", "secrets file <memory> key db")),
        );
    }
}
