//! The HTTP surface: v1 and v2 routes (same paths, parameters and JSON as
//! quincy/quince), `/v2/archives`, version discovery, and the JSON 404/405
//! fallbacks. Handlers parse with [`crate::params`], ask the [`ApiStore`] and
//! render with [`crate::wire`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::{error_body, ApiError};
use crate::model::{Mark, ResetOutcome};
use crate::params::{self, Limits, Params};
use crate::query::ApiStore;
use crate::{archives, wire};

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ApiStore>,
    pub limits: Limits,
    pub archive_dir: Option<std::path::PathBuf>,
    pub versions: Vec<u8>,
}

type Q = Query<Vec<(String, String)>>;

fn params(q: Q) -> Params {
    Params::from_pairs(q.0)
}

/// Percent-encode a query component (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A list response. When the page is full, a `Link: <...>; rel="next"` header
/// and `X-Next-Mark` carry the mark of the next page (the body stays a bare list).
fn page<T: serde::Serialize>(
    items: Vec<T>,
    limit: u32,
    next_mark: Option<String>,
    uri: &axum::http::Uri,
    pairs: &[(String, String)],
) -> Response {
    let full = limit > 0 && items.len() as u32 >= limit;
    let mut resp = Json(items).into_response();
    if let (true, Some(mark)) = (full, next_mark) {
        let mut query: Vec<String> = pairs
            .iter()
            .filter(|(k, v)| k != "mark" && !v.trim().is_empty())
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query.push(format!("mark={}", encode(&mark)));
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"));
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
        if let Ok(v) = HeaderValue::from_str(&mark) {
            resp.headers_mut().insert("x-next-mark", v);
        }
    }
    resp
}

#[utoipa::path(get, path = "/v1/streams", tag = "streams",
    params(
        ("older_than" = Option<String>, Query, description = "first_event < datetime"),
        ("younger_than" = Option<String>, Query, description = "last_event > datetime"),
        ("state" = Option<String>, Query, description = "active, firing, expiring, error, expire_error, completed, retry_fire, retry_expire"),
        ("trigger_name" = Option<String>, Query, description = "trigger (stream) name"),
        ("distinguishing_traits" = Option<String>, Query, description = "name:value;name:value (values typed: text, int, float, datetime; a datetime also matches a containing time range)"),
        ("mark" = Option<String>, Query, description = "paging mark: hex id (older), +hex (newer, ascending), + (oldest first)"),
        ("limit" = Option<u32>, Query, description = "page size (default 200, capped at max_limit)"),
    ),
    responses((status = 200, description = "streams, newest first; Link rel=next when the page is full", body = [crate::openapi::Stream]),
              (status = 400, description = "bad parameter", body = crate::openapi::ErrorBody)))]
pub async fn list_streams(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    q: Q,
) -> Result<Response, ApiError> {
    let pairs = q.0.clone();
    let query = params::stream_query(&params(q), st.limits)?;
    let rows = st.store.find_streams(&query).await?;
    let next = rows.last().map(|r| query.mark.for_row(r.id));
    let items = rows
        .iter()
        .map(|row| wire::StreamJson {
            row,
            mark: &query.mark,
            events: None,
        })
        .collect::<Vec<_>>();
    Ok(page(items, query.limit, next, &uri, &pairs))
}

#[utoipa::path(get, path = "/v1/streams/count", tag = "streams",
    params(("older_than" = Option<String>, Query), ("younger_than" = Option<String>, Query), ("state" = Option<String>, Query),
           ("trigger_name" = Option<String>, Query), ("distinguishing_traits" = Option<String>, Query), ("mark" = Option<String>, Query)),
    responses((status = 200, description = "[{\"count\": n}]", body = [crate::openapi::Count])))]
pub async fn count_streams(State(st): State<AppState>, q: Q) -> Result<Json<Value>, ApiError> {
    let query = params::stream_query(&params(q), st.limits)?;
    Ok(Json(wire::count(st.store.count_streams(&query).await?)))
}

#[utoipa::path(get, path = "/v1/streams/{stream_id}", tag = "streams",
    params(("stream_id" = i64, Path), ("details" = Option<String>, Query, description = "include the stream's events; false/0/no/off mean false")),
    responses((status = 200, description = "a list with the one stream", body = [crate::openapi::Stream]),
              (status = 404, description = "no such stream", body = crate::openapi::ErrorBody)))]
