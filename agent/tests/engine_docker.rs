//! Integration tests of `engine::DockerEngine` against the real Docker daemon.
//!
//! What: networks and volumes (idempotent ensure), containers with Compose labels, a published
//! loopback port served by busybox httpd, network aliases between containers, healthchecks,
//! stop signals and timeouts, one-shot exit codes, log tails, events, listing by project, image
//! tag/remove, pull failures, and the unreachable-daemon error.
//!
//! Design: every test works under its own project name and a [`Cleanup`] guard that removes the
//! project's containers, networks and volumes when the test ends, passed or panicked. The guard
//! cleans up through a fresh engine on its own thread, since `Drop` cannot await.
//!
//! Limits: needs a running daemon and the local image `gantry-test/busybox:latest` (sh, httpd,
//! wget, nc); `tests/env/up` provides both. Without them the tests fail, they do not skip.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use gantry_agent::ExitCode;
use gantry_agent::engine::labels;
use gantry_agent::engine::{
    ContainerSpec, ContainerStatus, DockerEngine, Engine, EngineError, EventAction, EventFilter,
    HealthStatus, HealthcheckSpec, ImageRef, MountKind, MountSpec, NetworkAttachment, NetworkSpec,
    Object, PublishedPort, PullFailure, RegistryAuth, RestartPolicy, VolumeSpec,
};
use gantry_common::Secret;

const IMAGE: &str = "gantry-test/busybox:latest";

async fn engine() -> DockerEngine {
    let engine = DockerEngine::connect(std::env::var("DOCKER_HOST").ok().as_deref())
        .await
        .unwrap_or_else(|e| {
            panic!("the Docker daemon is needed for these tests: {e}\nrun tests/env/up first")
        });
    let image = ImageRef::from(IMAGE);
    match engine.inspect_image(&image).await {
        Ok(Some(_)) => engine,
        other => panic!("test image {IMAGE} is missing ({other:?}): run tests/env/up first"),
    }
}

/// Removes everything a test created, even when it panics.
struct Cleanup {
    project: String,
    networks: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
}

impl Cleanup {
    fn new(test: &str) -> Self {
        let project = format!("gt-eng-{test}-{}", &labels::oneoff_suffix()[..6]);
        Self {
            project,
            networks: Vec::new(),
            volumes: Vec::new(),
            images: Vec::new(),
        }
    }

    fn network(&mut self, key: &str) -> NetworkSpec {
        let name = labels::scoped_name(&self.project, key);
        self.networks.push(name.clone());
        NetworkSpec {
            name,
            labels: labels::network_labels(&self.project, key),
            ..Default::default()
        }
    }

    fn volume(&mut self, key: &str) -> VolumeSpec {
        let name = labels::scoped_name(&self.project, key);
        self.volumes.push(name.clone());
        VolumeSpec {
            name,
            labels: labels::volume_labels(&self.project, key),
            ..Default::default()
        }
    }

    /// A service container spec: Compose name and labels, the test image, `sh -c script`.
    fn service(&self, service: &str, number: u32, script: &str) -> ContainerSpec {
        ContainerSpec {
            name: labels::container_name(&self.project, service, number),
            image: ImageRef::from(IMAGE),
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
            labels: labels::container_labels(&self.project, service, Some(number)),
            ..Default::default()
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let project = self.project.clone();
        let networks = std::mem::take(&mut self.networks);
        let volumes = std::mem::take(&mut self.volumes);
        let images = std::mem::take(&mut self.images);
        let cleaner = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                let Ok(engine) =
                    DockerEngine::connect(std::env::var("DOCKER_HOST").ok().as_deref()).await
                else {
                    return;
                };
                if let Ok(containers) = engine.list_containers(&project, true).await {
                    for c in containers {
                        let _ = engine.remove_container(&c.id, true).await;
                    }
                }
                for n in &networks {
                    let _ = engine.remove_network(n).await;
                }
                for v in &volumes {
                    let _ = engine.remove_volume(v).await;
                }
                for i in &images {
                    let _ = engine.remove_image(i, true).await;
                }
            });
        });
        let _ = cleaner.join();
    }
}

async fn create_and_start(engine: &DockerEngine, spec: &ContainerSpec) -> String {
    let id = engine
        .create_container(spec)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", spec.name));
    engine
        .start_container(&id)
        .await
        .unwrap_or_else(|e| panic!("start {}: {e}", spec.name));
    id
}

