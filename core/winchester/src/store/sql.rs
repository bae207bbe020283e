//! SQL text shared by both dialects, and row <-> model conversions that do not depend on the driver.

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

#[cfg(test)]
mod tests {
    use super::shaped_chunks;

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
