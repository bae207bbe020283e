//! One pipeline run over one stream's events (spec §4.10), made robust.
//!
//! 1. Build fresh handler instances from the [`HandlerSpec`]s.
//! 2. On a blocking thread, chain `handle_events` (env `stream_id`/`stream_name`
//!    set first). A handler error **or panic** stops the chain: "Pipeline error",
//!    `rollback` on every handler, and the run fails.
//! 3. "Pre-commit successful"; `commit` on every handler ("Commit successful" /
//!    "Commit error"; commit errors are logged and do not fail the run, as in
//!    the original).
//! 4. Return the new events: those whose message_id was not in the input.
//!
//! The whole run is bounded by a timeout: a hung `handle_events` (its blocking
//! thread is abandoned) or a hung `commit` fails the run with [`PipelineError::Timeout`].

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use crate::config::HandlerSpec;
use crate::handler::{Env, Handler, PipelineEvent};
use crate::handlers::HandlerContext;
use crate::stats::Stats;

/// Why a pipeline run failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline '{pipeline}': cannot build handler '{handler}': {message}")]
    Build {
        pipeline: String,
        handler: String,
        message: String,
    },
    #[error("pipeline '{pipeline}': handler '{handler}' failed: {message}")]
    Handler {
        pipeline: String,
        handler: String,
        message: String,
    },
    #[error("pipeline '{pipeline}': handler '{handler}' panicked: {message}")]
    Panic {
        pipeline: String,
        handler: String,
        message: String,
    },
    #[error("pipeline '{pipeline}': timed out after {secs:.1}s")]
    Timeout { pipeline: String, secs: f64 },
}

/// Inputs of one run.
pub struct RunSpec<'a> {
    pub pipeline: &'a str,
    pub handlers: &'a [HandlerSpec],
    pub stream_id: i64,
    pub stream_name: &'a str,
    /// Trigger name for the counters.
    pub trigger: &'a str,
    pub timeout: Duration,
}

type Named = Vec<(String, Box<dyn Handler>)>;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Run a pipeline. Returns the new events.
pub async fn run(
    spec: RunSpec<'_>,
    ctx: &HandlerContext,
    stats: &Stats,
    events: Vec<PipelineEvent>,
) -> Result<Vec<PipelineEvent>, PipelineError> {
    let pname = spec.pipeline.to_string();
    let mut handlers: Named = Vec::with_capacity(spec.handlers.len());
    for h in spec.handlers {
        let built = h.build(ctx).map_err(|e| PipelineError::Build {
            pipeline: pname.clone(),
            handler: h.name.clone(),
            message: e.to_string(),
        })?;
        handlers.push((h.name.clone(), built));
    }
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let timeout_err = || PipelineError::Timeout {
        pipeline: pname.clone(),
        secs: spec.timeout.as_secs_f64(),
    };

    let ids: HashSet<String> = events.iter().map(|e| e.message_id.clone()).collect();
    let env = Env::new(spec.stream_id, spec.stream_name);
    let pipeline_name = pname.clone();
    let chain = tokio::task::spawn_blocking(move || chain(pipeline_name, handlers, env, events));
    let (mut handlers, result) = match tokio::time::timeout_at(deadline, chain).await {
        Err(_) => {
            stats.bump(spec.trigger, "Pipeline error");
            return Err(timeout_err());
        }
        Ok(Err(join)) => {
            return Err(PipelineError::Panic {
                pipeline: pname,
                handler: "?".into(),
                message: join.to_string(),
            })
        }
        Ok(Ok(x)) => x,
    };
    let out = match result {
        Err(err) => {
            tracing::error!(
                stream_id = spec.stream_id,
                "Error processing pipeline {pname}: {err}"
            );
            stats.bump(spec.trigger, "Pipeline error");
            for (name, h) in handlers.iter_mut() {
                match tokio::time::timeout_at(deadline, h.rollback()).await {
                    Ok(Ok(())) => stats.bump(spec.trigger, "Rollback successful"),
                    Ok(Err(e)) => {
                        stats.bump(spec.trigger, "Rollback error");
                        tracing::error!(
                            "Rollback error on handler {name} in pipeline {pname}: {e}"
                        );
                    }
                    Err(_) => {
                        stats.bump(spec.trigger, "Rollback error");
                        return Err(timeout_err());
                    }
                }
            }
            return Err(err);
        }
        Ok(out) => out,
    };
    stats.bump(spec.trigger, "Pre-commit successful");
    let new_events: Vec<PipelineEvent> = out
        .into_iter()
        .filter(|e| !ids.contains(&e.message_id))
        .collect();
    for (name, h) in handlers.iter_mut() {
        match tokio::time::timeout_at(deadline, h.commit()).await {
            Ok(Ok(())) => stats.bump(spec.trigger, "Commit successful"),
            Ok(Err(e)) => {
                stats.bump(spec.trigger, "Commit error");
                tracing::error!(
                    stream_id = spec.stream_id,
                    "Commit error on handler {name} in pipeline {pname}: {e}"
                );
            }
            Err(_) => {
                stats.bump(spec.trigger, "Commit error");
                return Err(timeout_err());
            }
        }
    }
    Ok(new_events)
}

