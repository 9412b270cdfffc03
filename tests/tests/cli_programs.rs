//! The three programs behind the command line: `gantry` (the client) answers the daemon's
//! commands itself and becomes `gantryd` (by `exec`, same pid) for the engine's commands and
//! `gantry-fleet` for `remote` and `fetch-bundle`, the only program that links the SSM and S3
//! clients. Needs no Docker.

use std::path::Path;
use std::process::Command;

use gantry_tests::bin;

fn run(program: &Path, args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let mut tries = 0;
    let out = loop {
        let out = Command::new(program)
            .args(args)
            .env("GANTRY_STATE_DIR", dir.join("state"))
            .env("GANTRY_SOCKET", dir.join("none.sock"))
            .env_remove("GANTRY_LOCAL")
            .output();
        match out {
            // A program this test just copied can still be open for writing in a child that
            // another test thread forked meanwhile (until that child execs): the kernel then
            // refuses to run it. Wait for the child's exec.
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            out => break out.unwrap(),
        }
    };
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

    // A mistyped log filter is refused by the client as by gantryd (exit 64), before it
    // looks for the daemon.
    let (code, _, err) = run(
        &bin("gantry"),
        &["--log-level", "warning", "status", "shop"],
        dir.path(),
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--log-level"), "{err}");
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

/// `gantry fetch-bundle` with a digest that is not one: refused before any AWS call (exit 65).
const BAD_FETCH: &[&str] = &[
    "fetch-bundle",
    "shop",
    "--from",
    "s3://bundles/shop.tar.gz",
    "--sha256",
    "not-a-digest",
];

#[test]
fn fleet_commands_run_in_gantry_fleet_from_any_program() {
    let dir = tempfile::tempdir().unwrap();
    let direct = run(&bin("gantry-fleet"), BAD_FETCH, dir.path());
    assert_eq!(direct.0, Some(65), "{direct:?}");
    assert!(direct.2.contains("gantry fetch-bundle"), "{direct:?}");
    for program in ["gantry", "gantryd"] {
        let handed = run(&bin(program), BAD_FETCH, dir.path());
        assert_eq!(handed, direct, "through {program}");
    }
    // And the other way: gantry-fleet hands an engine command to gantryd.
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  web:\n    image: busybox\n").unwrap();
    let file = file.to_str().unwrap();
    let via_fleet = run(&bin("gantry-fleet"), &["config", "-f", file], dir.path());
    assert_eq!(
        via_fleet,
        run(&bin("gantryd"), &["config", "-f", file], dir.path())
    );
}

#[test]
fn gantry_without_gantry_fleet_beside_it_exits_69_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for b in ["gantry", "gantryd"] {
        std::fs::copy(bin(b), dir.path().join(b)).unwrap();
    }
    let (code, _, err) = run(&dir.path().join("gantry"), BAD_FETCH, dir.path());
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("gantry-fleet"), "{err}");
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn only_gantry_fleet_links_the_ssm_and_s3_clients() {
    // Strings only the SSM client (its service's target prefix) and the S3 client (an S3-only
    // response header) carry; the ECR client, which the engine needs, has neither.
    let markers: [&[u8]; 2] = [b"AmazonSSM", b"x-amz-delete-marker"];
    let fleet = std::fs::read(bin("gantry-fleet")).unwrap();
    for m in markers {
        assert!(
            contains(&fleet, m),
            "gantry-fleet lacks {:?}: the marker is wrong",
            String::from_utf8_lossy(m)
        );
    }
    for program in ["gantry", "gantryd"] {
        let bytes = std::fs::read(bin(program)).unwrap();
        for m in markers {
            assert!(
                !contains(&bytes, m),
                "{program} links the client that carries {:?}",
                String::from_utf8_lossy(m)
            );
        }
    }
}
