//! Host mode against the shared OpenBao: `gantry-secrets run` renders a dotenv file with mode
//! 0600 that Docker Compose v2 (`docker compose config`, no daemon needed) reads back exactly,
//! rewrites it only on change, runs the on_change command; `render --once` and `check` report
//! which source failed. No secret value reaches the output.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gantry_tests::send_signal;
use gantry_tests::sidecar::*;
use gantry_tests::{env, unique, wait_for};

fn config(dir: &Path, vault: &Vault, paths: &[&str]) -> std::path::PathBuf {
    let sources: String = paths
        .iter()
        .map(|p| format!("  - vault: {{ path: secret/{p} }}\n"))
        .collect();
    let text = format!(
        "sources:\n{sources}vault:\n  addr: {addr}\nrefresh: 1s\noutputs:\n  - path: {out}\non_change:\n  command: [/bin/sh, -c, 'echo changed >> {marker}']\n",
        addr = vault.addr,
        out = dir.join("app.env").display(),
        marker = dir.join("marker").display(),
    );
    let path = dir.join("secrets.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What Docker Compose v2 reads from `env_file`, `$$` un-escaped (config prints `$` as `$$`).
fn compose_reads(
    compose: &str,
    dir: &Path,
    env_file: &Path,
) -> serde_json::Map<String, serde_json::Value> {
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "services:\n  app:\n    image: busybox\n    env_file: [{}]\n",
            env_file.display()
        ),
    )
    .unwrap();
    let out = Command::new(compose)
        .current_dir(dir)
        .args(["-p", "gantry-host-test", "config", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compose: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut envs = v["services"]["app"]["environment"]
        .as_object()
        .unwrap_or_else(|| panic!("no environment in compose's answer: {v}"))
        .clone();
    for v in envs.values_mut() {
        if let Some(s) = v.as_str() {
            *v = serde_json::Value::String(s.replace("$$", "$"));
        }
    }
    envs
}

#[test]
fn run_renders_0600_dotenv_that_compose_reads_back_and_acts_on_change() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = unique("host");
    let tag = value("t");
    let nasty = format!("p@ss 'w\"o$rd' # {tag} \\ back\\slash\nsecond line");
    let plain = value("plain");
    vault.kv_put(&path, &[("DB_PASSWORD", &nasty), ("API_KEY", &plain)]);
    let cfg = config(dir.path(), &vault, &[&path]);

    // systemd's notification socket, played by the test.
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let mut c = sidecar_command(
        dir.path(),
        &vault,
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    c.0.args(["run", "--config"]).arg(&cfg);
    let mut sidecar = Sidecar::spawn(c);
    let out_file = dir.path().join("app.env");
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.iter().any(|m| m == "READY=1") {
        let n = notify.recv(&mut buf).expect("READY=1 within 20 s");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(out_file.exists(), "READY=1 comes after the first render");
    let meta = std::fs::metadata(&out_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);

    // Docker Compose reads back exactly what was written (skipped only outside CI).
    let compose = env().vars.get("COMPOSE_BIN");
    if gantry_tests::prerequisite(
        compose.is_some(),
        "the compose check needs COMPOSE_BIN in the test environment (tests/env/up compose)",
    ) {
        let envs = compose_reads(compose.expect("checked"), dir.path(), &out_file);
        assert_eq!(envs["DB_PASSWORD"].as_str(), Some(nasty.as_str()));
        assert_eq!(envs["API_KEY"].as_str(), Some(plain.as_str()));
    }

    // Several refreshes without a change: the file is left alone, no action runs.
    std::thread::sleep(Duration::from_secs(3));
    let again = std::fs::metadata(&out_file).unwrap();
    assert_eq!(
        (again.ino(), again.mtime_nsec()),
        (meta.ino(), meta.mtime_nsec())
    );
    assert!(lines(&dir.path().join("marker")).is_empty());

    let plain2 = value("plain2");
    vault.kv_put(&path, &[("DB_PASSWORD", &nasty), ("API_KEY", &plain2)]);
    wait_for("the on_change command", Duration::from_secs(10), || {
        (lines(&dir.path().join("marker")) == ["changed"]).then_some(())
    });
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.contains(&plain2) && !text.contains(&plain));
    assert_eq!(
        std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o7777,
        0o600
    );

    send_signal(sidecar.pid(), "TERM");
    assert_eq!(
        sidecar.wait(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        sidecar.output()
    );
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while let Ok(n) = notify.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got.iter().any(|m| m.starts_with("STATUS=")), "{got:?}");
    assert!(got.iter().any(|m| m == "STOPPING=1"), "{got:?}");
    for m in &got {
        assert_no_secret(m, &[&nasty, &tag, &plain, &plain2]);
    }
    let mut outputs = sidecar.output();

    // Values changed while the service was down: the existing file is rewritten at start and
    // its action runs; a restart without a change runs nothing.
    let plain3 = value("plain3");
    vault.kv_put(&path, &[("DB_PASSWORD", &nasty), ("API_KEY", &plain3)]);
    for expected in [2, 2] {
        let mut c = sidecar_command(dir.path(), &vault, &[]);
        c.0.args(["run", "--config"]).arg(&cfg);
        let mut again = Sidecar::spawn(c);
        wait_for(
            "the restarted service to render",
            Duration::from_secs(20),
            || {
                again
                    .output()
                    .contains("outputs rendered, ready")
                    .then_some(())
            },
        );
        assert_eq!(lines(&dir.path().join("marker")).len(), expected);
        send_signal(again.pid(), "TERM");
        assert_eq!(again.wait(Duration::from_secs(10)).code(), Some(0));
        outputs.push_str(&again.output());
    }
    assert!(
        std::fs::read_to_string(&out_file)
            .unwrap()
            .contains(&plain3)
    );
    assert_no_secret(&outputs, &[&nasty, &tag, &plain, &plain2, &plain3]);
}

#[test]
fn render_once_and_check_name_the_failing_source() {
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let good = unique("good");
    let missing = unique("missing");
    let secret = value("s");
    vault.kv_put(&good, &[("S", &secret)]);

    // render --once with every source present: exit 0, file written.
    let cfg = config(dir.path(), &vault, &[&good]);
    let mut c = sidecar_command(dir.path(), &vault, &[]);
    c.0.args(["render", "--once", "--config"]).arg(&cfg);
    let mut s = Sidecar::spawn(c);
    assert_eq!(
        s.wait(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        s.output()
    );
    assert!(
        std::fs::read_to_string(dir.path().join("app.env"))
            .unwrap()
            .contains(&secret)
    );
    assert_no_secret(&s.output(), &[&secret]);

    // the second source (index 1) is missing: exit 101, naming it.
    let cfg = config(dir.path(), &vault, &[&good, &missing]);
    let mut c = sidecar_command(dir.path(), &vault, &[]);
    c.0.args(["render", "--once", "--config"]).arg(&cfg);
    let mut s = Sidecar::spawn(c);
    let code = s.wait(Duration::from_secs(30)).code();
    assert_eq!(code, Some(101), "{}", s.output());
    assert!(s.output().contains(&format!("vault:secret/{missing}")));

    // check reports every problem and the count.
    let mut c = sidecar_command(dir.path(), &vault, &[]);
    c.0.args(["check", "--config"]).arg(&cfg);
    let mut s = Sidecar::spawn(c);
    assert_eq!(
        s.wait(Duration::from_secs(30)).code(),
        Some(69),
        "{}",
        s.output()
    );
    let out = s.output();
    assert!(out.contains("1 of 2 sources failed"), "{out}");
    assert!(
        out.contains(&format!("ok     vault:secret/{good}")),
        "{out}"
    );
    assert_no_secret(&out, &[&secret]);

    // a bad key in the file: exit 78 naming the file and the key.
    std::fs::write(&cfg, "sources: []\nrefrsh: 1s\n").unwrap();
    let mut c = sidecar_command(dir.path(), &vault, &[]);
    c.0.args(["check", "--offline", "--config"]).arg(&cfg);
    let mut s = Sidecar::spawn(c);
    assert_eq!(s.wait(Duration::from_secs(10)).code(), Some(78));
    let out = s.output();
    assert!(
        out.contains("secrets.yaml") && out.contains("refrsh"),
        "{out}"
    );
}
