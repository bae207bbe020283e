//! SQL text for every API read, shared by the MySQL and SQLite backends (both
//! use `?` placeholders and accept backquoted identifiers). Index-friendly by
//! construction: trait filters are `EXISTS` probes on the `(event_id|stream_id,
//! name)` primary keys or `IN` lookups on the `(name, value)` indexes (an
//! indexed event trait on SQLite: its integer keys in `trait_key`, see
//! `keyed_filter`), and lists are `ORDER BY id DESC|ASC LIMIT n` with mark paging on the id. A page
//! with a filter that has a value index (any distinguishing trait; an indexed
//! event trait) is driven from that index instead ([`streams_page`], the events
//! page): each typed form of the value walks it in owner-id order up to LIMIT.

use std::collections::HashSet;

use stv3_event::stored::{index_key, match_fragment};
use stv3_event::{from_micros, TraitValue};

use crate::model::{EventQuery, Mark, StreamQuery, TraitFilter};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    I(i64),
    F(f64),
    S(String),
}

/// SQL text and its parameters, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    /// A lookup by key (primary or unique): one plan whatever the values, so
    /// its prepared statement is worth keeping on every backend.
    pub by_key: bool,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// The statement with each `?` replaced by its parameter as a MySQL
    /// literal, for the text protocol: one round trip instead of prepare,
    /// execute and close, and a plan made for these values. Strings become
    /// `_utf8mb4 X'…'` hex literals, which no `sql_mode` reads differently
    /// and nothing in them can end; floats use exponent form (a DOUBLE, not
    /// a DECIMAL). `None` when a float has no literal (NaN, ±inf): run the
    /// prepared form instead. The SQL of this module has no string literals
    /// or quoted identifiers holding a `?`, so every `?` is a placeholder.
    pub fn inlined_mysql(&self) -> Option<String> {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.text.len() + 24 * self.binds.len());
        let mut binds = self.binds.iter();
        for (i, part) in self.text.split('?').enumerate() {
            if i > 0 {
                match binds.next()? {
                    Bind::I(v) => write!(out, "{v}").ok()?,
                    Bind::F(v) if v.is_finite() => write!(out, "{v:e}").ok()?,
                    Bind::F(_) => return None,
                    Bind::S(v) => {
                        out.push_str("_utf8mb4 X'");
                        for b in v.bytes() {
                            write!(out, "{b:02X}").ok()?;
                        }
                        out.push('\'');
                    }
                }
            }
            out.push_str(part);
        }
        // As many placeholders as parameters, or the prepared form's error.
        binds.next().is_none().then_some(out)
    }
}

/// How trait filters are written. `Exists` walks the main table in id order and
/// probes the trait primary key per row (best when the filter matches many rows);
/// `In` starts from the `(name, value)` index (best when it matches few).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterStyle {
    Exists,
    In,
}

/// The typed comparisons for one filter: `(col = ? OR col2 = ? ...)`.
fn typed_match(sql: &mut Sql, f: &TraitFilter, alias: &str, prefix: &str, dist: bool) {
    // Event traits: along the MySQL value index (name, t_string, t_int,
    // t_datetime, t_float); a row sets one value column, those before it are NULL.
    let null = |cols: &[&str]| -> String {
        if dist {
            String::new()
        } else {
            cols.iter()
                .map(|c| format!("{alias}.{prefix}_{c} IS NULL AND "))
                .collect()
        }
    };
    let mut parts: Vec<String> = Vec::new();
    parts.push(format!("{alias}.{prefix}_string = ?"));
    sql.binds.push(Bind::S(f.text.clone()));
    if let Some(i) = f.int {
        parts.push(format!("{}{alias}.{prefix}_int = ?", null(&["string"])));
        sql.binds.push(Bind::I(i));
    }
    if let Some(x) = f.float {
        parts.push(format!(
            "{}{alias}.{prefix}_float = ?",
            null(&["string", "int", "datetime"])
        ));
        sql.binds.push(Bind::F(x));
    }
    if let Some(t) = f.datetime {
        parts.push(format!(
            "{}{alias}.{prefix}_datetime = ?",
            null(&["string", "int"])
        ));
        sql.binds.push(Bind::I(t));
        if dist {
            // A datetime matches a time-range distinguishing trait that contains it.
            parts.push(format!(
                "({alias}.dt_timerange_begin <= ? AND {alias}.dt_timerange_end > ?)"
            ));
            sql.binds.push(Bind::I(t));
            sql.binds.push(Bind::I(t));
        }
    }
    if parts.len() == 1 {
        sql.push(&parts[0]);
    } else {
        sql.push("(");
        sql.push(&parts.join(" OR "));
        sql.push(")");
    }
}

