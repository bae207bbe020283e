//! UsageHandler: the nova usage audit (spec §4.11), run on a per-instance-per-day stream.
//!
//! The events are walked in time order; every `compute.instance.exists` closes the
//! **block** of non-exists events seen since the previous one and gets a verdict:
//! `compute.instance.exists.verified`, or `.failed` with a U-code (U1–U8). Events
//! left after the last exists give one `.failed` U0. Non-EOD exists without an
//! operation event give a `.warnings` event before the verdict.
//!
//! Output (winchester ≥ 0.6 model): the verdict events are **returned** (appended
//! to the input), so the manager saves them and feeds them back to the triggers.
//! They are also put, as flat JSON, into `env["usage_notifications"]`, so the
//! sandbox-style `notabene` step (`env_keys: [usage_notifications]`) publishes
//! them again (that wiring was dead in the original from 0.6 on, §9.2 item 16).
//!
//! Differences from the original, on purpose:
//! * Ids are deterministic: `uuid5(UUID(original_message_id), event_type)` for the
//!   verdict **and** the `.warnings` event (the original used uuid4 for warnings);
//!   U0 uses the first block event's message_id. A non-UUID message_id is first
//!   mapped to `uuid5(NAMESPACE_URL, "stv3:message_id:<id>")`. Replays and lease
//!   retries therefore dedupe on message_id.
//! * A field present on only one side of a comparison is a conflict (**U2**, the
//!   missing side printed as `None`), where the original raised a KeyError that
//!   put the whole stream into `error`.
//! * Warnings are collected per block (the original reset them once per stream,
//!   so a warning was repeated on every later block of the stream).
//! * `error` is the string `"None"` on success (wire compatibility); `error_code`
//!   is absent on success (the original's `None`, which was never stored).

use chrono::{Duration, Timelike};
use serde_json::Value;
use stv3_event::{Event, Timestamp, TraitValue};
use uuid::Uuid;

use crate::handler::{Env, Handler, HandlerError, ParamError, Params, PipelineEvent};
use crate::handlers::HandlerContext;

pub const EXISTS: &str = "compute.instance.exists";
pub const VERIFIED: &str = "compute.instance.exists.verified";
pub const FAILED: &str = "compute.instance.exists.failed";
pub const WARNINGS: &str = "compute.instance.exists.warnings";
/// The env key the verdicts are also published under.
pub const ENV_KEY: &str = "usage_notifications";

const INTERESTING: [&str; 3] = [
    "compute.instance.rebuild.end",
    "compute.instance.finish_resize.end",
    "compute.instance.rescue.end",
];
const CORE_FIELDS: [&str; 6] = [
    "launched_at",
    "instance_flavor_id",
    "tenant_id",
    "os_architecture",
    "os_version",
    "os_distro",
];
const DELETE_FIELDS: [&str; 2] = ["launched_at", "deleted_at"];
const DELETE_END: &str = "compute.instance.delete.end";

/// A failed check: the U-code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub code: &'static str,
    pub message: String,
}

fn fail(code: &'static str, message: impl Into<String>) -> Result<(), UsageError> {
    Err(UsageError {
        code,
        message: message.into(),
    })
}

#[derive(Debug, Default)]
pub struct UsageHandler;

pub fn construct(_params: &Params, _ctx: &HandlerContext) -> Result<Box<dyn Handler>, ParamError> {
    Ok(Box::new(UsageHandler))
}

impl Handler for UsageHandler {
    fn handle_events(
        &mut self,
        mut events: Vec<PipelineEvent>,
        env: &mut Env,
    ) -> Result<Vec<PipelineEvent>, HandlerError> {
        let new_events = audit(&events, env.stream_id);
        env.data.insert(
            ENV_KEY.to_string(),
            Value::Array(new_events.iter().map(|e| e.to_flat_json()).collect()),
        );
        events.extend(new_events);
        Ok(events)
    }
}

