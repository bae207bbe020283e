//! The original stackdistiller test behaviours (tests/test_distiller.py),
//! restated as tables: trait extraction, event_type matching, catchall,
//! envelope, default traits, config errors, plus our additions (oslo v2
//! envelope, per-trait conversion failures, typed envelope errors).

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use stv3_distiller::{
    DistillError, Distiller, DistillerOptions, FieldMatch, Outcome, PluginRegistry, TraitPlugin,
};
use stv3_event::{parse_timestamp, TraitValue};

fn notification(event_type: &str, message_id: &str, payload: Value) -> Value {
    json!({
        "event_type": event_type,
        "message_id": message_id,
        "priority": "INFO",
        "publisher_id": "compute.host-1-2-3",
        "timestamp": "2013-08-08 21:06:37.803826",
        "payload": payload,
    })
}

fn n1() -> Value {
    notification(
        "test.thing",
        "uuid-for-notif-0001",
        json!({
            "instance_uuid": "uuid-for-instance-0001",
            "instance_id": "id-for-instance-0001",
            "instance_uuid2": null,
            "instance_id2": null,
            "host": "host-1-2-3",
            "bogus_date": "",
            "image_meta": {"disk_gb": "20", "thing": "whatzit"},
            "foobar": 50,
        }),
    )
}

fn text(s: &str) -> Option<TraitValue> {
    Some(TraitValue::Text(s.into()))
}

/// One trait definition (YAML flow mapping) applied to `n1`.
fn check_trait(trait_yaml: &str, expected: Option<TraitValue>) {
    let src = format!("- event_type: test.thing\n  traits:\n    test_trait: {trait_yaml}\n");
    let d = Distiller::from_yaml_str(&src, "t.yaml", false)
        .unwrap_or_else(|e| panic!("{trait_yaml}: {e}"));
    let out = d.distill(&n1()).unwrap();
    let ev = out.event().expect("matched");
    assert_eq!(
        ev.traits.get("test_trait").cloned(),
        expected,
        "{trait_yaml}"
    );
    // the bytes path agrees
    let out2 = d
        .distill_bytes(&serde_json::to_vec(&n1()).unwrap())
        .unwrap();
    assert_eq!(out2.event(), Some(ev));
}

#[test]
fn trait_extraction() {
    let cases: Vec<(&str, Option<TraitValue>)> = vec![
        ("{type: text, fields: payload.instance_id}", text("id-for-instance-0001")),
        ("{fields: payload.instance_id}", text("id-for-instance-0001")),
        ("{type: int, fields: payload.image_meta.disk_gb}", Some(TraitValue::Int(20))),
        ("{fields: [payload.instance_id, payload.instance_uuid]}", text("id-for-instance-0001")),
        ("{fields: [payload.instance_uuid, payload.instance_id]}", text("uuid-for-instance-0001")),
        ("{type: int, fields: [payload.foobar, payload.image_meta.disk_gb]}", Some(TraitValue::Int(50))),
        ("{type: int, fields: [payload.image_meta.disk_gb, payload.foobar]}", Some(TraitValue::Int(20))),
        ("{fields: [payload.instance_id2, payload.instance_uuid]}", text("uuid-for-instance-0001")),
        ("{fields: [payload.not_here_boss, payload.instance_uuid]}", text("uuid-for-instance-0001")),
        ("{fields: payload.not_here_boss}", None),
        ("{fields: payload.instance_id2}", None),
        ("{type: datetime, fields: payload.bogus_date}", None),
        ("{fields: payload.bogus_date}", text("")),
        ("{fields: [payload.not_here_boss, payload.instance_id2]}", None),
        ("{fields: [payload.instance_id]}", text("id-for-instance-0001")),
        ("{type: float, fields: payload.foobar}", Some(TraitValue::Float(50.0))),
        ("{fields: payload.foobar}", text("50")),
        ("{fields: payload.image_meta}", text("{'disk_gb': '20', 'thing': 'whatzit'}")),
        ("{fields: 'payload[host]'}", text("host-1-2-3")),
        ("{fields: \"payload.'host'\"}", text("host-1-2-3")),
        ("{fields: publisher_id, plugin: split}", text("compute")),
        ("{fields: publisher_id, plugin: {name: split, parameters: {segment: 1, max_split: 1}}}", text("host-1-2-3")),
        ("{type: int, fields: payload.image_meta.*, plugin: {name: bitfield, parameters: {flags: [{path: payload.image_meta.disk_gb, bit: 3, value: '20'}]}}}", Some(TraitValue::Int(8))),
        ("{type: datetime, fields: timestamp}", Some(TraitValue::Datetime(parse_timestamp("2013-08-08T21:06:37.803826").unwrap()))),
    ];
    for (yaml, expected) in cases {
        check_trait(&yaml.replace("\\\"", "\""), expected);
    }
}

