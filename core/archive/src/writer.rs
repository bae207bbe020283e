//! `ArchiveWriter`: the rolling JSON-lines archive (the shoebox WritingJSONRollManager).
//!
//! Durability contract: [`ArchiveWriter::write_batch`] returns `Ok` only after the records
//! are written and fsynced to the working file, so anything acknowledged after it survives
//! a crash. A roll compresses the working file into a temporary name in the destination,
//! fsyncs it, renames it to its final name, fsyncs the directory, then deletes the working
//! file. At start-up the writer finishes its own leftover working files (those with its
//! `writer_id` prefix), dropping a trailing partial line that was never acknowledged.
//!
//! With [`ArchiveWriter::with_background_rolls`] (what `yagi-event` uses), an automatic
//! roll hands the full working file to a compression thread and the next batch goes to a
//! new working file at once, so a batch never waits for gzip. At most one compression
//! runs: a roll that comes due while the previous one still runs waits for it. A failed
//! background roll leaves its working file in place (durable, still this writer's) and is
//! retried like a failed inline roll; a crash mid-roll is finished by the recovery above.
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::TimeDelta;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::value::Value;
use sha2::{Digest, Sha256};
use stv3_event::Timestamp;

use crate::config::ArchiveConfig;
use crate::error::{ArchiveError, IoContext};
use crate::filename;

/// Where the writer gets "now" from (file names and the time roll). Tests inject a fake.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

const WORKING_CRC: &str = "working";

struct Active {
    file: File,
    path: PathBuf,
    size: u64,
    opened_at: Timestamp,
    /// a failed write may have left a partial record after `size` bytes
    dirty: bool,
}

/// The rolling archive writer. Not shared: one writer per working directory prefix.
pub struct ArchiveWriter {
    cfg: ArchiveConfig,
    clock: Clock,
    active: Option<Active>,
    recovered: Vec<PathBuf>,
    last_roll_error: Option<String>,
    /// after a failed automatic roll, the next automatic attempt waits until then
    retry_roll_at: Option<Timestamp>,
    /// automatic rolls compress on a thread ([`ArchiveWriter::with_background_rolls`])
    background: bool,
    /// the compression thread of the current background roll
    rolling: Option<Rolling>,
    /// working files (already closed) whose roll failed; retried after the back-off
    unrolled: Vec<PathBuf>,
}

struct Rolling {
    working: PathBuf,
    handle: std::thread::JoinHandle<Result<PathBuf, ArchiveError>>,
}

/// How long an automatic roll waits after a failed one (each attempt re-reads the file).
const ROLL_RETRY_DELAY: TimeDelta = TimeDelta::seconds(60);

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("cfg", &self.cfg)
            .field("working_file", &self.working_file())
            .field("working_size", &self.working_size())
            .finish()
    }
}

impl Drop for ArchiveWriter {
    /// Let a background compression finish (a kill instead is covered by the recovery).
    fn drop(&mut self) {
        if self.rolling.is_some() {
            let _ = self.wait_for_rolls();
        }
    }
}

impl ArchiveWriter {
    /// Create the directories, then recover this writer's leftover working files.
    pub fn open(cfg: ArchiveConfig) -> Result<Self, ArchiveError> {
        Self::open_with_clock(cfg, Arc::new(stv3_event::now))
    }

    /// As [`ArchiveWriter::open`] with an explicit clock.
    pub fn open_with_clock(cfg: ArchiveConfig, clock: Clock) -> Result<Self, ArchiveError> {
        cfg.validate()?;
        for dir in [&cfg.working_directory, &cfg.destination_folder] {
            fs::create_dir_all(dir).ctx(dir, "create directory")?;
        }
        let mut w = ArchiveWriter {
            cfg,
            clock,
            active: None,
            recovered: Vec::new(),
            last_roll_error: None,
            retry_roll_at: None,
            background: false,
            rolling: None,
            unrolled: Vec::new(),
        };
        w.remove_partials()?;
        w.recover()?;
        Ok(w)
    }

    /// Compress automatic rolls (size, age) on a background thread instead of inside
    /// `write_batch`/`tick`. Explicit [`ArchiveWriter::roll`] stays synchronous.
    pub fn with_background_rolls(mut self) -> Self {
        self.background = true;
        self
    }

