//! The rolling JSON-lines writer: file names, rolls by size and by time (also when idle),
//! sha256 in the name, durability and recovery of leftover working files, region wrapping,
//! bad records and I/O errors, and reading back exactly what was written.
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, TimeDelta};
use sha2::{Digest, Sha256};
use stv3_archive::filename::{decimal_epoch, render};
use stv3_archive::{
    read_jsonl_gz, unwrap_region, ArchiveConfig, ArchiveError, ArchiveWriter, RegionWrap,
};
use stv3_event::Timestamp;

fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> Timestamp {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_micro_opt(h, mi, s, us)
        .unwrap()
}

/// A settable clock.
#[derive(Clone)]
struct FakeClock(Arc<Mutex<Timestamp>>);

impl FakeClock {
    fn new(t: Timestamp) -> Self {
        FakeClock(Arc::new(Mutex::new(t)))
    }
    fn advance(&self, d: TimeDelta) {
        let mut t = self.0.lock().unwrap();
        *t += d;
    }
    fn clock(&self) -> stv3_archive::Clock {
        let inner = self.0.clone();
        Arc::new(move || *inner.lock().unwrap())
    }
}

struct Dirs {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    dest: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let dest = tmp.path().join("dest");
    Dirs {
        work,
        dest,
        _tmp: tmp,
    }
}

fn config(d: &Dirs) -> ArchiveConfig {
    let mut cfg = ArchiveConfig::new(&d.work, &d.dest);
    cfg.filename_template = "%Y%m%d-[[TIMESTAMP]]-region-cell1-stv3-[[CRC]].json".into();
    cfg.writer_id = "test".into();
    cfg
}

fn record(i: usize) -> Vec<u8> {
    format!("{{\"event_type\":\"compute.instance.exists\",\"message_id\":\"m{i:05}\",\"payload\":{{\"n\":{i}}}}}").into_bytes()
}

fn finished(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    v.sort();
    v
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn message_ids(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|p| read_jsonl_gz(p).unwrap())
        .map(|v| {
            unwrap_region(&v).unwrap_or(&v)["message_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn expected_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i:05}")).collect()
}

fn check_name(template: &str, now: Timestamp, crc: &str, expected: &str) {
    assert_eq!(
        render(template, now, crc).unwrap(),
        expected,
        "{template:?}"
    );
}

#[test]
fn filename_templates() {
    let t = ts(2014, 2, 1, 10, 11, 12, 0);
    let cases: &[(&str, Timestamp, &str, &str)] = &[
        // the original test (dt_to_decimal mocked to 123.45 there; here the real value)
        (
            "%Y%m%d [[TIMESTAMP]] [[CRC]].foo",
            t,
            "mycrc",
            "20140201_1391249472_mycrc.foo",
        ),
        (
            "%Y%m%d [[TIMESTAMP]] [[CRC]].foo",
            ts(2014, 2, 1, 10, 11, 12, 450_000),
            "mycrc",
            "20140201_1391249472.45_mycrc.foo",
        ),
        (
            "events_%Y_%m_%d_%X_%f.dat",
            t,
            "x",
            "events_2014_02_01_10_11_12_000000.dat",
        ),
        (
            "events_%Y_%m_%d_%X_%f.dat",
            ts(2014, 2, 1, 10, 11, 12, 5),
            "x",
            "events_2014_02_01_10_11_12_000005.dat",
        ),
        (
            "%Y%m%d-[[TIMESTAMP]]-region-cell1-stv3-[[CRC]].json",
            ts(2014, 2, 1, 10, 11, 12, 123_000),
            "abc",
            "20140201-1391249472.123-region-cell1-stv3-abc.json",
        ),
        ("a/b:c d%%", t, "", "a_b_c_d%"),
    ];
    for (template, now, crc, expected) in cases {
        check_name(template, *now, crc, expected);
    }
    for bad in ["%Q", "abc%", "%z"] {
        assert!(
            matches!(render(bad, t, ""), Err(ArchiveError::Config(_))),
            "{bad}"
        );
    }
}

#[test]
fn decimal_epoch_matches_dt_to_decimal() {
    // values printed by the original notification_utils.dt_to_decimal
    let cases: &[(u32, &str)] = &[
        (0, "1391249472"),
        (123_000, "1391249472.123"),
        (123_456, "1391249472.123456"),
        (500_000, "1391249472.5"),
        (1, "1391249472.000001"),
        (100, "1391249472.0001"),
    ];
    for (us, expected) in cases {
        assert_eq!(decimal_epoch(ts(2014, 2, 1, 10, 11, 12, *us)), *expected);
    }
}

#[test]
fn write_roll_and_read_back_with_sha256_name() {
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 10, 11, 12, 123_000));
    let mut w = ArchiveWriter::open_with_clock(config(&d), clock.clock()).unwrap();
    let recs: Vec<Vec<u8>> = (0..10).map(record).collect();
    let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
    w.write_batch(&refs[..4]).unwrap();
    w.write_batch(&refs[4..]).unwrap();
    let working = w.working_file().unwrap().to_path_buf();
    assert_eq!(
        working.file_name().unwrap().to_string_lossy(),
        "test--20140201-1391249472.123-region-cell1-stv3-working.json"
    );
    // durable before any roll: the working file already holds every line
    let mut expected = Vec::new();
    for r in &recs {
        expected.extend_from_slice(r);
        expected.push(b'\n');
    }
    assert_eq!(fs::read(&working).unwrap(), expected);
    assert_eq!(w.working_size(), expected.len() as u64);

    clock.advance(TimeDelta::seconds(1));
    let done = w.roll().unwrap().unwrap();
    let sha = hex::encode(Sha256::digest(&expected));
    assert_eq!(
        done.file_name().unwrap().to_string_lossy(),
        format!("20140201-1391249473.123-region-cell1-stv3-{sha}.json.gz")
    );
    assert!(
        !working.exists(),
        "the working file is deleted after the roll"
    );
    assert_eq!(files(&d.work), Vec::<String>::new());
    assert_eq!(
        files(&d.dest),
        vec![done.file_name().unwrap().to_string_lossy().into_owned()]
    );
    // the gzip holds exactly the uncompressed bytes
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(fs::File::open(&done).unwrap()),
        &mut raw,
    )
    .unwrap();
    assert_eq!(raw, expected);
    assert_eq!(message_ids(&[done]), expected_ids(10));
    // nothing to roll now
    assert_eq!(w.roll().unwrap(), None);
}

