//! Bulk row writes (inserts, updates) on SQLite through one prepared
//! single-row statement: bind, step, reset, row after row, on the
//! connection's own handle.
//!
//! This is the ingest's hot path on the embedded store. A multi-row
//! `INSERT ... VALUES (?,...),(?,...)` through sqlx builds a large SQL text and
//! an argument vector per statement, copies every text argument into the
//! worker command and hands each statement to the connection's worker thread;
//! for thousands of small rows that costs as much as SQLite's own work. Here
//! the statement is prepared once per call, text is bound without a copy
//! (`SQLITE_STATIC`: the values outlive each step), and each row reports its
//! own change count and rowid.
//!
//! The only `unsafe` is the FFI; [`Statement`] finalizes on drop and every
//! return code is checked.

use std::ffi::{c_int, CStr, CString};
use std::ptr::{null_mut, NonNull};

use libsqlite3_sys as ffi;

use super::sql::{Inserted, Val};

/// A SQLite error on the bulk path: the engine's code and message.
#[derive(Debug, thiserror::Error)]
#[error("sqlite error {code}: {message} (in {sql})")]
pub struct SqliteRowError {
    pub code: i32,
    pub message: String,
    pub sql: String,
}

struct Statement {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    sql: String,
}

impl Statement {
    /// # Safety
    /// `db` must be an open connection that nothing else uses meanwhile.
    unsafe fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Result<Self, SqliteRowError> {
        let text = CString::new(sql).map_err(|_| SqliteRowError {
            code: ffi::SQLITE_MISUSE,
            message: "NUL in statement".into(),
            sql: sql.into(),
        })?;
        let mut stmt = null_mut();
        let rc = ffi::sqlite3_prepare_v2(db, text.as_ptr(), -1, &mut stmt, null_mut());
        let s = Statement {
            db,
            stmt,
            sql: sql.into(),
        };
        if rc != ffi::SQLITE_OK {
            return Err(s.error(rc));
        }
        Ok(s)
    }

