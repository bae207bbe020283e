//! Rendering: from the resolved [`Region`], one [`Host`] and a few host facts
//! (core count, init system) to the host's desired state, the
//! [`HostModel`]: directories, files (configs, per-instance argument files,
//! systemd units or SysV scripts) and service instances. Pure: no I/O.
//!
//! Config files and the units/scripts that start the processes come from the
//! same [`ServiceInstance`] (D1): the arguments are rendered once, written to
//! `<etc>/instances/<name>.env`, and read by both the systemd unit and the
//! SysV script. Every `--config` path a service gets must be a file this
//! host renders, or rendering fails.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{json, Value};

use super::roles::{Assets, Each, RoleSpec};
use super::DeployError;
use crate::inventory::{Host, InitKind, Region, RoleName};

/// Marker rendered in place of every secret to find the secret-bearing lines.
const SECRET_MARKER: &str = "ZZSTV3SECRETZZ";

/// What we learned about a host before rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    pub cores: u32,
    /// `Systemd` or `Sysv` (never `Auto`).
    pub init: InitKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredDir {
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredFile {
    pub path: String,
    #[serde(skip)]
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// Holds a secret: diffs are redacted.
    pub secret: bool,
    /// Line prefixes after which a secret follows (for diff redaction).
    #[serde(skip)]
    pub redact_prefixes: Vec<String>,
    /// The template it came from.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInstance {
    /// Service kind from the role (`yagi`, `pipeline`, `api`).
    pub id: String,
    /// Instance (`cell1`, `3`) or empty.
    pub instance: String,
    /// systemd unit name, e.g. `stv3-yagi@cell1.service`.
    pub unit: String,
    /// The unit file that defines it, e.g. `stv3-yagi@.service`.
    pub unit_file: String,
    pub unit_base: String,
    pub templated: bool,
    /// SysV script name, e.g. `stv3-yagi-cell1`; also the pidfile and log name.
    pub sysv_name: String,
    pub binary: String,
    pub args: Vec<String>,
    /// Where the process serves `/health` (as configured).
    pub ops_addr: String,
    /// Where to connect for the health check (0.0.0.0 becomes 127.0.0.1).
    pub health_addr: String,
    /// Files whose change restarts this service (configs, env file, unit/script).
    pub inputs: Vec<String>,
}

impl ServiceInstance {
    /// The name operators use with the host's init system.
    pub fn name(&self, init: InitKind) -> &str {
        match init {
            InitKind::Sysv => &self.sysv_name,
            _ => &self.unit,
        }
    }
}

/// The desired state of one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostModel {
    pub host: String,
    /// The config directory (`paths.etc`): stale files below it may be removed.
    pub etc: String,
    pub roles: Vec<RoleName>,
    pub init: InitKind,
    pub pipeline_workers: u32,
    pub user: String,
    pub group: String,
    pub dirs: Vec<DesiredDir>,
    pub files: Vec<DesiredFile>,
    pub services: Vec<ServiceInstance>,
    pub binaries: BTreeSet<String>,
    /// The database step of the db role (provisioning and migrations).
    pub db: Option<DbTask>,
}

impl HostModel {
    pub fn file(&self, path: &str) -> Option<&DesiredFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// A file of the database step, written into [`DbTask::dir`] only while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    pub name: String,
    pub content: Vec<u8>,
}

/// The db role's database step: provision the database and the app user with
/// the admin credential (D8), then run the migrations (D7). Its files hold the
/// admin credential, so they are never written to the config directory: the
/// step creates [`DbTask::dir`] root-only, writes them, runs, and removes it.
#[derive(Debug, Clone, Serialize)]
pub struct DbTask {
    /// The root-only directory the step runs in (`<etc>/.dbtask`).
    pub dir: String,
    /// Migration argv; the first word is relative to the release root.
    pub migrate: Vec<String>,
    /// `admin.cnf` + `provision.sql` (when provisioning) and `winchester.yaml`.
    #[serde(skip)]
    pub files: Vec<TaskFile>,
    /// Whether there is an admin credential to provision with.
    pub provision: bool,
    /// Migrations run as root (MySQL, admin credential in the root-only
    /// directory) or as the service user (SQLite: the file must be its own).
    pub run_as_root: bool,
    /// Plan text: what provisioning does (no secrets).
    pub summary: String,
    /// Records what was provisioned last (`<etc>/db-provisioned`): a changed
    /// stamp in the plan means provisioning runs.
    pub stamp: Option<String>,
    /// `database.install_server`: the server package to install and start
    /// first, when the host's facts say it is missing or down.
    pub server: Option<ServerTask>,
}