#[test]
fn rolls_by_size() {
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut cfg = config(&d);
    cfg.roll_size_bytes = 1000;
    let mut w = ArchiveWriter::open_with_clock(cfg, clock.clock()).unwrap();
    let line_len = record(0).len() as u64 + 1;
    for i in 0..100 {
        clock.advance(TimeDelta::milliseconds(10));
        w.write_batch(&[&record(i)]).unwrap();
        assert!(w.working_size() < 1000);
    }
    let per_file = 1000_u64.div_ceil(line_len) as usize;
    let done = finished(&d.dest);
    assert_eq!(done.len(), 100 / per_file, "{line_len} bytes a line");
    for f in &done {
        assert_eq!(read_jsonl_gz(f).unwrap().len(), per_file);
    }
    w.roll().unwrap();
    assert_eq!(message_ids(&finished(&d.dest)), expected_ids(100));
}

#[test]
fn rolls_by_megabytes_from_the_shoebox_section() {
    let d = dirs();
    let work = d.work.to_string_lossy().into_owned();
    let dest = d.dest.to_string_lossy().into_owned();
    let cfg = ArchiveConfig::from_shoebox_section([
        ("working_directory", work.as_str()),
        ("destination_folder", dest.as_str()),
        (
            "filename_template",
            "%Y%m%d-[[TIMESTAMP]]-region-cell1-stv3-[[CRC]].json",
        ),
        (
            "roll_manager",
            "shoebox.roll_manager:WritingJSONRollManager",
        ),
        ("roll_size_mb", "1"),
        ("writer_id", "cell1"),
    ])
    .unwrap();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut w = ArchiveWriter::open_with_clock(cfg, clock.clock()).unwrap();
    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(100 * 1024)).into_bytes();
    for _ in 0..11 {
        clock.advance(TimeDelta::seconds(1));
        w.write_batch(&[&big]).unwrap();
    }
    // 11 * 100 KiB: the first roll happens when 1 MiB is reached (after 11 lines)
    assert_eq!(finished(&d.dest).len(), 1);
    assert_eq!(w.working_size(), 0);
}