    fn error(&self, rc: c_int) -> SqliteRowError {
        // SAFETY: `db` is open for the life of the statement.
        let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db)) }
            .to_string_lossy()
            .into_owned();
        SqliteRowError {
            code: rc,
            message,
            sql: self.sql.clone(),
        }
    }

    fn check(&self, rc: c_int) -> Result<(), SqliteRowError> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    /// Bind one row's values. Text is bound `SQLITE_STATIC`: the caller keeps
    /// it alive until [`Self::reset`].
    fn bind(&mut self, row: &[Val<'_>]) -> Result<(), SqliteRowError> {
        for (i, v) in row.iter().enumerate() {
            let at = (i + 1) as c_int;
            // SAFETY: `stmt` is a live prepared statement; text pointers stay
            // valid until `reset` clears the bindings.
            let rc = unsafe {
                match v {
                    Val::Null => ffi::sqlite3_bind_null(self.stmt, at),
                    Val::I(x) => ffi::sqlite3_bind_int64(self.stmt, at, *x),
                    Val::F(x) => ffi::sqlite3_bind_double(self.stmt, at, *x),
                    Val::S(s) => ffi::sqlite3_bind_text64(
                        self.stmt,
                        at,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            self.check(rc)?;
        }
        Ok(())
    }

    /// Step once: `Ok(true)` a row is available, `Ok(false)` done.
    fn step(&mut self) -> Result<bool, SqliteRowError> {
        // SAFETY: `stmt` is a live prepared statement.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(self.error(rc)),
        }
    }

    /// Column `i` of the current row as an integer, or None for NULL.
    fn opt_i64(&self, i: c_int) -> Option<i64> {
        // SAFETY: called only after `step` returned a row.
        unsafe {
            (ffi::sqlite3_column_type(self.stmt, i) != ffi::SQLITE_NULL)
                .then(|| ffi::sqlite3_column_int64(self.stmt, i))
        }
    }

    /// Ready the statement for the next row and drop the bindings.
    fn reset(&mut self) {
        // SAFETY: `stmt` is a live prepared statement (its reset code repeats
        // the last step's error, already reported).
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
    }

    /// Bind, step and reset one row of a statement that returns no rows:
    /// (rows changed, last insert rowid).
    fn run_row(&mut self, row: &[Val<'_>]) -> Result<(u64, i64), SqliteRowError> {
        let res = self.bind(row).and_then(|()| self.step());
        let out = res.map(|_| {
            // SAFETY: `db` is open.
            unsafe {
                (
                    ffi::sqlite3_changes(self.db).max(0) as u64,
                    ffi::sqlite3_last_insert_rowid(self.db),
                )
            }
        });
        self.reset();
        out
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: finalizing a null pointer is a no-op; else `stmt` is ours.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// Run the single-row statement `sql` (`ncols` parameters, returning no rows)
/// once per row of `rows` (flattened) on connection `db`, inside the caller's
/// transaction: rows changed in all, and each row's rowid when every row
/// changed exactly one (inserts).
///
/// # Safety
/// `db` must be an open connection held exclusively for the call (sqlx's
/// `LockedSqliteHandle`).
pub(crate) unsafe fn execute_rows(
    db: NonNull<ffi::sqlite3>,
    sql: &str,
    ncols: usize,
    rows: &[Val<'_>],
) -> Result<Inserted, SqliteRowError> {
    let mut out = Inserted {
        affected: 0,
        ids: Some(Vec::with_capacity(rows.len() / ncols.max(1))),
    };
    if rows.is_empty() || ncols == 0 {
        return Ok(out);
    }
    let mut stmt = Statement::prepare(db.as_ptr(), sql)?;
    for row in rows.chunks(ncols) {
        let (changed, id) = stmt.run_row(row)?;
        out.affected += changed;
        match (&mut out.ids, changed) {
            (Some(ids), 1) => ids.push(id),
            _ => out.ids = None,
        }
    }
    Ok(out)
}

/// Run the one-parameter query `sql` (first column: an integer or NULL) once
/// per key: for each key, None when it returns no row, else the first row's
/// value.
///
/// # Safety
/// As [`execute_rows`].
pub(crate) unsafe fn lookup_ids(
    db: NonNull<ffi::sqlite3>,
    sql: &str,
    keys: &[&str],
) -> Result<Vec<Option<Option<i64>>>, SqliteRowError> {
    let mut out = Vec::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(out);
    }
    let mut stmt = Statement::prepare(db.as_ptr(), sql)?;
    for key in keys {
        let res = stmt.bind(&[Val::S(key)]).and_then(|()| stmt.step());
        let found = res.map(|row| row.then(|| stmt.opt_i64(0)));
        stmt.reset();
        out.push(found?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, SqliteConnection};

    /// Run `head VALUES (?, ...)` per row on a fresh in-memory database with `schema`.
    async fn run(
        schema: &str,
        head: &str,
        ncols: usize,
        rows: &[Val<'_>],
    ) -> (Result<Inserted, SqliteRowError>, Vec<String>) {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql(schema).execute(&mut conn).await.unwrap();
        let res = {
            let mut h = conn.lock_handle().await.unwrap();
            let sql = format!("{head} VALUES ({})", crate::store::sql::placeholders(ncols));
            // SAFETY: the locked handle is held for the call.
            unsafe { execute_rows(h.as_raw_handle(), &sql, ncols, rows) }
        };
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT quote(a) || '|' || quote(b) FROM t ORDER BY rowid")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        (res, stored)
    }

    const SCHEMA: &str =
        "CREATE TABLE t (a TEXT UNIQUE, b ANY NOT NULL); PRAGMA foreign_keys = ON;";

    fn check(
        head: &str,
        rows: &[Val<'_>],
        expected: Result<(u64, Option<Vec<i64>>), &str>,
        stored: &[&str],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (res, got) = rt.block_on(run(SCHEMA, head, 2, rows));
        match (res, expected) {
            (Ok(r), Ok((affected, ids))) => assert_eq!((r.affected, r.ids), (affected, ids)),
            (Err(e), Err(part)) => {
                let text = e.to_string();
                assert!(text.contains(part) && text.contains(head), "{text}");
            }
            (r, e) => panic!("got {r:?}, expected {e:?}"),
        }
        assert_eq!(got, stored);
    }

    #[test]
    fn rows_values_and_ids() {
        // Every value kind round-trips; ids are the rowids in order.
        const IGNORE: &str = "INSERT OR IGNORE INTO t (a, b)";
        check(
            IGNORE,
            &[
                Val::S("x"),
                Val::I(7),
                Val::S("y"),
                Val::F(1.5),
                Val::Null,
                Val::S("it's"),
            ],
            Ok((3, Some(vec![1, 2, 3]))),
            &["'x'|7", "'y'|1.5", "NULL|'it''s'"],
        );
        // Nothing to do.
        check(IGNORE, &[], Ok((0, Some(vec![]))), &[]);
        // An ignored conflict: fewer rows, and no ids (the caller re-reads or retries).
        check(
            IGNORE,
            &[Val::S("x"), Val::I(1), Val::S("x"), Val::I(2)],
            Ok((1, None)),
            &["'x'|1"],
        );
        // A constraint error (no OR IGNORE) names the engine's message and the statement; rows
        // written before it stay for the caller's transaction to roll back.
        check(
            "INSERT INTO t (a, b)",
            &[Val::S("a"), Val::I(1), Val::S("b"), Val::Null],
            Err("NOT NULL constraint failed: t.b"),
            &["'a'|1"],
        );
    }

    #[test]
    fn statements_run_once_per_row() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (res, stored) = rt.block_on(async {
            let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
            sqlx::raw_sql("CREATE TABLE t (a TEXT UNIQUE, b ANY); INSERT INTO t VALUES ('x', 1), ('y', 2), ('z', 3);")
                .execute(&mut conn)
                .await
                .unwrap();
            let res = {
                let mut h = conn.lock_handle().await.unwrap();
                let rows = [Val::I(10), Val::S("x"), Val::Null, Val::S("z"), Val::I(99), Val::S("missing")];
                // SAFETY: the locked handle is held for the call.
                unsafe { execute_rows(h.as_raw_handle(), "UPDATE t SET b = ? WHERE a = ?", 2, &rows) }
            };
            let stored: Vec<String> = sqlx::query_scalar("SELECT a || '|' || quote(b) FROM t ORDER BY a")
                .fetch_all(&mut conn)
                .await
                .unwrap();
            (res.unwrap(), stored)
        });
        // Two rows changed; a row that matched nothing means no ids.
        assert_eq!((res.affected, res.ids), (2, None));
        assert_eq!(stored, ["x|10", "y|2", "z|NULL"]);
    }

    #[test]
    fn lookups_tell_missing_null_and_found_apart() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
            sqlx::raw_sql("CREATE TABLE k (key TEXT PRIMARY KEY, id INTEGER); INSERT INTO k VALUES ('a', 1), ('n', NULL);")
                .execute(&mut conn)
                .await
                .unwrap();
            let mut h = conn.lock_handle().await.unwrap();
            // SAFETY: the locked handle is held for the call.
            let ok = unsafe { lookup_ids(h.as_raw_handle(), "SELECT id FROM k WHERE key = ?", &["a", "missing", "n", "a"]) };
            // SAFETY: as above.
            let bad = unsafe { lookup_ids(h.as_raw_handle(), "SELECT id FROM nope WHERE key = ?", &["a"]) };
            (ok.unwrap(), bad.unwrap_err().to_string())
        });
        assert_eq!(got.0, vec![Some(Some(1)), None, Some(None), Some(Some(1))]);
        assert!(got.1.contains("no such table: nope"), "{}", got.1);
    }
}
