//! `gantry-secrets exec` configured by environment variables only, against the shared OpenBao:
//! the child sees the KV values, a `bao kv put` restarts it with the new value (a new pid, the
//! new value, the restart logged), and no value reaches the sidecar's output. How fast a change
//! is picked up is a speed target for bench/, not a test assertion.

use std::time::Duration;

use gantry_tests::send_signal;
use gantry_tests::sidecar::*;
use gantry_tests::{unique, wait_for};

/// The child: records `pid value-of-A value-of-B token-state` in `seen`, then waits for TERM.
const CHILD: &str = r#"printf '%s %s %s %s\n' "$$" "$A" "$B" "${VAULT_TOKEN:-no-token}" >> seen
trap 'exit 0' TERM
while :; do sleep 0.1; done"#;

#[test]
fn exec_env_only_child_sees_values_and_restarts_on_change() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = unique("exec");
    let (a1, b1, a2) = (value("a1"), value("b1"), value("a2"));
    vault.kv_put(&path, &[("A", &a1), ("B", &b1)]);

    let mut c = sidecar_command(
        dir.path(),
        &vault,
        &[
            ("VAULT_SECRET_PATH", &format!("secret/{path}")),
            ("GANTRY_SECRETS_REFRESH", "1s"),
        ],
    );
    c.0.args(["exec", "--", "/bin/sh", "-c", CHILD]);
    let mut sidecar = Sidecar::spawn(c);
    let seen = dir.path().join("seen");
    let first = wait_for("the child to start", Duration::from_secs(20), || {
        lines(&seen).first().cloned()
    });
    let f: Vec<&str> = first.split(' ').collect();
    assert_eq!(f[1], a1, "child sees A");
    assert_eq!(f[2], b1, "child sees B");
    assert_eq!(
        f[3], "no-token",
        "the sidecar's Vault token is not passed on"
    );

    vault.kv_put(&path, &[("A", &a2), ("B", &b1)]);
    let second = wait_for("the restarted child", Duration::from_secs(10), || {
        lines(&seen).get(1).cloned()
    });
    let s: Vec<&str> = second.split(' ').collect();
    assert_eq!(s[1], a2, "restarted child sees the new A");
    assert_ne!(s[0], f[0], "a new process");

    send_signal(sidecar.pid(), "TERM");
    let status = sidecar.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", sidecar.output());
    let out = sidecar.output();
    assert!(out.contains("child restarted with new values"), "{out}");
    assert_no_secret(&out, &[&a1, &b1, &a2]);
}

#[test]
fn exec_fails_closed_naming_the_source() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let missing = unique("missing");
    let mut c = sidecar_command(
        dir.path(),
        &vault,
        &[("VAULT_SECRET_PATH", &format!("secret/{missing}"))],
    );
    c.0.args(["exec", "--", "/bin/sh", "-c", CHILD]);
    let mut sidecar = Sidecar::spawn(c);
    let status = sidecar.wait(Duration::from_secs(30));
    let out = sidecar.output();
    assert_eq!(status.code(), Some(100), "first source failed: {out}");
    assert!(out.contains(&format!("vault:secret/{missing}")), "{out}");
    assert!(!dir.path().join("seen").exists(), "the app must not start");
}

#[test]
fn exec_exit_on_change_exits_75() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = unique("exit-on-change");
    let (a1, a2) = (value("a1"), value("a2"));
    vault.kv_put(&path, &[("A", &a1)]);
    let mut c = sidecar_command(
        dir.path(),
        &vault,
        &[
            ("VAULT_SECRET_PATH", &format!("secret/{path}")),
            ("GANTRY_SECRETS_REFRESH", "1s"),
            ("GANTRY_SECRETS_EXIT_ON_CHANGE", "true"),
        ],
    );
    c.0.args(["exec", "--", "/bin/sh", "-c", CHILD]);
    let mut sidecar = Sidecar::spawn(c);
    let seen = dir.path().join("seen");
    wait_for("the child to start", Duration::from_secs(20), || {
        lines(&seen).first().cloned()
    });
    vault.kv_put(&path, &[("A", &a2)]);
    let status = sidecar.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(75), "{}", sidecar.output());
    assert_eq!(lines(&seen).len(), 1, "no second child");
    assert_no_secret(&sidecar.output(), &[&a1, &a2]);
}

