//! `/openapi.json`, generated from the handler annotations with utoipa. The
//! `/v1` operations are mirrored under `/v2` (v2 = v1 + archives). Schema-only
//! types below describe the wire JSON for the document; the handlers build
//! `serde_json::Value`s directly.

#![allow(dead_code)]

use utoipa::{OpenApi, ToSchema};

/// `{"__type__": "datetime", "datetime": "2015-02-27T15:27:18.603932"}` (naive UTC).
#[derive(ToSchema)]
pub struct Datetime {
    #[schema(rename = "__type__", example = "datetime")]
    r#type: String,
    #[schema(example = "2015-02-27T15:27:18.603932")]
    datetime: String,
}

/// A stream. `distinguishing_traits` values are strings, numbers, datetimes or
/// `{"__type__":"timex.TimeRange","begin":iso,"end":iso}`.
#[derive(ToSchema)]
pub struct Stream {
    id: i64,
    #[schema(rename = "_mark", example = "1a2f")]
    mark: String,
    name: String,
    #[schema(example = "active")]
    state: String,
    first_event: Datetime,
    last_event: Datetime,
    fire_timestamp: Option<Datetime>,
    expire_timestamp: Option<Datetime>,
    distinguishing_traits: serde_json::Value,
    /// Only with `details`.
    events: Option<Vec<Event>>,
}

/// An event: its traits flattened, plus `message_id`, `event_type`, `timestamp`
/// (and `_mark` in lists).
#[derive(ToSchema)]
pub struct Event {
    message_id: String,
    event_type: String,
    timestamp: Datetime,
    #[schema(rename = "_mark")]
    mark: Option<String>,
}

#[derive(ToSchema)]
pub struct Count {
    count: u64,
}

#[derive(ToSchema)]
pub struct Archive {
    /// Path relative to the archive directory.
    id: String,
    filename: String,
    size: u64,
    mtime: Datetime,
}

#[derive(ToSchema)]
pub struct ErrorBody {
    #[schema(example = "bad_request")]
    error: String,
    message: String,
    /// The offending parameter (400 only).
    parameter: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stv3-api",
        description = "StackTach.v3 REST API (quincy/quince compatible)"
    ),
    paths(
        crate::routes::list_streams,
        crate::routes::count_streams,
        crate::routes::get_stream,
        crate::routes::delete_stream,
        crate::routes::reset_stream,
        crate::routes::list_events,
        crate::routes::count_events,
        crate::routes::get_event,
        crate::routes::list_archives,
        crate::routes::get_archive,
    ),
    components(schemas(Datetime, Stream, Event, Count, Archive, ErrorBody))
)]
struct ApiDoc;

/// The OpenAPI document with the v1 operations mirrored under v2, restricted
/// to the enabled versions.
pub fn document(versions: &[u8]) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let v1: Vec<(String, utoipa::openapi::PathItem)> = doc
        .paths
        .paths
        .iter()
        .filter(|(k, _)| k.starts_with("/v1/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if versions.contains(&2) {
        for (k, v) in &v1 {
            doc.paths
                .paths
                .insert(format!("/v2/{}", &k[4..]), v.clone());
        }
    } else {
        doc.paths.paths.retain(|k, _| !k.starts_with("/v2/"));
    }
    if !versions.contains(&1) {
        doc.paths.paths.retain(|k, _| !k.starts_with("/v1/"));
    }
    doc
}
