//! [`LocalTransport`]: the machine stv3ctl runs on. Commands are spawned
//! directly from their argv (no shell in between); files use `std::fs`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{http_request, parse_http_response, ExecOutput, Transport, TransportError};

pub struct LocalTransport {
    name: String,
}

impl LocalTransport {
    pub fn new(name: &str) -> Self {
        LocalTransport {
            name: name.to_string(),
        }
    }
    fn io(&self, op: &str, e: impl std::fmt::Display) -> TransportError {
        TransportError::Io {
            host: self.name.clone(),
            op: op.to_string(),
            message: e.to_string(),
        }
    }
}

impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.name
    }

    fn exec_input(&mut self, argv: &[&str], stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| self.io("exec", "empty argv"))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.io(&format!("exec {prog}"), e))?;
        let mut input = child.stdin.take();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            if let Some(i) = input.as_mut() {
                let _ = i.write_all(&data);
            }
        });
        let out = child
            .wait_with_output()
            .map_err(|e| self.io(&format!("exec {prog}"), e))?;
        let _ = writer.join();
        Ok(ExecOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn http_get(
        &mut self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, String), TransportError> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| self.io(&format!("resolve {addr}"), e))?
            .next()
            .ok_or_else(|| self.io(&format!("resolve {addr}"), "no address"))?;
        let mut s = TcpStream::connect_timeout(&sock, timeout)
            .map_err(|e| self.io(&format!("connect {addr}"), e))?;
        s.set_read_timeout(Some(timeout)).ok();
        s.write_all(http_request(addr, path).as_bytes())
            .map_err(|e| self.io("http write", e))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .map_err(|e| self.io("http read", e))?;
        parse_http_response(&buf)
            .ok_or_else(|| self.io(&format!("GET {addr}{path}"), "not an HTTP response"))
    }

    fn upload_owned(
        &mut self,
        data: &[u8],
        path: &str,
        mode: u32,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        let p = std::path::Path::new(path);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.io(&format!("mkdir {}", dir.display()), e))?;
        }
        let tmp = format!("{path}.stv3tmp.{}", std::process::id());
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| self.io(&format!("write {tmp}"), e))?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| self.io(&format!("chmod {tmp}"), e))?;
            f.write_all(data)
                .map_err(|e| self.io(&format!("write {tmp}"), e))?;
        }
        if let Some(owner) = owner {
            let out = self.exec(&["chown", owner, &tmp])?;
            if !out.ok() {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.io(&format!("chown {owner} {path}"), out.stderr_str()));
            }
        }
        std::fs::rename(&tmp, path).map_err(|e| self.io(&format!("rename {path}"), e))
    }

    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&format!("read {path}"), e)),
        }
    }

    fn sha256(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        Ok(self
            .read_file(path)?
            .map(|b| hex::encode(Sha256::digest(&b))))
    }
}
