//! The values an expression evaluates to: a single `Timestamp` or a half-open
//! `TimeRange` (optionally pinned to the instant it was built around), and the
//! `+`, `-`, `@` operations on them including the pinned-range wrap.
use chrono::TimeDelta;

use crate::calendar;
use crate::duration::{Duration, Unit};
use crate::error::TimexError;
use crate::Timestamp;

/// The three operations of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `+ duration`
    Plus,
    /// `- duration`
    Minus,
    /// `@ duration` (replace fields)
    Replace,
}

impl Op {
    /// The operator character.
    pub fn symbol(self) -> char {
        match self {
            Op::Plus => '+',
            Op::Minus => '-',
            Op::Replace => '@',
        }
    }
}

/// What a range function pinned its range to: the instant it was built around and
/// the function's unit (hour, day, month, year).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin {
    pub pinned_to: Timestamp,
    pub unit: Unit,
}

/// A half-open time range `[begin, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    pub begin: Timestamp,
    pub end: Timestamp,
    pin: Option<Pin>,
}

impl TimeRange {
    /// An unpinned range.
    pub fn new(begin: Timestamp, end: Timestamp) -> Self {
        TimeRange {
            begin,
            end,
            pin: None,
        }
    }

    /// A range that wraps around `pinned_to` when shifted by less than `unit`.
    pub fn pinned(begin: Timestamp, end: Timestamp, pinned_to: Timestamp, unit: Unit) -> Self {
        TimeRange {
            begin,
            end,
            pin: Some(Pin { pinned_to, unit }),
        }
    }

    /// The pin, for ranges made by a range function.
    pub fn pin(&self) -> Option<Pin> {
        self.pin
    }

    /// `end - begin`.
    pub fn length(&self) -> TimeDelta {
        self.end - self.begin
    }

    /// `end - begin` in seconds (fractional).
    pub fn total_seconds(&self) -> f64 {
        let d = self.length();
        d.num_seconds() as f64 + f64::from(d.subsec_nanos()) * 1e-9
    }

    /// Half-open membership: `begin <= t < end`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.begin <= t && t < self.end
    }

    /// The range shifted by `n` of its own lengths (positive: later; `next`/`prev` are n = 1 / -1).
    pub fn shifted(&self, n: i64) -> Result<TimeRange, TimexError> {
        let len = i128::from(length_micros(self)?);
        let by = len * i128::from(n);
        Ok(TimeRange {
            begin: calendar::shift_micros(self.begin, by)?,
            end: calendar::shift_micros(self.end, by)?,
            pin: self.pin,
        })
    }

    /// The next range of the same length (`[end, end + length)`).
    pub fn next(&self) -> Result<TimeRange, TimexError> {
        self.shifted(1)
    }

    /// The previous range of the same length (`[begin - length, begin)`).
    pub fn prev(&self) -> Result<TimeRange, TimexError> {
        self.shifted(-1)
    }

    /// Apply `+`, `-` or `@` to both ends. A unit-less duration takes its unit from the
    /// range length. On a pinned range, a duration smaller than the pin unit is followed
    /// by whole-length moves until the range contains the pinned instant again; a
    /// duration that is not smaller gives the plain shifted range (the original raised
    /// AttributeError there).
    pub fn apply(&self, op: Op, duration: &Duration) -> Result<TimeRange, TimexError> {
        let resolved = duration
            .resolve_for(self.length())
            .ok_or_else(|| TimexError::InvalidDuration(format!("{duration} overflows")))?;
        let (begin, end) = match op {
            Op::Plus => (
                calendar::add(self.begin, &resolved, false)?,
                calendar::add(self.end, &resolved, false)?,
            ),
            Op::Minus => (
                calendar::add(self.begin, &resolved, true)?,
                calendar::add(self.end, &resolved, true)?,
            ),
            Op::Replace => (
                calendar::replace(self.begin, &resolved)?,
                calendar::replace(self.end, &resolved)?,
            ),
        };
        let moved = TimeRange::new(begin, end);
        match self.pin {
            Some(pin) if duration.is_smaller_than(&Duration::of(pin.unit, 1)) => {
                wrap_around(moved, pin)
            }
            _ => Ok(moved),
        }
    }
}

fn length_micros(r: &TimeRange) -> Result<i64, TimexError> {
    r.length()
        .num_microseconds()
        .ok_or_else(|| TimexError::InvalidDate("range is too long".into()))
}

