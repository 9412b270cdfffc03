//! Shared helpers of the `packaging_*` tests: where `packaging/build` put its artifacts, and
//! running a command with its output shown when it fails.
//!
//! The artifacts are in `$GANTRY_DIST_DIR`, else `dist/` at the top of the repository. These
//! tests are `#[ignore]`d in the workspace run: `packaging/test` builds what they need and runs
//! them with `--ignored`. A missing artifact is a failure that says how to build it, never a skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const TRIPLE: &str = "x86_64-unknown-linux-musl";

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `$GANTRY_DIST_DIR` or `<repo>/dist`.
pub fn dist() -> PathBuf {
    std::env::var_os("GANTRY_DIST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("dist"))
}

/// The one file of `dist()` whose name starts with `prefix` and ends with `suffix`; panics
/// telling how to build it when there is none (or more than one).
pub fn artifact(prefix: &str, suffix: &str) -> PathBuf {
    artifact_in(&dist(), prefix, suffix)
}

pub fn artifact_in(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with(prefix) && name.ends_with(suffix)
                })
                .collect()
        })
        .unwrap_or_default();
    match found.as_slice() {
        [one] => one.clone(),
        [] => panic!(
            "no {prefix}*{suffix} in {}: run packaging/build --target x86_64 (or packaging/test)",
            dir.display()
        ),
        many => panic!("several {prefix}*{suffix} in {}: {many:?}", dir.display()),
    }
}

/// A static binary built by `packaging/build` for x86_64.
pub fn static_bin(name: &str) -> PathBuf {
    let path = dist().join(TRIPLE).join(name);
    assert!(
        path.is_file(),
        "{} missing: run packaging/build --target x86_64",
        path.display()
    );
    path
}

/// Runs `cmd`, panics with its output unless it exits 0; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    check(&format!("{cmd:?}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics with both outputs unless `out` is a success.
pub fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