/// Polls `check` every 200 ms until it returns `Some` or `deadline` passes.
async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A plain HTTP/1.0 GET with std's TcpStream; returns the whole response.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[tokio::test]
async fn ensure_network_and_volume_are_idempotent() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new("ensure");
    let net = cleanup.network("default");

    let first = engine.ensure_network(&net).await.expect("create network");
    assert!(first.created);
    let again = engine.ensure_network(&net).await.expect("ensure network");
    assert!(!again.created, "an existing network is kept");
    assert_eq!(again.id, first.id);
    assert_eq!(again.labels.get(labels::PROJECT), Some(&cleanup.project));
    assert_eq!(
        again.labels.get(labels::NETWORK).map(String::as_str),
        Some("default")
    );

    let vol = cleanup.volume("data");
    let first = engine.ensure_volume(&vol).await.expect("create volume");
    assert!(first.created);
    let again = engine.ensure_volume(&vol).await.expect("ensure volume");
    assert!(!again.created, "an existing volume is kept");
    assert_eq!(
        again.labels.get(labels::VOLUME).map(String::as_str),
        Some("data")
    );

    assert!(engine.remove_network(&net.name).await.unwrap());
    assert!(
        !engine.remove_network(&net.name).await.unwrap(),
        "gone already"
    );
    assert!(engine.remove_volume(&vol.name).await.unwrap());
    assert!(
        !engine.remove_volume(&vol.name).await.unwrap(),
        "gone already"
    );
}

#[tokio::test]
async fn web_serves_on_published_port_and_turns_healthy() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new("web");
    let net = cleanup.network("default");
    engine.ensure_network(&net).await.unwrap();
    let vol = cleanup.volume("www");
    engine.ensure_volume(&vol).await.unwrap();

    let port = gantry_tests::free_port();
    let mut web = cleanup.service(
        "web",
        1,
        "echo hello-gantry > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    web.ports = vec![PublishedPort {
        target: 8080,
        host_ip: Some("127.0.0.1".into()),
        host_port: Some(port),
        ..Default::default()
    }];
    web.mounts = vec![MountSpec {
        kind: MountKind::Volume {
            nocopy: false,
            subpath: None,
            labels: Default::default(),
        },
        source: vol.name.clone(),
        target: "/www".into(),
        read_only: false,
    }];
    web.networks = vec![NetworkAttachment {
        network: net.name.clone(),
        aliases: vec!["web".into()],
        ..Default::default()
    }];
    web.healthcheck = Some(HealthcheckSpec {
        test: vec![
            "CMD-SHELL".into(),
            "wget -qO- http://127.0.0.1:8080/ >/dev/null".into(),
        ],
        interval: Some(Duration::from_millis(500)),
        timeout: Some(Duration::from_secs(2)),
        retries: Some(3),
        start_period: None,
        start_interval: None,
    });
    web.restart = RestartPolicy::UnlessStopped;
    let id = create_and_start(&engine, &web).await;

    let health = wait_for("web to turn healthy", Duration::from_secs(30), || async {
        let info = engine.inspect_container(&id).await.unwrap();
        (info.state.health == Some(HealthStatus::Healthy)).then_some(info)
    })
    .await;
    assert!(health.state.running);
    assert!(health.state.started_at.is_some());
    assert!(
        !health.state.health_log.is_empty(),
        "the health log is kept"
    );
    assert_eq!(health.service.as_deref(), Some("web"));
    assert_eq!(health.number, Some(1));
    assert!(!health.oneoff);
    assert_eq!(health.networks, vec![net.name.clone()]);
    assert!(
        health.ip_addresses.contains_key(&net.name),
        "{:?}",
        health.ip_addresses
    );
    let bound = PublishedPort {
        target: 8080,
        host_ip: Some("127.0.0.1".into()),
        host_port: Some(port),
        ..Default::default()
    };
    assert_eq!(health.ports, vec![bound.clone()]);

    let page = wait_for(
        "the page on the published port",
        Duration::from_secs(10),
        || async {
            tokio::task::spawn_blocking(move || http_get(port))
                .await
                .unwrap()
                .ok()
                .filter(|r| r.contains("hello-gantry"))
        },
    )
    .await;
    assert!(page.starts_with("HTTP/1."), "{page}");

    let listed = engine
        .list_containers(&cleanup.project, false)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].name, web.name);
    assert_eq!(listed[0].state.health, Some(HealthStatus::Healthy));
    assert_eq!(listed[0].label(labels::ONEOFF), Some("False"));
    assert_eq!(listed[0].ports, vec![bound]);
    assert_eq!(listed[0].ip_addresses, health.ip_addresses);
}

