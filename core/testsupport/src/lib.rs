//! Helpers for tests that need a real service.
//!
//! A test that needs RabbitMQ, MariaDB or sshd starts with
//! `let Some(url) = require(Service::MariaDb, "my_test") else { return };`.
//!
//! * The service is up: the test runs.
//! * The service is down and `STV3_TEST_REQUIRE_ALL=1`: the test **fails** (panics).
//! * The service is down otherwise: the test returns early, and its name is
//!   appended to the skip log (`$STV3_SKIP_LOG`, set by `stv3ctl test`), which
//!   `stv3ctl test` prints in one loud closing line.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A real service a test may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    RabbitMq,
    MariaDb,
    Sshd,
    /// Root with mount(8): tests that mount a small tmpfs to fill a disk for real.
    Mount,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::RabbitMq => "RabbitMQ",
            Service::MariaDb => "MariaDB",
            Service::Sshd => "sshd",
            Service::Mount => "root + mount",
        }
    }

    /// The default URL (or address) of the service, overridable by env.
    pub fn url(self) -> String {
        match self {
            Service::RabbitMq => std::env::var("STV3_TEST_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            Service::MariaDb => std::env::var("STV3_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
            Service::Sshd => "/usr/sbin/sshd".into(),
            Service::Mount => "/bin/mount".into(),
        }
    }

    fn probe(self) -> bool {
        match self {
            Service::RabbitMq => tcp_open(host_port(&self.url(), 5672)),
            Service::MariaDb => tcp_open(host_port(&self.url(), 3306)),
            Service::Sshd => std::path::Path::new("/usr/sbin/sshd").exists(),
            Service::Mount => {
                let root = std::fs::read_to_string("/proc/self/status")
                    .map(|s| {
                        s.lines().any(|l| {
                            l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")
                        })
                    })
                    .unwrap_or(false);
                root && std::path::Path::new("/bin/mount").exists()
            }
        }
    }
}

fn host_port(url: &str, default_port: u16) -> SocketAddr {
    let after_scheme = url.split("://").nth(1).unwrap_or(url);
    let authority = after_scheme.split('/').next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("127.0.0.1");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(default_port)),
        None => (hostport, default_port),
    };
    let host = if host.is_empty() || host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}")
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], default_port)))
}

fn tcp_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// True when `STV3_TEST_REQUIRE_ALL` is set to a truthy value.
pub fn require_all() -> bool {
    matches!(
        std::env::var("STV3_TEST_REQUIRE_ALL").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Gate a test on a service. Returns the service URL when it is reachable.
/// See the module docs for the skip/fail policy.
pub fn require(service: Service, test_name: &str) -> Option<String> {
    if quick() {
        // `stv3ctl test --quick`: only the suites that need no services.
        skip(service, test_name, "skipped by --quick");
        return None;
    }
    if service.probe() {
        return Some(service.url());
    }
    if require_all() {
        panic!(
            "{test_name}: {} is not reachable at {} and STV3_TEST_REQUIRE_ALL=1",
            service.name(),
            service.url()
        );
    }
    skip(service, test_name, "not reachable");
    None
}

/// True under `stv3ctl test --quick` (`STV3_TEST_QUICK=1`).
pub fn quick() -> bool {
    matches!(
        std::env::var("STV3_TEST_QUICK").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Report a skipped test on stderr and in the skip log that `stv3ctl test` prints.
pub fn skip(service: Service, test_name: &str, why: &str) {
    eprintln!(
        "SKIPPED {test_name}: {} {why} ({})",
        service.name(),
        service.url()
    );
    if let Ok(path) = std::env::var("STV3_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test_name} (needs {})", service.name());
        }
    }
}

/// A unique, valid SQL identifier for a scratch database: `stv3t_<tag>_<pid>_<n>`.
pub fn scratch_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    format!("stv3t_{tag}_{}_{n}_{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_urls() {
        assert_eq!(
            host_port("mysql://root@127.0.0.1:3306", 1),
            "127.0.0.1:3306".parse().unwrap()
        );
        assert_eq!(
            host_port("amqp://guest:guest@localhost:5673/%2f", 1),
            "127.0.0.1:5673".parse().unwrap()
        );
        assert_eq!(
            host_port("mysql://localhost", 3306),
            "127.0.0.1:3306".parse().unwrap()
        );
    }

    #[test]
    fn scratch_names_are_unique_identifiers() {
        let a = scratch_name("db-test!");
        let b = scratch_name("db-test!");
        assert_ne!(a, b);
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{a}"
        );
    }
}

/// Real MariaDB outages for fault tests (root; the server at 127.0.0.1:3306 run
/// as `/usr/sbin/mariadbd`, as on the dev and CI machine). Only for a test that
/// runs alone in its own test binary: it takes the shared server away.
pub mod mariadb_outage {
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn pid() -> Option<u32> {
        let out = Command::new("pidof").arg("mariadbd").output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// `mysqladmin ping` succeeds.
    pub fn alive() -> bool {
        Command::new("mysqladmin")
            .args(["-h127.0.0.1", "-uroot", "ping"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Start the server (as `.ci/run` does) and wait until it answers.
    pub fn start() {
        let _ = Command::new("start-stop-daemon")
            .args([
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/mariadbd",
                "--",
                "--user=mysql",
            ])
            .status();
        let deadline = Instant::now() + Duration::from_secs(90);
        while !alive() {
            assert!(Instant::now() < deadline, "MariaDB did not come back");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A graceful shutdown (waits until the process is gone), then a start.
    pub fn restart() {
        let pid = pid().expect("mariadbd running");
        let ok = Command::new("mysqladmin")
            .args(["-h127.0.0.1", "-uroot", "shutdown"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "mysqladmin shutdown");
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "mariadbd {pid} did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
        start();
    }

    /// Starts the server again when dropped (also when the test panics).
    pub struct BringBack;

    impl Drop for BringBack {
        fn drop(&mut self) {
            if !alive() {
                start();
            }
        }
    }
}

/// A pseudo-random duration in `[min_ms, min_ms + span_ms)` from the clock's
/// nanoseconds (fault tests pick "a random moment" to kill or cut; no rand
/// dependency needed).
pub fn random_moment(min_ms: u64, span_ms: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(min_ms + nanos % span_ms.max(1))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Run `rabbitmqctl ARGS` on the local broker (fault tests close connections with it);
/// panics with its stderr when it fails. Returns its stdout.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
