//! API-level tests: the TimeMatcher/TimeRange/Duration behaviours of the original
//! test_expression.py, the `$timestamp` default, the `Vars` impls, error columns,
//! printing, and a no-panic fuzz loop over random and mutated inputs.
use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rand::{rngs::StdRng, Rng, SeedableRng};
use stv3_timex::{parse, Duration, Op, TimeMatcher, TimeRange, Timestamp, TimexError, Unit};

fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> Timestamp {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_micro_opt(h, mi, s, us)
        .unwrap()
}

fn dt() -> Timestamp {
    ts(2014, 8, 1, 2, 10, 23, 550)
}

#[test]
fn timestamp_matcher_properties() {
    let m = TimeMatcher::Timestamp(dt());
    assert_eq!(m.timestamp(), dt());
    assert_eq!(m.begin(), dt());
    assert_eq!(m.end(), dt());
    assert!(m.matches(dt()));
    assert!(!m.matches(ts(2014, 8, 1, 2, 10, 23, 551)));
    assert!(m.is_truthy());
    assert_eq!(m.total_seconds(), 0.0);
    assert!(!m.is_range());
}

#[test]
fn range_matcher_is_half_open() {
    let r = TimeMatcher::Range(TimeRange::new(
        ts(2014, 8, 1, 0, 0, 0, 0),
        ts(2014, 8, 2, 0, 0, 0, 0),
    ));
    assert_eq!(r.timestamp(), ts(2014, 8, 1, 0, 0, 0, 0));
    for (t, expected) in [
        (ts(2014, 7, 31, 23, 59, 59, 999_999), false),
        (ts(2014, 8, 1, 0, 0, 0, 0), true),
        (ts(2014, 8, 1, 23, 59, 59, 999_999), true),
        (ts(2014, 8, 2, 0, 0, 0, 0), false),
    ] {
        assert_eq!(r.matches(t), expected, "{t}");
    }
    assert!(r.is_truthy());
    assert_eq!(r.total_seconds(), 86_400.0);
    let empty = TimeMatcher::Range(TimeRange::new(dt(), dt()));
    assert!(!empty.is_truthy());
    let half = TimeRange::new(dt(), ts(2014, 8, 1, 2, 10, 24, 50));
    assert_eq!(half.total_seconds(), 0.9995);
}

#[test]
fn range_next_prev() {
    let r = TimeRange::new(ts(2014, 8, 1, 0, 0, 0, 0), ts(2014, 8, 1, 6, 0, 0, 0));
    let n = r.next().unwrap();
    assert_eq!(
        (n.begin, n.end),
        (ts(2014, 8, 1, 6, 0, 0, 0), ts(2014, 8, 1, 12, 0, 0, 0))
    );
    let p = r.prev().unwrap();
    assert_eq!(
        (p.begin, p.end),
        (ts(2014, 7, 31, 18, 0, 0, 0), ts(2014, 8, 1, 0, 0, 0, 0))
    );
}

/// Spec §8.2: range [08-01 01:00, 08-02 01:00) pinned to 08-01 17:30:10.000025 as a day.
#[test]
fn pinned_range_wraps() {
    let pinned_to = ts(2014, 8, 1, 17, 30, 10, 25);
    let r = TimeRange::pinned(
        ts(2014, 8, 1, 1, 0, 0, 0),
        ts(2014, 8, 2, 1, 0, 0, 0),
        pinned_to,
        Unit::Day,
    );
    let check = |op: Op, d: Duration, begin: Timestamp, end: Timestamp| {
        let out = r.apply(op, &d).unwrap();
        assert_eq!((out.begin, out.end), (begin, end), "{op:?} {d}");
        assert!(out.contains(pinned_to));
        assert_eq!(out.pin().unwrap().pinned_to, pinned_to);
    };
    check(
        Op::Plus,
        Duration::of(Unit::Hour, 1),
        ts(2014, 8, 1, 2, 0, 0, 0),
        ts(2014, 8, 2, 2, 0, 0, 0),
    );
    check(
        Op::Plus,
        Duration::of(Unit::Hour, 18),
        ts(2014, 7, 31, 19, 0, 0, 0),
        ts(2014, 8, 1, 19, 0, 0, 0),
    );
    check(
        Op::Minus,
        Duration::of(Unit::Hour, 8),
        ts(2014, 8, 1, 17, 0, 0, 0),
        ts(2014, 8, 2, 17, 0, 0, 0),
    );
    check(
        Op::Replace,
        Duration::of(Unit::Hour, 18),
        ts(2014, 7, 31, 18, 0, 0, 0),
        ts(2014, 8, 1, 18, 0, 0, 0),
    );
    // not smaller than the pin unit: plain shifted range, unpinned (original: AttributeError)
    let out = r.apply(Op::Plus, &Duration::of(Unit::Day, 1)).unwrap();
    assert_eq!(
        (out.begin, out.end),
        (ts(2014, 8, 2, 1, 0, 0, 0), ts(2014, 8, 3, 1, 0, 0, 0))
    );
    assert_eq!(out.pin(), None);
}