#[tokio::test]
async fn network_aliases_resolve_between_containers() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new("alias");
    let front = cleanup.network("front");
    let back = cleanup.network("back");
    engine.ensure_network(&front).await.unwrap();
    engine.ensure_network(&back).await.unwrap();

    let mut api = cleanup.service(
        "api",
        1,
        "mkdir -p /www && echo pong > /www/index.html && exec httpd -f -p 8081 -h /www",
    );
    api.networks = vec![NetworkAttachment {
        network: back.name.clone(),
        aliases: vec!["api".into(), "backend".into()],
        ..Default::default()
    }];
    create_and_start(&engine, &api).await;

    // The client joins `front` at create and `back` before start, and calls the alias.
    let mut client = cleanup.service(
        "client",
        1,
        "i=0; while [ $i -lt 50 ]; do wget -qO- http://backend:8081/ && exit 0; i=$((i+1)); sleep 0.2; done; exit 1",
    );
    client.networks = vec![
        NetworkAttachment {
            network: front.name.clone(),
            aliases: vec!["client".into()],
            ..Default::default()
        },
        NetworkAttachment {
            network: back.name.clone(),
            ..Default::default()
        },
    ];
    let id = engine.create_container(&client).await.unwrap();
    let info = engine.inspect_container(&id).await.unwrap();
    assert_eq!(info.networks, {
        let mut n = vec![front.name.clone(), back.name.clone()];
        n.sort();
        n
    });
    engine.start_container(&id).await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(30), engine.wait_container(&id))
        .await
        .expect("client finished")
        .unwrap();
    let logs = engine.logs_tail(&id, 20).await.unwrap();
    assert_eq!(code, 0, "client could not reach api by alias: {logs:?}");
    assert!(logs.iter().any(|l| l == "pong"), "{logs:?}");
}

const TRAP_USR1: &str =
    "trap 'echo got-usr1; exit 42' USR1; echo ready; while :; do sleep 1 & wait $!; done";

