//! timex parse and evaluation throughput (the expressions winchester evaluates per event).
use std::collections::BTreeMap;

use chrono::NaiveDate;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use stv3_timex::{parse, Timestamp};

const EXPRS: &[&str] = &[
    "$last + 1h",
    "day($launched_at)",
    "($a to $b) @ 6h",
    "day - 6h",
];

fn bench(c: &mut Criterion) {
    let t: Timestamp = NaiveDate::from_ymd_opt(2014, 8, 1)
        .unwrap()
        .and_hms_micro_opt(2, 10, 23, 550)
        .unwrap();
    let vars: BTreeMap<String, Timestamp> = ["last", "launched_at", "a", "b", "timestamp"]
        .iter()
        .map(|n| (n.to_string(), t))
        .collect();
    for src in EXPRS {
        c.bench_function(&format!("parse {src}"), |b| {
            b.iter(|| parse(black_box(src)).unwrap())
        });
        let e = parse(src).unwrap();
        c.bench_function(&format!("eval {src}"), |b| {
            b.iter(|| e.eval(black_box(&vars)).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