/// Where a filter on an event trait finds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventIndex {
    /// Not a ready indexed name: the `trait` rows of events stored before
    /// traits documents, or the document.
    Scan,
    /// MySQL: the name's `trait` rows, along the `(name, value)` index.
    Rows,
    /// SQLite: the integer keys in `trait_key` (`index_key`), confirmed in
    /// the document (a key can collide).
    Keys,
}

impl EventIndex {
    fn of(name: &str, indexed: &HashSet<String>, dialect: Dialect) -> Self {
        match (indexed.contains(name), dialect) {
            (false, _) => EventIndex::Scan,
            (true, Dialect::MySql) => EventIndex::Rows,
            (true, Dialect::Sqlite) => EventIndex::Keys,
        }
    }
}

/// The typed values a filter can match: text, then int, float and datetime
/// when the text parses as one.
fn typed_values(f: &TraitFilter) -> Vec<TraitValue> {
    let mut values = vec![TraitValue::Text(f.text.as_str().into())];
    values.extend(f.int.map(TraitValue::Int));
    values.extend(f.float.map(TraitValue::Float));
    values.extend(f.datetime.map(|t| TraitValue::Datetime(from_micros(t))));
    values
}

/// `INSTR(e.traits, ?) > 0 OR ...`: one of `values` is in the document.
fn in_document(sql: &mut Sql, name: &str, values: &[TraitValue]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("INSTR(e.traits, ?) > 0");
        sql.binds.push(Bind::S(match_fragment(name, v)));
    }
}

/// The typed values a filter can match, as traits-document fragments.
fn document_match(sql: &mut Sql, f: &TraitFilter) {
    sql.push(" OR (e.traits IS NOT NULL AND (");
    in_document(sql, &f.name, &typed_values(f));
    sql.push("))");
}

/// A filter on an indexed event trait on SQLite: a key of one of its typed
/// values in `trait_key`, and that value in the document (events stored
/// before documents have keys made from their rows, and no document).
fn keyed_filter(sql: &mut Sql, f: &TraitFilter, style: FilterStyle) {
    let values = typed_values(f);
    let list = vec!["?"; values.len()].join(", ");
    match style {
        FilterStyle::Exists => sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM trait_key k WHERE k.event_id = e.id AND k.key IN ({list}))"
        )),
        FilterStyle::In => sql.push(&format!(
            " AND e.id IN (SELECT k.event_id FROM trait_key k WHERE k.key IN ({list}))"
        )),
    }
    sql.binds
        .extend(values.iter().map(|v| Bind::I(index_key(&f.name, v))));
    sql.push(" AND (e.traits IS NULL OR ");
    in_document(sql, &f.name, &values);
    sql.push(")");
}

/// One trait filter (`dist`: on distinguishing traits, always indexed).
/// Event traits whose name is not a ready indexed trait ([`EventIndex::Scan`])
/// also match in the event's traits document: index rows exist only for
/// indexed names (and for events stored before documents).
fn trait_filter(sql: &mut Sql, f: &TraitFilter, style: FilterStyle, dist: bool, index: EventIndex) {
    if !dist && index == EventIndex::Keys {
        keyed_filter(sql, f, style);
        return;
    }
    let scan = !dist && index == EventIndex::Scan;
    if scan {
        sql.push(" AND (1=1");
    }
    let (table, alias, owner, key, prefix) = if dist {
        ("dist_trait", "d", "s.id", "stream_id", "dt")
    } else {
        ("`trait`", "t", "e.id", "event_id", "t")
    };
    match style {
        FilterStyle::Exists => sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM {table} {alias} WHERE {alias}.{key} = {owner} AND {alias}.name = ? AND "
        )),
        FilterStyle::In => sql.push(&format!(" AND {owner} IN (SELECT {alias}.{key} FROM {table} {alias} WHERE {alias}.name = ? AND ")),
    }
    sql.binds.push(Bind::S(f.name.clone()));
    typed_match(sql, f, alias, prefix, dist);
    sql.push(")");
    if scan {
        document_match(sql, f);
        sql.push(")");
    }
}

fn mark_bound(sql: &mut Sql, col: &str, mark: &Mark) {
    if let Some(b) = mark.bound {
        sql.push(&format!(
            " AND {col} {} ?",
            if mark.ascending { ">" } else { "<" }
        ));
        sql.binds.push(Bind::I(b));
    }
}

fn order_limit(sql: &mut Sql, col: &str, mark: &Mark, limit: u32) {
    sql.push(&format!(
        " ORDER BY {col} {} LIMIT ?",
        if mark.ascending { "ASC" } else { "DESC" }
    ));
    sql.binds.push(Bind::I(limit as i64));
}

pub const STREAM_COLUMNS: &str =
    "s.id, s.name, s.state, s.first_event, s.last_event, s.fire_timestamp, s.expire_timestamp";

