//! Stamps the git sha into every stv3 binary (they all link stv3-telemetry).
use std::process::Command;

fn main() {
    let sha = std::env::var("STV3_GIT_SHA").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=STV3_GIT_SHA={}",
        sha.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=STV3_GIT_SHA");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
}
