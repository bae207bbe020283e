//! The embedded source: JSON lines from a file (`--source file:PATH`, optionally
//! `--follow`) or stdin (`--source stdin`), for a sandbox without a broker.
//!
//! The file offset is checkpointed only after the chain made a batch durable (write to a
//! temp file, fsync, rename, fsync the directory), so a restart resumes exactly after the
//! last durable batch: nothing lost, and a batch redone after a crash is deduplicated by
//! the chain. A last line without a newline is taken at EOF (not with `--follow`, where
//! it waits for the newline). Blank lines are skipped. stdin has no checkpoint.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chain::{BoxFut, CommitToken, RawMessage, Source, SourceBatch};

enum Input {
    File {
        path: PathBuf,
        reader: BufReader<File>,
    },
    Stdin(BufReader<std::io::Stdin>),
}

pub struct FileSource {
    input: Input,
    checkpoint: Option<PathBuf>,
    /// Offset of the next byte to read.
    pos: u64,
    max: usize,
    follow: bool,
    poll: Duration,
    exchange: String,
    routing_key: String,
}

/// Where the checkpoint of `path` lives in `state_dir`.
pub fn checkpoint_path(state_dir: &Path, path: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name: String = abs
        .display()
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join(format!("{}.offset", name.trim_start_matches('_')))
}

fn read_checkpoint(path: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "{}: checkpoint {:?} is not a byte offset",
                path.display(),
                s.trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

fn write_checkpoint(path: &Path, offset: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("offset.tmp");
    {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{offset}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl FileSource {
    /// Open `path`, resuming from the checkpoint in `state_dir` (if any).
    pub fn open(path: &Path, state_dir: &Path, max: usize, follow: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| anyhow::anyhow!("create {}: {e}", state_dir.display()))?;
        let cp = checkpoint_path(state_dir, path);
        let offset = read_checkpoint(&cp)?;
        let mut f =
            File::open(path).map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
        let len = f.metadata()?.len();
        if offset > len {
            anyhow::bail!(
                "{}: checkpoint offset {offset} is beyond the end of the file ({len} bytes): was it truncated or replaced? Remove {} to start over",
                path.display(),
                cp.display()
            );
        }
        f.seek(SeekFrom::Start(offset))?;
        if offset > 0 {
            tracing::info!(file = %path.display(), offset, "resuming after the checkpoint");
        }
        Ok(FileSource {
            input: Input::File {
                path: path.to_path_buf(),
                reader: BufReader::with_capacity(1 << 20, f),
            },
            checkpoint: Some(cp),
            pos: offset,
            max: max.max(1),
            follow,
            poll: Duration::from_millis(200),
            exchange: String::new(),
            routing_key: format!("file:{}", path.display()),
        })
    }

    pub fn stdin(max: usize) -> Self {
        FileSource {
            input: Input::Stdin(BufReader::new(std::io::stdin())),
            checkpoint: None,
            pos: 0,
            max: max.max(1),
            follow: false,
            poll: Duration::from_millis(200),
            exchange: String::new(),
            routing_key: "stdin".into(),
        }
    }

    /// Read up to `max` lines without blocking on a growing file.
    /// Returns (messages, hit_eof).
    fn read_some(&mut self) -> anyhow::Result<(Vec<RawMessage>, bool)> {
        let mut out = Vec::new();
        let mut line = Vec::new();
        while out.len() < self.max {
            line.clear();
            let n = match &mut self.input {
                Input::File { reader, path } => reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?,
                Input::Stdin(r) => r
                    .read_until(b'\n', &mut line)
                    .map_err(|e| anyhow::anyhow!("read stdin: {e}"))?,
            };
            if n == 0 {
                return Ok((out, true));
            }
            if line.last() != Some(&b'\n') && self.follow {
                // Partial line on a growing file: give it back and wait for the newline.
                if let Input::File { reader, .. } = &mut self.input {
                    reader.seek(SeekFrom::Start(self.pos))?;
                }
                return Ok((out, true));
            }
            self.pos += n as u64;
            let body = trim_eol(&line);
            if body.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            out.push(RawMessage {
                body: body.to_vec(),
                exchange: self.exchange.clone(),
                routing_key: self.routing_key.clone(),
                tag: self.pos,
            });
        }
        Ok((out, false))
    }
}

fn trim_eol(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && (l[end - 1] == b'\n' || l[end - 1] == b'\r') {
        end -= 1;
    }
    &l[..end]
}

impl Source for FileSource {
    fn next_batch(&mut self) -> BoxFut<'_, anyhow::Result<Option<SourceBatch>>> {
        Box::pin(async move {
            loop {
                // Blocking reads: files are local and reads are short; stdin may block, which
                // is what a pipe consumer wants.
                let (messages, eof) = self.read_some()?;
                if !messages.is_empty() {
                    let last_tag = messages.last().map(|m| m.tag).unwrap_or(self.pos);
                    return Ok(Some(SourceBatch {
                        messages,
                        token: CommitToken {
                            generation: 0,
                            last_tag,
                        },
                    }));
                }
                if eof && !self.follow {
                    return Ok(None);
                }
                tokio::time::sleep(self.poll).await;
            }
        })
    }

    fn commit(&mut self, token: CommitToken) -> BoxFut<'_, anyhow::Result<()>> {
        Box::pin(async move {
            if let Some(cp) = &self.checkpoint {
                write_checkpoint(cp, token.last_tag)
                    .map_err(|e| anyhow::anyhow!("checkpoint {}: {e}", cp.display()))?;
            }
            Ok(())
        })
    }

    fn abort(&mut self, _token: CommitToken) -> BoxFut<'_, ()> {
        // Nothing to give back: the checkpoint was not advanced.
        Box::pin(async {})
    }
}
