//! The read-only dashboard at `/ui`: static HTML, CSS and vanilla JS embedded
//! in the binary (no CDN, no build step), served at `/ui`, `/ui/index.html`,
//! `/ui/app.js` and `/ui/style.css`. The page itself calls the JSON API
//! (`/vN/streams…`, `/vN/events…`) with the user's bearer token, so the assets
//! carry no data and are served without a token; a strict
//! `Content-Security-Policy` (`'self'` only) keeps the page from loading
//! anything from elsewhere.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Path below `/ui` (`""` is the page itself).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const INDEX: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

/// Every asset the dashboard is made of.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: APP_JS,
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: STYLE,
    },
];

/// Only this origin: scripts, styles and API calls. `data:` for the empty favicon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The asset for a path below `/ui` (`""`, `"/app.js"`, ...).
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn respond(a: &'static Asset) -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        ),
        // Small files; always revalidate so an upgraded binary shows its own page.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (StatusCode::OK, headers, a.body).into_response()
}

/// `/ui` and its assets. Stateless; merge it into the app outside the token check.
pub fn router() -> Router {
    let mut r = Router::new();
    for a in ASSETS {
        r = r.route(
            &format!("/ui{}", a.path),
            get(move || async move { respond(a) }),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, want_type: Option<&str>) {
        assert_eq!(asset(path).map(|a| a.content_type), want_type, "{path:?}");
    }

    #[test]
    fn assets_by_path() {
        let cases = [
            ("", Some("text/html; charset=utf-8")),
            ("/index.html", Some("text/html; charset=utf-8")),
            ("/app.js", Some("text/javascript; charset=utf-8")),
            ("/style.css", Some("text/css; charset=utf-8")),
            ("/", None),
            ("/../Cargo.toml", None),
            ("/APP.JS", None),
        ];
        for (path, want) in cases {
            check(path, want);
        }
    }

    /// No CDN: nothing in the page refers to another origin.
    #[test]
    fn assets_load_nothing_from_elsewhere() {
        for a in ASSETS {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                // The SVG namespace URI is an identifier, not a request.
                let text = a.body.replace("http://www.w3.org/2000/svg", "");
                assert!(!text.contains(needle), "/ui{} contains {needle:?}", a.path);
            }
        }
    }

    /// The page references exactly the assets that are served.
    #[test]
    fn page_links_resolve_to_served_assets() {
        for link in ["/ui/style.css", "/ui/app.js"] {
            assert!(INDEX.contains(&format!("\"{link}\"")), "{link}");
            assert!(asset(link.trim_start_matches("/ui")).is_some(), "{link}");
        }
    }

    /// Every element the script looks up by id exists in the page.
    #[test]
    fn script_ids_exist_in_page() {
        let mut missing = Vec::new();
        for part in APP_JS.split("$(\"").skip(1) {
            let id = part.split('"').next().unwrap_or_default();
            if !INDEX.contains(&format!("id=\"{id}\"")) {
                missing.push(id.to_string());
            }
        }
        assert!(
            missing.is_empty(),
            "ids used by app.js but not in index.html: {missing:?}"
        );
    }
}
