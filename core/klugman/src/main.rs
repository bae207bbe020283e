//! `klugman`: query the StackTach.v3 REST API from the command line.

use clap::Parser;

#[tokio::main]
async fn main() {
    let args = klugman::cli::compat_args(std::env::args_os().collect());
    let cli = klugman::Cli::parse_from(args);
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    if let Err(e) = klugman::run(&cli, &mut out, &mut err).await {
        eprintln!("klugman: error: {e}");
        std::process::exit(e.exit_code());
    }
}
