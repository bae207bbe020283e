//! Sandbox configs come from the same templates and roles as a real deploy.
//!
//! The sandbox writes a one-host inventory (`etc/sandbox-inventory.yaml`) for
//! region `sandbox` whose paths all live inside the work directory, renders it
//! with [`crate::deploy::render::render_host`], and writes the config files.
//! The processes it starts are the service instances the deploy model lists,
//! so the sandbox runs exactly what a deploy would run (minus init scripts).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::SandboxOptions;
use crate::deploy::render::{render_host, HostFacts, HostModel, ServiceInstance};
use crate::deploy::roles::Assets;
use crate::inventory::{self, secrets::SecretStore, InitKind};

/// Where the sandbox put things.
#[derive(Debug, Clone)]
pub struct Layout {
    pub database_url: String,
    pub model: HostModel,
    pub cells: Vec<CellLayout>,
}

#[derive(Debug, Clone)]
pub struct CellLayout {
    pub name: String,
    /// JSON-lines feed notigen writes and yagi-event follows (file mode).
    pub feed: PathBuf,
    pub exchange: String,
    pub routing_key: String,
    /// The cell's (first) queue.
    pub queue: String,
}

/// The queue a cell's yagi-event consumes: `<queue_prefix>.<cell>.monitor.info`.
pub fn cell_queue(opts: &SandboxOptions, cell: &str) -> String {
    format!("{}.{cell}.monitor.info", opts.queue_prefix)
}

/// The inventory text for a sandbox in `dir`.
pub fn inventory_yaml(opts: &SandboxOptions, dir: &Path) -> String {
    let d = dir.display();
    let db = opts
        .db
        .as_deref()
        .map(strip_password)
        .unwrap_or_else(|| format!("sqlite:///{d}/data/stv3.db"));
    let amqp = opts
        .amqp
        .clone()
        .unwrap_or_else(|| "amqp://guest@127.0.0.1:5672".into());
    let amqp_no_pw = strip_password(&amqp);
    let mut cells = String::new();
    for c in &opts.cells {
        cells.push_str(&format!(
            "      - name: {c}\n        rabbit: {{url: \"{amqp_no_pw}\", vhost: /, password_secret: rabbit}}\n        exchange: {exchange}\n        queues: [{{name: {queue}, routing_key: monitor.info.{c}}}]\n",
            queue = cell_queue(opts, c),
            exchange = opts.exchange
        ));
    }
    let first_cell = opts
        .cells
        .first()
        .cloned()
        .unwrap_or_else(|| "cell1".into());
    let lines = [
        format!("# Written by `stv3ctl sandbox`: a one-host region whose paths live in {d}."),
        "regions:".into(),
        "  sandbox:".into(),
        "    init: sysv".into(),
        "    log_level: info".into(),
        format!(
            "    paths: {{opt: \"{d}/opt\", etc: \"{d}/etc\", log: \"{d}/logs\", run: \"{d}/run\", lib: \"{d}/lib\", initd: \"{d}/init.d\", systemd: \"{d}/systemd\"}}"
        ),
        format!("    database: {{url: \"{db}\"}}"),
        format!("    api: {{bind: \"{}\"}}", opts.api_addr),
        format!("    ops: {{bind: 127.0.0.1, port_base: {}}}", opts.ops_port_base),
        format!("    republish: {{cell: {first_cell}, exchange: nova, routing_key: monitor.info}}"),
        "    cells:".into(),
        cells.trim_end().to_string(),
        "    hosts:".into(),
        "      - name: localhost".into(),
        "        address: 127.0.0.1".into(),
        "        roles: [worker, api, db]".into(),
        format!("        pipeline_workers: {}", opts.workers),
    ];
    lines.join("\n") + "\n"
}

fn strip_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// The password in a URL's user info, or `default` when it has none.
fn password_of(url: &str, default: &str) -> String {
    let (Some(s), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return default.into();
    };
    url[s + 3..at]
        .split_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| default.into())
}

