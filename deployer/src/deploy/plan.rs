//! The plan: per host, what a deploy would change. Computed from the
//! rendered [`HostModel`], the host's [`HostFactsFull`] and the package, by
//! pure code; `deploy --check` prints it and stops, `deploy` executes it.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::facts::HostFactsFull;
use super::render::{parse_managed, redact, DesiredFile, HostModel, Managed};
use crate::inventory::InitKind;

/// The package being deployed, as far as planning cares.
#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    pub version: String,
    pub sha256: String,
    /// `bin/<name>` -> sha256 of that file, from the manifest.
    #[serde(skip)]
    pub binaries: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    Create,
    Update,
    /// Same content; only mode or owner differ.
    Metadata,
    /// Installed by an earlier deploy, no longer in the model.
    Remove,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub action: FileAction,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub secret: bool,
    /// Unified diff (secrets redacted); filled in once the old content is read.
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceAction {
    Restart,
    Start,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceChange {
    /// The name used with the init system (unit or SysV script).
    pub name: String,
    pub action: ServiceAction,
    pub reasons: Vec<String>,
}

/// A service an earlier deploy installed that is no longer in the model
/// (a cell or a pipeline worker removed, a role taken away): stopped,
/// disabled, and its script or unit removed.
#[derive(Debug, Clone, Serialize)]
pub struct StaleService {
    pub name: String,
    pub init: InitKind,
    /// Running now (it is started again if the rollout is rolled back).
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirChange {
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub exists: bool,
}

/// `database.install_server` on a db host whose server is missing or down:
/// what the database step does about it before provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerChange {
    pub package: String,
    /// Not installed: `apt-get install` it.
    pub install: bool,
    /// Where `database.install_server` was set.
    pub set_by: String,
    /// A caveat for the plan (the database URL names another host).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub roles: Vec<String>,
    pub init: InitKind,
    pub release_from: Option<String>,
    pub release_to: String,
    pub create_user: bool,
    pub upload_tarball: bool,
    pub unpack: bool,
    /// The installed release of that version came from another tarball.
    pub replace_release: bool,
    pub switch: bool,
    /// Install (when missing), enable and start the database server, then
    /// wait for it; `None` when not asked for or installed and running.
    pub server: Option<ServerChange>,
    /// Create the database and the app user, grant (D8), with the admin credential.
    pub provision: bool,
    /// What provisioning does (or why it does not happen), for the plan.
    pub provision_summary: Option<String>,
    pub migrate: bool,
    pub dirs: Vec<DirChange>,
    pub files: Vec<FileChange>,
    pub services: Vec<ServiceChange>,
    /// Services to stop, disable and remove.
    pub remove_services: Vec<StaleService>,
}

impl HostPlan {
    pub fn is_noop(&self) -> bool {
        !self.create_user
            && !self.upload_tarball
            && !self.unpack
            && !self.switch
            && self.server.is_none()
            && !self.provision
            && !self.migrate
            && self.dirs.is_empty()
            && self.files.is_empty()
            && self.services.is_empty()
            && self.remove_services.is_empty()
    }
    /// Files whose content (not just metadata) changes or that go away.
    pub fn content_changes(&self) -> impl Iterator<Item = &FileChange> {
        self.files
            .iter()
            .filter(|f| f.action != FileAction::Metadata)
    }
    /// Files written (created, updated, or with new mode/owner).
    pub fn writes(&self) -> impl Iterator<Item = &FileChange> {
        self.files.iter().filter(|f| f.action != FileAction::Remove)
    }
}

/// Whether a file from an earlier deploy's managed list may be deleted: an
/// absolute, plain path under the config directory, or one whose name part
/// says it is ours (`/etc/init.d/stv3-…`, `/etc/systemd/system/stv3-…`).
pub fn removable(path: &str, etc: &str) -> bool {
    path.starts_with('/')
        && !path.split('/').any(|c| c == ".." || c == ".")
        && (path.starts_with(&format!("{etc}/"))
            || path
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("stv3")))
}

