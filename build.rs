//! Build script for `stv3ctl`.
//!
//! 1. Stamps the version and git sha (`STV3_GIT_SHA`, `STV3_GIT_DIRTY`).
//! 2. Embeds every file under `templates/` and `roles/` into the binary
//!    (`$OUT_DIR/embedded.rs`), so a deploy uses exactly the templates it was
//!    built with. A template that minijinja cannot parse fails the build here,
//!    not the deploy.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let (sha, dirty) = git_sha(&root);
    println!("cargo:rustc-env=STV3_GIT_SHA={sha}");
    println!("cargo:rustc-env=STV3_GIT_DIRTY={dirty}");
    println!("cargo:rerun-if-env-changed=STV3_GIT_SHA");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    println!("cargo:rerun-if-changed=.git/packed-refs");
    if let Ok(head) = fs::read_to_string(root.join(".git/HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{r}");
        }
    }
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=roles");

    let mut files = Vec::new();
    for dir in ["templates", "roles"] {
        collect(&root, &root.join(dir), &mut files);
    }
    files.sort();
    let mut out =
        String::from("/// (relative path, contents) of every embedded template and role file.\n");
    out.push_str("pub static EMBEDDED: &[(&str, &str)] = &[\n");
    let mut env_check = minijinja::Environment::new();
    for rel in &files {
        let abs = root.join(rel);
        let text = fs::read_to_string(&abs).unwrap_or_else(|e| panic!("{}: {e}", abs.display()));
        if rel.starts_with("templates/") && rel.ends_with(".j2") {
            if let Err(e) = env_check.template_from_str(&text) {
                panic!("template {rel} does not parse: {e:#}");
            }
        }
        out.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    env_check = minijinja::Environment::new();
    drop(env_check);
    fs::write(
        PathBuf::from(env::var("OUT_DIR").unwrap()).join("embedded.rs"),
        out,
    )
    .unwrap();
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn git_sha(root: &Path) -> (String, bool) {
    if let Ok(sha) = env::var("STV3_GIT_SHA") {
        return (sha, false);
    }
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let sha = run(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    (sha, dirty)
}
