//! The `archive-read` binary: format detection, `--unwrap-region`, several files in order,
//! and non-zero exits naming the file and the byte offset.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stv3_archive::binary_v1::encode_record;
use stv3_archive::{ArchiveConfig, ArchiveWriter, RegionWrap};

fn run(args: &[&Path], unwrap: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_archive-read"));
    if unwrap {
        cmd.arg("--unwrap-region");
    }
    cmd.args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn notification(i: usize) -> String {
    format!("{{\"event_type\":\"compute.instance.update\",\"message_id\":\"m{i}\"}}")
}

/// A finished .json.gz with region wrapping, via the real writer.
fn gz_archive(dir: &Path, n: usize) -> PathBuf {
    let mut cfg = ArchiveConfig::new(dir.join("work"), dir.join("dest"));
    cfg.filename_template = "a-[[CRC]].json".into();
    cfg.wrap = Some(RegionWrap {
        region: "r1".into(),
        cell: "c1".into(),
    });
    let mut w = ArchiveWriter::open(cfg).unwrap();
    let recs: Vec<String> = (0..n).map(notification).collect();
    let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_bytes()).collect();
    w.write_batch(&refs).unwrap();
    w.roll().unwrap().unwrap()
}

#[test]
fn reads_every_format_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let gz = gz_archive(dir.path(), 2);
    let plain = dir.path().join("working.json");
    fs::write(&plain, format!("{}\n", notification(2))).unwrap();
    let bin = dir.path().join("old.dat");
    let mut bytes = encode_record(
        &[("event", "compute.instance.update")],
        notification(3).as_bytes(),
    );
    bytes.extend(encode_record(&[], notification(4).as_bytes()));
    fs::write(&bin, bytes).unwrap();

    let out = run(&[&gz, &plain, &bin], false);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!("wrapped", stdout(&out));
    let out = run(&[&gz, &plain, &bin], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: String = (0..5).map(|i| notification(i) + "\n").collect();
    assert_eq!(stdout(&out), expected);
}

fn check_failure(
    content: &[u8],
    name: &str,
    expected_in_stderr: &str,
    expected_stdout_lines: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, content).unwrap();
    let out = run(&[&path], false);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(err.contains(&path.display().to_string()), "{name}: {err}");
    assert!(err.contains(expected_in_stderr), "{name}: {err}");
    assert_eq!(
        stdout(&out).lines().count(),
        expected_stdout_lines,
        "{name}"
    );
}

#[test]
fn bad_files_exit_non_zero_with_name_and_offset() {
    let good = encode_record(&[], b"{\"message_id\":\"m0\"}");
    let mut bad_second = good.clone();
    bad_second.extend_from_slice(&good[..10]);
    let mut bad_version = good.clone();
    let mut v2 = good.clone();
    v2[4] = 2;
    bad_version.extend(v2);
    let original = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/original_v1.bin"
    ))
    .unwrap();
    let n = good.len();
    let cases: Vec<(Vec<u8>, &str, String, usize)> = vec![
        (
            b"garbage!".to_vec(),
            "x.bin",
            "byte offset 0: unknown format".into(),
            0,
        ),
        (
            bad_second,
            "cut.dat",
            format!("byte offset {n}: end of file"),
            1,
        ),
        (
            bad_version,
            "v2.dat",
            format!("byte offset {n}: invalid version 2"),
            1,
        ),
        // the original's own test record "shoebox" is not a JSON notification
        (
            original,
            "orig.dat",
            "byte offset 0: the payload is not valid JSON".into(),
            0,
        ),
        (
            b"{\"a\":1}\n{oops}\n".to_vec(),
            "w.json",
            "line 2 (uncompressed byte offset 8)".into(),
            1,
        ),
    ];
    for (content, name, expected, lines) in cases {
        check_failure(&content, name, &expected, lines);
    }
    let missing = run(&[Path::new("/nonexistent/archive.json.gz")], false);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/nonexistent/archive.json.gz"));
}

#[test]
fn help_and_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_archive-read"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("--unwrap-region"));
    let out = Command::new(env!("CARGO_BIN_EXE_archive-read"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a file argument is required");
}
