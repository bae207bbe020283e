//! [`Ssh2Transport`]: one ssh2 (libssh2) session per host.
//!
//! * Blocking: callers give each host its own thread.
//! * Every blocking call has a timeout (`Session::set_timeout`).
//! * Host keys are checked against a known_hosts file: a mismatch is always a
//!   hard error; an unknown host is an error unless `accept_new` is set
//!   (`--accept-new-host-keys`), in which case the key is added to the file.
//! * Keys come from the given identity file, else from the ssh agent.
//! * Commands are argv, quoted by [`super::command_line`]; with `sudo` they
//!   run as `sudo -n -- <argv>`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use ssh2::{CheckResult, HashType, KnownHostFileKind, Session};

use super::{
    command_line, http_request, parse_http_response, ExecOutput, Transport, TransportError,
};

/// How to reach one host.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Inventory name, for messages.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub sudo: bool,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    /// Timeout of any single blocking operation once connected.
    pub op_timeout: Duration,
}

pub struct Ssh2Transport {
    cfg: SshConfig,
    sess: Session,
}

fn fingerprint(sess: &Session) -> String {
    sess.host_key_hash(HashType::Sha256)
        .map(|h| format!("SHA256:{}", base64_nopad(h)))
        .unwrap_or_else(|| "unknown".into())
}

