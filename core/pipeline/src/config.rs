//! pipelines.yaml and the `pipeline_handlers` map of winchester.yaml (spec §4.4).
//!
//! pipelines.yaml maps a pipeline name to an ordered list of handler entries;
//! an entry is a bare handler name (a key of `pipeline_handlers`) or
//! `{name: <handler>, params: {...}}`. Everything is validated at load time:
//! a missing `name`, a handler that is not in `pipeline_handlers`, a class that
//! the [`Registry`] does not know and `params` a handler rejects are all errors
//! naming the file and line. Each handler is trial-built once at load, so bad
//! params never surface in the middle of a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::handler::{Constructor, Handler, Params, Registry};
use crate::handlers::HandlerContext;

/// A load-time configuration error, with the file and (when known) the line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {message}")]
    At {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

impl ConfigError {
    fn at(file: &Path, line: u64, message: impl Into<String>) -> Self {
        if line == 0 {
            ConfigError::File {
                file: file.display().to_string(),
                message: message.into(),
            }
        } else {
            ConfigError::At {
                file: file.display().to_string(),
                line,
                message: message.into(),
            }
        }
    }
    fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError::File {
            file: file.display().to_string(),
            message: message.into(),
        }
    }
}

/// One entry of `pipeline_handlers`: config name -> class string, with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerClass {
    pub class: String,
    pub file: PathBuf,
    pub line: u64,
}

/// `pipeline_handlers` of winchester.yaml: handler name -> class.
pub type HandlerMap = BTreeMap<String, HandlerClass>;

#[derive(Deserialize)]
struct HandlersOnly {
    #[serde(default)]
    pipeline_handlers: Option<BTreeMap<String, Spanned<String>>>,
}

/// Read `pipeline_handlers` from a winchester.yaml text (other keys are ignored).
pub fn parse_handler_map(text: &str, file: &Path) -> Result<HandlerMap, ConfigError> {
    let raw: HandlersOnly =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::file(file, e.to_string()))?;
    let map = raw.pipeline_handlers.unwrap_or_default();
    Ok(map
        .into_iter()
        .map(|(name, class)| {
            (
                name,
                HandlerClass {
                    class: class.value,
                    file: file.to_path_buf(),
                    line: class.referenced.line(),
                },
            )
        })
        .collect())
}

/// Read `pipeline_handlers` from a winchester.yaml file.
pub fn load_handler_map(path: &Path) -> Result<HandlerMap, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::file(path, e.to_string()))?;
    parse_handler_map(&text, path)
}

/// The default handler map when winchester.yaml has no `pipeline_handlers`:
/// every built-in under its short name (plus `logger`, the original sample's name).
pub fn default_handler_map() -> HandlerMap {
    [
        ("logger", "logging"),
        ("logging", "logging"),
        ("usage", "usage"),
        ("notabene", "notabene"),
        ("atompub", "atompub"),
        ("journal", "journal"),
    ]
    .into_iter()
    .map(|(n, c)| {
        (
            n.to_string(),
            HandlerClass {
                class: c.to_string(),
                file: PathBuf::new(),
                line: 0,
            },
        )
    })
    .collect()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawEntry {
    Name(String),
    Full {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        params: Option<Value>,
    },
}

type RawPipelines = BTreeMap<String, Spanned<Option<Vec<Spanned<RawEntry>>>>>;

/// One handler of a pipeline, resolved.
#[derive(Clone)]
pub struct HandlerSpec {
    /// The name used in pipelines.yaml (a key of `pipeline_handlers`).
    pub name: String,
    /// The class string it maps to.
    pub class: String,
    pub params: Params,
    /// pipelines.yaml line of the entry.
    pub line: u64,
    ctor: Constructor,
}

impl std::fmt::Debug for HandlerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerSpec")
            .field("name", &self.name)
            .field("class", &self.class)
            .field("params", &self.params)
            .field("line", &self.line)
            .finish()
    }
}

