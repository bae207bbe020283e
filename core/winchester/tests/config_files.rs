//! Loading real config files: the original winchester `etc/` files unchanged
//! (including the `map_distingushed_by` typo), the oracle's usage triggers,
//! and winchester.yaml keys, defaults and errors.

use std::path::{Path, PathBuf};

use stv3_winchester::config::load_triggers;
use stv3_winchester::WinchesterConfig;

const ORIGINAL_ETC: &str = "/tmp/stv3-oracle-dl/src/winchester-0.56/etc";

fn fixture(name: &str) -> Option<PathBuf> {
    let p = Path::new(ORIGINAL_ETC).join(name);
    if p.exists() {
        Some(p)
    } else if std::env::var("STV3_TEST_REQUIRE_ALL").is_ok() {
        panic!(
            "{} is missing (run /work/shared/oracle/setup.sh)",
            p.display()
        );
    } else {
        eprintln!("SKIPPED: {} missing", p.display());
        None
    }
}

#[test]
fn original_winchester_yaml_loads_unchanged() {
    let Some(p) = fixture("winchester.yaml") else {
        return;
    };
    let cfg = WinchesterConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.database.url,
        "mysql://winchester:testpasswd@localhost/winchester"
    );
    assert_eq!(cfg.config_path, vec![PathBuf::from("/home/winchester/etc")]);
    assert_eq!(cfg.statistics_period, 10.0);
    assert_eq!(cfg.pipeline_worker_batch_size, 1000);
    assert_eq!(cfg.pipeline_worker_delay, 10.0);
    assert!(!cfg.catch_all_notifications);
    assert!(cfg.purge_completed_streams, "default true");
    assert!(!cfg.trim_events);
    assert_eq!(cfg.trim_events_batch_size, 100);
    assert_eq!(cfg.log_level.as_deref(), Some("debug"));
    assert_eq!(
        cfg.pipeline_handlers["logger"],
        "winchester.pipeline_handler:LoggingHandler"
    );
    // /home/winchester/etc does not exist: the files are found next to winchester.yaml.
    assert_eq!(
        cfg.trigger_definitions.as_deref(),
        Some(Path::new(ORIGINAL_ETC).join("triggers.yaml").as_path())
    );
    assert_eq!(
        cfg.distiller_config.as_deref(),
        Some(
            Path::new(ORIGINAL_ETC)
                .join("event_definitions.yaml")
                .as_path()
        )
    );
    assert_eq!(
        cfg.pipeline_config.as_deref(),
        Some(Path::new(ORIGINAL_ETC).join("pipelines.yaml").as_path())
    );
    let triggers = cfg.load_triggers().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(triggers.len(), 1);
}

#[test]
fn original_triggers_yaml_with_typo_loads() {
    let Some(p) = fixture("triggers.yaml") else {
        return;
    };
    let triggers = load_triggers(&p).unwrap_or_else(|e| panic!("{e}"));
    let t = &triggers[0];
    assert_eq!(t.name, "test_trigger");
    assert_eq!(t.debug_level, 2);
    assert_eq!(t.distinguished_by.len(), 2);
    assert_eq!(t.distinguished_by[1].name, "timestamp");
    assert!(t.distinguished_by[1].expr.is_some());
    assert_eq!(t.expiration.source(), "$last + 1h");
    assert_eq!(t.fire_pipeline.as_deref(), Some("test_pipeline"));
    assert_eq!(t.expire_pipeline.as_deref(), Some("test_expire_pipeline"));
    assert_eq!(t.match_criteria.len(), 2);
    // The misspelled key is honoured (the original silently ignored it).
    assert_eq!(
        t.match_criteria[1].map_distinguished_by["timestamp"],
        "audit_period_beginning"
    );
    assert_eq!(t.fire_criteria.len(), 1);
}

