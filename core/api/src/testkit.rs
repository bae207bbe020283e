//! Test fixtures shared by the stv3-api and klugman test suites: scratch
//! MariaDB/SQLite databases with the winchester schema applied straight from
//! the migration files, a small realistic data set, and an in-process server
//! on a free port. Not used by the server itself.

use std::net::SocketAddr;
use std::path::PathBuf;

use sqlx::Executor;
use stv3_event::TraitValue;

use crate::params::Limits;
use crate::query::{self, FilterStyle};
use crate::{AppOptions, AppState};

/// Every winchester migration, in order (the API reads the newest schema).
pub const MYSQL_SCHEMA: &str = concat!(
    include_str!("../../winchester/migrations/mysql/20260101000001_initial.sql"),
    include_str!("../../winchester/migrations/mysql/20260101000002_partial_trait_indexes.sql"),
    include_str!("../../winchester/migrations/mysql/20260101000003_trait_documents.sql"),
    include_str!("../../winchester/migrations/mysql/20260101000004_one_trait_value_index.sql"),
    include_str!("../../winchester/migrations/mysql/20260101000005_trait_key_index.sql"),
);
pub const SQLITE_SCHEMA: &str = concat!(
    include_str!("../../winchester/migrations/sqlite/20260101000001_initial.sql"),
    include_str!("../../winchester/migrations/sqlite/20260101000002_partial_trait_indexes.sql"),
    include_str!("../../winchester/migrations/sqlite/20260101000003_trait_documents.sql"),
    include_str!("../../winchester/migrations/sqlite/20260101000004_one_trait_value_index.sql"),
    include_str!("../../winchester/migrations/sqlite/20260101000005_trait_key_index.sql"),
    // What `Store::migrate` does next: backfill the indexed names (nothing
    // stored yet) and mark them ready.
    "\nUPDATE indexed_trait SET ready = 1;\n",
);

