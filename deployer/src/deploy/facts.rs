//! Host facts: the few things read from a host before planning (core count,
//! init system, current and installed releases, tarballs present, service
//! account, the list of what stv3ctl installed last time, and the
//! checksum/owner/mode of every file and directory the host should have, plus
//! whether each service runs). One remote command per host: the script is a
//! constant, every path is passed as an argument, and the files are hashed
//! and stat'ed in one `sha256sum` and one `stat` call.
//!
//! What to probe depends on the host's model, which depends on two facts
//! (core count and init system). [`gather_for`] renders with a guess first,
//! probes that model, and only when the real model names something the first
//! probe did not cover asks again for just those paths ([`missing_probes`]).

use std::collections::BTreeMap;

use crate::inventory::{InitKind, Paths};
use crate::transport::{Transport, TransportError};

use super::render::{managed_list_path, HostModel, SERVICE_USER};

/// The fact-gathering script. `$1` opt dir, `$2` lib dir, `$3` init.d dir,
/// `$4` service user, `$5` the managed list (or `-`: basic facts only), then
/// `f:<file>`, `d:<dir>`, `s:<sysv script>`, `u:<systemd unit>` or
/// `m:<database server package>` probes. The last answers
/// `dbserver <installed> <apt-get> <accepts connections> <package>` (yes/no
/// each): `dpkg -s`, and a `mariadb-admin ping` on the local socket, which
/// succeeds for a running server even when it refuses the login.
const FACTS_SCRIPT: &str = r#"opt=$1; lib=$2; initd=$3; user=$4; managed=$5; shift 5
if [ "$managed" != - ]; then
echo "cores $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
if [ -d /run/systemd/system ]; then echo "init systemd"; else echo "init sysv"; fi
cur=$(readlink "$opt/current" 2>/dev/null || true)
echo "current ${cur##*/}"
for d in "$opt"/releases/*; do
  [ -d "$d" ] || continue
  case "$d" in *.tmp) continue ;; esac
  echo "release ${d##*/} $(cat "$d/.stv3-tarball-sha256" 2>/dev/null || echo -)"
done
for t in "$lib"/tarballs/*.tar.gz; do [ -f "$t" ] && echo "tarball ${t##*/}"; done
if getent passwd "$user" >/dev/null 2>&1 || grep -q "^$user:" /etc/passwd 2>/dev/null; then echo "user yes"; else echo "user no"; fi
if [ -f "$lib/releases.log" ]; then while read -r v; do echo "history $v"; done < "$lib/releases.log"; fi
if [ -f "$managed" ]; then while read -r l; do case $l in '#'*|'') ;; *) echo "managed $l" ;; esac; done < "$managed"; fi
fi
n=$#
for a; do
  p=${a#?:}
  case $a in
    f:*) if [ -f "$p" ]; then set -- "$@" "$p"; else echo "nofile $p"; fi ;;
    d:*) if [ -d "$p" ]; then set -- "$@" "$p"; else echo "nodir - - - $p"; fi ;;
    s:*) if [ -x "$initd/$p" ]; then "$initd/$p" status >/dev/null 2>&1; echo "svc $? $p"; else echo "svc 4 $p"; fi ;;
    u:*) systemctl is-active --quiet "$p" 2>/dev/null; echo "svc $? $p" ;;
    m:*)
      if dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then i=yes; else i=no; fi
      if command -v apt-get >/dev/null 2>&1; then g=yes; else g=no; fi
      if adm=$(command -v mariadb-admin || command -v mysqladmin) && "$adm" --connect-timeout=2 ping >/dev/null 2>&1; then up=yes; else up=no; fi
      echo "dbserver $i $g $up $p" ;;
  esac
