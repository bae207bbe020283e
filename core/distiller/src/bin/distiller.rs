//! `distiller`: run event definitions over JSON-lines notifications and
//! print one canonical event per line (`Event::to_canonical_line`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use stv3_distiller::{DistillError, Distiller, Outcome};

/// Distill OpenStack notifications (JSON lines) into canonical events.
///
/// Reads the FILEs (or stdin) one notification per line and writes one
/// canonical event per line to stdout: keys sorted, compact, traits sorted,
/// datetimes as YYYY-MM-DDTHH:MM:SS.ffffffZ. Notifications no definition
/// matches produce no line. Problems go to stderr as FILE:LINE: ...; the
/// exit code is 1 when any line could not be distilled.
#[derive(Parser, Debug)]
#[command(name = "distiller", version, about, long_about)]
struct Args {
    /// event_definitions.yaml to load
    #[arg(long, short = 'd', value_name = "FILE")]
    definitions: PathBuf,
    /// Add a '*' definition (default traits only) when none catches everything
    #[arg(long)]
    catchall: bool,
    /// Do not report dropped traits line by line (the summary still counts them)
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Notification files, JSON lines (stdin when none, or "-")
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Default)]
struct Counts {
    lines: u64,
    events: u64,
    unmatched: u64,
    failed: u64,
    dropped_traits: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("distiller: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let args = Args::parse();
    let distiller = Distiller::from_file(&args.definitions, args.catchall)?;
    for w in distiller.warnings() {
        eprintln!("warning: {w}");
    }
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut counts = Counts::default();
    let inputs: Vec<PathBuf> = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    for input in &inputs {
        let name = if input.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            input.display().to_string()
        };
        let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
            Box::new(BufReader::new(io::stdin()))
        } else {
            Box::new(BufReader::with_capacity(
                1 << 16,
                File::open(input).with_context(|| format!("cannot open {name}"))?,
            ))
        };
        process(&distiller, reader, &name, &mut out, &mut counts, args.quiet)?;
    }
    out.flush().context("writing stdout")?;
    eprintln!(
        "distiller: {} notifications, {} events, {} unmatched, {} failed, {} traits dropped",
        counts.lines, counts.events, counts.unmatched, counts.failed, counts.dropped_traits
    );
    Ok(counts.failed == 0)
}

fn process(
    distiller: &Distiller,
    mut reader: Box<dyn BufRead>,
    name: &str,
    out: &mut impl Write,
    counts: &mut Counts,
    quiet: bool,
) -> Result<()> {
    let mut buf = Vec::with_capacity(8192);
    let mut lineno = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {name}"))?;
        if n == 0 {
            return Ok(());
        }
        lineno += 1;
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        counts.lines += 1;
        match distiller.distill_bytes(&buf) {
            Ok(Outcome::Event { event, diagnostics }) => {
                counts.events += 1;
                counts.dropped_traits += diagnostics.dropped_traits.len() as u64;
                if !quiet {
                    for d in &diagnostics.dropped_traits {
                        eprintln!(
                            "{name}:{lineno}: message {}: trait '{}' dropped: {}",
                            event.message_id, d.name, d.reason
                        );
                    }
                }
                out.write_all(event.to_canonical_line().as_bytes())?;
                out.write_all(b"\n")?;
            }
            Ok(Outcome::Unmatched { .. }) => counts.unmatched += 1,
            Err(e) => {
                counts.failed += 1;
                match e {
                    DistillError::Json(_) => eprintln!("{name}:{lineno}: {e}"),
                    _ => eprintln!("{name}:{lineno}: cannot distill: {e}"),
                }
            }
        }
    }
}