/// A scratch database with the schema applied; dropped (MariaDB) or deleted
/// (SQLite) when this value is dropped.
pub struct ScratchDb {
    /// URL the API connects to.
    pub url: String,
    server_url: Option<String>,
    name: String,
    sqlite_path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// The statements of a migration script (comment lines dropped first, so a
/// `;` in a comment does not split).
pub fn split_statements(sql: &str) -> Vec<String> {
    let cleaned: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    cleaned
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl ScratchDb {
    /// Create `name` on the MariaDB server at `server_url` (no database part) and apply the schema.
    pub async fn mysql(server_url: &str, name: &str) -> anyhow::Result<ScratchDb> {
        let server_url = server_url.trim_end_matches('/').to_string();
        let mut admin = sqlx::MySqlPool::connect(&server_url).await?;
        admin
            .execute(format!("CREATE DATABASE `{name}`").as_str())
            .await?;
        admin.close().await;
        let url = format!("{server_url}/{name}");
        admin = sqlx::MySqlPool::connect(&url).await?;
        for stmt in split_statements(MYSQL_SCHEMA) {
            admin.execute(stmt.as_str()).await?;
        }
        admin.close().await;
        Ok(ScratchDb {
            url,
            server_url: Some(server_url),
            name: name.to_string(),
            sqlite_path: None,
            _dir: None,
        })
    }

    /// A SQLite file in a temporary directory with the schema applied.
    pub async fn sqlite() -> anyhow::Result<ScratchDb> {
        let dir = tempfile::tempdir()?;
        let path: PathBuf = dir.path().join("events.db");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        // One connection: the schema is applied as one sequence of DDL, never
        // with a statement on a second connection that has not yet seen the last
        // change (seen once in CI: "index ix_trait_datetime already exists").
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        for stmt in split_statements(SQLITE_SCHEMA) {
            pool.execute(stmt.as_str()).await?;
        }
        pool.close().await;
        // SQLAlchemy spelling of an absolute path.
        let url = format!("sqlite:///{}", path.display());
        Ok(ScratchDb {
            url,
            server_url: None,
            name: String::new(),
            sqlite_path: Some(path),
            _dir: Some(dir),
        })
    }

    /// `s` as a string literal of this database's SQL: quotes doubled, and
    /// on MySQL/MariaDB (whose default `sql_mode` reads `\` as an escape)
    /// backslashes doubled too.
    pub fn literal(&self, s: &str) -> String {
        let s = s.replace('\'', "''");
        if self.server_url.is_some() {
            format!("'{}'", s.replace('\\', "\\\\"))
        } else {
            format!("'{s}'")
        }
    }

    /// Statements that write the value-index entries of indexed traits
    /// `(event id, name, value)` as an ingester does on this database:
    /// `trait` rows on MySQL, `trait_key` keys on SQLite.
    pub fn index_entries(&self, rows: &[(i64, &str, TraitValue)]) -> Vec<String> {
        rows.iter()
            .map(|(id, name, v)| {
                if self.server_url.is_none() {
                    return format!(
                        "INSERT INTO trait_key (key, event_id) VALUES ({}, {id})",
                        stv3_event::stored::index_key(name, v)
                    );
                }
                format!(
                    "INSERT INTO `trait` (event_id, name, type, t_string, t_float, t_int, t_datetime) VALUES {}",
                    trait_row_values(*id, name, v, |t| self.literal(t))
                )
            })
            .collect()
    }

    /// Load the fixture (`fixture`) with the index entries of its indexed traits in this
    /// database's layout: MySQL's older events already have theirs (their
    /// typed rows); SQLite has keys for every event (as its backfill writes).
    pub async fn load_fixture(&self) -> anyhow::Result<()> {
        let sqlite = self.server_url.is_none();
        let indexed: Vec<(i64, &str, TraitValue)> = fixture_traits()
            .into_iter()
            .filter(|(id, name, _)| {
                INDEXED_BY_DEFAULT.contains(name) && (sqlite || *id > FIXTURE_OLDER_EVENTS)
            })
            .collect();
        let mut stmts = fixture();
        stmts.extend(self.index_entries(&indexed));
        self.exec_all(&stmts).await
    }

    /// Run statements (the fixture inserts) against the database.
    pub async fn exec_all(&self, stmts: &[String]) -> anyhow::Result<()> {
        if self.server_url.is_some() {
            let pool = sqlx::MySqlPool::connect(&self.url).await?;
            for s in stmts {
                pool.execute(s.as_str()).await?;
            }
            pool.close().await;
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(self.sqlite_path.as_ref().expect("sqlite path"));
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            for s in stmts {
                pool.execute(s.as_str()).await?;
            }
            pool.close().await;
        }
        Ok(())
    }

    /// One-value query (e.g. `SELECT COUNT(*) FROM event_type`).
    pub async fn scalar(&self, sql: &str) -> anyhow::Result<i64> {
        use sqlx::Row;
        if self.server_url.is_some() {
            let pool = sqlx::MySqlPool::connect(&self.url).await?;
            let v: i64 = sqlx::query(sql).fetch_one(&pool).await?.try_get(0)?;
            pool.close().await;
            Ok(v)
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(self.sqlite_path.as_ref().expect("sqlite path"));
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            let v: i64 = sqlx::query(sql).fetch_one(&pool).await?.try_get(0)?;
            pool.close().await;
            Ok(v)
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Some(server) = self.server_url.clone() {
            let name = self.name.clone();
            // Drop may run inside a runtime: use a fresh one on its own thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let pool = sqlx::MySqlPool::connect(&server).await.ok()?;
                    pool.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                        .await
                        .ok()?;
                    pool.close().await;
                    Some(())
                })
            })
            .join();
        }
    }
}

/// 2015-03-01T00:00:00Z in microseconds.
pub const DAY0: i64 = 1_425_168_000_000_000;
const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `(event_id, name, type, t_string, t_float, t_int, t_datetime)` values of a
/// typed `trait` row, text quoted by `literal`.
fn trait_row_values(
    id: i64,
    name: &str,
    v: &TraitValue,
    literal: impl Fn(&str) -> String,
) -> String {
    let null = || "NULL".to_string();
    let (ty, s, f, i, d) = match v {
        TraitValue::Text(t) => (1, literal(t), null(), null(), null()),
        TraitValue::Int(x) => (2, null(), null(), x.to_string(), null()),
        TraitValue::Float(x) => (3, null(), format!("{x:e}"), null(), null()),
        TraitValue::Datetime(t) => (
            4,
            null(),
            null(),
            null(),
            stv3_event::to_micros(t).to_string(),
        ),
    };
    format!("({id}, {}, {ty}, {s}, {f}, {i}, {d})", literal(name))
}

