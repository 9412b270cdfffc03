//! The edge switch against the real kernel and Docker: a service on a published host port is
//! replaced start-first behind nftables DNAT, while clients on the host keep calling it.
//!
//! What each test shows: no failed request through a rollout and an open stream that is not
//! cut when the switch moves (it ends only when the old container stops after its drain
//! window); a daemon killed with SIGKILL drops no established connection and the next one
//! restores the switch (also after the table was lost, as on a reboot); a port that another
//! process holds is refused with exit 65; containers reach the port through a host address
//! (Docker's FORWARD chain lets switched flows pass). Needs root (CAP_NET_ADMIN) and `nft`:
//! a prerequisite (CI=true fails without them).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gantry_tests::arch_host::Traffic;
use gantry_tests::stack::Stack;
use gantry_tests::{body_on, docker, env, wait_for};

/// `web` answers `version N` on 8080 and streams `tick` lines from /cgi-bin/stream; it has no
/// drain of its own (the drain is the switch's job here, not the app's), and httpd as PID 1 has
/// no SIGTERM handler, so a stopped container goes at the end of its grace period.
const WEB: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    stop_grace_period: 3s
    command:
      - sh
      - -c
      - |
        mkdir -p /www/cgi-bin && echo "version ${VERSION:-1}" > /www/index.html
        printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\nwhile true; do echo tick; sleep 0.1; done\n' > /www/cgi-bin/stream
        chmod +x /www/cgi-bin/stream
        exec httpd -f -p 8080 -h /www
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
"#;

/// What a stream saw: its `tick` lines, when it read the last one, and when it ended.
struct Flow {
    ticks: usize,
    last_tick: Option<Instant>,
    ended: Instant,
}

/// A long-lived connection reading `tick` lines; returns when it ends.
fn stream(port: u16) -> std::thread::JoinHandle<Flow> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect the stream");
    s.write_all(b"GET /cgi-bin/stream HTTP/1.0\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std::thread::spawn(move || {
        let (mut ticks, mut last_tick) = (0, None);
        for line in BufReader::new(s).lines() {
            match line {
                Ok(l) if l.trim() == "tick" => {
                    ticks += 1;
                    last_tick = Some(Instant::now());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Flow {
            ticks,
            last_tick,
            ended: Instant::now(),
        }
    })
}

#[test]
fn a_published_port_switches_to_the_new_container_without_a_failed_request() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = Stack::with_file(WEB);
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0));
    let port = stack.port;
    wait_for("version 1 on the port", Duration::from_secs(20), || {
        (body_on(port)? == "version 1").then_some(())
    });
    // Docker publishes nothing: the switch owns the port, the container only exposes it.
    let web = format!("{}-web-1", stack.name);
    let bindings = gantry_tests::inspect(&web, "{{json .HostConfig.PortBindings}}");
    assert!(
        bindings == "{}" || bindings == "null",
        "Docker publishes nothing: {bindings}"
    );
    assert_eq!(
        gantry_tests::inspect(&web, "{{index .Config.Labels \"io.gantry.edge\"}}"),
        format!("127.0.0.1:{port}:8080")
    );
    let plan = stack.gantry(&["plan", &stack.name, "-f", stack.file().to_str().unwrap()]);
    assert!(
        gantry_tests::stdout(&plan).contains(&format!("edge switch: 127.0.0.1:{port}->8080/tcp")),
        "plan says which services go through the switch"
    );

    let client = Traffic::every(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_millis(10),
    );
    let mut streams = Vec::new();
    for v in 2..=4 {
        let open = stream(port);
        let t = Instant::now();
        let deploy = stack.spawn_deploy(&["--var", &format!("VERSION={v}")]);
        // The switch moved between `before_switch`, when the last request the old version
        // answered was sent (a connection goes where the rules sent its first packet), and
        // `switched`, when the first one version v answered came back.
        let want = format!("version {v}");
        let mut before_switch = t;
        let switched = loop {
            let sent = Instant::now();
            match body_on(port) {
                Some(answer) if answer == want => break Instant::now(),
                Some(_) => before_switch = sent,
                None => {}
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{want} never answered"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = deploy.wait_with_output().unwrap();
        eprintln!(
            "{}{}",
            gantry_tests::stdout(&out),
            gantry_tests::stderr(&out)
        );
        assert_eq!(out.status.code(), Some(0));
        streams.push((open, before_switch, switched, t.elapsed()));
        assert_eq!(body_on(port).as_deref(), Some(want.as_str()));
    }
    std::thread::sleep(Duration::from_millis(200));
    let seen = client.finish();
    let (total, failed, gap) = (seen.ok + seen.failed, seen.failed, seen.longest_gap);
    eprintln!(
        "edge switch, 3 deploys: {total} requests, {failed} failed, longest gap {} ms",
        gap.as_millis()
    );
    assert_eq!(failed, 0, "no request failed while the port switched");
    for (i, (open, before_switch, switched, deploy_took)) in streams.into_iter().enumerate() {
        let flow = open.join().unwrap();
        let after_switch = flow.ended.saturating_duration_since(before_switch);
        eprintln!(
            "stream {i}: {} ticks, ended {} ms after the switch (its deploy took {} ms)",
            flow.ticks,
            after_switch.as_millis(),
            deploy_took.as_millis()
        );
        // Open before the switch, it kept flowing once new connections moved (a tick read
        // after version v answered: by order), instead of ending when they did...
        assert!(
            flow.last_tick.is_some_and(|at| at > switched),
            "stream {i} stopped flowing when the switch moved ({} ticks)",
            flow.ticks
        );
        // ... and through the drain window (3 s grace), a duration: a lower bound, timed
        // from before the switch moved (not from its opening: a stream cut at the switch
        // fails however long the deploy took to get there), which a real clock cannot reach
        // early.
        assert!(
            after_switch >= Duration::from_millis(2800),
            "the stream was cut {} ms after the switch ({} ticks): it must last the drain \
             window",
            after_switch.as_millis(),
            flow.ticks
        );
    }
}

#[test]
fn a_service_that_leaves_the_switch_leaves_no_route_behind() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = Stack::with_file(WEB);
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let port = stack.port;
    let chain = format!("g/{}/web", stack.name);
    let routed = || {
        std::process::Command::new("nft")
            .args(["list", "chain", "ip", "gantry", &chain])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(routed(), "the switch routes the port");
    // The same service with `edge: false`: Docker publishes the port again.
    let off = WEB.replace(
        "    stop_grace_period: 3s\n",
        "    stop_grace_period: 3s\n    x-gantry: {edge: false}\n",
    );
    stack.write(&off);
    let out = stack.deploy(&["--var", "VERSION=2"]);
    assert_eq!(out.status.code(), Some(0), "{}", gantry_tests::stderr(&out));
    assert!(!routed(), "{chain} is left behind");
    wait_for(
        "version 2 through Docker's port",
        Duration::from_secs(20),
        || (body_on(port)? == "version 2").then_some(()),
    );
}

#[test]
fn two_stacks_deploying_one_port_at_once_get_it_once() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    // Both find the port free before they start anything; only one may route it.
    let a = Stack::with_file(WEB);
    let mut b = Stack::with_file(WEB);
    b.port = a.port;
    let port = a.port;
    let da = a.spawn_deploy(&["--var", "VERSION=a"]);
    let db = b.spawn_deploy(&["--var", "VERSION=b"]);
    let (oa, ob) = (
        da.wait_with_output().unwrap(),
        db.wait_with_output().unwrap(),
    );
    let mut codes = [oa.status.code(), ob.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(65)],
        "one gets the port, the other is refused:\n{}\n{}",
        String::from_utf8_lossy(&oa.stdout),
        String::from_utf8_lossy(&ob.stdout)
    );
    let (winner, loser) = if oa.status.code() == Some(0) {
        ("a", &ob)
    } else {
        ("b", &oa)
    };
    let said = String::from_utf8_lossy(&loser.stdout).into_owned()
        + &String::from_utf8_lossy(&loser.stderr);
    assert!(said.contains("taken"), "{said}");
    wait_for("the winner's page", Duration::from_secs(20), || {
        (body_on(port)? == format!("version {winner}")).then_some(())
    });
}