impl HandlerSpec {
    /// Build a fresh handler instance (one per stream run).
    pub fn build(
        &self,
        ctx: &HandlerContext,
    ) -> Result<Box<dyn Handler>, crate::handler::ParamError> {
        (self.ctor)(&self.params, ctx)
    }
}

/// All pipelines of a pipelines.yaml.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub file: PathBuf,
    pub pipelines: BTreeMap<String, Vec<HandlerSpec>>,
}

impl PipelineConfig {
    pub fn get(&self, name: &str) -> Option<&[HandlerSpec]> {
        self.pipelines.get(name).map(|v| v.as_slice())
    }

    /// Load and validate a pipelines.yaml file.
    pub fn load(
        path: &Path,
        handlers: &HandlerMap,
        registry: &Registry,
        ctx: &HandlerContext,
    ) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::file(path, e.to_string()))?;
        Self::parse(&text, path, handlers, registry, ctx)
    }

    /// Parse and validate pipelines.yaml text (`file` is used in messages).
    pub fn parse(
        text: &str,
        file: &Path,
        handlers: &HandlerMap,
        registry: &Registry,
        ctx: &HandlerContext,
    ) -> Result<Self, ConfigError> {
        let raw: Option<RawPipelines> =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::file(file, e.to_string()))?;
        let mut pipelines = BTreeMap::new();
        for (pname, entries) in raw.unwrap_or_default() {
            let mut specs = Vec::new();
            for entry in entries.value.unwrap_or_default() {
                let line = entry.referenced.line();
                let (name, params) = match entry.value {
                    RawEntry::Name(n) => (n, Params::new()),
                    RawEntry::Full { name: None, params } => {
                        return Err(ConfigError::at(
                            file,
                            line,
                            format!("pipeline '{pname}': handler name not in config (params: {})", params.unwrap_or(Value::Null)),
                        ))
                    }
                    RawEntry::Full { name: Some(n), params } => match params {
                        None | Some(Value::Null) => (n, Params::new()),
                        Some(Value::Object(m)) => (n, m),
                        Some(other) => {
                            return Err(ConfigError::at(
                                file,
                                line,
                                format!("pipeline '{pname}', handler '{n}': params must be a mapping, got {other}"),
                            ))
                        }
                    },
                };
                let Some(hc) = handlers.get(&name) else {
                    let known: Vec<&str> = handlers.keys().map(|s| s.as_str()).collect();
                    return Err(ConfigError::at(
                        file,
                        line,
                        format!("pipeline '{pname}': unknown handler '{name}' (pipeline_handlers has: {})", known.join(", ")),
                    ));
                };
                let Some(ctor) = registry.resolve(&hc.class) else {
                    let msg = format!(
                        "pipeline '{pname}': handler '{name}' maps to unknown class '{}'",
                        hc.class
                    );
                    return Err(if hc.line > 0 {
                        ConfigError::at(
                            &hc.file,
                            hc.line,
                            format!("{msg} (used at {}:{line})", file.display()),
                        )
                    } else {
                        ConfigError::at(file, line, msg)
                    });
                };
                let spec = HandlerSpec {
                    name: name.clone(),
                    class: hc.class.clone(),
                    params,
                    line,
                    ctor,
                };
                if let Err(e) = spec.build(ctx) {
                    return Err(ConfigError::at(
                        file,
                        line,
                        format!("pipeline '{pname}', handler '{name}': {e}"),
                    ));
                }
                specs.push(spec);
            }
            pipelines.insert(pname, specs);
        }
        Ok(PipelineConfig {
            file: file.to_path_buf(),
            pipelines,
        })
    }

    /// Check that every class in the handler map is known (load-time error otherwise).
    pub fn check_handler_map(
        handlers: &HandlerMap,
        registry: &Registry,
    ) -> Result<(), ConfigError> {
        for (name, hc) in handlers {
            if registry.resolve(&hc.class).is_none() {
                return Err(ConfigError::at(
                    &hc.file,
                    hc.line,
                    format!(
                        "pipeline_handlers.{name}: unknown handler class '{}' (known: {})",
                        hc.class,
                        registry.names().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler_map() -> HandlerMap {
        parse_handler_map(
            "database: {url: 'sqlite::memory:'}\npipeline_handlers:\n  logger: winchester.pipeline_handler:LoggingHandler\n  usage: winchester.pipeline_handler:UsageHandler\n  notabene: winchester.pipeline_handler:NotabeneHandler\n  bogus: some.module:Nope\n",
            Path::new("winchester.yaml"),
        )
        .unwrap()
    }

    /// `Ok(pipeline -> [(name, params json)])` or `Err(message)`.
    fn check(yaml: &str, expected: Result<&str, &str>) {
        let got = PipelineConfig::parse(
            yaml,
            Path::new("pipelines.yaml"),
            &handler_map(),
            &Registry::builtin(),
            &HandlerContext::offline(),
        );
        match (got, expected) {
            (Ok(cfg), Ok(want)) => {
                let summary: BTreeMap<String, Vec<(String, Value)>> = cfg
                    .pipelines
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.iter()
                                .map(|s| (s.name.clone(), Value::Object(s.params.clone())))
                                .collect(),
                        )
                    })
                    .collect();
                assert_eq!(
                    serde_json::to_string(&summary).unwrap(),
                    want,
                    "yaml: {yaml}"
                );
            }
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want, "yaml: {yaml}"),
            (got, want) => panic!("yaml: {yaml}\n got {got:?}\nwant {want:?}"),
        }
    }

    #[test]
    fn pipelines_yaml_cases() {
        check(
            "p: [logger, usage]\n",
            Ok(r#"{"p":[["logger",{}],["usage",{}]]}"#),
        );
        check(
            "p:\n  - logger\n  - name: usage\n",
            Ok(r#"{"p":[["logger",{}],["usage",{}]]}"#),
        );
        check(
            "p:\n  - name: notabene\n    params: {exchange: nova, queue_name: monitor.info, env_keys: [usage_notifications]}\n",
            Ok(r#"{"p":[["notabene",{"exchange":"nova","queue_name":"monitor.info","env_keys":["usage_notifications"]}]]}"#),
        );
        check("", Ok("{}"));
        check("p: []\nq:\n", Ok(r#"{"p":[],"q":[]}"#));
        check(
            "p:\n  - logger\n  - params: {a: 1}\n",
            Err("pipelines.yaml:3: pipeline 'p': handler name not in config (params: {\"a\":1})"),
        );
        check(
            "p:\n  - logger\n  - nosuch\n",
            Err("pipelines.yaml:3: pipeline 'p': unknown handler 'nosuch' (pipeline_handlers has: bogus, logger, notabene, usage)"),
        );
        check(
            "p:\n  - bogus\n",
            Err("winchester.yaml:6: pipeline 'p': handler 'bogus' maps to unknown class 'some.module:Nope' (used at pipelines.yaml:2)"),
        );
        check(
            "p:\n  - name: notabene\n    params: {exchange: nova}\n",
            Err("pipelines.yaml:2: pipeline 'p', handler 'notabene': No 'queue_name' provided"),
        );
        check(
            "p:\n  - name: logger\n    params: [1]\n",
            Err("pipelines.yaml:2: pipeline 'p', handler 'logger': params must be a mapping, got [1]"),
        );
    }

    #[test]
    fn handler_map_check_names_the_line() {
        let err =
            PipelineConfig::check_handler_map(&handler_map(), &Registry::builtin()).unwrap_err();
        assert!(err.to_string().starts_with("winchester.yaml:6: pipeline_handlers.bogus: unknown handler class 'some.module:Nope'"), "{err}");
    }
}
