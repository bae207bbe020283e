//! Hostile input (issue #9): the distiller never panics, hangs or explodes on
//! bad notifications or bad definitions.
//!
//! * proptest: arbitrary bytes and structure-aware mutants of a real
//!   notification through `distill_bytes` (and `distill` on what serde_json
//!   accepts: both paths must agree on the outcome class); arbitrary and
//!   mutated `fields` paths through the JSONPath compiler; arbitrary and
//!   line-mutated event_definitions.yaml through the loader (errors name the
//!   origin and a line).
//! * corpus: `tests/hostile/notifications/*.json` and
//!   `tests/hostile/definitions/*.yaml`, each with its expected outcome in
//!   the tables below. To add a case, drop a file in the folder and add a
//!   row (the test fails until every file has one).

#[path = "../../testsupport/hostile/mod.rs"]
mod hostile;

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};
use stv3_distiller::jsonpath::FieldPath;
use stv3_distiller::{DefinitionError, DistillError, Distiller, Outcome};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sample event_definitions.yaml shipped in the crate.
fn sample() -> &'static Distiller {
    static D: OnceLock<Distiller> = OnceLock::new();
    D.get_or_init(|| Distiller::from_file(root().join("etc/event_definitions.yaml"), true).unwrap())
}

fn seed_notification() -> Value {
    json!({
        "event_type": "compute.instance.resize.confirm.end",
        "message_id": "2d8a0e7b-0a3a-4f1e-9e3d-1b1e1b1e1b1e",
        "timestamp": "2015-03-01 18:01:00.123456",
        "publisher_id": "compute.host-1",
        "priority": "INFO",
        "_context_request_id": "req-1",
        "_context_project_id": "p1",
        "_context_user_id": "u1",
        "payload": {
            "tenant_id": "t1",
            "user_id": "u1",
            "instance_id": "i1",
            "display_name": "vm",
            "instance_type": "m1.small",
            "instance_type_id": 5,
            "memory_mb": 2048,
            "disk_gb": 20,
            "root_gb": 20,
            "launched_at": "2015-03-01T17:00:00.000000",
            "deleted_at": "",
            "state": "active",
            "image_meta": {"org.openstack__1__os_distro": "ubuntu", "base_image_ref": "img"},
            "bandwidth": {"public": {"bw_in": 1, "bw_out": 2}},
            "exception": {"kwargs": {"uuid": "i1"}}
        }
    })
}

/// The outcome class of one distillation.
fn class(r: &Result<Outcome, DistillError>) -> String {
    match r {
        Ok(Outcome::Event { diagnostics, .. }) if diagnostics.dropped_traits.is_empty() => {
            "event".into()
        }
        Ok(Outcome::Event { diagnostics, .. }) => {
            let names: Vec<&str> = diagnostics
                .dropped_traits
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            format!("event,dropped:{}", names.join(","))
        }
        Ok(Outcome::Unmatched { .. }) => "unmatched".into(),
        Err(DistillError::Json(_)) => "err:json".into(),
        Err(DistillError::NotAnObject) => "err:not_an_object".into(),
        Err(DistillError::BadEnvelope(_)) => "err:bad_envelope".into(),
        Err(DistillError::Missing { field, .. }) => format!("err:missing:{field}"),
        Err(DistillError::NotAString { field, .. }) => format!("err:not_a_string:{field}"),
        Err(DistillError::BadTimestamp { field, .. }) => format!("err:bad_timestamp:{field}"),
    }
}