/// The fixture's events stored before traits documents (ids 1..=this).
const FIXTURE_OLDER_EVENTS: i64 = 12;

/// The trait names the first migration indexes.
const INDEXED_BY_DEFAULT: [&str; 5] = ["instance_id", "request_id", "tenant_id", "user_id", "host"];

/// The fixture's instances (events 1-8, 9-16, 17-24).
const FIXTURE_INSTANCES: [&str; 3] = ["inst-a", "inst-b", "inst-c"];

/// Every trait of the fixture's events: (event id, name, value).
fn fixture_traits() -> Vec<(i64, &'static str, TraitValue)> {
    let instances = FIXTURE_INSTANCES;
    let memory = [512, 2048, 4096];
    let text = |v: &str| TraitValue::Text(v.into());
    let mut out = Vec::new();
    for id in 1..=24i64 {
        let inst = ((id - 1) / 8) as usize;
        let launched = DAY0 + 17 * HOUR + inst as i64 * HOUR;
        out.push((id, "instance_id", text(instances[inst])));
        out.push((id, "tenant_id", text(if inst == 2 { "t2" } else { "t1" })));
        out.push((id, "memory_mb", TraitValue::Int(memory[inst])));
        out.push((
            id,
            "launched_at",
            TraitValue::Datetime(stv3_event::from_micros(launched)),
        ));
        out.push((
            id,
            "state",
            text(if id % 8 == 0 { "deleted" } else { "active" }),
        ));
        if id % 2 == 1 {
            out.push((id, "ratio", TraitValue::Float(0.5)));
        }
        // Only an older event has it (no document holds it).
        if id == 5 {
            out.push((id, "url", text("http://nova:8774/v2")));
        }
    }
    out
}