/// A plugin that records what it was given and returns a fixed value.
#[derive(Debug)]
struct Recorder {
    seen: Arc<Mutex<Vec<Vec<FieldMatch>>>>,
    answer: Option<Value>,
}

impl TraitPlugin for Recorder {
    fn trait_value(&self, matches: &[FieldMatch]) -> Result<Option<Value>, String> {
        self.seen.lock().unwrap().push(matches.to_vec());
        Ok(self.answer.clone())
    }
}

#[test]
fn plugins_get_paths_and_values_even_when_nothing_matches() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let params = Arc::new(Mutex::new(Vec::new()));
    let mut reg = PluginRegistry::builtin();
    for (name, answer) in [("test", Some(json!("foobar"))), ("nothing", None)] {
        let (s, p) = (seen.clone(), params.clone());
        reg.register(name, move |prm| {
            p.lock().unwrap().push(prm.clone());
            Ok(Box::new(Recorder {
                seen: s.clone(),
                answer: answer.clone(),
            }) as Box<dyn TraitPlugin>)
        });
    }
    let opts = DistillerOptions {
        catchall: false,
        plugins: reg,
    };
    let both = vec![
        FieldMatch::new("payload.instance_id", json!("id-for-instance-0001")),
        FieldMatch::new("payload.instance_uuid", json!("uuid-for-instance-0001")),
    ];
    let cases: Vec<(&str, Option<TraitValue>, Vec<FieldMatch>, Value)> = vec![
        ("{fields: [payload.instance_id, payload.instance_uuid], plugin: {name: test}}", text("foobar"), both.clone(), json!({})),
        ("{fields: [payload.nothere, payload.bogus], plugin: {name: test}}", text("foobar"), vec![], json!({})),
        ("{fields: [payload.instance_id, payload.instance_uuid], plugin: nothing}", None, both.clone(), json!({})),
        (
            "{fields: [payload.instance_id, payload.instance_uuid], plugin: {name: test, parameters: {a: 1, b: foo}}}",
            text("foobar"),
            both.clone(),
            json!({"a": 1, "b": "foo"}),
        ),
    ];
    for (yaml, expected, want_matches, want_params) in cases {
        seen.lock().unwrap().clear();
        params.lock().unwrap().clear();
        let src = format!("- event_type: test.thing\n  traits:\n    test_trait: {yaml}\n");
        let d = Distiller::from_yaml_str_with(&src, "t.yaml", &opts).unwrap();
        let out = d.distill(&n1()).unwrap();
        assert_eq!(
            out.event().unwrap().traits.get("test_trait").cloned(),
            expected,
            "{yaml}"
        );
        assert_eq!(*seen.lock().unwrap(), vec![want_matches], "{yaml}");
        assert_eq!(
            params.lock().unwrap().len(),
            1,
            "one instance per trait definition"
        );
        assert_eq!(
            Value::Object(params.lock().unwrap()[0].clone()),
            want_params
        );
    }
}

fn defs_with(event_type: &str) -> String {
    format!("- event_type: {event_type}\n  traits:\n    instance_id: {{fields: [payload.instance_uuid, payload.instance_id]}}\n    host: {{fields: payload.host}}\n")
}

#[test]
fn event_type_matching() {
    // (event_type config, [(type, matches)])
    let cases: Vec<(&str, Vec<(&str, bool)>)> = vec![
        (
            "test.thing",
            vec![("test.thing", true), ("random.thing", false)],
        ),
        (
            "[test.thing, other.thing]",
            vec![
                ("test.thing", true),
                ("other.thing", true),
                ("random.thing", false),
            ],
        ),
        (
            "'!test.thing'",
            vec![("test.thing", false), ("random.thing", true)],
        ),
        (
            "['!test.thing', '!other.thing']",
            vec![
                ("test.thing", false),
                ("other.thing", false),
                ("random.thing", true),
            ],
        ),
        (
            "['*.thing', '!test.thing', '!other.thing']",
            vec![
                ("test.thing", false),
                ("other.thing", false),
                ("random.whatzit", false),
                ("random.thing", true),
            ],
        ),
        (
            "compute.instance.*",
            vec![
                ("compute.instance.create.end", true),
                ("compute.instancex", false),
            ],
        ),
        (
            "'compute.instance.[!u]*'",
            vec![
                ("compute.instance.update", false),
                ("compute.instance.exists", true),
            ],
        ),
    ];
    for (cfg, probes) in cases {
        let d = Distiller::from_yaml_str(&defs_with(cfg), "t.yaml", false).unwrap();
        for (t, want) in probes {
            assert_eq!(d.definition_for(t).is_some(), want, "{cfg} vs {t}");
            // twice: the second answer comes from the cache
            assert_eq!(d.definition_for(t).is_some(), want, "{cfg} vs {t} (cached)");
        }
    }
}