/// The database server the db step installs (apt-get) and starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerTask {
    /// The Debian/Ubuntu package (`mariadb-server`).
    pub package: String,
    /// Its possible service names; the first the host has is used.
    pub services: Vec<String>,
    /// How long to wait for it to accept connections after starting it.
    pub wait_seconds: u64,
    /// Where `database.install_server` was set (`inventory.yaml:14:23`).
    pub set_by: String,
    /// Set when `database.url` names another host than this one.
    pub note: Option<String>,
}

/// The file naming everything stv3ctl installed on a host, so that what
/// later leaves the model (a cell, a pipeline worker, a role) is stopped and
/// removed. `<etc>/managed-by-stv3ctl`.
pub fn managed_list_path(etc: &str) -> String {
    format!("{etc}/managed-by-stv3ctl")
}

/// One entry of the managed list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Managed {
    File(String),
    Service { init: InitKind, name: String },
}

/// Parse the managed list; unknown lines are ignored.
pub fn parse_managed(lines: &[String]) -> Vec<Managed> {
    lines
        .iter()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some("file"), Some(p), None) => Some(Managed::File(p.to_string())),
                (Some("service"), Some(kind), Some(name)) => {
                    let init = match kind {
                        "sysv" => InitKind::Sysv,
                        "systemd" => InitKind::Systemd,
                        _ => return None,
                    };
                    Some(Managed::Service {
                        init,
                        name: name.to_string(),
                    })
                }
                _ => None,
            }
        })
        .collect()
}

fn managed_list(files: &[DesiredFile], services: &[ServiceInstance], init: InitKind) -> String {
    let mut out = String::from(
        "# Managed by stv3ctl: what this host got from its last deploy. A later deploy\n\
         # stops, disables and removes whatever is listed here but no longer in the inventory.\n",
    );
    for f in files {
        out.push_str(&format!("file {}\n", f.path));
    }
    let kind = match init {
        InitKind::Systemd => "systemd",
        _ => "sysv",
    };
    for s in services {
        out.push_str(&format!("service {kind} {}\n", s.name(init)));
    }
    out
}

fn parse_mode(s: &str, what: &str) -> Result<u32, DeployError> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|_| DeployError::Render {
        what: what.to_string(),
        message: format!("bad mode `{s}` (octal, e.g. \"0640\")"),
    })
}

/// The service account and group every process runs as.
pub const SERVICE_USER: &str = "stv3";

struct Ctx<'a> {
    env: Environment<'a>,
}

impl Ctx<'_> {
    fn render_str(&self, what: &str, tmpl: &str, ctx: &Value) -> Result<String, DeployError> {
        self.env
            .render_str(tmpl, ctx)
            .map_err(|e| DeployError::Render {
                what: what.to_string(),
                message: e.to_string(),
            })
    }
    fn render_named(&self, name: &str, ctx: &Value) -> Result<String, DeployError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| DeployError::Render {
                what: format!("templates/{name}"),
                message: e.to_string(),
            })?;
        t.render(ctx).map_err(|e| DeployError::Render {
            what: format!("templates/{name}"),
            message: e.to_string(),
        })
    }
    fn truthy(&self, what: &str, expr: &str, ctx: &Value) -> Result<bool, DeployError> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| DeployError::Render {
                what: what.to_string(),
                message: e.to_string(),
            })?;
        e.eval(ctx)
            .map(|v| v.is_true())
            .map_err(|e| DeployError::Render {
                what: what.to_string(),
                message: e.to_string(),
            })
    }
}