/// Move `range` by whole lengths until it contains `pin.pinned_to` (the original's
/// `_pin_adjust`, computed in one step instead of a loop).
fn wrap_around(range: TimeRange, pin: Pin) -> Result<TimeRange, TimexError> {
    let p = pin.pinned_to;
    let range = TimeRange {
        pin: Some(pin),
        ..range
    };
    if range.contains(p) {
        return Ok(range);
    }
    let len = length_micros(&range)?;
    if len <= 0 {
        return Err(TimexError::InvalidDate(format!(
            "cannot wrap the empty range [{}, {}) around {p}",
            range.begin, range.end
        )));
    }
    let micros = |d: TimeDelta| {
        d.num_microseconds()
            .ok_or_else(|| TimexError::InvalidDate("time shift is too large".into()))
    };
    let n = if range.begin > p {
        // ceil((begin - p) / len) steps back
        let gap = micros(range.begin - p)?;
        -(gap.div_euclid(len) + i64::from(gap.rem_euclid(len) != 0))
    } else {
        // end <= p: floor((p - end) / len) + 1 steps forward
        micros(p - range.end)?.div_euclid(len) + 1
    };
    range.shifted(n)
}

/// The pinned range of the hour, day, month or year containing `t`.
pub fn range_function(name: &str, t: Timestamp) -> Result<TimeRange, TimexError> {
    let unit = match name {
        "hour" => Unit::Hour,
        "day" => Unit::Day,
        "month" => Unit::Month,
        "year" => Unit::Year,
        _ => return Err(TimexError::UnknownFunction(name.to_string())),
    };
    let begin = calendar::truncate(t, unit);
    let end = calendar::add(begin, &Duration::of(unit, 1), false)?;
    Ok(TimeRange::pinned(begin, end, t, unit))
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeMatcher {
    /// A single instant; it matches by equality.
    Timestamp(Timestamp),
    /// A half-open range; it matches `begin <= t < end`.
    Range(TimeRange),
}

impl TimeMatcher {
    /// The instant (for a range: its begin).
    pub fn timestamp(&self) -> Timestamp {
        self.begin()
    }

    /// The begin (for a timestamp: itself).
    pub fn begin(&self) -> Timestamp {
        match self {
            TimeMatcher::Timestamp(t) => *t,
            TimeMatcher::Range(r) => r.begin,
        }
    }

    /// The end (for a timestamp: itself).
    pub fn end(&self) -> Timestamp {
        match self {
            TimeMatcher::Timestamp(t) => *t,
            TimeMatcher::Range(r) => r.end,
        }
    }

    /// True for ranges.
    pub fn is_range(&self) -> bool {
        matches!(self, TimeMatcher::Range(_))
    }

    /// The range, if this is one.
    pub fn as_range(&self) -> Option<&TimeRange> {
        match self {
            TimeMatcher::Range(r) => Some(r),
            TimeMatcher::Timestamp(_) => None,
        }
    }

    /// Equality for a timestamp; `begin <= t < end` for a range.
    pub fn matches(&self, t: Timestamp) -> bool {
        match self {
            TimeMatcher::Timestamp(x) => *x == t,
            TimeMatcher::Range(r) => r.contains(t),
        }
    }

    /// The original's truth value: always true for a timestamp; `end > begin` for a range.
    pub fn is_truthy(&self) -> bool {
        match self {
            TimeMatcher::Timestamp(_) => true,
            TimeMatcher::Range(r) => r.end > r.begin,
        }
    }

    /// Length in seconds (0 for a timestamp).
    pub fn total_seconds(&self) -> f64 {
        match self {
            TimeMatcher::Timestamp(_) => 0.0,
            TimeMatcher::Range(r) => r.total_seconds(),
        }
    }

    /// Apply `+`, `-` or `@`. A unit-less duration on a timestamp is an error.
    pub fn apply(&self, op: Op, duration: &Duration) -> Result<TimeMatcher, TimexError> {
        match self {
            TimeMatcher::Timestamp(t) => {
                if duration.is_ambiguous() {
                    return Err(TimexError::InvalidDuration(format!(
                        "{duration} has no unit; unit-less durations apply to ranges only"
                    )));
                }
                Ok(TimeMatcher::Timestamp(match op {
                    Op::Plus => calendar::add(*t, duration, false)?,
                    Op::Minus => calendar::add(*t, duration, true)?,
                    Op::Replace => calendar::replace(*t, duration)?,
                }))
            }
            TimeMatcher::Range(r) => Ok(TimeMatcher::Range(r.apply(op, duration)?)),
        }
    }
}