/// A child that only records the restart signal and keeps running is killed after the restart
/// timeout, then started again with the new value.
#[test]
fn exec_restart_signal_then_sigkill_after_timeout() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = unique("stubborn");
    let (a1, a2) = (value("a1"), value("a2"));
    vault.kv_put(&path, &[("A", &a1)]);
    let script = r#"printf '%s %s\n' "$$" "$A" >> seen
trap 'echo HUP >> got' HUP
trap '' TERM
while :; do sleep 0.1; done"#;
    let mut c = sidecar_command(
        dir.path(),
        &vault,
        &[
            ("VAULT_SECRET_PATH", &format!("secret/{path}")),
            ("GANTRY_SECRETS_REFRESH", "1s"),
            ("GANTRY_SECRETS_RESTART_SIGNAL", "HUP"),
            ("GANTRY_SECRETS_RESTART_TIMEOUT", "1s"),
            ("GANTRY_SECRETS_STOP_TIMEOUT", "1s"),
        ],
    );
    c.0.args(["exec", "--", "/bin/sh", "-c", script]);
    let mut sidecar = Sidecar::spawn(c);
    let seen = dir.path().join("seen");
    wait_for("the child to start", Duration::from_secs(20), || {
        lines(&seen).first().cloned()
    });
    vault.kv_put(&path, &[("A", &a2)]);
    let second = wait_for("the restarted child", Duration::from_secs(10), || {
        lines(&seen).get(1).cloned()
    });
    assert!(second.ends_with(&a2), "{second}");
    assert_eq!(
        lines(&dir.path().join("got")),
        ["HUP"],
        "restart signal sent first"
    );
    assert!(
        sidecar
            .output()
            .contains("child did not stop in time, sending SIGKILL")
    );

    // The stubborn child ignores our SIGTERM too: killed after the stop timeout, 128+9.
    send_signal(sidecar.pid(), "TERM");
    let status = sidecar.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(128 + 9), "{}", sidecar.output());
    assert_no_secret(&sidecar.output(), &[&a1, &a2]);
}

/// With a config file, exec also renders `outputs:` (here a raw file) before the child starts
/// and again before each restart.
#[test]
fn exec_renders_outputs_before_the_child_starts() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = unique("exec-file");
    let (k1, k2) = (value("key1"), value("key2"));
    vault.kv_put(&path, &[("TLS_KEY", &k1)]);
    let file = dir.path().join("tls.key");
    let cfg = dir.path().join("secrets.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sources:\n  - vault: {{ path: secret/{path} }}\nvault:\n  addr: {}\nrefresh: 1s\noutputs:\n  - path: {}\n    format: raw\n    keys: [TLS_KEY]\n",
            vault.addr,
            file.display()
        ),
    )
    .unwrap();
    let script = r#"printf '%s %s\n' "$$" "$(cat tls.key)" >> seen
trap 'exit 0' TERM
while :; do sleep 0.1; done"#;
    let mut c = sidecar_command(dir.path(), &vault, &[]);
    c.0.args(["exec", "--config"])
        .arg(&cfg)
        .args(["--", "/bin/sh", "-c", script]);
    let mut sidecar = Sidecar::spawn(c);
    let seen = dir.path().join("seen");
    let first = wait_for("the child to start", Duration::from_secs(20), || {
        lines(&seen).first().cloned()
    });
    assert!(first.ends_with(&k1), "the file was there before the child");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    vault.kv_put(&path, &[("TLS_KEY", &k2)]);
    let second = wait_for("the restarted child", Duration::from_secs(10), || {
        lines(&seen).get(1).cloned()
    });
    assert!(
        second.ends_with(&k2),
        "the file was rewritten before the restart"
    );
    send_signal(sidecar.pid(), "TERM");
    assert_eq!(sidecar.wait(Duration::from_secs(15)).code(), Some(0));
    assert_no_secret(&sidecar.output(), &[&k1, &k2]);
}