    /// Wait for the background roll in flight, if any. Returns the finished file.
    pub fn wait_for_rolls(&mut self) -> Result<Option<PathBuf>, ArchiveError> {
        let Some(r) = self.rolling.take() else {
            return Ok(None);
        };
        let result = r.handle.join().unwrap_or_else(|p| {
            Err(ArchiveError::Config(format!(
                "internal: the archive compression thread panicked: {}",
                p.downcast_ref::<&str>()
                    .copied()
                    .or_else(|| p.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("?")
            )))
        });
        match result {
            Ok(done) => {
                tracing::info!(archive = %done.display(), "archive rolled");
                self.last_roll_error = None;
                Ok(Some(done))
            }
            Err(e) => {
                tracing::warn!(working = %r.working.display(), error = %e,
                    "background archive roll failed; the data stays in the working file and the roll is retried");
                self.note_roll_failure((self.clock)(), e.to_string());
                self.unrolled.push(r.working);
                Err(e)
            }
        }
    }

    /// Remember a failed roll: report it, and back off automatic rolls for a while.
    fn note_roll_failure(&mut self, now: Timestamp, error: String) {
        self.last_roll_error = Some(error);
        self.retry_roll_at = now.checked_add_signed(ROLL_RETRY_DELAY);
    }

    /// Collect a finished background roll without blocking.
    fn reap_roll(&mut self) -> Option<PathBuf> {
        if self
            .rolling
            .as_ref()
            .is_some_and(|r| r.handle.is_finished())
        {
            self.wait_for_rolls().ok().flatten()
        } else {
            None
        }
    }

    /// Start compressing `working` on a thread (after the previous one finished).
    fn roll_in_background(&mut self, working: PathBuf, now: Timestamp) -> Option<PathBuf> {
        let previous = self.wait_for_rolls().ok().flatten();
        let cfg = self.cfg.clone();
        let prefix = self.partial_prefix();
        let path = working.clone();
        let handle = std::thread::Builder::new()
            .name("archive-roll".into())
            .spawn(move || finish_file(&cfg, &prefix, &path, now));
        match handle {
            Ok(handle) => self.rolling = Some(Rolling { working, handle }),
            Err(e) => {
                self.note_roll_failure(now, format!("cannot start the compression thread: {e}"));
                self.unrolled.push(working);
            }
        }
        previous
    }

    /// Background mode: close the working file and compress it on the thread;
    /// failed rolls from before are retried first, one per call.
    fn start_automatic_roll(&mut self, now: Timestamp) -> Option<PathBuf> {
        if !self.unrolled.is_empty() {
            let retry = self.unrolled.remove(0);
            return self.roll_in_background(retry, now);
        }
        let active = self.active.take()?;
        if active.size == 0 {
            self.active = Some(active);
            return None;
        }
        self.roll_in_background(active.path, now)
    }

    /// The configuration.
    pub fn config(&self) -> &ArchiveConfig {
        &self.cfg
    }

    /// Finished archives produced from leftover working files at start-up.
    pub fn recovered(&self) -> &[PathBuf] {
        &self.recovered
    }

    /// The current working file, if one is open.
    pub fn working_file(&self) -> Option<&Path> {
        self.active.as_ref().map(|a| a.path.as_path())
    }

    /// Bytes in the current working file.
    pub fn working_size(&self) -> u64 {
        self.active.as_ref().map_or(0, |a| a.size)
    }

    /// The error of the last failed automatic roll (the data is safe in the working file;
    /// automatic rolls are retried by writes and ticks from 60 s after the failure).
    pub fn last_roll_error(&self) -> Option<&str> {
        self.last_roll_error.as_deref()
    }

    fn partial_prefix(&self) -> String {
        format!(".partial-{}--", self.cfg.writer_id)
    }

    fn working_prefix(&self) -> String {
        format!("{}--", self.cfg.writer_id)
    }

    /// Append `records` (each one JSON document, typically a raw notification) as JSON
    /// lines and fsync. `Ok` means durable. Records with embedded newlines are re-serialised
    /// compactly; with region wrapping each becomes `{"region","cell","notification"}`.
    /// Afterwards the file is rolled if it reached the size or age limit.
    pub fn write_batch(&mut self, records: &[&[u8]]) -> Result<(), ArchiveError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>());
        for (index, record) in records.iter().enumerate() {
            self.encode_record(&mut buf, index, record)?;
        }
        let now = (self.clock)();
        let active = self.ensure_active(now)?;
        if active.dirty {
            let cut = active
                .file
                .set_len(active.size)
                .and_then(|_| active.file.sync_data());
            cut.ctx(&active.path, "truncate after an earlier failed write")?;
            active.dirty = false;
        }
        if let Err(e) = active
            .file
            .write_all(&buf)
            .and_then(|_| active.file.sync_data())
        {
            // cut the partial record now if we can, or before the next write
            active.dirty = active
                .file
                .set_len(active.size)
                .and_then(|_| active.file.sync_data())
                .is_err();
            return Err(ArchiveError::io(&active.path, "append and fsync", e));
        }
        active.size += buf.len() as u64;
        if self.background {
            self.reap_roll();
            if self.should_roll(now) {
                self.start_automatic_roll(now);
            }
        } else if self.should_roll(now) {
            if let Err(e) = self.roll_at(now) {
                tracing::warn!(error = %e, "archive roll failed; the data stays in the working file and the roll is retried");
                self.note_roll_failure(now, e.to_string());
            }
        }
        Ok(())
    }

    /// Roll an idle working file whose age limit has passed (call it periodically; the
    /// original only checked on write, so an idle archive never rolled).
    /// In background mode it returns a roll that finished since the last call.
    pub fn tick(&mut self) -> Result<Option<PathBuf>, ArchiveError> {
        let now = (self.clock)();
        if self.background {
            let reaped = self.reap_roll();
            let started = if self.should_roll(now) {
                self.start_automatic_roll(now)
            } else {
                None
            };
            return Ok(reaped.or(started));
        }
        if !self.should_roll(now) {
            return Ok(None);
        }
        let rolled = self.roll_at(now);
        if rolled.is_err() {
            self.retry_roll_at = now.checked_add_signed(ROLL_RETRY_DELAY);
        }
        rolled
    }

    /// Roll now if the working file holds data (e.g. at shutdown). Returns the finished file.
    /// Waits for a background roll in flight, and finishes failed ones first.
    pub fn roll(&mut self) -> Result<Option<PathBuf>, ArchiveError> {
        let now = (self.clock)();
        if self.rolling.is_some() {
            // a failure is kept in `unrolled` and retried just below
            let _ = self.wait_for_rolls();
        }
        while let Some(working) = self.unrolled.first().cloned() {
            finish_file(&self.cfg, &self.partial_prefix(), &working, now)?;
            self.unrolled.remove(0);
        }
        self.roll_at(now)
    }

    /// Whether an automatic roll is due (limits reached, and not backing off after a failure).
    fn should_roll(&self, now: Timestamp) -> bool {
        if self.retry_roll_at.is_some_and(|t| now < t) {
            return false;
        }
        if !self.unrolled.is_empty() {
            return true;
        }
        let Some(a) = &self.active else {
            return false;
        };
        let age = TimeDelta::try_minutes(i64::try_from(self.cfg.roll_minutes).unwrap_or(i64::MAX))
            .unwrap_or(TimeDelta::MAX);
        a.size >= self.cfg.roll_size_bytes
            || (a.size > 0
                && a.opened_at
                    .checked_add_signed(age)
                    .is_some_and(|t| now >= t))
    }

    fn encode_record(
        &self,
        out: &mut Vec<u8>,
        index: usize,
        record: &[u8],
    ) -> Result<(), ArchiveError> {
        let bad = |e: serde_json::Error| ArchiveError::InvalidRecord {
            index,
            reason: e.to_string(),
        };
        let trimmed = record.trim_ascii();
        let multi_line = trimmed.iter().any(|b| *b == b'\n' || *b == b'\r');
        let compact: Vec<u8>;
        let body: &[u8] = if multi_line {
            let v: Value = serde_json::from_slice(trimmed).map_err(bad)?;
            compact = serde_json::to_vec(&v).map_err(bad)?;
            &compact
        } else {
            serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).map_err(bad)?;
            trimmed
        };
        match &self.cfg.wrap {
            Some(w) => {
                out.extend_from_slice(b"{\"region\":");
                out.extend_from_slice(Value::from(w.region.as_str()).to_string().as_bytes());
                out.extend_from_slice(b",\"cell\":");
                out.extend_from_slice(Value::from(w.cell.as_str()).to_string().as_bytes());
                out.extend_from_slice(b",\"notification\":");
                out.extend_from_slice(body);
                out.push(b'}');
            }
            None => out.extend_from_slice(body),
        }
        out.push(b'\n');
        Ok(())
    }

    fn ensure_active(&mut self, now: Timestamp) -> Result<&mut Active, ArchiveError> {
        if self.active.is_none() {
            let name = format!(
                "{}{}",
                self.working_prefix(),
                filename::render(&self.cfg.filename_template, now, WORKING_CRC)?
            );
            let mut path = self.cfg.working_directory.join(&name);
            // a working file still being compressed (or waiting for a retry) may have
            // the same name: never append to it
            let mut n = 1;
            while self.rolling.as_ref().is_some_and(|r| r.working == path)
                || self.unrolled.contains(&path)
            {
                path = self.cfg.working_directory.join(format!("{name}-{n}"));
                n += 1;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .ctx(&path, "open working file")?;
            let size = file.metadata().ctx(&path, "stat working file")?.len();
            sync_dir(&self.cfg.working_directory)?;
            self.active = Some(Active {
                file,
                path,
                size,
                opened_at: now,
                dirty: false,
            });
        }
        match self.active.as_mut() {
            Some(a) => Ok(a),
            None => Err(ArchiveError::Config("internal: no working file".into())),
        }
    }

    fn roll_at(&mut self, now: Timestamp) -> Result<Option<PathBuf>, ArchiveError> {
        let Some(active) = &self.active else {
            return Ok(None);
        };
        if active.size == 0 {
            return Ok(None);
        }
        let path = active.path.clone();
        let done = finish_file(&self.cfg, &self.partial_prefix(), &path, now)?;
        self.active = None;
        self.last_roll_error = None;
        self.retry_roll_at = None;
        tracing::info!(archive = %done.display(), "archive rolled");
        Ok(Some(done))
    }

    fn remove_partials(&self) -> Result<(), ArchiveError> {
        let prefix = self.partial_prefix();
        let dest = &self.cfg.destination_folder;
        for entry in fs::read_dir(dest).ctx(dest, "list directory")? {
            let entry = entry.ctx(dest, "list directory")?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                fs::remove_file(entry.path()).ctx(&entry.path(), "remove partial archive")?;
            }
        }
        Ok(())
    }

    fn recover(&mut self) -> Result<(), ArchiveError> {
        let prefix = self.working_prefix();
        let dir = self.cfg.working_directory.clone();
        let mut leftovers = Vec::new();
        for entry in fs::read_dir(&dir).ctx(&dir, "list directory")? {
            let entry = entry.ctx(&dir, "list directory")?;
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if is_file && entry.file_name().to_string_lossy().starts_with(&prefix) {
                leftovers.push(entry.path());
            }
        }
        leftovers.sort();
        for path in leftovers {
            let kept = cut_partial_line(&path)?;
            if kept == 0 {
                fs::remove_file(&path).ctx(&path, "remove empty working file")?;
                continue;
            }
            let now = (self.clock)();
            let done = finish_file(&self.cfg, &self.partial_prefix(), &path, now)?;
            tracing::info!(working = %path.display(), archive = %done.display(), "recovered leftover working file");
            self.recovered.push(done);
        }
        sync_dir(&dir)?;
        Ok(())
    }
}