#[test]
fn rolls_by_time_on_write_and_when_idle() {
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut cfg = config(&d);
    cfg.roll_minutes = 10;
    let mut w = ArchiveWriter::open_with_clock(cfg, clock.clock()).unwrap();
    assert_eq!(w.tick().unwrap(), None, "nothing open");
    w.write_batch(&[&record(0)]).unwrap();
    clock.advance(TimeDelta::minutes(9));
    assert_eq!(w.tick().unwrap(), None, "not old enough");
    w.write_batch(&[&record(1)]).unwrap();
    assert!(finished(&d.dest).is_empty());
    clock.advance(TimeDelta::minutes(1));
    // idle: the tick rolls it (the original never rolled an idle archive)
    let first = w.tick().unwrap().expect("rolled by time");
    assert_eq!(message_ids(&[first]), expected_ids(2));
    assert_eq!(w.working_file(), None);
    // the age counts from the opening of the next working file; a write past it rolls
    w.write_batch(&[&record(2)]).unwrap();
    clock.advance(TimeDelta::minutes(11));
    w.write_batch(&[&record(3)]).unwrap();
    assert_eq!(finished(&d.dest).len(), 2);
    assert_eq!(message_ids(&finished(&d.dest)), expected_ids(4));
}

#[test]
fn recovers_only_its_own_leftover_working_files() {
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    {
        let mut w = ArchiveWriter::open_with_clock(config(&d), clock.clock()).unwrap();
        for i in 0..5 {
            w.write_batch(&[&record(i)]).unwrap();
        }
        // simulated crash: dropped without a roll, and a write cut in the middle
        let working = w.working_file().unwrap().to_path_buf();
        drop(w);
        let mut f = fs::OpenOptions::new().append(true).open(&working).unwrap();
        std::io::Write::write_all(&mut f, b"{\"event_type\":\"cut").unwrap();
    }
    // another writer's working file, a stale partial archive of ours, and a foreign file
    fs::write(d.work.join("other--x.json"), b"{\"a\":1}\n").unwrap();
    fs::write(d.work.join("notes.txt"), b"keep me").unwrap();
    fs::write(d.dest.join(".partial-test--stale.gz"), b"junk").unwrap();
    fs::write(d.dest.join(".partial-other--theirs.gz"), b"junk").unwrap();

    clock.advance(TimeDelta::minutes(1));
    let w = ArchiveWriter::open_with_clock(config(&d), clock.clock()).unwrap();
    assert_eq!(w.recovered().len(), 1);
    assert_eq!(
        message_ids(w.recovered()),
        expected_ids(5),
        "the cut line is dropped"
    );
    assert_eq!(
        files(&d.work),
        vec!["notes.txt".to_string(), "other--x.json".to_string()]
    );
    let dest = files(&d.dest);
    assert!(!dest.contains(&".partial-test--stale.gz".to_string()));
    assert!(dest.contains(&".partial-other--theirs.gz".to_string()));
    assert_eq!(finished(&d.dest).len(), 1);
}

#[test]
fn empty_leftover_is_removed() {
    let d = dirs();
    fs::create_dir_all(&d.work).unwrap();
    fs::write(d.work.join("test--empty.json"), b"{\"cut").unwrap();
    let w = ArchiveWriter::open(config(&d)).unwrap();
    assert!(w.recovered().is_empty());
    assert!(files(&d.work).is_empty());
    assert!(finished(&d.dest).is_empty());
}

#[test]
fn region_wrapping() {
    let d = dirs();
    let mut cfg = config(&d);
    cfg.wrap = Some(RegionWrap {
        region: "region".into(),
        cell: "cell\"1".into(),
    });
    let mut w = ArchiveWriter::open(cfg).unwrap();
    // a pretty-printed record is compacted to one line
    let pretty = b"{\n  \"message_id\": \"m00000\",\n  \"payload\": {\"a\": [1, 2]}\n}\n";
    w.write_batch(&[pretty, &record(1)]).unwrap();
    let text = fs::read_to_string(w.working_file().unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"region":"region","cell":"cell\"1","notification":{"message_id":"m00000","payload":{"a":[1,2]}}}"#
    );
    let done = w.roll().unwrap().unwrap();
    let values = read_jsonl_gz(&done).unwrap();
    assert_eq!(values[1]["region"], "region");
    assert_eq!(values[1]["cell"], "cell\"1");
    assert_eq!(message_ids(&[done]), expected_ids(2));
}

