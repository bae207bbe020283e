//! Hostile input (issue #9): the notification parser (poison detection, oslo
//! v2 unwrap, the archive line) and the yagi.conf loader (ini reader +
//! typed config) never panic, hang or explode.
//!
//! * proptest: arbitrary bytes and structure-aware mutants of a notification
//!   through `parse::parse` (a good notification must also give a one-line
//!   archive line that is valid JSON); arbitrary text and line/byte mutants
//!   of a yagi.conf through `YagiConfig::parse` (every error names the file).
//! * corpus: `tests/hostile/yagi_conf/*.conf` here, and the notification
//!   corpus of the distiller (`core/distiller/tests/hostile/notifications`),
//!   each with its expected outcome in the tables below. To add a case, drop
//!   a file in the folder and add a row (the test fails until every file has
//!   one).

#[path = "../../testsupport/hostile/mod.rs"]
mod hostile;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{json, Value};
use stv3_ingest::config::YagiConfig;
use stv3_ingest::ini::Ini;
use stv3_ingest::parse::{archive_line, parse, Wrap};

const MAX_BYTES: usize = 4 << 20;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seed_notification() -> Value {
    json!({
        "event_type": "compute.instance.create.end",
        "message_id": "7f1e2d3c-0000-4000-8000-000000000001",
        "timestamp": "2015-03-01 18:01:00.123456",
        "publisher_id": "compute.host-1",
        "_context_request_id": "req-1",
        "payload": {"tenant_id": "t1", "instance_id": "i1", "memory_mb": 2048, "state": "active"}
    })
}

/// Parse one body; when good, the archive line (plain and wrapped) must be
/// one line of valid JSON holding the same message_id.
fn parse_class(body: &[u8]) -> String {
    match parse(body, MAX_BYTES) {
        Err(p) => format!("poison:{}", p.reason.code()),
        Ok(n) => {
            for wrap in [
                Wrap::default(),
                Wrap {
                    enabled: true,
                    region: "r\"\u{0}1".into(),
                    cell: "c\n1".into(),
                },
            ] {
                let line = archive_line(body, &n, &wrap, false);
                assert!(!line.contains('\n'), "archive line has a newline");
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("archive line is not JSON ({e}): {line:.200}"));
                let inner = if wrap.enabled { &v["notification"] } else { &v };
                assert_eq!(inner["message_id"].as_str(), Some(n.message_id.as_str()));
            }
            if n.unwrapped {
                "ok:unwrapped".into()
            } else {
                "ok".into()
            }
        }
    }
}

const GOOD_CONF: &str = include_str!("hostile/yagi_conf/good.conf");

/// Load a yagi.conf text as if read from `path`; every error names the file.
fn conf_class(text: &str, path: &Path) -> String {
    let file = path.display().to_string();
    // the ini layer alone, with every value interpolated
    if let Ok(ini) = Ini::parse(text) {
        for (name, sec) in &ini.sections {
            for key in sec.entries.keys() {
                let _ = ini.get(name, key);
            }
        }
    }
    match YagiConfig::parse(text, path) {
        Ok(c) => format!("ok:{}", c.consumers.len()),
        Err(errs) => {
            assert!(!errs.0.is_empty(), "an Err with no errors");
            for e in &errs.0 {
                assert!(
                    e.to_string().starts_with(&file),
                    "error does not name the file: {e}"
                );
            }
            let mut lines: Vec<String> = errs
                .0
                .iter()
                .map(|e| e.line.map_or("-".to_string(), |l| l.to_string()))
                .collect();
            lines.dedup();
            format!("err:{}", lines.join(","))
        }
    }
}

fn conf_path() -> PathBuf {
    PathBuf::from("/nonexistent/hostile/yagi.conf")
}

proptest! {
    #![proptest_config(hostile::config())]

    #[test]
    fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_class(&bytes);
    }

    #[test]
    fn mutated_notifications_never_panic(doc in hostile::json_mutant(seed_notification())) {
        let text = serde_json::to_string(&doc).unwrap();
        parse_class(text.as_bytes());
        let env = json!({"oslo.version": "2.0", "oslo.message": text});
        parse_class(serde_json::to_string(&env).unwrap().as_bytes());
        // an envelope inside an envelope
        let env2 = json!({"oslo.version": "2.0", "oslo.message": env.to_string()});
        parse_class(env2.to_string().as_bytes());
    }

    #[test]
    fn byte_mutated_notifications_never_panic(
        bytes in hostile::byte_mutant(serde_json::to_vec_pretty(&seed_notification()).unwrap())
    ) {
        parse_class(&bytes);
    }

    #[test]
    fn arbitrary_conf_never_panics(text in prop_oneof![
        any::<String>(),
        hostile::line_mutant(GOOD_CONF),
        hostile::byte_mutant(GOOD_CONF.as_bytes().to_vec())
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        conf_class(&text, &conf_path());
    }
}

