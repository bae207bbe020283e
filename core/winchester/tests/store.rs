//! The store on both backends: the behaviours of the original `tests/test_db.py`
//! (same fixture: 3 event types, 4 events, 8 streams in every state, dist traits
//! of all 5 types), plus leases, trimming and ingest idempotence.

#![allow(clippy::approx_constant, clippy::type_complexity)] // fixture values from the original tests

mod common;

use chrono::NaiveDate;
use common::backends;
use stv3_event::{to_micros, Event, Timestamp, TraitValue};
use stv3_winchester::store::{EventQuery, ReadyKind, Store, StoreError, StreamQuery};
use stv3_winchester::{AnyStore, DistValue, Finish, StreamState};

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> Timestamp {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_micro_opt(h, mi, s, us)
        .unwrap()
}

fn us(ts: Timestamp) -> i64 {
    to_micros(&ts)
}

/// The original test_db.py fixture, as SQL (timestamps in microseconds).
fn fixture_sql() -> String {
    let mut sql = String::from(
        "INSERT INTO event_type (id, `desc`) VALUES (1, 'test.thing.begin'), (2, 'test.thing.end'), (3, 'test.otherthing.foo');\n",
    );
    for (id, mid, g, ty) in [
        (1, "1234-5678-001", t(2014, 8, 1, 10, 20, 45, 453201), 1),
        (2, "1234-5678-002", t(2014, 8, 1, 15, 25, 45, 453201), 2),
        (3, "1234-5678-003", t(2014, 8, 1, 2, 10, 12, 0), 3),
        (4, "1234-5678-004", t(2014, 8, 1, 4, 57, 55, 42), 3),
    ] {
        sql += &format!("INSERT INTO event (id, message_id, generated, event_type_id) VALUES ({id}, '{mid}', {}, {ty});\n", us(g));
    }
    sql += &format!(
        "INSERT INTO `trait` (event_id, name, type, t_string, t_int, t_float, t_datetime) VALUES \
         (1, 'instance_id', 1, 'aaaa-bbbb-cccc-dddd', NULL, NULL, NULL), (1, 'memory_mb', 2, NULL, 1024, NULL, NULL), \
         (1, 'test_weight', 3, NULL, NULL, 20112.42, NULL), (1, 'launched_at', 4, NULL, NULL, NULL, {});\n",
        us(t(2014, 7, 1, 2, 30, 45, 453201))
    );
    let f = us(t(2014, 8, 1, 15, 25, 45, 453201));
    let rows: [(
        i64,
        i64,
        i64,
        &str,
        Option<Timestamp>,
        Timestamp,
        StreamState,
    ); 8] = [
        (
            1,
            us(t(2014, 8, 1, 2, 10, 12, 0)),
            us(t(2014, 8, 1, 4, 57, 55, 42)),
            "test_trigger",
            None,
            t(2014, 8, 2, 4, 57, 55, 42),
            StreamState::Active,
        ),
        (
            2,
            f,
            f,
            "another_test_trigger",
            None,
            t(2014, 8, 2, 4, 57, 55, 42),
            StreamState::Active,
        ),
        (
            3,
            f,
            f,
            "fire_test_trigger",
            Some(t(2014, 8, 10, 6, 0, 0, 42)),
            t(2014, 8, 15, 6, 0, 0, 42),
            StreamState::Active,
        ),
        (
            4,
            f,
            f,
            "fire_test_trigger",
            Some(t(2014, 8, 11, 6, 0, 0, 42)),
            t(2014, 8, 16, 0, 0, 0, 42),
            StreamState::Active,
        ),
        (
            5,
            f,
            f,
            "reset_test_trigger",
            Some(t(2014, 8, 11, 6, 0, 0, 42)),
            t(2014, 8, 16, 0, 0, 0, 42),
            StreamState::Error,
        ),
        (
            6,
            f,
            f,
            "reset_test_trigger",
            Some(t(2014, 8, 11, 6, 0, 0, 42)),
            t(2014, 8, 16, 0, 0, 0, 42),
            StreamState::ExpireError,
        ),
        (
            7,
            f,
            f,
            "reset_test_trigger",
            Some(t(2014, 8, 11, 6, 0, 0, 42)),
            t(2014, 8, 16, 0, 0, 0, 42),
            StreamState::RetryFire,
        ),
        (
            8,
            f,
            f,
            "reset_test_trigger",
            Some(t(2014, 8, 11, 6, 0, 0, 42)),
            t(2014, 8, 16, 0, 0, 0, 42),
            StreamState::RetryExpire,
        ),
    ];
    for (id, first, last, name, fire, expire, state) in rows {
        sql += &format!(
            "INSERT INTO stream (id, first_event, last_event, expire_timestamp, fire_timestamp, name, state, state_serial_no) \
             VALUES ({id}, {first}, {last}, {}, {}, '{name}', {}, 0);\n",
            us(expire),
            fire.map(|x| us(x).to_string()).unwrap_or("NULL".into()),
            state.code()
        );
    }
    sql += "INSERT INTO streamevent (stream_id, event_id) VALUES (1, 3), (1, 4), (2, 2), (3, 2), (3, 1), (4, 2);\n";
    sql += &format!(
        "INSERT INTO dist_trait (stream_id, name, type, dt_string, dt_int, dt_float, dt_datetime, dt_timerange_begin, dt_timerange_end) VALUES \
         (1, 'instance_id', 1, 'zzzz-xxxx-yyyy-wwww', NULL, NULL, NULL, NULL, NULL), \
         (1, 'memory_mb', 2, NULL, 4096, NULL, NULL, NULL, NULL), \
         (1, 'test_weight', 3, NULL, NULL, 3.1415, NULL, NULL, NULL), \
         (1, 'launched_at', 4, NULL, NULL, NULL, {}, NULL, NULL), \
         (1, 'timestamp', 5, NULL, NULL, NULL, NULL, {}, {});\n",
        us(t(2014, 7, 8, 9, 40, 50, 77777)),
        us(t(2014, 7, 8, 0, 0, 0, 27)),
        us(t(2014, 7, 9, 0, 0, 0, 27))
    );
    sql
}

