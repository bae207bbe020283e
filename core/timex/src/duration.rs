//! Durations (`1d 2h`, `6mo`, the unit-less "ambiguous" `2`) and their units, with
//! the original's ordering (`is_smaller_than`) and unit inference on ranges (`resolve_for`).
use std::fmt;

use chrono::TimeDelta;

/// A duration unit, largest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Microsecond,
}

impl Unit {
    /// All units, largest first (the comparison order of the original).
    pub const ALL: [Unit; 7] = [
        Unit::Year,
        Unit::Month,
        Unit::Day,
        Unit::Hour,
        Unit::Minute,
        Unit::Second,
        Unit::Microsecond,
    ];

    /// The unit for a reserved word: `us`, `s|sec`, `m|min`, `h|hr`, `d`, `mo`, `y|yr`.
    pub fn from_word(word: &str) -> Option<Unit> {
        Some(match word {
            "us" => Unit::Microsecond,
            "s" | "sec" => Unit::Second,
            "m" | "min" => Unit::Minute,
            "h" | "hr" => Unit::Hour,
            "d" => Unit::Day,
            "mo" => Unit::Month,
            "y" | "yr" => Unit::Year,
            _ => return None,
        })
    }

    /// The long name used by the original (`year`, `month`, ... `microsecond`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Year => "year",
            Unit::Month => "month",
            Unit::Day => "day",
            Unit::Hour => "hour",
            Unit::Minute => "minute",
            Unit::Second => "second",
            Unit::Microsecond => "microsecond",
        }
    }

    /// The short suffix used when printing (`y`, `mo`, `d`, `h`, `m`, `s`, `us`).
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Year => "y",
            Unit::Month => "mo",
            Unit::Day => "d",
            Unit::Hour => "h",
            Unit::Minute => "m",
            Unit::Second => "s",
            Unit::Microsecond => "us",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Nominal size in microseconds, as the original's `UNIT_SIZES`
    /// (a month counts 28 days, a year 365 days).
    fn nominal_micros(self) -> i64 {
        const DAY: i64 = 86_400_000_000;
        match self {
            Unit::Year => 365 * DAY,
            Unit::Month => 28 * DAY,
            Unit::Day => DAY,
            Unit::Hour => 3_600_000_000,
            Unit::Minute => 60_000_000,
            Unit::Second => 1_000_000,
            Unit::Microsecond => 1,
        }
    }
}

/// A duration: a value per unit (unset units are `None`, which is not the same as 0
/// for `@` and for comparisons), plus an optional unit-less ("ambiguous") number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Duration {
    values: [Option<i64>; 7],
    unknown: Option<i64>,
}

impl Duration {
    /// The empty duration (no unit set).
    pub fn new() -> Self {
        Self::default()
    }

    /// `value` of one unit.
    pub fn of(unit: Unit, value: i64) -> Self {
        Self::new().with(unit, value)
    }

    /// A unit-less number; its unit is inferred from the range it is applied to.
    pub fn ambiguous(value: i64) -> Self {
        Duration {
            values: [None; 7],
            unknown: Some(value),
        }
    }

    /// This duration with `unit` set to `value`.
    pub fn with(mut self, unit: Unit, value: i64) -> Self {
        self.values[unit.index()] = Some(value);
        self
    }

    /// The value of one unit, if set.
    pub fn get(&self, unit: Unit) -> Option<i64> {
        self.values[unit.index()]
    }

    /// The unit-less part, if any.
    pub fn unknown(&self) -> Option<i64> {
        self.unknown
    }

    /// True when a unit-less number is part of the duration.
    pub fn is_ambiguous(&self) -> bool {
        self.unknown.is_some()
    }

    /// The set units with their values, largest unit first (the original's `as_dict`).
    pub fn units(&self) -> impl Iterator<Item = (Unit, i64)> + '_ {
        Unit::ALL
            .iter()
            .filter_map(|u| self.get(*u).map(|v| (*u, v)))
    }

    /// Unit-wise sum (`1d 2h` is `1d` + `2h`); `None` on overflow.
    pub fn checked_add(&self, other: &Duration) -> Option<Duration> {
        fn add(a: Option<i64>, b: Option<i64>) -> Option<Option<i64>> {
            match (a, b) {
                (Some(x), Some(y)) => x.checked_add(y).map(Some),
                (x, None) => Some(x),
                (None, y) => Some(y),
            }
        }
        let mut out = *self;
        for i in 0..7 {
            out.values[i] = add(self.values[i], other.values[i])?;
        }
        out.unknown = add(self.unknown, other.unknown)?;
        Some(out)
    }

    /// The original's `__lt__`: walk the units from largest to smallest; the first unit
    /// set on either side decides (both set: compare values; only one side set: that
    /// side is the larger). The unit-less part is ignored.
    pub fn is_smaller_than(&self, other: &Duration) -> bool {
        for u in Unit::ALL {
            match (self.get(u), other.get(u)) {
                (Some(a), Some(b)) => return a < b,
                (Some(_), None) => return false,
                (None, Some(_)) => return true,
                (None, None) => {}
            }
        }
        false
    }

    /// The original's `in_context`: resolve the unit-less part against a range of the
    /// given length (>= 1 year: month; >= 28 days: day; >= 1 day: hour; >= 1 hour:
    /// minute; >= 1 minute: second; otherwise microsecond) and add it to that unit.
    /// (The original crashed with a NameError on ranges shorter than a minute.)
    pub fn resolve_for(&self, range_length: TimeDelta) -> Option<Duration> {
        let Some(unknown) = self.unknown else {
            return Some(*self);
        };
        let len = range_length
            .num_microseconds()
            .map_or(i64::MAX, i64::saturating_abs);
        let unit = if len >= Unit::Year.nominal_micros() {
            Unit::Month
        } else if len >= Unit::Month.nominal_micros() {
            Unit::Day
        } else if len >= Unit::Day.nominal_micros() {
            Unit::Hour
        } else if len >= Unit::Hour.nominal_micros() {
            Unit::Minute
        } else if len >= Unit::Minute.nominal_micros() {
            Unit::Second
        } else {
            Unit::Microsecond
        };
        let mut out = *self;
        out.unknown = None;
        let v = match out.get(unit) {
            Some(v) => v.checked_add(unknown)?,
            None => unknown,
        };
        Some(out.with(unit, v))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (u, v) in self.units() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{v}{}", u.suffix())?;
        }
        if let Some(v) = self.unknown {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}
