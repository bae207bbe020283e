//! `stv3ctl package`: reproducibility, manifest correctness, verify and
//! inspect, all on a fake repository and fake binaries (`--from-dir`), plus
//! one real `cargo build` of a tiny throwaway workspace.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use stv3_deployer::package::archive::{sidecar_line, TarGzWriter};
use stv3_deployer::package::layout::CORE_BINARIES;
use stv3_deployer::package::manifest::{BuiltFrom, GitInfo, Manifest, Mode, RustcInfo};
use stv3_deployer::package::probe::{self, Workspace};
use stv3_deployer::package::{
    self as pkg, inspect, verify_tarball, BuildInfo, PackageOptions, PackageOutput, Problem,
    VerifyError,
};

const SDE: u64 = 1_764_000_000;

/// A repository with every folder the package copies, plus files that must be skipped.
fn fake_repo(root: &Path) {
    let files: &[(&str, &str)] = &[
        (
            "templates/yagi.conf.j2",
            "[global]\nverbose = {{ verbose }}\n",
        ),
        (
            "templates/systemd/yagi-event@.service.j2",
            "[Service]\nExecStart=/opt/stv3/bin/yagi-event\n",
        ),
        ("templates/.hidden", "not packaged\n"),
        ("templates/backup.j2~", "not packaged\n"),
        (
            "roles/worker.yaml",
            "binaries: [yagi-event, pipeline-worker]\n",
        ),
        ("roles/api.yaml", "binaries: [stv3-api]\n"),
        (
            "core/winchester/migrations/mysql/20260101000001_initial.sql",
            "CREATE TABLE event (id BIGINT);\n",
        ),
        (
            "core/winchester/migrations/sqlite/20260101000001_initial.sql",
            "CREATE TABLE event (id INTEGER);\n",
        ),
        ("core/ingest/etc/yagi.conf", "[consumer:monitor.info]\n"),
        (
            "core/distiller/etc/event_definitions.yaml",
            "- event_type: compute.*\n",
        ),
        ("core/distiller/src/lib.rs", "// not packaged\n"),
        ("examples/README.md", "# examples\n"),
    ];
    for (path, text) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
    }
}

/// Fake binaries: every core binary (deterministic content of varying size)
/// plus one file that is not a core binary.
fn fake_bins(dir: &Path, skip: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    for (i, name) in CORE_BINARIES.iter().enumerate() {
        if skip.contains(name) {
            continue;
        }
        let body: Vec<u8> = format!("\x7fELF fake {name}\n")
            .bytes()
            .cycle()
            .take(1000 + 997 * i)
            .collect();
        let p = dir.join(name);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
    }
    fs::write(dir.join("build-helper"), "not a core binary").unwrap();
}

fn info() -> BuildInfo {
    BuildInfo {
        version: "0.1.0".into(),
        git: GitInfo {
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            dirty: false,
        },
        rustc: RustcInfo {
            version: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            release: "1.95.0".into(),
            commit_hash: "59807616e1fa2540724bfbac14d7976d7e4a3860".into(),
            host: "x86_64-unknown-linux-gnu".into(),
            llvm_version: "22.1.2".into(),
        },
        profile: "release".into(),
        source_date_epoch: SDE,
    }
}

fn workspace(root: &Path) -> Workspace {
    Workspace {
        root: root.into(),
        target_dir: root.join("target"),
        version: "0.1.0".into(),
        bins: vec![],
    }
}