#[test]
fn oracle_usage_triggers_load() {
    let p = Path::new("/work/shared/oracle/configs/triggers_usage.yaml");
    if !p.exists() {
        eprintln!("SKIPPED: {} missing", p.display());
        return;
    }
    let triggers = load_triggers(p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(triggers[0].name, "usage_trigger");
    assert_eq!(
        triggers[0].match_criteria[1].map_distinguished_by["timestamp"],
        "audit_period_beginning"
    );
}

fn load_str(text: &str) -> Result<WinchesterConfig, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("triggers.yaml"), "[]\n").unwrap();
    let p = dir.path().join("winchester.yaml");
    std::fs::write(&p, text).unwrap();
    WinchesterConfig::load(&p).map_err(|e| {
        let s = e.to_string();
        s.replace(&dir.path().display().to_string(), "<dir>")
    })
}

#[test]
fn winchester_yaml_errors() {
    for (text, expected) in [
        (
            "database: {}\n",
            "<dir>/winchester.yaml:1: database.url: required key is missing",
        ),
        (
            "statistics_period: 5\n",
            "<dir>/winchester.yaml:1: database: required key is missing",
        ),
        (
            "database: {url: \"postgres://x/y\"}\n",
            "<dir>/winchester.yaml:1: database.url: invalid database url",
        ),
        (
            "database: {url: \"sqlite://\"}\npipeline_worker_batch_size: lots\n",
            "<dir>/winchester.yaml:2: pipeline_worker_batch_size: expected a positive integer",
        ),
        (
            "database: {url: \"sqlite://\"}\ntrim_events_age: \"$timestamp -\"\n",
            "<dir>/winchester.yaml:2: trim_events_age: invalid timex",
        ),
        (
            "database: {url: \"sqlite://\"}\ntrigger_definitions: nope.yaml\n",
            "<dir>/winchester.yaml:2: trigger_definitions: file \"nope.yaml\" not found",
        ),
        (
            "database:\n  url: \"sqlite://\"\n  max_connections: 0\n",
            "<dir>/winchester.yaml:3: max_connections: expected a positive integer",
        ),
        (
            "database:\n  url: \"sqlite://\"\n  max_connections: many\n",
            "<dir>/winchester.yaml:3: max_connections: expected a positive integer",
        ),
        ("database: [1\n", "<dir>/winchester.yaml"),
    ] {
        let err = load_str(text).unwrap_err();
        assert!(
            err.starts_with(expected),
            "{text:?}\n got: {err}\nwant: {expected}"
        );
    }
}

#[test]
fn winchester_yaml_keys() {
    let cfg = load_str(
        "config_path: [/nonexistent, .]\ndatabase: {url: \"sqlite:///w.db\", echo_sql: true, max_connections: 3}\n\
         trigger_definitions: triggers.yaml\npurge_completed_streams: false\ntrim_events: true\n\
         trim_events_age: \"$timestamp - 2d\"\ntrim_events_batch_size: 7\nstatistics_period: 2.5\n\
         pipeline_worker_lease: 30\ntime_sync_endpoint: http://127.0.0.1:8001\n",
    )
    .unwrap();
    assert!(cfg.database.echo_sql);
    assert_eq!(cfg.database.max_connections, 3);
    assert!(!cfg.purge_completed_streams);
    assert!(cfg.trim_events);
    assert_eq!(cfg.trim_events_batch_size, 7);
    assert_eq!(cfg.statistics_period, 2.5);
    assert_eq!(cfg.pipeline_worker_lease, 30.0);
    assert_eq!(
        cfg.time_sync_endpoint.as_deref(),
        Some("http://127.0.0.1:8001")
    );
    assert!(cfg.trigger_definitions.is_some());
    let now = stv3_event::parse_timestamp("2015-03-05T00:00:00Z").unwrap();
    assert_eq!(
        cfg.trim_cutoff(now).unwrap(),
        stv3_event::parse_timestamp("2015-03-03T00:00:00Z").unwrap()
    );
    assert!(load_str("database: {url: \"sqlite://\"}\n")
        .unwrap()
        .trigger_definitions
        .is_none());
}