pub async fn get_stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    if id.eq_ignore_ascii_case("count") {
        let query = params::stream_query(&params(q), st.limits)?;
        return Ok(Json(wire::count(st.store.count_streams(&query).await?)));
    }
    let sid = params::parse_stream_id(&id)?;
    let p = params(q);
    let details = params::parse_details(p.get("details"));
    let Some(row) = st.store.get_stream(sid).await? else {
        return Err(ApiError::NotFound(format!("no stream with id {sid}")));
    };
    let events = if details {
        Some(st.store.stream_events(sid).await?)
    } else {
        None
    };
    Ok(Json(json!([wire::stream(
        &row,
        &Mark::default(),
        events.as_deref()
    )])))
}

#[utoipa::path(delete, path = "/v1/streams/{stream_id}", tag = "streams",
    params(("stream_id" = i64, Path)),
    responses((status = 200, description = "purged (stream, distinguishing traits and event links; events are kept)"),
              (status = 404, description = "no such stream", body = crate::openapi::ErrorBody)))]
pub async fn delete_stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sid = params::parse_stream_id(&id)?;
    if !st.store.delete_stream(sid).await? {
        return Err(ApiError::NotFound(format!("no stream with id {sid}")));
    }
    tracing::info!(stream_id = sid, "stream deleted");
    Ok(Json(json!({"id": sid, "deleted": true})))
}

#[utoipa::path(put, path = "/v1/streams/{stream_id}", tag = "streams",
    params(("stream_id" = i64, Path)),
    responses((status = 200, description = "reset (error→retry_fire, expire_error→retry_expire) or unchanged (reset=false)"),
              (status = 404, description = "no such stream", body = crate::openapi::ErrorBody),
              (status = 409, description = "the stream changed concurrently", body = crate::openapi::ErrorBody)))]
pub async fn reset_stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sid = params::parse_stream_id(&id)?;
    match st.store.reset_stream(sid).await? {
        ResetOutcome::NotFound => Err(ApiError::NotFound(format!("no stream with id {sid}"))),
        ResetOutcome::Conflict => Err(ApiError::Conflict(format!(
            "stream {sid} changed while it was being reset; retry"
        ))),
        ResetOutcome::Unchanged { state } => Ok(Json(json!({
            "id": sid, "reset": false, "state": wire::state_name(state),
            "message": "only error and expire_error streams can be reset"
        }))),
        ResetOutcome::Reset { from, to } => {
            tracing::info!(stream_id = sid, from = %wire::state_name(from), to = %wire::state_name(to), "stream reset");
            Ok(Json(
                json!({"id": sid, "reset": true, "previous_state": wire::state_name(from), "state": wire::state_name(to)}),
            ))
        }
    }
}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(
        ("from_datetime" = Option<String>, Query, description = "generated > datetime"),
        ("to_datetime" = Option<String>, Query, description = "generated <= datetime"),
        ("event_name" = Option<String>, Query, description = "event type"),
        ("traits" = Option<String>, Query, description = "name:value;name:value (typed match)"),
        ("mark" = Option<String>, Query), ("limit" = Option<u32>, Query),
    ),
    responses((status = 200, description = "events, newest (highest id) first", body = [crate::openapi::Event]),
              (status = 400, description = "bad parameter", body = crate::openapi::ErrorBody)))]
pub async fn list_events(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    q: Q,
) -> Result<Response, ApiError> {
    let pairs = q.0.clone();
    let query = params::event_query(&params(q), st.limits)?;
    let rows = st.store.find_events(&query).await?;
    let next = rows.last().map(|r| query.mark.for_row(r.id));
    let items = rows
        .iter()
        .map(|row| wire::EventJson {
            row,
            mark: Some(&query.mark),
        })
        .collect::<Vec<_>>();
    Ok(page(items, query.limit, next, &uri, &pairs))
}

#[utoipa::path(get, path = "/v1/events/count", tag = "events",
    params(("from_datetime" = Option<String>, Query), ("to_datetime" = Option<String>, Query), ("event_name" = Option<String>, Query),
           ("traits" = Option<String>, Query), ("mark" = Option<String>, Query)),
    responses((status = 200, description = "[{\"count\": n}]", body = [crate::openapi::Count])))]
pub async fn count_events(State(st): State<AppState>, q: Q) -> Result<Json<Value>, ApiError> {
    let query = params::event_query(&params(q), st.limits)?;
    Ok(Json(wire::count(st.store.count_events(&query).await?)))
}

#[utoipa::path(get, path = "/v1/events/{message_id}", tag = "events",
    params(("message_id" = String, Path)),
    responses((status = 200, description = "the event (an object, not a list)", body = crate::openapi::Event),
              (status = 404, description = "no such event", body = crate::openapi::ErrorBody)))]