fn options(out: &Path, bins: &Path) -> PackageOptions {
    PackageOptions {
        targets: vec![],
        out_dir: out.into(),
        profile: "release".into(),
        from_dir: Some(bins.into()),
        require_all: false,
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bins: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let bins = tmp.path().join("bins");
    fake_repo(&root);
    fake_bins(&bins, &[]);
    Fixture {
        root,
        bins,
        _tmp: tmp,
    }
}

fn package_into(f: &Fixture, out: &Path, info: &BuildInfo) -> PackageOutput {
    let (_, mut outputs) =
        pkg::package(&options(out, &f.bins), &workspace(&f.root), info, false).unwrap();
    assert_eq!(outputs.len(), 1);
    outputs.remove(0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn packaging_twice_gives_identical_bytes() {
    let f = fixture();
    let a = package_into(&f, &f.root.join("dist-a"), &info());
    // Touch every input (mtime, mode) between the runs: none of it may leak.
    for name in CORE_BINARIES {
        let p = f.bins.join(name);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o775)).unwrap();
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, bytes).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(f.root.join("roles/api.yaml"), "binaries: [stv3-api]\n").unwrap();
    let b = package_into(&f, &f.root.join("dist-b"), &info());
    assert_eq!(a.sha256, b.sha256);
    assert_eq!(fs::read(&a.tarball).unwrap(), fs::read(&b.tarball).unwrap());
    assert_eq!(
        a.tarball.file_name().unwrap(),
        "stv3-0.1.0-x86_64-unknown-linux-gnu.tar.gz"
    );
    assert_eq!(
        fs::read_to_string(&a.sidecar).unwrap(),
        format!("{}  stv3-0.1.0-x86_64-unknown-linux-gnu.tar.gz\n", a.sha256)
    );
    assert_eq!(a.sha256, sha256_hex(&fs::read(&a.tarball).unwrap()));

    // The identity inputs do change the bytes.
    let mut later = info();
    later.source_date_epoch += 1;
    let c = package_into(&f, &f.root.join("dist-c"), &later);
    assert_ne!(a.sha256, c.sha256);
}

/// Every entry of a tarball: path -> (type, mode, uid, gid, mtime, user, group, data).
type Entries = BTreeMap<String, (char, u32, u64, u64, u64, String, String, Vec<u8>)>;

fn read_entries(path: &Path) -> (Vec<String>, Entries) {
    let file = fs::File::open(path).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut order = Vec::new();
    let mut map = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let kind = if h.entry_type().is_dir() { 'd' } else { 'f' };
        let name = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).to_string();
        order.push(p.clone());
        map.insert(
            p,
            (
                kind,
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                name(h.username_bytes()),
                name(h.groupname_bytes()),
                data,
            ),
        );
    }
    (order, map)
}