done
shift "$n"
# The files and directories that exist: one sha256sum (directories have no
# sum) and one stat for all of them.
if [ $# -gt 0 ]; then
  sha256sum -- "$@" 2>/dev/null | sed 's/^/sha /'
  stat -c 'meta %a %U %G %n' -- "$@"
fi
exit 0
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFact {
    pub sha256: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// The database server package on a db host (`database.install_server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbServerFact {
    pub package: String,
    /// `dpkg -s` says it is installed.
    pub installed: bool,
    /// The host has `apt-get`.
    pub apt: bool,
    /// A server accepts connections on the local socket.
    pub up: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFactsFull {
    pub cores: u32,
    pub init: Option<InitKind>,
    /// Version `current` points to.
    pub current: Option<String>,
    /// Installed releases: version -> sha256 of the tarball it came from.
    pub releases: BTreeMap<String, String>,
    /// Tarball file names in `<lib>/tarballs`.
    pub tarballs: Vec<String>,
    pub user_exists: bool,
    /// Versions in the order they were switched to (oldest first).
    pub history: Vec<String>,
    pub files: BTreeMap<String, Option<FileFact>>,
    pub dirs: BTreeMap<String, Option<(u32, String, String)>>,
    /// Service name (sysv script or unit) -> running.
    pub running: BTreeMap<String, bool>,
    /// The managed list from the last deploy (`file <path>`, `service <init> <name>`).
    pub managed: Vec<String>,
    /// Asked only when the model installs the database server.
    pub db_server: Option<DbServerFact>,
}

impl HostFactsFull {
    /// The release to roll back to: the newest version in the history that is
    /// not current and is still installed.
    pub fn previous(&self) -> Option<String> {
        self.history
            .iter()
            .rev()
            .find(|v| Some(*v) != self.current.as_ref() && self.releases.contains_key(*v))
            .cloned()
    }
}

/// Parse the script's output.
pub fn parse_facts(text: &str) -> HostFactsFull {
    let mut f = HostFactsFull {
        cores: 1,
        ..Default::default()
    };
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut metas: BTreeMap<String, (u32, String, String)> = BTreeMap::new();
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "cores" => f.cores = rest.trim().parse().unwrap_or(1),
            "init" => {
                f.init = Some(if rest.trim() == "systemd" {
                    InitKind::Systemd
                } else {
                    InitKind::Sysv
                })
            }
            "current" => f.current = Some(rest.trim().to_string()).filter(|s| !s.is_empty()),
            "release" => {
                let mut it = rest.split_whitespace();
                if let (Some(v), Some(sha)) = (it.next(), it.next()) {
                    f.releases.insert(v.to_string(), sha.to_string());
                }
            }
            "tarball" => f.tarballs.push(rest.trim().to_string()),
            "user" => f.user_exists = rest.trim() == "yes",
            "history" => {
                let v = rest.trim().to_string();
                if !v.is_empty() {
                    f.history.retain(|x| x != &v);
                    f.history.push(v);
                }
            }
            "nofile" => {
                f.files.insert(rest.to_string(), None);
            }
            "nodir" => {
                if let Some(path) = rest.splitn(4, ' ').nth(3) {
                    f.dirs.insert(path.to_string(), None);
                }
            }
            "svc" => {
                if let Some((code, name)) = rest.split_once(' ') {
                    f.running.insert(name.to_string(), code.trim() == "0");
                }
            }
            "managed" => f.managed.push(rest.trim().to_string()),
            "dbserver" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                if let [installed, apt, up, package] = w[..] {
                    f.db_server = Some(DbServerFact {
                        package: package.to_string(),
                        installed: installed == "yes",
                        apt: apt == "yes",
                        up: up == "yes",
                    });
                }
            }
            "sha" => {
                if let Some((sum, path)) = rest.split_once("  ") {
                    hashes.insert(path.to_string(), sum.to_string());
                }
            }
            "meta" => {
                let parts: Vec<&str> = rest.splitn(4, ' ').collect();
                if parts.len() == 4 {
                    metas.insert(
                        parts[3].to_string(),
                        (
                            u32::from_str_radix(parts[0], 8).unwrap_or(0),
                            parts[1].to_string(),
                            parts[2].to_string(),
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    // A path with a sum is a file; one without is a directory.
    for (path, (mode, owner, group)) in metas {
        match hashes.remove(&path) {
            Some(sha256) => {
                f.files.insert(
                    path,
                    Some(FileFact {
                        sha256,
                        mode,
                        owner,
                        group,
                    }),
                );
            }
            None => {
                f.dirs.insert(path, Some((mode, owner, group)));
            }
        }
    }
    f
}

impl HostFactsFull {
    /// Add the probe results of a second, narrower gather.
    pub fn merge(&mut self, more: HostFactsFull) {
        self.files.extend(more.files);
        self.dirs.extend(more.dirs);
        self.running.extend(more.running);
        if more.db_server.is_some() {
            self.db_server = more.db_server;
        }
    }
}

/// What to ask about: files, directories and services of `model`.
pub fn probes(model: &HostModel) -> Vec<String> {
    let mut args = Vec::new();
    args.extend(model.files.iter().map(|f| format!("f:{}", f.path)));
    args.extend(model.dirs.iter().map(|d| format!("d:{}", d.path)));
    for s in &model.services {
        args.push(match model.init {
            InitKind::Sysv => format!("s:{}", s.sysv_name),
            _ => format!("u:{}", s.unit),
        });
    }
    if let Some(server) = model.db.as_ref().and_then(|d| d.server.as_ref()) {
        args.push(format!("m:{}", server.package));
    }
    args
}

/// The probes of `model` that `facts` has no answer for.
pub fn missing_probes(model: &HostModel, facts: &HostFactsFull) -> Vec<String> {
    probes(model)
        .into_iter()
        .filter(|p| {
            let (kind, path) = p.split_at(2);
            match kind {
                "f:" => !facts.files.contains_key(path),
                "d:" => !facts.dirs.contains_key(path),
                "m:" => facts.db_server.as_ref().is_none_or(|d| d.package != path),
                _ => !facts.running.contains_key(path),
            }
        })
        .collect()
}

/// Run the facts script on a host: the host-wide facts (unless `basic` is
/// false) and the given probes.
pub fn gather(
    t: &mut dyn Transport,
    paths: &Paths,
    basic: bool,
    probes: &[String],
) -> Result<HostFactsFull, TransportError> {
    let managed = if basic {
        managed_list_path(&paths.etc)
    } else {
        "-".to_string()
    };
    let mut argv: Vec<&str> = vec![
        "sh",
        "-c",
        FACTS_SCRIPT,
        "stv3-facts",
        &paths.opt,
        &paths.lib,
        &paths.initd,
        SERVICE_USER,
        &managed,
    ];
    argv.extend(probes.iter().map(String::as_str));
    let out = t.run(&argv)?;
    Ok(parse_facts(&out.stdout_str()))
}

/// Facts for the model `render` gives: one command when `guess` (the model
/// rendered before knowing the host) covers it, a second, narrower one when
/// it does not. Returns the model and its facts.
pub fn gather_for<E>(
    t: &mut dyn Transport,
    paths: &Paths,
    guess: &HostModel,
    render: impl FnOnce(&HostFactsFull) -> Result<HostModel, E>,
) -> Result<(HostModel, HostFactsFull), E>
where
    E: From<TransportError>,
{
    let mut facts = gather(t, paths, true, &probes(guess))?;
    let model = render(&facts)?;
    let mut missing = missing_probes(&model, &facts);
    // Services of the last deploy that are not in the model: is each running?
    for m in super::render::parse_managed(&facts.managed) {
        if let super::render::Managed::Service { init, name } = m {
            if !facts.running.contains_key(&name) {
                missing.push(match init {
                    InitKind::Systemd => format!("u:{name}"),
                    _ => format!("s:{name}"),
                });
            }
        }
    }
    if !missing.is_empty() {
        let more = gather(t, paths, false, &missing)?;
        facts.merge(more);
    }
    Ok((model, facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_facts_output() {
        let f = parse_facts(
            "cores 4\ninit sysv\ncurrent 0.2.0\nrelease 0.1.0 aaa\nrelease 0.2.0 bbb\ntarball bbb.tar.gz\nuser yes\n\
             history 0.1.0\nhistory 0.2.0\nhistory 0.1.0\nhistory 0.2.0\n\
             sha 0123  /etc/stv3/winchester.yaml\nmeta 640 root stv3 /etc/stv3/winchester.yaml\nnofile /etc/stv3/api.conf\n\
             managed file /etc/stv3/yagi-c9.conf\nmanaged service sysv stv3-yagi-c9\n\
             meta 755 root root /opt/stv3\nnodir - - - /var/lib/stv3\nsvc 0 stv3-api\nsvc 3 stv3-yagi-c1\n\
             dbserver yes yes no mariadb-server\n",
        );
        assert_eq!(
            f.db_server,
            Some(DbServerFact {
                package: "mariadb-server".into(),
                installed: true,
                apt: true,
                up: false
            })
        );
        assert_eq!(f.cores, 4);
        assert_eq!(f.init, Some(InitKind::Sysv));
        assert_eq!(f.current.as_deref(), Some("0.2.0"));
        assert_eq!(f.releases.len(), 2);
        assert_eq!(f.previous().as_deref(), Some("0.1.0"));
        assert_eq!(f.history, vec!["0.1.0", "0.2.0"]);
        assert_eq!(
            f.files["/etc/stv3/winchester.yaml"],
            Some(FileFact {
                sha256: "0123".into(),
                mode: 0o640,
                owner: "root".into(),
                group: "stv3".into()
            })
        );
        assert_eq!(f.files["/etc/stv3/api.conf"], None);
        assert_eq!(
            f.dirs["/opt/stv3"],
            Some((0o755, "root".into(), "root".into()))
        );
        assert_eq!(f.dirs["/var/lib/stv3"], None);
        assert!(f.running["stv3-api"]);
        assert!(!f.running["stv3-yagi-c1"]);
        assert_eq!(
            f.managed,
            vec![
                "file /etc/stv3/yagi-c9.conf".to_string(),
                "service sysv stv3-yagi-c9".to_string()
            ]
        );
    }
}
