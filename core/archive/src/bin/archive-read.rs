//! archive-read: stream the notifications of archive files back out as JSON lines.
//! Detects gzip JSON lines (`.json.gz`), plain JSON lines (a working file) and the
//! original shoebox binary v1 format by their first bytes.
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use stv3_archive::binary_v1::{BinaryV1Reader, MAGIC_BYTES};
use stv3_archive::{unwrap_region, JsonlReader, GZIP_MAGIC};

/// Print the notifications stored in shoebox/stv3 archive files as JSON lines on stdout.
///
/// Formats: gzip JSON lines (finished `.json.gz`), plain JSON lines (working files) and
/// the original shoebox binary v1 records. Exits non-zero at the first damaged file,
/// naming the file and the byte offset (uncompressed offset for gzip files).
#[derive(Debug, Parser)]
#[command(name = "archive-read", version = stv3_telemetry::version_string(env!("CARGO_PKG_VERSION")))]
struct Args {
    /// Archive files to read, in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Print the inner notification of `{"region","cell","notification"}` wrappers.
    #[arg(long)]
    unwrap_region: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    GzipJsonl,
    Jsonl,
    BinaryV1,
}

fn detect(path: &Path) -> Result<Format> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut got = 0;
    while got < head.len() {
        let n = f
            .read(&mut head[got..])
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = &head[..got];
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Format::GzipJsonl)
    } else if head == MAGIC_BYTES {
        Ok(Format::BinaryV1)
    } else if head.is_empty() || matches!(head[0], b'{' | b'[' | b' ' | b'\t' | b'\r' | b'\n') {
        Ok(Format::Jsonl)
    } else {
        bail!(
            "{}: byte offset 0: unknown format (not gzip, not JSON lines, not shoebox binary v1)",
            path.display()
        )
    }
}

/// Write one notification (already a JSON value) as one line.
fn emit(out: &mut impl Write, v: &serde_json::Value, unwrap: bool) -> io::Result<()> {
    let v = if unwrap {
        unwrap_region(v).unwrap_or(v)
    } else {
        v
    };
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

fn read_file(path: &Path, unwrap: bool, out: &mut impl Write) -> Result<u64> {
    let mut count = 0;
    match detect(path)? {
        Format::GzipJsonl | Format::Jsonl => {
            let mut reader = JsonlReader::open(path)?;
            while let Some(line) = reader.next() {
                let line = line?;
                let v = reader.parse_json(&line)?;
                emit(out, &v, unwrap)?;
                count += 1;
            }
        }
        Format::BinaryV1 => {
            let file =
                File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
            let mut reader = BinaryV1Reader::new(BufReader::new(file));
            loop {
                let offset = reader.offset();
                let record = reader
                    .read_record()
                    .with_context(|| format!("{}", path.display()))?;
                let Some((_metadata, payload)) = record else {
                    break;
                };
                let v: serde_json::Value = serde_json::from_slice(&payload).with_context(|| {
                    format!(
                        "{}: byte offset {offset}: the payload is not valid JSON",
                        path.display()
                    )
                })?;
                emit(out, &v, unwrap)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

fn run(args: &Args) -> Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for path in &args.files {
        read_file(path, args.unwrap_region, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // a closed pipe (`archive-read x | head`) is not an error
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("archive-read: {e:#}");
            ExitCode::FAILURE
        }
    }
}