/// `SELECT` (or `COUNT(*)`) over streams with the API filters, walking
/// `stream` in id order. A page with a trait filter is [`streams_page`] instead.
pub fn streams(q: &StreamQuery, count: bool, style: FilterStyle) -> Sql {
    let mut sql = Sql::default();
    if count {
        sql.push("SELECT COUNT(*) FROM stream s WHERE 1=1");
    } else {
        sql.push(&format!("SELECT {STREAM_COLUMNS} FROM stream s WHERE 1=1"));
    }
    stream_filters(&mut sql, q);
    for f in &q.traits {
        trait_filter(&mut sql, f, style, true, EventIndex::Rows);
    }
    mark_bound(&mut sql, "s.id", &q.mark);
    if !count {
        order_limit(&mut sql, "s.id", &q.mark, q.limit);
    }
    sql
}

/// A time range of a distinguishing trait that contains a filter's datetime `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeMatch {
    /// Every range with this begin ends at `end` (> t): equality on the whole
    /// `ix_dist_trait_timerange` key, so the walk comes in stream_id order.
    Exact { begin: i64, end: i64 },
    /// Ranges with this begin end at different times: those ending after `t`.
    EndsAfter { begin: i64, t: i64 },
}

/// The distinct range starts of distinguishing trait `name` at or before `t`,
/// each with the least and the greatest end among its rows. On MySQL/MariaDB a
/// loose index scan of `ix_dist_trait_timerange` ("Using index for group-by":
/// one index dive per distinct start, a few per day of data, 0.07 ms over 100 k
/// ranges) instead of reading every range that starts before `t` (all of them,
/// for a recent `t`: 37 ms). The `name` in the GROUP BY is what lets MariaDB
/// see the prefix. Rows: (begin, min end, max end).
pub fn range_starts(name: &str, t: i64) -> Sql {
    Sql {
        text: "SELECT dt_timerange_begin, MIN(dt_timerange_end), MAX(dt_timerange_end) FROM dist_trait \
               WHERE name = ? AND dt_timerange_begin <= ? GROUP BY name, dt_timerange_begin"
            .into(),
        binds: vec![Bind::S(name.to_string()), Bind::I(t)],
        by_key: false,
    }
}

/// The ranges containing `t`, from the rows of [`range_starts`].
pub fn ranges_containing(starts: &[(i64, Option<i64>, Option<i64>)], t: i64) -> Vec<RangeMatch> {
    starts
        .iter()
        .filter_map(|&(begin, lo, hi)| match (lo, hi) {
            (Some(lo), Some(hi)) if hi > t => Some(if lo == hi {
                RangeMatch::Exact { begin, end: hi }
            } else {
                RangeMatch::EndsAfter { begin, t }
            }),
            _ => None,
        })
        .collect()
}

