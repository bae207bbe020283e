//! `api-bulkload`: fill a scratch MariaDB/MySQL database with a large,
//! realistic winchester data set for API benchmarks, using multi-row INSERTs
//! straight into the schema (no ORM, no per-row round trips).
//!
//! Data (deterministic, seeded): `--events` events over `--streams` instances
//! (groups of 4 instances interleave over 40 consecutive events; 250 ms apart), 15 nova event
//! types, 8 traits per event (instance_id, tenant_id, request_id, state,
//! host text; memory_mb, root_gb int; launched_at datetime), one stream per
//! instance (3 triggers, realistic state mix) with instance_id + a day
//! TimeRange as distinguishing traits, and the streamevent links. Names are
//! those `api-load` generates: instance `inst-%08x`, tenant `tenant-%04d`.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Executor};
use stv3_event::stored::encode_traits;
use stv3_event::{from_micros, TraitValue, Traits};

#[derive(Debug, Parser)]
#[command(
    name = "api-bulkload",
    version,
    about = "Fill a scratch MariaDB with a large winchester data set (benchmarks)"
)]
struct Args {
    /// Server URL without a database (mysql://root@127.0.0.1:3306).
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    server: String,
    /// Database to (re)create.
    #[arg(long, default_value = "stv3bench_api")]
    database: String,
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 100_000)]
    streams: u64,
    /// Rows per INSERT statement.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Drop and recreate the database if it exists.
    #[arg(long)]
    replace: bool,
    /// How events map to instances: `clustered` (groups of 4 instances over 40
    /// consecutive events) or `spread` (event i → instance i % streams, so every
    /// instance spans the whole period and all streams start in the first hours).
    #[arg(long, value_parser = ["clustered", "spread"], default_value = "clustered")]
    layout: String,
}

pub const EVENT_TYPES: [&str; 15] = [
    "compute.instance.create.start",
    "compute.instance.create.end",
    "compute.instance.update",
    "compute.instance.exists",
    "compute.instance.delete.start",
    "compute.instance.delete.end",
    "compute.instance.power_off.start",
    "compute.instance.power_off.end",
    "compute.instance.reboot.start",
    "compute.instance.reboot.end",
    "compute.instance.resize.prep.start",
    "compute.instance.resize.prep.end",
    "compute.instance.snapshot.start",
    "compute.instance.snapshot.end",
    "compute.instance.rebuild.start",
];
const STATES_TXT: [&str; 5] = ["active", "building", "deleted", "stopped", "resized"];
const MEMORY: [i64; 5] = [512, 1024, 2048, 4096, 8192];
/// 2015-03-01T00:00:00Z
const T0: i64 = 1_425_168_000_000_000;
const STEP: i64 = 250_000;
const DAY: i64 = 86_400_000_000;

struct Batch<'a> {
    head: &'a str,
    rows: Vec<String>,
    max: usize,
    total: u64,
}

impl<'a> Batch<'a> {
    fn new(head: &'a str, max: usize) -> Self {
        Batch {
            head,
            rows: Vec::with_capacity(max),
            max,
            total: 0,
        }
    }

    async fn push(&mut self, conn: &mut sqlx::MySqlConnection, row: String) -> anyhow::Result<()> {
        self.rows.push(row);
        if self.rows.len() >= self.max {
            self.flush(conn).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut sqlx::MySqlConnection) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let sql = format!("{} VALUES {}", self.head, self.rows.join(","));
        conn.execute(sql.as_str())
            .await
            .with_context(|| format!("inserting into {}", self.head))?;
        self.total += self.rows.len() as u64;
        self.rows.clear();
        Ok(())
    }
}

/// The names the schema migration indexes (all text here).
const INDEXED: [&str; 5] = ["instance_id", "request_id", "tenant_id", "user_id", "host"];

