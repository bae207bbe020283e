//! `stv3ctl package`: build the core binaries and pack them, with templates,
//! roles, migrations and example configs, into a reproducible
//! `stv3-<version>-<target>.tar.gz` plus a `.sha256` sidecar.
//!
//! The work is planned first and then applied, from the same code:
//!
//! 1. [`probe`] gathers the facts: the workspace (`cargo metadata`), the git
//!    sha/dirty flag/commit time, `rustc -vV` ([`BuildInfo::detect`]).
//! 2. [`plan`] decides everything without side effects: which core binaries
//!    exist ([`layout::select_binaries`]), which targets, the cargo command
//!    per target ([`compile`]), the `share/` files ([`layout::collect_share`])
//!    and the output paths. `stv3ctl package --plan` prints this [`PackagePlan`].
//! 3. [`apply`] runs the builds (or takes `--from-dir` binaries), hashes every
//!    file into the [`manifest::Manifest`], and writes the tarball with the
//!    deterministic writer in [`archive`], then the sidecar.
//!
//! [`verify`] checks a finished tarball (sidecar + every manifest entry) and is
//! what `deploy` calls before it uses a package; [`inspect`] renders the
//! manifest; [`cli`] is the clap front end. No DB, broker, root or network
//! (beyond cargo's registry) is needed.

pub mod archive;
pub mod cli;
pub mod compile;
pub mod inspect;
pub mod layout;
pub mod manifest;
pub mod probe;
pub mod verify;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use self::archive::{sidecar_line, HashingWriter, TarGzWriter};
use self::layout::{BinarySelection, PlannedFile};
use self::manifest::{
    BuiltFrom, FileEntry, GitInfo, Manifest, RustcInfo, MANIFEST_NAME, SCHEMA_VERSION,
};
use self::probe::Workspace;

pub use self::verify::{verify_tarball, Problem, VerifiedPackage, VerifyError};

/// Product name: tarball prefix and top directory prefix.
pub const PRODUCT: &str = "stv3";

/// Everything that can go wrong while planning or packing.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    // `error` is not a `source`: the message already contains it, and
    // anyhow's `{:#}` would print it twice.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("required folder {} is missing (the package copies it into share/)", dir.display())]
    MissingShareDir { dir: PathBuf },
    #[error("two files map to {path} in the package: {} and {}", first.display(), second.display())]
    DuplicatePath {
        path: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("target {target} is not installed (installed: {}); run: rustup target add {target}", installed.join(", "))]
    TargetNotInstalled {
        target: String,
        installed: Vec<String>,
    },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("no core binary found in {place}; expected at least one of: {}", layout::CORE_BINARIES.join(", "))]
    NoBinaries { place: String },
    #[error("core binaries missing from {place}: {} (drop --require-all to package without them)", missing.join(", "))]
    MissingBinaries { place: String, missing: Vec<String> },
    #[error("bin/{name}: {} does not exist after the build", path.display())]
    BinaryNotBuilt { name: String, path: PathBuf },
    #[error("{0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |error| PackageError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The identity of a build: everything in the manifest except the target,
/// the origin of the binaries and the file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    pub git: GitInfo,
    pub rustc: RustcInfo,
    pub profile: String,
    pub source_date_epoch: u64,
}

impl BuildInfo {
    /// Probe git, `rustc -vV` and `SOURCE_DATE_EPOCH` for `ws`.
    pub fn detect(ws: &Workspace, profile: &str) -> Result<BuildInfo, PackageError> {
        let sde = std::env::var("SOURCE_DATE_EPOCH").ok();
        Ok(BuildInfo {
            version: ws.version.clone(),
            git: probe::git_info(&ws.root),
            rustc: probe::rustc_info()?,
            profile: profile.to_string(),
            source_date_epoch: probe::source_date_epoch(
                sde.as_deref(),
                probe::commit_time(&ws.root),
            )?,
        })
    }