fn environment(assets: &Assets) -> Result<Environment<'static>, DeployError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Error messages must never dump the context (it holds secrets).
    env.set_debug(false);
    // A string as a double-quoted YAML/JSON scalar.
    env.add_filter("tojson", |v: minijinja::Value| {
        serde_json::to_string(&v).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })
    });
    env.add_filter("sql_string", |v: String| sql_string(&v));
    env.add_filter("sql_ident", |v: String| sql_ident(&v));
    env.add_filter("cnf_value", |v: String| cnf_value(&v));
    for (name, text) in assets.templates() {
        if name.ends_with(".j2") {
            env.add_template_owned(name.to_string(), text.to_string())
                .map_err(|e| DeployError::Render {
                    what: format!("templates/{name}"),
                    message: e.to_string(),
                })?;
        }
    }
    Ok(env)
}

/// The template context of a region/host. With `real_secrets` false every
/// secret is [`SECRET_MARKER`] (used to find which lines carry secrets).
fn base_context(
    region: &Region,
    host: &Host,
    facts: &HostFacts,
    workers: u32,
    real_secrets: bool,
) -> Value {
    let pw = |s: &crate::inventory::Secret| {
        if real_secrets {
            s.expose().to_string()
        } else {
            SECRET_MARKER.to_string()
        }
    };
    let cell_ctx = |c: &crate::inventory::Cell| {
        json!({
            "name": c.name, "index": c.index, "vhost": c.vhost, "exchange": c.exchange,
            "queues": c.queues,
            "rabbit": {"scheme": c.rabbit.scheme, "host": c.rabbit.host, "port": c.rabbit.port,
                       "user": c.rabbit.user, "password": pw(&c.rabbit.password)},
        })
    };
    let cells: Vec<Value> = region.cells.iter().map(cell_ctx).collect();
    let rep_cell = region
        .cell(&region.republish.cell)
        .unwrap_or(&region.cells[0]);
    let mut db = region.database.clone();
    if !real_secrets {
        db.password = crate::inventory::Secret::new(db.password.name(), SECRET_MARKER);
    }
    let admin = region.database_admin.as_ref().map(|a| {
        let mut url = db.clone();
        url.user = a.user.clone();
        url.password = crate::inventory::Secret::new(a.password.name(), pw(&a.password));
        json!({"user": a.user, "password": pw(&a.password), "url": url.with_password()})
    });
    let default_layout = region.paths.etc == "/etc/stv3" && region.paths.opt == "/opt/stv3";
    json!({
        "region": {"name": region.name},
        "host": {"name": host.name, "address": host.address, "ops_port_base": host.ops_port_base,
                 "roles": host.roles, "pipeline_workers": workers},
        "paths": region.paths,
        "user": SERVICE_USER,
        "group": SERVICE_USER,
        "run_as": format!("{SERVICE_USER}:{SERVICE_USER}"),
        "log_level": region.log_level,
        "ops_bind": region.ops_bind,
        "api_bind": region.api_bind,
        "retention": region.retention,
        "health": region.health,
        "init": match facts.init { InitKind::Systemd => "systemd", _ => "sysv" },
        "layout_is_default": default_layout,
        "database": {"url": db.with_password(), "scheme": db.scheme, "host": db.host,
                     "port": db.port, "name": db.path.trim_start_matches('/'), "user": db.user,
                     "password": db.password.expose(), "client_hosts": region.database_clients,
                     "admin": admin},
        "task_dir": db_task_dir(&region.paths.etc),
        "cells": cells,
        "republish": {"cell": region.republish.cell, "exchange": region.republish.exchange,
                      "routing_key": region.republish.routing_key, "vhost": rep_cell.vhost,
                      "rabbit": cell_ctx(rep_cell)["rabbit"].clone()},
    })
}