fn base64_nopad(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

impl Ssh2Transport {
    /// Connect, verify the host key and authenticate.
    pub fn connect(cfg: SshConfig) -> Result<Self, TransportError> {
        let host = cfg.name.clone();
        let conn_err = |m: String| TransportError::Connect {
            host: host.clone(),
            message: m,
        };
        let addr = (cfg.address.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| conn_err(format!("resolve {}:{}: {e}", cfg.address, cfg.port)))?
            .next()
            .ok_or_else(|| conn_err(format!("{} has no address", cfg.address)))?;
        let tcp = TcpStream::connect_timeout(&addr, cfg.connect_timeout)
            .map_err(|e| conn_err(format!("{}:{}: {e}", cfg.address, cfg.port)))?;
        let mut sess = Session::new().map_err(|e| conn_err(e.to_string()))?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(cfg.connect_timeout.as_millis() as u32);
        sess.handshake()
            .map_err(|e| conn_err(format!("ssh handshake: {e}")))?;
        check_host_key(&sess, &cfg)?;
        let auth_err = |m: String| TransportError::Auth {
            host: host.clone(),
            user: cfg.user.clone(),
            message: m,
        };
        match &cfg.identity_file {
            Some(key) => sess
                .userauth_pubkey_file(&cfg.user, None, key, None)
                .map_err(|e| auth_err(format!("key {}: {e}", key.display())))?,
            None => sess
                .userauth_agent(&cfg.user)
                .map_err(|e| auth_err(format!("ssh agent: {e}")))?,
        }
        if !sess.authenticated() {
            return Err(auth_err("not authenticated".into()));
        }
        sess.set_timeout(cfg.op_timeout.as_millis() as u32);
        Ok(Ssh2Transport { cfg, sess })
    }

    fn io(&self, op: &str, e: impl std::fmt::Display) -> TransportError {
        TransportError::Io {
            host: self.cfg.name.clone(),
            op: op.to_string(),
            message: e.to_string(),
        }
    }
}

fn check_host_key(sess: &Session, cfg: &SshConfig) -> Result<(), TransportError> {
    let err = |m: String| TransportError::HostKey {
        host: cfg.name.clone(),
        message: m,
    };
    let (key, key_type) = sess
        .host_key()
        .ok_or_else(|| err("the server sent no host key".into()))?;
    let mut kh = sess.known_hosts().map_err(|e| err(e.to_string()))?;
    if cfg.known_hosts.exists() {
        kh.read_file(&cfg.known_hosts, KnownHostFileKind::OpenSSH)
            .map_err(|e| err(format!("{}: {e}", cfg.known_hosts.display())))?;
    }
    let fp = fingerprint(sess);
    match kh.check_port(&cfg.address, cfg.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(err(format!(
            "the key of {}:{} ({fp}) does NOT match {}; possible man-in-the-middle. Remove the old entry only if you know the host was reinstalled",
            cfg.address,
            cfg.port,
            cfg.known_hosts.display()
        ))),
        CheckResult::NotFound if cfg.accept_new_host_keys => {
            let entry = if cfg.port == 22 { cfg.address.clone() } else { format!("[{}]:{}", cfg.address, cfg.port) };
            kh.add(&entry, key, &format!("added by stv3ctl for {}", cfg.name), key_type.into())
                .map_err(|e| err(e.to_string()))?;
            if let Some(dir) = cfg.known_hosts.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            kh.write_file(&cfg.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| err(format!("write {}: {e}", cfg.known_hosts.display())))
        }
        CheckResult::NotFound => Err(err(format!(
            "{}:{} ({fp}) is not in {}; verify the fingerprint and rerun with --accept-new-host-keys",
            cfg.address,
            cfg.port,
            cfg.known_hosts.display()
        ))),
        CheckResult::Failure => Err(err("libssh2 could not check the key".into())),
    }
}

impl Transport for Ssh2Transport {
    fn host(&self) -> &str {
        &self.cfg.name
    }

    fn exec_input(&mut self, argv: &[&str], stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        let mut line = command_line(argv);
        if self.cfg.sudo {
            line = format!("sudo -n -- {line}");
        }
        let op = argv.first().copied().unwrap_or("exec");
        let mut ch = self.sess.channel_session().map_err(|e| self.io(op, e))?;
        ch.exec(&line).map_err(|e| self.io(op, e))?;
        // A command that fails early stops reading its stdin: then what it
        // printed and its exit status say why, not the write error.
        let written = if stdin.is_empty() {
            Ok(())
        } else {
            ch.write_all(stdin)
        };
        let _ = ch.send_eof();
        let mut stdout = Vec::new();
        ch.read_to_end(&mut stdout)
            .map_err(|e| self.io(&format!("{op}: read stdout"), e))?;
        let mut stderr = Vec::new();
        ch.stderr()
            .read_to_end(&mut stderr)
            .map_err(|e| self.io(&format!("{op}: read stderr"), e))?;
        ch.wait_close().map_err(|e| self.io(op, e))?;
        let code = ch.exit_status().map_err(|e| self.io(op, e))?;
        if let Err(e) = written {
            if code == 0 {
                return Err(self.io(&format!("{op}: write stdin"), e));
            }
        }
        Ok(ExecOutput {
            code,
            stdout,
            stderr,
        })
    }

    fn http_get(
        &mut self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, String), TransportError> {
        let (h, p) = addr
            .rsplit_once(':')
            .ok_or_else(|| self.io("http", format!("bad address {addr}")))?;
        let port: u16 = p
            .parse()
            .map_err(|_| self.io("http", format!("bad port in {addr}")))?;
        let h = h.trim_start_matches('[').trim_end_matches(']');
        self.sess.set_timeout(timeout.as_millis() as u32);
        let result = (|| {
            let mut ch = self
                .sess
                .channel_direct_tcpip(h, port, None)
                .map_err(|e| self.io(&format!("connect {addr}"), e))?;
            ch.write_all(http_request(addr, path).as_bytes())
                .map_err(|e| self.io("http write", e))?;
            let mut buf = Vec::new();
            ch.read_to_end(&mut buf)
                .map_err(|e| self.io("http read", e))?;
            let _ = ch.close();
            parse_http_response(&buf)
                .ok_or_else(|| self.io(&format!("GET {addr}{path}"), "not an HTTP response"))
        })();
        self.sess
            .set_timeout(self.cfg.op_timeout.as_millis() as u32);
        result
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_openssh_style() {
        assert_eq!(super::base64_nopad(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::base64_nopad(b"fo"), "Zm8");
        assert_eq!(super::base64_nopad(b"f"), "Zg");
    }
}