/// Notification bodies through `parse::parse` (max 4 MiB): `ok`,
/// `ok:unwrapped` (oslo v2) or `poison:<reason code>`.
const NOTIFICATIONS: &[(&str, &str)] = &[
    ("bom.json", "poison:invalid_json"),
    ("control_chars_raw.json", "poison:invalid_json"),
    ("deep_array_10000.json", "poison:invalid_json"),
    ("deep_object_10000.json", "poison:invalid_json"),
    ("deep_oslo_message_10000.json", "poison:bad_oslo_envelope"),
    ("deep_payload_126.json", "ok"),
    // 127 levels: serde_json reads it, but its region-wrapped archive line
    // (128 levels) could not be read back
    ("deep_payload_127.json", "poison:invalid_json"),
    ("duplicate_keys.json", "ok"),
    ("empty.json", "poison:invalid_json"),
    ("event_type_number.json", "poison:missing_event_type"),
    ("float_1e999.json", "poison:invalid_json"),
    ("int_2_64_plus_1.json", "ok"),
    ("invalid_utf8.json", "poison:not_utf8"),
    ("launched_at_zone_overflow.json", "ok"),
    ("lone_surrogate.json", "poison:invalid_json"),
    ("many_members_10000.json", "ok"),
    ("message_id_51_unicode.json", "poison:bad_message_id"),
    ("missing_message_id.json", "poison:missing_message_id"),
    ("nan_infinity.json", "poison:invalid_json"),
    ("not_an_object.json", "poison:not_an_object"),
    ("nul_bytes.json", "ok"),
    ("oslo_good_envelope.json", "ok:unwrapped"),
    ("oslo_message_array.json", "poison:bad_oslo_envelope"),
    ("oslo_message_not_json.json", "poison:bad_oslo_envelope"),
    ("oslo_message_number.json", "poison:bad_oslo_envelope"),
    ("oslo_nested_envelope.json", "poison:missing_message_id"),
    ("string_1mb.json", "ok"),
    ("timestamp_negative_number.json", "ok"),
    ("timestamp_negative_year.json", "ok"),
    ("timestamp_year_0_zone.json", "ok"),
    ("timestamp_year_99999.json", "ok"),
    ("timestamp_zone_overflow.json", "ok"),
    ("two_documents.json", "poison:invalid_json"),
];

#[test]
fn hostile_notifications() {
    hostile::run_corpus(
        &root().join("../distiller/tests/hostile/notifications"),
        NOTIFICATIONS,
        |_, bytes| parse_class(bytes),
    );
}

/// yagi.conf files through `YagiConfig::parse`: `ok:N` (N consumers) or
/// `err:L,..` (the lines of the errors, repeats collapsed; `-` for an error
/// without a line, which only a missing section or key has).
const YAGI_CONF: &[(&str, &str)] = &[
    // bad `%` escape in the amqp_url, at its line
    ("amqp_url_hostile.conf", "err:31"),
    // a BOM is not stripped (neither did Python's ConfigParser): line 1
    ("bom.conf", "err:1"),
    ("crlf_and_continuations.conf", "ok:1"),
    ("duplicate_keys_and_sections.conf", "err:31"),
    // no [consumers] section at all
    ("empty.conf", "err:-"),
    ("good.conf", "ok:1"),
    // 10 levels x 10 references: stops at 1 MiB, at the key's line
    ("interpolation_bomb.conf", "err:9"),
    ("interpolation_loop.conf", "err:9"),
    // YagiConfig::load cannot read it; the error names the file
    ("invalid_utf8.conf", "err:unreadable"),
    ("key_before_section.conf", "err:1"),
    ("long_line_1mb.conf", "ok:1"),
    // each missing [consumer:qN] section is reported at the queues line
    ("many_consumers_1000.conf", "err:13"),
    ("many_colons_semicolons.conf", "ok:1"),
    ("max_messages_overflow.conf", "err:20"),
    ("negative_and_nan_timers.conf", "err:3,5,6,7"),
    ("nul_bytes.conf", "ok:1"),
    ("only_comments.conf", "err:-"),
    ("port_2_64_plus_1.conf", "err:10"),
    ("unterminated_section.conf", "err:22"),
    ("update_timer_infinity.conf", "err:3"),
];

#[test]
fn hostile_yagi_conf() {
    hostile::run_corpus(
        &root().join("tests/hostile/yagi_conf"),
        YAGI_CONF,
        |path, bytes| match std::str::from_utf8(bytes) {
            Ok(text) => conf_class(text, Path::new(path)),
            // what YagiConfig::load does with it
            Err(_) => match YagiConfig::load(Path::new(path)) {
                Ok(_) => "ok-despite-invalid-utf8".into(),
                Err(e) => {
                    assert!(e.to_string().starts_with(path), "{e}");
                    "err:unreadable".into()
                }
            },
        },
    );
}