fn with(base: &Value, extra: &[(&str, Value)]) -> Value {
    let mut v = base.clone();
    if let Value::Object(m) = &mut v {
        for (k, x) in extra {
            m.insert(k.to_string(), x.clone());
        }
    }
    v
}

/// The contexts an `each` expands to: `(label, extra context entries)`.
fn expand(
    each: Option<Each>,
    base: &Value,
    workers: u32,
) -> Vec<(String, Vec<(&'static str, Value)>)> {
    match each {
        None => vec![(String::new(), vec![])],
        Some(Each::Cell) => base["cells"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("").to_string(),
                            vec![("cell", c.clone())],
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Some(Each::PipelineWorker) => (1..=workers)
            .map(|n| (n.to_string(), vec![("n", json!(n))]))
            .collect(),
    }
}

fn connect_addr(ops_addr: &str) -> String {
    match ops_addr.rsplit_once(':') {
        Some(("0.0.0.0", p)) | Some(("", p)) => format!("127.0.0.1:{p}"),
        Some(("[::]", p)) => format!("[::1]:{p}"),
        _ => ops_addr.to_string(),
    }
}

/// Arguments go into an env file read by systemd and sourced by sh: keep them
/// to characters that need no quoting anywhere.
fn check_arg(what: &str, arg: &str) -> Result<(), DeployError> {
    let ok = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DeployError::Render {
            what: what.to_string(),
            message: format!("argument `{arg}` is empty or has characters that would need quoting"),
        })
    }
}

/// The root-only directory the database step runs in.
pub fn db_task_dir(etc: &str) -> String {
    format!("{etc}/.dbtask")
}

