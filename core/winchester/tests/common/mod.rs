//! Test harness: run a test body against every backend (SQLite file, and
//! MariaDB in a scratch database created and dropped per run).

#![allow(dead_code)]

use sqlx::Executor;
use stv3_testsupport::{require, scratch_name, Service};
use stv3_winchester::store::{AnyStore, Store};

/// Drops the scratch MariaDB database when the test ends (even on panic).
pub struct Scratch {
    root_url: String,
    name: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (url, name) = (self.root_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(pool) = sqlx::MySqlPool::connect(&url).await {
                    let _ = pool
                        .execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

pub struct Backend {
    pub label: &'static str,
    pub store: AnyStore,
    pub url: String,
    _scratch: Option<Scratch>,
    _dir: Option<tempfile::TempDir>,
}

/// A migrated SQLite store in a temp dir.
pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("w.db").display());
    let store = AnyStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Backend {
        label: "sqlite",
        store,
        url,
        _scratch: None,
        _dir: Some(dir),
    }
}

/// A migrated MariaDB store in a fresh scratch database (None: MariaDB not available, test skipped).
pub async fn mariadb(test: &str) -> Option<Backend> {
    let root = require(Service::MariaDb, test)?;
    let root = root.trim_end_matches('/').to_string();
    let name = scratch_name(test);
    let pool = sqlx::MySqlPool::connect(&root)
        .await
        .expect("connect to MariaDB");
    pool.execute(
        format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str(),
    )
    .await
    .expect("create scratch database");
    pool.close().await;
    let scratch = Scratch {
        root_url: root.clone(),
        name: name.clone(),
    };
    let url = format!("{root}/{name}");
    let store = AnyStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Some(Backend {
        label: "mariadb",
        store,
        url,
        _scratch: Some(scratch),
        _dir: None,
    })
}

/// Every available backend.
pub async fn backends(test: &str) -> Vec<Backend> {
    let mut out = vec![sqlite().await];
    if let Some(m) = mariadb(test).await {
        out.push(m);
    }
    out
}