#[test]
fn manifest_describes_exactly_the_files() {
    let f = fixture();
    let out = package_into(&f, &f.root.join("dist"), &info());
    let m = &out.manifest;
    let mut want_bins: Vec<String> = CORE_BINARIES.iter().map(|s| s.to_string()).collect();
    want_bins.sort();
    assert_eq!(m.binaries, want_bins);
    assert_eq!(
        (m.name.as_str(), m.version.as_str(), m.target.as_str()),
        ("stv3", "0.1.0", "x86_64-unknown-linux-gnu")
    );
    assert_eq!(m.built_from, BuiltFrom::FromDir);
    assert_eq!(m.source_date_epoch, SDE);

    // Source of every manifest path, computed independently of the packager.
    let mut expected: BTreeMap<String, (PathBuf, Mode)> = BTreeMap::new();
    for b in CORE_BINARIES {
        expected.insert(format!("bin/{b}"), (f.bins.join(b), Mode(0o755)));
    }
    for (rel, src) in [
        ("share/templates/yagi.conf.j2", "templates/yagi.conf.j2"),
        (
            "share/templates/systemd/yagi-event@.service.j2",
            "templates/systemd/yagi-event@.service.j2",
        ),
        ("share/roles/worker.yaml", "roles/worker.yaml"),
        ("share/roles/api.yaml", "roles/api.yaml"),
        (
            "share/migrations/mysql/20260101000001_initial.sql",
            "core/winchester/migrations/mysql/20260101000001_initial.sql",
        ),
        (
            "share/migrations/sqlite/20260101000001_initial.sql",
            "core/winchester/migrations/sqlite/20260101000001_initial.sql",
        ),
        (
            "share/examples/ingest/yagi.conf",
            "core/ingest/etc/yagi.conf",
        ),
        (
            "share/examples/distiller/event_definitions.yaml",
            "core/distiller/etc/event_definitions.yaml",
        ),
        ("share/examples/README.md", "examples/README.md"),
    ] {
        expected.insert(rel.into(), (f.root.join(src), Mode(0o644)));
    }
    let got: Vec<&str> = m.files.iter().map(|e| e.path.as_str()).collect();
    let want: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(
        got, want,
        "manifest paths (sorted, nothing skipped or extra)"
    );
    for e in &m.files {
        let (src, mode) = &expected[&e.path];
        let bytes = fs::read(src).unwrap();
        assert_eq!(e.size, bytes.len() as u64, "{}", e.path);
        assert_eq!(e.sha256, sha256_hex(&bytes), "{}", e.path);
        assert_eq!(e.mode, *mode, "{}", e.path);
    }

    // The tarball: sorted entries, one top dir, normalised headers, and the
    // embedded MANIFEST.json is the one returned.
    let (order, entries) = read_entries(&out.tarball);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "entries are in sorted order");
    assert!(
        order.iter().all(|p| p.starts_with("stv3-0.1.0/")),
        "{order:?}"
    );
    for dir in [
        "stv3-0.1.0/",
        "stv3-0.1.0/bin/",
        "stv3-0.1.0/share/examples/ingest/",
        "stv3-0.1.0/share/templates/systemd/",
    ] {
        assert_eq!(entries[dir].0, 'd', "{dir}");
    }
    for (path, (kind, mode, uid, gid, mtime, user, group, data)) in &entries {
        assert_eq!(
            (*uid, *gid, *mtime, user.as_str(), group.as_str()),
            (0, 0, SDE, "", ""),
            "{path}"
        );
        let want_mode = if *kind == 'd' || path.contains("/bin/") {
            0o755
        } else {
            0o644
        };
        assert_eq!(*mode, want_mode, "{path}");
        if let Some(rel) = path
            .strip_prefix("stv3-0.1.0/")
            .filter(|r| *kind == 'f' && *r != "MANIFEST.json")
        {
            assert_eq!(sha256_hex(data), m.file(rel).unwrap().sha256, "{path}");
        }
    }
    let embedded: Manifest =
        serde_json::from_slice(&entries["stv3-0.1.0/MANIFEST.json"].7).unwrap();
    assert_eq!(&embedded, m);
    assert!(!entries.keys().any(|p| p.contains(".hidden")
        || p.ends_with('~')
        || p.contains("build-helper")
        || p.contains("src/lib.rs")));
}

#[test]
fn verify_accepts_a_fresh_package() {
    let f = fixture();
    let out = package_into(&f, &f.root.join("dist"), &info());
    let v = verify_tarball(&out.tarball).unwrap();
    assert_eq!(v.sha256, out.sha256);
    assert_eq!(v.manifest, out.manifest);
    assert_eq!(v.size, fs::metadata(&out.tarball).unwrap().len());
}

/// Rewrite the package at `path` (deterministically, sorted) after `edit`
/// changed its entries, and give it a matching sidecar: only the manifest
/// check can then catch the change.
fn tamper(path: &Path, edit: impl FnOnce(&mut Entries)) {
    let (_, mut entries) = read_entries(path);
    edit(&mut entries);
    let mut w = TarGzWriter::new(Vec::new(), SDE);
    for (p, (kind, mode, .., data)) in &entries {
        if *kind == 'd' {
            w.dir(p.trim_end_matches('/')).unwrap();
        } else {
            w.file(p, Mode(*mode), data.len() as u64, &data[..])
                .unwrap();
        }
    }
    let bytes = w.finish().unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    fs::write(path, &bytes).unwrap();
    fs::write(
        format!("{}.sha256", path.display()),
        sidecar_line(&sha256_hex(&bytes), &name),
    )
    .unwrap();
}