#[test]
fn empty_pinned_range_is_an_error_not_a_hang() {
    let r = TimeRange::pinned(dt(), dt(), ts(2015, 1, 1, 0, 0, 0, 0), Unit::Day);
    let err = r.apply(Op::Plus, &Duration::of(Unit::Hour, 1)).unwrap_err();
    assert!(matches!(err, TimexError::InvalidDate(_)), "{err}");
}

#[test]
fn duration_ordering_and_sum() {
    let d = |pairs: &[(Unit, i64)]| {
        pairs
            .iter()
            .fold(Duration::new(), |acc, (u, v)| acc.with(*u, *v))
    };
    let cases: &[(Duration, Duration, bool)] = &[
        (d(&[(Unit::Hour, 6)]), d(&[(Unit::Day, 1)]), true),
        (d(&[(Unit::Day, 1)]), d(&[(Unit::Day, 1)]), false),
        (
            d(&[(Unit::Day, 1), (Unit::Hour, 6)]),
            d(&[(Unit::Day, 1)]),
            false,
        ),
        (d(&[(Unit::Day, 1)]), d(&[(Unit::Day, 2)]), true),
        (d(&[(Unit::Month, 1)]), d(&[(Unit::Day, 40)]), false),
        (d(&[(Unit::Minute, 5000)]), d(&[(Unit::Hour, 1)]), true),
        (Duration::ambiguous(30), d(&[(Unit::Hour, 1)]), true),
        (Duration::new(), Duration::new(), false),
    ];
    for (a, b, smaller) in cases {
        assert_eq!(a.is_smaller_than(b), *smaller, "{a} < {b}");
    }
    let sum = d(&[(Unit::Day, 1), (Unit::Hour, 2)])
        .checked_add(&d(&[(Unit::Hour, 3), (Unit::Second, 4)]))
        .unwrap();
    let as_dict: Vec<_> = sum.units().collect();
    assert_eq!(
        as_dict,
        vec![(Unit::Day, 1), (Unit::Hour, 5), (Unit::Second, 4)]
    );
    assert_eq!(sum.to_string(), "1d 5h 4s");
    assert_eq!(
        Duration::of(Unit::Day, i64::MAX).checked_add(&Duration::of(Unit::Day, 1)),
        None
    );
}

#[test]
fn ambiguous_duration_unit_follows_range_length() {
    let base = ts(2014, 1, 1, 0, 0, 0, 0);
    let cases: &[(i64, Unit)] = &[
        (400 * 86_400, Unit::Month),
        (30 * 86_400, Unit::Day),
        (86_400, Unit::Hour),
        (3_600, Unit::Minute),
        (60, Unit::Second),
        (59, Unit::Microsecond),
    ];
    for (secs, unit) in cases {
        let len = chrono::TimeDelta::seconds(*secs);
        let r = Duration::ambiguous(2).resolve_for(len).unwrap();
        assert_eq!(r, Duration::of(*unit, 2), "{secs}s");
        let range = TimeRange::new(base, base + len);
        assert!(range.apply(Op::Plus, &Duration::ambiguous(2)).is_ok());
    }
    // on a timestamp, through the public apply
    let err = TimeMatcher::Timestamp(dt())
        .apply(Op::Plus, &Duration::ambiguous(2))
        .unwrap_err();
    assert!(matches!(err, TimexError::InvalidDuration(_)));
}

