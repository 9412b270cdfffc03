//! The application that `gantry-secrets exec` runs cannot read the sidecar's credentials back
//! through `/proc`: the child (same uid, no `CAP_SYS_PTRACE`) can open neither
//! `/proc/<sidecar>/environ` (which shows the environment the sidecar started with,
//! `VAULT_TOKEN` included) nor `/proc/<sidecar>/mem`.
//!
//! Two set-ups, each with a child that records what it could open and proves it ran with the
//! secret it was given:
//! - on the host, the sidecar run as `nobody` (`setpriv`), so the child has the same
//!   unprivileged uid;
//! - in a real container (the test image with the host's sidecar binary, libc and CA
//!   certificates mounted, `--network host` to reach the shared OpenBao), the
//!   sidecar as PID 1 and the child as root without `CAP_SYS_PTRACE` (Docker's default), the
//!   way it runs on ECS.
//!
//! Before the fix (the sidecar dumpable) both children read `VAULT_TOKEN=` from the environ
//! file and open the mem file.

use std::process::Command;
use std::time::Duration;

use gantry_tests::sidecar::*;
use gantry_tests::{docker, env, unique, wait_for};

/// Records `uid`, the value of `A`, and whether `/proc/$PPID/{environ,mem}` could be opened.
const CHILD: &str = r#"pp=$PPID
echo "uid=$(id -u)"
echo "a=$A"
if cat /proc/$pp/environ > environ.copy 2>/dev/null; then echo environ=readable; else echo environ=denied; fi
if ( exec 3< /proc/$pp/mem ) 2>/dev/null; then echo mem=readable; else echo mem=denied; fi
if tr '\0' '\n' < environ.copy 2>/dev/null | grep -q '^VAULT_TOKEN='; then echo token=seen; else echo token=unseen; fi
echo done"#;

fn fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn get<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn assert_cannot_read(report: &str, want_uid: &str, a: &str) {
    let f = fields(report);
    assert_eq!(get(&f, "uid"), Some(want_uid), "{report}");
    assert_eq!(get(&f, "a"), Some(a), "the child got its secret: {report}");
    assert_eq!(
        get(&f, "environ"),
        Some("denied"),
        "the child opened the sidecar's environ: {report}"
    );
    assert_eq!(
        get(&f, "mem"),
        Some("denied"),
        "the child opened the sidecar's mem: {report}"
    );
    assert_eq!(get(&f, "token"), Some("unseen"), "{report}");
}

#[test]
fn a_same_uid_child_cannot_read_the_sidecars_environ_or_mem() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    // The child, running as nobody, writes its scratch file here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = unique("proc");
    let a = value("a");
    vault.kv_put(&path, &[("A", &a)]);
    let setpriv = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !gantry_tests::prerequisite(
        has_setpriv,
        "setpriv (util-linux), to run the sidecar as another user",
    ) {
        return;
    }
    let mut c = sidecar_command_with(
        dir.path(),
        &vault,
        &[("VAULT_SECRET_PATH", &format!("secret/{path}"))],
        Some(&setpriv),
    );
    c.0.args(["exec", "--", "/bin/sh", "-c", CHILD]);
    let mut sidecar = Sidecar::spawn(c);
    let status = sidecar.wait(Duration::from_secs(30));
    let out = sidecar.output();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("done"), "the child ran to the end: {out}");
    assert_cannot_read(&out, "65534", &a);
    assert_no_secret(&out, &[&vault.token]);
}

#[test]
fn in_a_container_the_child_cannot_read_pid_1s_environ_or_mem() {
    let e = env();
    let vault = Vault::shared();
    let path = unique("proc-ctr");
    let a = value("a");
    vault.kv_put(&path, &[("A", &a)]);
    let name = unique("hardening-proc");
    let mounts = docker_mounts("/gantry-secrets");
    let mut args = vec![
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "host",
        "-w",
        "/tmp",
    ];
    args.extend(mounts.iter().map(String::as_str));
    let vars = [
        format!("VAULT_ADDR={}", vault.addr),
        format!("VAULT_TOKEN={}", vault.token),
        format!("VAULT_SECRET_PATH=secret/{path}"),
    ];
    args.extend(["-e", &vars[0], "-e", &vars[1], "-e", &vars[2]]);
    let script = format!("echo pid1=$(cat /proc/1/comm); {CHILD}");
    args.extend([
        "-e",
        "RUST_LOG=info",
        "--entrypoint",
        "/gantry-secrets",
        e.get("GANTRY_TEST_IMAGE"),
        "exec",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let out = docker(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- docker run\n{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    let f = fields(&text);
    assert_eq!(
        get(&f, "pid1"),
        Some("gantry-secrets"),
        "the sidecar is PID 1"
    );
    // The child's parent is PID 1 here; root, but without CAP_SYS_PTRACE (Docker's default).
    assert_cannot_read(&text, "0", &a);
    assert_no_secret(&text, &[&vault.token]);
    // `--rm` removed it; make sure nothing is left if docker run failed half-way.
    wait_for("the container to be gone", Duration::from_secs(10), || {
        (!docker(&["inspect", &name]).status.success()).then_some(())
    });
}