/// A page of streams with at least one trait filter, driven from `dist_trait`
/// by the first one. Each typed alternative of its value (text, int, float,
/// datetime, and every time range in `ranges`) is one branch that walks a
/// `(name, value)` index in stream_id order, joins the stream for the other
/// filters and stops at LIMIT; the page is the newest of their union. Walking
/// `stream` instead visits every newer stream first: 40 ms for a day of 100 k
/// streams a month old, against ~1 ms.
pub fn streams_page(
    q: &StreamQuery,
    style: FilterStyle,
    ranges: &[RangeMatch],
    dialect: Dialect,
) -> Sql {
    let Some((first, rest)) = q.traits.split_first() else {
        return streams(q, false, style);
    };
    let mut alternatives = typed_alternatives(first, |col| format!("d.dt_{col} = ?"));
    for r in ranges {
        alternatives.push(match *r {
            RangeMatch::Exact { begin, end } => (
                "d.dt_timerange_begin = ? AND d.dt_timerange_end = ?".into(),
                vec![Bind::I(begin), Bind::I(end)],
            ),
            RangeMatch::EndsAfter { begin, t } => (
                "d.dt_timerange_begin = ? AND d.dt_timerange_end > ?".into(),
                vec![Bind::I(begin), Bind::I(t)],
            ),
        });
    }
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {STREAM_COLUMNS} FROM ("));
    driven_union(
        &mut sql,
        &format!(
            "dist_trait d {} stream s ON s.id = d.stream_id",
            forced_join(dialect)
        ),
        ("d", "stream_id"),
        Some(&first.name),
        alternatives,
        &q.mark,
        q.limit,
        |sql| {
            stream_filters(sql, q);
            for f in rest {
                trait_filter(sql, f, style, true, EventIndex::Rows);
            }
        },
    );
    sql.push(") page JOIN stream s ON s.id = page.id");
    order_limit(&mut sql, "s.id", &q.mark, q.limit);
    sql
}

/// The conditions on the stream row itself.
fn stream_filters(sql: &mut Sql, q: &StreamQuery) {
    if let Some(t) = q.older_than {
        sql.push(" AND s.first_event < ?");
        sql.binds.push(Bind::I(t));
    }
    if let Some(t) = q.younger_than {
        sql.push(" AND s.last_event > ?");
        sql.binds.push(Bind::I(t));
    }
    if let Some(st) = q.state {
        sql.push(" AND s.state = ?");
        sql.binds.push(Bind::I(st));
    }
    if let Some(name) = &q.trigger_name {
        sql.push(" AND s.name = ?");
        sql.binds.push(Bind::S(name.clone()));
    }
}

pub fn stream_by_id(id: i64) -> Sql {
    Sql {
        text: format!("SELECT {STREAM_COLUMNS} FROM stream s WHERE s.id = ?"),
        binds: vec![Bind::I(id)],
        by_key: true,
    }
}

fn in_list(n: usize) -> String {
    let mut s = String::with_capacity(n * 2 + 2);
    s.push('(');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s.push(')');
    s
}

pub fn dist_traits_for(ids: &[i64]) -> Sql {
    Sql {
        text: format!(
            "SELECT stream_id, name, type, dt_string, dt_float, dt_int, dt_datetime, dt_timerange_begin, dt_timerange_end \
             FROM dist_trait WHERE stream_id IN {} ORDER BY stream_id, name",
            in_list(ids.len())
        ),
        binds: ids.iter().map(|i| Bind::I(*i)).collect(),
        by_key: true,
    }
}

pub fn traits_for(ids: &[i64]) -> Sql {
    Sql {
        text: format!(
            "SELECT event_id, name, type, t_string, t_float, t_int, t_datetime FROM `trait` WHERE event_id IN {} ORDER BY event_id, name",
            in_list(ids.len())
        ),
        binds: ids.iter().map(|i| Bind::I(*i)).collect(),
        by_key: true,
    }
}

pub const EVENT_COLUMNS: &str = "e.id, e.message_id, e.generated, et.`desc`, e.traits";

/// The SQL dialect, for the few index hints that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Sqlite,
}

/// `SELECT` (or `COUNT(*)`) over events with the API filters. An unknown
/// `event_name` simply matches nothing (the original inserted it: a write on GET).
/// `indexed`: the ready indexed trait names (filters on them use the index alone).
pub fn events(
    q: &EventQuery,
    count: bool,
    style: FilterStyle,
    indexed: &HashSet<String>,
    dialect: Dialect,
) -> Sql {
    if !count {
        if let Some(driver) = q.traits.iter().position(|f| indexed.contains(&f.name)) {
            return events_page(q, driver, style, indexed, dialect);
        }
    }
    let mut sql = Sql::default();
    // A bounded time window (both ends) is walked on the `generated` index and
    // its ids sorted, instead of walking the id index backwards from the newest
    // event until the window is reached (seconds for an old window on 1M events).
    let window_hint = match (q.from.is_some() && q.to.is_some(), dialect) {
        (false, _) => "",
        (true, Dialect::MySql) => " FORCE INDEX (ix_event_generated)",
        (true, Dialect::Sqlite) => " INDEXED BY ix_event_generated",
    };
    // A page is a deferred join: the ids first, from `event` alone (so the
    // planner walks the id index and stops at LIMIT instead of driving from
    // event_type and sorting every match), then the rows of those ids.
    if count {
        sql.push(&format!(
            "SELECT COUNT(*) FROM event e{window_hint} WHERE 1=1"
        ));
    } else {
        sql.push(&format!(
            "SELECT {EVENT_COLUMNS} FROM (SELECT e.id FROM event e{window_hint} WHERE 1=1"
        ));
    }
    event_filters(&mut sql, q);
    for f in &q.traits {
        trait_filter(
            &mut sql,
            f,
            style,
            false,
            EventIndex::of(&f.name, indexed, dialect),
        );
    }
    mark_bound(&mut sql, "e.id", &q.mark);
    if !count {
        order_limit(&mut sql, "e.id", &q.mark, q.limit);
        page_rows(&mut sql, &q.mark);
    }
    sql
}

/// The conditions on the event row itself.
fn event_filters(sql: &mut Sql, q: &EventQuery) {
    if let Some(t) = q.from {
        sql.push(" AND e.generated > ?");
        sql.binds.push(Bind::I(t));
    }
    if let Some(t) = q.to {
        sql.push(" AND e.generated <= ?");
        sql.binds.push(Bind::I(t));
    }
    if let Some(name) = &q.event_name {
        sql.push(" AND e.event_type_id = (SELECT et2.id FROM event_type et2 WHERE et2.`desc` = ?)");
        sql.binds.push(Bind::S(name.clone()));
    }
}

