//! The edge switch does not depend on the daemon: `gantryd` is SIGKILLed under steady traffic
//! and in the middle of a rollout (after the switch moved, while the old container drains), and
//! no established connection drops and no request fails; the next daemon converges the switch
//! on the last good release. Lost routes (what a reboot does to nftables) are rebuilt by the
//! next daemon from the running containers. Needs root (CAP_NET_ADMIN) and `nft`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::traffic::{STREAM_CGI, Stream, traffic};
use gantry_tests::{http_get, path_str, wait_for};

const WEB: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    stop_grace_period: 20s
    command:
      - sh
      - -c
      - |
        STREAM_CGI
        echo "version ${VERSION:-1}" > /www/index.html
        exec httpd -f -p 8080 -h /www
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
"#;

fn kill_daemon(d: &mut Daemon) {
    let mut child = d.child.take().expect("the daemon runs");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn sigkill_of_the_daemon_drops_no_connection_and_the_next_converges_the_switch() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let mut d = Daemon::start("", &[]);
    let (stack, file) = d.stack("edged", &WEB.replace("STREAM_CGI", STREAM_CGI));
    let f = path_str(&file).to_owned();
    let port = gantry_tests::free_port();
    let port_var = format!("WEB_PORT={port}");
    let deploy = |d: &Daemon, v: &str| {
        d.command(&["deploy", &stack, "-f", &f, "--var", &port_var, "--var", v])
    };
    assert_eq!(
        deploy(&d, "VERSION=1").output().unwrap().status.code(),
        Some(0)
    );
    let (t, client) = traffic(port);
    wait_for("answers on the port", Duration::from_secs(20), || {
        (t.ok.load(Ordering::Relaxed) > 5).then_some(())
    });

    // 1. Steady traffic, SIGKILL: nothing passes through the daemon.
    let stream = Stream::open(port);
    assert!(stream.flowing(), "the stream flows");
    kill_daemon(&mut d);
    std::thread::sleep(Duration::from_secs(1));
    assert!(stream.flowing(), "the stream outlives the daemon");
    assert_eq!(t.failed.load(Ordering::Relaxed), 0, "no request failed");
    d.spawn();
    d.wait_ready();

    // 2. SIGKILL mid-rollout: once new connections reach version 2 and the old container
    //    drains (the stream holds it for up to its 20 s grace).
    let mut rollout = deploy(&d, "VERSION=2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "version 2 behind the switch",
        Duration::from_secs(60),
        || (*t.last.lock().unwrap() == "version 2").then_some(()),
    );
    kill_daemon(&mut d);
    let _ = rollout.wait();
    assert!(stream.flowing(), "the stream to the old container survives");
    d.spawn();
    d.wait_ready();
    // The next daemon converges on the last good release (version 1), one container.
    let web = format!("{stack}-web-1");
    wait_for(
        "the next daemon to converge on version 1",
        Duration::from_secs(60),
        || {
            (gantry_tests::project_containers(&stack) == std::slice::from_ref(&web)
                && *t.last.lock().unwrap() == "version 1")
                .then_some(())
        },
    );
    assert!(
        stream.flowing(),
        "the stream still flows after the convergence"
    );
    assert_eq!(
        t.failed.load(Ordering::Relaxed),
        0,
        "no request failed through both kills"
    );

    // 3. The table is lost (a reboot clears nftables): the next daemon rebuilds it.
    t.stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    kill_daemon(&mut d);
    // (Only this stack's routes, so that other tests running now keep theirs.)
    gantry_tests::remove_edge_routes(&stack);
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{port}/")),
        None,
        "without the table nothing answers"
    );
    d.spawn();
    d.wait_ready();
    let body = wait_for("the rebuilt switch", Duration::from_secs(20), || {
        http_get(&format!("http://127.0.0.1:{port}/"))
    });
    assert_eq!(body, (200, "version 1\n".to_owned()));
}
