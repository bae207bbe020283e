//! LoggingHandler: logs `Received N events: \n<type>: <message_id>, ...` and
//! passes the events through unchanged. commit and rollback do nothing.

use crate::handler::{Env, Handler, HandlerError, ParamError, Params, PipelineEvent};
use crate::handlers::HandlerContext;

#[derive(Debug, Default)]
pub struct LoggingHandler;

pub fn construct(_params: &Params, _ctx: &HandlerContext) -> Result<Box<dyn Handler>, ParamError> {
    Ok(Box::new(LoggingHandler))
}

/// The log line body (pure, for tests).
pub fn summary(events: &[PipelineEvent]) -> String {
    let list: Vec<String> = events
        .iter()
        .map(|e| format!("{}: {}", e.event_type, e.message_id))
        .collect();
    format!("Received {} events: \n{}", events.len(), list.join(", "))
}

impl Handler for LoggingHandler {
    fn handle_events(
        &mut self,
        events: Vec<PipelineEvent>,
        env: &mut Env,
    ) -> Result<Vec<PipelineEvent>, HandlerError> {
        tracing::info!(stream_id = env.stream_id, stream = %env.stream_name, "{}", summary(&events));
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stv3_event::parse_timestamp;

    #[test]
    fn summary_lists_type_and_id() {
        let t = parse_timestamp("2015-03-01 00:00:00").unwrap();
        let evs = vec![
            PipelineEvent::new("m1", "a.b", t),
            PipelineEvent::new("m2", "c.d", t),
        ];
        assert_eq!(summary(&evs), "Received 2 events: \na.b: m1, c.d: m2");
        let mut env = Env::new(1, "s");
        let out = LoggingHandler.handle_events(evs.clone(), &mut env).unwrap();
        assert_eq!(out, evs);
    }
}
