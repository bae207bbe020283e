//! Host facts: the few things read from a host before planning (core count,
//! init system, current and installed releases, tarballs present, service
//! account, and the checksum/owner/mode of every file and directory the host
//! should have, plus whether each service runs). One remote command per host;
//! the script is a constant and every path is passed as an argument.

use std::collections::BTreeMap;

use crate::inventory::{InitKind, Paths};
use crate::transport::{Transport, TransportError};

use super::render::{HostModel, SERVICE_USER};

/// The fact-gathering script. `$1` opt dir, `$2` lib dir, `$3` init.d dir,
/// `$4` service user, then `f:<file>`, `d:<dir>`, `s:<sysv script>` or
/// `u:<systemd unit>` arguments.
const FACTS_SCRIPT: &str = r#"opt=$1; lib=$2; initd=$3; user=$4; shift 4
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
for a in "$@"; do
  kind=${a%%:*}; p=${a#*:}
  case $kind in
    f) if [ -f "$p" ]; then echo "file $(sha256sum < "$p" | cut -c1-64) $(stat -c '%a %U %G' "$p") $p"; else echo "nofile - - - - $p"; fi ;;
    d) if [ -d "$p" ]; then echo "dir $(stat -c '%a %U %G' "$p") $p"; else echo "nodir - - - $p"; fi ;;
    s) if [ -x "$initd/$p" ]; then "$initd/$p" status >/dev/null 2>&1; echo "svc $? $p"; else echo "svc 4 $p"; fi ;;
    u) systemctl is-active --quiet "$p" 2>/dev/null; echo "svc $? $p" ;;
  esac
done
exit 0
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFact {
    pub sha256: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
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
            "file" | "nofile" => {
                let parts: Vec<&str> = rest.splitn(5, ' ').collect();
                if parts.len() == 5 {
                    let fact = (kind == "file").then(|| FileFact {
                        sha256: parts[0].to_string(),
                        mode: u32::from_str_radix(parts[1], 8).unwrap_or(0),
                        owner: parts[2].to_string(),
                        group: parts[3].to_string(),
                    });
                    f.files.insert(parts[4].to_string(), fact);
                }
            }
            "dir" | "nodir" => {
                let parts: Vec<&str> = rest.splitn(4, ' ').collect();
                if parts.len() == 4 {
                    let fact = (kind == "dir").then(|| {
                        (
                            u32::from_str_radix(parts[0], 8).unwrap_or(0),
                            parts[1].to_string(),
                            parts[2].to_string(),
                        )
                    });
                    f.dirs.insert(parts[3].to_string(), fact);
                }
            }
            "svc" => {
                if let Some((code, name)) = rest.split_once(' ') {
                    f.running.insert(name.to_string(), code.trim() == "0");
                }
            }
            _ => {}
        }
    }
    f
}

/// What to ask about: files, directories and services of `model` (if given).
fn probe_args(model: Option<&HostModel>, init: InitKind) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(m) = model {
        args.extend(m.files.iter().map(|f| format!("f:{}", f.path)));
        args.extend(m.dirs.iter().map(|d| format!("d:{}", d.path)));
        for s in &m.services {
            args.push(match init {
                InitKind::Sysv => format!("s:{}", s.sysv_name),
                _ => format!("u:{}", s.unit),
            });
        }
    }
    args
}

/// Run the facts script on a host.
pub fn gather(
    t: &mut dyn Transport,
    paths: &Paths,
    model: Option<&HostModel>,
) -> Result<HostFactsFull, TransportError> {
    let init = model.map(|m| m.init).unwrap_or(InitKind::Sysv);
    let extra = probe_args(model, init);
    let mut argv: Vec<&str> = vec![
        "sh",
        "-c",
        FACTS_SCRIPT,
        "stv3-facts",
        &paths.opt,
        &paths.lib,
        &paths.initd,
        SERVICE_USER,
    ];
    argv.extend(extra.iter().map(String::as_str));
    let out = t.run(&argv)?;
    Ok(parse_facts(&out.stdout_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_facts_output() {
        let f = parse_facts(
            "cores 4\ninit sysv\ncurrent 0.2.0\nrelease 0.1.0 aaa\nrelease 0.2.0 bbb\ntarball bbb.tar.gz\nuser yes\n\
             history 0.1.0\nhistory 0.2.0\nhistory 0.1.0\nhistory 0.2.0\n\
             file 0123 640 root stv3 /etc/stv3/winchester.yaml\nnofile - - - - /etc/stv3/api.conf\n\
             dir 755 root root /opt/stv3\nnodir - - - /var/lib/stv3\nsvc 0 stv3-api\nsvc 3 stv3-yagi-c1\n",
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
    }
}