/// The fixture: 4 event types, 24 events over 3 instances with text, int,
/// float and datetime traits (and a text trait containing `:`), 6 streams in
/// six states with text, int and time-range distinguishing traits.
///
/// Events: id 1..=24, `message_id` `msg-0001`…, except id 24 = `Mixed-Case-ID`;
/// generated = 2015-03-01T18:00 + 10 min × (id-1); instance `inst-a` for ids 1–8,
/// `inst-b` 9–16, `inst-c` 17–24; type exists for id % 8 == 0, create.end for
/// id % 8 == 1, else update. memory_mb 512 (a), 2048 (b), 4096 (c); ratio 0.5 on odd ids;
/// launched_at = 2015-03-01T17:00 + instance index hours; `url` = `http://nova:8774/v2` on id 5.
///
/// Streams (id: name, state, instance, memory_mb dist): 1 test_trigger active inst-a;
/// 2 test_trigger firing inst-b; 3 usage error inst-a; 4 usage expire_error inst-b;
/// 5 usage completed inst-c (memory_mb 4096); 6 test_trigger retry_fire inst-c. Every
/// stream also has `timestamp` = the 2015-03-01 day range; stream 6's is 2015-03-02.
fn fixture() -> Vec<String> {
    let mut s = vec![
        "INSERT INTO event_type (id, `desc`) VALUES (1, 'compute.instance.create.start'), (2, 'compute.instance.create.end'), \
         (3, 'compute.instance.update'), (4, 'compute.instance.exists')"
            .to_string(),
    ];
    let mut events = Vec::new();
    for id in 1..=24i64 {
        let ty = if id % 8 == 0 {
            4
        } else if id % 8 == 1 {
            2
        } else {
            3
        };
        let mid = if id == 24 {
            "Mixed-Case-ID".to_string()
        } else {
            format!("msg-{id:04}")
        };
        let generated = DAY0 + 18 * HOUR + (id - 1) * 10 * MIN;
        events.push(format!("({id}, {}, {generated}, {ty})", q(&mid)));
    }
    s.push(format!(
        "INSERT INTO event (id, message_id, generated, event_type_id) VALUES {}",
        events.join(", ")
    ));
    // Events 1..=12 are older rows (no document, every trait a typed row);
    // events 13..=24 are stored as an ingester stores them now: a traits
    // document (index entries: `ScratchDb::load_fixture`).
    let mut rows = Vec::new();
    let mut documents: std::collections::BTreeMap<i64, stv3_event::Traits> = Default::default();
    for (id, name, v) in fixture_traits() {
        if id <= FIXTURE_OLDER_EVENTS {
            rows.push(trait_row_values(id, name, &v, q));
        } else {
            documents.entry(id).or_default().insert(name.into(), v);
        }
    }
    s.push(format!(
        "INSERT INTO `trait` (event_id, name, type, t_string, t_float, t_int, t_datetime) VALUES {}",
        rows.join(", ")
    ));
    for (id, doc) in documents {
        s.push(format!(
            "UPDATE event SET traits = {} WHERE id = {id}",
            q(&stv3_event::stored::encode_traits(&doc))
        ));
    }
    // (id, name, state, instance index, day offset)
    let streams = [
        (1, "test_trigger", 1, 0usize, 0i64),
        (2, "test_trigger", 2, 1, 0),
        (3, "usage", 4, 0, 0),
        (4, "usage", 5, 1, 0),
        (5, "usage", 6, 2, 0),
        (6, "test_trigger", 7, 2, 1),
    ];
    let mut rows = Vec::new();
    let mut dts = Vec::new();
    let mut links = Vec::new();
    for (id, name, state, inst, day) in streams {
        let first = DAY0 + 18 * HOUR + (inst as i64 * 8) * 10 * MIN;
        let last = first + 7 * 10 * MIN;
        let fire = if state == 1 {
            "NULL".to_string()
        } else {
            (last + HOUR).to_string()
        };
        let expire = last + 2 * DAY;
        rows.push(format!(
            "({id}, {first}, {last}, {expire}, {fire}, {}, {state}, 0)",
            q(name)
        ));
        dts.push(format!(
            "({id}, 'instance_id', 1, {}, NULL, NULL, NULL, NULL, NULL)",
            q(FIXTURE_INSTANCES[inst])
        ));
        let begin = DAY0 + day * DAY;
        dts.push(format!(
            "({id}, 'timestamp', 5, NULL, NULL, NULL, NULL, {begin}, {})",
            begin + DAY
        ));
        if id == 5 {
            dts.push(format!(
                "({id}, 'memory_mb', 2, NULL, NULL, 4096, NULL, NULL, NULL)"
            ));
        }
        for e in 1..=8 {
            links.push(format!("({id}, {})", inst as i64 * 8 + e));
        }
    }
    s.push(format!(
        "INSERT INTO stream (id, first_event, last_event, expire_timestamp, fire_timestamp, name, state, state_serial_no) VALUES {}",
        rows.join(", ")
    ));
    s.push(format!(
        "INSERT INTO dist_trait (stream_id, name, type, dt_string, dt_float, dt_int, dt_datetime, dt_timerange_begin, dt_timerange_end) VALUES {}",
        dts.join(", ")
    ));
    s.push(format!(
        "INSERT INTO streamevent (stream_id, event_id) VALUES {}",
        links.join(", ")
    ));
    s
}

/// Server knobs for tests.
#[derive(Clone, Default)]
pub struct ServerOptions {
    pub auth_token: Option<String>,
    pub archive_dir: Option<PathBuf>,
    pub limits: Option<Limits>,
    pub style: Option<FilterStyle>,
}

/// Start the full app (all middleware) on `127.0.0.1:<free port>`; returns `http://127.0.0.1:port`.
pub async fn spawn_server(db_url: &str, opts: ServerOptions) -> anyhow::Result<String> {
    let store = query::connect(db_url, 8, opts.style.unwrap_or(FilterStyle::Exists)).await?;
    let state = AppState {
        store,
        limits: opts.limits.unwrap_or_default(),
        archive_dir: opts.archive_dir,
        versions: vec![1, 2],
    };
    let app = crate::build(AppOptions {
        state,
        auth_token: opts.auth_token,
    });
    let (addr, _h) = crate::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), app).await?;
    Ok(format!("http://{addr}"))
}
