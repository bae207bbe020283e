//! clap arguments and entry points of `stv3ctl deploy`, `rollback`,
//! `status`, `render` and `inventory show`. `src/main.rs` only dispatches here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::roles::Assets;
use super::Options;
use crate::inventory::{self, Region, SecretStore};

/// Where the inventory and secrets come from.
#[derive(Debug, Clone, Args)]
pub struct InventoryArgs {
    /// The region to act on (a key of `regions:` in the inventory).
    #[arg(long, short = 'r')]
    pub region: String,
    /// Inventory file (YAML).
    #[arg(
        long,
        short = 'i',
        env = "STV3_INVENTORY",
        default_value = "inventory.yaml"
    )]
    pub inventory: PathBuf,
    /// Secrets file (YAML map name: value); `STV3_SECRET_<NAME>` env vars win over it.
    #[arg(long, env = "STV3_SECRETS")]
    pub secrets: Option<PathBuf>,
    /// Accept the known default passwords (guest, testpasswd, password). Labs only.
    #[arg(long)]
    pub allow_insecure_defaults: bool,
}

impl InventoryArgs {
    pub fn resolve(&self) -> Result<Region> {
        let inv = inventory::load(&self.inventory)?;
        let store = SecretStore::load(self.secrets.as_deref(), self.allow_insecure_defaults)?;
        Ok(inventory::resolve(&inv, &self.region, &store)?)
    }
}

/// How to reach hosts and how many at once.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Only these hosts or roles (comma separated; e.g. `worker1,api`).
    #[arg(long, value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Hosts handled in parallel.
    #[arg(long, default_value_t = 10)]
    pub forks: usize,
    /// Add unknown host keys to known_hosts (a changed key is always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// SSH private key (default: the inventory's, else the ssh agent).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// known_hosts file (default: the inventory's, else ~/.ssh/known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl HostArgs {
    fn options(&self) -> Options {
        Options {
            limit: self.limit.clone(),
            forks: self.forks.max(1),
            accept_new_host_keys: self.accept_new_host_keys,
            identity_file: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            ..Options::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// The release tarball (`stv3ctl package` output, with its .sha256 sidecar).
    #[arg(long, short = 'p')]
    pub package: PathBuf,
    /// Plan only: print what would change and change nothing (exit 2 if anything would).
    #[arg(long)]
    pub check: bool,
    /// Show unified diffs of the files that change (secrets redacted).
    #[arg(long)]
    pub diff: bool,
    /// Hosts per rollout batch: 0 = every host at once (after the database
    /// step); N = the db hosts first, then N hosts at a time.
    #[arg(long, default_value_t = 0)]
    pub serial: usize,
    /// Failed hosts tolerated before the rollout stops.
    #[arg(long, default_value_t = 0)]
    pub max_fail: usize,
    /// Do not run database migrations.
    #[arg(long)]
    pub skip_migrate: bool,
    /// Remove a stale region lock first.
    #[arg(long)]
    pub break_lock: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// Release to go back to (default: each host's previous release).
    #[arg(long)]
    pub to: Option<String>,
    /// Hosts per batch (0 = all at once).
    #[arg(long, default_value_t = 0)]
    pub serial: usize,
    /// Failed hosts tolerated before stopping.
    #[arg(long, default_value_t = 0)]
    pub max_fail: usize,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,
    #[command(flatten)]
    pub hosts: HostArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub inv: InventoryArgs,
    /// The host to render for.
    #[arg(long)]
    pub host: String,
    /// Output directory (files land under it at their absolute paths).
    #[arg(long)]
    pub out: PathBuf,
    /// Core count to assume when the host sets no `pipeline_workers`.
    #[arg(long, default_value_t = 2)]
    pub cores: u32,
}

#[derive(Debug, Clone, Subcommand)]
pub enum InventoryCommand {
    /// Print the resolved region and where each value came from.
    Show {
        #[command(flatten)]
        inv: InventoryArgs,
        /// JSON instead of a table (secrets redacted).
        #[arg(long)]
        json: bool,
    },
}

pub fn run_inventory(cmd: InventoryCommand) -> Result<i32> {
    match cmd {
        InventoryCommand::Show { inv, json } => {
            let region = inv.resolve()?;
            print!("{}", inventory::show(&region, json));
            if json {
                println!();
            }
            Ok(0)
        }
    }
}

fn print_report(r: &super::Report, json: bool, show_plans: bool, diff: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    if show_plans {
        for p in &r.plans {
            print!("{}", super::plan::render_plan(p, diff));
        }
    }
    print!("{}", r.table());
}

pub fn run_deploy(assets: &Assets, a: DeployArgs) -> Result<i32> {
    let region = a.inv.resolve()?;
    let opts = Options {
        check: a.check,
        diff: a.diff,
        serial: a.serial,
        max_fail: a.max_fail,
        skip_migrate: a.skip_migrate,
        break_lock: a.break_lock,
        ..a.hosts.options()
    };
    let report = super::deploy(assets, &region, &a.package, &opts).context("deploy")?;
    if a.check && !a.hosts.json {
        println!("PLAN ONLY - nothing was changed");
    }
    print_report(&report, a.hosts.json, a.check || a.diff, a.diff || a.check);
    if a.check && !a.hosts.json {
        println!("PLAN ONLY - nothing was changed");
    }
    Ok(report.exit_code())
}

pub fn run_rollback(assets: &Assets, a: RollbackArgs) -> Result<i32> {
    let region = a.inv.resolve()?;
    let opts = Options {
        serial: a.serial,
        max_fail: a.max_fail,
        ..a.hosts.options()
    };
    let report = super::rollback(assets, &region, a.to.as_deref(), &opts).context("rollback")?;
    print_report(&report, a.hosts.json, false, false);
    Ok(report.exit_code())
}

pub fn run_status(assets: &Assets, a: StatusArgs) -> Result<i32> {
    let region = a.inv.resolve()?;
    let (rows, failed) = super::status(assets, &region, &a.hosts.options())?;
    if a.hosts.json {
        println!(
            "{}",
            serde_json::json!({"services": rows, "unreachable": failed})
        );
    } else {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(vec!["host", "release", "service", "running", "/health"]);
        for r in &rows {
            t.add_row(vec![
                r.host.clone(),
                r.release.clone(),
                r.service.clone(),
                if r.running { "yes".into() } else { "NO".into() },
                r.health.clone(),
            ]);
        }
        println!("{t}");
        for f in &failed {
            println!(
                "{}: UNREACHABLE: {}",
                f.host,
                f.error.as_deref().unwrap_or("")
            );
        }
    }
    let bad = !failed.is_empty()
        || rows
            .iter()
            .any(|r| !r.running || (r.health != "200" && r.health != "-"));
    Ok(if bad { 1 } else { 0 })
}

pub fn run_render(assets: &Assets, a: RenderArgs) -> Result<i32> {
    let region = a.inv.resolve()?;
    let model = super::render_to_dir(assets, &region, &a.host, a.cores, &a.out)?;
    for f in &model.files {
        println!(
            "{:o} {}:{} {}",
            f.mode,
            f.owner,
            f.group,
            Path::new(&a.out)
                .join(f.path.trim_start_matches('/'))
                .display()
        );
    }
    Ok(0)
}
