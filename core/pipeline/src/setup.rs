//! Loading everything a worker (or replay) needs from winchester.yaml:
//! the handler map (with lines), the registry check, pipelines.yaml, and a
//! warning for triggers that name pipelines that do not exist.

use std::path::Path;

use stv3_winchester::{TriggerDefinition, WinchesterConfig};

use crate::config::{
    default_handler_map, parse_handler_map, ConfigError, HandlerMap, PipelineConfig,
};
use crate::handler::Registry;
use crate::handlers::HandlerContext;

/// winchester.yaml's `pipeline_handlers` (the built-ins under their short names if absent).
pub fn handler_map(cfg: &WinchesterConfig) -> Result<HandlerMap, ConfigError> {
    let text = std::fs::read_to_string(&cfg.file).map_err(|e| ConfigError::File {
        file: cfg.file.display().to_string(),
        message: e.to_string(),
    })?;
    let map = parse_handler_map(&text, &cfg.file)?;
    if map.is_empty() {
        tracing::warn!(
            "{}: no pipeline_handlers; using the built-ins (logger, usage, notabene, atompub)",
            cfg.file.display()
        );
        return Ok(default_handler_map());
    }
    Ok(map)
}

/// Load and validate pipelines.yaml for `cfg`.
pub fn load_pipelines(
    cfg: &WinchesterConfig,
    registry: &Registry,
    ctx: &HandlerContext,
) -> Result<PipelineConfig, ConfigError> {
    let handlers = handler_map(cfg)?;
    PipelineConfig::check_handler_map(&handlers, registry)?;
    let path = cfg
        .pipeline_config
        .as_deref()
        .ok_or_else(|| ConfigError::File {
            file: cfg.file.display().to_string(),
            message:
                "pipeline_config is required (or the file it names was not found in config_path)"
                    .into(),
        })?;
    PipelineConfig::load(path, &handlers, registry, ctx)
}

/// Triggers naming a pipeline that pipelines.yaml lacks (their streams will go to error).
pub fn missing_pipelines(
    triggers: &[TriggerDefinition],
    pipelines: &PipelineConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    for t in triggers {
        for p in [&t.fire_pipeline, &t.expire_pipeline].into_iter().flatten() {
            if pipelines.get(p).is_none() {
                out.push(format!(
                    "trigger '{}' (line {}) names unknown pipeline '{p}'",
                    t.name, t.line
                ));
            }
        }
    }
    out
}

/// Load winchester.yaml with an anyhow-friendly error.
pub fn load_config(path: &Path) -> anyhow::Result<WinchesterConfig> {
    WinchesterConfig::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}