#[test]
fn timestamp_defaults_to_now_and_can_be_bound() {
    let e = parse("day").unwrap();
    let now = ts(2020, 2, 29, 13, 0, 0, 0);
    let r = e.eval_at(&(), now).unwrap();
    assert_eq!(
        (r.begin(), r.end()),
        (ts(2020, 2, 29, 0, 0, 0, 0), ts(2020, 3, 1, 0, 0, 0, 0))
    );
    // a bound $timestamp wins over `now`
    let r = e.eval_at(&[("timestamp", dt())], now).unwrap();
    assert_eq!(r.begin(), ts(2014, 8, 1, 0, 0, 0, 0));
    // eval() uses the wall clock
    let wall = e.eval(&()).unwrap();
    assert!(wall.matches(stv3_event::now()) || wall.end() <= stv3_event::now());
    let t = parse("$timestamp - 14d").unwrap().eval(&()).unwrap();
    assert!(t.timestamp() < stv3_event::now());
}

#[test]
fn vars_implementations() {
    let e = parse("$first to $last + 1h").unwrap();
    let first = ts(2014, 8, 1, 0, 0, 0, 0);
    let last = ts(2014, 8, 1, 5, 0, 0, 0);
    let expected = (first, ts(2014, 8, 1, 6, 0, 0, 0));
    let b: BTreeMap<String, Timestamp> =
        [("first".to_string(), first), ("last".to_string(), last)].into();
    let h: HashMap<String, Timestamp> = b.clone().into_iter().collect();
    let s: Vec<(String, Timestamp)> = b.clone().into_iter().collect();
    let pairs = [("first", first), ("last", last)];
    for r in [
        e.eval(&b).unwrap(),
        e.eval(&h).unwrap(),
        e.eval(&s).unwrap(),
        e.eval(&pairs).unwrap(),
        e.eval(&&pairs[..]).unwrap(),
    ] {
        assert_eq!((r.begin(), r.end()), expected);
    }
    assert_eq!(e.variables(), vec!["first".to_string(), "last".to_string()]);
    assert_eq!(
        parse("day").unwrap().variables(),
        vec!["timestamp".to_string()]
    );
    let err = e.eval(&[("first", first)]).unwrap_err();
    assert_eq!(err, TimexError::UndefinedVariable("last".into()));
    assert_eq!(err.kind(), "expression");
}

fn check_error(src: &str, kind: &str, column: Option<usize>) {
    let err = parse(src).and_then(|e| e.eval(&[("x", dt())])).unwrap_err();
    assert_eq!((err.kind(), err.column()), (kind, column), "{src:?}: {err}");
}

#[test]
fn error_kinds_and_columns() {
    let cases: &[(&str, &str, Option<usize>)] = &[
        ("$x # 1h", "lexer", Some(4)),
        ("$x + 1h é", "lexer", Some(9)),
        ("$x +", "parser", Some(5)),
        ("$x + 2", "parser", Some(6)),
        ("$x 1h", "parser", Some(4)),
        ("$d", "parser", Some(2)),
        ("$to", "parser", Some(2)),
        ("day to $x", "parser", Some(5)),
        ("$x to day", "parser", Some(7)),
        ("day($x to $x)", "parser", Some(5)),
        ("($x", "parser", Some(4)),
        ("", "parser", Some(1)),
        ("$x + 1day", "parser", Some(6)),
        ("foo", "expression", None),
        ("$nope", "expression", None),
    ];
    for (src, kind, col) in cases {
        check_error(src, kind, *col);
    }
    let msg = parse("$x +").unwrap_err().to_string();
    assert!(
        msg.contains("column 5") && msg.contains("\"$x +\""),
        "{msg}"
    );
    assert_eq!(
        parse("foo($x)")
            .unwrap()
            .eval(&[("x", dt())])
            .unwrap_err()
            .to_string(),
        "timex: unknown function \"foo\" (known: hour, day, month, year)"
    );
}

