//! Distiller throughput, JSON parsing included (bytes -> Event), on the
//! committed nova sample set with etc/event_definitions.yaml, and on the
//! oracle fixture with the original definitions.
//!
//! `STV3_BENCH_INPUT=/tmp/notifs.jsonl` replaces the sample set (e.g. the
//! oracle's gen.py output, to compare with `distill.py --bench`).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stv3_distiller::Distiller;

fn lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn bench_set(c: &mut Criterion, name: &str, defs: &Path, input: &Path) {
    let d = Distiller::from_file(defs, false).unwrap();
    let notifs = lines(input);
    let mut g = c.benchmark_group("distill_bytes");
    g.throughput(Throughput::Elements(notifs.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut events = 0usize;
            for n in &notifs {
                if d.distill_bytes(n).unwrap().event().is_some() {
                    events += 1;
                }
            }
            events
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("STV3_BENCH_INPUT") {
        Some(input) => {
            let defs = std::env::var_os("STV3_BENCH_DEFS")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("tests/data/oracle/event_definitions.yaml"));
            bench_set(c, "custom_input", &defs, Path::new(&input));
        }
        None => {
            bench_set(
                c,
                "nova_sample",
                &root.join("etc/event_definitions.yaml"),
                &root.join("tests/data/sample/nova.jsonl"),
            );
            bench_set(
                c,
                "oracle_fixture",
                &root.join("tests/data/oracle/event_definitions.yaml"),
                &root.join("tests/data/oracle/notifications.jsonl"),
            );
        }
    }
}

criterion_group!(distill, benches);
criterion_main!(distill);
