//! event_definitions.yaml: loading, validation and the compiled
//! definitions.
//!
//! The file is a YAML list of `{event_type, traits}` mappings. `event_type`
//! is a glob or a list of globs (`!` marks an exclusion; only exclusions
//! imply `*`). `traits` maps a trait name to `{fields, type?, plugin?}`.
//! Every definition gets the default traits `service`, `request_id` and
//! `tenant_id` first; the file can override them. Anchors and `<<` merge
//! keys are plain YAML and resolved by the parser.
//!
//! Validation is strict about shapes (every error names the origin, line and
//! column and what was expected) and lenient about extra keys, which the
//! original ignored: they are reported as warnings.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};
use stv3_event::{Datatype, SmolStr, TraitValue};

use crate::convert::{convert, py_str, ConvertError};
use crate::glob::Glob;
use crate::json::{JsonNode, View};
use crate::jsonpath::{FieldPath, Source};
use crate::plugins::{FieldMatch, PluginRegistry, TraitPlugin};
use crate::yaml::{self, Kind, Node, Pos};

/// A definitions file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{path}: cannot read event definitions: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        origin: String,
        line: u64,
        column: u64,
        message: String,
    },
}

impl DefinitionError {
    fn at(origin: &str, pos: Pos, message: impl Into<String>) -> Self {
        DefinitionError::Invalid {
            origin: origin.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

/// The original's default traits, added to every definition before its own.
pub const DEFAULT_TRAITS: &[(&str, &[&str])] = &[
    ("service", &["publisher_id"]),
    ("request_id", &["_context_request_id"]),
    ("tenant_id", &["payload.tenant_id", "_context_tenant"]),
];

/// How one trait is extracted.
pub struct TraitDefinition {
    /// Shared by every event that has the trait (inline: no allocation).
    pub name: SmolStr,
    pub datatype: Datatype,
    pub fields: FieldPath,
    pub plugin: Option<Box<dyn TraitPlugin>>,
}

impl fmt::Debug for TraitDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraitDefinition")
            .field("name", &self.name)
            .field("datatype", &self.datatype)
            .field("fields", &self.fields.as_str())
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// Why a trait was not produced although a value was there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraitFailure {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("plugin: {0}")]
    Plugin(String),
}

impl TraitDefinition {
    /// Extract this trait from a notification: `Ok(None)` when absent.
    #[inline]
    pub fn extract<S: Source>(&self, src: &S) -> Result<Option<TraitValue>, TraitFailure> {
        match &self.plugin {
            None => match self.fields.first_non_null(src) {
                None => Ok(None),
                // the usual cases inline: a text from a string, an int from
                // an int; `convert` for the rest
                Some(v) => match (self.datatype, v.view()) {
                    (Datatype::Text, View::Str(s)) => Ok(Some(TraitValue::Text(SmolStr::new(s)))),
                    (Datatype::Int, View::Int(i)) => Ok(Some(TraitValue::Int(i))),
                    _ => Ok(convert(v, self.datatype)?),
                },
            },
            Some(plugin) if plugin.first_text_only() => {
                let first = self.fields.first_non_null(src);
                let text = first.map(|v| match v.view() {
                    View::Str(s) => Cow::Borrowed(s),
                    _ => Cow::Owned(py_str(v)),
                });
                match plugin.piece_of_first_text(text.as_deref()) {
                    Some(None) => Ok(None),
                    Some(Some(piece)) if self.datatype == Datatype::Text => {
                        Ok(Some(TraitValue::Text(SmolStr::new(piece))))
                    }
                    Some(Some(piece)) => Ok(convert(&Value::String(piece.into()), self.datatype)?),
                    None => self.plugin_result(plugin.value_of_first_text(text.as_deref())),
                }
            }
            Some(plugin) => {
                let matches: Vec<FieldMatch> = self
                    .fields
                    .matches(src)
                    .into_iter()
                    .map(|m| FieldMatch {
                        path: m.path,
                        value: m.node.to_value(),
                    })
                    .collect();
                self.plugin_result(plugin.trait_value(&matches))
            }
        }
    }

    fn plugin_result(
        &self,
        result: Result<Option<Value>, String>,
    ) -> Result<Option<TraitValue>, TraitFailure> {
        match result.map_err(TraitFailure::Plugin)? {
            None | Some(Value::Null) => Ok(None),
            // a text result is taken as it is
            Some(Value::String(s)) if self.datatype == Datatype::Text => {
                Ok(Some(TraitValue::Text(s.into())))
            }
            Some(v) => Ok(convert(&v, self.datatype)?),
        }
    }
}

/// One compiled definition.
#[derive(Debug)]
pub struct EventDefinition {
    pub includes: Vec<Glob>,
    pub excludes: Vec<Glob>,
    /// Defaults first, then the file's traits (an override keeps the default's slot).
    pub traits: Vec<TraitDefinition>,
    /// Where the definition starts (line 0 for the implicit catchall).
    pub line: u64,
}

impl EventDefinition {
    pub fn matches_type(&self, event_type: &str) -> bool {
        self.includes.iter().any(|g| g.matches(event_type))
            && !self.excludes.iter().any(|g| g.matches(event_type))
    }

    /// `*` is among the includes and there is no exclusion.
    pub fn is_catchall(&self) -> bool {
        self.includes.iter().any(Glob::is_star) && self.excludes.is_empty()
    }

    /// The definition the catchall option appends: `{event_type: '*', traits: {}}`.
    pub fn catchall(plugins: &PluginRegistry) -> EventDefinition {
        let mut traits = Vec::new();
        add_defaults(&mut traits, plugins);
        EventDefinition {
            includes: vec![Glob::new("*")],
            excludes: vec![],
            traits,
            line: 0,
        }
    }
}

fn add_defaults(traits: &mut Vec<TraitDefinition>, _plugins: &PluginRegistry) {
    for (name, fields) in DEFAULT_TRAITS {
        traits.push(TraitDefinition {
            name: (*name).into(),
            datatype: Datatype::Text,
            fields: FieldPath::parse_union(fields).expect("default trait paths are valid"),
            plugin: None,
        });
    }
}

/// The loaded file: definitions in FILE order, plus warnings.
#[derive(Debug)]
pub struct LoadedDefinitions {
    pub definitions: Vec<EventDefinition>,
    pub warnings: Vec<String>,
}

/// Parse and validate a definitions document.
pub fn load(
    src: &str,
    origin: &str,
    plugins: &PluginRegistry,
) -> Result<LoadedDefinitions, DefinitionError> {
    let root = yaml::parse(src)
        .map_err(|e| DefinitionError::at(origin, e.pos, format!("invalid YAML: {}", e.message)))?;
    let mut warnings = Vec::new();
    let items: &[Node] = match &root.kind {
        Kind::Null => &[],
        Kind::Seq(items) => items,
        _ => {
            return Err(DefinitionError::at(
                origin,
                root.pos,
                format!(
                    "expected a list of event definitions, found {}",
                    root.describe()
                ),
            ))
        }
    };
    let mut definitions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        definitions.push(load_definition(
            item,
            i + 1,
            origin,
            plugins,
            &mut warnings,
        )?);
    }
    Ok(LoadedDefinitions {
        definitions,
        warnings,
    })
}

fn load_definition(
    node: &Node,
    number: usize,
    origin: &str,
    plugins: &PluginRegistry,
    warnings: &mut Vec<String>,
) -> Result<EventDefinition, DefinitionError> {
    let err = |pos: Pos, msg: String| {
        DefinitionError::at(origin, pos, format!("event definition #{number}: {msg}"))
    };
    let Some(entries) = node.entries() else {
        return Err(err(
            node.pos,
            format!(
                "expected a mapping with 'event_type' and 'traits', found {}",
                node.describe()
            ),
        ));
    };
    for (k, _) in entries {
        let key = k.key_text();
        if key != "event_type" && key != "traits" {
            warnings.push(format!(
                "{origin}:{}: event definition #{number}: unknown key '{key}' ignored",
                k.pos
            ));
        }
    }
    let event_type = node
        .get("event_type")
        .ok_or_else(|| err(node.pos, "missing required key 'event_type'".into()))?;
    let traits_node = node
        .get("traits")
        .ok_or_else(|| err(node.pos, "missing required key 'traits'".into()))?;

    let patterns: Vec<(&str, Pos)> = match &event_type.kind {
        Kind::Str(s) => vec![(s.as_str(), event_type.pos)],
        Kind::Seq(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => out.push((s, item.pos)),
                    None => {
                        return Err(err(
                            item.pos,
                            format!(
                                "event_type entries must be strings, found {}",
                                item.describe()
                            ),
                        ))
                    }
                }
            }
            out
        }
        Kind::Seq(_) => return Err(err(event_type.pos, "event_type list is empty".into())),
        _ => {
            return Err(err(
                event_type.pos,
                format!(
                    "event_type must be a string or a list of strings, found {}",
                    event_type.describe()
                ),
            ))
        }
    };
    let mut includes = Vec::new();
    let mut excludes = Vec::new();
    for (p, _) in patterns {
        match p.strip_prefix('!') {
            Some(rest) => excludes.push(Glob::new(rest)),
            None => includes.push(Glob::new(p)),
        }
    }
    if includes.is_empty() {
        includes.push(Glob::new("*"));
    }

    let mut traits = Vec::new();
    add_defaults(&mut traits, plugins);
    let trait_entries: &[(Node, Node)] = match &traits_node.kind {
        Kind::Map(m) => m,
        _ => {
            return Err(err(
                traits_node.pos,
                format!("traits must be a mapping of trait name to definition (use {{}} for none), found {}", traits_node.describe()),
            ))
        }
    };
    for (k, v) in trait_entries {
        let name = match &k.kind {
            Kind::Str(s) => s.clone(),
            _ => {
                return Err(err(
                    k.pos,
                    format!("trait names must be strings, found {}", k.describe()),
                ))
            }
        };
        let t = load_trait(&name, v, origin, plugins, warnings)?;
        match traits.iter_mut().find(|t| t.name == name) {
            Some(slot) => *slot = t,
            None => traits.push(t),
        }
    }
    Ok(EventDefinition {
        includes,
        excludes,
        traits,
        line: node.pos.line,
    })
}