#[test]
fn display_is_normalised_and_reparses() {
    let cases: &[(&str, &str)] = &[
        ("$x+1d   2h", "$x + 1d 2h"),
        ("($x to $w) @ 6h", "($x to $w) @ 6h"),
        ("$x to $w + 1hr 2", "$x to $w + 1h"),
        ("(((day)))+1 2", "day + 3"),
        ("day ( $x - 1yr 2mo 3sec 4us )", "day($x - 1y 2mo 3s 4us)"),
    ];
    for (src, shown) in cases {
        let Ok(e) = parse(src) else {
            // "$x to $w + 1hr 2" is a parse error (bare number on a timestamp)
            assert_eq!(*src, "$x to $w + 1hr 2");
            continue;
        };
        assert_eq!(e.to_string(), *shown, "{src}");
        let again = parse(&e.to_string()).unwrap();
        assert_eq!(again.to_string(), *shown);
        assert_eq!(again.is_range(), e.is_range());
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}$x{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(parse(&deep).unwrap_err().kind(), "parser");
    let long_chain = format!("$x{}", " + 1s".repeat(100_000));
    assert_eq!(parse(&long_chain).unwrap_err().kind(), "parser");
    let ok_chain = format!("$x{}", " + 1s".repeat(30));
    let r = parse(&ok_chain).unwrap().eval(&[("x", dt())]).unwrap();
    assert_eq!(r.timestamp(), ts(2014, 8, 1, 2, 10, 53, 550));
}

const SEEDS: &[&str] = &[
    "$x + 1d 2h",
    "($x to $w) @ 6h",
    "day($x) - 6h",
    "day @ 2",
    "hour + 1h 2",
    "year - 11mo",
    "$x @ 12mo 31d 12h 0m 0s",
    "month($x + 1y) @ 29d",
    "(day + 1h) @ 2",
    "$x to $w + 1h",
];
const ALPHABET: &[&str] = &[
    "$",
    "x",
    "w",
    "(",
    ")",
    "+",
    "-",
    "@",
    " ",
    "to",
    "day",
    "hour",
    "month",
    "year",
    "1",
    "0",
    "31",
    "29",
    "9999999999",
    "99999999999999999999",
    "us",
    "s",
    "m",
    "h",
    "d",
    "mo",
    "y",
    "yr",
    "foo",
    "#",
    "é",
    "\n",
    "12",
    "2",
    "$x",
    "$w",
    "to $x",
];

/// Never panic: random token soup and mutations of valid expressions, parsed and evaluated
/// against timestamps near the edges of the supported range.
#[test]
fn never_panics_on_random_input() {
    let mut rng = StdRng::seed_from_u64(0x71_3e);
    let times = [
        dt(),
        ts(1, 1, 1, 0, 0, 0, 0),
        ts(9999, 12, 31, 23, 59, 59, 999_999),
        ts(2016, 2, 29, 12, 0, 0, 0),
    ];
    let mut parsed_ok = 0;
    for i in 0..60_000 {
        let src: String = if i % 2 == 0 {
            let n = rng.gen_range(0..12);
            (0..n)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                .collect()
        } else {
            let mut s: Vec<char> = SEEDS[rng.gen_range(0..SEEDS.len())].chars().collect();
            for _ in 0..rng.gen_range(1..4) {
                let pos = rng.gen_range(0..=s.len());
                match rng.gen_range(0..3) {
                    0 if pos < s.len() => {
                        s.remove(pos);
                    }
                    1 => {
                        for c in ALPHABET[rng.gen_range(0..ALPHABET.len())].chars().rev() {
                            s.insert(pos, c);
                        }
                    }
                    _ if pos < s.len() => {
                        s[pos] = ALPHABET[rng.gen_range(0..ALPHABET.len())]
                            .chars()
                            .next()
                            .unwrap_or(' ')
                    }
                    _ => {}
                }
            }
            s.into_iter().collect()
        };
        if let Ok(e) = parse(&src) {
            parsed_ok += 1;
            let t = times[i % times.len()];
            let vars = [("x", t), ("w", t), ("timestamp", t)];
            let _ = e.eval(&vars);
            let _ = e.to_string();
        }
    }
    assert!(
        parsed_ok > 1_000,
        "the fuzz loop should exercise evaluation ({parsed_ok})"
    );
}

/// The deepest accepted expression parses and evaluates within a 1 MiB stack (debug build).
#[test]
fn max_depth_fits_in_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let mut accepted = 0;
            for n in 1..200 {
                let src = format!("{}$x{} + 1s", "(".repeat(n), ")".repeat(n));
                match parse(&src) {
                    Ok(e) => {
                        e.eval(&[("x", dt())]).unwrap();
                        accepted = n;
                    }
                    Err(e) => assert_eq!(e.kind(), "parser"),
                }
                let nested = format!("day({}$x{})", "(".repeat(n), ")".repeat(n));
                let _ = parse(&nested).map(|e| e.eval(&[("x", dt())]));
            }
            accepted
        })
        .unwrap();
    let accepted = handle.join().expect("no stack overflow");
    assert!(
        accepted >= 25,
        "at least 25 levels of parentheses parse ({accepted})"
    );
}
