//! Trigger definitions: the behaviours of the original `tests/test_definition.py`
//! (criteria, trigger keys and defaults, matching, distinguishing traits, fire
//! delay, should_fire), in our words, plus the load-time errors we added.

#![allow(clippy::approx_constant, clippy::type_complexity)] // fixture values from the original tests

use std::path::Path;

use chrono::NaiveDate;
use stv3_event::{Event, Timestamp, TraitValue};
use stv3_winchester::config::parse_triggers;
use stv3_winchester::criteria::Criteria;
use stv3_winchester::debugger::GroupRef;
use stv3_winchester::{DistValue, TriggerDefinition};

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> Timestamp {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_micro_opt(h, mi, s, us)
        .unwrap()
}

fn ev(event_type: &str, ts: Timestamp, traits: &[(&str, TraitValue)]) -> Event {
    let mut e = Event::new("m", event_type, ts);
    for (k, v) in traits {
        e.traits.insert((*k).into(), v.clone());
    }
    e
}

fn text(s: &str) -> TraitValue {
    TraitValue::Text(s.into())
}

fn trigger(yaml: &str) -> TriggerDefinition {
    parse_triggers(yaml, Path::new("triggers.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
}

/// A trigger whose only match criteria is `criteria_yaml` (indented as a list item body).
fn criteria(criteria_yaml: &str) -> Criteria {
    let yaml = format!(
        "- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{{}}]\n  match_criteria:\n  - {}\n",
        criteria_yaml.replace('\n', "\n    ")
    );
    trigger(&yaml).match_criteria.remove(0)
}

fn check(c: &Criteria, e: &Event, expected: bool, what: &str) {
    assert_eq!(
        c.matches(e, &mut GroupRef::noop()),
        expected,
        "{what}: {e:?}"
    );
}

const D0: (i32, u32, u32) = (2014, 8, 1);

fn day0(h: u32, mi: u32) -> Timestamp {
    t(D0.0, D0.1, D0.2, h, mi, 0, 0)
}

#[test]
fn scalar_and_numeric_criteria() {
    let now = day0(7, 0);
    let cases: &[(&str, &[(TraitValue, bool)])] = &[
        (
            "foo: 3",
            &[
                (TraitValue::Int(3), true),
                (TraitValue::Int(5), false),
                (text("booga"), false),
            ],
        ),
        (
            "foo: {int: \"3\"}",
            &[
                (TraitValue::Int(3), true),
                (TraitValue::Int(5), false),
                (text("booga"), false),
            ],
        ),
        (
            "foo: {int: 3}",
            &[(TraitValue::Int(3), true), (TraitValue::Int(4), false)],
        ),
        (
            "foo: {int: \"> 3\"}",
            &[(TraitValue::Int(3), false), (TraitValue::Int(5), true)],
        ),
        (
            "foo: {int: \"< 3\"}",
            &[
                (TraitValue::Int(3), false),
                (TraitValue::Int(5), false),
                (TraitValue::Int(1), true),
            ],
        ),
        // Added operators (the original only matched =, >, <).
        (
            "foo: {int: \">= 3\"}",
            &[(TraitValue::Int(3), true), (TraitValue::Int(2), false)],
        ),
        (
            "foo: {int: \"<= 3\"}",
            &[(TraitValue::Int(3), true), (TraitValue::Int(4), false)],
        ),
        (
            "foo: {int: \"!= 3\"}",
            &[(TraitValue::Int(3), false), (TraitValue::Int(4), true)],
        ),
        (
            "foo: {float: \"3.14\"}",
            &[
                (TraitValue::Float(3.14), true),
                (TraitValue::Float(5.2), false),
                (text("booga"), false),
            ],
        ),
        (
            "foo: {float: \"> 3.14\"}",
            &[
                (TraitValue::Float(3.14), false),
                (TraitValue::Float(5.2), true),
            ],
        ),
        (
            "foo: {float: \"< 3.14\"}",
            &[
                (TraitValue::Float(3.14), false),
                (TraitValue::Float(3.5), false),
                (TraitValue::Float(3.02), true),
            ],
        ),
        (
            "foo: {string: \"text here\"}",
            &[(text("text here"), true), (text("other"), false)],
        ),
        (
            "foo: {text: \"x\"}",
            &[(text("x"), true), (TraitValue::Int(1), false)],
        ),
    ];
    for (yaml, vectors) in cases {
        let c = criteria(&format!("traits:\n  {yaml}"));
        for (value, expected) in *vectors {
            check(
                &c,
                &ev("x", now, &[("foo", value.clone())]),
                *expected,
                yaml,
            );
        }
        // A missing trait never matches.
        check(
            &c,
            &ev("x", now, &[("bar", TraitValue::Int(5))]),
            false,
            yaml,
        );
    }
}

#[test]
fn time_criterion_uses_the_event_datetime_traits() {
    let c = criteria("traits:\n  foo: {datetime: day}");
    let ts = t(2014, 8, 1, 7, 52, 31, 2);
    check(
        &c,
        &ev(
            "x",
            ts,
            &[("foo", TraitValue::Datetime(t(2014, 8, 1, 1, 2, 0, 0)))],
        ),
        true,
        "same day",
    );
    check(
        &c,
        &ev(
            "x",
            ts,
            &[("foo", TraitValue::Datetime(t(2014, 8, 2, 1, 2, 0, 0)))],
        ),
        false,
        "next day",
    );
    check(
        &c,
        &ev(
            "x",
            ts,
            &[("bar", TraitValue::Datetime(t(2014, 8, 1, 1, 2, 0, 0)))],
        ),
        false,
        "missing",
    );
    check(
        &c,
        &ev(
            "x",
            ts,
            &[
                ("quux", TraitValue::Int(4)),
                ("foo", TraitValue::Datetime(t(2014, 8, 1, 1, 2, 0, 0))),
            ],
        ),
        true,
        "other traits ignored",
    );
}

#[test]
fn criteria_defaults_and_event_types() {
    let c = Criteria::default();
    assert_eq!(c.included_types.len(), 1);
    assert_eq!(c.included_types[0].pattern(), "*");
    assert!(c.excluded_types.is_empty());
    assert_eq!(c.number, 1);
    assert!(c.timestamp.is_none() && c.map_distinguished_by.is_empty() && c.traits.is_empty());

    for (yaml, inc, exc) in [
        ("event_type: test.foo.bar", vec!["test.foo.bar"], vec![]),
        (
            "event_type: \"!test.foo.bar\"",
            vec!["*"],
            vec!["test.foo.bar"],
        ),
        (
            "event_type: [test.foo.bar, \"!test.wakka.wakka\"]",
            vec!["test.foo.bar"],
            vec!["test.wakka.wakka"],
        ),
    ] {
        let c = criteria(yaml);
        assert_eq!(
            c.included_types
                .iter()
                .map(|g| g.pattern())
                .collect::<Vec<_>>(),
            inc,
            "{yaml}"
        );
        assert_eq!(
            c.excluded_types
                .iter()
                .map(|g| g.pattern())
                .collect::<Vec<_>>(),
            exc,
            "{yaml}"
        );
    }
    let c = criteria("event_type: [test.foo.bar, \"!test.wakka.wakka\"]");
    assert!(
        c.match_type("test.foo.bar")
            && !c.match_type("test.wakka.wakka")
            && !c.match_type("test.foo.baz")
    );
    let c = criteria("event_type: [test.foo.*, \"!test.wakka.*\"]");
    let now = day0(1, 0);
    for (ty, expected) in [
        ("test.foo.zazz", true),
        ("test.wakka.zazz", false),
        ("test.boingy", false),
    ] {
        check(&c, &ev(ty, now, &[]), expected, ty);
    }
}

#[test]
fn criteria_timestamp_expression() {
    let c = criteria("timestamp: day($launched_at)");
    let launched = TraitValue::Datetime(t(2014, 8, 1, 1, 2, 3, 4));
    check(
        &c,
        &ev(
            "test.thing",
            t(2014, 8, 1, 17, 16, 15, 14),
            &[("launched_at", launched.clone())],
        ),
        true,
        "same day",
    );
    check(
        &c,
        &ev(
            "test.thing",
            t(2014, 8, 2, 17, 16, 15, 14),
            &[("launched_at", launched)],
        ),
        false,
        "later day",
    );
    check(
        &c,
        &ev("test.thing", t(2014, 8, 2, 17, 16, 15, 14), &[]),
        false,
        "no launched_at",
    );
}

#[test]
fn mixed_trait_criteria_all_must_match() {
    let c = criteria(
        "traits:\n  some_trait: test\n  launched_at: {datetime: day}\n  memory_mb: {int: \"> 2048\"}\n  \
         test_weight: {float: \"< 4.02\"}\n  other_trait: {string: text here}",
    );
    let ts = t(2014, 8, 1, 17, 16, 15, 14);
    let base = |some: Option<&str>, launched_day: u32, mem: i64, weight: f64| {
        let mut traits = vec![
            (
                "launched_at",
                TraitValue::Datetime(t(2014, 8, launched_day, 1, 2, 3, 4)),
            ),
            ("other_trait", text("text here")),
            ("memory_mb", TraitValue::Int(mem)),
            ("test_weight", TraitValue::Float(weight)),
        ];
        if let Some(s) = some {
            traits.push(("some_trait", text(s)));
        }
        ev("test.thing", ts, &traits)
    };
    check(&c, &base(Some("test"), 1, 4096, 3.1415), true, "all good");
    check(
        &c,
        &base(Some("foo"), 1, 4096, 3.1415),
        false,
        "wrong string",
    );
    check(&c, &base(None, 1, 4096, 3.1415), false, "missing string");
    check(
        &c,
        &base(Some("test"), 2, 4096, 3.1415),
        false,
        "launched next day",
    );
    check(
        &c,
        &base(Some("test"), 1, 1024, 3.1415),
        false,
        "too little memory",
    );
    check(&c, &base(Some("test"), 1, 4096, 6.283), false, "too heavy");
}

#[test]
fn required_keys_and_defaults() {
    let head = "- name: test_trigger\n";
    for (yaml, key) in [
        ("- expiration: $last + 1d\n", "name"),
        (head, "expiration"),
        ("- name: t\n  expiration: $last + 1d\n", "pipeline"),
        ("- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n", "fire_criteria"),
        ("- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{event_type: test.thing}]\n", "match_criteria"),
    ] {
        let err = parse_triggers(yaml, Path::new("triggers.yaml")).unwrap_err();
        assert!(err.to_string().contains(key), "{yaml}: {err}");
        assert!(err.line >= 1, "{err}");
    }
    let tdef = trigger(
        "- name: test_trigger\n  expiration: $last + 1d\n  fire_pipeline: test_pipeline\n  \
         fire_criteria: [{event_type: test.thing}]\n  match_criteria: [{event_type: test.*}]\n",
    );
    assert!(tdef.distinguished_by.is_empty());
    assert_eq!(
        (tdef.fire_criteria.len(), tdef.match_criteria.len()),
        (1, 1)
    );
    assert_eq!(tdef.fire_delay, chrono::Duration::zero());
    assert!(tdef.load_criteria.is_empty());
    assert_eq!(tdef.debug_level, 0);
}

#[test]
fn load_time_errors_name_file_line_and_key() {
    let base = "- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n  fire_criteria: [{}]\n  match_criteria:\n";
    for (tail, line, needle) in [
        (
            "  - traits:\n      memory_mb:\n        numeric: \"> 4096\"\n",
            8,
            "unknown criterion type \"numeric\"",
        ),
        (
            "  - traits:\n      memory_mb: {int: zazz}\n",
            7,
            "invalid numeric criterion",
        ),
        (
            "  - traits:\n      memory_mb: {int: \"\"}\n",
            7,
            "invalid numeric criterion",
        ),
        (
            "  - traits:\n      memory_mb: {int: \"~ 3\"}\n",
            7,
            "unknown operator",
        ),
        (
            "  - traits:\n      w: {float: \"< x\"}\n",
            7,
            "invalid numeric criterion",
        ),
        ("  - timestamp: \"day(\"\n", 6, "invalid timex"),
        (
            "  - traits:\n      a: {int: 1, float: 2}\n",
            7,
            "exactly one type",
        ),
    ] {
        let err = parse_triggers(&format!("{base}{tail}"), Path::new("/etc/w/triggers.yaml"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/w/triggers.yaml:"), "{msg}");
        assert_eq!(err.line, line, "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert!(err.key.contains("match_criteria[0]"), "{msg}");
    }
    let err = parse_triggers(
        "- name: t\n  distinguished_by: [{a: day, b: day}]\n",
        Path::new("x.yaml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("only one trait"), "{err}");
    let err = parse_triggers(
        "- name: t\n  expiration: \"$last +\"\n",
        Path::new("x.yaml"),
    )
    .unwrap_err();
    assert_eq!(err.line, 2, "{err}");
}

fn simple(extra: &str) -> TriggerDefinition {
    trigger(&format!(
        "- name: test_trigger\n  expiration: $last + 1d\n  fire_pipeline: test_pipeline\n  \
         fire_criteria: [{{event_type: test.thing}}]\n{extra}"
    ))
}

#[test]
fn match_across_several_criteria() {
    let now = day0(1, 0);
    let one = simple("  match_criteria: [{event_type: test.*}]\n");
    assert!(one.match_event(&ev("test.thing", now, &[])).is_some());
    assert!(one.match_event(&ev("other.thing", now, &[])).is_none());
    let two = simple("  match_criteria: [{event_type: test.*}, {event_type: other.*}]\n");
    assert!(two.match_event(&ev("test.thing", now, &[])).is_some());
    assert!(two.match_event(&ev("other.thing", now, &[])).is_some());
}

#[test]
fn distinguishing_traits() {
    let now = t(2014, 8, 1, 20, 4, 23, 444);
    let tdef =
        simple("  distinguished_by: [instance_id]\n  match_criteria: [{event_type: test.*}]\n");
    assert!(
        tdef.match_event(&ev("test.thing", now, &[])).is_none(),
        "missing dist trait => no match"
    );
    let e = ev("test.thing", now, &[("instance_id", text("foo"))]);
    let c = tdef.match_event(&e).unwrap();
    let dt = tdef.distinguishing_traits(&e, c).unwrap();
    assert_eq!(dt.len(), 1);
    assert_eq!(dt["instance_id"], DistValue::Trait(text("foo")));

    let tdef = simple("  distinguished_by: [instance_id, {timestamp: day}]\n  match_criteria: [{event_type: test.*}]\n");
    let c = tdef.match_event(&e).unwrap();
    let dt = tdef.distinguishing_traits(&e, c).unwrap();
    assert_eq!(dt.len(), 2);
    assert_eq!(
        dt["timestamp"],
        DistValue::Range {
            begin: t(2014, 8, 1, 0, 0, 0, 0),
            end: t(2014, 8, 2, 0, 0, 0, 0)
        }
    );

    let tdef = simple(
        "  distinguished_by: [instance_id]\n  match_criteria:\n  - event_type: test.*\n    \
         map_distinguished_by: {instance_id: other_id}\n",
    );
    let e2 = ev(
        "test.thing",
        now,
        &[("instance_id", text("foo")), ("other_id", text("bar"))],
    );
    let c = tdef.match_event(&e2).unwrap();
    assert_eq!(
        tdef.distinguishing_traits(&e2, c).unwrap()["instance_id"],
        DistValue::Trait(text("bar"))
    );
    // Fix of §9.2 item 7: a missing mapped source is a mismatch, not a crash.
    assert!(tdef.match_event(&e).is_none());
}

#[test]
fn misspelled_map_key_is_accepted() {
    let tdef = simple(
        "  distinguished_by: [instance_id]\n  match_criteria:\n  - event_type: test.*\n    \
         map_distingushed_by: {instance_id: other_id}\n",
    );
    assert_eq!(
        tdef.match_criteria[0].map_distinguished_by["instance_id"],
        "other_id"
    );
}

#[test]
fn fire_delay_and_should_fire() {
    let now = day0(1, 0);
    let tdef = simple("  fire_delay: 3600\n  match_criteria: [{event_type: test.*}]\n");
    assert_eq!(tdef.fire_timestamp(now), day0(2, 0));
    let foobar = ev("test.foobar", now, &[]);
    let thing = ev("test.thing", now, &[]);
    assert!(!tdef.should_fire(std::slice::from_ref(&foobar)));
    assert!(tdef.should_fire(&[foobar.clone(), thing.clone()]));
    let tdef = trigger(
        "- name: t\n  expiration: $last + 1d\n  fire_pipeline: p\n  \
         fire_criteria: [{event_type: test.thing, number: 2}]\n  match_criteria: [{event_type: test.*}]\n",
    );
    assert!(!tdef.should_fire(&[foobar.clone(), thing.clone()]));
    assert!(tdef.should_fire(&[thing.clone(), foobar, thing]));
}

#[test]
fn expiration_uses_first_and_last() {
    let tdef = trigger(
        "- name: t\n  expiration: $first + 2h\n  fire_pipeline: p\n  fire_criteria: [{}]\n  match_criteria: [{}]\n",
    );
    assert_eq!(
        tdef.expire_timestamp(day0(1, 0), day0(5, 0), day0(9, 0))
            .unwrap(),
        day0(3, 0)
    );
    let tdef = simple("  match_criteria: [{}]\n");
    assert_eq!(
        tdef.expire_timestamp(day0(1, 0), day0(5, 0), day0(9, 0))
            .unwrap(),
        t(2014, 8, 2, 5, 0, 0, 0)
    );
}
