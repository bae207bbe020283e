//! The clap front end of `stv3ctl package` (build), `package verify` and
//! `package inspect`. This is the edge: it probes, prints and picks the exit
//! code; the work is in the sibling modules.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::{inspect, probe, BuildInfo, PackageOptions};

/// `stv3ctl package …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PackageArgs {
    #[command(subcommand)]
    pub command: Option<PackageCommand>,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Options of the packaging run itself.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Target triple to build for (repeat for several; default: the host).
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<String>,
    /// Output folder (default: `dist/` in the workspace root).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Cargo profile to build with.
    #[arg(long, default_value = "release", value_name = "NAME")]
    pub profile: String,
    /// Package prebuilt binaries from DIR instead of running cargo build.
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    /// Fail if any core binary is missing (default: warn and package the rest).
    #[arg(long)]
    pub require_all: bool,
    /// Print the plan (binaries, cargo commands, outputs) and stop.
    #[arg(long)]
    pub plan: bool,
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Check a tarball against its .sha256 sidecar and its MANIFEST.json.
    Verify {
        /// The .tar.gz (its sidecar is FILE.sha256).
        file: PathBuf,
    },
    /// Show the MANIFEST.json of a tarball.
    Inspect {
        /// The .tar.gz.
        file: PathBuf,
        /// Print the manifest as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// Run `stv3ctl package`; returns the exit code.
pub fn run(args: PackageArgs) -> Result<i32> {
    match args.command {
        Some(PackageCommand::Verify { file }) => match super::verify_tarball(&file) {
            Ok(v) => {
                println!(
                    "OK {}: {}-{} {} ({} files, sha256 {})",
                    file.display(),
                    v.manifest.name,
                    v.manifest.version,
                    v.manifest.target,
                    v.manifest.files.len() + 1,
                    v.sha256
                );
                Ok(0)
            }
            Err(e) => {
                eprintln!("stv3ctl: {e}");
                Ok(1)
            }
        },
        Some(PackageCommand::Inspect { file, json }) => {
            let m = inspect::read_manifest(&file)?;
            let text = if json {
                m.to_json()
            } else {
                inspect::render_table(&m)
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(0)
        }
        None => build(args.build),
    }
}

fn build(args: BuildArgs) -> Result<i32> {
    let cwd = std::env::current_dir().context("current directory")?;
    let ws = probe::Workspace::load(&cwd)?;
    let info = BuildInfo::detect(&ws, &args.profile)?;
    let opts = PackageOptions {
        targets: args.targets,
        out_dir: args.out.unwrap_or_else(|| ws.root.join("dist")),
        profile: args.profile,
        from_dir: args.from_dir,
        require_all: args.require_all,
    };
    let plan = super::plan(&opts, &ws, &info)?;
    if args.plan {
        print!("{}", plan.render());
        return Ok(0);
    }
    if !plan.selection.missing.is_empty() {
        eprintln!(
            "stv3ctl: warning: core binaries not in {} yet, not packaged: {}",
            if opts.from_dir.is_some() {
                "--from-dir"
            } else {
                "the workspace"
            },
            plan.selection.missing.join(", ")
        );
    }
    if info.git.dirty {
        eprintln!(
            "stv3ctl: warning: the work tree has uncommitted changes; the manifest says dirty=true"
        );
    }
    for out in super::apply(&plan, true)? {
        for w in &out.warnings {
            eprintln!("stv3ctl: warning: {w}");
        }
        println!(
            "{}  {}  {} bytes",
            out.tarball.display(),
            out.sha256,
            out.size
        );
    }
    Ok(0)
}