#[test]
fn is_catchall_truth_table() {
    for (cfg, want) in [
        ("['*.thing', '!test.thing', '!other.thing']", false),
        ("['!other.thing']", false),
        ("['other.thing']", false),
        ("['*', '!other.thing']", false),
        ("['*']", true),
        ("['*', 'foo']", true),
    ] {
        let d = Distiller::from_yaml_str(&defs_with(cfg), "t.yaml", false).unwrap();
        assert_eq!(d.definitions()[0].is_catchall(), want, "{cfg}");
        // catchall=true appends a '*' definition only when none is a catchall
        let c = Distiller::from_yaml_str(&defs_with(cfg), "t.yaml", true).unwrap();
        assert_eq!(c.definitions().len(), if want { 1 } else { 2 }, "{cfg}");
    }
}

#[test]
fn reverse_order_first_match_wins() {
    let src = "- event_type: compute.instance.*\n  traits:\n    which: {fields: payload.general}\n\
               - event_type: compute.instance.exists\n  traits:\n    which: {fields: payload.specific}\n";
    let d = Distiller::from_yaml_str(src, "t.yaml", false).unwrap();
    let payload = json!({"general": "general", "specific": "specific"});
    for (t, want) in [
        ("compute.instance.exists", "specific"),
        ("compute.instance.update", "general"),
    ] {
        let out = d.distill(&notification(t, "m", payload.clone())).unwrap();
        assert_eq!(
            out.event().unwrap().traits["which"],
            TraitValue::Text(want.into()),
            "{t}"
        );
    }
}

fn trait_names(out: &Outcome) -> Vec<String> {
    out.event()
        .unwrap()
        .traits
        .keys()
        .map(|k| k.to_string())
        .collect()
}

#[test]
fn distiller_catchall_behaviour() {
    let defs = "- event_type: compute.instance.create.*\n  traits:\n    instance_id: {type: text, fields: [payload.instance_uuid, payload.instance_id]}\n    host: {type: text, fields: payload.host}\n";
    let create = notification(
        "compute.instance.create.start",
        "uuid-for-notif-0001",
        json!({"instance_id": "uuid-for-instance-0001", "host": "host-1-2-3"}),
    );
    let mars = notification(
        "bogus.notification.from.mars",
        "uuid-for-notif-0002",
        json!({"weird": "true", "host": "cydonia"}),
    );
    // (defs, catchall, definitions, traits of create (None = dropped), traits of mars)
    type Case<'a> = (
        &'a str,
        bool,
        usize,
        Option<Vec<&'a str>>,
        Option<Vec<&'a str>>,
    );
    let cases: Vec<Case> = vec![
        (
            defs,
            true,
            2,
            Some(vec!["host", "instance_id", "service"]),
            Some(vec!["service"]),
        ),
        (
            defs,
            false,
            1,
            Some(vec!["host", "instance_id", "service"]),
            None,
        ),
        ("[]", true, 1, Some(vec!["service"]), Some(vec!["service"])),
        ("[]", false, 0, None, None),
        ("", true, 1, Some(vec!["service"]), Some(vec!["service"])),
    ];
    for (src, catchall, ndefs, want_create, want_mars) in cases {
        let d = Distiller::from_yaml_str(src, "t.yaml", catchall).unwrap();
        assert_eq!(d.definitions().len(), ndefs);
        for (n, want) in [(&create, &want_create), (&mars, &want_mars)] {
            let out = d.distill(n).unwrap();
            match want {
                Some(names) => assert_eq!(trait_names(&out), *names, "{src} catchall={catchall}"),
                None => assert!(
                    matches!(out, Outcome::Unmatched { .. }),
                    "{src} catchall={catchall}"
                ),
            }
        }
    }
}

