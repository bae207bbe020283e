//! Archive file names from the shoebox template: Python-compatible strftime fields
//! (`%f` is 6-digit microseconds), then `' '`, `'/'`, `':'` become `_`, then `[[CRC]]`
//! and `[[TIMESTAMP]]` (the decimal epoch, e.g. `1391249472.123`) are substituted. Pure.
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::Timelike;

use crate::error::ArchiveError;
use stv3_event::Timestamp;

/// The original's `str(dt_to_decimal(t))`: whole seconds, then `.` and the
/// microseconds without trailing zeros when they are not 0 (`1391249472`, `1391249472.5`).
pub fn decimal_epoch(t: Timestamp) -> String {
    let secs = t.and_utc().timestamp();
    let micros = t.nanosecond() / 1000 % 1_000_000;
    if micros == 0 {
        secs.to_string()
    } else {
        let frac = format!("{micros:06}");
        format!("{secs}.{}", frac.trim_end_matches('0'))
    }
}

/// Check that every `%` field of `template` is understood (call at config time).
pub fn validate_template(template: &str) -> Result<(), ArchiveError> {
    strftime(template, Timestamp::default()).map(|_| ())
}

/// Python-style `strftime`: `%f` is microseconds (6 digits), `%%` a percent sign, the
/// other fields as chrono (`%Y %m %d %H %M %S %X %j %b` ...). Unknown fields are an error.
pub fn strftime(template: &str, t: Timestamp) -> Result<String, ArchiveError> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // a field: '%' [modifier] letter
        let mut spec = String::from("%");
        match chars.next() {
            None => return Err(bad_field(template, "a lone '%' at the end")),
            Some('%') => {
                out.push('%');
                continue;
            }
            Some('f') => {
                let _ = write!(out, "{:06}", t.nanosecond() / 1000 % 1_000_000);
                continue;
            }
            Some(m @ ('-' | '_' | '0' | '#' | ':' | '.')) => {
                spec.push(m);
                match chars.next() {
                    Some(l) => spec.push(l),
                    None => return Err(bad_field(template, "an unfinished field at the end")),
                }
            }
            Some(l) => spec.push(l),
        }
        let items: Vec<Item<'_>> = StrftimeItems::new(&spec).collect();
        if items.iter().any(|i| matches!(i, Item::Error)) {
            return Err(bad_field(template, &format!("unknown field {spec}")));
        }
        if write!(out, "{}", t.format_with_items(items.into_iter())).is_err() {
            return Err(bad_field(
                template,
                &format!("field {spec} cannot format a naive UTC time"),
            ));
        }
    }
    Ok(out)
}

fn bad_field(template: &str, what: &str) -> ArchiveError {
    ArchiveError::Config(format!("filename_template {template:?}: {what}"))
}

/// The full original `_make_filename`: strftime, then `' '`, `'/'`, `':'` → `_`, then
/// `[[CRC]]` → `crc` and `[[TIMESTAMP]]` → [`decimal_epoch`].
pub fn render(template: &str, now: Timestamp, crc: &str) -> Result<String, ArchiveError> {
    let name = strftime(template, now)?
        .replace([' ', '/', ':'], "_")
        .replace("[[CRC]]", crc)
        .replace("[[TIMESTAMP]]", &decimal_epoch(now));
    Ok(name)
}