/// The verdict events for a stream's events (pure).
pub fn audit(events: &[Event], stream_id: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut block: Vec<&Event> = Vec::new();
    for e in events {
        if e.event_type == EXISTS {
            out.extend(process_block(&block, e, stream_id));
            block.clear();
        } else {
            block.push(e);
        }
    }
    if let Some(first) = block.first() {
        let mut ev = Event::new(
            derived_id(&first.message_id, FAILED),
            FAILED,
            first.generated,
        )
        .with_trait("stream_id", TraitValue::Int(stream_id))
        .with_trait(
            "error",
            TraitValue::Text("Notifications, but no .exists notification found.".into()),
        )
        .with_trait("error_code", TraitValue::Text("U0".into()));
        if let Some(iid) = first.get("instance_id") {
            ev.traits.insert("instance_id".into(), iid);
        }
        out.push(ev);
    }
    out
}

/// `uuid5(UUID(original), event_type)`; a non-UUID original is mapped into UUID space first.
pub fn derived_id(original: &str, event_type: &str) -> String {
    let ns = Uuid::parse_str(original.trim()).unwrap_or_else(|_| {
        Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("stv3:message_id:{original}").as_bytes(),
        )
    });
    Uuid::new_v5(&ns, event_type.as_bytes()).to_string()
}

/// Verdict (and warnings) events for one block closed by `exists`.
pub fn process_block(block: &[&Event], exists: &Event, stream_id: i64) -> Vec<Event> {
    let mut warnings = Vec::new();
    let result = do_checks(block, exists, &mut warnings);
    let event_type = if result.is_ok() { VERIFIED } else { FAILED };
    if let Err(e) = &result {
        let (apb, ape) = audit_period(exists);
        tracing::warn!(
            stream_id,
            "UsageException: ({}) {}; deleted_at: {}, launched_at: {}, state: {}, APB: {}, APE: {}, #events: {}",
            e.code,
            e.message,
            show(exists.get("deleted_at").as_ref()),
            show(exists.get("launched_at").as_ref()),
            show(exists.get("state").as_ref()),
            show(apb.as_ref()),
            show(ape.as_ref()),
            block.len()
        );
    }
    let mut out = Vec::new();
    if !warnings.is_empty() {
        let instance_id = exists
            .get("instance_id")
            .unwrap_or(TraitValue::Text("n/a".into()));
        out.push(
            Event::new(
                derived_id(&exists.message_id, WARNINGS),
                WARNINGS,
                exists.generated,
            )
            .with_trait("publisher_id", TraitValue::Text("stv3".into()))
            .with_trait("stream_id", TraitValue::Int(stream_id))
            .with_trait("instance_id", instance_id)
            .with_trait("warnings", TraitValue::Text(warnings.join(", ").into())),
        );
    }
    let mut verdict = Event::new(
        derived_id(&exists.message_id, event_type),
        event_type,
        exists.generated,
    );
    verdict.traits = exists.traits.clone();
    for (name, default) in [
        ("bandwidth_in", TraitValue::Int(0)),
        ("bandwidth_out", TraitValue::Int(0)),
        ("rax_options", TraitValue::Text("0".into())),
    ] {
        if !verdict.traits.contains_key(name) {
            verdict.traits.insert(name.into(), default);
        }
    }
    verdict.traits.insert(
        "original_message_id".into(),
        TraitValue::Text(exists.message_id.as_str().into()),
    );
    verdict
        .traits
        .insert("publisher_id".into(), TraitValue::Text("stv3".into()));
    verdict
        .traits
        .insert("stream_id".into(), TraitValue::Int(stream_id));
    match result {
        Ok(()) => {
            verdict
                .traits
                .insert("error".into(), TraitValue::Text("None".into()));
            verdict.traits.remove("error_code");
        }
        Err(e) => {
            verdict
                .traits
                .insert("error".into(), TraitValue::Text(e.message.into()));
            verdict
                .traits
                .insert("error_code".into(), TraitValue::Text(e.code.into()));
        }
    }
    out.push(verdict);
    out
}

