//! A one-off job's container goes with its anonymous volumes, against the real Docker daemon:
//! a job run every release (a migration) must not leave a dangling volume per run.
//!
//! The job's container is gone when the deploy ends, so its volumes are found through Docker's
//! events (a volume's `mount` names the container); the daemon is shared with other tests, so
//! the dangling volumes compared are the job's, not a global count.

use std::collections::BTreeSet;

use gantry_tests::stack::Stack;
use gantry_tests::{docker, stderr, stdout};

/// Whitespace-separated words of `docker args...`'s output.
fn words(args: &[&str]) -> BTreeSet<String> {
    let out = docker(args);
    assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
    stdout(&out).split_whitespace().map(str::to_owned).collect()
}

/// The daemon's clock, in Unix seconds.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_job_run_every_release_leaves_no_dangling_volume_behind() {
    let stack = Stack::with_file(
        "services:
  migrate:
    image: ${IMAGE}
    command: [\"sh\", \"-c\", \"echo ${RELEASE} > /scratch/run\"]
    volumes: [/scratch]
    x-gantry: {job: {timeout: 1m}}
  app:
    image: ${IMAGE}
    command: [\"sleep\", \"300\"]
    init: true
    environment: {RELEASE: \"${RELEASE}\"}
    depends_on: {migrate: {condition: service_completed_successfully}}
",
    );
    let since = (now() - 1).to_string();
    let dangling = || words(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    let before = dangling();
    for release in ["1", "2"] {
        let out = stack.deploy(&["--var", &format!("RELEASE={release}")]);
        assert_eq!(out.status.code(), Some(0), "release {release}");
    }
    let until = (now() + 1).to_string();
    let events = |filters: &[&str], format: &str| {
        let mut args = vec!["events", "--since", &since, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend(["--format", format]);
        let out = docker(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let project = format!("label=com.docker.compose.project={}", stack.name);
    let jobs: BTreeSet<String> = events(
        &[
            "type=container",
            "event=create",
            &project,
            "label=com.docker.compose.service=migrate",
        ],
        "{{.Actor.ID}}",
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    assert_eq!(jobs.len(), 2, "the job ran for each release: {jobs:?}");
    let mounts = events(
        &["type=volume", "event=mount"],
        "{{.Actor.ID}} {{index .Actor.Attributes \"container\"}}",
    );
    let volumes: BTreeSet<String> = mounts
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, container)| jobs.contains(*container))
        .map(|(volume, _)| volume.to_owned())
        .collect();
    assert_eq!(volumes.len(), 2, "one /scratch per run: {mounts}");

    let after = dangling();
    let grown: Vec<&String> = after.difference(&before).collect();
    let left: Vec<&String> = grown
        .iter()
        .copied()
        .filter(|v| volumes.contains(*v))
        .collect();
    assert!(
        left.is_empty(),
        "the job's volumes were left dangling: {left:?}"
    );
    let existing = words(&["volume", "ls", "-q"]);
    assert!(
        volumes.is_disjoint(&existing),
        "the job's volumes are gone: {:?}",
        volumes.intersection(&existing).collect::<Vec<_>>()
    );
    assert!(
        stack.containers().keys().all(|n| !n.contains("migrate")),
        "the job's containers are gone: {:?}",
        stack.containers()
    );
}
