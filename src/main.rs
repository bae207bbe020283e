//! `stv3ctl`: package, deploy, test and run StackTach.v3 (stv3).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// `<version> (<git sha>)`, with `-dirty` when built from a modified tree.
fn version() -> &'static str {
    let dirty = if env!("STV3_GIT_DIRTY") == "true" {
        "-dirty"
    } else {
        ""
    };
    Box::leak(
        format!(
            "{} ({}{dirty})",
            env!("CARGO_PKG_VERSION"),
            env!("STV3_GIT_SHA")
        )
        .into_boxed_str(),
    )
}

#[derive(Parser)]
#[command(name = "stv3ctl", version = version(), about = "Package, deploy, test and run stv3 (StackTach.v3 in Rust)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every test suite and print a summary (the README's test command).
    Test {
        /// Only the suites that need no RabbitMQ, MariaDB or sshd.
        #[arg(long)]
        quick: bool,
        /// Extra arguments for the test binaries, e.g. a test name filter.
        #[arg(last = true)]
        test_args: Vec<String>,
    },
    /// List the templates and role files embedded in this binary.
    Embedded,
    /// Build the core binaries and pack a reproducible release tarball
    /// (`dist/stv3-<version>-<target>.tar.gz` + `.sha256`); `verify`/`inspect` one.
    Package(stv3_deployer::package::cli::PackageArgs),
    /// Deploy a release to a region: plan (`--check`), then roll out with health gates.
    Deploy(stv3_deployer::deploy::cli::DeployArgs),
    /// Switch a region back to the previous (or a given) release.
    Rollback(stv3_deployer::deploy::cli::RollbackArgs),
    /// Release, service state and /health of every host of a region.
    Status(stv3_deployer::deploy::cli::StatusArgs),
    /// Write the files a host would get into a directory (no connection).
    Render(stv3_deployer::deploy::cli::RenderArgs),
    /// Run the whole system locally (SQLite + file source by default); `down`, `status`, `reset`.
    Sandbox(stv3_deployer::sandbox::cli::SandboxArgs),
    /// Load a whole region on this machine (RabbitMQ + MariaDB) and measure it end to end,
    /// beside the raw broker and, with --original, the original StackTach.v3.
    Bench(stv3_deployer::bench::cli::BenchArgs),
    /// Inspect the inventory.
    Inventory {
        #[command(subcommand)]
        command: stv3_deployer::deploy::cli::InventoryCommand,
    },
}

/// The templates and roles this binary was built with.
fn assets() -> stv3_deployer::deploy::roles::Assets {
    stv3_deployer::deploy::roles::Assets::from_embedded(EMBEDDED)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Test { quick, test_args } => {
            stv3_deployer::testrun::run(&stv3_deployer::testrun::TestOptions {
                quick,
                cargo_args: vec![],
                test_args,
            })
        }
        Cmd::Embedded => {
            for (path, text) in EMBEDDED {
                println!("{path}\t{} bytes", text.len());
            }
            Ok(0)
        }
        Cmd::Package(args) => stv3_deployer::package::cli::run(args),
        Cmd::Deploy(args) => stv3_deployer::deploy::cli::run_deploy(&assets(), args),
        Cmd::Rollback(args) => stv3_deployer::deploy::cli::run_rollback(&assets(), args),
        Cmd::Status(args) => stv3_deployer::deploy::cli::run_status(&assets(), args),
        Cmd::Render(args) => stv3_deployer::deploy::cli::run_render(&assets(), args),
        Cmd::Sandbox(args) => stv3_deployer::sandbox::cli::run(&assets(), args),
        Cmd::Bench(args) => stv3_deployer::bench::run(&assets(), args),
        Cmd::Inventory { command } => stv3_deployer::deploy::cli::run_inventory(command),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code.clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("stv3ctl: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
