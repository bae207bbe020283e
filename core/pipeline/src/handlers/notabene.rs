//! NotabeneHandler: re-publish notifications to RabbitMQ on commit (spec §4.11).
//!
//! Params: `queue_name` (required; also the routing key), `exchange` (required),
//! `exchange_type` (topic), `host` (localhost), `port` (5672), `user`/`password`
//! (guest), `vhost` (/), `library` (accepted and ignored: we always use lapin),
//! `env_keys` ([]).
//!
//! `handle_events` collects every item of `env[k]` for `k` in `env_keys` and passes
//! the events through; `commit` publishes them as JSON (datetimes are already
//! canonical strings in env) and waits for the broker's publisher confirms. A
//! failed publish makes `commit` return an error (logged and counted as
//! "Commit error" by the pipeline, like the original's per-message exception log).

use serde_json::Value;

use crate::handler::{
    param_str, param_str_list, Env, Handler, HandlerError, ParamError, Params, PipelineEvent,
};
use crate::handlers::{AmqpTarget, HandlerContext};
use std::sync::Arc;

use super::Publisher;

pub struct NotabeneHandler {
    target: AmqpTarget,
    env_keys: Vec<String>,
    pending: Vec<Value>,
    publisher: Arc<dyn Publisher>,
}

pub fn construct(params: &Params, ctx: &HandlerContext) -> Result<Box<dyn Handler>, ParamError> {
    let queue_name = param_str(params, "queue_name")?
        .ok_or_else(|| ParamError("No 'queue_name' provided".into()))?;
    let exchange = param_str(params, "exchange")?
        .ok_or_else(|| ParamError("No 'exchange' name provided".into()))?;
    let port = match param_str(params, "port")? {
        None => 5672,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| ParamError(format!("param 'port' must be a port number, got {p:?}")))?,
    };
    let target = AmqpTarget {
        host: param_str(params, "host")?.unwrap_or_else(|| "localhost".into()),
        port,
        user: param_str(params, "user")?.unwrap_or_else(|| "guest".into()),
        password: param_str(params, "password")?.unwrap_or_else(|| "guest".into()),
        vhost: param_str(params, "vhost")?.unwrap_or_else(|| "/".into()),
        exchange,
        exchange_type: param_str(params, "exchange_type")?.unwrap_or_else(|| "topic".into()),
        queue_name,
    };
    let _library = param_str(params, "library")?;
    let env_keys = param_str_list(params, "env_keys")?.unwrap_or_default();
    Ok(Box::new(NotabeneHandler {
        target,
        env_keys,
        pending: Vec::new(),
        publisher: ctx.publisher.clone(),
    }))
}

impl NotabeneHandler {
    pub fn target(&self) -> &AmqpTarget {
        &self.target
    }
}

impl Handler for NotabeneHandler {
    fn handle_events(
        &mut self,
        events: Vec<PipelineEvent>,
        env: &mut Env,
    ) -> Result<Vec<PipelineEvent>, HandlerError> {
        self.pending = self.env_keys.iter().flat_map(|k| env.list(k)).collect();
        Ok(events)
    }

    fn commit(&mut self) -> futures::future::BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(async move {
            let pending = std::mem::take(&mut self.pending);
            if pending.is_empty() {
                return Ok(());
            }
            for n in &pending {
                tracing::info!(
                    "Publishing '{}' to '{}' with routing_key '{}'",
                    n.get("event_type").and_then(|v| v.as_str()).unwrap_or("?"),
                    self.target.exchange,
                    self.target.queue_name
                );
            }
            let bodies = pending
                .iter()
                .map(|n| serde_json::to_vec(n).unwrap_or_default())
                .collect();
            self.publisher
                .publish(&self.target, bodies)
                .await
                .map_err(|e| HandlerError::new(e.to_string()))
        })
    }

    fn rollback(&mut self) -> futures::future::BoxFuture<'_, Result<(), HandlerError>> {
        self.pending.clear();
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::RecordingPublisher;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn param_validation_and_defaults() {
        let ctx = HandlerContext::offline();
        let err = |p: &str| construct(&params(p), &ctx).err().map(|e| e.0);
        assert_eq!(
            err(r#"{"exchange":"nova"}"#).as_deref(),
            Some("No 'queue_name' provided")
        );
        assert_eq!(
            err(r#"{"queue_name":"q"}"#).as_deref(),
            Some("No 'exchange' name provided")
        );
        assert_eq!(
            err(r#"{"queue_name":"q","exchange":"x","port":"abc"}"#).as_deref(),
            Some("param 'port' must be a port number, got \"abc\"")
        );
        assert_eq!(
            err(r#"{"queue_name":"q","exchange":"x","port":5673,"library":"librabbitmq"}"#),
            None
        );
    }

    #[tokio::test]
    async fn collects_env_keys_and_publishes_on_commit() {
        let rec = Arc::new(RecordingPublisher::default());
        let ctx = HandlerContext::offline().with_publisher(rec.clone());
        let mut h = construct(
            &params(r#"{"queue_name":"monitor.info","exchange":"nova","env_keys":["a","b"]}"#),
            &ctx,
        )
        .unwrap();
        let mut env = Env::new(1, "s");
        env.data.insert(
            "a".into(),
            serde_json::json!([{"event_type":"x"},{"event_type":"y"}]),
        );
        env.data
            .insert("b".into(), serde_json::json!([{"event_type":"z"}]));
        env.data
            .insert("c".into(), serde_json::json!([{"event_type":"ignored"}]));
        assert!(h.handle_events(vec![], &mut env).unwrap().is_empty());
        assert!(
            rec.sent.lock().unwrap().is_empty(),
            "nothing is published before commit"
        );
        h.commit().await.unwrap();
        let sent = rec.sent.lock().unwrap();
        let types: Vec<&str> = sent
            .iter()
            .map(|(_, v)| v["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["x", "y", "z"]);
        assert_eq!(sent[0].0.queue_name, "monitor.info");
        assert_eq!(sent[0].0.exchange_type, "topic");
    }

    #[tokio::test]
    async fn publish_failure_is_a_commit_error_and_rollback_forgets() {
        let rec = Arc::new(RecordingPublisher::default());
        *rec.fail_with.lock().unwrap() = Some("down".into());
        let ctx = HandlerContext::offline().with_publisher(rec.clone());
        let mut h = construct(
            &params(r#"{"queue_name":"q","exchange":"x","env_keys":["a"]}"#),
            &ctx,
        )
        .unwrap();
        let mut env = Env::new(1, "s");
        env.data
            .insert("a".into(), serde_json::json!([{"event_type":"x"}]));
        h.handle_events(vec![], &mut env).unwrap();
        assert!(h.commit().await.is_err());
        h.handle_events(vec![], &mut env).unwrap();
        h.rollback().await.unwrap();
        *rec.fail_with.lock().unwrap() = None;
        h.commit().await.unwrap();
        assert!(
            rec.sent.lock().unwrap().is_empty(),
            "rollback dropped the pending notifications"
        );
    }
}