/// Close the ids subquery `page` and fetch the rows of its ids.
fn page_rows(sql: &mut Sql, mark: &Mark) {
    sql.push(&format!(
        ") page JOIN event e ON e.id = page.id JOIN event_type et ON et.id = e.event_type_id ORDER BY e.id {}",
        if mark.ascending { "ASC" } else { "DESC" }
    ));
}

/// One (condition, binds) per typed form of a filter's value: text, then int,
/// float and datetime when the value parses as one. `cond` writes the condition
/// for a value column suffix (`string`, `int`, `float`, `datetime`).
fn typed_alternatives(f: &TraitFilter, cond: impl Fn(&str) -> String) -> Vec<(String, Vec<Bind>)> {
    let mut out = vec![(cond("string"), vec![Bind::S(f.text.clone())])];
    out.extend(f.int.map(|i| (cond("int"), vec![Bind::I(i)])));
    out.extend(f.float.map(|x| (cond("float"), vec![Bind::F(x)])));
    out.extend(f.datetime.map(|t| (cond("datetime"), vec![Bind::I(t)])));
    out
}

/// The join that keeps the driving table outside (the planner would rather
/// drive from an index of the joined table and sort).
fn forced_join(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySql => "STRAIGHT_JOIN",
        Dialect::Sqlite => "CROSS JOIN",
    }
}

/// The UNION of one ids subquery per typed alternative of the driving filter
/// (`alternatives`: condition and binds). Each walks the driving table's
/// `(name, value...)` index in owner-id order (`alias.key`), joins the owner
/// row for the other filters (`rest`) and stops at LIMIT.
#[allow(clippy::too_many_arguments)]
fn driven_union(
    sql: &mut Sql,
    from: &str,
    (alias, key): (&str, &str),
    name: Option<&str>,
    alternatives: Vec<(String, Vec<Bind>)>,
    mark: &Mark,
    limit: u32,
    rest: impl Fn(&mut Sql),
) {
    let col = format!("{alias}.{key}");
    for (i, (cond, binds)) in alternatives.into_iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ");
        }
        sql.push(&format!(
            "SELECT id FROM (SELECT {col} AS id FROM {from} WHERE "
        ));
        if let Some(name) = name {
            sql.push(&format!("{alias}.name = ? AND "));
            sql.binds.push(Bind::S(name.to_string()));
        }
        sql.push(&cond);
        sql.binds.extend(binds);
        rest(sql);
        mark_bound(sql, &col, mark);
        order_limit(sql, &col, mark, limit);
        sql.push(&format!(") b{i}"));
    }
}

