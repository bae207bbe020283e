//! stv3-archive: the shoebox replacement. A rolling archive of raw notifications as
//! JSON lines, gzip-compressed on roll ([`ArchiveWriter`]), readers for those files
//! ([`JsonlReader`], [`read_jsonl_gz`]) and for the ORIGINAL shoebox binary v1 format
//! ([`binary_v1::BinaryV1Reader`]), and the `archive-read` tool.
//!
//! ## Differences from the original shoebox/ShoeboxHandler
//! - `write_batch` fsyncs before returning (the original only flushed), so yagi-event
//!   can ack after it. Rolls go through a temp file + fsync + rename + directory fsync.
//! - An idle archive rolls by time through [`ArchiveWriter::tick`] (the original only
//!   checked on write); `roll_minutes` can be set from the `[shoebox]` section.
//! - Start-up recovery only touches this writer's own files (`<writer_id>--` prefix), not
//!   everything in the working directory; a trailing partial line is dropped.
//! - The size limit counts bytes written (with the newline), not payload characters.
//! - A finished name that already exists gets a `-N` suffix instead of being overwritten.
//! - The working file is named `<writer_id>--<template>` with `[[CRC]]` shown as `working`.
//! - Wrapped records are compact JSON (`{"region":..,"cell":..,"notification":..}`).
//! - A crash between the rename of a finished archive and the deletion of its working
//!   file archives that file again at start-up (a duplicate file, never a loss).

pub mod binary_v1;
mod config;
mod error;
pub mod filename;
mod jsonl;
mod writer;

pub use config::{ArchiveConfig, RegionWrap, DEFAULT_TEMPLATE};
pub use error::ArchiveError;
pub use jsonl::{read_jsonl_gz, JsonlReader, Line, GZIP_MAGIC};
pub use writer::{ArchiveWriter, Clock};

/// If `v` is a region wrapper `{"region","cell","notification"}`, the notification.
pub fn unwrap_region(v: &serde_json::Value) -> Option<&serde_json::Value> {
    let obj = v.as_object()?;
    if obj.contains_key("region") && obj.contains_key("cell") {
        obj.get("notification")
    } else {
        None
    }
}
