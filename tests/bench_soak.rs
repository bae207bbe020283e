//! The CI soak: `stv3ctl bench --duration 180` on the real RabbitMQ and MariaDB
//! (2 cells, 2 yagi-events, 2 pipeline-workers, the API), at a fixed rate.
//! Asserts what the bench measured: every published notification acked and
//! archived once, every latency sample visible in the API, no process's RSS
//! more than 20 % above its post-warm-up level (10 % in the 30-minute soak), and a result.json + plot.png.
//! The 30-minute soak is the same command with `--duration 1800` (BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use stv3_testsupport::{free_port, require, scratch_name, Service};

/// A free port p with p+1..p+9 free too (the region's ops addresses).
fn free_port_range() -> u16 {
    loop {
        let p = free_port();
        if p < 65_000 && (1..10).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok())
        {
            return p;
        }
    }
}

#[test]
fn three_minute_soak_loses_nothing_and_keeps_memory_flat() {
    let Some(amqp) = require(Service::RabbitMq, "bench_soak") else {
        return;
    };
    let Some(mysql) = require(Service::MariaDb, "bench_soak") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let db = scratch_name("soak");
    // The ops range first, then an API port outside it (neither is held open
    // meanwhile, so two free ports can coincide).
    let ops_base = free_port_range();
    let api_port = loop {
        let p = free_port();
        if !(ops_base..ops_base + 10).contains(&p) {
            break p;
        }
    };
    let api = format!("127.0.0.1:{api_port}");
    let status = Command::new(env!("CARGO_BIN_EXE_stv3ctl"))
        .args(["bench", "--debug", "--duration", "180", "--rate", "200"])
        // 20 % here, 10 % in the 30-minute soak: debug binaries over 3 minutes are noisier
        // (allocator high-water marks); this run guards against gross leaks.
        .args(["--warmup", "60", "--max-growth-pct", "20"])
        .args(["--raw-baseline", "false", "--drop-databases"])
        .args(["--amqp", &amqp, "--mysql", &mysql, "--database", &db])
        .args(["--api", &api])
        .args(["--ops-port-base", &ops_base.to_string()])
        .arg("--out")
        .arg(out.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    let result_path: PathBuf = out.path().join("result.json");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (stv3ctl bench exited with {status})",
                result_path.display()
            )
        }))
        .unwrap();
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    let published = n("published");
    assert_eq!(published, 36_000, "180 s x 200/s");
    assert_eq!(n("acked"), published, "every notification acked");
    assert_eq!(n("archived"), published, "each archived once");
    assert_eq!(n("duplicates"), 0);
    assert_eq!(n("quarantined"), 0);
    // Every event yagi-event stored is in the database, plus the pipelines' verdicts.
    assert!(n("events_in_db") >= n("stored"), "{r}");
    assert!(n("events_in_db") > published / 2, "{r}");
    assert_eq!(r["latency"]["missing"], 0, "{}", r["latency"]);
    assert!(
        r["latency"]["samples"].as_u64().unwrap() >= 100,
        "{}",
        r["latency"]
    );
    let soak = &r["soak"];
    assert_eq!(soak["pass"], true, "memory grew after warm-up: {soak}");
    let judged: Vec<&str> = soak["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for want in [
        "api",
        "pipeline-1",
        "pipeline-2",
        "yagi-cell1",
        "yagi-cell2",
    ] {
        assert!(judged.contains(&want), "{want} not judged: {judged:?}");
    }
    assert!(status.success(), "stv3ctl bench failed ({status})");
    let png = std::fs::read(Path::new(out.path()).join("plot.png")).expect("plot.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "plot.png is a PNG");
}
