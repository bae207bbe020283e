//! Differential test: our output must be byte-identical to the original
//! stackdistiller's (run through /work/shared/oracle/distill.py) on a
//! notigen sample, with the original event_definitions.yaml unchanged.

use std::path::PathBuf;
use std::process::Command;

use stv3_distiller::{Distiller, Outcome};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/oracle")
        .join(name)
}

fn expected_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(data(name))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn ours(catchall: bool) -> Vec<String> {
    let d = Distiller::from_file(data("event_definitions.yaml"), catchall).unwrap();
    let input = std::fs::read(data("notifications.jsonl")).unwrap();
    let mut out = Vec::new();
    for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match d.distill_bytes(line).unwrap() {
            Outcome::Event { event, diagnostics } => {
                assert!(diagnostics.dropped_traits.is_empty(), "{:?}", diagnostics);
                out.push(event.to_canonical_line());
            }
            Outcome::Unmatched { .. } => {}
        }
    }
    out
}

fn compare(got: &[String], want: &[String]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "event #{i} differs");
    }
    assert_eq!(got.len(), want.len(), "number of events");
}

#[test]
fn library_matches_the_original() {
    compare(&ours(false), &expected_lines("expected.jsonl"));
}

#[test]
fn library_matches_the_original_with_catchall() {
    compare(&ours(true), &expected_lines("expected_catchall.jsonl"));
}

#[test]
fn binary_output_is_byte_identical() {
    for (flag, expected) in [
        (None, "expected.jsonl"),
        (Some("--catchall"), "expected_catchall.jsonl"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_distiller"));
        cmd.arg("--definitions").arg(data("event_definitions.yaml"));
        if let Some(f) = flag {
            cmd.arg(f);
        }
        let out = cmd.arg(data("notifications.jsonl")).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == std::fs::read(data(expected)).unwrap(),
            "stdout differs from {expected}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("82 notifications"), "{stderr}");
    }
}

#[test]
fn binary_reports_bad_lines_and_keeps_going() {
    let dir = std::env::temp_dir().join(format!("stv3-distiller-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.jsonl");
    let good = r#"{"event_type":"compute.instance.update","message_id":"m1","timestamp":"2015-03-01 18:00:00","publisher_id":"compute.h1","payload":{"memory_mb":"lots"}}"#;
    std::fs::write(
        &input,
        format!("{good}\n{{not json\n\n{{\"message_id\":\"m2\"}}\n{good}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_distiller"))
        .arg("--definitions")
        .arg(data("event_definitions.yaml"))
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let name = input.display().to_string();
    assert!(
        stderr.contains(&format!("{name}:2: invalid JSON")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:4: cannot distill: message m2: missing 'event_type'"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:1: message m1: trait 'memory_mb' dropped")),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 notifications, 2 events, 0 unmatched, 2 failed, 2 traits dropped"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_rejects_bad_definitions_with_location() {
    let dir = std::env::temp_dir().join(format!("stv3-distiller-defs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let defs = dir.join("bad.yaml");
    std::fs::write(
        &defs,
        "- event_type: a.*\n  traits:\n    host: payload.host\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_distiller"))
        .arg("--definitions")
        .arg(&defs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}:3:11: trait 'host'", defs.display())),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
