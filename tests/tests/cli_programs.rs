//! The two programs behind the command line: `gantry` (the client) answers the daemon's
//! commands itself and becomes `gantryd` (by `exec`, same pid) for the rest. Needs no Docker.

use std::path::Path;
use std::process::Command;

use gantry_tests::bin;

fn run(program: &Path, args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(program)
        .args(args)
        .env("GANTRY_STATE_DIR", dir.join("state"))
        .env("GANTRY_SOCKET", dir.join("none.sock"))
        .env_remove("GANTRY_LOCAL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gantry_hands_in_process_commands_to_gantryd_and_answers_the_rest_itself() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  web:\n    image: busybox\n").unwrap();
    let file = file.to_str().unwrap();

    // `config` runs in gantryd: through gantry it prints exactly what gantryd prints.
    let via_client = run(&bin("gantry"), &["config", "-f", file], dir.path());
    let direct = run(&bin("gantryd"), &["config", "-f", file], dir.path());
    assert_eq!(via_client.0, Some(0), "{via_client:?}");
    assert_eq!(via_client, direct);
    assert!(via_client.1.contains("web:"), "{via_client:?}");

    // `--local` runs in gantryd too: an empty ledger, read in-process.
    let local = run(&bin("gantry"), &["releases", "shop", "--local"], dir.path());
    assert_eq!(local.0, Some(0), "{local:?}");

    // A daemon command with no daemon: the client itself says so, exit 69 with the hint.
    let (code, _, err) = run(&bin("gantry"), &["deploy", "shop", "-f", file], dir.path());
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("--local"), "{err}");
}

#[test]
fn gantry_without_gantryd_beside_it_exits_69_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("gantry");
    std::fs::copy(bin("gantry"), &lone).unwrap();
    let (code, _, err) = run(&lone, &["releases", "shop", "--local"], dir.path());
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("gantryd"), "{err}");
    // What the client answers alone still works.
    let (code, out, _) = run(&lone, &["--version"], dir.path());
    assert_eq!(code, Some(0));
    assert!(out.starts_with("gantry "), "{out}");
}