/// All checks, in the original order. Warnings are appended to `warnings`.
pub fn do_checks(
    block: &[&Event],
    exists: &Event,
    warnings: &mut Vec<String>,
) -> Result<(), UsageError> {
    confirm_launched_at(block, exists)?;
    let last_interesting = block
        .iter()
        .rev()
        .find(|e| INTERESTING.contains(&e.event_type.as_str()));
    if let Some(li) = last_interesting {
        verify_fields(li, exists, &CORE_FIELDS)?;
    } else if is_non_eod_exists(exists) {
        warnings.push(format!(
            "Non-EOD .exists found (msg_id: {}) with no operation event.",
            exists.message_id
        ));
    }
    let deletes: Vec<&Event> = block
        .iter()
        .copied()
        .filter(|e| e.event_type == DELETE_END)
        .collect();
    confirm_delete(exists, &deletes, &DELETE_FIELDS)
}

fn audit_period(e: &Event) -> (Option<TraitValue>, Option<TraitValue>) {
    (
        e.get("audit_period_beginning"),
        e.get("audit_period_ending"),
    )
}

fn datetime(v: &Option<TraitValue>) -> Option<Timestamp> {
    v.as_ref().and_then(|v| v.as_datetime())
}

/// An exists whose audit period does not span exactly one calendar day.
pub fn is_non_eod_exists(e: &Event) -> bool {
    let (apb, ape) = audit_period(e);
    match (datetime(&apb), datetime(&ape)) {
        (Some(b), Some(a)) if e.event_type == EXISTS => a.date() != b.date() + Duration::days(1),
        _ => false,
    }
}

/// An end-of-day exists: midnight to the next midnight.
pub fn is_eod_exists(e: &Event) -> bool {
    let (apb, ape) = audit_period(e);
    match (datetime(&apb), datetime(&ape)) {
        (Some(b), Some(a)) if e.event_type == EXISTS => {
            b.time().num_seconds_from_midnight() == 0
                && b.time().nanosecond() == 0
                && a.time().num_seconds_from_midnight() == 0
                && a.time().nanosecond() == 0
                && a.date() == b.date() + Duration::days(1)
        }
        _ => false,
    }
}

fn confirm_launched_at(block: &[&Event], exists: &Event) -> Result<(), UsageError> {
    if exists.get("state").as_ref().and_then(|s| s.as_str()) != Some("active") {
        return Ok(());
    }
    let launched_at = match exists.get("launched_at") {
        Some(v) if truthy(&v) => v,
        _ => return fail("U1", ".exists has no launched_at value."),
    };
    let (apb, ape) = audit_period(exists);
    if let (Some(b), Some(a)) = (apb.filter(truthy), ape.filter(truthy)) {
        if py_le(&b, &launched_at) && py_le(&launched_at, &a) && block.is_empty() {
            return fail(
                "U8",
                ".exists launched_at in audit period, but no related events found.",
            );
        }
    }
    Ok(())
}

fn confirm_delete(exists: &Event, deletes: &[&Event], fields: &[&str]) -> Result<(), UsageError> {
    let deleted_at = exists.get("deleted_at").filter(truthy);
    let state = exists.get("state");
    if deleted_at.is_none() && !deletes.is_empty() {
        return fail(
            "U6",
            ".deleted events found but .exists has no deleted_at value.",
        );
    }
    if let Some(d) = &deleted_at {
        if state.as_ref().and_then(|s| s.as_str()) != Some("deleted") {
            return fail(
                "U3",
                ".exists state not 'deleted' but .exists deleted_at is set.",
            );
        }
        if deletes.is_empty() {
            if let Some(l) = exists.get("launched_at") {
                if py_lt(d, &l) {
                    return fail("U4", ".exists deleted_at < .exists launched_at.");
                }
            }
            let (apb, ape) = audit_period(exists);
            if let (Some(b), Some(a)) = (apb.filter(truthy), ape.filter(truthy)) {
                if py_le(&b, d) && py_le(d, &a) {
                    return fail(
                        "U5",
                        ".exists deleted_at in audit period, but no matching .delete event found.",
                    );
                }
            }
        }
    }
    if deletes.len() > 1 {
        return fail("U7", "Multiple .delete.end events");
    }
    if let Some(last) = deletes.last() {
        verify_fields(exists, last, fields)?;
    }
    Ok(())
}