#[test]
fn minimal_notification_with_catchall_uses_the_clock() {
    let d = Distiller::from_yaml_str("[]", "t.yaml", true).unwrap();
    let before = stv3_event::now();
    let out = d
        .distill(&json!({"event_type": "foo", "message_id": "abc", "publisher_id": "1"}))
        .unwrap();
    let after = stv3_event::now();
    let Outcome::Event { event, diagnostics } = out else {
        panic!("dropped")
    };
    assert_eq!(event.event_type, "foo");
    assert_eq!(event.traits.len(), 1);
    assert_eq!(event.traits["service"], TraitValue::Text("1".into()));
    assert!(diagnostics.generated_from_clock);
    assert!(before <= event.generated && event.generated <= after);
}

#[test]
fn generated_timestamp_precedence() {
    let ts = |s: &str| Some(parse_timestamp(s).unwrap());
    let cases: Vec<(Value, Option<stv3_event::Timestamp>)> = vec![
        (
            json!({"timestamp": "2015-01-01 10:00:00.5"}),
            ts("2015-01-01T10:00:00.5"),
        ),
        (
            json!({"_context_timestamp": "2015-01-01T11:00:00Z"}),
            ts("2015-01-01T11:00:00"),
        ),
        (
            json!({"timestamp": "2015-01-01 10:00:00", "_context_timestamp": "2015-01-01 11:00:00"}),
            ts("2015-01-01T10:00:00"),
        ),
        (
            json!({"timestamp": "2015-01-01T12:00:00+02:00"}),
            ts("2015-01-01T10:00:00"),
        ),
        // present but empty: Python's `if when:` falls back to now, not to _context_timestamp
        (
            json!({"timestamp": "", "_context_timestamp": "2015-01-01 11:00:00"}),
            None,
        ),
        (json!({"timestamp": null}), None),
        (json!({}), None),
    ];
    let d = Distiller::from_yaml_str("[]", "t.yaml", true).unwrap();
    for (extra, want) in cases {
        let mut n = json!({"event_type": "x", "message_id": "m"});
        for (k, v) in extra.as_object().unwrap() {
            n[k] = v.clone();
        }
        let Outcome::Event { event, diagnostics } = d.distill(&n).unwrap() else {
            panic!()
        };
        match want {
            Some(t) => {
                assert_eq!(event.generated, t, "{extra}");
                assert!(!diagnostics.generated_from_clock);
            }
            None => assert!(diagnostics.generated_from_clock, "{extra}"),
        }
    }
}

#[test]
fn default_traits_and_overrides() {
    let n = json!({"event_type": "test.thing", "message_id": "m", "timestamp": "2015-01-01 00:00:00",
        "publisher_id": "compute.h1", "_context_request_id": "req-1", "_context_tenant": "ctx-tenant",
        "payload": {"tenant_id": null}});
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("{}", vec![("request_id", "req-1"), ("service", "compute.h1"), ("tenant_id", "ctx-tenant")]),
        (
            "{service: {fields: publisher_id, plugin: split}, tenant_id: {fields: _context_request_id}}",
            vec![("request_id", "req-1"), ("service", "compute"), ("tenant_id", "req-1")],
        ),
    ];
    for (traits, want) in cases {
        let d = Distiller::from_yaml_str(
            &format!("- event_type: test.thing\n  traits: {traits}\n"),
            "t.yaml",
            false,
        )
        .unwrap();
        assert_eq!(d.definitions()[0].traits.len(), 3);
        let ev = d.distill(&n).unwrap().into_event().unwrap();
        let got: Vec<(&str, &str)> = ev
            .traits
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        assert_eq!(got, want, "{traits}");
    }
}

#[test]
fn failed_conversions_drop_only_that_trait() {
    let src = "- event_type: '*'\n  traits:\n    mem: {type: int, fields: payload.mem}\n    when: {type: datetime, fields: payload.when}\n    ok: {type: int, fields: payload.ok}\n";
    let d = Distiller::from_yaml_str(src, "t.yaml", false).unwrap();
    let n = notification(
        "x",
        "msg-7",
        json!({"mem": "12.5", "when": 1234, "ok": "7"}),
    );
    let Outcome::Event { event, diagnostics } = d.distill(&n).unwrap() else {
        panic!()
    };
    assert_eq!(event.traits["ok"], TraitValue::Int(7));
    assert!(!event.traits.contains_key("mem") && !event.traits.contains_key("when"));
    let dropped: Vec<&str> = diagnostics
        .dropped_traits
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(dropped, ["mem", "when"]);
    assert!(
        diagnostics.dropped_traits[0].reason.contains("'12.5'"),
        "{:?}",
        diagnostics.dropped_traits[0]
    );
}