fn load_trait(
    name: &str,
    node: &Node,
    origin: &str,
    plugins: &PluginRegistry,
    warnings: &mut Vec<String>,
) -> Result<TraitDefinition, DefinitionError> {
    let err =
        |pos: Pos, msg: String| DefinitionError::at(origin, pos, format!("trait '{name}': {msg}"));
    let Some(entries) = node.entries() else {
        return Err(err(
            node.pos,
            format!(
                "expected a mapping with 'fields' (and optional 'type', 'plugin'), found {}",
                node.describe()
            ),
        ));
    };
    for (k, _) in entries {
        let key = k.key_text();
        if !matches!(key.as_str(), "fields" | "type" | "plugin") {
            warnings.push(format!(
                "{origin}:{}: trait '{name}': unknown key '{key}' ignored",
                k.pos
            ));
        }
    }

    let datatype = match node.get("type") {
        None => Datatype::Text,
        Some(t) => match t.as_str().and_then(Datatype::from_name) {
            Some(d) => d,
            None => {
                let shown = t
                    .as_str()
                    .map(|s| format!("'{s}'"))
                    .unwrap_or_else(|| t.describe().to_string());
                return Err(err(
                    t.pos,
                    format!("invalid type {shown}: expected one of text, int, float, datetime"),
                ));
            }
        },
    };

    let plugin = match node.get("plugin") {
        None => None,
        Some(p) => {
            let (pname, params, pos): (&str, Map<String, Value>, Pos) = match &p.kind {
                Kind::Str(s) => (s.as_str(), Map::new(), p.pos),
                Kind::Map(_) => {
                    let pname = match p.get("name") {
                        Some(n) => n.as_str().ok_or_else(|| {
                            err(
                                n.pos,
                                format!("plugin name must be a string, found {}", n.describe()),
                            )
                        })?,
                        None => return Err(err(p.pos, "plugin specified without a 'name'".into())),
                    };
                    let params = match p.get("parameters") {
                        None => Map::new(),
                        Some(pp) => match pp.to_json() {
                            Value::Null => Map::new(),
                            Value::Object(m) => m,
                            _ => {
                                return Err(err(
                                    pp.pos,
                                    format!(
                                        "plugin parameters must be a mapping, found {}",
                                        pp.describe()
                                    ),
                                ))
                            }
                        },
                    };
                    (pname, params, p.pos)
                }
                _ => {
                    return Err(err(
                        p.pos,
                        format!(
                            "plugin must be a name or a mapping {{name, parameters}}, found {}",
                            p.describe()
                        ),
                    ))
                }
            };
            match plugins.build(pname, &params) {
                None => {
                    return Err(err(
                        pos,
                        format!(
                            "unknown plugin '{pname}' (available: {})",
                            plugins.names().join(", ")
                        ),
                    ));
                }
                Some(Err(e)) => return Err(err(pos, format!("plugin '{pname}': {e}"))),
                Some(Ok(plugin)) => Some(plugin),
            }
        }
    };

    let fields_node = node
        .get("fields")
        .ok_or_else(|| err(node.pos, "missing required key 'fields'".into()))?;
    let paths: Vec<&str> = match &fields_node.kind {
        Kind::Str(s) => vec![s.as_str()],
        Kind::Seq(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => out.push(s),
                    None => {
                        return Err(err(
                            item.pos,
                            format!(
                                "fields entries must be JSONPath strings, found {}",
                                item.describe()
                            ),
                        ))
                    }
                }
            }
            out
        }
        Kind::Seq(_) => return Err(err(fields_node.pos, "fields list is empty".into())),
        _ => {
            return Err(err(
                fields_node.pos,
                format!(
                    "fields must be a JSONPath string or a list of them, found {}",
                    fields_node.describe()
                ),
            ))
        }
    };
    let fields = FieldPath::parse_union(&paths).map_err(|e| err(fields_node.pos, e.to_string()))?;
    Ok(TraitDefinition {
        name: name.into(),
        datatype,
        fields,
        plugin,
    })
}
