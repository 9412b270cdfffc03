//! PID 1 duties of `gantry-secrets exec`, run as PID 1 of a new PID namespace
//! (`unshare --pid --fork --mount-proc`, as root): orphans reaped, every listed signal
//! forwarded, exit codes 0, 3 and 128+15 propagated. Where no PID namespace can be made, skipped
//! (loudly) outside CI; under `CI=true` the tests fail saying why.

use std::time::Duration;

use gantry_tests::send_signal;
use gantry_tests::sidecar::*;
use gantry_tests::{unique, wait_for};

const UNSHARE: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];

fn start(dir: &std::path::Path, vault: &Vault, path: &str, script: &str) -> Sidecar {
    let mut c = sidecar_command_with(
        dir,
        vault,
        &[("VAULT_SECRET_PATH", &format!("secret/{path}"))],
        Some(UNSHARE),
    );
    c.0.args(["exec", "--", "/bin/sh", "-c", script]);
    Sidecar::spawn(c)
}

/// Whether a PID namespace cannot be made here; outside CI the test is then skipped
/// (loudly), under `CI=true` it fails naming the reason.
fn skip() -> bool {
    !gantry_tests::prerequisite(
        can_unshare(),
        "cannot create a PID namespace here (needs root and util-linux unshare)",
    )
}

#[test]
fn pid1_reaps_orphans_and_forwards_every_signal() {
    if skip() {
        return;
    }
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = unique("pid1");
    let secret = value("s");
    vault.kv_put(&path, &[("S", &secret)]);
    // Orphans: each `( sleep & )` subshell exits at once, its sleep is re-parented to PID 1.
    let script = r#"ulimit -c 0
echo "pid1=$(cat /proc/1/comm) self=$$" > info
for i in 1 2 3 4 5 6 7 8; do ( sleep 0.2 & ) ; done
for s in HUP INT QUIT USR1 USR2; do trap "echo $s >> got" $s; done
trap 'echo TERM >> got; exit 0' TERM
echo ready >> got
while :; do sleep 0.1; done"#;
    let mut sidecar = start(dir.path(), &vault, &path, script);
    let got = dir.path().join("got");
    wait_for("the child to be ready", Duration::from_secs(20), || {
        lines(&got).contains(&"ready".to_owned()).then_some(())
    });
    let info = std::fs::read_to_string(dir.path().join("info")).unwrap();
    assert!(
        info.starts_with("pid1=gantry-secrets"),
        "the sidecar is PID 1: {info}"
    );
    let pid1 = wait_for("the namespace's PID 1", Duration::from_secs(5), || {
        only_child(sidecar.pid())
    });

    // The orphans exit after 0.2 s: wait until PID 1 has no child left but the script's shell
    // (an orphan not reaped would stay as a zombie child), then check none is a zombie.
    wait_for(
        "the orphans to exit and be reaped (PID 1 left with one child)",
        Duration::from_secs(10),
        || (children(pid1).len() == 1).then_some(()),
    );
    assert_eq!(
        zombie_children(pid1),
        Vec::<u32>::new(),
        "zombies left under PID 1"
    );

    for sig in ["HUP", "INT", "QUIT", "USR1", "USR2"] {
        send_signal(pid1, sig);
        wait_for(
            &format!("{sig} to reach the child"),
            Duration::from_secs(5),
            || lines(&got).contains(&sig.to_owned()).then_some(()),
        );
    }
    send_signal(pid1, "TERM");
    let status = sidecar.wait(Duration::from_secs(30));
    assert!(lines(&got).contains(&"TERM".to_owned()));
    assert_eq!(status.code(), Some(0), "{}", sidecar.output());
    assert_no_secret(&sidecar.output(), &[&secret]);
}

#[test]
fn pid1_propagates_exit_codes() {
    if skip() {
        return;
    }
    let vault = Vault::shared();
    let path = unique("codes");
    let secret = value("s");
    vault.kv_put(&path, &[("S", &secret)]);
    for (script, want) in [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", 128 + 15)] {
        let dir = tempfile::tempdir().unwrap();
        let mut sidecar = start(dir.path(), &vault, &path, script);
        let status = sidecar.wait(Duration::from_secs(30));
        assert_eq!(status.code(), Some(want), "{script}: {}", sidecar.output());
        assert_no_secret(&sidecar.output(), &[&secret]);
    }
}