#[test]
fn envelope_errors_are_typed() {
    let d = Distiller::from_yaml_str("[]", "t.yaml", true).unwrap();
    let cases: Vec<(&[u8], DistillError)> = vec![
        (
            b"{\"message_id\":\"m1\"}",
            DistillError::Missing {
                field: "event_type",
                message_id: Some("m1".into()),
            },
        ),
        (
            b"{\"event_type\":\"x\"}",
            DistillError::Missing {
                field: "message_id",
                message_id: None,
            },
        ),
        (
            b"{\"event_type\":3,\"message_id\":\"m1\"}",
            DistillError::NotAString {
                field: "event_type",
                found: "a number",
                message_id: Some("m1".into()),
            },
        ),
        (b"[1]", DistillError::NotAnObject),
        (
            b"{\"event_type\":\"x\",\"message_id\":\"m1\",\"timestamp\":\"yesterday\"}",
            DistillError::BadTimestamp {
                field: "timestamp",
                value: "yesterday".into(),
                reason: "too short".into(),
                message_id: "m1".into(),
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            d.distill_bytes(input).unwrap_err(),
            want,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    assert!(matches!(
        d.distill_bytes(b"{nope"),
        Err(DistillError::Json(_))
    ));
    assert_eq!(
        d.distill_bytes(b"{\"message_id\":\"m1\"}")
            .unwrap_err()
            .to_string(),
        "message m1: missing 'event_type'"
    );
}

#[test]
fn oslo_v2_envelope_is_unwrapped() {
    let d = Distiller::from_yaml_str(
        "- event_type: compute.*\n  traits:\n    host: {fields: payload.host}\n",
        "t.yaml",
        false,
    )
    .unwrap();
    let inner = notification("compute.instance.update", "m-oslo", json!({"host": "h9"}));
    let wrapped = json!({"oslo.version": "2.0", "oslo.message": inner.to_string()});
    for out in [
        d.distill(&wrapped).unwrap(),
        d.distill_bytes(wrapped.to_string().as_bytes()).unwrap(),
    ] {
        let Outcome::Event { event, diagnostics } = out else {
            panic!()
        };
        assert!(diagnostics.oslo_v2);
        assert_eq!(event.message_id, "m-oslo");
        assert_eq!(event.traits["host"], TraitValue::Text("h9".into()));
    }
    let plain = d.distill(&inner).unwrap();
    let Outcome::Event { diagnostics, .. } = plain else {
        panic!()
    };
    assert!(!diagnostics.oslo_v2);
    for bad in [
        json!({"oslo.version": "2.0", "oslo.message": 5}),
        json!({"oslo.version": "2.0", "oslo.message": "{x"}),
    ] {
        assert!(
            matches!(d.distill(&bad), Err(DistillError::BadEnvelope(_))),
            "{bad}"
        );
    }
}

/// (definitions YAML, expected "line:column: message" fragment)
#[test]
fn bad_definitions_are_rejected_with_location() {
    let cases: Vec<(&str, &str)> = vec![
        ("- event_type: a\n  traits:\n    x: foo\n", "t.yaml:3:8: trait 'x': expected a mapping with 'fields'"),
        ("- event_type: a\n  traits:\n    x: {}\n", "t.yaml:3:8: trait 'x': missing required key 'fields'"),
        ("- event_type: a\n  traits:\n    x: {fields: 'payload.bogus('}\n", "t.yaml:3:17: trait 'x': invalid JSONPath \"payload.bogus(\" at character 14"),
        ("- event_type: a\n  traits:\n    x: {fields: a, plugin: {bogus: 'true'}}\n", "t.yaml:3:28: trait 'x': plugin specified without a 'name'"),
        ("- event_type: a\n  traits:\n    x: {fields: a, plugin: {name: bogus}}\n", "t.yaml:3:28: trait 'x': unknown plugin 'bogus' (available: bitfield, split, timedelta)"),
        ("- event_type: a\n  traits:\n    x: {fields: a, type: bogus}\n", "t.yaml:3:26: trait 'x': invalid type 'bogus': expected one of text, int, float, datetime"),
        ("- event_type: a\n  traits:\n    x: {fields: a, plugin: {name: split, parameters: {separator: ''}}}\n", "trait 'x': plugin 'split': parameter 'separator' must not be empty"),
        ("- event_type: a\n  traits:\n    x: {fields: [a, 3]}\n", "t.yaml:3:21: trait 'x': fields entries must be JSONPath strings, found an integer"),
        ("- event_type: a\n  traits:\n    x: {fields: []}\n", "t.yaml:3:17: trait 'x': fields list is empty"),
        ("- event_type: test.foo\n", "t.yaml:1:3: event definition #1: missing required key 'traits'"),
        ("- traits: {}\n", "t.yaml:1:3: event definition #1: missing required key 'event_type'"),
        ("- event_type: a\n  traits:\n", "t.yaml:2:9: event definition #1: traits must be a mapping"),
        ("- event_type: [a, {b: c}]\n  traits: {}\n", "t.yaml:1:19: event definition #1: event_type entries must be strings"),
        ("- just a string\n", "t.yaml:1:3: event definition #1: expected a mapping with 'event_type' and 'traits', found a string"),
        ("event_type: a\n", "t.yaml:1:1: expected a list of event definitions, found a mapping"),
        ("- event_type: a\n  traits: {x: {fields: [a, b}\n", "t.yaml:2:"),
        ("- event_type: a\n  traits: *missing\n", "t.yaml:2:11: invalid YAML"),
    ];
    for (src, want) in cases {
        let err = Distiller::from_yaml_str(src, "t.yaml", false)
            .expect_err(src)
            .to_string();
        assert!(err.contains(want), "{src:?}\n got: {err}\nwant: {want}");
    }
}

#[test]
fn unknown_keys_are_warnings() {
    let d = Distiller::from_yaml_str(
        "- event_type: a\n  trait: {}\n  traits:\n    x: {fields: a, typ: int}\n",
        "t.yaml",
        false,
    )
    .unwrap();
    assert_eq!(
        d.warnings(),
        [
            "t.yaml:2:3: event definition #1: unknown key 'trait' ignored",
            "t.yaml:4:20: trait 'x': unknown key 'typ' ignored"
        ]
    );
}

#[test]
fn original_definitions_file_loads_unchanged() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/oracle/event_definitions.yaml"
    );
    let d = Distiller::from_file(path, false).unwrap();
    assert!(d.warnings().is_empty());
    // reversed: exists first; its traits come from the merge key plus its own
    let exists = &d.definitions()[0];
    let names: Vec<&str> = exists.traits.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"audit_period_beginning")
            && names.contains(&"os_architecture")
            && names.contains(&"host"),
        "{names:?}"
    );
    assert_eq!(
        exists.traits.len(),
        3 + 18 - 2 + 2,
        "defaults + 18 instance traits (2 override defaults) + 2 audit"
    );
    assert_eq!(d.definitions()[1].traits.len(), 3 + 18 - 2);
    let missing = Distiller::from_file("/nonexistent/defs.yaml", false)
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("/nonexistent/defs.yaml: cannot read"),
        "{missing}"
    );
}