    /// The short sha stamped into binaries (`STV3_GIT_SHA`), `-dirty` appended
    /// for a dirty tree.
    pub fn stamp(&self) -> String {
        let short: String = self.git.sha.chars().take(12).collect();
        if self.git.dirty {
            format!("{short}-dirty")
        } else {
            short
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageOptions {
    /// Target triples; empty means the host, built without `--target`.
    pub targets: Vec<String>,
    /// Output folder for the tarballs and sidecars.
    pub out_dir: PathBuf,
    /// Cargo profile.
    pub profile: String,
    /// Package prebuilt binaries from this folder instead of building.
    pub from_dir: Option<PathBuf>,
    /// Fail when a core binary is missing instead of warning.
    pub require_all: bool,
}

/// One tarball to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlan {
    pub target: String,
    /// Cargo arguments, or `None` for `--from-dir`.
    pub cargo_args: Option<Vec<String>>,
    /// Where the binaries are read from.
    pub bin_dir: PathBuf,
    pub tarball: PathBuf,
    pub sidecar: PathBuf,
}

/// The whole plan, computed before anything is built or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagePlan {
    pub info: BuildInfo,
    pub built_from: BuiltFrom,
    pub selection: BinarySelection,
    pub share: Vec<PlannedFile>,
    pub targets: Vec<TargetPlan>,
    pub out_dir: PathBuf,
}

/// Plan a packaging run. Side-effect free apart from reading directories
/// (and `rustup target list --installed` when `--target` is given).
pub fn plan(
    opts: &PackageOptions,
    ws: &Workspace,
    info: &BuildInfo,
) -> Result<PackagePlan, PackageError> {
    let (built_from, available, place) = match &opts.from_dir {
        Some(dir) => {
            if opts.targets.len() > 1 {
                return Err(PackageError::Invalid(format!(
                    "--from-dir packages one target, got {} --target values",
                    opts.targets.len()
                )));
            }
            (
                BuiltFrom::FromDir,
                files_in(dir)?,
                dir.display().to_string(),
            )
        }
        None => (
            BuiltFrom::Cargo,
            ws.bins.clone(),
            format!("the workspace at {}", ws.root.display()),
        ),
    };
    let selection = layout::select_binaries(&available);
    if selection.include.is_empty() {
        return Err(PackageError::NoBinaries { place });
    }
    if opts.require_all && !selection.missing.is_empty() {
        return Err(PackageError::MissingBinaries {
            place,
            missing: selection.missing.clone(),
        });
    }
    if built_from == BuiltFrom::Cargo && !opts.targets.is_empty() {
        probe::check_targets(&opts.targets, &probe::installed_targets()?)?;
    }
    let share = layout::collect_share(&ws.root)?;
    let manifest_path = ws.root.join("Cargo.toml");
    let requested: Vec<Option<&str>> = if opts.targets.is_empty() {
        vec![None]
    } else {
        opts.targets.iter().map(|t| Some(t.as_str())).collect()
    };
    let mut targets = Vec::new();
    for t in requested {
        let triple = t.unwrap_or(&info.rustc.host).to_string();
        let name = manifest::tarball_name(PRODUCT, &info.version, &triple);
        let (cargo_args, bin_dir) = match &opts.from_dir {
            Some(dir) => (None, dir.clone()),
            None => (
                Some(compile::cargo_args(
                    &manifest_path,
                    t,
                    &opts.profile,
                    &selection.include,
                )),
                compile::output_dir(&ws.target_dir, t, &opts.profile),
            ),
        };
        targets.push(TargetPlan {
            target: triple,
            cargo_args,
            bin_dir,
            sidecar: opts.out_dir.join(format!("{name}.sha256")),
            tarball: opts.out_dir.join(name),
        });
    }
    Ok(PackagePlan {
        info: info.clone(),
        built_from,
        selection,
        share,
        targets,
        out_dir: opts.out_dir.clone(),
    })
}

fn files_in(dir: &Path) -> Result<Vec<String>, PackageError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(entry.file_name().to_string_lossy().to_string());
        }
    }
    names.sort();
    Ok(names)
}

impl PackagePlan {
    /// Human-readable plan (`stv3ctl package --plan`).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let i = &self.info;
        let _ = writeln!(
            s,
            "package {PRODUCT} {} (git {}{})",
            i.version,
            i.git.sha,
            if i.git.dirty { ", dirty" } else { "" }
        );
        let _ = writeln!(s, "  toolchain: {}", i.rustc.version);
        let _ = writeln!(
            s,
            "  profile: {}, binaries from: {}",
            i.profile, self.built_from
        );
        let _ = writeln!(s, "  mtime (SOURCE_DATE_EPOCH): {}", i.source_date_epoch);
        let _ = writeln!(s, "  binaries: {}", self.selection.include.join(", "));
        if !self.selection.missing.is_empty() {
            let _ = writeln!(
                s,
                "  missing core binaries (not packaged): {}",
                self.selection.missing.join(", ")
            );
        }
        if !self.selection.ignored.is_empty() {
            let _ = writeln!(
                s,
                "  ignored (not core binaries): {}",
                self.selection.ignored.join(", ")
            );
        }
        let _ = writeln!(s, "  share files: {}", self.share.len());
        for t in &self.targets {
            let _ = writeln!(s, "  target {}:", t.target);
            if let Some(args) = &t.cargo_args {
                let _ = writeln!(s, "    build: cargo {}", args.join(" "));
            }
            let _ = writeln!(s, "    binaries from: {}", t.bin_dir.display());
            let _ = writeln!(s, "    writes: {} (+ .sha256)", t.tarball.display());
        }
        s
    }
}

