//! Date arithmetic on `Timestamp` with the original's rules: `+`/`-` apply the
//! non-month units as one time delta first, then months with a year carry, then years;
//! `@` replaces fields all at once. Every impossible date is an error, never a panic.
//! Results are kept within the years 1..=9999 (Python's `datetime` range).
use chrono::{Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike};

use crate::duration::{Duration, Unit};
use crate::error::TimexError;
use crate::Timestamp;

const MAX_YEAR: i64 = 9999;

fn invalid(msg: impl Into<String>) -> TimexError {
    TimexError::InvalidDate(msg.into())
}

/// Reject results outside the years 1..=9999.
pub(crate) fn check_year(dt: Timestamp) -> Result<Timestamp, TimexError> {
    if (1..=MAX_YEAR).contains(&i64::from(dt.year())) {
        Ok(dt)
    } else {
        Err(invalid(format!("{dt} is outside the years 1..=9999")))
    }
}

/// Shift `dt` by `micros` microseconds.
pub(crate) fn shift_micros(dt: Timestamp, micros: i128) -> Result<Timestamp, TimexError> {
    let us = i64::try_from(micros).map_err(|_| invalid("time shift is too large"))?;
    let out = dt
        .checked_add_signed(TimeDelta::microseconds(us))
        .ok_or_else(|| invalid(format!("{dt} shifted by {us}us is out of range")))?;
    check_year(out)
}

/// `dt + duration` (or `dt - duration` when `negate`). The unit-less part must have
/// been resolved before (see `Duration::resolve_for`).
pub(crate) fn add(dt: Timestamp, d: &Duration, negate: bool) -> Result<Timestamp, TimexError> {
    let sign: i128 = if negate { -1 } else { 1 };
    let mut dt = dt;
    let mut micros: i128 = 0;
    let mut any_delta = false;
    for (unit, per) in [
        (Unit::Day, 86_400_000_000i128),
        (Unit::Hour, 3_600_000_000),
        (Unit::Minute, 60_000_000),
        (Unit::Second, 1_000_000),
        (Unit::Microsecond, 1),
    ] {
        if let Some(v) = d.get(unit) {
            any_delta = true;
            micros += i128::from(v) * per;
        }
    }
    if any_delta {
        dt = shift_micros(dt, sign * micros)?;
    }
    let months = sign * i128::from(d.get(Unit::Month).unwrap_or(0));
    let mut years = sign * i128::from(d.get(Unit::Year).unwrap_or(0));
    if months != 0 {
        let zero_based = i128::from(dt.month0()) + months;
        years += zero_based.div_euclid(12);
        let month = (zero_based.rem_euclid(12) + 1) as u32;
        dt = dt.with_month(month).ok_or_else(|| {
            invalid(format!(
                "day {} is out of range for month {month} ({dt} {} {d})",
                dt.day(),
                if negate { "-" } else { "+" }
            ))
        })?;
    }
    if years != 0 {
        let year = i128::from(dt.year()) + years;
        if !(1..=i128::from(MAX_YEAR)).contains(&year) {
            return Err(invalid(format!("year {year} is outside 1..=9999")));
        }
        let y = year as i32;
        dt = dt.with_year(y).ok_or_else(|| {
            invalid(format!(
                "day {} is out of range for month {} in year {y}",
                dt.day(),
                dt.month()
            ))
        })?;
    }
    Ok(dt)
}

/// `dt @ duration`: replace every unit the duration sets, all at once
/// (so `@ 2mo 30d` is an error even though `@ 30d 2mo` in steps would not be).
pub(crate) fn replace(dt: Timestamp, d: &Duration) -> Result<Timestamp, TimexError> {
    fn field(d: &Duration, unit: Unit, current: u32, lo: i64, hi: i64) -> Result<u32, TimexError> {
        match d.get(unit) {
            None => Ok(current),
            Some(v) if (lo..=hi).contains(&v) => Ok(v as u32),
            Some(v) => Err(invalid(format!(
                "{} {v} is out of range {lo}..={hi}",
                unit.name()
            ))),
        }
    }
    let year = field(d, Unit::Year, dt.year().max(0) as u32, 1, MAX_YEAR)?;
    let month = field(d, Unit::Month, dt.month(), 1, 12)?;
    let day = field(d, Unit::Day, dt.day(), 1, 31)?;
    let hour = field(d, Unit::Hour, dt.hour(), 0, 23)?;
    let minute = field(d, Unit::Minute, dt.minute(), 0, 59)?;
    let second = field(d, Unit::Second, dt.second(), 0, 59)?;
    let micro = field(
        d,
        Unit::Microsecond,
        dt.nanosecond().min(999_999_999) / 1000,
        0,
        999_999,
    )?;
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(|| {
        invalid(format!(
            "day {day} is out of range for month {month} in year {year}"
        ))
    })?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micro)
        .ok_or_else(|| invalid(format!("invalid time {hour}:{minute}:{second}.{micro}")))?;
    check_year(date.and_time(time))
}

/// The start of the hour, day, month or year containing `dt`.
pub(crate) fn truncate(dt: Timestamp, unit: Unit) -> Timestamp {
    let date = dt.date();
    let (date, hour) = match unit {
        Unit::Hour => (date, dt.hour()),
        Unit::Day => (date, 0),
        Unit::Month => (date.with_day(1).unwrap_or(date), 0),
        _ => (
            date.with_day(1)
                .and_then(|d| d.with_month(1))
                .unwrap_or(date),
            0,
        ),
    };
    date.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN))
}
