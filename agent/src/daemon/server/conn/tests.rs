//! The socket's slots against the in-memory engine: followers of queued jobs whose clients
//! left give their slots back, short requests are answered while every follower slot is
//! taken, a client that stopped reading is given up on, a half-closed client is not.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::super::Shared;
use super::*;
use crate::compose::StackName;
use crate::daemon::jobs::Jobs;
use crate::daemon::metrics::Metrics;
use crate::daemon::supervise::Supervisor;
use crate::daemon::{DaemonConfig, HealConfig, StackPolicy};
use crate::deploy::Deployer;
use crate::engine::Engine;
use crate::engine::fake::FakeEngine;
use crate::ledger::Ledger;

/// The daemon's shared state over `engine`, configured under `dir`.
fn shared(dir: &Path, engine: Arc<FakeEngine>) -> Arc<Shared> {
    let engine: Arc<dyn Engine> = engine;
    let ledger = Ledger::new(&dir.join("state"));
    let config = Arc::new(DaemonConfig {
        socket: dir.join("sock"),
        socket_group: None,
        socket_group_explicit: false,
        metrics_address: None,
        heal: HealConfig::default(),
        debounce: Duration::from_secs(2),
        resync_interval: Duration::from_secs(3600),
        defaults: StackPolicy::default(),
        stacks: BTreeMap::new(),
        state_dir: dir.join("state"),
        registries: Default::default(),
        environment: BTreeMap::new(),
    });
    let metrics = Arc::new(Metrics::default());
    let jobs = Jobs::new(
        Deployer::new(engine.clone(), ledger.clone()),
        metrics.clone(),
    );
    let supervisor = Supervisor::new(
        config.clone(),
        engine.clone(),
        ledger.clone(),
        jobs.clone(),
        metrics.clone(),
    );
    Arc::new(Shared {
        config,
        engine,
        ledger,
        jobs,
        metrics,
        supervisor,
        started: Instant::now(),
    })
}

fn deploy_request(file: &Path, lock_wait: Duration) -> Request {
    Request::Deploy {
        stack: StackName::parse("app").unwrap(),
        load: api::WireLoad {
            files: vec![file.to_owned()],
            project_name: Some("app".into()),
            ..api::WireLoad::default()
        },
        variables: BTreeMap::new(),
        deploy_id: None,
        lock_wait_ms: api::ms(lock_wait),
        timeout_ms: api::ms(Duration::from_secs(600)),
        ready_timeout_ms: api::ms(Duration::from_secs(60)),
        output: OutputFormat::Text,
    }
}

/// `n` clients following a deploy each, queued behind a running one; each has its `accepted`
/// line.
async fn followers(socket: &Path, file: &Path, n: usize) -> Vec<api::Client> {
    let mut out = Vec::new();
    for n in 0..n {
        let mut c = api::Client::send(socket, &deploy_request(file, Duration::from_secs(600)))
            .await
            .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(2), c.next())
            .await
            .unwrap_or_else(|_| panic!("follower {n} was not accepted"))
            .unwrap();
        assert!(matches!(first, Some(Event::Accepted { .. })), "{first:?}");
        out.push(c);
    }
    out
}

async fn answered_within_a_second(socket: &Path, request: &Request) {
    let events = tokio::time::timeout(Duration::from_secs(1), api::Client::call(socket, request))
        .await
        .unwrap_or_else(|_| panic!("{} was not answered within 1 s", request.op()))
        .unwrap();
    assert!(
        matches!(events.last(), Some(Event::Done { exit_code: 0, .. })),
        "{events:?}"
    );
}

/// CI retries with `--lock-wait` queue deploys behind a running one, then SSM kills their
/// CLIs: every follower slot is taken by a client that is gone. Their slots come back (the
/// jobs stay queued), and `health` / `status` are answered at once all along.
#[tokio::test]
async fn followers_that_left_free_their_slots_and_short_requests_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  web:\n    image: app:1\n").unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    engine.stall_pulls(true);
    let shared = shared(dir.path(), engine.clone());
    let socket = shared.config.socket.clone();
    let listener = UnixListener::bind(&socket).unwrap();
    let accept = tokio::spawn(accept_loop(listener, shared.clone()));

    // A deploy that runs (its pull stalls) and holds the stack.
    let mut running = api::Client::send(&socket, &deploy_request(&file, Duration::ZERO))
        .await
        .unwrap();
    assert!(matches!(
        running.next().await.unwrap(),
        Some(Event::Accepted { .. })
    ));
    while shared.jobs.running("app").is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // With the running deploy's client, every follower slot is taken by a live client:
    // short requests are still answered.
    let clients = followers(&socket, &file, MAX_FOLLOWERS - 1).await;
    answered_within_a_second(&socket, &Request::Health).await;
    let status = Request::Status {
        stack: None,
        output: OutputFormat::Text,
    };
    answered_within_a_second(&socket, &status).await;

    // The CLIs are killed: their slots come back, though their jobs are still queued.
    drop(clients);
    answered_within_a_second(&socket, &Request::Health).await;
    let again = followers(&socket, &file, MAX_FOLLOWERS - 1).await;
    answered_within_a_second(&socket, &status).await;
    assert!(shared.jobs.busy("app"));
    assert!(shared.jobs.running("app").is_some());
    drop((again, running));
    accept.abort();
}

