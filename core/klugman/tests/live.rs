//! klugman against a live in-process stv3-api (SQLite and MariaDB scratch
//! databases filled with the stv3-api testkit fixture): table and JSON output
//! are snapshot-tested; errors are checked for message and exit code.

use clap::Parser;
use klugman::cli::compat_args;
use stv3_api::testkit::{spawn_server, ScratchDb, ServerOptions};
use stv3_testsupport::{require, scratch_name, Service};

async fn klug(base: &str, args: &[&str]) -> (Result<(), i32>, String, String) {
    let mut argv = vec!["klugman".to_string(), "--url".to_string(), base.to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let cli = klugman::Cli::try_parse_from(compat_args(argv.into_iter().map(Into::into).collect()))
        .expect("args");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = klugman::run(&cli, &mut out, &mut err).await;
    if let Err(e) = &r {
        err.extend_from_slice(format!("ERROR: {e}\n").as_bytes());
    }
    (
        r.map_err(|e| e.exit_code()),
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// (snapshot name, arguments)
const SNAPSHOTS: &[(&str, &[&str])] = &[
    ("streams_list", &["streams"]),
    (
        "streams_list_json_page",
        &["streams", "--json", "--limit", "2"],
    ),
    (
        "stream_detail_with_events",
        &["streams", "--id", "3", "--details"],
    ),
    ("streams_by_state", &["streams", "--state", "error"]),
    (
        "streams_by_name_and_older",
        &["streams", "--name", "usage", "--from", "2015-03-01T19:30"],
    ),
    (
        "streams_count_by_trigger",
        &["streams", "--count", "--trigger", "usage"],
    ),
    (
        "num_streams_traits",
        &["num-streams", "--traits", "instance_id:inst-a"],
    ),
    ("events_page", &["events", "--limit", "2"]),
    ("event_by_msg_id", &["events", "--msg-id", "msg-0005"]),
    (
        "events_typed_traits_json",
        &[
            "events",
            "--traits",
            "memory_mb:4096",
            "--name",
            "compute.instance.exists",
            "--json",
        ],
    ),
    (
        "events_comma_traits_and_colon",
        &[
            "events",
            "--traits",
            "url:http://nova:8774/v2,memory_mb:512",
        ],
    ),
    (
        "num_events_from",
        &["num-events", "--from", "2015-03-01T21:00"],
    ),
    (
        "events_ascending_mark",
        &["events", "--mark", "+", "--limit", "2", "--json"],
    ),
];

async fn snapshot_suite(base: &str, suffix: &str) {
    for (name, args) in SNAPSHOTS {
        let (r, out, err) = klug(base, args).await;
        assert_eq!(r, Ok(()), "{name}: {err}");
        insta::assert_snapshot!(
            format!("{name}{suffix}"),
            format!("$ klugman {}\n{out}--- stderr\n{err}", args.join(" "))
        );
    }

    // --all follows marks across pages.
    let (r, out, _) = klug(base, &["events", "--all", "--limit", "5", "--json"]).await;
    assert_eq!(r, Ok(()));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 24);
    assert_eq!((ids[0], ids[23]), ("Mixed-Case-ID", "msg-0001"));

    // Errors: message from the server, exit codes 4 (not found), 3 (rejected), 1 (unreachable).
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["events", "--msg-id", "nope"],
            4,
            "no event with message_id",
        ),
        (&["streams", "--id", "999"], 4, "no stream with id 999"),
        (
            &["streams", "--older", "yesterday"],
            3,
            "cannot parse \"yesterday\"",
        ),
        (&["events", "--traits", "oops"], 3, "is not name:value"),
        (&["reset", "999"], 4, "no stream"),
        (&["archives"], 2, "--api-version 2"),
    ];
    for (args, code, msg) in cases {
        let (r, _, err) = klug(base, args).await;
        assert_eq!(r, Err(*code), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    let (r, _, err) = klug("http://127.0.0.1:9", &["streams"]).await;
    assert_eq!(r, Err(1), "{err}");
    assert!(err.contains("cannot reach"), "{err}");

    // Admin writes.
    let (r, out, _) = klug(base, &["reset", "3"]).await;
    assert_eq!(r, Ok(()));
    insta::assert_snapshot!(format!("reset_error_stream{suffix}"), out);
    let (r, out, _) = klug(base, &["delete", "5", "--json"]).await;
    assert_eq!(r, Ok(()));
    insta::assert_snapshot!(format!("delete_stream{suffix}"), out);
    let (r, _, _) = klug(base, &["streams", "--id", "5"]).await;
    assert_eq!(r, Err(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_table_and_json_output() {
    let db = ScratchDb::sqlite().await.unwrap();
    db.load_fixture().await.unwrap();
    let archives = tempfile::tempdir().unwrap();
    std::fs::write(archives.path().join("a.json.gz"), b"not really gzip").unwrap();
    let base = spawn_server(
        &db.url,
        ServerOptions {
            archive_dir: Some(archives.path().into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    snapshot_suite(&base, "").await;

    let (r, out, _) = klug(&base, &["-a", "2", "archives"]).await;
    assert_eq!(r, Ok(()));
    assert!(out.contains("| a.json.gz | 15   |"), "{out}");
    let target = archives.path().join("copy.gz");
    let (r, _, err) = klug(
        &base,
        &[
            "--api-version",
            "2",
            "archives",
            "--get",
            "a.json.gz",
            "-o",
            target.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r, Ok(()), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"not really gzip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_table_and_json_output() {
    let Some(server) = require(Service::MariaDb, "klugman mariadb_table_and_json_output") else {
        return;
    };
    let db = ScratchDb::mysql(&server, &scratch_name("klugman"))
        .await
        .unwrap();
    db.load_fixture().await.unwrap();
    let base = spawn_server(&db.url, ServerOptions::default())
        .await
        .unwrap();
    // Same snapshots as SQLite: both backends must render identically.
    snapshot_suite(&base, "").await;
}
