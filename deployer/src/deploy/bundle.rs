//! In-memory tar streams sent to a host on a command's stdin: all the files
//! of one rollout (or of the database step) travel in one round trip and are
//! unpacked by the host's `tar` with their mode and owner already set.

/// One file of a bundle.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Path inside the archive (relative; the host extracts at `/` or into a directory).
    pub path: String,
    pub data: &'a [u8],
    pub mode: u32,
    /// Owner and group names; the host's `tar` maps them to its own ids
    /// (numeric 0 when a name is unknown there).
    pub owner: &'a str,
    pub group: &'a str,
}

/// An uncompressed tar of `entries` (GNU format, long names supported).
pub fn tar(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username(e.owner)?;
        h.set_groupname(e.group)?;
        h.set_mtime(mtime);
        b.append_data(&mut h, &e.path, e.data)?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_path_mode_owner_and_bytes() {
        let long = format!("etc/{}/x.conf.stv3new", "d".repeat(120));
        let bytes = tar(&[
            Entry {
                path: "etc/stv3/a.conf.stv3new".into(),
                data: b"a = 1\n",
                mode: 0o640,
                owner: "root",
                group: "stv3",
            },
            Entry {
                path: long.clone(),
                data: b"",
                mode: 0o755,
                owner: "root",
                group: "root",
            },
        ])
        .unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            let h = e.header();
            seen.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.groupname().unwrap().unwrap().to_string(),
                data,
            ));
        }
        assert_eq!(
            seen,
            vec![
                (
                    "etc/stv3/a.conf.stv3new".to_string(),
                    0o640,
                    "stv3".to_string(),
                    b"a = 1\n".to_vec()
                ),
                (long, 0o755, "root".to_string(), vec![]),
            ]
        );
    }
}
