//! yagi-event end to end on the real RabbitMQ and MariaDB: exactly N stored and N archived,
//! kill -9 and restart, broker connections closed mid-run, poison quarantined.

mod common;

use std::time::Duration;

use common::*;
use stv3_testsupport::{rabbitmqctl, require, Service};

const T: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_n_stores_and_archives_exactly_n() {
    let Some(amqp) = require(
        Service::RabbitMq,
        "publishes_n_stores_and_archives_exactly_n",
    ) else {
        return;
    };
    if require(
        Service::MariaDb,
        "publishes_n_stores_and_archives_exactly_n",
    )
    .is_none()
    {
        return;
    }
    let mut env = Env::new("ingn", Db::MariaDb, Some(&amqp), 100, "").await;
    let n = 3000;
    env.publish(bodies(&env.name, n)).await;
    let mut child = env.spawn(&[]);
    let got = env.wait_stored(n as u64, T).await;
    // The stats line comes every update_timer (1 s): the run may be shorter.
    let stats = env
        .wait_log("Messages per second", Duration::from_secs(10))
        .await;
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}\n{}",
        env.logs()
    );
    assert_eq!(got, n as u64, "{}", env.logs());
    assert!(stats, "a periodic stats line within 10 s:\n{}", env.logs());
    assert_exactly(&env.archived_ids(), &expected_ids(&env.name, n), "archive");
    assert_eq!(env.stored().await, n as u64);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_and_duplicates_nothing() {
    let Some(amqp) = require(Service::RabbitMq, "kill_9_mid_run_then_restart") else {
        return;
    };
    if require(Service::MariaDb, "kill_9_mid_run_then_restart").is_none() {
        return;
    }
    let mut env = Env::new("ingkill", Db::MariaDb, Some(&amqp), 200, "").await;
    let n = 8000;
    env.publish(bodies(&env.name, n)).await;
    for round in 0..2 {
        let mut child = env.spawn(&[]);
        let target = (n as u64 / 4) * (round + 1);
        let before = env.wait_stored(target, T).await;
        child.kill().unwrap(); // SIGKILL mid-batch
        child.wait().unwrap();
        assert!(
            before >= target,
            "round {round}: only {before} stored\n{}",
            env.logs()
        );
    }
    let mut child = env.spawn(&[]);
    let got = env.wait_stored(n as u64, T).await;
    // let it drain redeliveries, then stop cleanly
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    assert_eq!(got, n as u64, "{}", env.logs());
    assert_eq!(env.stored().await, n as u64);
    assert_exactly(
        &env.archived_ids(),
        &expected_ids(&env.name, n),
        "archive after two kill -9",
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_when_the_broker_closes_all_connections() {
    let Some(_) = require(
        Service::RabbitMq,
        "recovers_when_the_broker_closes_all_connections",
    ) else {
        return;
    };
    if require(
        Service::MariaDb,
        "recovers_when_the_broker_closes_all_connections",
    )
    .is_none()
    {
        return;
    }
    // A vhost of our own, so close_all_connections only hits this test's connections.
    let vhost = stv3_testsupport::scratch_name("vh");
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let mut env = Env::new("ingclose", Db::MariaDb, Some(&amqp), 100, "").await;
    // reconnect quickly
    let conf = std::fs::read_to_string(&env.conf).unwrap().replace(
        "[global]",
        "[rabbit_broker]\nreconnect_delay = 0.2\nmax_wait = 1\n\n[global]",
    );
    std::fs::write(&env.conf, conf).unwrap();
    let n = 8000;
    env.publish(bodies(&env.name, n)).await;
    let mut child = env.spawn(&[]);
    let mut closes = 0;
    for frac in [4, 2] {
        env.wait_stored(n as u64 / frac, T).await;
        rabbitmqctl(&[
            "close_all_connections",
            "--vhost",
            &vhost,
            "stv3 test: broker went away",
        ]);
        closes += 1;
    }
    let got = env.wait_stored(n as u64, T).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let logs = env.logs();
    assert_eq!(got, n as u64, "{logs}");
    assert!(
        logs.matches("consuming").count() > closes,
        "reconnected after each close:\n{logs}"
    );
    assert_exactly(
        &env.archived_ids(),
        &expected_ids(&env.name, n),
        "archive after connection closes",
    );
    env.cleanup().await;
    rabbitmqctl(&["delete_vhost", &vhost]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_quarantined_while_good_messages_flow_and_can_be_replayed() {
    let Some(amqp) = require(Service::RabbitMq, "poison_is_quarantined") else {
        return;
    };
    if require(Service::MariaDb, "poison_is_quarantined").is_none() {
        return;
    }
    let mut env = Env::new(
        "ingpoison",
        Db::MariaDb,
        Some(&amqp),
        50,
        "max_payload_bytes = 20000\n",
    )
    .await;
    let n = 500;
    let mut all = bodies(&env.name, n);
    let poison: Vec<Vec<u8>> = vec![
        b"this is not json".to_vec(),
        vec![0xff, 0xfe, 0x00],
        br#"{"event_type": "compute.instance.update"}"#.to_vec(),
        format!(r#"{{"message_id": "{}-nomsgtype"}}"#, env.name).into_bytes(),
        format!(
            r#"{{"message_id":"{}-big","event_type":"compute.instance.update","payload":{{"instance_id":"i-big","p":"{}"}}}}"#,
            env.name,
            "x".repeat(30000)
        ).into_bytes(),
    ];
    for (k, p) in poison.iter().enumerate() {
        all.insert(k * 97 + 3, p.clone());
    }
    env.publish(all).await;
    let mut child = env.spawn(&[]);
    let got = env.wait_stored(n as u64, T).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    assert_eq!(got, n as u64, "{}", env.logs());
    assert_exactly(
        &env.archived_ids(),
        &expected_ids(&env.name, n),
        "archive holds only the good ones",
    );
    let recs = stv3_ingest::quarantine::read_records(&env.quarantine_path()).unwrap();
    let reasons: Vec<&str> = recs.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "invalid_json",
            "not_utf8",
            "missing_message_id",
            "missing_event_type",
            "oversized"
        ]
    );
    assert_eq!(recs[1].body, vec![0xff, 0xfe, 0x00]);
    assert_eq!(recs[0].exchange, env.exchange);
    // The dead-letter queue holds the same five, with the reason header.
    let conn = stv3_amqp::connect(&env.settings(), "e2e-check")
        .await
        .unwrap();
    let depth = stv3_amqp::consumer::queue_depth(&conn, &format!("{}.quarantine", env.queue))
        .await
        .unwrap();
    assert_eq!(depth, 5);
    let mut qc = stv3_amqp::QueueConsumer::start(
        &conn,
        &format!("{}.quarantine", env.queue),
        10,
        "chk",
        None,
    )
    .await
    .unwrap();
    let b = qc
        .next_batch(10, Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert!(
        b[0].headers
            .contains(&("x-stv3-reason".to_string(), "invalid_json".to_string())),
        "{:?}",
        b[0].headers
    );
    qc.close().await;
    let _ = conn.close(200, "bye".into()).await;
    let logs = env.logs();
    assert!(
        logs.contains("quarantined poison message") && logs.contains("missing_event_type"),
        "{logs}"
    );

    // "Fix the cause" (allow big payloads) and replay: the big one is now stored; the others come back.
    let conf = std::fs::read_to_string(&env.conf)
        .unwrap()
        .replace("max_payload_bytes = 20000", "max_payload_bytes = 100000");
    std::fs::write(&env.conf, conf).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yagi-event"))
        .arg("--config")
        .arg(&env.conf)
        .args(["replay-quarantine"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 re-published"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !env.quarantine_path().exists(),
        "the replayed file is set aside"
    );
    let mut child = env.spawn(&[]);
    let got = env.wait_stored(n as u64 + 1, T).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    assert_eq!(got, n as u64 + 1, "{}", env.logs());
    let again = stv3_ingest::quarantine::read_records(&env.quarantine_path()).unwrap();
    assert_eq!(
        again.len(),
        4,
        "the four still-broken ones are quarantined again"
    );
    env.cleanup().await;
}
