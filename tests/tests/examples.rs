//! Every example stack under compose/ deploys for real (with the local busybox image standing
//! in for the applications), passes its readiness gates, and redeploys as a no-op.

use std::path::Path;

use gantry_tests::stack::Stack;
use gantry_tests::{free_port, stdout};

fn deploys(example: &str, ports: &[&str]) {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../compose/{example}/compose.yaml"));
    let text = std::fs::read_to_string(&file).unwrap();
    let stack = Stack::with_file(&text);
    let mut args: Vec<String> = Vec::new();
    for p in ports {
        args.push("--var".into());
        args.push(format!("{p}={}", free_port()));
    }
    let mut first: Vec<&str> = args.iter().map(String::as_str).collect();
    first.extend(["--ready-timeout", "90s"]);
    let out = stack.deploy(&first);
    assert_eq!(out.status.code(), Some(0), "{example}: {}", stdout(&out));
    let before = stack.containers();
    assert!(!before.is_empty());
    let mut again: Vec<&str> = args.iter().map(String::as_str).collect();
    again.extend(["--output", "json"]);
    let out = stack.deploy(&again);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "unchanged", "{example}");
    assert_eq!(stack.containers(), before);
}

#[test]
fn fintech() {
    deploys("fintech", &["WEB_PORT"]);
}

#[test]
fn delivery() {
    deploys("delivery", &[]);
}

#[test]
fn ec2_gateway() {
    deploys("ec2-gateway", &["GATEWAY_PORT"]);
}

#[test]
fn workers() {
    deploys("workers", &[]);
}