/// U2 when a field differs; a field on one side only is a conflict too.
pub fn verify_fields(this: &Event, that: &Event, fields: &[&str]) -> Result<(), UsageError> {
    for f in fields {
        let (a, b) = (this.get(f), that.get(f));
        let same = match (&a, &b) {
            (None, None) => true,
            (Some(x), Some(y)) => py_eq(x, y),
            _ => false,
        };
        if !same {
            return fail(
                "U2",
                format!(
                    "Conflicting '{f}' values ('{}' != '{}')",
                    show(a.as_ref()),
                    show(b.as_ref())
                ),
            );
        }
    }
    Ok(())
}

fn truthy(v: &TraitValue) -> bool {
    match v {
        TraitValue::Text(s) => !s.is_empty(),
        TraitValue::Int(i) => *i != 0,
        TraitValue::Float(f) => *f != 0.0,
        TraitValue::Datetime(_) => true,
    }
}

/// Python `==` on trait values (int and float compare numerically).
fn py_eq(a: &TraitValue, b: &TraitValue) -> bool {
    match (a, b) {
        (TraitValue::Int(x), TraitValue::Float(y)) | (TraitValue::Float(y), TraitValue::Int(x)) => {
            (*x as f64) == *y
        }
        _ => a == b,
    }
}

fn py_cmp(a: &TraitValue, b: &TraitValue) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (TraitValue::Datetime(x), TraitValue::Datetime(y)) => Some(x.cmp(y)),
        (TraitValue::Text(x), TraitValue::Text(y)) => Some(x.cmp(y)),
        (TraitValue::Int(x), TraitValue::Int(y)) => Some(x.cmp(y)),
        (TraitValue::Float(x), TraitValue::Float(y)) => x.partial_cmp(y),
        (TraitValue::Int(x), TraitValue::Float(y)) => (*x as f64).partial_cmp(y),
        (TraitValue::Float(x), TraitValue::Int(y)) => x.partial_cmp(&(*y as f64)),
        _ => None, // different types never compare
    }
}

