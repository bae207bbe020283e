//! Hostile input (issue #9): the pipelines.yaml loader and the
//! `pipeline_handlers` reader never panic, hang or explode, and every error
//! names the file.
//!
//! * proptest: arbitrary text, line and byte mutants of a pipelines.yaml
//!   (with the built-in handler map and registry) and of a winchester.yaml
//!   for `parse_handler_map`.
//! * corpus: `tests/hostile/pipelines_yaml/*.yaml`, each with its expected
//!   outcome in the table below. To add a case, drop a file in the folder
//!   and add a row (the test fails until every file has one).

#[path = "../../testsupport/hostile/mod.rs"]
mod hostile;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use stv3_pipeline::config::{default_handler_map, parse_handler_map};
use stv3_pipeline::{ConfigError, HandlerContext, PipelineConfig, Registry};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_error(e: &ConfigError, file: &Path) -> String {
    let text = e.to_string();
    assert!(text.starts_with(&file.display().to_string()), "{text}");
    match e {
        ConfigError::At { line, .. } => format!("err:{line}"),
        ConfigError::File { .. } => "err:file".into(),
    }
}

fn pipelines_class(text: &str, file: &Path) -> String {
    let ctx = HandlerContext::offline();
    match PipelineConfig::parse(
        text,
        file,
        &default_handler_map(),
        &Registry::builtin(),
        &ctx,
    ) {
        Ok(c) => format!("ok:{}", c.pipelines.len()),
        Err(e) => check_error(&e, file),
    }
}

const GOOD: &str = include_str!("hostile/pipelines_yaml/good.yaml");
const WINCHESTER: &str = "database: {url: 'sqlite://'}\npipeline_handlers:\n  logger: winchester.pipeline_handler:LoggingHandler\n  usage: winchester.pipeline_handler:UsageHandler\n";

fn file() -> PathBuf {
    PathBuf::from("/nonexistent/hostile/pipelines.yaml")
}

proptest! {
    #![proptest_config(hostile::config())]

    #[test]
    fn arbitrary_pipelines_yaml_never_panics(text in prop_oneof![
        any::<String>(),
        hostile::line_mutant(GOOD),
        hostile::byte_mutant(GOOD.as_bytes().to_vec())
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        pipelines_class(&text, &file());
    }

    #[test]
    fn arbitrary_handler_maps_never_panic(text in prop_oneof![
        any::<String>(),
        hostile::line_mutant(WINCHESTER),
    ]) {
        match parse_handler_map(&text, &file()) {
            Ok(map) => {
                let _ = PipelineConfig::check_handler_map(&map, &Registry::builtin());
            }
            Err(e) => {
                check_error(&e, &file());
            }
        }
    }
}

/// pipelines.yaml through `PipelineConfig::parse` (built-in handler map and
/// registry): `ok:N` (N pipelines), `err:L` (an error naming the file at
/// line L) or `err:file` (a YAML error: the file, and serde-saphyr's
/// message, which carries the line).
const PIPELINES: &[(&str, &str)] = &[
    // was accepted, then Duration::from_secs_f64 panicked in the run
    ("atompub_timeout_1e300.yaml", "err:3"),
    ("billion_laughs.yaml", "err:file"),
    ("duplicate_pipelines.yaml", "err:file"),
    ("empty.yaml", "ok:0"),
    ("good.yaml", "ok:2"),
    ("journal_sleep_huge.yaml", "err:3"),
    ("long_name_100k.yaml", "err:file"),
    ("name_missing.yaml", "err:3"),
    ("not_a_mapping.yaml", "err:file"),
    ("nul_byte.yaml", "err:file"),
    ("params_deep_10000.yaml", "err:file"),
    ("params_not_mapping.yaml", "err:3"),
    ("unknown_handler.yaml", "err:3"),
];

#[test]
fn hostile_pipelines_yaml() {
    hostile::run_corpus(
        &root().join("tests/hostile/pipelines_yaml"),
        PIPELINES,
        |path, bytes| match std::str::from_utf8(bytes) {
            Ok(text) => pipelines_class(text, Path::new(path)),
            Err(_) => "not-utf8".into(),
        },
    );
}
