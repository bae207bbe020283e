//! Transports: how `stv3ctl` runs commands and moves files on a host.
//!
//! The [`Transport`] trait is small on purpose: run an argv (quoted here,
//! never pasted into a shell string), upload bytes atomically with a mode and
//! owner, read a file, hash a file, and make an HTTP GET *from the host*
//! (for `/health` on a loopback ops address). Implementations:
//!
//! * [`ssh::Ssh2Transport`]: one ssh2 session per host, blocking (callers run
//!   it on its own thread), timeouts, strict known_hosts.
//! * [`local::LocalTransport`]: the machine `stv3ctl` runs on (`localhost`
//!   hosts, tests). It uses `std::fs` for files and spawns argv directly.

pub mod local;
pub mod ssh;

use std::time::Duration;

/// The result of a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{host}: cannot connect: {message}")]
    Connect { host: String, message: String },
    #[error("{host}: host key check failed: {message}")]
    HostKey { host: String, message: String },
    #[error("{host}: authentication failed for user {user}: {message}")]
    Auth {
        host: String,
        user: String,
        message: String,
    },
    #[error("{host}: {op}: {message}")]
    Io {
        host: String,
        op: String,
        message: String,
    },
    #[error("{host}: `{command}` exited with {code}: {stderr}")]
    Command {
        host: String,
        command: String,
        code: i32,
        stderr: String,
    },
}

/// Quote one argument for a POSIX shell: bare when it is made of safe
/// characters, else single-quoted with embedded quotes escaped.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// An argv as one shell command line (every word quoted).
pub fn command_line(argv: &[&str]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// Writes stdin to `$1` atomically: temp file, mode `$2`, owner `$3`, rename.
const UPLOAD_SCRIPT: &str = r#"set -e
umask 077
dir=$(dirname "$1")
mkdir -p "$dir"
tmp="$1.stv3tmp.$$"
cat > "$tmp"
chmod "$2" "$tmp"
if [ -n "$3" ]; then chown "$3" "$tmp"; fi
mv -f "$tmp" "$1""#;

const READ_SCRIPT: &str = r#"if [ -f "$1" ]; then exec cat "$1"; else exit 66; fi"#;

/// How `stv3ctl` reaches a host.
pub trait Transport: Send {
    /// The host's inventory name (for messages).
    fn host(&self) -> &str;

    /// Run `argv` with `stdin`; a non-zero exit is not an error here.
    fn exec_input(&mut self, argv: &[&str], stdin: &[u8]) -> Result<ExecOutput, TransportError>;

    /// GET `http://<addr><path>` from the host itself; returns (status, body).
    fn http_get(
        &mut self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, String), TransportError>;

    /// Run `argv` without input.
    fn exec(&mut self, argv: &[&str]) -> Result<ExecOutput, TransportError> {
        self.exec_input(argv, b"")
    }

    /// Run `argv`; a non-zero exit is an error naming the command and stderr.
    fn run(&mut self, argv: &[&str]) -> Result<ExecOutput, TransportError> {
        let out = self.exec(argv)?;
        if out.ok() {
            Ok(out)
        } else {
            Err(TransportError::Command {
                host: self.host().to_string(),
                command: command_line(argv),
                code: out.code,
                stderr: tail(&out.stderr_str(), 20),
            })
        }
    }

    /// Write `data` to `path` atomically with `mode` (owner unchanged: the login user).
    fn upload(&mut self, data: &[u8], path: &str, mode: u32) -> Result<(), TransportError> {
        self.upload_owned(data, path, mode, None)
    }

    /// Write `data` to `path` atomically with `mode` and `owner:group`; the
    /// file never exists with other permissions.
    fn upload_owned(
        &mut self,
        data: &[u8],
        path: &str,
        mode: u32,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        let mode = format!("{mode:o}");
        let argv = [
            "sh",
            "-c",
            UPLOAD_SCRIPT,
            "stv3-upload",
            path,
            &mode,
            owner.unwrap_or(""),
        ];
        let out = self.exec_input(&argv, data)?;
        if out.ok() {
            Ok(())
        } else {
            Err(TransportError::Io {
                host: self.host().to_string(),
                op: format!("upload {path}"),
                message: tail(&out.stderr_str(), 10),
            })
        }
    }

    /// The contents of `path`, or `None` when it does not exist.
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let out = self.exec(&["sh", "-c", READ_SCRIPT, "stv3-read", path])?;
        match out.code {
            0 => Ok(Some(out.stdout)),
            66 => Ok(None),
            _ => Err(TransportError::Io {
                host: self.host().to_string(),
                op: format!("read {path}"),
                message: tail(&out.stderr_str(), 10),
            }),
        }
    }

    /// The sha256 (hex) of `path`, or `None` when it does not exist.
    fn sha256(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        let out = self.exec(&[
            "sh",
            "-c",
            r#"if [ -f "$1" ]; then sha256sum < "$1"; else exit 66; fi"#,
            "stv3-sha",
            path,
        ])?;
        match out.code {
            0 => Ok(out
                .stdout_str()
                .split_whitespace()
                .next()
                .map(str::to_string)),
            66 => Ok(None),
            _ => Err(TransportError::Io {
                host: self.host().to_string(),
                op: format!("sha256 {path}"),
                message: tail(&out.stderr_str(), 10),
            }),
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Parse the status line and body of a raw HTTP/1.x response.
pub fn parse_http_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let status_line = text.lines().next()?;
    let mut parts = status_line.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// The request `http_get` sends.
pub fn http_request(addr: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: stv3ctl\r\nConnection: close\r\n\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_table() {
        let cases = [
            ("plain", "plain"),
            ("/etc/stv3/yagi-cell1.conf", "/etc/stv3/yagi-cell1.conf"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", "'it'\\''s'"),
            ("$(rm -rf /)", "'$(rm -rf /)'"),
            ("x;y", "'x;y'"),
            ("`id`", "'`id`'"),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input}");
        }
        assert_eq!(command_line(&["echo", "a b", "c"]), "echo 'a b' c");
    }

    #[test]
    fn http_response_parsing() {
        assert_eq!(
            parse_http_response(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nok"),
            Some((200, "ok".into()))
        );
        assert_eq!(
            parse_http_response(b"HTTP/1.0 503 Service Unavailable\r\n\r\n"),
            Some((503, "".into()))
        );
        assert_eq!(parse_http_response(b"garbage"), None);
    }

    #[test]
    fn local_transport_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = local::LocalTransport::new("localhost");
        let p = dir.path().join("sub/x.conf");
        let ps = p.to_str().unwrap();
        assert_eq!(t.read_file(ps).unwrap(), None);
        assert_eq!(t.sha256(ps).unwrap(), None);
        t.upload(b"hello\n", ps, 0o640).unwrap();
        assert_eq!(t.read_file(ps).unwrap().unwrap(), b"hello\n");
        assert_eq!(
            t.sha256(ps).unwrap().unwrap(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let out = t.exec(&["echo", "a b", "$(id)"]).unwrap();
        assert_eq!(out.stdout_str(), "a b $(id)\n");
        let err = t.run(&["false"]).unwrap_err().to_string();
        assert!(err.contains("`false` exited with 1"), "{err}");
    }
}
