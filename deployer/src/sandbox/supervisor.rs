//! A tiny local process supervisor for the sandbox.
//!
//! Each child runs with its stdout and stderr captured line by line into
//! `logs/<name>.log` with a timestamp and a `[name]` prefix, and its pid is
//! written to `pids/<name>.pid` so that `sandbox down` / `status` work from
//! another shell. Stopping sends SIGTERM, waits, then SIGKILLs stragglers.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// A running child.
pub struct Proc {
    pub spec: ProcSpec,
    pub child: Child,
    pub started: Instant,
}

/// Supervises a set of children rooted at a work directory.
pub struct Supervisor {
    dir: PathBuf,
    procs: Vec<Proc>,
    /// Shared "errors seen in logs" counter for the status line.
    pub errors: Arc<Mutex<u64>>,
}

impl Supervisor {
    pub fn new(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir.join("logs"))?;
        fs::create_dir_all(dir.join("pids"))?;
        Ok(Supervisor {
            dir: dir.to_path_buf(),
            procs: Vec::new(),
            errors: Arc::new(Mutex::new(0)),
        })
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Start a child and begin capturing its output.
    pub fn spawn(&mut self, spec: ProcSpec) -> Result<()> {
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().cloned())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {} ({})", spec.name, spec.program.display()))?;
        let log = Arc::new(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path(&spec.name))
                .with_context(|| format!("open log for {}", spec.name))?,
        ));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            let name = spec.name.clone();
            let errors = Arc::clone(&self.errors);
            thread::spawn(move || pump(stream, &name, &log, &errors));
        }
        fs::write(
            self.dir.join("pids").join(format!("{}.pid", spec.name)),
            child.id().to_string(),
        )?;
        self.procs.push(Proc {
            spec,
            child,
            started: Instant::now(),
        });
        Ok(())
    }

    /// (name, pid) of every child started with [`Supervisor::spawn`].
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| (p.spec.name.clone(), p.child.id()))
            .collect()
    }

    /// Names of children that have exited, with their status.
    pub fn exited(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                out.push((p.spec.name.clone(), status.to_string()));
            }
        }
        out
    }

    /// Run a one-shot command to completion, logging like a child. Errors on non-zero exit.
    pub fn run_once(&mut self, spec: ProcSpec) -> Result<()> {
        let name = spec.name.clone();
        self.spawn(spec)?;
        let p = self.procs.pop().expect("just spawned");
        let mut child = p.child;
        let status = child.wait()?;
        let _ = fs::remove_file(self.dir.join("pids").join(format!("{name}.pid")));
        if !status.success() {
            anyhow::bail!(
                "{name} failed ({status}); see {}",
                self.log_path(&name).display()
            );
        }
        Ok(())
    }

    /// SIGTERM everything (newest first), wait up to `grace`, then SIGKILL.
    pub fn stop_all(&mut self, grace: Duration) {
        for p in self.procs.iter().rev() {
            signal(p.child.id(), Signal::Term);
        }
        let deadline = Instant::now() + grace;
        for p in self.procs.iter_mut().rev() {
            loop {
                match p.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(50)),
                }
            }
            let _ = fs::remove_file(self.dir.join("pids").join(format!("{}.pid", p.spec.name)));
        }
        self.procs.clear();
    }
}

/// Children are never left behind: a supervisor dropped with children still
/// running (a start-up that failed or was interrupted halfway, an early `?`)
/// stops them as [`Supervisor::stop_all`] does.
impl Drop for Supervisor {
    fn drop(&mut self) {
        if !self.procs.is_empty() {
            self.stop_all(Duration::from_secs(5));
        }
    }
}

fn pump(stream: Box<dyn std::io::Read + Send>, name: &str, log: &Mutex<File>, errors: &Mutex<u64>) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        if line.contains("ERROR") || line.contains("\"level\":\"ERROR\"") {
            if let Ok(mut e) = errors.lock() {
                *e += 1;
            }
        }
        if let Ok(mut f) = log.lock() {
            let _ = writeln!(f, "[{name}] {line}");
        }
    }
}

/// Signals we send.
#[derive(Debug, Clone, Copy)]
pub enum Signal {
    Term,
    Kill,
    /// Signal 0: only checks that the pid exists.
    Probe,
    /// Freeze (SIGSTOP) and thaw (SIGCONT): the bench holds consumers while it fills queues.
    Stop,
    Cont,
}

/// Send a signal to a pid. Returns false when the process does not exist.
#[cfg(unix)]
pub fn signal(pid: u32, sig: Signal) -> bool {
    let s = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
        Signal::Probe => 0,
        Signal::Stop => libc::SIGSTOP,
        Signal::Cont => libc::SIGCONT,
    };
    // SAFETY: kill(2) with a plain pid and signal number has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, s) == 0 }
}

#[cfg(not(unix))]
pub fn signal(_pid: u32, _sig: Signal) -> bool {
    false
}

/// Read `pids/*.pid` under `dir`: (name, pid, alive).
pub fn read_pids(dir: &Path) -> Vec<(String, u32, bool)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir.join("pids")) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path.file_stem().map(|s| s.to_string_lossy().to_string()) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<u32>() else {
            continue;
        };
        out.push((name, pid, signal(pid, Signal::Probe)));
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_prefixed_logs_and_stops_children() {
        let dir = tempfile::tempdir().unwrap();
        let mut sup = Supervisor::new(dir.path()).unwrap();
        sup.run_once(ProcSpec {
            name: "echo".into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo hello; echo ERROR boom >&2".into()],
            env: vec![],
        })
        .unwrap();
        // Output threads may lag the exit by a moment.
        let log = sup.log_path("echo");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut text = String::new();
        while Instant::now() < deadline {
            text = fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() >= 2 {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        assert!(text.contains("[echo] hello"), "{text}");
        assert!(text.contains("[echo] ERROR boom"), "{text}");
        assert_eq!(*sup.errors.lock().unwrap(), 1);

        sup.spawn(ProcSpec {
            name: "sleeper".into(),
            program: "/bin/sleep".into(),
            args: vec!["60".into()],
            env: vec![],
        })
        .unwrap();
        let pids = read_pids(dir.path());
        assert_eq!(pids.len(), 1);
        assert!(pids[0].2, "sleeper should be alive");
        let pid = pids[0].1;
        sup.stop_all(Duration::from_secs(5));
        assert!(
            !signal(pid, Signal::Probe) || is_zombie(pid),
            "sleeper should be gone"
        );
        assert!(read_pids(dir.path()).is_empty());
    }

    #[test]
    fn failing_one_shot_is_an_error_naming_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut sup = Supervisor::new(dir.path()).unwrap();
        let err = sup
            .run_once(ProcSpec {
                name: "bad".into(),
                program: "/bin/false".into(),
                args: vec![],
                env: vec![],
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad failed") && err.contains("bad.log"),
            "{err}"
        );
    }

    fn is_zombie(pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    }
}
