//! `ArchiveConfig`: where and how the archive writer writes, loadable from the
//! `[shoebox]` section of yagi.conf (spec §5.6) with the original keys and defaults.
use std::path::PathBuf;

use crate::error::ArchiveError;
use crate::filename;

/// The original default template (`ShoeboxHandler`).
pub const DEFAULT_TEMPLATE: &str = "events_%Y_%m_%d_%X_%f.dat";

/// `{"region": .., "cell": .., "notification": ..}` wrapping (`wrap_payload_with_region`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionWrap {
    pub region: String,
    pub cell: String,
}

/// Configuration of an [`crate::ArchiveWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// strftime template with `[[TIMESTAMP]]` and `[[CRC]]` tokens.
    pub filename_template: String,
    /// Where the working (uncompressed) file lives.
    pub working_directory: PathBuf,
    /// Where finished `.gz` files go.
    pub destination_folder: PathBuf,
    /// Roll when the working file reaches this many bytes (`roll_size_mb` * 2^20).
    pub roll_size_bytes: u64,
    /// Roll a non-empty working file this many minutes after it was opened.
    pub roll_minutes: u64,
    /// Prefix of this writer's working files; a writer only recovers its own files.
    pub writer_id: String,
    /// Optional region/cell wrapping of every record.
    pub wrap: Option<RegionWrap>,
}

impl ArchiveConfig {
    /// Defaults of the original: template `events_%Y_%m_%d_%X_%f.dat`, directories `.`,
    /// 1000 MB, 60 minutes, no wrapping; writer id `shoebox`.
    pub fn new(
        working_directory: impl Into<PathBuf>,
        destination_folder: impl Into<PathBuf>,
    ) -> Self {
        ArchiveConfig {
            filename_template: DEFAULT_TEMPLATE.to_string(),
            working_directory: working_directory.into(),
            destination_folder: destination_folder.into(),
            roll_size_bytes: 1000 << 20,
            roll_minutes: 60,
            writer_id: "shoebox".to_string(),
            wrap: None,
        }
    }

    /// Load from the raw `[shoebox]` key/value pairs of yagi.conf:
    /// `working_directory`, `destination_folder`, `filename_template`, `roll_size_mb`,
    /// `roll_minutes` (ours: the original could not set it from yagi), `wrap_payload_with_region`
    /// (exactly `True` enables it), `wrap_region`, `wrap_cell` (default `n/a`), `writer_id`
    /// (ours), `roll_manager` (only the JSON manager is supported; when absent it is assumed,
    /// where the original's binary default crashed). `roll_checker` and `callback` are ignored.
    pub fn from_shoebox_section<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ArchiveError> {
        let mut cfg = ArchiveConfig::new(".", ".");
        let mut wrap = false;
        let mut region = "n/a".to_string();
        let mut cell = "n/a".to_string();
        for (key, value) in pairs {
            match key {
                "working_directory" => cfg.working_directory = value.into(),
                "destination_folder" => cfg.destination_folder = value.into(),
                "filename_template" => cfg.filename_template = value.to_string(),
                "roll_size_mb" => {
                    let mb: u64 = value.trim().parse().map_err(|_| {
                        ArchiveError::Config(format!(
                            "[shoebox] roll_size_mb = {value:?} is not a whole number"
                        ))
                    })?;
                    cfg.roll_size_bytes = mb.checked_mul(1 << 20).ok_or_else(|| {
                        ArchiveError::Config(format!(
                            "[shoebox] roll_size_mb = {value:?} is too large"
                        ))
                    })?;
                }
                "roll_minutes" => {
                    cfg.roll_minutes = value.trim().parse().map_err(|_| {
                        ArchiveError::Config(format!(
                            "[shoebox] roll_minutes = {value:?} is not a whole number"
                        ))
                    })?
                }
                "wrap_payload_with_region" => wrap = value == "True",
                "wrap_region" => region = value.to_string(),
                "wrap_cell" => cell = value.to_string(),
                "writer_id" => cfg.writer_id = value.to_string(),
                "roll_manager" if !value.contains("WritingJSONRollManager") => {
                    return Err(ArchiveError::Config(format!(
                        "[shoebox] roll_manager = {value:?}: only shoebox.roll_manager:WritingJSONRollManager is supported"
                    )));
                }
                _ => {}
            }
        }
        if wrap {
            cfg.wrap = Some(RegionWrap { region, cell });
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check the template and the writer id.
    pub fn validate(&self) -> Result<(), ArchiveError> {
        filename::validate_template(&self.filename_template)?;
        let id_ok = !self.writer_id.is_empty()
            && self
                .writer_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && !self.writer_id.contains("--");
        if !id_ok {
            return Err(ArchiveError::Config(format!(
                "writer_id {:?} must be non-empty, made of [A-Za-z0-9_.-] and must not contain \"--\"",
                self.writer_id
            )));
        }
        Ok(())
    }
}
