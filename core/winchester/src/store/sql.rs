//! SQL text shared by both dialects, and row <-> model conversions that do not depend on the driver.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    MySql,
}

impl Dialect {
    /// `INSERT IGNORE` (MySQL) / `INSERT OR IGNORE` (SQLite).
    pub(crate) fn insert_ignore(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INSERT OR IGNORE",
            Dialect::MySql => "INSERT IGNORE",
        }
    }

    /// Shared-lock suffix for `SELECT` (SQLite: the writer lock already serializes).
    pub(crate) fn share_lock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::MySql => " LOCK IN SHARE MODE",
        }
    }

    /// Row-lock suffix for `SELECT` (SQLite has one writer; nothing needed).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::MySql => " FOR UPDATE",
        }
    }
}

/// `?, ?, ?` with `n` placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}