async fn with_fixture(test: &str) -> Vec<common::Backend> {
    let bs = backends(test).await;
    for b in &bs {
        b.store
            .execute_script(&fixture_sql())
            .await
            .unwrap_or_else(|e| panic!("{}: fixture: {e}", b.label));
        // The fixture's rows are older events, stored before an upgrade: the
        // upgrade's backfill writes their index entries (SQLite's keys).
        b.store
            .execute_script("UPDATE indexed_trait SET ready = 0;")
            .await
            .unwrap();
        b.store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("{}: backfill: {e}", b.label));
    }
    bs
}

fn ids(streams: &[stv3_winchester::Stream]) -> Vec<i64> {
    streams.iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn event_types_get_or_create() {
    for b in with_fixture("event_types_get_or_create").await {
        let got = b
            .store
            .event_type_ids(&["test.thing.begin".into(), "test.not_in_db".into()])
            .await
            .unwrap();
        assert_eq!(got["test.thing.begin"], 1, "{}", b.label);
        assert_eq!(got["test.not_in_db"], 4, "{}: next unused id", b.label);
        // Cached and stable.
        let again = b
            .store
            .event_type_ids(&["test.not_in_db".into()])
            .await
            .unwrap();
        assert_eq!(again["test.not_in_db"], 4);
    }
}

#[tokio::test]
async fn create_event_round_trip_and_duplicates() {
    for b in with_fixture("create_event_round_trip").await {
        let ts = t(2014, 7, 4, 12, 7, 21, 4096);
        let e = Event::new("9876-0001-0001", "test.thing.begin", ts)
            .with_trait("test_string", TraitValue::Text("foobar".into()))
            .with_trait("test_number", TraitValue::Int(42))
            .with_trait("test_float", TraitValue::Float(3.1415))
            .with_trait("test_date", TraitValue::Datetime(t(2014, 7, 1, 0, 0, 0, 0)))
            .with_trait("somevalue", TraitValue::Text("A fine test string ✓".into()));
        let r = b.store.save_events(std::slice::from_ref(&e)).await.unwrap();
        assert_eq!((r.saved, r.duplicates.len()), (1, 0), "{}", b.label);
        let got = b
            .store
            .get_event_by_message_id("9876-0001-0001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got.event, e,
            "{}: 5 typed traits + envelope round-trip",
            b.label
        );
        let r = b.store.save_events(&[e.clone(), e.clone()]).await.unwrap();
        assert_eq!(
            (r.saved, r.duplicates.len()),
            (0, 2),
            "{}: duplicates are reported, not errors",
            b.label
        );
        // A stored duplicate beside a new event in one batch: the optimistic
        // insert sees fewer rows than asked, and the batch is redone with the
        // duplicates looked up; the new event is stored once, intact.
        let fresh = Event::new("9876-0001-0002", "test.thing.end", ts)
            .with_trait("test_number", TraitValue::Int(7));
        let r = b
            .store
            .save_events(&[e.clone(), fresh.clone()])
            .await
            .unwrap();
        assert_eq!(
            (r.saved, r.duplicates.clone()),
            (1, vec!["9876-0001-0001".to_string()]),
            "{}: one saved, one duplicate",
            b.label
        );
        let got = b
            .store
            .get_event_by_message_id("9876-0001-0002")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.event, fresh, "{}: the new event is intact", b.label);
        assert!(b
            .store
            .get_event_by_message_id("nope")
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn fixture_reads() {
    for b in with_fixture("fixture_reads").await {
        let l = b.label;
        let e = b
            .store
            .get_event_by_message_id("1234-5678-001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.event.event_type, "test.thing.begin");
        assert_eq!(e.event.generated, t(2014, 8, 1, 10, 20, 45, 453201));
        assert_eq!(
            e.event.traits["instance_id"],
            TraitValue::Text("aaaa-bbbb-cccc-dddd".into())
        );
        assert_eq!(e.event.traits["memory_mb"], TraitValue::Int(1024));
        assert_eq!(e.event.traits["test_weight"], TraitValue::Float(20112.42));
        assert_eq!(
            e.event.traits["launched_at"],
            TraitValue::Datetime(t(2014, 7, 1, 2, 30, 45, 453201))
        );

        let evs = b.store.get_stream_events(1).await.unwrap();
        let mids: Vec<&str> = evs.iter().map(|e| e.event.message_id.as_str()).collect();
        assert_eq!(
            mids,
            ["1234-5678-003", "1234-5678-004"],
            "{l}: ordered by generated"
        );

        let s = b.store.get_stream_by_id(1).await.unwrap().unwrap();
        let dt = &s.distinguishing_traits;
        assert_eq!(dt.len(), 5, "{l}");
        assert_eq!(
            dt["instance_id"],
            DistValue::Trait(TraitValue::Text("zzzz-xxxx-yyyy-wwww".into()))
        );
        assert_eq!(dt["memory_mb"], DistValue::Trait(TraitValue::Int(4096)));
        assert_eq!(
            dt["test_weight"],
            DistValue::Trait(TraitValue::Float(3.1415))
        );
        assert_eq!(
            dt["launched_at"],
            DistValue::Trait(TraitValue::Datetime(t(2014, 7, 8, 9, 40, 50, 77777)))
        );
        assert_eq!(
            dt["timestamp"],
            DistValue::Range {
                begin: t(2014, 7, 8, 0, 0, 0, 27),
                end: t(2014, 7, 9, 0, 0, 0, 27)
            }
        );
        // Typed equality lookups, one per datatype.
        for (name, v) in dt.clone() {
            let q = StreamQuery {
                distinguishing_traits: vec![(name.clone(), v)],
                ..Default::default()
            };
            assert_eq!(
                ids(&b
                    .store
                    .find_streams(&q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|m| m.item)
                    .collect::<Vec<_>>()),
                [1],
                "{l} {name}"
            );
        }
        let q = StreamQuery {
            distinguishing_traits: vec![(
                "memory_mb".into(),
                DistValue::Trait(TraitValue::Text("4096".into())),
            )],
            ..Default::default()
        };
        assert_eq!(
            b.store.count_streams(&q).await.unwrap(),
            0,
            "{l}: types must match too"
        );
        assert!(b.store.get_stream_by_id(99).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn ready_streams_for_fire_and_expire() {
    for b in with_fixture("ready_streams").await {
        let l = b.label;
        let check = |kind, now, limit, expected: &'static [i64]| {
            let store = b.store.clone();
            async move {
                let got = store.ready_streams(kind, now, limit).await.unwrap();
                assert_eq!(ids(&got), expected, "{l} {kind:?} at {now} limit {limit}");
            }
        };
        // Ordered by fire/expire timestamp, then id.
        check(ReadyKind::Fire, t(2014, 8, 12, 0, 0, 0, 42), 10, &[3, 4, 7]).await;
        check(ReadyKind::Fire, t(2014, 8, 10, 12, 0, 0, 42), 10, &[3]).await;
        check(ReadyKind::Fire, t(2014, 8, 12, 0, 0, 0, 42), 1, &[3]).await;
        check(
            ReadyKind::Expire,
            t(2014, 8, 17, 0, 0, 0, 42),
            10,
            &[1, 2, 3, 4, 8],
        )
        .await;
        check(ReadyKind::Expire, t(2014, 8, 10, 12, 0, 0, 42), 10, &[1, 2]).await;
        check(ReadyKind::Expire, t(2014, 8, 17, 0, 0, 0, 42), 1, &[1]).await;
    }
}

#[tokio::test]
async fn optimistic_lock_lease_and_finish() {
    for b in with_fixture("optimistic_lock_lease").await {
        let l = b.label;
        let s = b.store.get_stream_by_id(1).await.unwrap().unwrap();
        let firing = b
            .store
            .set_stream_state(&s, StreamState::Firing)
            .await
            .unwrap();
        assert_eq!(
            (firing.state, firing.state_serial_no),
            (StreamState::Firing, 1),
            "{l}"
        );
        assert!(
            matches!(
                b.store.set_stream_state(&s, StreamState::Firing).await,
                Err(StoreError::Locked { .. })
            ),
            "{l}: stale serial"
        );

        // Claim with a lease; a second claimant with the old serial loses.
        let now = t(2014, 8, 12, 0, 0, 0, 0);
        let s3 = b.store.get_stream_by_id(3).await.unwrap().unwrap();
        let claimed = b
            .store
            .claim_stream(
                &s3,
                StreamState::Firing,
                now + chrono::Duration::minutes(10),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                b.store.claim_stream(&s3, StreamState::Firing, now).await,
                Err(StoreError::Locked { .. })
            ),
            "{l}"
        );
        // Not offered again while the lease runs (stream 1 was set to firing by
        // set_stream_state, without a lease, so it is reclaimable at once) ...
        assert_eq!(
            ids(&b
                .store
                .ready_streams(ReadyKind::Fire, now, 10)
                .await
                .unwrap()),
            [1, 4, 7],
            "{l}"
        );
        // ... but offered again once it has run out (the worker died).
        let later = now + chrono::Duration::minutes(11);
        let offered = b
            .store
            .ready_streams(ReadyKind::Fire, later, 10)
            .await
            .unwrap();
        assert_eq!(ids(&offered), [1, 3, 4, 7], "{l}");
        let reclaimed = b
            .store
            .claim_stream(
                &offered[1],
                StreamState::Firing,
                later + chrono::Duration::minutes(10),
            )
            .await
            .unwrap();
        // The first worker finishes late: it lost the stream, so it must not complete it.
        assert!(
            matches!(
                b.store.complete_stream(&claimed, true).await,
                Err(StoreError::Locked { .. })
            ),
            "{l}"
        );
        assert!(
            matches!(
                b.store.renew_lease(&claimed, later).await,
                Err(StoreError::Locked { .. })
            ),
            "{l}"
        );
        b.store
            .renew_lease(&reclaimed, later + chrono::Duration::minutes(20))
            .await
            .unwrap();
        b.store.complete_stream(&reclaimed, false).await.unwrap();
        let done = b.store.get_stream_by_id(3).await.unwrap().unwrap();
        assert_eq!(
            (done.state, done.lease_expires),
            (StreamState::Completed, None),
            "{l}"
        );

        // Purge on completion deletes the stream (events stay).
        let s4 = b.store.get_stream_by_id(4).await.unwrap().unwrap();
        let c4 = b
            .store
            .claim_stream(&s4, StreamState::Firing, later)
            .await
            .unwrap();
        b.store.complete_stream(&c4, true).await.unwrap();
        assert!(b.store.get_stream_by_id(4).await.unwrap().is_none(), "{l}");
        assert!(
            b.store
                .get_event_by_message_id("1234-5678-002")
                .await
                .unwrap()
                .is_some(),
            "{l}"
        );

        // Errors: firing -> error, expiring -> expire_error.
        let s2 = b.store.get_stream_by_id(2).await.unwrap().unwrap();
        let c2 = b
            .store
            .claim_stream(&s2, StreamState::Expiring, later)
            .await
            .unwrap();
        b.store.error_stream(&c2).await.unwrap();
        assert_eq!(
            b.store.get_stream_by_id(2).await.unwrap().unwrap().state,
            StreamState::ExpireError,
            "{l}"
        );
        let s7 = b.store.get_stream_by_id(7).await.unwrap().unwrap();
        let c7 = b
            .store
            .claim_stream(&s7, StreamState::Firing, later)
            .await
            .unwrap();
        b.store.error_stream(&c7).await.unwrap();
        assert_eq!(
            b.store.get_stream_by_id(7).await.unwrap().unwrap().state,
            StreamState::Error,
            "{l}"
        );
    }
}

#[tokio::test]
async fn reset_and_purge() {
    for b in with_fixture("reset_and_purge").await {
        let l = b.label;
        assert_eq!(
            b.store.reset_stream(5).await.unwrap().state,
            StreamState::RetryFire,
            "{l}"
        );
        assert_eq!(
            b.store.reset_stream(6).await.unwrap().state,
            StreamState::RetryExpire,
            "{l}"
        );
        assert_eq!(
            b.store.reset_stream(1).await.unwrap().state,
            StreamState::Active,
            "{l}: others unchanged"
        );
        assert!(matches!(
            b.store.reset_stream(99).await,
            Err(StoreError::StreamNotFound(99))
        ));
        assert!(b.store.purge_stream(1).await.unwrap());
        assert!(b.store.get_stream_by_id(1).await.unwrap().is_none(), "{l}");
        assert!(
            b.store.get_stream_events(1).await.unwrap().is_empty(),
            "{l}"
        );
        assert!(!b.store.purge_stream(1).await.unwrap());
    }
}

async fn stream_ids(store: &AnyStore, q: StreamQuery) -> (Vec<i64>, Vec<String>) {
    let got = store.find_streams(&q).await.unwrap();
    (
        got.iter().map(|m| m.item.id).collect(),
        got.iter().map(|m| m.mark.clone()).collect(),
    )
}

#[tokio::test]
async fn find_streams_paging() {
    for b in with_fixture("find_streams_paging").await {
        let l = b.label;
        assert_eq!(
            b.store
                .count_streams(&StreamQuery::default())
                .await
                .unwrap(),
            8,
            "{l}"
        );
        let q = |limit: Option<u32>, mark: Option<&str>| StreamQuery {
            limit,
            mark: mark.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            stream_ids(&b.store, q(Some(2), None)).await,
            (vec![8, 7], vec!["8".into(), "7".into()]),
            "{l}"
        );
        assert_eq!(
            stream_ids(&b.store, q(Some(2), Some("+"))).await,
            (vec![1, 2], vec!["+1".into(), "+2".into()]),
            "{l}"
        );
        assert_eq!(
            stream_ids(&b.store, q(None, Some("7"))).await.0,
            vec![6, 5, 4, 3, 2, 1],
            "{l}"
        );
        assert_eq!(
            stream_ids(&b.store, q(Some(2), Some("+2"))).await.0,
            vec![3, 4],
            "{l}"
        );
        assert!(matches!(
            b.store.find_streams(&q(None, Some("zz"))).await,
            Err(StoreError::BadMark(_))
        ));
        let by_state = StreamQuery {
            state: Some(StreamState::Error),
            ..Default::default()
        };
        assert_eq!(stream_ids(&b.store, by_state).await.0, vec![5], "{l}");
        let by_name = StreamQuery {
            name: Some("fire_test_trigger".into()),
            ..Default::default()
        };
        assert_eq!(stream_ids(&b.store, by_name).await.0, vec![4, 3], "{l}");
        let older = StreamQuery {
            older_than: Some(t(2014, 8, 1, 3, 0, 0, 0)),
            ..Default::default()
        };
        assert_eq!(stream_ids(&b.store, older).await.0, vec![1], "{l}");
        let younger = StreamQuery {
            younger_than: Some(t(2014, 8, 1, 5, 0, 0, 0)),
            ..Default::default()
        };
        assert_eq!(
            stream_ids(&b.store, younger).await.0,
            vec![8, 7, 6, 5, 4, 3, 2],
            "{l}"
        );
    }
}

#[tokio::test]
async fn find_events_filters_and_paging() {
    for b in with_fixture("find_events_paging").await {
        let l = b.label;
        let mids = |evs: Vec<stv3_winchester::store::Marked<stv3_winchester::StoredEvent>>| {
            evs.into_iter()
                .map(|m| m.item.event.message_id)
                .collect::<Vec<_>>()
        };
        let all = b.store.find_events(&EventQuery::default()).await.unwrap();
        assert_eq!(
            mids(all),
            [
                "1234-5678-004",
                "1234-5678-003",
                "1234-5678-002",
                "1234-5678-001"
            ],
            "{l}"
        );
        assert_eq!(
            b.store.count_events(&EventQuery::default()).await.unwrap(),
            4
        );
        let dated = EventQuery {
            from_datetime: Some(t(2014, 8, 1, 10, 0, 0, 0)),
            to_datetime: Some(t(2014, 8, 1, 16, 0, 0, 0)),
            ..Default::default()
        };
        assert_eq!(
            mids(b.store.find_events(&dated).await.unwrap()),
            ["1234-5678-002", "1234-5678-001"],
            "{l}"
        );
        let typed = EventQuery {
            event_name: Some("test.otherthing.foo".into()),
            ..Default::default()
        };
        assert_eq!(
            mids(b.store.find_events(&typed).await.unwrap()),
            ["1234-5678-004", "1234-5678-003"],
            "{l}"
        );
        let unknown = EventQuery {
            event_name: Some("no.such.type".into()),
            ..Default::default()
        };
        assert_eq!(b.store.count_events(&unknown).await.unwrap(), 0, "{l}");
        let traits = EventQuery {
            traits: vec![("memory_mb".into(), TraitValue::Int(1024))],
            ..Default::default()
        };
        assert_eq!(
            mids(b.store.find_events(&traits).await.unwrap()),
            ["1234-5678-001"],
            "{l}"
        );
        let page1 = b
            .store
            .find_events(&EventQuery {
                limit: Some(2),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page1.len(), 2);
        let page2 = b
            .store
            .find_events(&EventQuery {
                limit: Some(2),
                mark: Some(page1[1].mark.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(mids(page2), ["1234-5678-002", "1234-5678-001"], "{l}");
        let asc = b
            .store
            .find_events(&EventQuery {
                limit: Some(3),
                mark: Some("+1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            asc.iter().map(|m| m.mark.as_str()).collect::<Vec<_>>(),
            ["+2", "+3", "+4"],
            "{l}"
        );
    }
}

#[tokio::test]
async fn trim_old_events() {
    for b in with_fixture("trim_old_events").await {
        let l = b.label;
        let old = b
            .store
            .find_older_events(t(2014, 8, 1, 12, 0, 0, 0), 10)
            .await
            .unwrap();
        assert_eq!(old, [3, 4, 1], "{l}: oldest first");
        assert_eq!(
            b.store
                .find_older_events(t(2014, 8, 1, 12, 0, 0, 0), 2)
                .await
                .unwrap(),
            [3, 4],
            "{l}: limit"
        );
        assert_eq!(b.store.purge_events(&[3, 4]).await.unwrap(), 2, "{l}");
        assert!(
            b.store
                .get_event_by_message_id("1234-5678-003")
                .await
                .unwrap()
                .is_none(),
            "{l}"
        );
        assert!(
            b.store.get_stream_events(1).await.unwrap().is_empty(),
            "{l}: links gone"
        );
        assert_eq!(
            b.store.count_events(&EventQuery::default()).await.unwrap(),
            2,
            "{l}"
        );
        assert_eq!(b.store.purge_events(&[3]).await.unwrap(), 0, "{l}");
    }
}

#[tokio::test]
async fn schema_check_refuses_an_unmigrated_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("empty.db").display());
    let err = AnyStore::open(&url).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaBehind { applied: None, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("winchester-db"), "{err}");
    let store = AnyStore::connect(&url).await.unwrap();
    assert_eq!(store.migrate().await.unwrap().len(), 5);
    assert!(store.migrate().await.unwrap().is_empty(), "idempotent");
    AnyStore::open(&url).await.unwrap();
    // In-memory SQLite migrates itself (it cannot be upgraded from outside).
    AnyStore::open("sqlite://").await.unwrap();
}

/// Index rows in the `trait` table for one name.
/// `find_events` and `count_events` with trait filters `traits` give the
/// events `expected` (message ids, newest first).
async fn check_trait_filter(
    store: &AnyStore,
    traits: Vec<(String, TraitValue)>,
    expected: &[&str],
    label: &str,
) {
    let q = EventQuery {
        traits: traits.clone(),
        ..Default::default()
    };
    let got: Vec<String> = store
        .find_events(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.item.event.message_id)
        .collect();
    assert_eq!(got, expected, "{label}: {traits:?}");
    assert_eq!(
        store.count_events(&q).await.unwrap(),
        expected.len() as u64,
        "{label}: {traits:?}"
    );
}

/// The index entries of trait `name`: MySQL its `trait` rows; SQLite the
/// events whose value of `name` has its key in `trait_key`.
async fn index_rows(store: &AnyStore, name: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM `trait` WHERE name = ?";
    match store {
        AnyStore::Sqlite(s) => {
            let entries: Vec<(i64, i64)> = sqlx::query_as("SELECT key, event_id FROM trait_key")
                .fetch_all(s.pool())
                .await
                .unwrap();
            let events = store
                .find_events(&EventQuery {
                    limit: Some(10_000),
                    ..Default::default()
                })
                .await
                .unwrap();
            events
                .iter()
                .filter(|m| {
                    m.item.event.traits.get(name).is_some_and(|v| {
                        entries.contains(&(stv3_event::stored::index_key(name, v), m.item.id))
                    })
                })
                .count() as i64
        }
        AnyStore::MySql(s) => sqlx::query_scalar(sql)
            .bind(name)
            .fetch_one(s.pool())
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn trait_documents_and_the_trait_index() {
    for b in with_fixture("trait_index").await {
        let l = b.label;
        let defaults: Vec<(String, bool)> = b
            .store
            .trait_index()
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.ready))
            .collect();
        let want: Vec<(String, bool)> =
            ["host", "instance_id", "request_id", "tenant_id", "user_id"]
                .iter()
                .map(|n| (n.to_string(), true))
                .collect();
        assert_eq!(defaults, want, "{l}: the migration's default index");

        let ts = t(2015, 3, 1, 18, 0, 0, 0);
        let ev = |i: u32, flavor: &str| {
            Event::new(format!("doc-{i}"), "compute.instance.update", ts)
                .with_trait(
                    "instance_id",
                    TraitValue::Text(format!("inst-{}", i % 2).into()),
                )
                .with_trait("flavor", TraitValue::Text(flavor.into()))
                .with_trait("memory_mb", TraitValue::Int(512 * i as i64))
        };
        let saved = b
            .store
            .save_events(&[ev(1, "m1.small"), ev(2, "m1.large"), ev(3, "m1.small")])
            .await
            .unwrap();
        assert_eq!(saved.saved, 3, "{l}");
        assert_eq!(
            index_rows(&b.store, "instance_id").await,
            3 + 1,
            "{l}: indexed (fixture has 1)"
        );
        assert_eq!(
            index_rows(&b.store, "flavor").await,
            0,
            "{l}: not indexed: document only"
        );
        assert_eq!(
            b.store
                .get_event_by_message_id("doc-2")
                .await
                .unwrap()
                .unwrap()
                .event,
            ev(2, "m1.large"),
            "{l}: every trait reads back from the document"
        );

        // Filters agree before and after indexing, over fixture rows and documents.
        let filters: Vec<(Vec<(String, TraitValue)>, Vec<&str>)> = vec![
            (
                vec![("flavor".into(), TraitValue::Text("m1.small".into()))],
                vec!["doc-3", "doc-1"],
            ),
            (
                vec![("flavor".into(), TraitValue::Text("m1".into()))],
                vec![],
            ),
            (vec![("flavor".into(), TraitValue::Int(1))], vec![]),
            (
                vec![("memory_mb".into(), TraitValue::Int(1024))],
                vec!["doc-2", "1234-5678-001"],
            ),
            // Float and datetime index rows (the fixture's older events) through
            // the value guards of the MySQL value index.
            (
                vec![("test_weight".into(), TraitValue::Float(20112.42))],
                vec!["1234-5678-001"],
            ),
            (
                vec![(
                    "launched_at".into(),
                    TraitValue::Datetime(t(2014, 7, 1, 2, 30, 45, 453201)),
                )],
                vec!["1234-5678-001"],
            ),
            (
                vec![
                    ("instance_id".into(), TraitValue::Text("inst-1".into())),
                    ("flavor".into(), TraitValue::Text("m1.small".into())),
                ],
                vec!["doc-3", "doc-1"],
            ),
        ];
        let check = |stage: &'static str| {
            let filters = filters.clone();
            let store = b.store.clone();
            async move {
                for (traits, expected) in filters {
                    check_trait_filter(&store, traits, &expected, &format!("{l} {stage}")).await;
                }
            }
        };
        check("document scan").await;
        assert_eq!(
            b.store.add_trait_index("flavor").await.unwrap(),
            3,
            "{l}: backfilled"
        );
        assert_eq!(index_rows(&b.store, "flavor").await, 3, "{l}");
        assert!(
            b.store
                .trait_index()
                .await
                .unwrap()
                .iter()
                .any(|t| t.name == "flavor" && t.ready),
            "{l}"
        );
        check("index").await;
        assert_eq!(
            b.store.add_trait_index("flavor").await.unwrap(),
            0,
            "{l}: idempotent"
        );
        b.store.save_events(&[ev(4, "m1.small")]).await.unwrap();
        assert_eq!(
            index_rows(&b.store, "flavor").await,
            4,
            "{l}: new events get rows at once"
        );
        assert!(b.store.add_trait_index("").await.is_err(), "{l}");

        // A purge takes the event's index entries with it.
        let doc1 = b
            .store
            .get_event_by_message_id("doc-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            entries_of_event(&b.store, doc1.id).await,
            2,
            "{l}: instance_id, flavor"
        );
        assert_eq!(b.store.purge_events(&[doc1.id]).await.unwrap(), 1, "{l}");
        assert_eq!(entries_of_event(&b.store, doc1.id).await, 0, "{l}: purged");
        assert_eq!(index_rows(&b.store, "flavor").await, 3, "{l}");
    }
}

/// Every index entry of event `id` (MySQL `trait` rows, SQLite `trait_key` keys).
async fn entries_of_event(store: &AnyStore, id: i64) -> i64 {
    match store {
        AnyStore::Sqlite(s) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM trait_key WHERE event_id = ?")
                .bind(id)
                .fetch_one(s.pool())
                .await
                .unwrap()
        }
        AnyStore::MySql(s) => sqlx::query_scalar("SELECT COUNT(*) FROM `trait` WHERE event_id = ?")
            .bind(id)
            .fetch_one(s.pool())
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn batch_claim_and_finish() {
    for b in with_fixture("batch_claim").await {
        let l = b.label;
        let s1 = b.store.get_stream_by_id(1).await.unwrap().unwrap();
        let s2 = b.store.get_stream_by_id(2).await.unwrap().unwrap();
        let mut stale = s2.clone();
        stale.state_serial_no += 7;
        let lease = t(2030, 1, 1, 0, 0, 0, 0);
        let got = b
            .store
            .claim_streams(&[s2.clone(), s1.clone(), stale], StreamState::Firing, lease)
            .await
            .unwrap();
        let c2 = got[0].clone().expect("s2 claimed");
        let c1 = got[1].clone().expect("s1 claimed");
        assert!(got[2].is_none(), "{l}: a stale serial claims nothing");
        assert_eq!(
            (c1.state, c1.state_serial_no),
            (StreamState::Firing, s1.state_serial_no + 1),
            "{l}"
        );
        let token = c1.lease_expires.expect("leased");
        assert!(
            token >= lease && token < lease + chrono::Duration::milliseconds(1),
            "{l}: the lease plus sub-millisecond jitter (the claim's token): {token}"
        );
        assert_eq!(
            b.store
                .get_stream_by_id(1)
                .await
                .unwrap()
                .unwrap()
                .lease_expires,
            Some(token),
            "{l}: the token is what the row holds"
        );
        let again = b
            .store
            .claim_streams(std::slice::from_ref(&s1), StreamState::Firing, lease)
            .await
            .unwrap();
        assert_eq!(again, vec![None], "{l}: the old serial loses to the claim");

        let mut lost = c2.clone();
        lost.state_serial_no -= 1;
        let held = b
            .store
            .finish_streams(&[
                (c1.clone(), Finish::Complete { purge: true }),
                (lost, Finish::Error),
            ])
            .await
            .unwrap();
        assert_eq!(held, vec![true, false], "{l}");
        assert!(
            b.store.get_stream_by_id(1).await.unwrap().is_none(),
            "{l}: purged"
        );
        assert!(
            b.store.get_stream_events(1).await.unwrap().is_empty(),
            "{l}: links purged"
        );
        let s2_now = b.store.get_stream_by_id(2).await.unwrap().unwrap();
        assert_eq!(
            (s2_now.state, s2_now.state_serial_no),
            (StreamState::Firing, c2.state_serial_no),
            "{l}: untouched"
        );
        let held = b
            .store
            .finish_streams(&[(c2.clone(), Finish::Error)])
            .await
            .unwrap();
        assert_eq!(held, vec![true], "{l}");
        assert_eq!(
            b.store.get_stream_by_id(2).await.unwrap().unwrap().state,
            StreamState::Error,
            "{l}"
        );
    }
}

/// A SQLite database at schema version 4 (index entries as `trait` rows) with
/// data, upgraded by `migrate`: version 5 moves the entries to `trait_key`,
/// the backfill writes the keys of the documented events and of the older
/// rows, and filters on indexed names find the same events as before.
#[tokio::test]
async fn sqlite_upgrade_to_integer_keys_backfills_the_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("v4.db").display());
    // Version 4: the first four migrations, as an older stv3 applied them.
    let v4 = dir.path().join("migrations-v4");
    std::fs::create_dir(&v4).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().into_string().unwrap();
        if name.as_str() < "20260101000005" {
            std::fs::copy(f.path(), v4.join(&name)).unwrap();
        }
    }
    let store = AnyStore::connect(&url).await.unwrap();
    let AnyStore::Sqlite(s) = &store else {
        panic!("sqlite")
    };
    sqlx::migrate::Migrator::new(v4.as_path())
        .await
        .unwrap()
        .run(s.pool())
        .await
        .unwrap();
    // Version 4 data: event 1 older (typed rows only), events 2 and 3 with a
    // document plus `trait` rows for the indexed instance_id.
    let doc = |inst: &str, mem: i64| {
        let mut t = stv3_event::Traits::new();
        t.insert("instance_id".into(), TraitValue::Text(inst.into()));
        t.insert("memory_mb".into(), TraitValue::Int(mem));
        stv3_event::stored::encode_traits(&t)
    };
    store
        .execute_script(&format!(
            "INSERT INTO event_type (id, `desc`) VALUES (1, 'compute.instance.update');
             INSERT INTO event (id, message_id, generated, event_type_id, traits) VALUES
               (1, 'old-1', 1, 1, NULL), (2, 'doc-2', 2, 1, '{}'), (3, 'doc-3', 3, 1, '{}'),
               (4, 'bad-4', 4, 1, '{{\"instance_id\":[1,');
             INSERT INTO `trait` (event_id, name, type, t_string, t_float, t_int, t_datetime) VALUES
               (1, 'instance_id', 1, 'inst-a', NULL, NULL, NULL), (1, 'memory_mb', 2, NULL, NULL, 512, NULL),
               (2, 'instance_id', 1, 'inst-a', NULL, NULL, NULL), (3, 'instance_id', 1, 'inst-b', NULL, NULL, NULL);",
            doc("inst-a", 1024),
            doc("inst-b", 512)
        ))
        .await
        .unwrap();
    assert!(
        matches!(
            AnyStore::open(&url).await,
            Err(StoreError::SchemaBehind {
                applied: Some(20260101000004),
                ..
            })
        ),
        "a version 4 database is behind"
    );

    // A malformed document (not written by stv3) is logged and skipped: it
    // does not stop the upgrade.
    assert_eq!(store.migrate().await.unwrap(), vec![20260101000005]);
    assert!(
        store.trait_index().await.unwrap().iter().all(|t| t.ready),
        "every indexed name ready after the backfill"
    );
    // Nor a purge: the malformed event's keys (say, written before its
    // document was damaged) go by a scan.
    store
        .execute_script("INSERT INTO trait_key (key, event_id) VALUES (42, 4);")
        .await
        .unwrap();
    assert_eq!(store.purge_events(&[4]).await.unwrap(), 1);
    assert_eq!(
        entries_of_event(&store, 4).await,
        0,
        "its keys went with it"
    );
    assert_eq!(index_rows(&store, "instance_id").await, 3);
    let store = AnyStore::open(&url).await.unwrap();
    for (traits, expected) in [
        (
            vec![("instance_id".to_string(), TraitValue::Text("inst-a".into()))],
            vec!["doc-2", "old-1"],
        ),
        (
            vec![("instance_id".to_string(), TraitValue::Text("inst-b".into()))],
            vec!["doc-3"],
        ),
        (
            vec![("instance_id".to_string(), TraitValue::Text("inst-c".into()))],
            vec![],
        ),
        // An indexed name and a scanned one together, over both kinds of event.
        (
            vec![
                ("instance_id".to_string(), TraitValue::Text("inst-a".into())),
                ("memory_mb".to_string(), TraitValue::Int(512)),
            ],
            vec!["old-1"],
        ),
    ] {
        check_trait_filter(&store, traits, &expected, "upgraded").await;
    }
    // The upgrade ran once: a second migrate has nothing to do.
    assert!(store.migrate().await.unwrap().is_empty());
}