fn py_le(a: &TraitValue, b: &TraitValue) -> bool {
    matches!(
        py_cmp(a, b),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

fn py_lt(a: &TraitValue, b: &TraitValue) -> bool {
    matches!(py_cmp(a, b), Some(std::cmp::Ordering::Less))
}

/// Python `str()` of a value (datetimes as `YYYY-MM-DD HH:MM:SS[.ffffff]`), `None` when missing.
pub fn show(v: Option<&TraitValue>) -> String {
    match v {
        None => "None".into(),
        Some(TraitValue::Text(s)) => s.to_string(),
        Some(TraitValue::Int(i)) => i.to_string(),
        Some(TraitValue::Float(f)) => {
            if f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                format!("{f}")
            }
        }
        Some(TraitValue::Datetime(t)) => {
            if t.nanosecond() == 0 {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stv3_event::parse_timestamp;

    fn ts(s: &str) -> Timestamp {
        parse_timestamp(s).unwrap()
    }

    /// Build an event from `(key, value)` pairs; `type`/`id`/`ts` set the envelope,
    /// values starting with `@` are datetimes, `#` ints.
    fn ev(fields: &[(&str, &str)]) -> Event {
        let mut e = Event::new(
            "00000000-0000-0000-0000-000000000001",
            "foo",
            ts("2015-03-01 12:00:00"),
        );
        for (k, v) in fields {
            match *k {
                "type" => e.event_type = v.to_string(),
                "id" => e.message_id = v.to_string(),
                "ts" => e.generated = ts(v),
                _ => {
                    let tv = if let Some(d) = v.strip_prefix('@') {
                        TraitValue::Datetime(ts(d))
                    } else if let Some(i) = v.strip_prefix('#') {
                        TraitValue::Int(i.parse().unwrap())
                    } else {
                        TraitValue::Text((*v).into())
                    };
                    e.traits.insert((*k).into(), tv);
                }
            }
        }
        e
    }

    fn exists(fields: &[(&str, &str)]) -> Event {
        let mut all = vec![
            ("type", EXISTS),
            ("id", "6f1a4f66-0000-4000-8000-000000000000"),
        ];
        all.extend_from_slice(fields);
        ev(&all)
    }

    /// do_checks on a block: `Ok(warning count)` or `Err(code)`.
    fn check(block: &[Event], exists: Event, expected: Result<usize, &str>) {
        let refs: Vec<&Event> = block.iter().collect();
        let mut warnings = Vec::new();
        let got = do_checks(&refs, &exists, &mut warnings)
            .map(|_| warnings.len())
            .map_err(|e| e.code);
        assert_eq!(
            got, expected,
            "exists {exists:?} block {block:?} warnings {warnings:?}"
        );
    }

    const APB: (&str, &str) = ("audit_period_beginning", "@2014-12-30 00:00:00");
    const APE: (&str, &str) = ("audit_period_ending", "@2014-12-31 00:00:00");

    #[test]
    fn check_table() {
        let launched_in = ("launched_at", "@2014-12-30 01:00:00");
        let launched_before = ("launched_at", "@2014-12-01 01:00:00");
        let create = ev(&[("type", "compute.instance.create.end")]);
        let delete = |d: &str| {
            ev(&[
                ("type", DELETE_END),
                ("deleted_at", d),
                ("launched_at", "@2014-12-01 01:00:00"),
            ])
        };
        let rebuild = |distro: &str| {
            ev(&[
                ("type", "compute.instance.rebuild.end"),
                ("os_distro", distro),
            ])
        };
        // EOD exists, active, launched before the period: verified, no warnings.
        check(
            &[],
            exists(&[APB, APE, ("state", "active"), launched_before]),
            Ok(0),
        );
        // not active: launched_at is not checked at all.
        check(&[], exists(&[APB, APE, ("state", "stopped")]), Ok(0));
        // U1: active without launched_at (or with an empty one).
        check(&[], exists(&[APB, APE, ("state", "active")]), Err("U1"));
        check(
            &[],
            exists(&[APB, APE, ("state", "active"), ("launched_at", "")]),
            Err("U1"),
        );
        // U8: launched in the period, no events.
        check(
            &[],
            exists(&[APB, APE, ("state", "active"), launched_in]),
            Err("U8"),
        );
        check(
            std::slice::from_ref(&create),
            exists(&[APB, APE, ("state", "active"), launched_in]),
            Ok(0),
        );
        // Non-EOD exists without an operation event: one warning.
        check(
            &[],
            exists(&[
                ("audit_period_beginning", "@2014-12-30 01:00:00"),
                ("audit_period_ending", "@2014-12-30 02:00:00"),
            ]),
            Ok(1),
        );
        // ... but with a rebuild there is no warning, and fields are compared.
        check(
            &[rebuild("ubuntu")],
            exists(&[
                ("audit_period_beginning", "@2014-12-30 01:00:00"),
                ("audit_period_ending", "@2014-12-30 02:00:00"),
                ("os_distro", "ubuntu"),
            ]),
            Ok(0),
        );
        // U2: conflicting core field against the LAST interesting event.
        check(
            &[rebuild("ubuntu"), rebuild("centos")],
            exists(&[APB, APE, ("os_distro", "ubuntu")]),
            Err("U2"),
        );
        check(
            &[rebuild("centos"), rebuild("ubuntu")],
            exists(&[APB, APE, ("os_distro", "ubuntu")]),
            Ok(0),
        );
        // U2 (our decision): the field on one side only.
        check(&[rebuild("ubuntu")], exists(&[APB, APE]), Err("U2"));
        // U6: delete events but no deleted_at.
        check(
            &[delete("@2014-12-30 05:00:00")],
            exists(&[APB, APE]),
            Err("U6"),
        );
        // U3: deleted_at but not in state deleted (also with a missing state).
        check(
            &[],
            exists(&[
                APB,
                APE,
                ("deleted_at", "@2014-12-30 05:00:00"),
                ("state", "active"),
                launched_before,
            ]),
            Err("U3"),
        );
        check(
            &[],
            exists(&[APB, APE, ("deleted_at", "@2014-12-30 05:00:00")]),
            Err("U3"),
        );
        // U4: deleted before launched, no delete events.
        check(
            &[],
            exists(&[
                ("deleted_at", "@2014-12-31 01:00:00"),
                ("launched_at", "@2014-12-31 02:00:00"),
                ("state", "deleted"),
            ]),
            Err("U4"),
        );
        // U5: deleted inside the period, no delete event.
        check(
            &[],
            exists(&[
                APB,
                APE,
                ("deleted_at", "@2014-12-30 02:00:00"),
                launched_before,
                ("state", "deleted"),
            ]),
            Err("U5"),
        );
        // deleted outside the period without delete events: fine.
        check(
            &[],
            exists(&[
                APB,
                APE,
                ("deleted_at", "@2015-01-05 02:00:00"),
                launched_before,
                ("state", "deleted"),
            ]),
            Ok(0),
        );
        // U7: two delete.end.
        check(
            &[
                delete("@2014-12-30 05:00:00"),
                delete("@2014-12-30 05:00:00"),
            ],
            exists(&[
                APB,
                APE,
                ("deleted_at", "@2014-12-30 05:00:00"),
                launched_before,
                ("state", "deleted"),
            ]),
            Err("U7"),
        );
        // One delete.end with matching fields: verified; a different deleted_at: U2.
        check(
            &[delete("@2014-12-30 05:00:00")],
            exists(&[
                APB,
                APE,
                ("deleted_at", "@2014-12-30 05:00:00"),
                launched_before,
                ("state", "deleted"),
            ]),
            Ok(0),
        );
        check(
            &[delete("@2014-12-30 06:00:00")],
            exists(&[
                APB,
                APE,
                ("deleted_at", "@2014-12-30 05:00:00"),
                launched_before,
                ("state", "deleted"),
            ]),
            Err("U2"),
        );
        // Warning and failure together: the warning is still reported.
        check(
            &[],
            exists(&[
                ("audit_period_beginning", "@2014-12-30 01:00:00"),
                ("audit_period_ending", "@2014-12-30 02:00:00"),
                ("deleted_at", "@2014-12-30 01:30:00"),
            ]),
            Err("U3"),
        );
    }

    #[test]
    fn eod_detection() {
        let e = |b: &str, a: &str, t: &str| {
            ev(&[
                ("type", t),
                ("audit_period_beginning", b),
                ("audit_period_ending", a),
            ])
        };
        let cases = [
            (
                e("@2014-12-31 00:00:00", "@2015-01-01 00:00:00", EXISTS),
                false,
                true,
            ),
            (
                e("@2014-12-31 01:00:00", "@2015-01-01 01:00:00", EXISTS),
                false,
                false,
            ),
            (
                e("@2014-12-31 00:00:00", "@2014-12-31 01:00:00", EXISTS),
                true,
                false,
            ),
            (
                e(
                    "@2014-12-31 01:00:00",
                    "@2014-12-31 02:00:00",
                    "compute.instance.foo",
                ),
                false,
                false,
            ),
            (
                ev(&[
                    ("type", EXISTS),
                    ("audit_period_ending", "@2014-12-31 02:00:00"),
                ]),
                false,
                false,
            ),
            // text audit periods are never datetimes: neither EOD nor non-EOD.
            (e("beginning", "ending", EXISTS), false, false),
        ];
        for (event, non_eod, eod) in cases {
            assert_eq!(is_non_eod_exists(&event), non_eod, "non-EOD {event:?}");
            assert_eq!(is_eod_exists(&event), eod, "EOD {event:?}");
        }
    }

    #[test]
    fn verify_fields_table() {
        let a = ev(&[("a", "#1"), ("b", "#2"), ("c", "#3")]);
        let mut a_float = a.clone();
        a_float.traits.insert("a".into(), TraitValue::Float(1.0));
        let b = ev(&[("a", "#10"), ("b", "#20"), ("c", "#30")]);
        let check = |x: &Event, y: &Event, fields: &[&str], expected: Result<(), &str>| {
            assert_eq!(
                verify_fields(x, y, fields).map_err(|e| e.message),
                expected.map_err(|s| s.to_string())
            );
        };
        check(&a, &a, &["d", "e", "f"], Ok(()));
        check(&a, &a, &["a", "b", "c"], Ok(()));
        check(&a, &a_float, &["a"], Ok(()));
        check(
            &a,
            &b,
            &["a", "b", "c"],
            Err("Conflicting 'a' values ('1' != '10')"),
        );
        check(
            &a,
            &b,
            &["x", "b"],
            Err("Conflicting 'b' values ('2' != '20')"),
        );
        check(
            &a,
            &ev(&[]),
            &["a"],
            Err("Conflicting 'a' values ('1' != 'None')"),
        );
        check(
            &ev(&[("t", "@2015-01-01 10:00:00")]),
            &ev(&[("t", "@2015-01-01 10:00:00.5")]),
            &["t"],
            Err("Conflicting 't' values ('2015-01-01 10:00:00' != '2015-01-01 10:00:00.500000')"),
        );
    }

    #[test]
    fn process_block_outputs() {
        let ex = exists(&[("instance_id", "inst"), ("ts", "2015-03-01 23:59:00")]);
        let out = process_block(&[], &ex, 123);
        assert_eq!(out.len(), 1);
        let v = &out[0];
        assert_eq!(v.event_type, VERIFIED);
        assert_eq!(v.generated, ts("2015-03-01 23:59:00"));
        assert_eq!(v.get("stream_id"), Some(TraitValue::Int(123)));
        assert_eq!(v.get("instance_id"), Some(TraitValue::Text("inst".into())));
        assert_eq!(v.get("error"), Some(TraitValue::Text("None".into())));
        assert_eq!(v.get("error_code"), None);
        assert_eq!(v.get("bandwidth_in"), Some(TraitValue::Int(0)));
        assert_eq!(v.get("rax_options"), Some(TraitValue::Text("0".into())));
        assert_eq!(v.get("publisher_id"), Some(TraitValue::Text("stv3".into())));
        assert_eq!(
            v.get("original_message_id"),
            Some(TraitValue::Text(ex.message_id.as_str().into()))
        );
        assert_eq!(v.message_id, derived_id(&ex.message_id, VERIFIED));

        // Failure: U-code and message.
        let bad = exists(&[("instance_id", "inst"), ("state", "active")]);
        let out = process_block(&[], &bad, 7);
        assert_eq!(out[0].event_type, FAILED);
        assert_eq!(
            out[0].get("error"),
            Some(TraitValue::Text(".exists has no launched_at value.".into()))
        );
        assert_eq!(
            out[0].get("error_code"),
            Some(TraitValue::Text("U1".into()))
        );

        // Warnings come first, then the verdict.
        let non_eod = exists(&[
            ("audit_period_beginning", "@2014-12-30 01:00:00"),
            ("audit_period_ending", "@2014-12-30 02:00:00"),
        ]);
        let out = process_block(&[], &non_eod, 7);
        let types: Vec<&str> = out.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, [WARNINGS, VERIFIED]);
        assert_eq!(
            out[0].get("warnings"),
            Some(TraitValue::Text(
                format!(
                    "Non-EOD .exists found (msg_id: {}) with no operation event.",
                    non_eod.message_id
                )
                .into()
            ))
        );
        assert_eq!(
            out[0].get("instance_id"),
            Some(TraitValue::Text("n/a".into()))
        );
        assert_eq!(out[0].message_id, derived_id(&non_eod.message_id, WARNINGS));
    }

    #[test]
    fn derived_ids_are_python_uuid5() {
        // python: str(uuid.uuid5(uuid.UUID('6f1a4f66-0000-4000-8000-000000000000'), 'compute.instance.exists.verified'))
        assert_eq!(
            derived_id("6f1a4f66-0000-4000-8000-000000000000", VERIFIED),
            PY_UUID5
        );
        assert_ne!(
            derived_id("not-a-uuid", VERIFIED),
            derived_id("not-a-uuid2", VERIFIED)
        );
        assert_eq!(
            derived_id("not-a-uuid", VERIFIED),
            derived_id("not-a-uuid", VERIFIED)
        );
    }
    const PY_UUID5: &str = "582b5d40-ff2e-517a-bea3-8ef7c2297709";

    /// handle_events: input events -> (output count, env notification types).
    fn check_handle(events: Vec<Event>, out_len: usize, notes: &[&str]) {
        let mut env = Env::new(123, "s");
        let out = UsageHandler
            .handle_events(events.clone(), &mut env)
            .unwrap();
        assert_eq!(out.len(), out_len);
        assert_eq!(
            &out[..events.len()],
            &events[..],
            "input passes through first"
        );
        let got: Vec<String> = env
            .list(ENV_KEY)
            .iter()
            .map(|n| n["event_type"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(got, notes);
        let returned: Vec<&str> = out[events.len()..]
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert_eq!(returned, notes, "returned new events == env notifications");
    }

    #[test]
    fn handle_events_table() {
        let foo = ev(&[
            ("id", "00000000-0000-0000-0000-0000000000f0"),
            ("instance_id", "i-1"),
        ]);
        let ex = exists(&[]);
        check_handle(vec![], 0, &[]);
        check_handle(vec![foo.clone()], 2, &[FAILED]);
        check_handle(vec![foo.clone(), ex.clone()], 3, &[VERIFIED]);
        check_handle(
            vec![foo.clone(), ex.clone(), foo.clone()],
            5,
            &[VERIFIED, FAILED],
        );
        // U0 carries the first dangling event's instance_id and timestamp.
        let out = audit(std::slice::from_ref(&foo), 9);
        assert_eq!(
            out[0].get("error_code"),
            Some(TraitValue::Text("U0".into()))
        );
        assert_eq!(
            out[0].get("instance_id"),
            Some(TraitValue::Text("i-1".into()))
        );
        assert_eq!(out[0].generated, foo.generated);
        assert_eq!(out[0].message_id, derived_id(&foo.message_id, FAILED));
    }

    #[test]
    fn warnings_reset_per_block() {
        // Two non-EOD exists in one stream: each block reports only its own warning.
        let e1 = exists(&[
            ("id", "00000000-0000-0000-0000-0000000000a1"),
            ("audit_period_beginning", "@2014-12-30 01:00:00"),
            ("audit_period_ending", "@2014-12-30 02:00:00"),
        ]);
        let e2 = ev(&[
            ("type", EXISTS),
            ("id", "00000000-0000-0000-0000-0000000000a2"),
        ]);
        let out = audit(&[e1, e2], 1);
        let types: Vec<&str> = out.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, [WARNINGS, VERIFIED, VERIFIED]);
    }

    #[test]
    fn show_is_python_str() {
        assert_eq!(show(None), "None");
        assert_eq!(show(Some(&TraitValue::Float(2.0))), "2.0");
        assert_eq!(show(Some(&TraitValue::Float(2.5))), "2.5");
        assert_eq!(
            show(Some(&TraitValue::Datetime(ts(
                "2015-01-01 10:00:00.000001"
            )))),
            "2015-01-01 10:00:00.000001"
        );
    }
}
