//! JournalHandler (stv3 addition): on commit, append one JSON line per
//! pipeline run to a file: `{"events":N,"pid":P,"stream_id":ID,"stream_name":NAME}`.
//! An audit trail of which streams ran where; the multi-worker tests count it to
//! prove each stream's pipeline runs exactly once.
//!
//! Params: `path` (required); `sleep` (seconds to sleep in `handle_events`,
//! default 0; simulates a slow pipeline in tests and benchmarks).

use std::io::Write;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::handler::{
    param_f64, param_str, Env, Handler, HandlerError, ParamError, Params, PipelineEvent,
};
use crate::handlers::HandlerContext;

pub struct JournalHandler {
    path: String,
    sleep: f64,
    line: Option<String>,
}

pub fn construct(params: &Params, _ctx: &HandlerContext) -> Result<Box<dyn Handler>, ParamError> {
    let path = param_str(params, "path")?.ok_or_else(|| ParamError("No 'path' provided".into()))?;
    let sleep = param_f64(params, "sleep")?.unwrap_or(0.0);
    Ok(Box::new(JournalHandler {
        path,
        sleep,
        line: None,
    }))
}

impl Handler for JournalHandler {
    fn handle_events(
        &mut self,
        events: Vec<PipelineEvent>,
        env: &mut Env,
    ) -> Result<Vec<PipelineEvent>, HandlerError> {
        if self.sleep > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(self.sleep));
        }
        let line = serde_json::json!({
            "events": events.len(),
            "pid": std::process::id(),
            "stream_id": env.stream_id,
            "stream_name": env.stream_name,
        });
        self.line = Some(format!("{line}\n"));
        Ok(events)
    }

    fn commit(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(async move {
            let Some(line) = self.line.take() else {
                return Ok(());
            };
            // One write(2) of a short line with O_APPEND: lines from concurrent processes do not interleave.
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| HandlerError::new(format!("{}: {e}", self.path)))?;
            f.write_all(line.as_bytes())
                .map_err(|e| HandlerError::new(format!("{}: {e}", self.path)))
        })
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
        self.line = None;
        Box::pin(async { Ok(()) })
    }
}