/// A MySQL string literal (for a session without `NO_BACKSLASH_ESCAPES`,
/// which the provisioning SQL sets).
fn sql_string(v: &str) -> String {
    let mut out = String::from("'");
    for c in v.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A MySQL identifier (backquoted).
fn sql_ident(v: &str) -> String {
    format!("`{}`", v.replace('`', "``"))
}

/// A value of a MySQL option file (double-quoted, escapes as the client reads them).
fn cnf_value(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Render the desired state of `host`.
pub fn render_host(
    assets: &Assets,
    region: &Region,
    host: &Host,
    facts: &HostFacts,
) -> Result<HostModel, DeployError> {
    let ctx = Ctx {
        env: environment(assets)?,
    };
    let workers = host.pipeline_workers.unwrap_or(facts.cores.max(1));
    let base = base_context(region, host, facts, workers, true);
    let marked = base_context(region, host, facts, workers, false);

    let mut roles: Vec<RoleSpec> = vec![assets.role("common")?];
    for r in &host.roles {
        roles.push(assets.role(r.as_str())?);
    }

    let mut dirs: Vec<DesiredDir> = Vec::new();
    let mut binaries = BTreeSet::new();
    let mut migrate = None;
    let mut db_spec = None;
    let mut services: Vec<ServiceInstance> = Vec::new();

    // Services first: files may refer to their instance (`service`).
    for role in &roles {
        binaries.extend(role.binaries.iter().cloned());
        for d in &role.directories {
            for (_, extra) in expand(d.each, &base, workers) {
                let c = with(&base, &extra);
                let what = format!("roles/{}.yaml directory {}", role.name, d.path);
                let dir = DesiredDir {
                    path: ctx.render_str(&what, &d.path, &c)?,
                    owner: ctx.render_str(&what, &d.owner, &c)?,
                    group: ctx.render_str(&what, &d.group, &c)?,
                    mode: parse_mode(&d.mode, &what)?,
                };
                if !dirs.iter().any(|x| x.path == dir.path) {
                    dirs.push(dir);
                }
            }
        }
        if let Some(m) = &role.migrate {
            let what = format!("roles/{}.yaml migrate", role.name);
            let mut argv = vec![format!("bin/{}", m.binary)];
            for a in &m.args {
                let a = ctx.render_str(&what, a, &base)?;
                check_arg(&what, &a)?;
                argv.push(a);
            }
            migrate = Some(argv);
        }
        if let Some(d) = &role.database {
            db_spec = Some(d.clone());
        }
        for s in &role.services {
            for (label, extra) in expand(s.each, &base, workers) {
                let what = format!("roles/{}.yaml service {} {label}", role.name, s.id);
                let c = with(&base, &extra);
                let instance = ctx.render_str(&what, &s.instance, &c)?;
                let ops_addr = ctx.render_str(&what, &s.ops_addr, &c)?;
                let c = with(&c, &[("ops_addr", json!(ops_addr))]);
                let mut args = Vec::new();
                for a in &s.args {
                    let a = ctx.render_str(&what, a, &c)?;
                    check_arg(&what, &a)?;
                    args.push(a);
                }
                let mut inputs = Vec::new();
                for p in &s.config {
                    inputs.push(ctx.render_str(&what, p, &c)?);
                }
                let templated = s.each.is_some();
                let (unit, unit_file, sysv_name) = if templated {
                    (
                        format!("{}@{instance}.service", s.unit_base),
                        format!("{}@.service", s.unit_base),
                        format!("{}-{instance}", s.unit_base),
                    )
                } else {
                    (
                        format!("{}.service", s.unit_base),
                        format!("{}.service", s.unit_base),
                        s.unit_base.clone(),
                    )
                };
                let env_file = format!("{}/instances/{sysv_name}.env", region.paths.etc);
                inputs.push(env_file);
                inputs.push(match facts.init {
                    InitKind::Sysv => format!("{}/{sysv_name}", region.paths.initd),
                    _ => format!("{}/{unit_file}", region.paths.systemd),
                });
                services.push(ServiceInstance {
                    id: s.id.clone(),
                    instance,
                    unit,
                    unit_file,
                    unit_base: s.unit_base.clone(),
                    templated,
                    sysv_name,
                    binary: s.binary.clone(),
                    args,
                    health_addr: connect_addr(&ops_addr),
                    ops_addr,
                    inputs,
                });
            }
        }
    }
    if let Some(dup) = services.iter().enumerate().find_map(|(i, s)| {
        services[..i]
            .iter()
            .find(|o| o.ops_addr == s.ops_addr)
            .map(|o| (o.unit.clone(), s.unit.clone(), s.ops_addr.clone()))
    }) {
        return Err(DeployError::Render {
            what: format!("host {}", host.name),
            message: format!(
                "{} and {} would both serve /health on {}",
                dup.0, dup.1, dup.2
            ),
        });
    }

    let mut files: Vec<DesiredFile> = Vec::new();
    let add = |f: DesiredFile, files: &mut Vec<DesiredFile>| -> Result<(), DeployError> {
        if let Some(existing) = files.iter().find(|x| x.path == f.path) {
            if existing.content != f.content {
                return Err(DeployError::Render {
                    what: format!("host {}", host.name),
                    message: format!(
                        "{} is rendered twice with different contents ({} and {})",
                        f.path, existing.source, f.source
                    ),
                });
            }
            return Ok(());
        }
        files.push(f);
        Ok(())
    };

    for role in &roles {
        for fspec in &role.files {
            for (label, extra) in expand(fspec.each, &base, workers) {
                let what = format!("roles/{}.yaml file {} {label}", role.name, fspec.template);
                let mut extra = extra.clone();
                if let Some(sid) = &fspec.service {
                    let inst = services
                        .iter()
                        .find(|s| &s.id == sid && (fspec.each.is_none() || s.instance == label))
                        .ok_or_else(|| DeployError::Render {
                            what: what.clone(),
                            message: format!("no instance of service `{sid}` for `{label}`"),
                        })?;
                    extra.push(("service", serde_json::to_value(inst).unwrap_or(Value::Null)));
                }
                let c = with(&base, &extra);
                let m = with(&marked, &extra);
                if let Some(cond) = &fspec.when {
                    if !ctx.truthy(&what, cond, &c)? {
                        continue;
                    }
                }
                let dest = ctx.render_str(&what, &fspec.dest, &c)?;
                let (content, prefixes) = if fspec.template.ends_with(".j2") {
                    let real = ctx.render_named(&fspec.template, &c)?;
                    let masked = ctx.render_named(&fspec.template, &m)?;
                    (real, secret_prefixes(&masked))
                } else {
                    let text =
                        assets
                            .template(&fspec.template)
                            .ok_or_else(|| DeployError::Render {
                                what: what.clone(),
                                message: format!("templates/{} does not exist", fspec.template),
                            })?;
                    (text.to_string(), vec![])
                };
                let secret = fspec.secret || !prefixes.is_empty();
                let group = match &fspec.group {
                    Some(g) => ctx.render_str(&what, g, &c)?,
                    None if secret => SERVICE_USER.to_string(),
                    None => "root".to_string(),
                };
                let mode = match &fspec.mode {
                    Some(m) => parse_mode(m, &what)?,
                    None if secret => 0o640,
                    None => 0o644,
                };
                if !prefixes.is_empty() && mode & 0o007 != 0 {
                    return Err(DeployError::Render {
                        what,
                        message: format!(
                            "{dest} holds a secret but mode {mode:o} lets everyone read it"
                        ),
                    });
                }
                add(
                    DesiredFile {
                        path: dest,
                        content: content.into_bytes(),
                        mode,
                        owner: fspec.owner.clone().unwrap_or_else(|| "root".into()),
                        group,
                        secret,
                        redact_prefixes: prefixes,
                        source: format!("templates/{}", fspec.template),
                    },
                    &mut files,
                )?;
            }
        }
    }

    // Per-instance argument files, then units or SysV scripts.
    let mut unit_files_done = BTreeSet::new();
    for s in &services {
        let sv = serde_json::to_value(s).unwrap_or(Value::Null);
        let c = with(&base, &[("service", sv.clone())]);
        let env_path = format!("{}/instances/{}.env", region.paths.etc, s.sysv_name);
        let text = ctx.render_named("instance.env.j2", &c)?;
        add(
            file(
                env_path,
                text,
                0o644,
                "root",
                "root",
                "templates/instance.env.j2",
            ),
            &mut files,
        )?;
        match facts.init {
            InitKind::Sysv => {
                let text = ctx.render_named("sysv-init.sh.j2", &c)?;
                let path = format!("{}/{}", region.paths.initd, s.sysv_name);
                add(
                    file(
                        path,
                        text,
                        0o755,
                        "root",
                        "root",
                        "templates/sysv-init.sh.j2",
                    ),
                    &mut files,
                )?;
            }
            _ => {
                if unit_files_done.insert(s.unit_file.clone()) {
                    let mut unit_sv = sv.clone();
                    if s.templated {
                        unit_sv["env_stem"] = json!(format!("{}-%i", s.unit_base));
                    } else {
                        unit_sv["env_stem"] = json!(s.sysv_name);
                    }
                    let text = ctx.render_named(
                        "systemd/unit.service.j2",
                        &with(&base, &[("service", unit_sv)]),
                    )?;
                    let path = format!("{}/{}", region.paths.systemd, s.unit_file);
                    add(
                        file(
                            path,
                            text,
                            0o644,
                            "root",
                            "root",
                            "templates/systemd/unit.service.j2",
                        ),
                        &mut files,
                    )?;
                }
            }
        }
    }
    if facts.init == InitKind::Systemd && !services.is_empty() {
        let c = with(
            &base,
            &[(
                "services",
                serde_json::to_value(&services).unwrap_or(Value::Null),
            )],
        );
        let text = ctx.render_named("systemd/stv3.target.j2", &c)?;
        let path = format!("{}/stv3.target", region.paths.systemd);
        add(
            file(
                path,
                text,
                0o644,
                "root",
                "root",
                "templates/systemd/stv3.target.j2",
            ),
            &mut files,
        )?;
    }

    // D1: every config path a service is started with, and every input it
    // names, is a file this host renders.
    let rendered: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for s in &services {
        for a in s.args.iter().chain(s.inputs.iter()) {
            if a.starts_with(&format!("{}/", region.paths.etc)) && !rendered.contains(a.as_str()) {
                return Err(DeployError::Render {
                    what: format!("host {} service {}", host.name, s.unit),
                    message: format!("uses {a}, which no role renders on this host"),
                });
            }
        }
    }
    let db = match (migrate, db_spec) {
        (None, None) => None,
        (Some(m), spec) => Some(db_task(
            &ctx,
            region,
            host,
            &base,
            m,
            spec.as_ref(),
            &mut files,
        )?),
        (None, Some(_)) => {
            return Err(DeployError::Render {
                what: format!("host {}", host.name),
                message: "a role has `database` but no `migrate`".into(),
            })
        }
    };
    if let Some(t) = &db {
        let dir = format!("{}/", t.dir);
        for a in &t.migrate {
            if a.starts_with(&dir) && !t.files.iter().any(|f| a[dir.len()..] == f.name) {
                return Err(DeployError::Render {
                    what: format!("host {} migrate", host.name),
                    message: format!("uses {a}, which the database step does not write"),
                });
            }
        }
    }

    let mut by_path: BTreeMap<String, DesiredFile> = BTreeMap::new();
    for f in files {
        by_path.insert(f.path.clone(), f);
    }
    let list_path = managed_list_path(&region.paths.etc);
    let listed: Vec<DesiredFile> = by_path.values().cloned().collect();
    by_path.insert(
        list_path.clone(),
        file(
            list_path,
            managed_list(&listed, &services, facts.init),
            0o644,
            "root",
            "root",
            "(stv3ctl)",
        ),
    );
    Ok(HostModel {
        host: host.name.clone(),
        etc: region.paths.etc.clone(),
        roles: host.roles.clone(),
        init: facts.init,
        pipeline_workers: workers,
        user: SERVICE_USER.into(),
        group: SERVICE_USER.into(),
        dirs,
        files: by_path.into_values().collect(),
        services,
        binaries,
        db,
    })
}

/// The database step of a db host: its files, the migration argv, and (with
/// an admin credential) the provisioning stamp file added to `files`.
fn db_task(
    ctx: &Ctx,
    region: &Region,
    host: &Host,
    base: &Value,
    migrate: Vec<String>,
    spec: Option<&super::roles::DatabaseSpec>,
    files: &mut Vec<DesiredFile>,
) -> Result<DbTask, DeployError> {
    let dir = db_task_dir(&region.paths.etc);
    let mut task_files = Vec::new();
    let mut provision = false;
    let mut summary = String::new();
    let mut stamp = None;
    let mysql = region.database.scheme != "sqlite";
    if let Some(spec) = spec {
        let config = ctx.render_named(&spec.migrate_config, base)?;
        task_files.push(TaskFile {
            name: "winchester.yaml".into(),
            content: config.into_bytes(),
        });
        if let (true, Some(admin)) = (mysql, &region.database_admin) {
            let sql = ctx.render_named(&spec.provision, base)?;
            let cnf = ctx.render_named(&spec.client_config, base)?;
            let db = &region.database;
            summary = format!(
                "database {} on {}:{} as {}: create if missing; user {} from {} with SELECT, INSERT, UPDATE, DELETE on it only",
                db.path.trim_start_matches('/'),
                db.host,
                db.port,
                admin.user,
                db.user,
                region.database_clients.join(", ")
            );
            let path = format!("{}/db-provisioned", region.paths.etc);
            // The stamp is a digest of the SQL (which holds the app password), root-only.
            files.push(DesiredFile {
                path: path.clone(),
                content: format!(
                    "# Managed by stv3ctl: digest of the database provisioning last applied. Do not edit.\n{}\n",
                    super::plan::sha256_hex(format!("{summary}\n{sql}").as_bytes())
                )
                .into_bytes(),
                mode: 0o600,
                owner: "root".into(),
                group: "root".into(),
                secret: false,
                redact_prefixes: vec![],
                source: format!("templates/{}", spec.provision),
            });
            stamp = Some(path);
            task_files.push(TaskFile {
                name: "admin.cnf".into(),
                content: cnf.into_bytes(),
            });
            task_files.push(TaskFile {
                name: "provision.sql".into(),
                content: sql.into_bytes(),
            });
            provision = true;
        } else if mysql {
            summary = format!(
                "not provisioned: no admin credential (database.admin_password_secret, default `database_admin`); migrations run as the app user {}",
                region.database.user
            );
        }
    }
    let server = match (region.database_install_server, spec) {
        (false, _) => None,
        (true, Some(spec)) => Some(server_task(region, host, spec)?),
        (true, None) => {
            return Err(DeployError::Render {
                what: format!("host {}", host.name),
                message: "database.install_server is set but the db role has no `database` section naming the server".into(),
            })
        }
    };
    Ok(DbTask {
        dir,
        migrate,
        files: task_files,
        provision,
        run_as_root: mysql,
        summary,
        stamp,
        server,
    })
}

/// The server install of `database.install_server` on `host`, from the
/// role's `database.server`.
fn server_task(
    region: &Region,
    host: &Host,
    spec: &super::roles::DatabaseSpec,
) -> Result<ServerTask, DeployError> {
    let what = format!("host {} database.install_server", host.name);
    let server = spec.server.as_ref().ok_or_else(|| DeployError::Render {
        what: what.clone(),
        message: "the db role names no server package (`database.server` in roles/db.yaml)".into(),
    })?;
    // They are passed to the remote script as words.
    for name in std::iter::once(&server.package).chain(&server.services) {
        check_arg(&what, name)?;
    }
    if server.services.is_empty() {
        return Err(DeployError::Render {
            what,
            message: "roles/db.yaml database.server.services is empty".into(),
        });
    }
    let url_host = region.database.host.as_str();
    let local = [
        host.name.as_str(),
        host.address.as_str(),
        "localhost",
        "127.0.0.1",
        "::1",
    ];
    let note = (!local.contains(&url_host)).then(|| {
        format!(
            "database.url connects to {url_host}, not to {} ({}): make sure that name is this host",
            host.name, host.address
        )
    });
    Ok(ServerTask {
        package: server.package.clone(),
        services: server.services.clone(),
        wait_seconds: server.wait_seconds,
        set_by: region
            .origin("database.install_server")
            .map(|o| o.to_string())
            .unwrap_or_else(|| "the inventory".into()),
        note,
    })
}

fn file(
    path: String,
    text: String,
    mode: u32,
    owner: &str,
    group: &str,
    source: &str,
) -> DesiredFile {
    DesiredFile {
        path,
        content: text.into_bytes(),
        mode,
        owner: owner.into(),
        group: group.into(),
        secret: false,
        redact_prefixes: vec![],
        source: source.into(),
    }
}

/// For each line of the marker rendering that carries a secret, the key
/// part before it: up to the first `: ` or ` = ` style separator (so the
/// whole value is hidden, whatever else it holds, in the old file as in the
/// new one), else all the text before the secret.
fn secret_prefixes(masked: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in masked.lines() {
        if let Some(i) = line.find(SECRET_MARKER) {
            let before = &line[..i];
            let key_end = before
                .char_indices()
                .find(|&(j, c)| (c == ':' || c == '=') && before[j + 1..].starts_with([' ', '\t']))
                .map(|(j, _)| j + 1);
            let p = match key_end {
                Some(j) => before[..j].to_string(),
                None => before.to_string(),
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Replace what follows a secret prefix on each line with `<redacted>`.
pub fn redact(text: &str, prefixes: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match prefixes
            .iter()
            .filter(|p| !p.trim().is_empty())
            .find(|p| body.starts_with(p.as_str()))
        {
            Some(p) => {
                out.push_str(p);
                if p.ends_with([':', '=']) {
                    out.push(' ');
                }
                out.push_str(crate::inventory::secrets::REDACTED);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}
