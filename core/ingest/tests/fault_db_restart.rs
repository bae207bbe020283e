//! Fault: MariaDB is restarted (a real shutdown and start of the server) while
//! yagi-event is ingesting into it. Ingestion stalls (waits for a connection or retries
//! the batch), resumes by itself,
//! and ends with exactly the input stored and archived. One test in its own
//! binary: it takes the shared server away, so nothing else may run beside it.

mod common;

use std::time::Duration;

use common::*;
use stv3_testsupport::mariadb_outage::{restart, BringBack};

const T: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_mid_ingest_loses_and_duplicates_nothing() {
    let test = "mariadb_restart_mid_ingest";
    if stv3_testsupport::require(stv3_testsupport::Service::MariaDb, test).is_none()
        || stv3_testsupport::require(stv3_testsupport::Service::Mount, test).is_none()
    {
        return;
    }
    let _guard = BringBack;
    let mut env = Env::new("ingdbrs", Db::MariaDb, None, 200, "").await;
    let input = env.dir.path().join("notifications.jsonl");
    let n = 20_000;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&input).unwrap();
        for i in 0..n {
            writeln!(f, "{}", notification(&env.name, i)).unwrap();
        }
    }
    let src = format!("file:{}", input.display());
    let mut child = env.spawn(&["--source", &src]);
    let before = env.wait_stored(n as u64 / 10, T).await;
    assert!(
        before < n as u64,
        "restart happens mid-run ({before} of {n} stored)"
    );
    restart();
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status}\n{}", env.logs());
    env.assert_exactly_n(n, "archive across a DB restart").await;
    env.cleanup().await;
}