fn problems(path: &Path) -> Vec<Problem> {
    match verify_tarball(path) {
        Err(VerifyError::Failed { problems, .. }) => problems,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn verify_reports_each_kind_of_damage() {
    let f = fixture();
    let good = package_into(&f, &f.root.join("dist"), &info());
    let manifest = good.manifest.clone();
    let sha_of = |p: &str| manifest.file(p).unwrap().sha256.clone();
    let size_of = |p: &str| manifest.file(p).unwrap().size;
    let dir = f.root.join("cases");

    type Case<'a> = (
        &'static str,
        Box<dyn Fn(&Path) + 'a>,
        Box<dyn Fn(&[Problem], &Path) + 'a>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "flipped byte inside a binary",
            Box::new(|p| {
                tamper(p, |e| {
                    let data = &mut e.get_mut("stv3-0.1.0/bin/notigen").unwrap().7;
                    data[100] ^= 0x01;
                })
            }),
            Box::new(move |probs, _| {
                let [Problem::Sha256Mismatch {
                    file,
                    expected,
                    actual,
                }] = probs
                else {
                    panic!("{probs:?}")
                };
                assert_eq!(file, "bin/notigen");
                assert_eq!(*expected, sha_of("bin/notigen"));
                assert_ne!(actual, expected);
            }),
        ),
        (
            "flipped byte in the compressed tarball",
            Box::new(|p| {
                let mut bytes = fs::read(p).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
                fs::write(p, bytes).unwrap();
            }),
            Box::new(|probs, _| {
                assert!(
                    matches!(&probs[0], Problem::ChecksumMismatch { expected, .. } if *expected == good.sha256),
                    "{probs:?}"
                );
            }),
        ),
        (
            "missing file",
            Box::new(|p| {
                tamper(p, |e| {
                    e.remove("stv3-0.1.0/share/roles/worker.yaml");
                })
            }),
            Box::new(|probs, _| {
                assert_eq!(
                    probs,
                    [Problem::MissingFromTarball {
                        file: "share/roles/worker.yaml".into()
                    }]
                );
            }),
        ),
        (
            "extra file",
            Box::new(|p| {
                tamper(p, |e| {
                    let mut extra = e["stv3-0.1.0/bin/notigen"].clone();
                    extra.7 = b"#!/bin/sh\nrm -rf /\n".to_vec();
                    e.insert("stv3-0.1.0/bin/evil".into(), extra);
                })
            }),
            Box::new(|probs, _| {
                assert_eq!(
                    probs,
                    [Problem::NotInManifest {
                        file: "bin/evil".into(),
                        size: 19
                    }]
                );
            }),
        ),
        (
            "truncated file and wrong mode",
            Box::new(|p| {
                tamper(p, |e| {
                    let entry = e.get_mut("stv3-0.1.0/bin/klugman").unwrap();
                    entry.7.truncate(10);
                    let roles = e.get_mut("stv3-0.1.0/share/roles/api.yaml").unwrap();
                    roles.1 = 0o666;
                })
            }),
            Box::new(|probs, _| {
                assert_eq!(probs.len(), 3, "{probs:?}");
                assert_eq!(
                    probs[0],
                    Problem::SizeMismatch {
                        file: "bin/klugman".into(),
                        expected: size_of("bin/klugman"),
                        actual: 10
                    }
                );
                assert!(
                    matches!(&probs[1], Problem::Sha256Mismatch { file, .. } if file == "bin/klugman")
                );
                assert_eq!(
                    probs[2],
                    Problem::ModeMismatch {
                        file: "share/roles/api.yaml".into(),
                        expected: Mode(0o644),
                        actual: Mode(0o666)
                    }
                );
            }),
        ),
        (
            "missing sidecar",
            Box::new(|p| fs::remove_file(format!("{}.sha256", p.display())).unwrap()),
            Box::new(|probs, p| {
                assert_eq!(
                    probs,
                    [Problem::SidecarMissing {
                        sidecar: PathBuf::from(format!("{}.sha256", p.display()))
                    }]
                );
            }),
        ),
        (
            "missing manifest",
            Box::new(|p| {
                tamper(p, |e| {
                    e.remove("stv3-0.1.0/MANIFEST.json");
                })
            }),
            Box::new(|probs, _| assert_eq!(probs, [Problem::ManifestMissing])),
        ),
    ];
    for (i, (name, damage, check)) in cases.iter().enumerate() {
        let case_dir = dir.join(i.to_string());
        fs::create_dir_all(&case_dir).unwrap();
        let p = case_dir.join(good.tarball.file_name().unwrap());
        fs::copy(&good.tarball, &p).unwrap();
        fs::copy(&good.sidecar, format!("{}.sha256", p.display())).unwrap();
        assert!(
            verify_tarball(&p).is_ok(),
            "{name}: the copy verifies before the damage"
        );
        damage(&p);
        let probs = problems(&p);
        check(&probs, &p);
        let text = verify_tarball(&p).unwrap_err().to_string();
        assert!(text.contains("verification failed"), "{name}: {text}");
    }

    // A renamed tarball: the name is part of its identity.
    let renamed = dir.join("stv3-0.2.0-x86_64-unknown-linux-gnu.tar.gz");
    fs::copy(&good.tarball, &renamed).unwrap();
    fs::copy(&good.sidecar, format!("{}.sha256", renamed.display())).unwrap();
    let probs = problems(&renamed);
    assert!(
        matches!(&probs[0], Problem::SidecarNamesOtherFile { named, .. } if named == "stv3-0.1.0-x86_64-unknown-linux-gnu.tar.gz"),
        "{probs:?}"
    );
    assert!(
        matches!(&probs[1], Problem::FileNameMismatch { actual, .. } if actual == "stv3-0.2.0-x86_64-unknown-linux-gnu.tar.gz"),
        "{probs:?}"
    );
}