/// sha256 hex of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Compute the plan for one host.
pub fn plan_host(
    model: &HostModel,
    facts: &HostFactsFull,
    pkg: &PackageInfo,
    current_binaries: Option<&BTreeMap<String, String>>,
) -> HostPlan {
    let tarball_name = format!("{}.tar.gz", pkg.sha256);
    let installed = facts.releases.get(&pkg.version);
    let replace_release = installed.is_some_and(|sha| sha != &pkg.sha256);
    let unpack = installed.is_none() || replace_release;
    let upload_tarball = unpack && !facts.tarballs.contains(&tarball_name);
    let switch = facts.current.as_deref() != Some(pkg.version.as_str()) || replace_release;

    let dirs: Vec<DirChange> = model
        .dirs
        .iter()
        .filter_map(|d| {
            let fact = facts.dirs.get(&d.path).cloned().flatten();
            let ok = fact
                .as_ref()
                .is_some_and(|(m, o, g)| *m == d.mode && o == &d.owner && g == &d.group);
            (!ok).then(|| DirChange {
                path: d.path.clone(),
                mode: d.mode,
                owner: d.owner.clone(),
                group: d.group.clone(),
                exists: fact.is_some(),
            })
        })
        .collect();

    let mut files = Vec::new();
    for f in &model.files {
        let want = sha256_hex(&f.content);
        let action = match facts.files.get(&f.path).cloned().flatten() {
            None => Some(FileAction::Create),
            Some(have) if have.sha256 != want => Some(FileAction::Update),
            Some(have) if have.mode != f.mode || have.owner != f.owner || have.group != f.group => {
                Some(FileAction::Metadata)
            }
            Some(_) => None,
        };
        if let Some(action) = action {
            files.push(FileChange {
                path: f.path.clone(),
                action,
                mode: f.mode,
                owner: f.owner.clone(),
                group: f.group.clone(),
                secret: f.secret,
                diff: None,
            });
        }
    }

    // What an earlier deploy installed and the model no longer has.
    let mut remove_services = Vec::new();
    for m in parse_managed(&facts.managed) {
        match m {
            Managed::File(path) => {
                if model.file(&path).is_none() && removable(&path, &model.etc) {
                    files.push(FileChange {
                        path,
                        action: FileAction::Remove,
                        mode: 0,
                        owner: String::new(),
                        group: String::new(),
                        secret: false,
                        diff: None,
                    });
                }
            }
            Managed::Service { init, name } => {
                let kept =
                    init == model.init && model.services.iter().any(|s| s.name(model.init) == name);
                if !kept {
                    remove_services.push(StaleService {
                        running: facts.running.get(&name).copied().unwrap_or(true),
                        name,
                        init,
                    });
                }
            }
        }
    }

    let mut services = Vec::new();
    for s in &model.services {
        let name = s.name(model.init).to_string();
        let mut reasons = Vec::new();
        if switch {
            let bin = format!("bin/{}", s.binary);
            let changed = match current_binaries {
                Some(cur) => {
                    cur.get(&bin) != pkg.binaries.get(&bin) || !pkg.binaries.contains_key(&bin)
                }
                None => true,
            };
            if changed {
                reasons.push(format!(
                    "{} changed ({} -> {})",
                    s.binary,
                    facts.current.as_deref().unwrap_or("none"),
                    pkg.version
                ));
            }
        }
        for input in &s.inputs {
            if files.iter().any(|f: &FileChange| {
                &f.path == input && matches!(f.action, FileAction::Create | FileAction::Update)
            }) {
                reasons.push(format!("{input} changed"));
            }
        }
        let running = facts.running.get(&name).copied().unwrap_or(false);
        if !running {
            services.push(ServiceChange {
                name,
                action: ServiceAction::Start,
                reasons: vec!["not running".into()],
            });
        } else if !reasons.is_empty() {
            services.push(ServiceChange {
                name,
                action: ServiceAction::Restart,
                reasons,
            });
        }
    }

    let provision = model.db.as_ref().is_some_and(|db| {
        db.stamp.as_ref().is_some_and(|stamp| {
            files.iter().any(|f| {
                &f.path == stamp && matches!(f.action, FileAction::Create | FileAction::Update)
            })
        })
    });
    // Unknown facts (no answer to the probe) count as missing and down: the
    // step itself checks again and changes nothing that is in place.
    let server = model
        .db
        .as_ref()
        .and_then(|db| db.server.as_ref())
        .and_then(|want| {
            let fact = facts
                .db_server
                .as_ref()
                .filter(|f| f.package == want.package);
            let (installed, up) = fact.map_or((false, false), |f| (f.installed, f.up));
            (!(installed && up)).then(|| ServerChange {
                package: want.package.clone(),
                install: !installed,
                set_by: want.set_by.clone(),
                note: want.note.clone(),
            })
        });
    HostPlan {
        host: model.host.clone(),
        roles: model.roles.iter().map(|r| r.as_str().to_string()).collect(),
        init: model.init,
        release_from: facts.current.clone(),
        release_to: pkg.version.clone(),
        create_user: !facts.user_exists,
        upload_tarball,
        unpack,
        replace_release,
        switch,
        server,
        provision,
        provision_summary: model
            .db
            .as_ref()
            .filter(|db| !db.summary.is_empty())
            .map(|db| db.summary.clone()),
        migrate: model.db.is_some() && (switch || provision),
        dirs,
        files,
        services,
        remove_services,
    }
}