/// Definitions built by hand may repeat a trait name (a file cannot: a later
/// trait replaces the earlier one at load). Of the traits with the same name,
/// the last one that has a value wins, on both paths, as when the event's
/// traits were collected into a map.
#[test]
fn repeated_trait_names_in_hand_built_definitions() {
    use stv3_distiller::glob::Glob;
    use stv3_distiller::jsonpath::FieldPath;
    use stv3_distiller::{EventDefinition, TraitDefinition};
    use stv3_event::Datatype;

    let t = |name: &str, field: &str| TraitDefinition {
        name: name.into(),
        datatype: Datatype::Text,
        fields: FieldPath::parse(field).unwrap(),
        plugin: None,
    };
    let def = EventDefinition {
        includes: vec![Glob::new("*")],
        excludes: vec![],
        traits: vec![
            t("a", "payload.instance_id"),
            t("z", "payload.host"),
            t("a", "payload.instance_uuid"),
            t("b", "payload.instance_id"),
            t("b", "payload.missing"),
            t("a", "payload.image_meta.thing"),
            t("c", "payload.missing"),
            t("c", "payload.missing_too"),
        ],
        line: 1,
    };
    let d = Distiller::from_definitions(vec![def], vec![], &DistillerOptions::default());
    let n = n1();
    let bytes = serde_json::to_vec(&n).unwrap();
    for out in [d.distill(&n).unwrap(), d.distill_bytes(&bytes).unwrap()] {
        let e = out.event().unwrap();
        let got: Vec<(String, String)> = e
            .traits
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), "whatzit".to_string()),
                ("b".to_string(), "id-for-instance-0001".to_string()),
                ("z".to_string(), "host-1-2-3".to_string()),
            ]
        );
    }
}