/// Render every config into `dir` and return the layout.
pub fn render(assets: &Assets, opts: &SandboxOptions, dir: &Path) -> Result<Layout> {
    for sub in ["etc", "data", "logs", "run", "lib", "feed"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("create {}/{sub}", dir.display()))?;
    }
    let inv_path = dir.join("etc").join("sandbox-inventory.yaml");
    let text = inventory_yaml(opts, dir);
    std::fs::write(&inv_path, &text)?;
    let inv = inventory::parse(&inv_path, &text)?;
    let rabbit_pw = password_of(
        opts.amqp.as_deref().unwrap_or("amqp://guest:guest@x"),
        "guest",
    );
    let db_pw = password_of(opts.db.as_deref().unwrap_or(""), "");
    let secrets = SecretStore::from_values(
        [
            ("rabbit".to_string(), rabbit_pw),
            ("database".to_string(), db_pw),
        ]
        .into_iter()
        .collect(),
        Default::default(),
        true,
    );
    let region = inventory::resolve(&inv, "sandbox", &secrets)?;
    let host = region
        .host("localhost")
        .context("sandbox inventory has no localhost")?;
    let model = render_host(
        assets,
        &region,
        host,
        &HostFacts {
            cores: opts.workers as u32,
            init: InitKind::Sysv,
        },
    )?;

    let etc = format!("{}/etc", dir.display());
    for f in &model.files {
        if !f.path.starts_with(&etc) {
            continue; // init scripts and the like are not used by the sandbox
        }
        let path = Path::new(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &f.content).with_context(|| format!("write {}", f.path))?;
    }
    for d in &model.dirs {
        if d.path.starts_with(&dir.display().to_string()) {
            std::fs::create_dir_all(&d.path)?;
        }
    }
    let cells = region
        .cells
        .iter()
        .map(|c| CellLayout {
            name: c.name.clone(),
            feed: dir.join("feed").join(format!("{}.jsonl", c.name)),
            exchange: c.exchange.clone(),
            routing_key: c
                .queues
                .first()
                .map(|q| q.routing_key.clone())
                .unwrap_or_default(),
            queue: c.queues.first().map(|q| q.name.clone()).unwrap_or_default(),
        })
        .collect();
    let database_url = opts
        .db
        .clone()
        .unwrap_or_else(|| format!("sqlite:///{}/data/stv3.db", dir.display()));
    Ok(Layout {
        database_url,
        model,
        cells,
    })
}

/// The service instances of one kind (`yagi`, `pipeline`, `api`).
pub fn services<'a>(layout: &'a Layout, id: &str) -> Vec<&'a ServiceInstance> {
    layout
        .model
        .services
        .iter()
        .filter(|s| s.id == id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_the_inventory() {
        for (url, bare, pw) in [
            (
                "amqp://guest:guest@127.0.0.1:5672",
                "amqp://guest@127.0.0.1:5672",
                "guest",
            ),
            (
                "amqp://u:s3cr%40t@h:5672/v",
                "amqp://u@h:5672/v",
                "s3cr%40t",
            ),
            ("amqp://h:5672", "amqp://h:5672", "guest"),
        ] {
            assert_eq!(strip_password(url), bare);
            assert_eq!(password_of(url, "guest"), pw);
        }
        let opts = SandboxOptions {
            amqp: Some("amqp://guest:topsecret@127.0.0.1:5672".into()),
            ..Default::default()
        };
        let text = inventory_yaml(&opts, Path::new("/tmp/sb"));
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("sqlite:////tmp/sb/data/stv3.db"), "{text}");
        let opts = SandboxOptions {
            db: Some("mysql://stv3:dbsecret@127.0.0.1/stv3".into()),
            ..Default::default()
        };
        let text = inventory_yaml(&opts, Path::new("/tmp/sb"));
        assert!(!text.contains("dbsecret"), "{text}");
        assert!(text.contains("mysql://stv3@127.0.0.1/stv3"), "{text}");
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn renders_the_deploy_templates_for_a_local_region() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let assets = Assets::from_dir(root).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = SandboxOptions::default();
        let layout = render(&assets, &opts, dir.path()).unwrap();
        let kinds: Vec<(String, String)> = layout
            .model
            .services
            .iter()
            .map(|s| (s.id.clone(), s.instance.clone()))
            .collect();
        for want in [
            ("api", ""),
            ("pipeline", "1"),
            ("pipeline", "2"),
            ("yagi", "cell1"),
            ("yagi", "cell2"),
        ] {
            assert!(
                kinds.iter().any(|(k, i)| k == want.0 && i == want.1),
                "missing service {want:?} in {kinds:?}"
            );
        }
        let winchester = std::fs::read_to_string(dir.path().join("etc/winchester.yaml")).unwrap();
        assert!(winchester.contains("sqlite://"), "{winchester}");
        for cell in ["cell1", "cell2"] {
            let yagi =
                std::fs::read_to_string(dir.path().join(format!("etc/yagi-{cell}.conf"))).unwrap();
            assert!(yagi.contains(&format!("wrap_cell = {cell}")), "{yagi}");
        }
        assert_eq!(layout.cells.len(), 2);
        assert!(layout.model.db.is_some(), "the db role runs migrations");
    }
}