#[test]
fn inspect_renders_the_manifest() {
    let f = fixture();
    let out = package_into(&f, &f.root.join("dist"), &info());
    let m = inspect::read_manifest(&out.tarball).unwrap();
    assert_eq!(m, out.manifest);
    insta::assert_snapshot!("inspect_table", inspect::render_table(&m));
    insta::assert_snapshot!("inspect_json", m.to_json());
    let err = inspect::read_manifest(&f.root.join("roles/api.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("roles/api.yaml"), "{err}");
}

#[test]
fn plan_rejects_bad_requests() {
    let f = fixture();
    let partial = f.root.join("partial-bins");
    fake_bins(&partial, &["klugman", "archive-read"]);
    let empty = f.root.join("empty-bins");
    fs::create_dir_all(&empty).unwrap();
    fs::write(empty.join("unrelated"), "x").unwrap();

    let ws = workspace(&f.root);
    let base = options(&f.root.join("dist"), &f.bins);
    let check = |opts: PackageOptions, ws: &Workspace, want: Result<&[&str], &str>| match (
        pkg::plan(&opts, ws, &info()),
        want,
    ) {
        (Ok(plan), Ok(missing)) => assert_eq!(plan.selection.missing, missing, "{opts:?}"),
        (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{opts:?}: {e}"),
        (got, want) => panic!("{opts:?}: got {got:?}, want {want:?}"),
    };
    check(base.clone(), &ws, Ok(&[]));
    check(
        PackageOptions {
            from_dir: Some(partial.clone()),
            ..base.clone()
        },
        &ws,
        Ok(&["archive-read", "klugman"]),
    );
    check(
        PackageOptions {
            from_dir: Some(partial),
            require_all: true,
            ..base.clone()
        },
        &ws,
        Err("core binaries missing from"),
    );
    check(
        PackageOptions {
            from_dir: Some(empty),
            ..base.clone()
        },
        &ws,
        Err("no core binary found in"),
    );
    check(
        PackageOptions {
            targets: vec!["a".into(), "b".into()],
            ..base.clone()
        },
        &ws,
        Err("--from-dir packages one target, got 2"),
    );
    check(
        base.clone(),
        &workspace(&f.root.join("nope")),
        Err("required folder"),
    );
    // Cargo mode with a workspace that has no core binary at all.
    check(
        PackageOptions {
            from_dir: None,
            ..base.clone()
        },
        &ws,
        Err("no core binary found in the workspace"),
    );
}

#[test]
fn plan_renders_what_will_happen() {
    let f = fixture();
    let partial = f.root.join("partial-bins");
    fake_bins(&partial, &["klugman"]);
    let opts = options(&f.root.join("dist"), &partial);
    let plan = pkg::plan(&opts, &workspace(&f.root), &info()).unwrap();
    let text = plan
        .render()
        .replace(&f.root.display().to_string(), "[REPO]");
    insta::assert_snapshot!("plan_from_dir", text);
    // Cargo mode: the exact command line per target.
    let mut ws = workspace(&f.root);
    ws.bins = vec!["notigen".into(), "stv3ctl".into(), "load-tool".into()];
    let opts = PackageOptions {
        from_dir: None,
        ..opts
    };
    let plan = pkg::plan(&opts, &ws, &info()).unwrap();
    let text = plan
        .render()
        .replace(&f.root.display().to_string(), "[REPO]");
    insta::assert_snapshot!("plan_cargo", text);
}

#[test]
fn missing_bin_dir_entry_is_a_clear_error() {
    let f = fixture();
    let opts = options(&f.root.join("dist"), &f.bins);
    let plan = pkg::plan(&opts, &workspace(&f.root), &info()).unwrap();
    fs::remove_file(f.bins.join("notigen")).unwrap();
    let err = pkg::apply(&plan, false).unwrap_err().to_string();
    assert!(
        err.contains("bin/notigen") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!f
        .root
        .join("dist/stv3-0.1.0-x86_64-unknown-linux-gnu.tar.gz")
        .exists());
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

#[test]
fn detects_git_identity_and_commit_time() {
    let f = fixture();
    git(&f.root, &["init", "-q"]);
    git(&f.root, &["add", "."]);
    git(&f.root, &["commit", "-q", "-m", "fixture"]);
    let ws = workspace(&f.root);
    let detected = BuildInfo::detect(&ws, "release").unwrap();
    assert_eq!(detected.git.sha.len(), 40, "{:?}", detected.git);
    assert!(!detected.git.dirty);
    assert_eq!(probe::commit_time(&f.root), Some(1_700_000_000));
    let env = std::env::var("SOURCE_DATE_EPOCH").ok();
    assert_eq!(
        detected.source_date_epoch,
        probe::source_date_epoch(env.as_deref(), Some(1_700_000_000)).unwrap()
    );
    assert!(
        detected.rustc.version.starts_with("rustc "),
        "{:?}",
        detected.rustc
    );
    assert_eq!(detected.stamp(), detected.git.sha[..12]);

    let a = package_into(&f, &f.root.join("out-a"), &detected);
    let b = package_into(
        &f,
        &f.root.join("out-b"),
        &BuildInfo::detect(&ws, "release").unwrap(),
    );
    assert_eq!(a.sha256, b.sha256);

    fs::write(f.root.join("roles/api.yaml"), "changed\n").unwrap();
    let dirty = BuildInfo::detect(&ws, "release").unwrap();
    assert!(dirty.git.dirty);
    assert!(dirty.stamp().ends_with("-dirty"));
}

/// A main that prints `<name> <version> (<sha>)`; the package build passes
/// the git stamp to cargo as `STV3_GIT_SHA`.
const STAMPED_MAIN: &str = "fn main() { println!(\"{} {} ({})\", env!(\"CARGO_BIN_NAME\"), \
     env!(\"CARGO_PKG_VERSION\"), env!(\"STV3_GIT_SHA\")); }\n";

/// The real build path on a throwaway two-crate workspace (a few seconds).
#[test]
fn builds_with_cargo_and_packages_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    fake_repo(&root);
    // Like the real repository: the root is both the stv3ctl package and the
    // workspace, and the other binaries live in member crates.
    let files: &[(&str, &str)] = &[
        (
            "Cargo.toml",
            "[package]\nname = \"stv3ctl\"\nversion = \"9.8.7\"\nedition = \"2021\"\n\n\
             [workspace]\nmembers = [\".\", \"core/notigen\"]\n",
        ),
        ("src/main.rs", STAMPED_MAIN),
        (
            "core/notigen/Cargo.toml",
            "[package]\nname = \"stv3-notigen\"\nversion = \"9.8.7\"\nedition = \"2021\"\n\n\
             [[bin]]\nname = \"notigen\"\npath = \"src/main.rs\"\n\n\
             [[bin]]\nname = \"helper-tool\"\npath = \"src/helper.rs\"\n",
        ),
        ("core/notigen/src/main.rs", STAMPED_MAIN),
        ("core/notigen/src/helper.rs", "fn main() {}\n"),
    ];
    for (path, text) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    let ws = Workspace::load(&root).unwrap();
    assert_eq!(ws.version, "9.8.7");
    assert_eq!(ws.bins, ["helper-tool", "notigen", "stv3ctl"]);
    let mut info = info();
    info.version = ws.version.clone();
    info.profile = "dev".into();
    let opts = PackageOptions {
        targets: vec![],
        out_dir: root.join("dist"),
        profile: "dev".into(),
        from_dir: None,
        require_all: false,
    };
    let started = std::time::Instant::now();
    let (plan, outputs) = pkg::package(&opts, &ws, &info, false).unwrap();
    assert!(
        started.elapsed().as_secs() < 30,
        "the real build path took {:?}",
        started.elapsed()
    );
    assert_eq!(plan.selection.include, ["notigen", "stv3ctl"]);
    assert!(outputs[0].warnings.is_empty(), "{:?}", outputs[0].warnings);
    assert_eq!(plan.selection.ignored, ["helper-tool"]);
    let args = plan.targets[0].cargo_args.as_ref().unwrap().join(" ");
    assert!(
        args.ends_with("--workspace --profile dev --bin notigen --bin stv3ctl"),
        "{args}"
    );
    let v = verify_tarball(&outputs[0].tarball).unwrap();
    assert_eq!(v.manifest.built_from, BuiltFrom::Cargo);
    assert_eq!(v.manifest.binaries, ["notigen", "stv3ctl"]);
    // Only the artifacts are left in the output folder (the staging copy is gone).
    let mut left: Vec<String> = fs::read_dir(root.join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    left.sort();
    let name = format!("stv3-9.8.7-{}.tar.gz", info.rustc.host);
    assert_eq!(left, [name.clone(), format!("{name}.sha256")]);
    assert_eq!(v.manifest.file("bin/notigen").unwrap().mode, Mode(0o755));
    assert_eq!(
        outputs[0].tarball.file_name().unwrap().to_string_lossy(),
        format!("stv3-9.8.7-{}.tar.gz", info.rustc.host)
    );
}

mod cli {
    use clap::Parser;
    use stv3_deployer::package::cli::{PackageArgs, PackageCommand};

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: Sub,
    }
    #[derive(clap::Subcommand)]
    enum Sub {
        Package(PackageArgs),
    }

    fn parse(args: &[&str]) -> Result<PackageArgs, String> {
        let mut all = vec!["stv3ctl", "package"];
        all.extend_from_slice(args);
        Top::try_parse_from(all)
            .map(|t| match t.cmd {
                Sub::Package(p) => p,
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_package_command_line() {
        let p = parse(&[
            "--target",
            "a",
            "--target",
            "b",
            "--out",
            "o",
            "--profile",
            "dist",
        ])
        .unwrap();
        assert!(p.command.is_none());
        assert_eq!(p.build.targets, ["a", "b"]);
        assert_eq!(p.build.out.as_deref(), Some(std::path::Path::new("o")));
        assert_eq!(p.build.profile, "dist");
        let p = parse(&[]).unwrap();
        assert_eq!(p.build.profile, "release");
        assert!(p.build.targets.is_empty() && p.build.from_dir.is_none());
        assert!(matches!(
            parse(&["verify", "x.tar.gz"]).unwrap().command,
            Some(PackageCommand::Verify { .. })
        ));
        assert!(matches!(
            parse(&["inspect", "x.tar.gz", "--json"]).unwrap().command,
            Some(PackageCommand::Inspect { json: true, .. })
        ));
        assert!(parse(&["--target", "a", "verify", "x"]).is_err());
        assert!(parse(&["verify"]).is_err());
    }
}