#[tokio::test]
async fn stop_honours_the_containers_stop_signal() {
    let engine = engine().await;
    let cleanup = Cleanup::new("stopsig");
    let mut spec = cleanup.service("worker", 1, TRAP_USR1);
    spec.stop_signal = Some("SIGUSR1".into());
    let id = create_and_start(&engine, &spec).await;
    wait_for("trap installed", Duration::from_secs(10), || async {
        let logs = engine.logs_tail(&id, 5).await.unwrap();
        logs.iter().any(|l| l == "ready").then_some(())
    })
    .await;

    engine
        .stop_container(&id, None, Duration::from_secs(20))
        .await
        .unwrap();
    // Exit 42, not 137: stopped by the signal (its trap), not killed at the timeout.
    let info = engine.inspect_container(&id).await.unwrap();
    assert!(!info.state.running);
    assert_eq!(info.state.exit_code, Some(42), "the USR1 trap ran");
    let logs = engine.logs_tail(&id, 5).await.unwrap();
    assert!(logs.iter().any(|l| l == "got-usr1"), "{logs:?}");

    // Stopping a stopped container is a no-op.
    engine
        .stop_container(&id, None, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_with_an_explicit_signal_keeps_the_restart_policy() {
    let engine = engine().await;
    let cleanup = Cleanup::new("stopexp");
    let mut spec = cleanup.service("worker", 1, TRAP_USR1);
    spec.restart = RestartPolicy::Always; // dockerd would restart a merely killed container
    let id = create_and_start(&engine, &spec).await;
    wait_for("trap installed", Duration::from_secs(10), || async {
        let logs = engine.logs_tail(&id, 5).await.unwrap();
        logs.iter().any(|l| l == "ready").then_some(())
    })
    .await;

    engine
        .stop_container(&id, Some("USR1"), Duration::from_secs(20))
        .await
        .unwrap();
    // The stop returns once dockerd has handled the exit (a wait for not-running), which is
    // where it decides on a restart: a container it restarts is `restarting` (then running
    // again) with its restart count up at once; one it leaves is `exited` for good.
    let info = engine.inspect_container(&id).await.unwrap();
    assert_eq!(
        info.state.status,
        ContainerStatus::Exited,
        "not restarted by the restart policy"
    );
    assert!(!info.state.running, "not restarted by the restart policy");
    assert_eq!(info.state.restart_count, Some(0), "never restarted");
    assert_eq!(info.state.exit_code, Some(42), "the USR1 trap ran");
    let policy = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", &id])
        .output()
        .expect("docker inspect");
    assert_eq!(
        String::from_utf8_lossy(&policy.stdout).trim(),
        "always",
        "policy restored"
    );
}

#[tokio::test]
async fn stop_kills_after_the_timeout() {
    let engine = engine().await;
    let cleanup = Cleanup::new("stopto");
    // PID 1 without a TERM handler ignores SIGTERM.
    let spec = cleanup.service("stubborn", 1, "echo ready; while :; do sleep 1; done");
    let id = create_and_start(&engine, &spec).await;
    wait_for("running", Duration::from_secs(10), || async {
        let logs = engine.logs_tail(&id, 5).await.unwrap();
        logs.iter().any(|l| l == "ready").then_some(())
    })
    .await;

    let started = Instant::now();
    engine
        .stop_container(&id, None, Duration::from_secs(2))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "waited the grace period: {took:?}"
    );
    // Exit 137: then killed (SIGKILL).
    let info = engine.inspect_container(&id).await.unwrap();
    assert_eq!(info.state.exit_code, Some(137));
}

#[tokio::test]
async fn wait_returns_the_exit_code_and_logs_tail_the_last_lines() {
    let engine = engine().await;
    let cleanup = Cleanup::new("wait");
    let mut job = cleanup.service(
        "migrate",
        1,
        "i=1; while [ $i -le 10 ]; do echo line-$i; i=$((i+1)); done; sleep 0.3; echo err-line >&2; exit 3",
    );
    job.name = labels::oneoff_container_name(&cleanup.project, "migrate", &labels::oneoff_suffix());
    job.labels = labels::container_labels(&cleanup.project, "migrate", None);
    let id = create_and_start(&engine, &job).await;
    let code = tokio::time::timeout(Duration::from_secs(30), engine.wait_container(&id))
        .await
        .expect("job finished")
        .unwrap();
    assert_eq!(code, 3);
    // Waiting again on an exited container answers at once.
    assert_eq!(engine.wait_container(&id).await.unwrap(), 3);

    // Docker copies stdout and stderr separately: the pause keeps their order deterministic.
    let tail = engine.logs_tail(&id, 3).await.unwrap();
    assert_eq!(tail, vec!["line-9", "line-10", "err-line"]);
    let all = engine.logs_tail(&id, 100).await.unwrap();
    assert_eq!(all.len(), 11);

    let listed = engine
        .list_containers(&cleanup.project, true)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].oneoff);
    assert_eq!(listed[0].number, None);
    assert_eq!(listed[0].state.exit_code, Some(3));
    assert!(
        engine
            .list_containers(&cleanup.project, false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn events_report_start_and_die_of_our_container() {
    let engine = engine().await;
    let cleanup = Cleanup::new("events");
    let filter = EventFilter {
        since: Some(SystemTime::now() - Duration::from_secs(1)),
        ..EventFilter::project(&cleanup.project)
    };
    let mut events = engine.events(&filter);
    let spec = cleanup.service("blip", 1, "sleep 1; exit 5");
    let id = create_and_start(&engine, &spec).await;

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline.into(), events.next()).await {
        let event = event.expect("event stream");
        assert_eq!(event.label(labels::PROJECT), Some(cleanup.project.as_str()));
        if event.id != id {
            continue;
        }
        let done = event.action == EventAction::Die;
        seen.push(event);
        if done {
            break;
        }
    }
    let actions: Vec<&EventAction> = seen.iter().map(|e| &e.action).collect();
    let start = actions.iter().position(|a| **a == EventAction::Start);
    let die = actions.iter().position(|a| **a == EventAction::Die);
    assert!(
        matches!((start, die), (Some(s), Some(d)) if s < d),
        "{actions:?}"
    );
    let die = seen.last().unwrap();
    assert_eq!(die.exit_code(), Some(5));
    assert_eq!(die.name(), Some(spec.name.as_str()));
    assert_eq!(die.label(labels::SERVICE), Some("blip"));
}

#[tokio::test]
async fn list_filters_by_project_and_errors_name_the_object() {
    let engine = engine().await;
    let mine = Cleanup::new("lista");
    let other = Cleanup::new("listb");
    let mut ids = Vec::new();
    for n in [2, 1] {
        let spec = mine.service("svc", n, "sleep 60");
        ids.push(engine.create_container(&spec).await.unwrap());
    }
    engine
        .create_container(&other.service("svc", 1, "sleep 60"))
        .await
        .unwrap();

    let stopped = engine.list_containers(&mine.project, true).await.unwrap();
    let numbers: Vec<Option<u32>> = stopped.iter().map(|c| c.number).collect();
    assert_eq!(
        numbers,
        vec![Some(1), Some(2)],
        "sorted by service and number"
    );
    assert!(
        stopped
            .iter()
            .all(|c| c.project.as_deref() == Some(mine.project.as_str()))
    );
    assert!(
        engine
            .list_containers(&mine.project, false)
            .await
            .unwrap()
            .is_empty(),
        "created, not running"
    );

    // The same name again: a conflict naming the container.
    let dup = mine.service("svc", 1, "true");
    match engine.create_container(&dup).await {
        Err(EngineError::Conflict { object, .. }) => {
            assert_eq!(object, Object::Container(dup.name.clone()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A missing image: not found, naming the image.
    let mut missing = mine.service("svc", 9, "true");
    missing.image = ImageRef::from("gantry-test/does-not-exist:nope");
    match engine.create_container(&missing).await {
        Err(EngineError::NotFound { object }) => {
            assert_eq!(
                object,
                Object::Image("gantry-test/does-not-exist:nope".into())
            );
        }
        other => panic!("expected not found, got {other:?}"),
    }
    match engine.inspect_container("gantry-no-such-container").await {
        Err(e) => assert!(e.is_not_found(), "{e}"),
        Ok(c) => panic!("found {c:?}"),
    }

    // Rename, then remove (idempotent).
    let renamed = format!("{}-old", stopped[0].name);
    engine
        .rename_container(&stopped[0].id, &renamed)
        .await
        .unwrap();
    assert_eq!(
        engine.inspect_container(&stopped[0].id).await.unwrap().name,
        renamed
    );
    assert!(engine.remove_container(&ids[0], false).await.unwrap());
    assert!(!engine.remove_container(&ids[0], false).await.unwrap());
}

#[tokio::test]
async fn images_tag_remove_and_pull_failures() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new("image");
    let base = engine
        .inspect_image(&ImageRef::from(IMAGE))
        .await
        .unwrap()
        .unwrap();
    let tag = ImageRef::from(format!("gantry-test/busybox:{}", cleanup.project));
    cleanup.images.push(tag.to_string());
    engine.tag_image(IMAGE, &tag).await.unwrap();
    let tagged = engine.inspect_image(&tag).await.unwrap().expect("tagged");
    assert_eq!(tagged.id, base.id);
    let listed = engine
        .list_images(Some("gantry-test/busybox"))
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|i| i.id == base.id && i.repo_tags.contains(&tag.to_string())),
        "{listed:?}"
    );
    assert!(engine.remove_image(tag.as_str(), false).await.unwrap());
    assert!(!engine.remove_image(tag.as_str(), false).await.unwrap());
    assert!(engine.inspect_image(&tag).await.unwrap().is_none());
    assert!(
        engine
            .inspect_image(&ImageRef::from(IMAGE))
            .await
            .unwrap()
            .is_some(),
        "the base image keeps its own tag"
    );

    // Nothing listens on port 1: the pull fails naming the registry.
    let unreachable = ImageRef::from("127.0.0.1:1/gantry/none:1");
    match engine.pull_image(&unreachable, None, None, None).await {
        Err(EngineError::Pull {
            registry,
            kind,
            image,
            ..
        }) => {
            assert_eq!(registry, "127.0.0.1:1");
            assert_eq!(image, unreachable.to_string());
            assert_eq!(kind, PullFailure::Unreachable);
        }
        other => panic!("expected a pull error, got {other:?}"),
    }
}

/// `KEY` from the file `tests/env/up` writes (through the gantry-tests helpers).
fn test_env(key: &str) -> String {
    gantry_tests::env().get(key).to_owned()
}

#[tokio::test]
async fn pull_from_a_password_registry() {
    let engine = engine().await;
    let registry = test_env("GANTRY_TEST_REGISTRY");
    let auth = RegistryAuth {
        server_address: registry.clone(),
        username: test_env("GANTRY_TEST_REGISTRY_USER"),
        password: Secret::new(test_env("GANTRY_TEST_REGISTRY_PASSWORD")),
        identity_token: None,
    };
    let image = ImageRef::from(format!("{registry}/gantry-test/busybox:latest"));
    // Leave a reference another test pulled in place; remove only what this test adds.
    let had_tag = engine.inspect_image(&image).await.unwrap().is_some();

    let messages = std::sync::atomic::AtomicUsize::new(0);
    let count = |_: &gantry_agent::engine::PullProgress| {
        messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let pulled = engine
        .pull_image(&image, None, Some(&auth), Some(&count))
        .await
        .unwrap_or_else(|e| panic!("pull with the right password: {e}"));
    assert!(messages.into_inner() > 0, "progress was reported");
    let digest = pulled.digest_for(&image).expect("a registry digest");
    let pinned = image.with_digest(&digest);
    let again = engine
        .pull_image(&pinned, None, Some(&auth), None)
        .await
        .unwrap();
    assert_eq!(again.id, pulled.id, "the digest names the same image");

    let mut wrong = auth.clone();
    wrong.password = Secret::new("wrong-password".to_owned());
    let missing = ImageRef::from(format!("{registry}/gantry-test/busybox:no-such-tag"));
    let cases = [
        (&image, Some(&wrong), PullFailure::Unauthorized),
        (&image, None, PullFailure::Unauthorized),
        (&missing, Some(&auth), PullFailure::NotFound),
    ];
    for (reference, credentials, expected) in cases {
        match engine.pull_image(reference, None, credentials, None).await {
            Err(EngineError::Pull {
                registry: r,
                kind,
                reason,
                ..
            }) => {
                assert_eq!(r, registry);
                assert_eq!(kind, expected, "{reference}: {reason}");
                assert!(!reason.contains(auth.password.expose()), "{reason}");
            }
            other => panic!("{reference}: expected a pull error, got {other:?}"),
        }
    }

    if !had_tag {
        let _ = engine.remove_image(image.as_str(), false).await;
    }
    let _ = engine.remove_image(pinned.as_str(), false).await;
}

#[tokio::test]
async fn unreachable_daemon_is_its_own_error() {
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        let err = DockerEngine::connect_to(host)
            .await
            .expect_err("nothing listens there");
        assert!(err.is_unreachable(), "{host}: {err:?}");
        assert_eq!(err.exit_code(), ExitCode::Unavailable);
        let message = err.to_string();
        assert!(message.contains(host), "{message}");
        assert!(message.contains("hint"), "{message}");
    }
}

/// Set in the child process of [`connect_honours_docker_host`].
const CHILD_MARKER: &str = "GANTRY_ENGINE_TEST_DOCKER_HOST_CHILD";

#[tokio::test]
async fn connect_honours_docker_host() {
    // DOCKER_HOST is process-wide: check it in a child process running only the test below.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "docker_host_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, "1")
        .env("DOCKER_HOST", "unix:///nonexistent-gantry.sock")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "the child test ran:\n{stdout}");
}

/// Runs only as the child of [`connect_honours_docker_host`] (hence ignored in a normal run:
/// outside that child it has nothing to check and fails saying so).
#[tokio::test]
#[ignore = "run by connect_honours_docker_host in a child process with DOCKER_HOST set"]
async fn docker_host_child() {
    assert!(
        std::env::var_os(CHILD_MARKER).is_some(),
        "docker_host_child checks a DOCKER_HOST set by connect_honours_docker_host: run that test"
    );
    let err = DockerEngine::connect(std::env::var("DOCKER_HOST").ok().as_deref())
        .await
        .expect_err("DOCKER_HOST points nowhere");
    assert!(err.is_unreachable(), "{err:?}");
    assert!(
        err.to_string().contains("unix:///nonexistent-gantry.sock"),
        "{err}"
    );
}