/// One finished tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageOutput {
    pub tarball: PathBuf,
    pub sidecar: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub manifest: Manifest,
    /// Non-fatal findings, e.g. a binary whose `--version` lacks the git sha.
    pub warnings: Vec<String>,
}

/// Execute a plan: build (unless `--from-dir`), hash, write tarball and sidecar
/// per target. Progress goes to stderr when `progress` is true and stderr is a
/// terminal.
pub fn apply(plan: &PackagePlan, progress: bool) -> Result<Vec<PackageOutput>, PackageError> {
    use std::io::IsTerminal;
    let visible = progress && io::stderr().is_terminal();
    let target = || {
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    };
    fs::create_dir_all(&plan.out_dir).map_err(io_err(&plan.out_dir))?;
    let mut outputs = Vec::new();
    for t in &plan.targets {
        let mut warnings = Vec::new();
        let mut staged = None;
        if let Some(args) = &t.cargo_args {
            let spinner = ProgressBar::with_draw_target(None, target());
            spinner.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed}] {prefix} {wide_msg}")
                    .expect("style"),
            );
            spinner.set_prefix(format!("cargo build {}", t.target));
            spinner.enable_steady_tick(Duration::from_millis(120));
            let result = compile::run_cargo(args, &[("STV3_GIT_SHA", plan.info.stamp())], &spinner);
            spinner.finish_and_clear();
            result?;
            // Copy the fresh binaries out of cargo's target dir at once, so a
            // concurrent `cargo build` (another shell, an IDE) cannot swap a
            // file between hashing and packing.
            let dir = tempfile::Builder::new()
                .prefix(".stage-")
                .tempdir_in(&plan.out_dir)
                .map_err(io_err(&plan.out_dir))?;
            for name in &plan.selection.include {
                let (from, to) = (t.bin_dir.join(name), dir.path().join(name));
                if !from.is_file() {
                    return Err(PackageError::BinaryNotBuilt {
                        name: name.clone(),
                        path: from,
                    });
                }
                fs::copy(&from, &to).map_err(io_err(&from))?;
            }
            if t.target == plan.info.rustc.host {
                for name in &plan.selection.include {
                    let bin = dir.path().join(name);
                    warnings.extend(compile::check_version_stamp(&bin, &plan.info.stamp()));
                }
            }
            staged = Some(dir);
        }
        let bar = ProgressBar::with_draw_target(Some(0), target());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {wide_msg}")
                .expect("style")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("pack {}", t.target));
        let out = match &staged {
            Some(dir) => pack(
                plan,
                &TargetPlan {
                    bin_dir: dir.path().to_path_buf(),
                    ..t.clone()
                },
                &bar,
            ),
            None => pack(plan, t, &bar),
        };
        drop(staged);
        bar.finish_and_clear();
        let mut out = out?;
        out.warnings = warnings;
        outputs.push(out);
    }
    Ok(outputs)
}

