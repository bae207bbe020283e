//! SQL text shared by both dialects, and row <-> model conversions that do not depend on the driver.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    MySql,
}

impl Dialect {
    /// `INSERT IGNORE` (MySQL) / `INSERT OR IGNORE` (SQLite).
    pub(crate) fn insert_ignore(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INSERT OR IGNORE",
            Dialect::MySql => "INSERT IGNORE",
        }
    }

    /// Shared-lock suffix for `SELECT` (SQLite: the writer lock already serializes).
    pub(crate) fn share_lock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::MySql => " LOCK IN SHARE MODE",
        }
    }

    /// Row-lock suffix for `SELECT` (SQLite has one writer; nothing needed).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::MySql => " FOR UPDATE",
        }
    }
}

/// One value of a row handed to a backend's `insert_rows`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    I(i64),
    F(f64),
    S(&'a str),
}

impl<'a> Val<'a> {
    pub(crate) fn opt_i(v: Option<i64>) -> Self {
        v.map_or(Val::Null, Val::I)
    }
    pub(crate) fn opt_f(v: Option<f64>) -> Self {
        v.map_or(Val::Null, Val::F)
    }
    pub(crate) fn opt_s(v: Option<&'a str>) -> Self {
        v.map_or(Val::Null, Val::S)
    }
}

/// What a backend's `insert_rows` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Inserted {
    /// Rows actually inserted (an ignored conflict inserts none).
    pub affected: u64,
    /// The id of each row, in order, when every row went in and the ids are known.
    pub ids: Option<Vec<i64>>,
}

/// `?, ?, ?` with `n` placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

/// Split `items` into statement-sized pieces whose lengths come from a small
/// fixed set: `max` while at least `max` remain, then the largest power of two
/// that fits. A multi-row statement's SQL text depends on its row count, and
/// each distinct text is prepared (parsed) by the server once per connection
/// and then reused from the statement cache; with arbitrary remainders nearly
/// every batch prepared fresh statements of hundreds of rows (~2-3 ms each on
/// MariaDB). With these shapes a remainder costs at most log2(max) cached
/// executions.
pub(crate) fn shaped_chunks<T>(items: &[T], max: usize) -> ShapedChunks<'_, T> {
    ShapedChunks {
        rest: items,
        max: max.max(1),
    }
}

pub(crate) struct ShapedChunks<'a, T> {
    rest: &'a [T],
    max: usize,
}

impl<'a, T> Iterator for ShapedChunks<'a, T> {
    type Item = &'a [T];

    fn next(&mut self) -> Option<&'a [T]> {
        let len = self.rest.len();
        if len == 0 {
            return None;
        }
        let n = if len >= self.max {
            self.max
        } else {
            1 << len.ilog2()
        };
        let (piece, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(piece)
    }
}

/// Bound parameters per statement, under SQLite's limit (32,766) and MySQL's (65,535).
pub(crate) const MAX_BIND_PARAMS: usize = 30_000;

/// Group `(a, b)` pairs into `(A, B)` sets for statements of the form
/// `x IN (A) AND y IN (B)`: every pair lands in one group, and a group holds at
/// most `budget` values in all (at least one pair). Order is kept: a group ends
/// when the next pair would not fit.
pub(crate) fn pair_groups(
    pairs: impl IntoIterator<Item = (i64, i64)>,
    budget: usize,
) -> Vec<(BTreeSet<i64>, BTreeSet<i64>)> {
    let mut out: Vec<(BTreeSet<i64>, BTreeSet<i64>)> = Vec::new();
    let mut cur: (BTreeSet<i64>, BTreeSet<i64>) = Default::default();
    for (a, b) in pairs {
        let grows = usize::from(!cur.0.contains(&a)) + usize::from(!cur.1.contains(&b));
        if !cur.0.is_empty() && cur.0.len() + cur.1.len() + grows > budget {
            out.push(std::mem::take(&mut cur));
        }
        cur.0.insert(a);
        cur.1.insert(b);
    }
    if !cur.0.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{pair_groups, shaped_chunks};

    fn check_groups(pairs: &[(i64, i64)], budget: usize, expected: &[(&[i64], &[i64])]) {
        let got = pair_groups(pairs.iter().copied(), budget);
        let want: Vec<(Vec<i64>, Vec<i64>)> = expected
            .iter()
            .map(|(a, b)| (a.to_vec(), b.to_vec()))
            .collect();
        let got_vecs: Vec<(Vec<i64>, Vec<i64>)> = got
            .iter()
            .map(|(a, b)| (a.iter().copied().collect(), b.iter().copied().collect()))
            .collect();
        assert_eq!(got_vecs, want, "{pairs:?} budget {budget}");
        for (a, b) in pairs {
            assert!(
                got.iter().any(|(ka, kb)| ka.contains(a) && kb.contains(b)),
                "({a}, {b}) covered"
            );
        }
        for (a, b) in &got {
            assert!(
                a.len() + b.len() <= budget.max(2),
                "group within the budget"
            );
        }
    }

    #[test]
    fn pairs_are_grouped_within_the_parameter_budget() {
        check_groups(&[], 10, &[]);
        // One event's keys share its id: 3 keys + 1 id.
        check_groups(&[(7, 1), (8, 1), (9, 1)], 10, &[(&[7, 8, 9], &[1])]);
        // Budget 4: the fourth value would not fit a second id.
        check_groups(
            &[(7, 1), (8, 1), (9, 2), (10, 2)],
            4,
            &[(&[7, 8], &[1]), (&[9, 10], &[2])],
        );
        // A repeated key or id costs nothing.
        check_groups(&[(7, 1), (7, 2), (8, 2)], 4, &[(&[7, 8], &[1, 2])]);
        // One event with more keys than the budget spans groups.
        check_groups(
            &[(1, 9), (2, 9), (3, 9), (4, 9), (5, 9)],
            3,
            &[(&[1, 2], &[9]), (&[3, 4], &[9]), (&[5], &[9])],
        );
    }

    fn check(len: usize, max: usize, expected: &[usize]) {
        let items: Vec<usize> = (0..len).collect();
        let pieces: Vec<&[usize]> = shaped_chunks(&items, max).collect();
        let sizes: Vec<usize> = pieces.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, expected, "len {len}, max {max}");
        // In order, nothing lost or repeated.
        assert_eq!(pieces.concat(), items);
    }

    #[test]
    fn shapes_are_max_then_powers_of_two() {
        check(0, 500, &[]);
        check(1, 500, &[1]);
        check(500, 500, &[500]);
        check(1000, 500, &[500, 500]);
        check(1347, 500, &[500, 500, 256, 64, 16, 8, 2, 1]);
        check(499, 500, &[256, 128, 64, 32, 16, 2, 1]);
        check(7, 0, &[1, 1, 1, 1, 1, 1, 1]);
    }
}
