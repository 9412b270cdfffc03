//! The layering check, runnable by anyone on the tree: `cargo test -p gantry-tests --test
//! layering`. Reads `agent/src` and `sidecar/src`, builds the graph of top-level modules from
//! `crate::` paths (see `gantry_tests::layering` for how and its limits) and fails naming the
//! offending edges and files on:
//! - any cycle between top-level modules (agent and sidecar);
//! - an agent edge against the design's direction (the project's design document, kept outside
//!   this repository): `cli` → `daemon` → `deploy` → {`edge`, `engine`, `compose`, `ledger`,
//!   `registry`}; `api` (the protocol) imports no engine, deploy,
//!   daemon or cli code; `remote` uses no `cli` code (table [`AGENT`] below);
//! - any non-test source file over 800 lines in `agent/src`, `sidecar/src`, `common/src`.

use std::path::{Path, PathBuf};

use gantry_tests::layering::{
    Layers, crate_graph, cycles, describe_edges, long_files, top_level_modules,
};

/// The agent's layers, highest first; a module may import its own layer or lower ones.
/// `config` (the configuration file) is read at the edge, by the CLI (DESIGN: "no module below
/// `cli` reads the environment or the configuration file"); `supervise` is part of the daemon;
/// `exit` (exit codes) sits with `common` at the bottom; `api` is types only, below its users;
/// `bundle` (stack files from S3) is an external system beside `registry`.
const AGENT: Layers<'static> = Layers {
    ranks: &[
        ("cli", 5),
        ("remote", 5),
        ("config", 5),
        ("daemon", 4),
        ("supervise", 4),
        ("deploy", 3),
        ("edge", 2),
        ("engine", 2),
        ("compose", 2),
        ("ledger", 2),
        ("registry", 2),
        ("bundle", 2),
        ("api", 2),
        ("exit", 1),
    ],
    forbidden: &[
        (
            "api",
            &[
                "engine",
                "edge",
                "deploy",
                "daemon",
                "supervise",
                "cli",
                "remote",
            ],
        ),
        ("remote", &["cli"]),
    ],
};

const MAX_LINES: usize = 800;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}

fn no_cycles(krate: &str) {
    let src = repo().join(krate).join("src");
    let graph = crate_graph(&src);
    let found = cycles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|comp| {
            format!(
                "cycle between {}:\n  {}",
                comp.join(", "),
                describe_edges(&graph, comp).join("\n  ")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "{krate}/src has {} import cycle(s) between top-level modules:\n{}",
        found.len(),
        report.join("\n")
    );
}

#[test]
fn agent_has_no_import_cycle() {
    no_cycles("agent");
}

#[test]
fn sidecar_has_no_import_cycle() {
    no_cycles("sidecar");
}

#[test]
fn agent_dependencies_follow_the_design_direction() {
    let src = repo().join("agent/src");
    let graph = crate_graph(&src);
    let violations = AGENT.violations(&graph, &top_level_modules(&src));
    assert!(
        violations.is_empty(),
        "agent/src: {} edge(s) against the design's direction (cli -> daemon -> deploy -> \
         edge/engine/compose/ledger/registry; api imports no engine/deploy/daemon/cli code):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

#[test]
fn no_source_file_over_800_lines() {
    let root = repo();
    let mut long = Vec::new();
    for krate in ["agent", "sidecar", "common"] {
        long.extend(long_files(
            &root.join(krate).join("src"),
            &format!("{krate}/src"),
            MAX_LINES,
        ));
    }
    let lines: Vec<String> = long
        .iter()
        .map(|(f, n)| format!("{f}: {n} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "{} non-test source file(s) over {MAX_LINES} lines (split them by responsibility; \
         test modules go to their own tests.rs):\n  {}",
        long.len(),
        lines.join("\n  ")
    );
}
