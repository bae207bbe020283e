//! The generated stream is deterministic and internally consistent.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDateTime, NaiveTime};
use serde_json::Value;
use stv3_notigen::{GenConfig, Generator};

fn ts(v: &Value) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d %H:%M:%S%.6f").unwrap()
}

fn stream(cfg: GenConfig, n: usize) -> Vec<Value> {
    Generator::new(cfg).take(n).collect()
}

/// 40 instances, 20 ops/h: about two simulated days, two EOD bursts.
fn two_days() -> &'static [Value] {
    static ALL: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        stream(
            GenConfig {
                ops_per_hour: 20.0,
                error_rate: 0.1,
                ..GenConfig::new(11, 40)
            },
            9_000,
        )
    })
}

#[test]
fn same_seed_same_stream() {
    let a: Vec<String> = stream(GenConfig::new(5, 30), 3000)
        .iter()
        .map(Value::to_string)
        .collect();
    let b: Vec<String> = stream(GenConfig::new(5, 30), 3000)
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(a, b);
    let c: Vec<String> = stream(GenConfig::new(6, 30), 3000)
        .iter()
        .map(Value::to_string)
        .collect();
    assert_ne!(a, c);
}

#[test]
fn envelope_shape() {
    let mut ids = HashSet::new();
    let mut last: Option<NaiveDateTime> = None;
    for n in stream(GenConfig::new(3, 20), 5000) {
        let t = ts(&n["timestamp"]);
        assert!(
            last.is_none_or(|l| l <= t),
            "timestamps go backwards at {n}"
        );
        last = Some(t);
        let mid = n["message_id"].as_str().unwrap();
        let u = uuid::Uuid::parse_str(mid).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert!(ids.insert(mid.to_string()), "duplicate message_id {mid}");
        let publisher = n["publisher_id"].as_str().unwrap();
        assert!(
            publisher.starts_with("compute.") || publisher.starts_with("scheduler."),
            "{publisher}"
        );
        assert!(publisher.split_once('.').unwrap().1.len() > 1);
        assert!(["INFO", "ERROR"].contains(&n["priority"].as_str().unwrap()));
        let ctx = n["_context_timestamp"].as_str().unwrap();
        assert!(NaiveDateTime::parse_from_str(ctx, "%Y-%m-%dT%H:%M:%S%.6f").unwrap() <= t);
        assert_eq!(n["timestamp"].as_str().unwrap().len(), 26);
        if n["event_type"]
            .as_str()
            .unwrap()
            .starts_with("compute.instance.")
        {
            let p = &n["payload"];
            for key in [
                "instance_id",
                "tenant_id",
                "memory_mb",
                "instance_type",
                "state",
                "launched_at",
                "deleted_at",
            ] {
                assert!(p.get(key).is_some(), "{key} missing in {n}");
            }
            assert!(p["image_meta"]["org.openstack__1__architecture"].is_string());
        }
    }
}

