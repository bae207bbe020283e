//! Broker connection settings: parsed from an `amqp://` URL or built from the yagi.conf
//! `[rabbit_broker]` keys (host, port, user, password, vhost, ssl), and rendered back to
//! the URI lapin wants (user, password and vhost percent-encoded). Pure.

use crate::{AmqpError, Result};

/// Where the broker is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The virtual host, unescaped (`/` is the default vhost).
    pub vhost: String,
    /// amqps (TLS) instead of amqp.
    pub tls: bool,
    /// Heartbeat in seconds (0 = broker default).
    pub heartbeat: u16,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            host: "localhost".into(),
            port: 5672,
            user: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            tls: false,
            heartbeat: 30,
        }
    }
}

impl AmqpSettings {
    /// Parse `amqp[s]://[user[:password]@]host[:port][/vhost][?heartbeat=N]`.
    /// A missing path means vhost `/`; `/%2f` is `/` too; `/` alone is the empty vhost
    /// (as in lapin and the RabbitMQ URI spec).
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |reason: &str| AmqpError::BadUrl {
            url: redact_url(url),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("missing scheme (amqp:// or amqps://)"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "amqp" => false,
            "amqps" => true,
            _ => return Err(bad("scheme must be amqp or amqps")),
        };
        let mut s = AmqpSettings {
            tls,
            port: if tls { 5671 } else { 5672 },
            ..Default::default()
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let hostport = match authority.rsplit_once('@') {
            Some((userinfo, hp)) => {
                let (u, p) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                s.user = percent_decode(u).map_err(|e| bad(&format!("user: {e}")))?;
                if let Some(p) = p {
                    s.password = percent_decode(p).map_err(|e| bad(&format!("password: {e}")))?;
                }
                hp
            }
            None => authority,
        };
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            // [ipv6]:port
            let (h, after) = stripped
                .split_once(']')
                .ok_or_else(|| bad("unterminated [ipv6] host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !host.is_empty() {
            s.host = host.to_string();
        }
        if let Some(p) = port {
            s.port = p
                .parse()
                .map_err(|_| bad(&format!("port {p:?} is not a number 0-65535")))?;
        }
        if let Some(path) = path {
            s.vhost = percent_decode(path).map_err(|e| bad(&format!("vhost: {e}")))?;
        }
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k == "heartbeat" {
                    s.heartbeat = v
                        .parse()
                        .map_err(|_| bad(&format!("heartbeat {v:?} is not a number")))?;
                }
                // other lapin query keys (frame_max, channel_max...) are ignored here
            }
        }
        Ok(s)
    }

    /// Build from yagi-style parts.
    pub fn from_parts(
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        vhost: &str,
        tls: bool,
    ) -> Self {
        AmqpSettings {
            host: host.to_string(),
            port,
            user: user.to_string(),
            password: password.to_string(),
            vhost: vhost.to_string(),
            tls,
            ..Default::default()
        }
    }

    /// The URI handed to lapin.
    pub fn uri(&self) -> String {
        self.render(&percent_encode(&self.password))
    }

    /// The URI with the password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        self.render("***")
    }

    fn render(&self, password: &str) -> String {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut uri = format!(
            "{scheme}://{}:{password}@{host}:{}/{}",
            percent_encode(&self.user),
            self.port,
            percent_encode(&self.vhost)
        );
        if self.heartbeat > 0 {
            uri.push_str(&format!("?heartbeat={}", self.heartbeat));
        }
        uri
    }
}

fn redact_url(url: &str) -> String {
    // amqp://user:secret@host -> amqp://user:***@host
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, tail)) = rest.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{tail}");
        }
    }
    url.to_string()
}

fn percent_encode(s: &str) -> String {
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

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("truncated escape at byte {i}"))?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape %{hex}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escape decodes to invalid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: std::result::Result<(&str, u16, &str, &str, &str, bool), &str>) {
        match (AmqpSettings::from_url(url), expected) {
            (Ok(s), Ok((host, port, user, password, vhost, tls))) => {
                assert_eq!(
                    (
                        s.host.as_str(),
                        s.port,
                        s.user.as_str(),
                        s.password.as_str(),
                        s.vhost.as_str(),
                        s.tls
                    ),
                    (host, port, user, password, vhost, tls),
                    "{url}"
                );
                // round trip through uri()
                let again = AmqpSettings::from_url(&s.uri()).unwrap();
                assert_eq!(again, s, "{url} round trip via {}", s.uri());
            }
            (Err(e), Err(want)) => {
                assert!(e.to_string().contains(want), "{url}: {e} lacks {want:?}")
            }
            (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_urls() {
        check(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            Ok(("127.0.0.1", 5672, "guest", "guest", "/", false)),
        );
        check(
            "amqp://127.0.0.1",
            Ok(("127.0.0.1", 5672, "guest", "guest", "/", false)),
        );
        check("amqp://u@h:1234/", Ok(("h", 1234, "u", "guest", "", false)));
        check(
            "amqps://a:p%40ss@broker/cell1",
            Ok(("broker", 5671, "a", "p@ss", "cell1", true)),
        );
        check(
            "amqp://x:y@[::1]:5673/v%2Fh",
            Ok(("::1", 5673, "x", "y", "v/h", false)),
        );
        check("amqp://h:99999", Err("port \"99999\""));
        check("http://h", Err("scheme must be amqp"));
        check("h:5672", Err("missing scheme"));
        check("amqp://u:p@h/%zz", Err("vhost: bad escape"));
    }

    #[test]
    fn redacts_password() {
        let s = AmqpSettings::from_parts("h", 5672, "u", "secret", "/", false);
        assert!(!s.redacted().contains("secret"));
        assert!(s.uri().contains("secret"));
        let e = AmqpSettings::from_url("amqp://u:secret@h:bad")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn heartbeat_query() {
        let s = AmqpSettings::from_url("amqp://h/?heartbeat=7").unwrap();
        assert_eq!(s.heartbeat, 7);
        assert!(s.uri().ends_with("?heartbeat=7"));
    }
}