/// Instance (= stream) of event `i`: groups of 4 instances interleave over
/// 40 consecutive events, so each instance's events are close in time (as a
/// real operation's are) and streams start all along the time span.
fn instance_of(i: u64, streams: u64, spread: bool) -> u64 {
    let k = i - 1;
    if spread {
        k % streams
    } else {
        ((k / 40) * 4 + k % 4) % streams
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.streams == 0 || a.events < a.streams {
        bail!("need --events >= --streams > 0");
    }
    let server = a.server.trim_end_matches('/');
    let mut admin = sqlx::MySqlConnection::connect(server)
        .await
        .with_context(|| format!("connecting {server}"))?;
    if a.replace {
        admin
            .execute(format!("DROP DATABASE IF EXISTS `{}`", a.database).as_str())
            .await?;
    }
    admin
        .execute(format!("CREATE DATABASE `{}`", a.database).as_str())
        .await
        .context("create database (use --replace)")?;
    admin.close().await?;
    let url = format!("{server}/{}", a.database);
    let mut conn = sqlx::MySqlConnection::connect(&url).await?;
    for stmt in stv3_api::testkit::split_statements(stv3_api::testkit::MYSQL_SCHEMA) {
        conn.execute(stmt.as_str()).await?;
    }
    conn.execute("SET unique_checks = 0, foreign_key_checks = 0")
        .await?;
    let spread = a.layout == "spread";
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);

    let types: Vec<String> = EVENT_TYPES
        .iter()
        .enumerate()
        .map(|(i, t)| format!("({}, '{t}')", i + 1))
        .collect();
    conn.execute(
        format!(
            "INSERT INTO event_type (id, `desc`) VALUES {}",
            types.join(",")
        )
        .as_str(),
    )
    .await?;

    let mut ev = Batch::new(
        "INSERT INTO event (id, message_id, generated, event_type_id, traits)",
        a.batch,
    );
    let mut tr = Batch::new(
        "INSERT INTO `trait` (event_id, name, type, t_string, t_float, t_int, t_datetime)",
        a.batch * 4,
    );
    let mut tx_rows = 0u64;
    conn.execute("BEGIN").await?;
    for i in 1..=a.events {
        let inst = instance_of(i, a.streams, spread);
        let generated = T0 + (i as i64) * STEP;
        let ty = if rng.gen_ratio(1, 20) {
            4
        } else {
            rng.gen_range(1..=EVENT_TYPES.len())
        };
        let tenant = inst % 1000;
        let mem = MEMORY[(inst % 5) as usize];
        let state = STATES_TXT[rng.gen_range(0..STATES_TXT.len())];
        let launched = T0 + (inst as i64) * 1_000_000;
        // As an ingester stores them: every trait in the event's traits
        // document, index rows for the schema's default indexed names only.
        let text = |v: String| TraitValue::Text(v.into());
        let traits: Traits = [
            ("instance_id", text(format!("inst-{inst:08x}"))),
            ("tenant_id", text(format!("tenant-{tenant:04}"))),
            ("request_id", text(format!("req-{:08x}", i / 3))),
            ("state", text(state.to_string())),
            ("host", text(format!("compute-{:03}", inst % 200))),
            ("memory_mb", TraitValue::Int(mem)),
            ("root_gb", TraitValue::Int(mem / 32)),
            ("launched_at", TraitValue::Datetime(from_micros(launched))),
        ]
        .into_iter()
        .collect();
        let doc = encode_traits(&traits)
            .replace('\\', "\\\\")
            .replace('\'', "''");
        ev.push(
            &mut conn,
            format!("({i},'msg-{i:010x}',{generated},{ty},'{doc}')"),
        )
        .await?;
        for (name, v) in &traits {
            if let (true, TraitValue::Text(t)) = (INDEXED.contains(&name.as_str()), v) {
                tr.push(&mut conn, format!("({i},'{name}',1,'{t}',NULL,NULL,NULL)"))
                    .await?;
            }
        }
        tx_rows += 5;
        if tx_rows >= 200_000 {
            ev.flush(&mut conn).await?;
            tr.flush(&mut conn).await?;
            conn.execute("COMMIT").await?;
            conn.execute("BEGIN").await?;
            tx_rows = 0;
        }
        if i % 100_000 == 0 {
            eprintln!("{i} events ({:.0}s)", started.elapsed().as_secs_f64());
        }
    }
    ev.flush(&mut conn).await?;
    tr.flush(&mut conn).await?;
    conn.execute("COMMIT").await?;

    let mut members: Vec<Vec<u64>> = vec![Vec::new(); a.streams as usize];
    for i in 1..=a.events {
        members[instance_of(i, a.streams, spread) as usize].push(i);
    }
    let triggers = ["test_trigger", "usage", "request"];
    let mut st = Batch::new(
        "INSERT INTO stream (id, first_event, last_event, expire_timestamp, fire_timestamp, name, state, state_serial_no, event_count)",
        a.batch,
    );
    let mut dt = Batch::new(
        "INSERT INTO dist_trait (stream_id, name, type, dt_string, dt_float, dt_int, dt_datetime, dt_timerange_begin, dt_timerange_end)",
        a.batch * 2,
    );
    let mut se = Batch::new("INSERT INTO streamevent (stream_id, event_id)", a.batch * 5);
    conn.execute("BEGIN").await?;
    for s in 1..=a.streams {
        let inst = s - 1;
        let ids = &members[inst as usize];
        if ids.is_empty() {
            continue;
        }
        let first = T0 + (ids[0] as i64) * STEP;
        let last = T0 + (*ids.last().unwrap_or(&ids[0]) as i64) * STEP;
        let roll = rng.gen_range(0..100);
        let state = match roll {
            0..=69 => 6,
            70..=89 => 1,
            90..=92 => 4,
            93..=94 => 5,
            95..=96 => 2,
            97 => 3,
            98 => 7,
            _ => 8,
        };
        let fire = if state == 1 {
            "NULL".to_string()
        } else {
            (last + 3_600_000_000).to_string()
        };
        let name = triggers[(s % 3) as usize];
        st.push(
            &mut conn,
            format!(
                "({s},{first},{last},{},{fire},'{name}',{state},0,{})",
                last + 2 * DAY,
                ids.len()
            ),
        )
        .await?;
        let day = first - first.rem_euclid(DAY);
        dt.push(
            &mut conn,
            format!("({s},'instance_id',1,'inst-{inst:08x}',NULL,NULL,NULL,NULL,NULL)"),
        )
        .await?;
        dt.push(
            &mut conn,
            format!(
                "({s},'timestamp',5,NULL,NULL,NULL,NULL,{day},{})",
                day + DAY
            ),
        )
        .await?;
        for id in ids.iter() {
            se.push(&mut conn, format!("({s},{id})")).await?;
        }
    }
    st.flush(&mut conn).await?;
    dt.flush(&mut conn).await?;
    se.flush(&mut conn).await?;
    conn.execute("COMMIT").await?;
    conn.execute("ANALYZE TABLE event, `trait`, stream, dist_trait, streamevent")
        .await?;
    println!(
        "loaded {}: {} events, {} traits, {} streams, {} dist_traits, {} streamevents in {:.1}s",
        a.database,
        ev.total,
        tr.total,
        st.total,
        dt.total,
        se.total,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
