//! JSON-lines readers: gzip and plain files, multi-member gzip, line/offset positions,
//! and errors naming the file, line and uncompressed byte offset.
use std::fs;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use stv3_archive::{read_jsonl_gz, ArchiveError, JsonlReader, Line};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The `n` values read, or the (line, offset) of the error.
type Expected = Result<Vec<i64>, (u64, u64)>;

fn check(content: &[u8], compress: bool, expected: Expected) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(if compress { "a.json.gz" } else { "a.json" });
    fs::write(
        &path,
        if compress {
            gz(content)
        } else {
            content.to_vec()
        },
    )
    .unwrap();
    let got = read_jsonl_gz(&path).map(|vs| {
        vs.iter()
            .map(|v| v["n"].as_i64().unwrap())
            .collect::<Vec<_>>()
    });
    match (got, expected) {
        (Ok(g), Ok(e)) => assert_eq!(g, e, "{content:?}"),
        (
            Err(ArchiveError::BadLine {
                path: p,
                line,
                offset,
                ..
            }),
            Err((el, eo)),
        ) => {
            assert_eq!((line, offset), (el, eo), "{content:?}");
            assert_eq!(p, path);
        }
        (g, e) => panic!("{content:?}: got {g:?}, expected {e:?}"),
    }
}

#[test]
fn reads_lines_and_reports_positions() {
    let cases: &[(&[u8], Expected)] = &[
        (b"", Ok(vec![])),
        (b"{\"n\":1}\n{\"n\":2}\n", Ok(vec![1, 2])),
        (b"{\"n\":1}\r\n{\"n\":2}", Ok(vec![1, 2])), // CRLF, last line without newline
        (b"{\"n\":1}\n{\"n\":\n{\"n\":3}\n", Err((2, 8))),
        (b"{\"n\":1}\n\n", Err((2, 8))),
        (b"{\"n\":1}\n{\"n\":2}\n{\"cut", Err((3, 16))),
    ];
    for (content, expected) in cases {
        check(content, true, expected.clone());
        check(content, false, expected.clone());
    }
}

#[test]
fn multi_member_gzip_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json.gz");
    let mut bytes = gz(b"{\"n\":1}\n");
    bytes.extend(gz(b"{\"n\":2}\n"));
    fs::write(&path, bytes).unwrap();
    let lines: Vec<Line> = JsonlReader::open(&path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        lines,
        vec![
            Line {
                line: 1,
                offset: 0,
                bytes: b"{\"n\":1}".to_vec()
            },
            Line {
                line: 2,
                offset: 8,
                bytes: b"{\"n\":2}".to_vec()
            },
        ]
    );
}

#[test]
fn truncated_gzip_is_an_error_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json.gz");
    let content: Vec<u8> = (0..2000)
        .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
        .collect();
    let full = gz(&content);
    fs::write(&path, &full[..full.len() / 2]).unwrap();
    let err = read_jsonl_gz(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ArchiveError::BadLine { .. }), "{msg}");
    assert!(
        msg.contains("t.json.gz") && msg.contains("uncompressed byte offset"),
        "{msg}"
    );
    let missing = read_jsonl_gz(dir.path().join("nope.json.gz")).unwrap_err();
    assert!(missing.to_string().contains("nope.json.gz"), "{missing}");
}