#[test]
fn oslo_v2_wraps_the_same_stream() {
    let plain = stream(GenConfig::new(9, 10), 200);
    let wrapped = stream(
        GenConfig {
            oslo_v2: true,
            ..GenConfig::new(9, 10)
        },
        200,
    );
    for (p, w) in plain.iter().zip(&wrapped) {
        assert_eq!(w["oslo.version"], "2.0");
        let inner: Value = serde_json::from_str(w["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(&inner, p);
    }
}

#[test]
fn instance_lifecycles_are_consistent() {
    let all = two_days();
    let mut created: HashSet<String> = HashSet::new();
    let mut deleted: HashMap<String, NaiveDateTime> = HashMap::new();
    let mut eod_by_day: HashMap<NaiveDateTime, HashSet<String>> = HashMap::new();
    let mut eod = 0;
    for n in all {
        let et = n["event_type"].as_str().unwrap();
        if !et.starts_with("compute.instance.") {
            continue;
        }
        let id = n["payload"]["instance_id"].as_str().unwrap().to_string();
        let t = ts(&n["timestamp"]);
        assert!(
            !deleted.contains_key(&id),
            "{et} for {id} after its delete.end"
        );
        if et == "compute.instance.update" && !created.contains(&id) {
            // the scheduler's first update precedes create.start
            assert_eq!(n["payload"]["state"], "building");
            continue;
        }
        if et == "compute.instance.create.start" {
            assert!(created.insert(id.clone()), "second create for {id}");
            continue;
        }
        assert!(created.contains(&id), "{et} for {id} before its create");
        match et {
            "compute.instance.delete.end" => {
                assert!(!n["payload"]["deleted_at"].as_str().unwrap().is_empty());
                deleted.insert(id, t);
            }
            "compute.instance.exists" => {
                let b = ts(&n["payload"]["audit_period_beginning"]);
                let e = ts(&n["payload"]["audit_period_ending"]);
                assert_eq!(
                    b.time(),
                    NaiveTime::MIN,
                    "audit period must start at midnight: {n}"
                );
                assert!(e <= t);
                if e.time() == NaiveTime::MIN {
                    eod += 1;
                    assert_eq!(
                        e - b,
                        chrono::Duration::days(1),
                        "EOD exists covers one day"
                    );
                    assert!(t - e < chrono::Duration::minutes(5));
                    assert!(
                        eod_by_day.entry(e).or_default().insert(id),
                        "two EOD exists for one instance and day"
                    );
                } else {
                    assert_eq!(
                        b.date(),
                        e.date(),
                        "non-EOD exists runs from midnight to now"
                    );
                }
            }
            _ => {}
        }
    }
    assert!(
        eod_by_day.len() >= 2,
        "expected two midnights, got {:?}",
        eod_by_day.keys()
    );
    assert!(eod > 50 && !deleted.is_empty());
    // every instance launched before a midnight and not deleted by then got its EOD exists
    for (midnight, ids) in &eod_by_day {
        let mut launched_before: HashSet<String> = HashSet::new();
        for n in all {
            let t = ts(&n["timestamp"]);
            if t >= *midnight {
                break;
            }
            match n["event_type"].as_str().unwrap() {
                "compute.instance.create.end" => {
                    launched_before
                        .insert(n["payload"]["instance_id"].as_str().unwrap().to_string());
                }
                "compute.instance.delete.start" => {
                    launched_before.remove(n["payload"]["instance_id"].as_str().unwrap());
                }
                _ => {}
            }
        }
        assert_eq!(&launched_before, ids, "EOD exists set for {midnight}");
    }
}

#[test]
fn every_operation_kind_appears() {
    let types: HashSet<String> = two_days()
        .iter()
        .map(|n| n["event_type"].as_str().unwrap().to_string())
        .collect();
    for t in [
        "scheduler.run_instance.start",
        "compute.instance.create.start",
        "compute.instance.create.end",
        "compute.instance.create.error",
        "compute.instance.resize.prep.start",
        "compute.instance.finish_resize.end",
        "compute.instance.resize.confirm.end",
        "compute.instance.rebuild.end",
        "compute.instance.power_off.end",
        "compute.instance.reboot.end",
        "compute.instance.snapshot.end",
        "compute.instance.delete.end",
        "compute.instance.exists",
        "compute.instance.update",
    ] {
        assert!(types.contains(t), "{t} never generated");
    }
}

#[test]
fn binary_writes_json_lines() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_notigen"))
        .args([
            "--seed",
            "4",
            "--count",
            "50",
            "--instances",
            "5",
            "--start",
            "2015-03-01 10:00:00",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50);
    let lib: Vec<String> = Generator::new(GenConfig {
        start: NaiveDateTime::parse_from_str("2015-03-01 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap(),
        ..GenConfig::new(4, 5)
    })
    .take(50)
    .map(|v| v.to_string())
    .collect();
    assert_eq!(lines, lib);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_notigen"))
        .args(["--start", "noon"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid start time"));
}