/// Why this host must not be deployed to at all, if it must not: its
/// running version came from another tarball, or the inventory asks to
/// install the database server (apt) on a host without apt-get.
pub fn refusal(model: &HostModel, facts: &HostFactsFull, plan: &HostPlan) -> Option<String> {
    if plan.replace_release && facts.current.as_deref() == Some(plan.release_to.as_str()) {
        return Some(format!(
            "{}: version {} is running there from a different tarball; bump the version",
            plan.host, plan.release_to
        ));
    }
    let want = model.db.as_ref().and_then(|db| db.server.as_ref())?;
    let fact = facts.db_server.as_ref()?;
    (!fact.apt).then(|| {
        format!(
            "{}: database.install_server is true ({}) but {} has no apt-get: stv3ctl installs {} only on Debian/Ubuntu; install and start the database server yourself and set database.install_server: false",
            plan.host, want.set_by, plan.host, want.package
        )
    })
}

/// A unified diff of `old` -> `new` for `file`, secrets redacted. A secret
/// that changed while everything else stayed the same is reported without
/// showing either value.
pub fn file_diff(file: &DesiredFile, old: Option<&[u8]>) -> String {
    let new_text = String::from_utf8_lossy(&file.content).into_owned();
    let old_text = old
        .map(|o| String::from_utf8_lossy(o).into_owned())
        .unwrap_or_default();
    let (o, n) = if file.redact_prefixes.is_empty() {
        (old_text.clone(), new_text.clone())
    } else {
        (
            redact(&old_text, &file.redact_prefixes),
            redact(&new_text, &file.redact_prefixes),
        )
    };
    let old_label = if old.is_some() {
        format!("a{}", file.path)
    } else {
        "/dev/null".to_string()
    };
    let mut out = similar::TextDiff::from_lines(&o, &n)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &format!("b{}", file.path))
        .to_string();
    if o == n && old_text != new_text {
        out.push_str(&format!(
            "--- a{0}\n+++ b{0}\n(a secret value changed; redacted)\n",
            file.path
        ));
    }
    out
}

/// Human-readable plan of one host.
pub fn render_plan(p: &HostPlan, show_diffs: bool) -> String {
    let mut out = format!("== {} [{}] ({:?})\n", p.host, p.roles.join(","), p.init);
    if p.is_noop() {
        out.push_str("   no changes\n");
        return out;
    }
    if p.switch {
        out.push_str(&format!(
            "   release: {} -> {}{}{}\n",
            p.release_from.as_deref().unwrap_or("(none)"),
            p.release_to,
            if p.upload_tarball {
                ", upload tarball"
            } else {
                ""
            },
            if p.unpack { ", unpack" } else { "" }
        ));
    }
    if p.create_user {
        out.push_str("   create user and group stv3\n");
    }
    for d in &p.dirs {
        out.push_str(&format!(
            "   dir  {} {} {:o} {}:{}\n",
            if d.exists { "fix " } else { "make" },
            d.path,
            d.mode,
            d.owner,
            d.group
        ));
    }
    if let Some(s) = &p.server {
        out.push_str(&format!(
            "   database server: {}enable and start it, wait until it accepts connections (database.install_server, {})\n",
            if s.install {
                format!("install {} (apt-get), ", s.package)
            } else {
                format!("{} is installed but not accepting connections: ", s.package)
            },
            s.set_by
        ));
        if let Some(n) = &s.note {
            out.push_str(&format!("      note: {n}\n"));
        }
    }
    if p.provision {
        out.push_str(&format!(
            "   provision {}\n",
            p.provision_summary.as_deref().unwrap_or("the database")
        ));
    } else if let Some(s) = p
        .provision_summary
        .as_deref()
        .filter(|s| s.starts_with("not "))
    {
        out.push_str(&format!("   database {s}\n"));
    }
    if p.migrate {
        out.push_str(
            "   run database migrations (once, under the region lock, before any restart)\n",
        );
    }
    for s in &p.remove_services {
        out.push_str(&format!(
            "   Remove {}: no longer in the inventory (stop, disable, delete its {})\n",
            s.name,
            match s.init {
                InitKind::Systemd => "unit instance",
                _ => "init script",
            }
        ));
    }
    for f in &p.files {
        if f.action == FileAction::Remove {
            out.push_str(&format!("   file Remove {}\n", f.path));
            continue;
        }
        out.push_str(&format!(
            "   file {:?} {} ({:o} {}:{}{})\n",
            f.action,
            f.path,
            f.mode,
            f.owner,
            f.group,
            if f.secret { ", secret" } else { "" }
        ));
        if show_diffs {
            if let Some(d) = &f.diff {
                for line in d.lines() {
                    out.push_str(&format!("      {line}\n"));
                }
            }
        }
    }
    for s in &p.services {
        out.push_str(&format!(
            "   {:?} {}: {}\n",
            s.action,
            s.name,
            s.reasons.join("; ")
        ));
    }
    out
}