/// Hash, describe and write one tarball (the part shared by both origins).
fn pack(
    plan: &PackagePlan,
    t: &TargetPlan,
    bar: &ProgressBar,
) -> Result<PackageOutput, PackageError> {
    let mut files = layout::binary_files(&t.bin_dir, &plan.selection.include);
    for f in &files {
        if !f.source.is_file() {
            let name = f.path.trim_start_matches("bin/").to_string();
            return Err(PackageError::BinaryNotBuilt {
                name,
                path: f.source.clone(),
            });
        }
    }
    files.extend(plan.share.iter().cloned());
    let files = layout::finish_files(files)?;

    // Pass 1: describe every file (the bar counts every byte twice: hash, pack).
    let mut total = 0;
    for f in &files {
        total += fs::metadata(&f.source).map_err(io_err(&f.source))?.len();
    }
    bar.set_length(total * 2);
    let mut entries = Vec::with_capacity(files.len());
    for f in &files {
        let file = File::open(&f.source).map_err(io_err(&f.source))?;
        let (sha256, size) = archive::sha256_of(file).map_err(io_err(&f.source))?;
        bar.inc(size);
        entries.push(FileEntry {
            path: f.path.clone(),
            mode: layout::file_mode(&f.path),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        schema: SCHEMA_VERSION,
        name: PRODUCT.into(),
        version: plan.info.version.clone(),
        git: plan.info.git.clone(),
        target: t.target.clone(),
        rustc: plan.info.rustc.clone(),
        profile: plan.info.profile.clone(),
        built_from: plan.built_from,
        source_date_epoch: plan.info.source_date_epoch,
        binaries: plan.selection.include.clone(),
        files: entries,
    };

    // Pass 2: write the archive in sorted order, re-hashing each file so a
    // file that changes between the passes is an error, not a bad manifest.
    let tmp = t.tarball.with_extension("gz.partial");
    let out = File::create(&tmp).map_err(io_err(&tmp))?;
    let result = write_archive(
        &manifest,
        &files,
        BufWriter::with_capacity(1 << 20, out),
        bar,
        &t.tarball,
    );
    let (sha256, size) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, &t.tarball).map_err(io_err(&t.tarball))?;
    let file_name = t
        .tarball
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let side_tmp = t.sidecar.with_extension("sha256.partial");
    fs::write(&side_tmp, sidecar_line(&sha256, &file_name)).map_err(io_err(&side_tmp))?;
    fs::rename(&side_tmp, &t.sidecar).map_err(io_err(&t.sidecar))?;
    Ok(PackageOutput {
        tarball: t.tarball.clone(),
        sidecar: t.sidecar.clone(),
        sha256,
        size,
        manifest,
        warnings: Vec::new(),
    })
}

enum Item<'a> {
    Dir(String),
    Manifest,
    File(&'a PlannedFile, &'a FileEntry),
}

fn write_archive(
    manifest: &Manifest,
    files: &[PlannedFile],
    out: BufWriter<File>,
    bar: &ProgressBar,
    final_path: &Path,
) -> Result<(String, u64), PackageError> {
    let top = manifest.top_dir();
    let fail = io_err(final_path);
    let manifest_json = manifest.to_json();
    // (sort key as written in the tar, item). Directories sort with their
    // trailing slash, exactly as the writer checks them.
    let mut items: Vec<(String, Item)> = vec![(format!("{top}/"), Item::Dir(top.clone()))];
    for d in layout::directories(files.iter().map(|f| f.path.as_str())) {
        items.push((format!("{top}/{d}/"), Item::Dir(format!("{top}/{d}"))));
    }
    items.push((format!("{top}/{MANIFEST_NAME}"), Item::Manifest));
    for (f, e) in files.iter().zip(&manifest.files) {
        items.push((format!("{top}/{}", f.path), Item::File(f, e)));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));

    let mut w = TarGzWriter::new(HashingWriter::new(out), manifest.source_date_epoch);
    for (key, item) in &items {
        match item {
            Item::Dir(path) => w.dir(path).map_err(io_err(final_path))?,
            Item::Manifest => w
                .file(
                    key,
                    manifest::Mode::DATA,
                    manifest_json.len() as u64,
                    manifest_json.as_bytes(),
                )
                .map_err(io_err(final_path))?,
            Item::File(f, e) => {
                let file = File::open(&f.source).map_err(io_err(&f.source))?;
                let mut reader = HashingReader {
                    inner: BufReader::with_capacity(1 << 20, file),
                    hasher: Sha256::new(),
                    bar,
                };
                w.file(key, e.mode, e.size, &mut reader)
                    .map_err(io_err(&f.source))?;
                let actual = hex::encode(reader.hasher.finalize());
                if actual != e.sha256 {
                    return Err(PackageError::Invalid(format!(
                        "{}: content changed while packing (sha256 {} then {actual})",
                        f.source.display(),
                        e.sha256
                    )));
                }
            }
        }
    }
    let hashing = w.finish().map_err(io_err(final_path))?;
    let (buf, sha256, size) = hashing.finish();
    let file = buf.into_inner().map_err(|e| PackageError::Io {
        path: final_path.to_path_buf(),
        error: e.into_error(),
    })?;
    file.sync_all().map_err(fail)?;
    Ok((sha256, size))
}

struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    bar: &'a ProgressBar,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Plan and apply in one go (what `stv3ctl package` does after probing).
pub fn package(
    opts: &PackageOptions,
    ws: &Workspace,
    info: &BuildInfo,
    progress: bool,
) -> Result<(PackagePlan, Vec<PackageOutput>), PackageError> {
    let plan = plan(opts, ws, info)?;
    let outputs = apply(&plan, progress)?;
    Ok((plan, outputs))
}
