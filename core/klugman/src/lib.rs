//! klugman: command-line client for the stv3 REST API.
//!
//! * [`cli`]: clap definitions, klugman 0.4/0.5 argument compatibility, request parameters.
//! * [`client`]: HTTP, paging, errors with exit codes.
//! * [`render`]: tables and readable values (pure).
//!
//! [`run`] executes a parsed command and writes to the given writers, so tests
//! can capture the exact output.

pub mod cli;
pub mod client;
pub mod render;

use std::io::Write;

use reqwest::Method;
use serde_json::Value;

pub use cli::Cli;
use cli::{Command, Paging};
pub use client::{Client, KlugError};

/// `--all` page size when no `--limit` is given.
const ALL_PAGE: u32 = 1000;

async fn list(
    c: &Client,
    path: &str,
    mut params: Vec<(String, String)>,
    paging: &Paging,
    err: &mut dyn Write,
) -> Result<Vec<Value>, KlugError> {
    params.extend(cli::paging_params(paging));
    if paging.all {
        return c.all(path, &params, paging.limit.unwrap_or(ALL_PAGE)).await;
    }
    let page = c
        .page(path, &params, Some(paging.limit.unwrap_or(200)))
        .await?;
    if let Some(m) = &page.next_mark {
        writeln!(err, "(more results: add --mark {m}, or --all)")?;
    }
    Ok(page.items)
}

fn emit(
    out: &mut dyn Write,
    json: bool,
    v: &Value,
    table: impl FnOnce(&Value) -> String,
) -> Result<(), KlugError> {
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_default()
        )?;
    } else {
        write!(out, "{}", table(v))?;
    }
    Ok(())
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Run one command. Tables or JSON go to `out`, hints to `err`.
pub async fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), KlugError> {
    let c = Client::new(&cli.url, cli.api_version, cli.token.clone(), cli.debug);
    match &cli.command {
        Command::Streams(a) => {
            if a.details && a.id.is_none() {
                writeln!(err, "(--details applies to --id; listing without events)")?;
            }
            if let Some(id) = a.id {
                let params = if a.details {
                    vec![("details".to_string(), "true".to_string())]
                } else {
                    vec![]
                };
                let v = c.get(&format!("streams/{id}"), &params).await?;
                emit(out, cli.json, &v, |v| {
                    as_list(v).iter().map(render::stream_detail).collect()
                })
            } else if a.count {
                let v = c
                    .get("streams/count", &cli::stream_params(&a.filters))
                    .await?;
                emit(out, cli.json, &v, render::count)
            } else {
                let items = list(
                    &c,
                    "streams",
                    cli::stream_params(&a.filters),
                    &a.paging,
                    err,
                )
                .await?;
                emit(out, cli.json, &Value::Array(items), |v| {
                    render::streams_list(&as_list(v))
                })
            }
        }
        Command::Events(a) => {
            if let Some(id) = &a.msg_id {
                let v = c.get(&format!("events/{id}"), &[]).await?;
                emit(out, cli.json, &v, |v| render::events_tables(&as_list(v)))
            } else if a.count {
                let v = c
                    .get("events/count", &cli::event_params(&a.filters))
                    .await?;
                emit(out, cli.json, &v, render::count)
            } else {
                let items =
                    list(&c, "events", cli::event_params(&a.filters), &a.paging, err).await?;
                emit(out, cli.json, &Value::Array(items), |v| {
                    render::events_tables(&as_list(v))
                })
            }
        }
        Command::NumStreams(f) => {
            let v = c.get("streams/count", &cli::stream_params(f)).await?;
            emit(out, cli.json, &v, render::count)
        }
        Command::NumEvents(f) => {
            let v = c.get("events/count", &cli::event_params(f)).await?;
            emit(out, cli.json, &v, render::count)
        }
        Command::Reset { stream_id } => {
            let v = c.send(Method::PUT, &format!("streams/{stream_id}")).await?;
            let v = if v.is_null() {
                serde_json::json!({"id": stream_id, "reset": "requested"})
            } else {
                v
            };
            emit(out, cli.json, &v, render::object)
        }
        Command::Delete { stream_id } => {
            let v = c
                .send(Method::DELETE, &format!("streams/{stream_id}"))
                .await?;
            let v = if v.is_null() {
                serde_json::json!({"id": stream_id, "deleted": true})
            } else {
                v
            };
            emit(out, cli.json, &v, render::object)
        }
        Command::Archives(a) => {
            if cli.api_version < 2 {
                return Err(KlugError::Usage("archives needs --api-version 2".into()));
            }
            if let Some(id) = &a.get {
                let n = match &a.output {
                    Some(path) => {
                        let mut f = std::fs::File::create(path)?;
                        c.download(&format!("archives/{id}"), &mut f).await?
                    }
                    None => c.download(&format!("archives/{id}"), out).await?,
                };
                if let Some(path) = &a.output {
                    writeln!(err, "wrote {n} bytes to {}", path.display())?;
                }
                Ok(())
            } else {
                let mut params = Vec::new();
                if let Some(s) = &a.start {
                    params.push(("start_ts".to_string(), s.clone()));
                }
                if let Some(e) = &a.end {
                    params.push(("end_ts".to_string(), e.clone()));
                }
                let v = c.get("archives", &params).await?;
                emit(out, cli.json, &v, |v| render::archives(&as_list(v)))
            }
        }
    }
}
