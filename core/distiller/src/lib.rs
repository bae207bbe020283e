//! stackdistiller: raw OpenStack notifications to typed events, driven by
//! event_definitions.yaml. Pure (no I/O besides reading the definitions file).
//!
//! ```
//! use stv3_distiller::Distiller;
//! let d = Distiller::from_yaml_str(
//!     "- event_type: compute.instance.*\n  traits:\n    host: {fields: payload.host}\n",
//!     "inline", false).unwrap();
//! let out = d.distill_bytes(br#"{"event_type":"compute.instance.update","message_id":"m1",
//!     "timestamp":"2015-03-01 18:01:00","publisher_id":"compute.h1","payload":{"host":"h1"}}"#).unwrap();
//! let event = out.event().unwrap();
//! assert_eq!(event.traits["host"].as_str(), Some("h1"));
//! assert_eq!(event.traits["service"].as_str(), Some("compute.h1"));
//! ```
//!
//! Modules: [`definitions`] (YAML loading and validation), [`jsonpath`]
//! (the `fields` language), [`glob`] (event_type patterns), [`convert`]
//! (Python-compatible type conversions), [`plugins`] (split, bitfield,
//! timedelta and the registry), [`json`] (document views, the borrowed
//! tree), [`scan`] (the hot-path reader: a plan of slots compiled from the
//! paths, one validating pass), [`distill`] (the `Distiller`).

pub mod convert;
pub mod definitions;
pub mod distill;
pub mod glob;
pub mod json;
pub mod jsonpath;
pub mod plugins;
pub mod scan;
pub mod yaml;

pub use definitions::{DefinitionError, EventDefinition, TraitDefinition};
pub use distill::{Diagnostics, DistillError, Distiller, DistillerOptions, DroppedTrait, Outcome};
pub use plugins::{FieldMatch, PluginRegistry, TraitPlugin};