/// Distill `bytes` on both paths; they must agree when serde_json accepts the input.
fn distill_both(bytes: &[u8]) -> String {
    let d = sample();
    let fast = d.distill_bytes(bytes);
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        let general = d.distill(&v);
        assert_eq!(
            class(&fast),
            class(&general),
            "distill_bytes and distill disagree on {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
    } else {
        assert!(
            fast.is_err(),
            "serde_json refuses it but distill_bytes accepted {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
    }
    class(&fast)
}

/// The outcome class of loading a definitions file.
fn load_class(path: &str) -> String {
    match Distiller::from_file(path, false) {
        Ok(d) => format!("ok:{}", d.definitions().len()),
        Err(DefinitionError::Io { path: p, .. }) => {
            assert_eq!(p, path, "the error names the file");
            "err:io".into()
        }
        Err(e @ DefinitionError::Invalid { .. }) => {
            let DefinitionError::Invalid {
                ref origin, line, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(origin, path, "the error names the file: {e}");
            assert!(e.to_string().starts_with(path), "{e}");
            format!("err:line:{line}")
        }
    }
}

const SAMPLE_DEFINITIONS: &str = include_str!("../etc/event_definitions.yaml");

proptest! {
    #![proptest_config(hostile::config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        distill_both(&bytes);
    }

    #[test]
    fn mutated_notifications_never_panic(doc in hostile::json_mutant(seed_notification())) {
        let text = serde_json::to_vec(&doc).unwrap();
        distill_both(&text);
        // the same document wrapped in an oslo.messaging v2 envelope
        let env = json!({"oslo.version": "2.0", "oslo.message": String::from_utf8(text).unwrap()});
        distill_both(&serde_json::to_vec(&env).unwrap());
    }

    #[test]
    fn byte_mutated_notifications_never_panic(
        bytes in hostile::byte_mutant(serde_json::to_vec(&seed_notification()).unwrap())
    ) {
        distill_both(&bytes);
    }

    #[test]
    fn field_paths_never_panic(src in prop_oneof![
        any::<String>(),
        "[a-z_.\\[\\]'\"*$|()0-9:,@ -]{0,40}",
        hostile::hostile_text(),
        hostile::byte_mutant(b"payload.image_meta.'org.openstack__1__os_distro'".to_vec())
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        hostile::byte_mutant(b"payload.items[*].name | $.a[0:2]".to_vec())
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        if let Ok(p) = FieldPath::parse(&src) {
            // a compiled path must also be usable against a document
            let doc = seed_notification();
            let _ = p.matches(&doc);
            let _ = p.first_non_null(&doc);
        }
    }

    #[test]
    fn arbitrary_definitions_never_panic(src in prop_oneof![
        any::<String>(),
        hostile::line_mutant(SAMPLE_DEFINITIONS),
        hostile::byte_mutant(SAMPLE_DEFINITIONS.as_bytes().to_vec())
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        match Distiller::from_yaml_str(&src, "defs.yaml", false) {
            Ok(d) => {
                // a loaded file must distill the seed without panicking
                let _ = d.distill(&seed_notification());
            }
            Err(e) => prop_assert!(e.to_string().starts_with("defs.yaml:"), "{e}"),
        }
    }
}

/// Notifications through `distill_bytes` (and `distill` where serde_json parses).
const NOTIFICATIONS: &[(&str, &str)] = &[
    ("bom.json", "err:json"),
    ("control_chars_raw.json", "err:json"),
    ("deep_array_10000.json", "err:json"),
    ("deep_object_10000.json", "err:json"),
    ("deep_oslo_message_10000.json", "err:bad_envelope"),
    ("deep_payload_126.json", "event"),
    ("deep_payload_127.json", "event"),
    ("duplicate_keys.json", "event,dropped:memory_mb"),
    ("empty.json", "err:json"),
    ("float_1e999.json", "err:json"),
    ("event_type_number.json", "err:not_a_string:event_type"),
    ("int_2_64_plus_1.json", "event*"),
    ("invalid_utf8.json", "err:json"),
    (
        "launched_at_zone_overflow.json",
        "event,dropped:launched_at",
    ),
    ("lone_surrogate.json", "err:json"),
    ("many_members_10000.json", "event"),
    ("message_id_51_unicode.json", "event"),
    ("missing_message_id.json", "err:missing:message_id"),
    ("nan_infinity.json", "err:json"),
    ("not_an_object.json", "err:not_an_object"),
    ("nul_bytes.json", "event"),
    ("oslo_good_envelope.json", "event"),
    ("oslo_message_array.json", "err:bad_envelope"),
    ("oslo_message_not_json.json", "err:bad_envelope"),
    ("oslo_message_number.json", "err:bad_envelope"),
    ("oslo_nested_envelope.json", "err:missing:message_id"),
    ("string_1mb.json", "event"),
    (
        "timestamp_negative_number.json",
        "err:bad_timestamp:timestamp",
    ),
    (
        "timestamp_negative_year.json",
        "err:bad_timestamp:timestamp",
    ),
    ("timestamp_year_0_zone.json", "event"),
    ("timestamp_year_99999.json", "err:bad_timestamp:timestamp"),
    (
        "timestamp_zone_overflow.json",
        "err:bad_timestamp:timestamp",
    ),
    ("two_documents.json", "err:json"),
];

#[test]
fn hostile_notifications() {
    hostile::run_corpus(
        &root().join("tests/hostile/notifications"),
        NOTIFICATIONS,
        |_, bytes| distill_both(bytes),
    );
}

/// event_definitions.yaml files through `Distiller::from_file`: `ok:N`
/// (N definitions), `err:line:L` (an error naming the file and line L) or
/// `err:io` (not UTF-8: the read fails, naming the file).
const DEFINITIONS: &[(&str, &str)] = &[
    // alias bombs stop at the node budget (50,000), at the alias that breaks it
    ("billion_laughs.yaml", "err:line:5"),
    ("billion_laughs_in_list.yaml", "err:line:12"),
    ("bom.yaml", "ok:1"),
    // nesting stops at the depth budget (24) / serde-saphyr's flow limit
    ("deep_block_2000.yaml", "err:line:25"),
    ("deep_flow_10000.yaml", "err:line:1"),
    ("duplicate_keys.yaml", "err:line:12"),
    ("empty.yaml", "ok:0"),
    ("event_type_number.yaml", "err:line:1"),
    ("fields_bad_jsonpath.yaml", "err:line:4"),
    // the JSONPath limits: alternatives, parentheses, segments
    ("fields_comma_product.yaml", "err:line:4"),
    ("fields_deep_parens.yaml", "err:line:4"),
    ("fields_huge_index.yaml", "err:line:4"),
    ("fields_many_colons.yaml", "err:line:4"),
    ("fields_root_repeat.yaml", "err:line:4"),
    ("fields_union_product.yaml", "err:line:4"),
    ("glob_pathological.yaml", "ok:2"),
    ("invalid_utf8.yaml", "err:io"),
    ("long_key_100k.yaml", "err:line:3"),
    ("nan_inf.yaml", "err:line:1"),
    ("not_a_list.yaml", "err:line:1"),
    ("nul_byte.yaml", "err:line:1"),
    ("plugin_huge_params.yaml", "err:line:5"),
    ("plugin_unknown.yaml", "err:line:5"),
    ("recursive_merge.yaml", "err:line:4"),
    ("tabs.yaml", "err:line:1"),
    ("type_unknown.yaml", "err:line:5"),
];

#[test]
fn hostile_definitions() {
    hostile::run_corpus(
        &root().join("tests/hostile/definitions"),
        DEFINITIONS,
        |path, _| load_class(path),
    );
}
