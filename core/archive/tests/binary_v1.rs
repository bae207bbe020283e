//! The original shoebox binary v1 format: the spec §6.2 vectors, a fixture written by the
//! original Python packer, round trips, and the typed errors with their byte offsets.
use std::collections::BTreeMap;

use stv3_archive::binary_v1::{encode_record, BinaryError, BinaryV1Reader, Record};

fn read_all(bytes: &[u8]) -> Result<Vec<Record>, BinaryError> {
    BinaryV1Reader::new(bytes).collect()
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// (metadata, payload, metadata block length, raw block length) from spec §6.2.
type SizeCase<'a> = (&'a [(&'a str, &'a str)], &'a str, usize, usize);

#[test]
fn block_sizes_match_the_spec_vectors() {
    let cases: &[SizeCase] = &[
        (&[], "shoebox", 4, 11),
        (&[("key", "value"), ("some", "stuff")], "", 37, 4),
    ];
    for (md, payload, meta_len, raw_len) in cases {
        let rec = encode_record(md, payload.as_bytes());
        assert_eq!(rec.len(), 6 + 12 + meta_len + raw_len, "{md:?}");
        assert_eq!(&rec[6..10], &(*meta_len as i32).to_le_bytes());
        assert_eq!(&rec[10..14], &(*raw_len as i32).to_le_bytes());
        let back = read_all(&rec).unwrap();
        assert_eq!(back, vec![(meta(md), payload.as_bytes().to_vec())]);
    }
    // empty metadata block is exactly 00 00 00 00; an empty payload's raw block too
    assert_eq!(&encode_record(&[], b"x")[18..22], &[0, 0, 0, 0]);
    let empty = encode_record(&[("key", "value"), ("some", "stuff")], b"");
    assert_eq!(&empty[empty.len() - 4..], &[0, 0, 0, 0]);
}

#[test]
fn reads_a_file_written_by_the_original() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/original_v1.bin"
    ))
    .unwrap();
    let records = read_all(&bytes).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0], (meta(&[]), b"shoebox".to_vec()));
    assert_eq!(
        records[1],
        (meta(&[("key", "value"), ("some", "stuff")]), Vec::new())
    );
    assert_eq!(
        records[2].0,
        meta(&[
            ("event", "compute.instance.create.end"),
            ("request_id", "req-1")
        ])
    );
    let v: serde_json::Value = serde_json::from_slice(&records[2].1).unwrap();
    assert_eq!(v["message_id"], "m1");
    // our encoder writes the same bytes as the original packer
    let ours: Vec<u8> = [
        encode_record(&[], b"shoebox"),
        encode_record(&[("key", "value"), ("some", "stuff")], b""),
        encode_record(
            &[
                ("event", "compute.instance.create.end"),
                ("request_id", "req-1"),
            ],
            &records[2].1,
        ),
    ]
    .concat();
    assert_eq!(ours, bytes);
}

#[test]
fn round_trip_many_records_in_order() {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500 {
        let id = i.to_string();
        let payload = format!("{{\"message_id\":\"m{i}\",\"n\":{i}}}");
        let md = [("event", "compute.instance.exists"), ("uuid", id.as_str())];
        bytes.extend(encode_record(&md, payload.as_bytes()));
        expected.push((meta(&md), payload.into_bytes()));
    }
    assert_eq!(read_all(&bytes).unwrap(), expected);
    assert!(
        read_all(&[]).unwrap().is_empty(),
        "an empty file has no records"
    );
}

fn check_error(bytes: &[u8], expected: &str, offset: u64) {
    let err = read_all(bytes).unwrap_err();
    let kind = match err {
        BinaryError::OutOfSync { .. } => "OutOfSync",
        BinaryError::InvalidVersion { .. } => "InvalidVersion",
        BinaryError::EndOfFile { .. } => "EndOfFile",
        BinaryError::Corrupt { .. } => "Corrupt",
        BinaryError::Io { .. } => "Io",
    };
    assert_eq!((kind, err.offset()), (expected, offset), "{err}");
    assert!(
        err.to_string().contains(&format!("byte offset {offset}")),
        "{err}"
    );
}

#[test]
fn typed_errors_with_offsets() {
    let good = encode_record(&[("k", "v")], b"{}");
    let n = good.len() as u64;
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut second = good.clone();
        f(&mut second);
        [good.clone(), second].concat()
    };
    let cases: Vec<(Vec<u8>, &str, u64)> = vec![
        (with(&|r| r[0] = 0), "OutOfSync", n),
        (with(&|r| r[4] = 2), "InvalidVersion", n),
        (with(&|r| r[14] = 1), "OutOfSync", n), // non-zero EOR
        (with(&|r| r.truncate(3)), "EndOfFile", n),
        (with(&|r| r.truncate(10)), "EndOfFile", n),
        (with(&|r| r.truncate(r.len() - 1)), "EndOfFile", n),
        (
            with(&|r| r[6..10].copy_from_slice(&(-5i32).to_le_bytes())),
            "Corrupt",
            n,
        ),
        (
            with(&|r| r[18..22].copy_from_slice(&(400i32).to_le_bytes())),
            "Corrupt",
            n,
        ),
        (
            with(&|r| r[22..26].copy_from_slice(&(90i32).to_le_bytes())),
            "Corrupt",
            n,
        ),
        (with(&|r| r[30] = 0xff), "Corrupt", n), // metadata not UTF-8
    ];
    for (bytes, kind, offset) in cases {
        check_error(&bytes, kind, offset);
    }
}

#[test]
fn never_panics_on_mutated_input() {
    let mut base = Vec::new();
    for i in 0..5 {
        base.extend(encode_record(
            &[("uuid", &i.to_string())],
            format!("{{\"n\":{i}}}").as_bytes(),
        ));
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..(rnd() % 4 + 1) {
            let i = (rnd() as usize) % b.len();
            match rnd() % 3 {
                0 => b[i] = rnd() as u8,
                1 => b.truncate(i),
                _ => b.insert(i, rnd() as u8),
            }
            if b.is_empty() {
                break;
            }
        }
        let _ = read_all(&b);
    }
}
