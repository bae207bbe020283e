//! clap front end for `stv3ctl sandbox [up|down|status|reset]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::SandboxOptions;

/// `stv3ctl sandbox`: run the whole system locally.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub action: Option<SandboxAction>,
    #[command(flatten)]
    pub up: UpArgs,
}

#[derive(Debug, Subcommand)]
pub enum SandboxAction {
    /// Build, render configs, migrate, and start everything (the default).
    Up(UpArgs),
    /// Stop a sandbox started from another shell.
    Down(DirArg),
    /// Show which processes run and the current counts.
    Status(DirArg),
    /// Stop everything and delete the work directory.
    Reset(DirArg),
}

#[derive(Debug, Clone, Args)]
pub struct DirArg {
    /// Work directory.
    #[arg(long, default_value = ".stv3-sandbox")]
    pub dir: PathBuf,
    /// API address (for status).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub api: String,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Work directory for configs, data, logs and pids.
    #[arg(long, default_value = ".stv3-sandbox")]
    pub dir: PathBuf,
    /// Use a real RabbitMQ (per-cell queues as in production) instead of the file source.
    #[arg(long)]
    pub amqp: Option<String>,
    /// Use a real database (e.g. mysql://root@127.0.0.1/stv3) instead of SQLite.
    #[arg(long)]
    pub db: Option<String>,
    /// API listen address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub api: String,
    /// Pipeline workers.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Notifications generated per cell.
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
    /// Simulated instances per cell.
    #[arg(long, default_value_t = 200)]
    pub instances: u64,
    /// notigen seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Build and run release binaries.
    #[arg(long)]
    pub release: bool,
    /// Use already-built binaries.
    #[arg(long)]
    pub no_build: bool,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub seconds: Option<u64>,
}

impl From<UpArgs> for SandboxOptions {
    fn from(a: UpArgs) -> Self {
        SandboxOptions {
            dir: a.dir,
            amqp: a.amqp,
            db: a.db,
            api_addr: a.api,
            workers: a.workers,
            count: a.count,
            instances: a.instances,
            seed: a.seed,
            release: a.release,
            no_build: a.no_build,
            duration: a.seconds.map(Duration::from_secs),
            ..SandboxOptions::default()
        }
    }
}

/// Run the chosen action; returns the exit code.
pub fn run(assets: &crate::deploy::roles::Assets, args: SandboxArgs) -> Result<i32> {
    match args.action {
        None => super::up(assets, &args.up.into()),
        Some(SandboxAction::Up(up)) => super::up(assets, &up.into()),
        Some(SandboxAction::Down(d)) => {
            let n = super::down(&d.dir)?;
            println!("stopped {n} process(es) in {}", d.dir.display());
            Ok(0)
        }
        Some(SandboxAction::Status(d)) => super::print_status(&d.dir, &d.api),
        Some(SandboxAction::Reset(d)) => {
            super::reset(&d.dir)?;
            println!("removed {}", d.dir.display());
            Ok(0)
        }
    }
}
