//! HTTP client for the stv3 REST API: GET with query parameters, mark paging
//! (`X-Next-Mark`/`Link` headers, or the last item's `_mark` against an
//! original quincy server), PUT/DELETE, archive download, and errors that
//! carry the server's JSON message and map to exit codes.

use std::io::Write;

use reqwest::Method;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum KlugError {
    #[error("{url}: HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("cannot reach {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("{url}: unexpected response: {message}")]
    Decode { url: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

impl KlugError {
    /// 1 server/connection failure, 2 usage, 3 request rejected (4xx), 4 not found.
    pub fn exit_code(&self) -> i32 {
        match self {
            KlugError::Http { status: 404, .. } => 4,
            KlugError::Http { status, .. } if (400..500).contains(status) => 3,
            KlugError::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub struct Client {
    /// `<url>/v<N>`
    pub base: String,
    http: reqwest::Client,
    token: Option<String>,
    debug: bool,
}

/// One page of a list.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Value>,
    pub next_mark: Option<String>,
}

impl Client {
    pub fn new(url: &str, api_version: u8, token: Option<String>, debug: bool) -> Client {
        Client {
            base: format!("{}/v{api_version}", url.trim_end_matches('/')),
            http: reqwest::Client::new(),
            token,
            debug,
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<reqwest::Response, KlugError> {
        let url = format!("{}/{path}", self.base);
        if self.debug {
            eprintln!("{method} {url}");
            for (k, v) in params {
                eprintln!("   : {k}='{v}'");
            }
        }
        let mut req = self.http.request(method, &url).query(params);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|source| KlugError::Connect {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                let t = text.trim();
                if t.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    t.chars().take(300).collect()
                }
            });
        Err(KlugError::Http {
            url,
            status: status.as_u16(),
            message,
        })
    }

    async fn json(&self, resp: reqwest::Response) -> Result<Value, KlugError> {
        let url = resp.url().to_string();
        let text = resp.text().await.map_err(|source| KlugError::Connect {
            url: url.clone(),
            source,
        })?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| KlugError::Decode {
            url,
            message: e.to_string(),
        })
    }

    pub async fn get(&self, path: &str, params: &[(String, String)]) -> Result<Value, KlugError> {
        let resp = self.request(Method::GET, path, params).await?;
        self.json(resp).await
    }

    pub async fn send(&self, method: Method, path: &str) -> Result<Value, KlugError> {
        let resp = self.request(method, path, &[]).await?;
        self.json(resp).await
    }

    /// One page; `next_mark` comes from `X-Next-Mark`, or, when the server does
    /// not send it, from the last item when the page is full.
    pub async fn page(
        &self,
        path: &str,
        params: &[(String, String)],
        limit: Option<u32>,
    ) -> Result<Page, KlugError> {
        let resp = self.request(Method::GET, path, params).await?;
        let header = resp
            .headers()
            .get("x-next-mark")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let url = resp.url().to_string();
        let body = self.json(resp).await?;
        let items = match body {
            Value::Array(a) => a,
            other => {
                return Err(KlugError::Decode {
                    url,
                    message: format!("expected a list, got {other}"),
                })
            }
        };
        let full = limit.is_some_and(|l| l > 0 && items.len() as u32 >= l);
        let next_mark = header.or_else(|| {
            if full {
                items
                    .last()
                    .and_then(|i| i.get("_mark"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            } else {
                None
            }
        });
        Ok(Page { items, next_mark })
    }

    /// Every page, following marks until a short page.
    pub async fn all(
        &self,
        path: &str,
        params: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<Value>, KlugError> {
        let mut base: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "limit")
            .cloned()
            .collect();
        base.push(("limit".into(), limit.to_string()));
        let mut out = Vec::new();
        let mut mark: Option<String> = params
            .iter()
            .find(|(k, _)| k == "mark")
            .map(|(_, v)| v.clone());
        loop {
            let mut p: Vec<(String, String)> =
                base.iter().filter(|(k, _)| k != "mark").cloned().collect();
            if let Some(m) = &mark {
                p.push(("mark".into(), m.clone()));
            }
            let page = self.page(path, &p, Some(limit)).await?;
            let n = page.items.len();
            out.extend(page.items);
            match page.next_mark {
                Some(m) if n > 0 && Some(&m) != mark.as_ref() => mark = Some(m),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Stream a file (an archive) into `out`; returns the byte count.
    pub async fn download(&self, path: &str, out: &mut dyn Write) -> Result<u64, KlugError> {
        let mut resp = self.request(Method::GET, path, &[]).await?;
        let url = resp.url().to_string();
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|source| KlugError::Connect {
            url: url.clone(),
            source,
        })? {
            out.write_all(&chunk)?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }
}