fn chain(
    pipeline: String,
    mut handlers: Named,
    mut env: Env,
    mut events: Vec<PipelineEvent>,
) -> (Named, Result<Vec<PipelineEvent>, PipelineError>) {
    for (name, h) in handlers.iter_mut() {
        let input = std::mem::take(&mut events);
        match std::panic::catch_unwind(AssertUnwindSafe(|| h.handle_events(input, &mut env))) {
            Ok(Ok(out)) => events = out,
            Ok(Err(e)) => {
                let err = PipelineError::Handler {
                    pipeline,
                    handler: name.clone(),
                    message: e.to_string(),
                };
                return (handlers, Err(err));
            }
            Err(p) => {
                let err = PipelineError::Panic {
                    pipeline,
                    handler: name.clone(),
                    message: panic_message(p.as_ref()),
                };
                return (handlers, Err(err));
            }
        }
    }
    (handlers, Ok(events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HandlerClass, HandlerMap, PipelineConfig};
    use crate::handler::{HandlerError, Registry};
    use futures::future::BoxFuture;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use stv3_event::parse_timestamp;

    /// A scripted handler: behaviour chosen by params `mode`; logs calls to a shared journal.
    struct Scripted {
        id: String,
        mode: String,
        journal: Arc<Mutex<Vec<String>>>,
    }

    impl Handler for Scripted {
        fn handle_events(
            &mut self,
            mut events: Vec<PipelineEvent>,
            env: &mut Env,
        ) -> Result<Vec<PipelineEvent>, HandlerError> {
            self.journal
                .lock()
                .unwrap()
                .push(format!("{}:handle({})", self.id, events.len()));
            match self.mode.as_str() {
                "fail" => Err(HandlerError::new("boom")),
                "panic" => panic!("handler exploded"),
                "hang" => {
                    std::thread::sleep(Duration::from_secs(6));
                    Ok(events)
                }
                "add" => {
                    let t = parse_timestamp("2015-01-01").unwrap();
                    events.push(PipelineEvent::new(
                        format!("new-{}", env.stream_id),
                        "x.new",
                        t,
                    ));
                    Ok(events)
                }
                "drop" => Ok(Vec::new()),
                _ => Ok(events),
            }
        }
        fn commit(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
            self.journal
                .lock()
                .unwrap()
                .push(format!("{}:commit", self.id));
            let fail = self.mode == "commit_fail";
            Box::pin(async move {
                if fail {
                    Err(HandlerError::new("commit failed"))
                } else {
                    Ok(())
                }
            })
        }
        fn rollback(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
            self.journal
                .lock()
                .unwrap()
                .push(format!("{}:rollback", self.id));
            let fail = self.mode == "rollback_fail";
            Box::pin(async move {
                if fail {
                    Err(HandlerError::new("rollback failed"))
                } else {
                    Ok(())
                }
            })
        }
    }

    fn setup(modes: &[&str]) -> (PipelineConfig, Arc<Mutex<Vec<String>>>) {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut registry = Registry::empty();
        let j = journal.clone();
        registry.register("scripted", &[], move |p, _| {
            Ok(Box::new(Scripted {
                id: p
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string(),
                mode: p
                    .get("mode")
                    .and_then(|v| v.as_str())
                    .unwrap_or("pass")
                    .to_string(),
                journal: j.clone(),
            }))
        });
        let mut map = HandlerMap::new();
        map.insert(
            "s".into(),
            HandlerClass {
                class: "scripted".into(),
                file: PathBuf::new(),
                line: 0,
            },
        );
        let yaml: String = std::iter::once("p:\n".to_string())
            .chain(
                modes
                    .iter()
                    .enumerate()
                    .map(|(i, m)| format!("  - {{name: s, params: {{id: h{i}, mode: {m}}}}}\n")),
            )
            .collect();
        let cfg = PipelineConfig::parse(
            &yaml,
            Path::new("p.yaml"),
            &map,
            &registry,
            &HandlerContext::offline(),
        )
        .unwrap();
        journal.lock().unwrap().clear(); // forget the load-time trial builds
        (cfg, journal)
    }

    /// Run a pipeline of scripted handlers over 2 events.
    /// Expected: (Ok(new message ids) | Err(prefix of the error), journal, counters).
    async fn check(
        modes: &[&str],
        expected: Result<Vec<&str>, &str>,
        journal: &[&str],
        counters: &[(&str, u64)],
    ) {
        let (cfg, j) = setup(modes);
        let stats = Stats::new();
        let t = parse_timestamp("2015-01-01").unwrap();
        let events = vec![
            PipelineEvent::new("a", "x", t),
            PipelineEvent::new("b", "y", t),
        ];
        let spec = RunSpec {
            pipeline: "p",
            handlers: cfg.get("p").unwrap(),
            stream_id: 7,
            stream_name: "trig",
            trigger: "trig",
            timeout: if modes.contains(&"hang") {
                Duration::from_millis(1500)
            } else {
                Duration::from_secs(5)
            },
        };
        let got = run(spec, &HandlerContext::offline(), &stats, events).await;
        match (&got, &expected) {
            (Ok(evs), Ok(want)) => assert_eq!(
                evs.iter()
                    .map(|e| e.message_id.as_str())
                    .collect::<Vec<_>>(),
                *want,
                "{modes:?}"
            ),
            (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{modes:?}: {e}"),
            _ => panic!("{modes:?}: got {got:?}, want {expected:?}"),
        }
        assert_eq!(*j.lock().unwrap(), journal, "{modes:?}");
        for (name, n) in counters {
            assert_eq!(stats.get("trig", name), *n, "{modes:?} counter {name}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipeline_runs() {
        check(
            &["pass", "pass"],
            Ok(vec![]),
            &["h0:handle(2)", "h1:handle(2)", "h0:commit", "h1:commit"],
            &[("Pre-commit successful", 1), ("Commit successful", 2)],
        )
        .await;
        check(
            &["add", "pass"],
            Ok(vec!["new-7"]),
            &["h0:handle(2)", "h1:handle(3)", "h0:commit", "h1:commit"],
            &[],
        )
        .await;
        // Filtering handlers: output without the input events is not "new".
        check(
            &["drop", "pass"],
            Ok(vec![]),
            &["h0:handle(2)", "h1:handle(0)", "h0:commit", "h1:commit"],
            &[],
        )
        .await;
        check(
            &["pass", "fail", "pass"],
            Err("pipeline 'p': handler 's' failed: boom"),
            &[
                "h0:handle(2)",
                "h1:handle(2)",
                "h0:rollback",
                "h1:rollback",
                "h2:rollback",
            ],
            &[
                ("Pipeline error", 1),
                ("Rollback successful", 3),
                ("Pre-commit successful", 0),
            ],
        )
        .await;
        check(
            &["panic", "pass"],
            Err("pipeline 'p': handler 's' panicked: handler exploded"),
            &["h0:handle(2)", "h0:rollback", "h1:rollback"],
            &[("Pipeline error", 1)],
        )
        .await;
        check(
            &["fail", "rollback_fail"],
            Err("pipeline 'p': handler 's' failed"),
            &["h0:handle(2)", "h0:rollback", "h1:rollback"],
            &[("Rollback error", 1), ("Rollback successful", 1)],
        )
        .await;
        // Commit errors are logged and counted, the run still succeeds.
        check(
            &["commit_fail", "pass"],
            Ok(vec![]),
            &["h0:handle(2)", "h1:handle(2)", "h0:commit", "h1:commit"],
            &[("Commit error", 1), ("Commit successful", 1)],
        )
        .await;
        check(
            &["hang"],
            Err("pipeline 'p': timed out after 1.5s"),
            &["h0:handle(2)"],
            &[],
        )
        .await;
    }
}
