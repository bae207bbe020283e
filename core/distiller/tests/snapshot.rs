//! Snapshot of the distiller output on our nova sample set
//! (tests/data/sample/nova.jsonl, from notigen) with etc/event_definitions.yaml.

use std::collections::BTreeMap;
use std::path::PathBuf;

use stv3_distiller::{Distiller, Outcome};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn distilled() -> Vec<stv3_event::Event> {
    let d = Distiller::from_file(root().join("etc/event_definitions.yaml"), false).unwrap();
    assert!(d.warnings().is_empty(), "{:?}", d.warnings());
    let input = std::fs::read(root().join("tests/data/sample/nova.jsonl")).unwrap();
    input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| match d.distill_bytes(l).unwrap() {
            Outcome::Event { event, diagnostics } => {
                assert!(diagnostics.dropped_traits.is_empty(), "{diagnostics:?}");
                assert!(!diagnostics.generated_from_clock);
                event
            }
            Outcome::Unmatched { event_type, .. } => panic!("{event_type} unmatched"),
        })
        .collect()
}

#[test]
fn sample_set_events() {
    let lines: Vec<String> = distilled().iter().map(|e| e.to_canonical_line()).collect();
    insta::assert_snapshot!("nova_sample_events", lines.join("\n"));
}

#[test]
fn sample_set_traits_per_event_type() {
    // event_type -> (count, trait names seen)
    let mut summary: BTreeMap<String, (usize, std::collections::BTreeSet<String>)> =
        BTreeMap::new();
    for e in distilled() {
        let entry = summary.entry(e.event_type.clone()).or_default();
        entry.0 += 1;
        entry.1.extend(e.traits.keys().map(|k| k.to_string()));
    }
    let text: Vec<String> = summary
        .iter()
        .map(|(t, (n, names))| {
            format!(
                "{t} x{n}: {}",
                names.iter().cloned().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    insta::assert_snapshot!("nova_sample_summary", text.join("\n"));
}