#[test]
fn invalid_records_are_rejected_and_nothing_is_written() {
    let d = dirs();
    let mut w = ArchiveWriter::open(config(&d)).unwrap();
    let cases: &[&[u8]] = &[b"", b"not json", b"{\"a\":", b"{} {}", b"\xff"];
    for bad in cases {
        let err = w.write_batch(&[&record(0), bad]).unwrap_err();
        assert!(
            matches!(err, ArchiveError::InvalidRecord { index: 1, .. }),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(w.working_size(), 0);
    assert_eq!(w.roll().unwrap(), None);
}

#[test]
fn write_errors_are_returned() {
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut w = ArchiveWriter::open_with_clock(config(&d), clock.clock()).unwrap();
    // the working file name is taken by a directory: opening it fails
    fs::create_dir_all(
        d.work
            .join("test--20140201-1391212800-region-cell1-stv3-working.json"),
    )
    .unwrap();
    let err = w.write_batch(&[&record(0)]).unwrap_err();
    assert!(matches!(err, ArchiveError::Io { .. }), "{err}");
    assert!(err.to_string().contains("open working file"), "{err}");
    // an unwritable destination makes the roll fail; the data stays durable and is rolled later
    let d2 = dirs();
    let clock2 = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut cfg = config(&d2);
    cfg.roll_size_bytes = 1;
    let mut w = ArchiveWriter::open_with_clock(cfg, clock2.clock()).unwrap();
    fs::remove_dir_all(&d2.dest).unwrap();
    fs::write(&d2.dest, b"a file, not a directory").unwrap();
    w.write_batch(&[&record(0)]).unwrap();
    assert!(w.last_roll_error().is_some());
    assert!(w.working_size() > 0);
    fs::remove_file(&d2.dest).unwrap();
    fs::create_dir_all(&d2.dest).unwrap();
    // automatic rolls back off for a minute after a failure (each attempt re-reads the file)
    w.write_batch(&[&record(1)]).unwrap();
    assert_eq!(w.tick().unwrap(), None);
    assert!(finished(&d2.dest).is_empty());
    clock2.advance(TimeDelta::seconds(61));
    w.write_batch(&[&record(2)]).unwrap();
    assert_eq!(w.last_roll_error(), None);
    assert_eq!(message_ids(&finished(&d2.dest)), expected_ids(3));
}

#[test]
fn same_name_never_overwrites() {
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut cfg = config(&d);
    cfg.filename_template = "fixed.json".into();
    let mut w = ArchiveWriter::open_with_clock(cfg, clock.clock()).unwrap();
    for i in 0..3 {
        w.write_batch(&[&record(i)]).unwrap();
        w.roll().unwrap();
    }
    assert_eq!(
        files(&d.dest),
        vec!["fixed-1.json.gz", "fixed-2.json.gz", "fixed.json.gz"]
    );
}

#[test]
fn shoebox_section_keys() {
    let cfg = ArchiveConfig::from_shoebox_section([
        ("working_directory", "/etc/stv3/cell1/events"),
        ("destination_folder", "/etc/stv3/tarballs"),
        (
            "filename_template",
            "%Y%m%d-[[TIMESTAMP]]-region-cell1-stv3-[[CRC]].json",
        ),
        (
            "roll_manager",
            "shoebox.roll_manager:WritingJSONRollManager",
        ),
        ("roll_size_mb", "30"),
        ("wrap_payload_with_region", "True"),
        ("wrap_region", "region"),
        ("wrap_cell", "cell1"),
    ])
    .unwrap();
    assert_eq!(
        cfg.working_directory,
        PathBuf::from("/etc/stv3/cell1/events")
    );
    assert_eq!(cfg.destination_folder, PathBuf::from("/etc/stv3/tarballs"));
    assert_eq!(cfg.roll_size_bytes, 30 << 20);
    assert_eq!(cfg.roll_minutes, 60);
    assert_eq!(
        cfg.wrap,
        Some(RegionWrap {
            region: "region".into(),
            cell: "cell1".into()
        })
    );
    // defaults; "true" is not "True" in the original
    let cfg = ArchiveConfig::from_shoebox_section([("wrap_payload_with_region", "true")]).unwrap();
    assert_eq!(cfg.filename_template, "events_%Y_%m_%d_%X_%f.dat");
    assert_eq!(cfg.roll_size_bytes, 1000 << 20);
    assert_eq!(cfg.wrap, None);
    let cfg = ArchiveConfig::from_shoebox_section([("wrap_payload_with_region", "True")]).unwrap();
    assert_eq!(
        cfg.wrap,
        Some(RegionWrap {
            region: "n/a".into(),
            cell: "n/a".into()
        })
    );
    for (k, v) in [
        ("roll_manager", "shoebox.roll_manager:WritingRollManager"),
        ("roll_size_mb", "lots"),
        ("roll_minutes", "-1"),
        ("filename_template", "%Q"),
        ("writer_id", "a/b"),
        ("writer_id", "a--b"),
    ] {
        let err = ArchiveConfig::from_shoebox_section([(k, v)]).unwrap_err();
        assert!(matches!(err, ArchiveError::Config(_)), "{k}={v}: {err}");
    }
}

#[test]
fn many_batches_many_rolls_read_back_in_order() {
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut cfg = config(&d);
    cfg.roll_size_bytes = 10_000;
    let mut w = ArchiveWriter::open_with_clock(cfg, clock.clock()).unwrap();
    let recs: Vec<Vec<u8>> = (0..2000).map(record).collect();
    for chunk in recs.chunks(37) {
        clock.advance(TimeDelta::milliseconds(1));
        let refs: Vec<&[u8]> = chunk.iter().map(|r| r.as_slice()).collect();
        w.write_batch(&refs).unwrap();
    }
    w.roll().unwrap();
    let done = finished(&d.dest);
    assert!(done.len() > 10);
    // names sort by [[TIMESTAMP]] within the day; read them in roll order
    assert_eq!(message_ids(&done), expected_ids(2000));
}

/// Disk full: the working file is /dev/full (every write fails with ENOSPC). The error is
/// returned, never a pretended success, and the writer keeps refusing while it cannot cut
/// the partial record.
#[test]
fn disk_full_is_an_error() {
    if !Path::new("/dev/full").exists() {
        panic!("this test needs /dev/full (Linux)");
    }
    let d = dirs();
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut w = ArchiveWriter::open_with_clock(config(&d), clock.clock()).unwrap();
    std::os::unix::fs::symlink(
        "/dev/full",
        d.work
            .join("test--20140201-1391212800-region-cell1-stv3-working.json"),
    )
    .unwrap();
    for _ in 0..2 {
        let err = w.write_batch(&[&record(0)]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::Io { .. }), "{msg}");
        assert!(msg.contains("working.json"), "{msg}");
    }
    assert_eq!(w.working_size(), 0);
}

/// A writer with background rolls at `roll_size_bytes`, on a clock that moves only when told.
fn background_writer(d: &Dirs, roll_size_bytes: u64) -> (FakeClock, ArchiveWriter) {
    let clock = FakeClock::new(ts(2014, 2, 1, 0, 0, 0, 0));
    let mut cfg = config(d);
    cfg.roll_size_bytes = roll_size_bytes;
    let w = ArchiveWriter::open_with_clock(cfg, clock.clock())
        .unwrap()
        .with_background_rolls();
    (clock, w)
}

/// Background rolls: the batch never compresses; every record ends up in exactly one
/// finished file, in order, once the rolls in flight are waited for; a working file
/// name still being compressed is never appended to.
#[test]
fn background_rolls_lose_and_repeat_nothing() {
    let d = dirs();
    // a frozen clock: every working file renders the same name
    let (_clock, mut w) = background_writer(&d, 10_000);
    let recs: Vec<Vec<u8>> = (0..2000).map(record).collect();
    for chunk in recs.chunks(37) {
        let refs: Vec<&[u8]> = chunk.iter().map(|r| r.as_slice()).collect();
        w.write_batch(&refs).unwrap();
        assert!(w.working_size() < 10_000 + 37 * 200);
    }
    w.roll().unwrap();
    assert!(w.wait_for_rolls().unwrap().is_none(), "roll() waited");
    let done = finished(&d.dest);
    assert!(done.len() > 10, "{} files", done.len());
    let mut ids = message_ids(&done);
    ids.sort();
    let mut want = expected_ids(2000);
    want.sort();
    assert_eq!(ids, want);
    assert!(files(&d.work).is_empty(), "{:?}", files(&d.work));
}

/// A background roll that fails keeps its working file, reports the error, and is
/// retried after the back-off; nothing is lost or doubled.
#[test]
fn failed_background_roll_is_retried() {
    let d = dirs();
    let (clock, mut w) = background_writer(&d, 1);
    fs::remove_dir_all(&d.dest).unwrap();
    fs::write(&d.dest, b"a file, not a directory").unwrap();
    w.write_batch(&[&record(0)]).unwrap();
    assert!(w.wait_for_rolls().is_err());
    assert!(w.last_roll_error().is_some());
    fs::remove_file(&d.dest).unwrap();
    fs::create_dir_all(&d.dest).unwrap();
    // backing off: the next write goes to a new working file, nothing is rolled
    clock.advance(TimeDelta::seconds(1));
    w.write_batch(&[&record(1)]).unwrap();
    w.wait_for_rolls().unwrap();
    assert!(finished(&d.dest).is_empty());
    assert_eq!(files(&d.work).len(), 2, "{:?}", files(&d.work));
    clock.advance(TimeDelta::seconds(61));
    w.write_batch(&[&record(2)]).unwrap();
    w.roll().unwrap();
    assert_eq!(w.last_roll_error(), None);
    let mut ids = message_ids(&finished(&d.dest));
    ids.sort();
    assert_eq!(ids, expected_ids(3));
    assert!(files(&d.work).is_empty(), "{:?}", files(&d.work));
}
