//! SQL text for every API read, shared by the MySQL and SQLite backends (both
//! use `?` placeholders and accept backquoted identifiers). Index-friendly by
//! construction: trait filters are `EXISTS` probes on the `(event_id|stream_id,
//! name)` primary keys or `IN` lookups on the `(name, value)` indexes, and
//! lists are `ORDER BY id DESC|ASC LIMIT n` with mark paging on the id.

use std::collections::HashSet;

use stv3_event::stored::match_fragment;
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
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
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

/// The typed values a filter can match, as traits-document fragments.
fn document_match(sql: &mut Sql, f: &TraitFilter) {
    let mut values = vec![TraitValue::Text(f.text.as_str().into())];
    values.extend(f.int.map(TraitValue::Int));
    values.extend(f.float.map(TraitValue::Float));
    values.extend(f.datetime.map(|t| TraitValue::Datetime(from_micros(t))));
    sql.push(" OR (e.traits IS NOT NULL AND (");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("INSTR(e.traits, ?) > 0");
        sql.binds.push(Bind::S(match_fragment(&f.name, v)));
    }
    sql.push("))");
}

/// One trait filter. Event traits whose name is not a ready indexed trait
/// (`indexed = false`) also match in the event's traits document: index rows
/// exist only for indexed names (and for events stored before documents).
fn trait_filter(sql: &mut Sql, f: &TraitFilter, style: FilterStyle, dist: bool, indexed: bool) {
    let scan = !dist && !indexed;
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

/// `SELECT` (or `COUNT(*)`) over streams with the API filters.
pub fn streams(q: &StreamQuery, count: bool, style: FilterStyle) -> Sql {
    let mut sql = Sql::default();
    if count {
        sql.push("SELECT COUNT(*) FROM stream s WHERE 1=1");
    } else {
        sql.push(&format!("SELECT {STREAM_COLUMNS} FROM stream s WHERE 1=1"));
    }
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
    for f in &q.traits {
        trait_filter(&mut sql, f, style, true, true);
    }
    mark_bound(&mut sql, "s.id", &q.mark);
    if !count {
        order_limit(&mut sql, "s.id", &q.mark, q.limit);
    }
    sql
}

pub fn stream_by_id(id: i64) -> Sql {
    Sql {
        text: format!("SELECT {STREAM_COLUMNS} FROM stream s WHERE s.id = ?"),
        binds: vec![Bind::I(id)],
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
    }
}

pub fn traits_for(ids: &[i64]) -> Sql {
    Sql {
        text: format!(
            "SELECT event_id, name, type, t_string, t_float, t_int, t_datetime FROM `trait` WHERE event_id IN {} ORDER BY event_id, name",
            in_list(ids.len())
        ),
        binds: ids.iter().map(|i| Bind::I(*i)).collect(),
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
    for f in &q.traits {
        trait_filter(&mut sql, f, style, false, indexed.contains(&f.name));
    }
    mark_bound(&mut sql, "e.id", &q.mark);
    if !count {
        order_limit(&mut sql, "e.id", &q.mark, q.limit);
        sql.push(&format!(
            ") page JOIN event e ON e.id = page.id JOIN event_type et ON et.id = e.event_type_id ORDER BY e.id {}",
            if q.mark.ascending { "ASC" } else { "DESC" }
        ));
    }
    sql
}

pub fn event_by_message_id(message_id: &str) -> Sql {
    Sql {
        text: format!(
            "SELECT {EVENT_COLUMNS} FROM event e JOIN event_type et ON et.id = e.event_type_id WHERE e.message_id = ?"
        ),
        binds: vec![Bind::S(message_id.to_string())],
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::trait_filter as tf;

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
    fn typed_event_filter_sql() {
        let q = EventQuery {
            traits: vec![tf("memory_mb", "512")],
            mark: Mark {
                ascending: true,
                bound: None,
            },
            limit: 3,
            ..Default::default()
        };
        let indexed = HashSet::from(["memory_mb".to_string()]);
        let sql = events(&q, false, FilterStyle::In, &indexed, Dialect::MySql);
        assert!(
            sql.text.ends_with(
                "AND e.id IN (SELECT t.event_id FROM `trait` t WHERE t.name = ? AND (t.t_string = ? OR t.t_string IS NULL AND t.t_int = ? \
                 OR t.t_string IS NULL AND t.t_int IS NULL AND t.t_datetime IS NULL AND t.t_float = ?)) \
                 ORDER BY e.id ASC LIMIT ?) page JOIN event e ON e.id = page.id JOIN event_type et ON et.id = e.event_type_id \
                 ORDER BY e.id ASC"
            ),
            "{}",
            sql.text
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
}
