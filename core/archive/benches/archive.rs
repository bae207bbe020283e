//! Archive writer throughput: fsynced batches of realistic notifications, and the roll
//! (sha256 + gzip + rename) of a 16 MiB working file. Baseline in the same run: plain
//! `write_all` + `sync_data` of the same bytes (the floor any durable writer pays).
use std::fs::OpenOptions;
use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stv3_archive::{ArchiveConfig, ArchiveWriter, RegionWrap};

/// A ~1.2 KB nova-like notification.
fn notification(i: usize) -> Vec<u8> {
    let pad = "x".repeat(700);
    format!(
        concat!(
            "{{\"event_type\":\"compute.instance.exists\",\"message_id\":\"{:08}-aaaa-bbbb-cccc-dddddddddddd\",",
            "\"timestamp\":\"2014-08-01 02:10:23.000550\",\"publisher_id\":\"compute.host-1\",\"priority\":\"INFO\",",
            "\"payload\":{{\"tenant_id\":\"t1\",\"instance_id\":\"i-{}\",\"instance_type\":\"m1.small\",",
            "\"audit_period_beginning\":\"2014-08-01 00:00:00\",\"audit_period_ending\":\"2014-08-02 00:00:00\",",
            "\"state\":\"active\",\"memory_mb\":2048,\"disk_gb\":20,\"image_meta\":{{\"os\":\"{}\"}}}}}}"
        ),
        i, i, pad
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let recs: Vec<Vec<u8>> = (0..100).map(notification).collect();
    let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
    let bytes: usize = recs.iter().map(|r| r.len() + 1).sum();
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();

    let mut g = c.benchmark_group("archive");
    g.throughput(Throughput::Elements(100));
    let mut cfg = ArchiveConfig::new(dir.path().join("w1"), dir.path().join("d1"));
    cfg.writer_id = "bench".into();
    let mut w = ArchiveWriter::open(cfg.clone()).unwrap();
    g.bench_function("write_batch 100 x 1.2KB (fsync)", |b| {
        b.iter(|| w.write_batch(&refs).unwrap())
    });
    let mut wrapped = cfg.clone();
    wrapped.working_directory = dir.path().join("w2");
    wrapped.wrap = Some(RegionWrap {
        region: "r".into(),
        cell: "c1".into(),
    });
    let mut w2 = ArchiveWriter::open(wrapped).unwrap();
    g.bench_function("write_batch 100 x 1.2KB wrapped (fsync)", |b| {
        b.iter(|| w2.write_batch(&refs).unwrap())
    });
    let mut buf = Vec::with_capacity(bytes);
    for r in &recs {
        buf.extend_from_slice(r);
        buf.push(b'\n');
    }
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("raw.json"))
        .unwrap();
    g.bench_function("baseline write_all+sync_data 100 x 1.2KB", |b| {
        b.iter(|| {
            raw.write_all(&buf).unwrap();
            raw.sync_data().unwrap()
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("write_batch 1 x 1.2KB (fsync)", |b| {
        b.iter(|| w.write_batch(&refs[..1]).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("archive roll");
    g.sample_size(10);
    let per_roll = (16 << 20) / bytes;
    g.throughput(Throughput::Bytes((per_roll * bytes) as u64));
    let mut rcfg = cfg.clone();
    rcfg.working_directory = dir.path().join("w3");
    rcfg.destination_folder = dir.path().join("d3");
    rcfg.filename_template = "bench-[[TIMESTAMP]]-[[CRC]].json".into();
    let mut w3 = ArchiveWriter::open(rcfg).unwrap();
    g.bench_function("roll 16 MiB (sha256 + gzip + fsync + rename)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..per_roll {
                    w3.write_batch(&refs).unwrap();
                }
                let start = std::time::Instant::now();
                w3.roll().unwrap().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
