//! winchester's processing side: pipelines, handlers, the pipeline worker and replay.
//!
//! * [`handler`]: the handler contract (`Handler`, `Env`, `PipelineEvent`) and the [`handler::Registry`].
//! * [`config`]: pipelines.yaml + `pipeline_handlers` loading and validation (file:line errors).
//! * [`handlers`]: built-in handlers: logging, usage, notabene, atompub.
//! * [`pipeline`]: one pipeline run (handle_events chain, commit/rollback, new-event diff),
//!   panic- and timeout-safe.
//! * [`stats`]: the original debug counters and the periodic stats lines (§4.13).

pub mod config;
pub mod handler;
pub mod handlers;
pub mod pipeline;
pub mod stats;

pub use config::{ConfigError, HandlerMap, PipelineConfig};
pub use handler::{Env, Handler, HandlerError, PipelineEvent, Registry};
pub use handlers::HandlerContext;
pub mod manager;
pub use manager::{ManagerSettings, Outcome, PassReport, PipelineManager};
pub mod replay;
pub mod setup;
pub mod worker;