/// A page of events with a filter on an indexed trait, driven from its index:
/// one branch per typed alternative, each walking the index in event-id order
/// with its whole prefix fixed. MySQL: the `trait` rows along `ix_trait_value`,
/// the other value columns `IS NULL`. SQLite: the `trait_key` entries of the
/// value's key, confirmed in the document. Walking `event` instead probes every
/// newer event (15 ms for a tenant's newest 50 of 1 M events).
fn events_page(
    q: &EventQuery,
    driver: usize,
    style: FilterStyle,
    indexed: &HashSet<String>,
    dialect: Dialect,
) -> Sql {
    let f = &q.traits[driver];
    let (from, owner, name, alternatives) = match EventIndex::of(&f.name, indexed, dialect) {
        EventIndex::Keys => {
            let alternatives = typed_values(f)
                .iter()
                .map(|v| {
                    (
                        "k.key = ? AND (e.traits IS NULL OR INSTR(e.traits, ?) > 0)".to_string(),
                        vec![
                            Bind::I(index_key(&f.name, v)),
                            Bind::S(match_fragment(&f.name, v)),
                        ],
                    )
                })
                .collect();
            ("trait_key k", ("k", "event_id"), None, alternatives)
        }
        _ => {
            let typed = |col: &str| {
                ["t_string", "t_int", "t_datetime", "t_float"]
                    .iter()
                    .map(|c| {
                        if *c == col {
                            format!("t.{c} = ?")
                        } else {
                            format!("t.{c} IS NULL")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            let alternatives = typed_alternatives(f, |col| typed(&format!("t_{col}")));
            (
                "`trait` t",
                ("t", "event_id"),
                Some(f.name.as_str()),
                alternatives,
            )
        }
    };
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {EVENT_COLUMNS} FROM ("));
    driven_union(
        &mut sql,
        &format!(
            "{from} {} event e ON e.id = {}.{}",
            forced_join(dialect),
            owner.0,
            owner.1
        ),
        owner,
        name,
        alternatives,
        &q.mark,
        q.limit,
        |sql| {
            event_filters(sql, q);
            for (i, other) in q.traits.iter().enumerate() {
                if i != driver {
                    trait_filter(
                        sql,
                        other,
                        style,
                        false,
                        EventIndex::of(&other.name, indexed, dialect),
                    );
                }
            }
        },
    );
    page_rows(&mut sql, &q.mark);
    sql.push(" LIMIT ?");
    sql.binds.push(Bind::I(q.limit as i64));
    sql
}

pub fn event_by_message_id(message_id: &str) -> Sql {
    Sql {
        text: format!(
            "SELECT {EVENT_COLUMNS} FROM event e JOIN event_type et ON et.id = e.event_type_id WHERE e.message_id = ?"
        ),
        binds: vec![Bind::S(message_id.to_string())],
        by_key: true,
    }
}

/// A stream's events, oldest `generated` first (as winchester returned them).
pub fn stream_events(stream_id: i64) -> Sql {
    Sql {
        text: format!(
            "SELECT {EVENT_COLUMNS} FROM streamevent se JOIN event e ON e.id = se.event_id \
             JOIN event_type et ON et.id = e.event_type_id WHERE se.stream_id = ? ORDER BY e.generated ASC, e.id ASC"
        ),
        binds: vec![Bind::I(stream_id)],
        by_key: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::trait_filter as tf;

    fn check_inlined(text: &str, binds: Vec<Bind>, expected: Option<&str>) {
        let s = Sql {
            text: text.into(),
            binds,
            by_key: false,
        };
        assert_eq!(s.inlined_mysql().as_deref(), expected, "{text}");
    }

    #[test]
    fn parameters_inlined_as_mysql_literals() {
        use Bind::*;
        check_inlined("SELECT 1", vec![], Some("SELECT 1"));
        check_inlined(
            "a = ? AND b < ?",
            vec![I(-7), I(i64::MAX)],
            Some("a = -7 AND b < 9223372036854775807"),
        );
        check_inlined("f = ?", vec![F(2048.0)], Some("f = 2.048e3"));
        check_inlined("f = ?", vec![F(-0.1)], Some("f = -1e-1"));
        check_inlined("f = ?", vec![F(1e-300)], Some("f = 1e-300"));
        check_inlined("f = ?", vec![F(f64::NAN)], None);
        check_inlined("f = ?", vec![F(f64::INFINITY)], None);
        // Quotes, backslashes, comment starts and non-ASCII cannot escape a hex literal.
        check_inlined(
            "s = ?",
            vec![S("a'b\\".into())],
            Some("s = _utf8mb4 X'6127625C'"),
        );
        check_inlined(
            "s = ?",
            vec![S("x' OR 1=1 -- é".into())],
            Some("s = _utf8mb4 X'7827204F5220313D31202D2D20C3A9'"),
        );
        check_inlined("s = ?", vec![S(String::new())], Some("s = _utf8mb4 X''"));
        // A count mismatch is left to the prepared form to report.
        check_inlined("a = ? AND b = ?", vec![I(1)], None);
        check_inlined("a = ?", vec![I(1), I(2)], None);
    }

    #[test]
    fn stream_list_sql() {
        let q = StreamQuery {
            state: Some(4),
            trigger_name: Some("t".into()),
            traits: vec![tf("instance_id", "abc")],
            mark: Mark {
                ascending: false,
                bound: Some(10),
            },
            limit: 5,
            ..Default::default()
        };
        let sql = streams(&q, false, FilterStyle::Exists);
        assert_eq!(
            sql.text,
            "SELECT s.id, s.name, s.state, s.first_event, s.last_event, s.fire_timestamp, s.expire_timestamp FROM stream s \
             WHERE 1=1 AND s.state = ? AND s.name = ? AND EXISTS (SELECT 1 FROM dist_trait d WHERE d.stream_id = s.id \
             AND d.name = ? AND d.dt_string = ?) AND s.id < ? ORDER BY s.id DESC LIMIT ?"
        );
        assert_eq!(
            sql.binds,
            vec![
                Bind::I(4),
                Bind::S("t".into()),
                Bind::S("instance_id".into()),
                Bind::S("abc".into()),
                Bind::I(10),
                Bind::I(5)
            ]
        );
    }

    #[test]
    fn ranges_containing_a_time() {
        fn check(starts: &[(i64, Option<i64>, Option<i64>)], t: i64, want: &[RangeMatch]) {
            assert_eq!(ranges_containing(starts, t), want, "{starts:?} at {t}");
        }
        use RangeMatch::{EndsAfter, Exact};
        check(&[], 5, &[]);
        // One end per start: exact ranges; those ending at or before t are out.
        check(
            &[
                (5, Some(10), Some(10)),
                (0, Some(5), Some(5)),
                (-5, Some(6), Some(6)),
            ],
            5,
            &[Exact { begin: 5, end: 10 }, Exact { begin: -5, end: 6 }],
        );
        // Several ends for one start: the rows ending after t, whatever they are.
        check(&[(0, Some(3), Some(9))], 5, &[EndsAfter { begin: 0, t: 5 }]);
        check(&[(0, Some(6), Some(9))], 5, &[EndsAfter { begin: 0, t: 5 }]);
        check(&[(0, Some(2), Some(4))], 5, &[]);
        // Rows without an end never match.
        check(&[(0, None, None)], 5, &[]);
    }

    #[test]
    fn stream_page_is_driven_from_the_filter() {
        let q = StreamQuery {
            trigger_name: Some("usage".into()),
            traits: vec![
                tf("timestamp", "2015-03-01T00:00:00"),
                tf("instance_id", "abc"),
            ],
            mark: Mark {
                ascending: false,
                bound: Some(10),
            },
            limit: 50,
            ..Default::default()
        };
        let ranges = [RangeMatch::Exact { begin: 1, end: 2 }];
        let sql = streams_page(&q, FilterStyle::Exists, &ranges, Dialect::MySql);
        let branch = |cond: &str| {
            format!(
                "SELECT id FROM (SELECT d.stream_id AS id FROM dist_trait d STRAIGHT_JOIN stream s ON s.id = d.stream_id \
                 WHERE d.name = ? AND {cond} AND s.name = ? AND EXISTS (SELECT 1 FROM dist_trait d WHERE d.stream_id = s.id \
                 AND d.name = ? AND d.dt_string = ?) AND d.stream_id < ? ORDER BY d.stream_id DESC LIMIT ?)"
            )
        };
        assert_eq!(
            sql.text,
            format!(
                "SELECT {STREAM_COLUMNS} FROM ({} b0 UNION {} b1 UNION {} b2) page JOIN stream s ON s.id = page.id \
                 ORDER BY s.id DESC LIMIT ?",
                branch("d.dt_string = ?"),
                branch("d.dt_datetime = ?"),
                branch("d.dt_timerange_begin = ? AND d.dt_timerange_end = ?"),
            )
        );
        let t = q.traits[0].datetime.expect("a datetime value");
        let tail = |first: Vec<Bind>| {
            let mut b = vec![Bind::S("timestamp".into())];
            b.extend(first);
            b.extend([
                Bind::S("usage".into()),
                Bind::S("instance_id".into()),
                Bind::S("abc".into()),
                Bind::I(10),
                Bind::I(50),
            ]);
            b
        };
        let mut want = tail(vec![Bind::S("2015-03-01T00:00:00".into())]);
        want.extend(tail(vec![Bind::I(t)]));
        want.extend(tail(vec![Bind::I(1), Bind::I(2)]));
        want.push(Bind::I(50));
        assert_eq!(sql.binds, want);
        // Without a trait filter it is the plain walk.
        let plain = StreamQuery {
            limit: 5,
            ..Default::default()
        };
        assert_eq!(
            streams_page(&plain, FilterStyle::Exists, &[], Dialect::Sqlite),
            streams(&plain, false, FilterStyle::Exists)
        );
    }

    /// A page of 3 events (oldest first) with `memory_mb` = 512, an indexed name.
    fn memory_mb_512_indexed() -> (EventQuery, HashSet<String>) {
        let q = EventQuery {
            traits: vec![tf("memory_mb", "512")],
            mark: Mark {
                ascending: true,
                bound: None,
            },
            limit: 3,
            ..Default::default()
        };
        (q, HashSet::from(["memory_mb".to_string()]))
    }

    #[test]
    fn typed_event_filter_sql() {
        let (q, indexed) = memory_mb_512_indexed();
        // A page is driven from the index rows of the indexed name, one branch per typed form.
        let sql = events(&q, false, FilterStyle::In, &indexed, Dialect::MySql);
        let branch = |i: usize, cond: &str| {
            format!(
                "SELECT id FROM (SELECT t.event_id AS id FROM `trait` t STRAIGHT_JOIN event e ON e.id = t.event_id \
                 WHERE t.name = ? AND {cond} ORDER BY t.event_id ASC LIMIT ?) b{i}"
            )
        };
        assert_eq!(
            sql.text,
            format!(
                "SELECT {EVENT_COLUMNS} FROM ({} UNION {} UNION {}) page JOIN event e ON e.id = page.id \
                 JOIN event_type et ON et.id = e.event_type_id ORDER BY e.id ASC LIMIT ?",
                branch(0, "t.t_string = ? AND t.t_int IS NULL AND t.t_datetime IS NULL AND t.t_float IS NULL"),
                branch(1, "t.t_string IS NULL AND t.t_int = ? AND t.t_datetime IS NULL AND t.t_float IS NULL"),
                branch(2, "t.t_string IS NULL AND t.t_int IS NULL AND t.t_datetime IS NULL AND t.t_float = ?"),
            )
        );
        let name = || Bind::S("memory_mb".into());
        assert_eq!(
            sql.binds,
            vec![
                name(),
                Bind::S("512".into()),
                Bind::I(3),
                name(),
                Bind::I(512),
                Bind::I(3),
                name(),
                Bind::F(512.0),
                Bind::I(3),
                Bind::I(3)
            ]
        );
        let count = events(&q, true, FilterStyle::In, &indexed, Dialect::MySql);
        assert!(
            count
                .text
                .starts_with("SELECT COUNT(*) FROM event e WHERE 1=1 AND e.id IN"),
            "{}",
            count.text
        );
        assert!(!count.text.contains("LIMIT"));

        // Not indexed: the index rows (older events) OR the traits document.
        let scan = events(
            &q,
            true,
            FilterStyle::Exists,
            &HashSet::new(),
            Dialect::Sqlite,
        );
        assert!(
            scan.text.ends_with(
                "AND (1=1 AND EXISTS (SELECT 1 FROM `trait` t WHERE t.event_id = e.id AND t.name = ? AND \
                 (t.t_string = ? OR t.t_string IS NULL AND t.t_int = ? OR t.t_string IS NULL AND t.t_int IS NULL \
                 AND t.t_datetime IS NULL AND t.t_float = ?)) OR (e.traits IS NOT NULL AND \
                 (INSTR(e.traits, ?) > 0 OR INSTR(e.traits, ?) > 0 OR INSTR(e.traits, ?) > 0)))"
            ),
            "{}",
            scan.text
        );
        assert_eq!(
            scan.binds[4..],
            [
                Bind::S(r#""memory_mb":[1,"512"]"#.into()),
                Bind::S(r#""memory_mb":[2,512]"#.into()),
                Bind::S(r#""memory_mb":[3,512.0]"#.into())
            ]
        );
    }

    #[test]
    fn keyed_event_filter_sql() {
        // SQLite: an indexed name's filter goes through `trait_key`, one key per
        // typed form, each confirmed in the document.
        let (q, indexed) = memory_mb_512_indexed();
        let typed = [
            TraitValue::Text("512".into()),
            TraitValue::Int(512),
            TraitValue::Float(512.0),
        ];
        let key = |v: &TraitValue| Bind::I(index_key("memory_mb", v));
        let frag = |v: &TraitValue| Bind::S(match_fragment("memory_mb", v));
        let page = events(&q, false, FilterStyle::Exists, &indexed, Dialect::Sqlite);
        let branch = |i: usize| {
            format!(
                "SELECT id FROM (SELECT k.event_id AS id FROM trait_key k CROSS JOIN event e ON e.id = k.event_id \
                 WHERE k.key = ? AND (e.traits IS NULL OR INSTR(e.traits, ?) > 0) ORDER BY k.event_id ASC LIMIT ?) b{i}"
            )
        };
        assert_eq!(
            page.text,
            format!(
                "SELECT {EVENT_COLUMNS} FROM ({} UNION {} UNION {}) page JOIN event e ON e.id = page.id \
                 JOIN event_type et ON et.id = e.event_type_id ORDER BY e.id ASC LIMIT ?",
                branch(0),
                branch(1),
                branch(2)
            )
        );
        let mut want = Vec::new();
        for v in &typed {
            want.extend([key(v), frag(v), Bind::I(3)]);
        }
        want.push(Bind::I(3));
        assert_eq!(page.binds, want);

        for (style, probe) in [
            (
                FilterStyle::Exists,
                "EXISTS (SELECT 1 FROM trait_key k WHERE k.event_id = e.id AND k.key IN (?, ?, ?))",
            ),
            (
                FilterStyle::In,
                "e.id IN (SELECT k.event_id FROM trait_key k WHERE k.key IN (?, ?, ?))",
            ),
        ] {
            let count = events(&q, true, style, &indexed, Dialect::Sqlite);
            assert_eq!(
                count.text,
                format!(
                    "SELECT COUNT(*) FROM event e WHERE 1=1 AND {probe} AND (e.traits IS NULL OR \
                     INSTR(e.traits, ?) > 0 OR INSTR(e.traits, ?) > 0 OR INSTR(e.traits, ?) > 0)"
                )
            );
            let mut want: Vec<Bind> = typed.iter().map(key).collect();
            want.extend(typed.iter().map(frag));
            assert_eq!(count.binds, want);
        }
        // The same filter on MySQL stays on the `trait` rows.
        let mysql = events(&q, true, FilterStyle::Exists, &indexed, Dialect::MySql);
        assert!(mysql.text.contains("FROM `trait` t"), "{}", mysql.text);
        assert!(!mysql.text.contains("trait_key"), "{}", mysql.text);
    }
}
