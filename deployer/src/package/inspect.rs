//! `stv3ctl package inspect`: read `MANIFEST.json` out of a tarball and show
//! it as tables (or pass it through as JSON). Reading does not verify; use
//! `package verify` for that.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use comfy_table::{presets, CellAlignment, Table};
use flate2::read::GzDecoder;

use super::manifest::{Manifest, MANIFEST_NAME};

/// Why the manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    // `error` is not a `source`: the message already contains it, and
    // anyhow's `{:#}` would print it twice.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: no {MANIFEST_NAME} in the top directory", path.display())]
    NoManifest { path: PathBuf },
    #[error("{}: {MANIFEST_NAME} is invalid: {error}", path.display())]
    Invalid {
        path: PathBuf,
        error: serde_json::Error,
    },
}

/// Read the manifest of the tarball at `path` (the first `<top>/MANIFEST.json`).
pub fn read_manifest(path: &Path) -> Result<Manifest, InspectError> {
    let io_err = |error| InspectError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let is_manifest = name
            .split_once('/')
            .is_some_and(|(_, rest)| rest == MANIFEST_NAME);
        if is_manifest && entry.header().entry_type().is_file() {
            let mut text = String::new();
            (&mut entry)
                .take(64 << 20)
                .read_to_string(&mut text)
                .map_err(io_err)?;
            return Manifest::from_json(&text).map_err(|error| InspectError::Invalid {
                path: path.to_path_buf(),
                error,
            });
        }
    }
    Err(InspectError::NoManifest {
        path: path.to_path_buf(),
    })
}

/// The manifest as two tables: the build identity, then one row per file.
pub fn render_table(m: &Manifest) -> String {
    let mut about = Table::new();
    about.load_preset(presets::UTF8_FULL_CONDENSED);
    about.set_header(vec!["field", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("package", format!("{}-{}", m.name, m.version)),
        ("target", m.target.clone()),
        ("git sha", m.git.sha.clone()),
        ("git dirty", m.git.dirty.to_string()),
        ("rustc", m.rustc.version.clone()),
        ("rustc host", m.rustc.host.clone()),
        ("profile", m.profile.clone()),
        ("built from", m.built_from.to_string()),
        ("source date epoch", m.source_date_epoch.to_string()),
        ("binaries", m.binaries.join(", ")),
        ("schema", m.schema.to_string()),
    ];
    for (k, v) in rows {
        about.add_row(vec![k.to_string(), v]);
    }

    let mut files = Table::new();
    files.load_preset(presets::UTF8_FULL_CONDENSED);
    files.set_header(vec!["path", "mode", "size", "sha256"]);
    let mut total = 0u64;
    for f in &m.files {
        total += f.size;
        files.add_row(vec![
            f.path.clone(),
            f.mode.to_string(),
            f.size.to_string(),
            f.sha256.clone(),
        ]);
    }
    if let Some(col) = files.column_mut(2) {
        col.set_cell_alignment(CellAlignment::Right);
    }
    format!("{about}\n{files}\n{} files, {total} bytes\n", m.files.len())
}
