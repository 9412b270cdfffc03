//! Every example stack under compose/ deploys for real (with the local busybox image standing
//! in for the applications), passes its readiness gates, and redeploys as a no-op. The stacks
//! whose image runs `gantry-secrets exec` (workers, apprunner-vault) need an image built and a
//! secret store: their architecture tests (`arch_003_workers`, `arch_001_apprunner_vault`) check
//! the same, within their day.

use gantry_tests::arch_exec::example_stack;
use gantry_tests::{free_port, stdout};

fn deploys(example: &str, ports: &[&str]) {
    // The whole directory: scripts and env files next to the compose file.
    let stack = example_stack(example);
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
    // Its api publishes a port for several replicas with a canary: the edge switch's job.
    if !gantry_tests::edge_switch_available() {
        return;
    }
    deploys("delivery", &["API_PORT"]);
}

#[test]
fn ec2_gateway() {
    deploys("ec2-gateway", &["GATEWAY_PORT"]);
}