/// fsync a directory so renames, creations and deletions in it are durable.
fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(dir, "fsync directory")
}

/// Drop a trailing partial line (a write that never completed, so never acknowledged).
/// Returns the kept length.
fn cut_partial_line(path: &Path) -> Result<u64, ArchiveError> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ctx(path, "open leftover working file")?;
    let len = f.metadata().ctx(path, "stat")?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start)).ctx(path, "seek")?;
        f.read_exact(chunk).ctx(path, "read")?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if keep != len {
        tracing::warn!(file = %path.display(), dropped = len - keep, "dropping an incomplete last record (never acknowledged)");
        f.set_len(keep).ctx(path, "truncate partial record")?;
        f.sync_all().ctx(path, "fsync")?;
    }
    Ok(keep)
}

/// Compress `working` into the destination (temp name, fsync, rename, fsync dir), then
/// delete it (and fsync its dir). Returns the final path.
fn finish_file(
    cfg: &ArchiveConfig,
    partial_prefix: &str,
    working: &Path,
    now: Timestamp,
) -> Result<PathBuf, ArchiveError> {
    let dest = &cfg.destination_folder;
    let base = working
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "working".into());
    let tmp = dest.join(format!("{partial_prefix}{base}.gz"));
    let result = (|| {
        let sha = compress_to(working, &tmp)?;
        let name = filename::render(&cfg.filename_template, now, &sha)?;
        let target = unique_target(dest, &name);
        fs::rename(&tmp, &target).ctx(&target, "rename finished archive")?;
        sync_dir(dest)?;
        Ok(target)
    })();
    let target = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::remove_file(working).ctx(working, "remove working file")?;
    if let Some(dir) = working.parent() {
        sync_dir(dir)?;
    }
    Ok(target)
}

/// gzip `src` into `dst` (fsynced) and return the sha256 hex of the uncompressed bytes.
fn compress_to(src: &Path, dst: &Path) -> Result<String, ArchiveError> {
    let mut input = File::open(src).ctx(src, "open working file")?;
    let out = File::create(dst).ctx(dst, "create archive")?;
    let mut gz = GzEncoder::new(
        BufWriter::with_capacity(1 << 16, out),
        Compression::default(),
    );
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::io(src, "read working file", e)),
        };
        sha.update(&buf[..n]);
        gz.write_all(&buf[..n]).ctx(dst, "write archive")?;
    }
    let writer = gz.finish().ctx(dst, "write archive")?;
    let file = writer
        .into_inner()
        .map_err(|e| ArchiveError::io(dst, "write archive", e.into_error()))?;
    file.sync_all().ctx(dst, "fsync archive")?;
    Ok(hex::encode(sha.finalize()))
}

/// `dest/name.gz`, or `dest/stem-N.ext.gz` when that is taken (never overwrite an archive).
fn unique_target(dest: &Path, name: &str) -> PathBuf {
    let first = dest.join(format!("{name}.gz"));
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    (1u64..)
        .map(|n| dest.join(format!("{stem}-{n}{ext}.gz")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}