/// A client that stopped reading: a line that does not fit the socket's buffer is given up
/// on after the write timeout, and the client counts as gone.
#[tokio::test(start_paused = true)]
async fn a_client_that_stopped_reading_is_given_up_on() {
    let (server, _client) = UnixStream::pair().unwrap();
    let (_read, mut write) = server.into_split();
    let line = "x".repeat(8 << 20);
    let started = tokio::time::Instant::now();
    let sent = tokio::time::timeout(
        WRITE_TIMEOUT * 4,
        send(&mut write, &Event::Progress { line }),
    )
    .await
    .expect("the write never gave up");
    assert!(!sent);
    assert!(started.elapsed() >= WRITE_TIMEOUT);
}

/// A client that only shut its writing side after its request (socat) is still there; one
/// that closed its connection is gone.
#[tokio::test(start_paused = true)]
async fn a_half_closed_client_is_still_there_a_closed_one_is_gone() {
    let (server, mut client) = UnixStream::pair().unwrap();
    let (read, _write) = server.into_split();
    let mut read = BufReader::new(read);
    client.write_all(b"more\n").await.unwrap();
    client.shutdown().await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(30), client_gone(&mut read)).await;
    assert!(waited.is_err(), "a half-closed client counted as gone");
    drop(client);
    tokio::time::timeout(HALF_CLOSED_POLL * 2, client_gone(&mut read))
        .await
        .expect("a closed client is gone");
}

/// A deploy request whose `deploy_id` is empty or blank (a client other than the CLI, or an
/// older one) is refused as a bad request: nothing is submitted, so no release records an id
/// that every later empty one would match as "already applied".
#[tokio::test]
async fn a_deploy_with_an_empty_id_is_refused_and_not_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  web:\n    image: app:1\n").unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    let shared = shared(dir.path(), engine.clone());
    let socket = shared.config.socket.clone();
    let listener = UnixListener::bind(&socket).unwrap();
    let accept = tokio::spawn(accept_loop(listener, shared.clone()));
    for id in ["", "  "] {
        let mut request = deploy_request(&file, Duration::ZERO);
        if let Request::Deploy { deploy_id, .. } = &mut request {
            *deploy_id = Some(id.into());
        }
        let events = api::Client::call(&socket, &request).await.unwrap();
        let [Event::Error { message, exit_code }] = events.as_slice() else {
            panic!("deploy_id {id:?}: {events:?}");
        };
        assert_eq!(*exit_code, ExitCode::Usage.code(), "{message}");
        assert!(message.contains("deploy id is empty"), "{message}");
        assert!(!shared.jobs.busy("app"));
    }
    let releases = shared.ledger.stack("app").unwrap().releases().unwrap();
    assert!(releases.is_empty(), "{releases:?}");
    accept.abort();
}

/// A request line the daemon cannot take is answered with why (exit 64), never by closing
/// the connection without a word (which the client reports as a daemon gone mid-job): one
/// longer than [`api::MAX_LINE`], one that is not UTF-8.
#[tokio::test]
async fn an_oversized_or_non_utf8_request_is_answered_with_why() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = shared(dir.path(), Arc::new(FakeEngine::new()));
    let socket = shared.config.socket.clone();
    let listener = UnixListener::bind(&socket).unwrap();
    let accept = tokio::spawn(accept_loop(listener, shared.clone()));
    let oversized = vec![b'a'; api::MAX_LINE + 10];
    let not_utf8 = b"{\"op\":\"health\xff\"}\n".to_vec();
    for (bytes, expected) in [
        (oversized, "request larger than 4 MiB"),
        (not_utf8, "bad request"),
    ] {
        let conn = UnixStream::connect(&socket).await.unwrap();
        let (read, mut write) = conn.into_split();
        // The daemon answers once it has read its limit; the rest of a long line may never
        // be read, so the write is not waited for.
        let writer = tokio::spawn(async move {
            let _ = write.write_all(&bytes).await;
            write
        });
        let mut answer = String::new();
        tokio::io::BufReader::new(read)
            .read_line(&mut answer)
            .await
            .unwrap();
        let event: Event = serde_json::from_str(&answer).expect(&answer);
        let Event::Error { message, exit_code } = event else {
            panic!("{answer}");
        };
        assert_eq!(exit_code, ExitCode::Usage.code(), "{message}");
        assert!(message.contains(expected), "{message}");
        writer.abort();
    }
    accept.abort();
}