pub async fn get_event(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Json<Value>, ApiError> {
    if id.eq_ignore_ascii_case("count") {
        let query = params::event_query(&params(q), st.limits)?;
        return Ok(Json(wire::count(st.store.count_events(&query).await?)));
    }
    let mut row = st.store.get_event(&id).await?;
    if row.is_none() && id.to_lowercase() != id {
        // The original looked ids up lower-cased; keep finding those too.
        row = st.store.get_event(&id.to_lowercase()).await?;
    }
    match row {
        Some(r) => Ok(Json(wire::event(&r, None))),
        None => Err(ApiError::NotFound(format!(
            "no event with message_id {id:?}"
        ))),
    }
}

fn archive_dir(st: &AppState) -> Result<&std::path::Path, ApiError> {
    st.archive_dir.as_deref().ok_or_else(|| {
        ApiError::NotFound("no archive directory is configured (archive_dir)".into())
    })
}

#[utoipa::path(get, path = "/v2/archives", tag = "archives",
    params(("start_ts" = Option<String>, Query, description = "only archives modified at or after"),
           ("end_ts" = Option<String>, Query, description = "only archives modified before")),
    responses((status = 200, description = "archive files", body = [crate::openapi::Archive])))]
pub async fn list_archives(State(st): State<AppState>, q: Q) -> Result<Json<Value>, ApiError> {
    let dir = archive_dir(&st)?.to_path_buf();
    let p = params(q);
    let bound = |name: &str| -> Result<Option<stv3_event::Timestamp>, ApiError> {
        p.get(name)
            .map(|raw| {
                params::parse_datetime(raw).ok_or_else(|| {
                    ApiError::bad(name, format!("cannot parse {raw:?} as a datetime"))
                })
            })
            .transpose()
    };
    let (start, end) = (bound("start_ts")?, bound("end_ts")?);
    let entries = tokio::task::spawn_blocking(move || archives::list(&dir))
        .await
        .map_err(|e| ApiError::NotFound(format!("archive listing failed: {e}")))?
        .map_err(|e| ApiError::NotFound(format!("archive directory unreadable: {e}")))?;
    let items: Vec<Value> = entries
        .iter()
        .filter(|e| start.is_none_or(|s| e.mtime >= s) && end.is_none_or(|t| e.mtime < t))
        .map(|e| e.to_json())
        .collect();
    Ok(Json(Value::Array(items)))
}

#[utoipa::path(get, path = "/v2/archives/{archive_id}", tag = "archives",
    params(("archive_id" = String, Path, description = "path relative to the archive directory")),
    responses((status = 200, description = "the .json.gz file (application/gzip)"),
              (status = 400, description = "path traversal or not an archive", body = crate::openapi::ErrorBody),
              (status = 404, description = "no such archive", body = crate::openapi::ErrorBody)))]
pub async fn get_archive(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let path = archives::resolve(archive_dir(&st)?, &id)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound(format!("no archive {id:?}")))?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace('"', "")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn root(State(st): State<AppState>) -> Json<Value> {
    let versions: Vec<Value> = st
        .versions
        .iter()
        .map(|v| json!({"id": format!("v{v}"), "href": format!("/v{v}")}))
        .collect();
    Json(json!({"versions": versions}))
}

fn version_index(v: u8) -> Json<Value> {
    let mut resources = vec!["streams", "streams/count", "events", "events/count"];
    if v >= 2 {
        resources.push("archives");
    }
    Json(
        json!({"version": format!("v{v}"), "resources": resources.iter().map(|r| format!("/v{v}/{r}")).collect::<Vec<_>>()}),
    )
}

fn version_routes(v: u8) -> Router<AppState> {
    let p = format!("/v{v}");
    let mut r = Router::new()
        .route(&p, get(move || async move { version_index(v) }))
        .route(&format!("{p}/streams"), get(list_streams))
        .route(&format!("{p}/streams/count"), get(count_streams))
        .route(
            &format!("{p}/streams/{{stream_id}}"),
            get(get_stream).delete(delete_stream).put(reset_stream),
        )
        .route(&format!("{p}/events"), get(list_events))
        .route(&format!("{p}/events/count"), get(count_events))
        .route(&format!("{p}/events/{{message_id}}"), get(get_event));
    if v >= 2 {
        r = r
            .route(&format!("{p}/archives"), get(list_archives))
            .route(&format!("{p}/archives/{{*archive_id}}"), get(get_archive));
    }
    r
}

/// The API routes (no middleware) for the enabled versions.
pub fn router(state: AppState) -> Router {
    let mut r = Router::new().route("/", get(root));
    for v in state.versions.clone() {
        r = r.merge(version_routes(v));
    }
    r.fallback(|| async { error_body(StatusCode::NOT_FOUND, "not_found", "no such resource") })
        .method_not_allowed_fallback(|| async {
            error_body(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this resource",
            )
        })
        .with_state(state)
}
