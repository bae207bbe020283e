//! `stv3ctl test`: run the whole workspace test suite and summarise it.
//!
//! It runs `cargo test --workspace`, forwards cargo's own output unchanged
//! (so the standard `test result:` lines are all there), and then prints:
//!
//! * one summary table, a row per suite (test binary);
//! * the plain closing line `N passed, M failed, K skipped`;
//! * one loud line naming every test that was skipped because a service
//!   (RabbitMQ, MariaDB, sshd) was missing. With `STV3_TEST_REQUIRE_ALL=1`
//!   such tests fail instead (see `stv3-testsupport`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result};

/// Options for one test run.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Run only the suites that need no external service.
    pub quick: bool,
    /// Extra arguments passed to `cargo test` (after `--workspace`).
    pub cargo_args: Vec<String>,
    /// Extra arguments passed to the test binaries (after `--`).
    pub test_args: Vec<String>,
}

/// One suite's result, parsed from cargo's `Running …` and `test result:` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteResult {
    pub name: String,
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    pub seconds: String,
    pub ok: bool,
}

/// Accumulates suites from cargo test output, line by line.
#[derive(Debug, Default)]
pub struct Summary {
    pub suites: Vec<SuiteResult>,
    current: Option<String>,
}

impl Summary {
    /// Feed one line of cargo output.
    pub fn feed(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Running ") {
            self.current = Some(suite_name(rest));
        } else if let Some(rest) = line.strip_prefix("Doc-tests ") {
            self.current = Some(format!("doc-tests {}", rest.trim()));
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            let name = self.current.take().unwrap_or_else(|| "unknown".into());
            self.suites.push(parse_result(name, rest));
        }
    }

    pub fn totals(&self) -> (u64, u64, u64) {
        self.suites.iter().fold((0, 0, 0), |(p, f, i), s| {
            (p + s.passed, f + s.failed, i + s.ignored)
        })
    }

    /// Render the per-suite table.
    pub fn table(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "suite", "result", "passed", "failed", "ignored", "time",
        ]);
        for s in &self.suites {
            if s.passed + s.failed + s.ignored == 0 && s.ok {
                continue;
            }
            t.add_row(vec![
                s.name.clone(),
                if s.ok { "ok".into() } else { "FAILED".into() },
                s.passed.to_string(),
                s.failed.to_string(),
                s.ignored.to_string(),
                s.seconds.clone(),
            ]);
        }
        t.to_string()
    }
}

fn suite_name(running: &str) -> String {
    // "unittests src/lib.rs (target/debug/deps/stv3_event-0123abcd)" or
    // "tests/distill.rs (target/debug/deps/distill-0123abcd)"
    let (what, bin) = match running.rsplit_once(" (") {
        Some((w, b)) => (w.trim(), b.trim_end_matches(')')),
        None => (running.trim(), ""),
    };
    let bin = Path::new(bin)
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let crate_part = bin
        .rsplit_once('-')
        .map(|(c, _)| c.to_string())
        .unwrap_or(bin);
    let what = what.strip_prefix("unittests ").unwrap_or(what);
    format!("{crate_part} {what}")
}

fn parse_result(name: String, rest: &str) -> SuiteResult {
    // "ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s"
    let mut r = SuiteResult {
        name,
        ok: rest.starts_with("ok"),
        ..Default::default()
    };
    for part in rest.split(';') {
        let part = part
            .trim()
            .trim_start_matches("ok.")
            .trim_start_matches("FAILED.")
            .trim();
        let mut words = part.split_whitespace();
        match (words.next(), words.next()) {
            (Some(n), Some("passed")) => r.passed = n.parse().unwrap_or(0),
            (Some(n), Some("failed")) => r.failed = n.parse().unwrap_or(0),
            (Some(n), Some("ignored")) => r.ignored = n.parse().unwrap_or(0),
            (Some("finished"), Some("in")) => r.seconds = words.next().unwrap_or("").to_string(),
            _ => {}
        }
    }
    // A suite with failures is never "ok", whatever its first word says.
    r.ok = r.ok && r.failed == 0;
    r
}

/// Run the suite. Returns the process exit code to use.
pub fn run(opts: &TestOptions) -> Result<i32> {
    let skip_log = tempfile::NamedTempFile::new().context("create skip log")?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("test").arg("--workspace");
    cmd.args(&opts.cargo_args);
    cmd.arg("--");
    cmd.args(&opts.test_args);
    cmd.env("STV3_SKIP_LOG", skip_log.path());
    if opts.quick {
        cmd.env("STV3_TEST_QUICK", "1");
        cmd.env_remove("STV3_TEST_REQUIRE_ALL");
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawn cargo test")?;

    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let tx2 = tx.clone();
    let t1 = thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((true, line));
        }
    });
    let t2 = thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send((false, line));
        }
    });
    let mut summary = Summary::default();
    for (is_out, line) in rx {
        summary.feed(&line);
        if is_out {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    let _ = t1.join();
    let _ = t2.join();
    let status = child.wait().context("wait for cargo test")?;

    let (passed, failed, ignored) = summary.totals();
    let skipped: Vec<String> = std::fs::read_to_string(skip_log.path())
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "\n{}", summary.table())?;
    writeln!(
        stdout,
        "{passed} passed, {failed} failed, {} skipped",
        skipped.len() as u64 + ignored
    )?;
    if !skipped.is_empty() {
        writeln!(
            stdout,
            "!!! SKIPPED {} TEST(S) FOR MISSING SERVICES (set STV3_TEST_REQUIRE_ALL=1 to fail instead): {}",
            skipped.len(),
            skipped.join(", ")
        )?;
    }
    Ok(if status.success() {
        0
    } else {
        status.code().unwrap_or(1).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(lines: &[&str], expected: &[(&str, u64, u64, u64, bool)]) {
        let mut s = Summary::default();
        for l in lines {
            s.feed(l);
        }
        let got: Vec<(&str, u64, u64, u64, bool)> = s
            .suites
            .iter()
            .map(|r| (r.name.as_str(), r.passed, r.failed, r.ignored, r.ok))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn parses_cargo_test_output() {
        check(
            &[
                "     Running unittests src/lib.rs (target/debug/deps/stv3_event-4f2a9c)",
                "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
                "     Running tests/replay.rs (target/debug/deps/replay-77aa)",
                "test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s",
                "   Doc-tests stv3_event",
                "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            ],
            &[
                ("stv3_event src/lib.rs", 3, 0, 1, true),
                ("replay tests/replay.rs", 5, 2, 0, false),
                ("doc-tests stv3_event", 0, 0, 0, true),
            ],
        );
    }

    #[test]
    fn totals_add_up() {
        let mut s = Summary::default();
        s.feed("Running unittests src/lib.rs (target/debug/deps/a-1)");
        s.feed("test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        s.feed("Running unittests src/lib.rs (target/debug/deps/b-1)");
        s.feed("test result: ok. 4 passed; 1 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        assert_eq!(s.totals(), (6, 1, 3));
        assert!(s.table().contains("FAILED"));
    }
}
