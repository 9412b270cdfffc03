//! A daemon that outlives its nftables table: `nft flush ruleset` or a restart of the
//! nftables service deletes the switch's table under a running `gantryd`; the next deploy
//! through that same daemon sets the table up again and the port answers (it used to fail on
//! every change until the daemon restarted).
//!
//! Ignored by default: it deletes the whole `ip gantry` table, which every edge test running at
//! the same time uses. Run it alone, as `scripts/test` does:
//! `cargo test -p gantry-tests --test edge_flush -- --ignored --test-threads 1`. Needs root
//! (CAP_NET_ADMIN) and `nft`.

use std::process::Command;
use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{http_get, path_str, wait_for};

const WEB: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    stop_grace_period: 1s
    command: ["sh", "-c", "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 500ms
      retries: 5
"#;

#[test]
#[ignore = "deletes the switch's whole nftables table; run alone: cargo test -p gantry-tests --test edge_flush -- --ignored"]
fn a_running_daemon_sets_up_a_deleted_table_again() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let mut d = Daemon::start("", &[]);
    let (stack, file) = d.stack("edgeflush", WEB);
    let port = gantry_tests::free_port();
    let port_var = format!("WEB_PORT={port}");
    let deploy = || d.gantry(&["deploy", &stack, "-f", path_str(&file), "--var", &port_var]);
    assert_eq!(deploy().status.code(), Some(0), "first deploy");
    let url = format!("http://127.0.0.1:{port}/");
    wait_for("the port to answer", Duration::from_secs(20), || {
        http_get(&url)
    });

    let deleted = Command::new("nft")
        .args(["delete", "table", "ip", "gantry"])
        .status()
        .expect("run nft");
    assert!(deleted.success(), "nft delete table ip gantry");
    assert_eq!(http_get(&url), None, "without the table nothing answers");

    // The same daemon: an unchanged deploy restores the stack's routes.
    let out = deploy();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        gantry_tests::stdout(&out),
        gantry_tests::stderr(&out)
    );
    let body = wait_for("the port to answer again", Duration::from_secs(20), || {
        http_get(&url)
    });
    assert_eq!(body, (200, "up\n".to_owned()));
}
