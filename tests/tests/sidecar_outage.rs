//! Vault stopped after the first fetch: the child keeps running with the last values; Vault
//! back: changes flow again. Uses a private `bao server -dev` on its own port so the shared
//! one is never stopped. Dev mode keeps nothing across restarts, so "back" is an empty server
//! where the test writes the new value.

use std::time::Duration;

use gantry_tests::sidecar::*;
use gantry_tests::{free_port, send_signal};
use gantry_tests::{http_get, unique, wait_for};

const CHILD: &str = r#"printf '%s %s\n' "$$" "$A" >> seen
trap 'exit 0' TERM
while :; do sleep 0.1; done"#;

#[test]
fn outage_keeps_the_child_and_changes_flow_again_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = PrivateVault::start(dir.path());
    let path = unique("outage");
    let (a1, a2) = (value("a1"), value("a2"));
    bao.vault.kv_put(&path, &[("A", &a1)]);

    let listen = format!("127.0.0.1:{}", free_port());
    let readyz = format!("http://{listen}/readyz");
    let mut c = sidecar_command(
        dir.path(),
        &bao.vault,
        &[
            ("VAULT_SECRET_PATH", &format!("secret/{path}")),
            ("GANTRY_SECRETS_REFRESH", "1s"),
            ("GANTRY_SECRETS_LISTEN", &listen),
        ],
    );
    c.0.args(["exec", "--", "/bin/sh", "-c", CHILD]);
    let mut sidecar = Sidecar::spawn(c);
    let seen = dir.path().join("seen");
    let first = wait_for("the child to start", Duration::from_secs(20), || {
        lines(&seen).first().cloned()
    });
    assert!(first.ends_with(&a1));
    assert_eq!(http_get(&readyz).map(|r| r.0), Some(200));

    bao.down();
    // The outage is seen: a refresh failed (logged, the last good values kept) and /readyz
    // says the source is stale (no good refresh for 3 intervals), naming it.
    let body = wait_for(
        "/readyz to say the source is stale, after a failed refresh",
        Duration::from_secs(30),
        || {
            let (code, body) = http_get(&readyz).unwrap_or_else(|| {
                panic!("/readyz answers during the outage: {}", sidecar.output())
            });
            let failed = sidecar
                .output()
                .contains("refresh failed, keeping the last good values");
            (code == 503 && failed).then_some(body)
        },
    );
    assert!(body.contains(&path), "{body}");
    assert!(
        sidecar.running(),
        "the sidecar survives the outage: {}",
        sidecar.output()
    );
    assert_eq!(
        lines(&seen).len(),
        1,
        "the child was not restarted during the outage"
    );

    bao.up();
    bao.vault.kv_put(&path, &[("A", &a2)]);
    let second = wait_for(
        "the child restarted with the new value",
        Duration::from_secs(15),
        || lines(&seen).get(1).cloned(),
    );
    assert!(second.ends_with(&a2), "{second}");
    assert!(sidecar.output().contains("source reachable again"));
    assert_eq!(http_get(&readyz).map(|r| r.0), Some(200));
    let (_, metrics) = http_get(&format!("http://{listen}/metrics")).unwrap();
    assert!(
        metrics.contains("gantry_secrets_child_restarts_total 1"),
        "{metrics}"
    );

    send_signal(sidecar.pid(), "TERM");
    assert_eq!(sidecar.wait(Duration::from_secs(15)).code(), Some(0));
    assert_no_secret(&sidecar.output(), &[&a1, &a2]);
}