/// Review item: only `VAULT_TOKEN` and `VAULT_SECRET_ID` were kept from the child; the variables
/// naming the files the sidecar reads its Vault credentials from (`VAULT_TOKEN_FILE`,
/// `VAULT_SECRET_ID_FILE`) and the AppRole's `VAULT_ROLE_ID` were passed on, telling the app
/// where its sidecar's login lies. The sidecar logs in with a token file, then with AppRole
/// and a secret id file; the child sees none of those variables.
#[test]
fn exec_child_gets_no_variable_naming_the_sidecars_vault_credentials() {
    const NAMES: &str = r#"printf '%s %s %s %s\n' "${VAULT_TOKEN_FILE:-none}" "${VAULT_SECRET_ID_FILE:-none}" "${VAULT_ROLE_ID:-none}" "$A" >> seen
trap 'exit 0' TERM
while :; do sleep 0.1; done"#;
    let vault = Vault::shared();
    let path = unique("credential-files");
    let a = value("a");
    vault.kv_put(&path, &[("A", &a)]);
    let mount = unique("approle");
    let policy = unique("read");
    vault.run(&["auth", "enable", &format!("-path={mount}"), "approle"]);
    let hcl = std::env::temp_dir().join(format!("{policy}.hcl"));
    std::fs::write(
        &hcl,
        format!("path \"secret/data/{path}\" {{ capabilities = [\"read\"] }}\n"),
    )
    .unwrap();
    vault.run(&["policy", "write", &policy, &hcl.to_string_lossy()]);
    let _ = std::fs::remove_file(&hcl);
    vault.run(&[
        "write",
        &format!("auth/{mount}/role/app"),
        &format!("token_policies={policy}"),
    ]);
    let role_id = vault.run(&[
        "read",
        "-field=role_id",
        &format!("auth/{mount}/role/app/role-id"),
    ]);
    let secret_id = vault.run(&[
        "write",
        "-f",
        "-field=secret_id",
        &format!("auth/{mount}/role/app/secret-id"),
    ]);

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &vault.token).unwrap();
    let sid_file = dir.path().join("secret-id");
    std::fs::write(&sid_file, secret_id.trim()).unwrap();
    let secret_path = format!("secret/{path}");
    let token_file_s = token_file.to_string_lossy().into_owned();
    let sid_file_s = sid_file.to_string_lossy().into_owned();
    let runs: [&[(&str, &str)]; 2] = [
        &[("VAULT_TOKEN_FILE", &token_file_s)],
        &[
            ("VAULT_AUTH_METHOD", "approle"),
            ("VAULT_AUTH_MOUNT", &mount),
            ("VAULT_ROLE_ID", role_id.trim()),
            ("VAULT_SECRET_ID_FILE", &sid_file_s),
        ],
    ];
    for (i, auth) in runs.into_iter().enumerate() {
        let seen = dir.path().join("seen");
        let _ = std::fs::remove_file(&seen);
        let mut extra = vec![("VAULT_SECRET_PATH", secret_path.as_str())];
        extra.extend_from_slice(auth);
        let mut c = sidecar_command(dir.path(), &vault, &extra);
        c.0.env_remove("VAULT_TOKEN");
        c.0.args(["exec", "--", "/bin/sh", "-c", NAMES]);
        let mut sidecar = Sidecar::spawn(c);
        let first = wait_for("the child to start", Duration::from_secs(20), || {
            lines(&seen).first().cloned()
        });
        assert_eq!(
            first,
            format!("none none none {a}"),
            "run {i}: the child sees where the sidecar's credentials are"
        );
        send_signal(sidecar.pid(), "TERM");
        let status = sidecar.wait(Duration::from_secs(15));
        assert_eq!(status.code(), Some(0), "{}", sidecar.output());
        assert_no_secret(&sidecar.output(), &[&a, secret_id.trim(), &vault.token]);
    }
}