#[test]
fn a_port_held_by_another_process_is_refused_with_exit_65() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let mut stack = Stack::with_file(WEB);
    stack.port = port;
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(65), "a port taken is bad input");
    let err = gantry_tests::stderr(&out) + &gantry_tests::stdout(&out);
    // The `ports:` entry asking for it (its key, as every exit 65 names one), the address and
    // the holder.
    assert!(
        err.contains(&format!(
            "services.web.ports[0]: port 127.0.0.1:{port} is taken by another process"
        )),
        "the error names the ports entry, the port and the holder: {err}"
    );
    assert!(
        String::from_utf8_lossy(
            &docker(&["ps", "-aq", "--filter", &format!("name={}-web", stack.name)]).stdout
        )
        .trim()
        .is_empty(),
        "nothing was started"
    );
}

#[test]
fn containers_reach_a_port_published_on_every_address() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = Stack::with_file(&WEB.replace("127.0.0.1:${WEB_PORT}:8080", "${WEB_PORT}:8080"));
    let out = stack.deploy(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        gantry_tests::stdout(&out),
        gantry_tests::stderr(&out)
    );
    let port = stack.port;
    wait_for("version 1 on 127.0.0.1", Duration::from_secs(20), || {
        (body_on(port)? == "version 1").then_some(())
    });
    // A container on Docker's default bridge calls the host's address on that bridge: the
    // flow is DNATed in prerouting and forwarded to another bridge, through Docker's FORWARD
    // chain (which drops what Docker did not publish).
    let mut gateway = gantry_tests::inspect("bridge", "{{(index .IPAM.Config 0).Gateway}}");
    if gateway.is_empty() {
        // Docker leaves the gateway out of IPAM when it chose it itself: the address of the
        // bridge's interface.
        let bridge = gantry_tests::inspect(
            "bridge",
            r#"{{index .Options "com.docker.network.bridge.name"}}"#,
        );
        let out = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", &bridge])
            .output()
            .expect("run ip");
        gateway = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_owned();
    }
    assert!(!gateway.is_empty(), "the default bridge has a gateway");
    let out = docker(&[
        "run",
        "--rm",
        env().get("GANTRY_TEST_IMAGE"),
        "timeout",
        "10",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{gateway}:{port}/"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "version 1",
        "a container reaches the switched port: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
