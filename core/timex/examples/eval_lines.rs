//! Differential-testing driver: reads one expression per line from stdin and prints
//! `<expression>\t<outcome>` in the format of `tests/oracle/gen_vectors.py` (same variables),
//! so the two outputs can be diffed:
//!
//! ```sh
//! cargo run -q -p stv3-timex --example eval_lines < cases.txt > ours.tsv
//! /tmp/stv3-oracle-venv/bin/python tests/oracle/gen_vectors.py < cases.txt > theirs.tsv
//! diff ours.tsv theirs.tsv
//! ```
use std::io::{self, BufRead, Write};

use chrono::NaiveDate;
use stv3_timex::{parse, TimeMatcher, Timestamp, TimexError};

fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> Timestamp {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|d| d.and_hms_micro_opt(h, mi, s, us))
        .unwrap_or_default()
}

fn fmt(t: Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn main() -> io::Result<()> {
    let dt = ts(2014, 8, 1, 2, 10, 23, 550);
    let vars = [
        ("x", dt),
        ("w", ts(2014, 8, 2, 3, 11, 24, 551)),
        ("timestamp", dt),
        ("a", ts(2014, 1, 31, 12, 0, 0, 0)),
        ("b", ts(2016, 2, 29, 0, 0, 0, 0)),
        ("p", ts(2014, 8, 1, 17, 30, 10, 25)),
        ("e", ts(2014, 8, 1, 19, 45, 0, 0)),
        ("q", ts(2014, 12, 31, 23, 59, 59, 999_999)),
    ];
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for line in io::stdin().lock().lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let outcome = match parse(&line).and_then(|e| e.eval(&vars)) {
            Ok(TimeMatcher::Timestamp(t)) => format!("T {}", fmt(t)),
            Ok(TimeMatcher::Range(r)) => format!("R {} {}", fmt(r.begin), fmt(r.end)),
            Err(TimexError::Lex { .. }) => "ERR lexer".into(),
            Err(TimexError::Parse { .. }) => "ERR parser".into(),
            Err(TimexError::InvalidDate(_)) => "ERR value".into(),
            Err(_) => "ERR expression".into(),
        };
        writeln!(out, "{line}\t{outcome}")?;
    }
    Ok(())
}
