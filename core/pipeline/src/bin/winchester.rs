//! `winchester`: offline winchester tools. `winchester replay` runs
//! notifications through triggers and pipelines with the clock taken from the
//! notifications and prints the resulting streams and emitted events.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use stv3_pipeline::replay::{parse_advance, replay, ReplayOptions};
use stv3_pipeline::setup;
use stv3_telemetry::{init_logging, version_string, LogArgs};

#[derive(Parser, Debug)]
#[command(name = "winchester", version = version_string(env!("CARGO_PKG_VERSION")))]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay JSON-lines notifications (clock = each notification's timestamp) and print
    /// `{"streams":[…],"emitted":[…]}` as JSON.
    Replay {
        /// winchester.yaml (triggers, pipelines, distiller config; its database is NOT used).
        #[arg(short, long, default_value = "winchester.yaml")]
        config: PathBuf,
        /// Move the clock this far past the newest notification before the pipeline phase (e.g. 2d, 36h).
        #[arg(long, default_value = "2d", value_parser = parse_advance)]
        advance: chrono::Duration,
        /// Keep completed streams (state `completed`) instead of purging them.
        #[arg(long)]
        keep_completed: bool,
        /// Scratch database URL (migrated); default in-memory SQLite.
        #[arg(long, default_value = "sqlite::memory:")]
        db: String,
        /// Notification files (JSON lines), processed in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log);
    match cli.command {
        Command::Replay {
            config,
            advance,
            keep_completed,
            db,
            files,
        } => {
            let cfg = setup::load_config(&config)?;
            let opts = ReplayOptions {
                advance,
                keep_completed,
                db_url: db,
                ..Default::default()
            };
            let doc = replay(&cfg, &files, &opts).await?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(())
}
