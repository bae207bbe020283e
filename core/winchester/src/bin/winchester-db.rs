//! winchester-db: schema administration for the winchester event store
//! (the original `winchester_db` alembic wrapper). The only program that runs
//! migrations; every other process checks the schema version on start and
//! refuses to run on an old one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use stv3_winchester::store::url::{redact, DbUrl};
use stv3_winchester::store::{AnyStore, MySqlStore, SqliteStore, Store};
use stv3_winchester::WinchesterConfig;

#[derive(Parser, Debug)]
#[command(name = "winchester-db", version = stv3_telemetry::version_string(env!("CARGO_PKG_VERSION")),
          about = "Create and upgrade the winchester event store schema (MySQL/MariaDB or SQLite)")]
struct Cli {
    /// winchester.yaml (its database.url is used).
    #[arg(short, long, default_value = "winchester.yaml", conflicts_with = "url")]
    config: PathBuf,
    /// Database URL instead of --config (mysql://user:pass@host/db, sqlite:///path.db).
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    log: stv3_telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Apply all pending migrations (to "head").
    Upgrade {
        /// Print the DDL of the pending migrations instead of running it
        /// (all of them when the database is unreachable).
        #[arg(long)]
        sql: bool,
        /// Accepted for compatibility with `winchester_db upgrade head`; only "head" is supported.
        #[arg(default_value = "head")]
        revision: String,
    },
    /// Show the applied schema version and whether it is current.
    Current,
    /// List the known migrations and which are applied.
    History,
    /// Trait names with index rows: filters on them use the index; filters on
    /// other traits scan the events' traits documents.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
}

#[derive(Subcommand, Debug)]
enum IndexCommand {
    /// List the indexed trait names and whether each is ready.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Index a trait name: new events get index rows at once, stored events
    /// are backfilled, then filters on it use the index alone.
    Add {
        /// Trait names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn migrator(url: &DbUrl) -> &'static sqlx::migrate::Migrator {
    match url {
        DbUrl::Sqlite(_) => SqliteStore::migrator(),
        DbUrl::MySql(_) => MySqlStore::migrator(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = match &cli.url {
        Some(u) => u.clone(),
        None => WinchesterConfig::load(&cli.config)?.database.url,
    };
    let parsed = DbUrl::parse(&url)?;
    let known = migrator(&parsed);
    match cli.command {
        Command::Upgrade { sql, revision } => {
            if revision != "head" {
                bail!("only `upgrade head` is supported (got {revision:?})");
            }
            if sql {
                let applied: Vec<i64> = match AnyStore::connect(&url).await {
                    Ok(s) => s
                        .migration_history()
                        .await?
                        .into_iter()
                        .map(|(v, _)| v)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                for m in known.iter().filter(|m| !applied.contains(&m.version)) {
                    println!("-- {} {}", m.version, m.description);
                    println!("{}", m.sql.trim_end());
                    println!();
                }
                return Ok(());
            }
            let store = AnyStore::connect(&url)
                .await
                .with_context(|| format!("connecting to {}", redact(&url)))?;
            let applied = store.migrate().await?;
            if applied.is_empty() {
                println!(
                    "schema is current (version {})",
                    known.iter().map(|m| m.version).max().unwrap_or(0)
                );
            } else {
                for v in applied {
                    println!("applied {v}");
                }
            }
        }
        Command::Current => {
            let store = AnyStore::connect(&url)
                .await
                .with_context(|| format!("connecting to {}", redact(&url)))?;
            let hist = store.migration_history().await?;
            match hist.last() {
                None => println!("no schema (run `winchester-db upgrade`)"),
                Some((v, d)) => println!("{v} {d}"),
            }
            if let Err(e) = store.check_schema().await {
                println!("{e}");
                std::process::exit(2);
            }
            println!("(head)");
        }
        Command::Index { command } => {
            let store = AnyStore::open(&url)
                .await
                .with_context(|| format!("connecting to {}", redact(&url)))?;
            match command {
                IndexCommand::List { json } => {
                    let list = store.trait_index().await?;
                    if json {
                        let v: Vec<_> = list
                            .iter()
                            .map(|t| serde_json::json!({"name": t.name, "ready": t.ready}))
                            .collect();
                        println!("{}", serde_json::Value::Array(v));
                    } else {
                        println!("{:<40} READY", "TRAIT");
                        for t in list {
                            println!(
                                "{:<40} {}",
                                t.name,
                                if t.ready {
                                    "yes"
                                } else {
                                    "no (backfill pending: run `index add` again)"
                                }
                            );
                        }
                    }
                }
                IndexCommand::Add { names } => {
                    for n in names {
                        let rows = store.add_trait_index(&n).await?;
                        println!("indexed {n}: {rows} rows backfilled, ready");
                    }
                }
            }
        }
        Command::History => {
            let applied: Vec<i64> = match AnyStore::connect(&url).await {
                Ok(s) => s
                    .migration_history()
                    .await?
                    .into_iter()
                    .map(|(v, _)| v)
                    .collect(),
                Err(e) => {
                    eprintln!("warning: cannot read applied migrations: {e}");
                    Vec::new()
                }
            };
            for m in known.iter() {
                let mark = if applied.contains(&m.version) {
                    "applied"
                } else {
                    "pending"
                };
                println!("{} {:<8} {}", m.version, mark, m.description);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    stv3_telemetry::init_logging(&cli.log);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("winchester-db: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("winchester-db: {e:#}");
            ExitCode::FAILURE
        }
    }
}
