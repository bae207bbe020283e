//! Assembling and serving the application: API routes + `/health`, `/metrics`
//! (stv3-telemetry) + `/openapi.json`, wrapped in request logging
//! (tower-http TraceLayer), request metrics, the optional bearer-token check
//! and trailing-slash tolerance; graceful shutdown on SIGTERM/Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::routes::{self, AppState};

/// Paths that never need a token (probes and scrapers).
const OPEN_PATHS: &[&str] = &["/health", "/metrics"];

fn token_matches(expected: &str, got: &str) -> bool {
    // Length-independent comparison time for equal-length inputs.
    expected.len() == got.len()
        && expected
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn auth(State(token): State<Arc<String>>, req: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let h = req.headers();
    let bearer = h
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let other = ["x-auth-token", "x-api-key"]
        .iter()
        .find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()));
    match bearer.or(other) {
        Some(got) if token_matches(&token, got.trim()) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("stv3_api_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("stv3_api_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Everything the server needs.
#[derive(Clone)]
pub struct AppOptions {
    pub state: AppState,
    pub auth_token: Option<String>,
}

/// The complete router (without the trailing-slash layer, see [`serve`]).
pub fn build(opts: AppOptions) -> Router {
    let versions = opts.state.versions.clone();
    let health = stv3_telemetry::Health::healthy();
    let doc = crate::openapi::document(&versions);
    let mut app = routes::router(opts.state)
        .route(
            "/openapi.json",
            get(move || std::future::ready(Json(doc.clone()))),
        )
        .merge(stv3_telemetry::ops_router("stv3-api", health))
        .layer(middleware::from_fn(record_metrics));
    if let Some(token) = opts.auth_token.filter(|t| !t.is_empty()) {
        app = app.layer(middleware::from_fn_with_state(Arc::new(token), auth));
    }
    // The /ui dashboard's static assets sit outside the token check; its API calls do not.
    app.merge(crate::ui::router())
        .layer(TraceLayer::new_for_http())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Serve on an already-bound listener until `shutdown` resolves.
/// A trailing `/` on a path is tolerated, as falcon did.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let svc = NormalizePathLayer::trim_trailing_slash().layer(app);
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(svc),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Bind `addr` and serve in a background task; returns the bound address.
/// Used by tests and the load tool.
pub async fn spawn(
    addr: SocketAddr,
    app: Router,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let h = tokio::spawn(async move {
        if let Err(e) = serve(listener, app, std::future::pending()).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok((bound, h))
}
