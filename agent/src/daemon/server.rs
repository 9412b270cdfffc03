//! The daemon's start-up, socket server and shutdown.
//!
//! Order: ledger readable → Docker answers → edge routes rebuilt from what runs (but a stack a
//! live deploy holds) → socket bound (mode 0660, group) and answering its own health request →
//! `READY=1`. Loops (accept, supervisor, watcher, metrics) are tasks; the
//! watchdog task pings systemd at half of `WATCHDOG_USEC` only while all of them are alive.
//! SIGTERM/SIGINT: stop accepting, let running jobs finish (up to [`DRAIN`]; a job watching a
//! canary step is not waited for: the next daemon resumes it), remove the socket.
//! The socket serves at most 64 connections at once (more wait in its backlog) and disconnects
//! a client that sends no request line within 10 s.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use gantry_common::sdnotify::{Notifier, watchdog_interval};

use super::edge_ready::EdgeReadiness;
use super::supervise::{self, Supervisor};
use crate::ExitCode;
use crate::api::{self, Event, OutputFormat, Request};
use crate::deploy::render::{render_plan, render_report};
use crate::deploy::{self, DeployRequest};
use crate::engine::{DockerEngine, Engine};
use crate::ledger::Ledger;
use crate::ledger::render::releases;

use super::jobs::{Job, JobKind, Jobs, Origin};
use super::metrics::{self, Metrics};
use super::{DaemonConfig, DaemonError, status};

/// How long running jobs may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(120);
/// How long the daemon waits for Docker at start.
const DOCKER_WAIT: Duration = Duration::from_secs(30);

/// Everything a request handler needs.
pub struct Shared {
    pub config: Arc<DaemonConfig>,
    pub engine: Arc<dyn Engine>,
    pub ledger: Ledger,
    pub jobs: Arc<Jobs>,
    pub metrics: Arc<Metrics>,
    pub supervisor: Arc<Supervisor>,
    pub started: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("socket", &self.config.socket)
            .finish_non_exhaustive()
    }
}

pub async fn run(config: Arc<DaemonConfig>) -> Result<(), DaemonError> {
    let notifier = Notifier::from_env();
    let _ = notifier.status("starting: reading the ledger");
    let ledger = Ledger::new(&config.state_dir);
    std::fs::create_dir_all(&config.state_dir).map_err(|e| DaemonError::State {
        dir: config.state_dir.clone(),
        source: Box::new(crate::ledger::LedgerError::Io {
            path: config.state_dir.clone(),
            source: e,
        }),
    })?;
    // Temp files of writers that died (a kill -9 mid-write) can hold env-file values.
    match gantry_common::fsx::remove_leftover_temps(&config.state_dir) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(
                count = removed.len(),
                "removed leftover temp files of the state dir"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot remove leftover temp files"),
    }
    let stacks = ledger.stacks().map_err(|source| DaemonError::State {
        dir: config.state_dir.clone(),
        source: Box::new(source),
    })?;
    let _ = notifier.status("starting: connecting to docker");
    let engine: Arc<dyn Engine> = Arc::new(
        connect_docker(config.environment.get("DOCKER_HOST").map(String::as_str), {
            let allow = config
                .environment
                .get(crate::engine::docker_host::ALLOW_REMOTE_VAR);
            crate::engine::docker_host::allow_remote(allow.map(String::as_str))
        })
        .await?,
    );

    let metrics = Arc::new(Metrics::default());
    let docker_host = config.environment.get("DOCKER_HOST").map(String::as_str);
    let edge = crate::edge::setup(docker_host);
    // Supervision's readiness probes fill it; the deploys and the daemon's syncs read it.
    let unready = crate::edge::Unready::default();
    let deployer = deploy::deployer(engine.clone(), &config.state_dir, config.registries.clone())
        .with_edge(edge.clone())
        .with_unready(unready.clone());
    let jobs = Jobs::new(deployer, metrics.clone());
    let edge_routes = EdgeReadiness::new(
        engine.clone(),
        edge.clone(),
        ledger.clone(),
        jobs.clone(),
        unready,
    );
    // The switch is not persistent (a reboot clears it) and a daemon killed mid-rollout may
    // have left it half-way: it follows what runs, before anything else happens, but for a
    // stack a `--local` deploy holds (its rollout owns the routes). A canary a daemon left at
    // a step keeps its share, and is resumed there by the stack's first job.
    edge_routes.restore(&stacks).await;
    // Before the first job: readiness applies again after each.
    jobs.set_after_job(Arc::new(edge_routes.clone()));
    for stack in &stacks {
        let Some(c) = ledger.stack(stack).ok().and_then(|s| s.canary()) else {
            continue;
        };
        tracing::info!(stack = %stack, service = %c.service, share = c.share(), "a canary was left at a step: resuming it");
        let mut req = DeployRequest::new(stack, crate::compose::LoadOptions::default());
        req.lock_wait = Duration::from_secs(60);
        let job = Job {
            kind: JobKind::ResumeCanary(req),
            origin: Origin::Cli,
        };
        drop(jobs.submit(job, None));
    }
    let supervisor = Supervisor::new(
        config.clone(),
        engine.clone(),
        ledger.clone(),
        jobs.clone(),
        metrics.clone(),
    );
    supervisor.set_readiness_sink(Arc::new(edge_routes.clone()));
    supervisor.set_route_sink(Arc::new(edge_routes));
    let shared = Arc::new(Shared {
        config: config.clone(),
        engine,
        ledger,
        jobs: jobs.clone(),
        metrics: metrics.clone(),
        supervisor: supervisor.clone(),
        started: Instant::now(),
    });

    let listener = bind_socket(&config)?;
    let mut loops: Vec<(&'static str, tokio::task::JoinHandle<()>)> = Vec::new();
    loops.push((
        "accept",
        tokio::spawn(accept_loop(listener, shared.clone())),
    ));
    if let Some(address) = config.metrics_address {
        let l = metrics::bind(address)
            .await
            .map_err(|source| DaemonError::Metrics { address, source })?;
        tracing::info!(address = %address, "metrics listening");
        loops.push(("metrics", tokio::spawn(metrics::serve(l, metrics.clone()))));
    }
    loops.push(("supervise", tokio::spawn(supervisor.clone().run())));
    loops.push((
        "probes",
        tokio::spawn(supervise::liveness::run(supervisor.clone())),
    ));
    loops.push((
        "watch",
        tokio::spawn(supervise::watch::run(supervisor.clone())),
    ));

    // READY only once the socket answers a request end to end.
    match api::Client::call(&config.socket, &Request::Health).await {
        Ok(events) if matches!(events.last(), Some(Event::Done { .. })) => {}
        other => {
            return Err(DaemonError::Socket {
                socket: config.socket.clone(),
                reason: format!("the socket does not answer its own health request: {other:?}"),
                hint: "check the socket directory's permissions",
            });
        }
    }
    let _ = notifier.ready();
    let status_line = format!(
        "ready: {} stack(s), socket {}",
        stacks.len(),
        config.socket.display()
    );
    let _ = notifier.status(&status_line);
    tracing::info!(socket = %config.socket.display(), stacks = stacks.len(), "daemon ready");

    let loops = Arc::new(loops);
    // WATCHDOG=1 at half the period while every loop lives; STATUS= when it changes.
    if notifier.enabled() {
        let watchdog = watchdog_interval();
        let period = watchdog.map_or(Duration::from_secs(5), |p| p / 2);
        let loops = loops.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let notifier = Notifier::from_env();
            let mut tick = tokio::time::interval(period);
            let mut last_status = String::new();
            loop {
                tick.tick().await;
                let s = shared.supervisor.status_line();
                if s != last_status {
                    let _ = notifier.status(&s);
                    last_status = s;
                }
                if watchdog.is_none() {
                    continue;
                }
                if let Some((name, _)) = loops.iter().find(|(_, h)| h.is_finished()) {
                    tracing::error!(
                        task = name,
                        "a daemon loop ended; withholding the watchdog ping"
                    );
                    continue;
                }
                let _ = notifier.watchdog();
            }
        });
    }

    wait_for_signal().await;
    let _ = notifier.stopping();
    tracing::info!("stopping: waiting for running jobs");
    for (_, h) in loops.iter() {
        h.abort();
    }
    let _ = std::fs::remove_file(&config.socket);
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline && stacks_busy(&shared) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!("daemon stopped");
    Ok(())
}

/// Whether a job runs on a stack that is not in a canary (a canary is recorded at each step and
/// resumed by the next daemon: it is not waited for).
fn stacks_busy(shared: &Shared) -> bool {
    // A job that ended but still runs its after-job step has not answered its client yet.
    shared.jobs.finishing()
        || shared.ledger.stacks().unwrap_or_default().iter().any(|s| {
            shared.jobs.busy(s)
                && shared
                    .ledger
                    .stack(s)
                    .ok()
                    .and_then(|l| l.canary())
                    .is_none()
        })
}

/// Connects to Docker at `docker_host` (the `DOCKER_HOST` the daemon was started with).
async fn connect_docker(
    docker_host: Option<&str>,
    allow_remote: bool,
) -> Result<DockerEngine, DaemonError> {
    crate::engine::docker_host::check_docker_host(docker_host, allow_remote).map_err(|e| {
        DaemonError::Docker {
            source: Box::new(e),
        }
    })?;
    let deadline = Instant::now() + DOCKER_WAIT;
    loop {
        let attempt = async {
            let e = DockerEngine::connect(docker_host).await?;
            e.ping().await?;
            Ok::<_, crate::engine::EngineError>(e)
        }
        .await;
        match attempt {
            Ok(e) => return Ok(e),
            Err(source) if Instant::now() >= deadline => {
                return Err(DaemonError::Docker {
                    source: Box::new(source),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "docker is not answering yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Binds the socket: refuses to replace one that answers; mode 0660, group when it exists.
fn bind_socket(config: &DaemonConfig) -> Result<UnixListener, DaemonError> {
    let socket = &config.socket;
    let err = |reason: String, hint: &'static str| DaemonError::Socket {
        socket: socket.clone(),
        reason,
        hint,
    };
    if let Some(dir) = socket.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            err(
                format!("cannot create its directory: {e}"),
                "systemd's RuntimeDirectory=gantry creates /run/gantry",
            )
        })?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(err(
                "another gantry daemon is listening there".into(),
                "stop it first, or give this one another --socket",
            ));
        }
        std::fs::remove_file(socket).map_err(|e| {
            err(
                format!("cannot remove the stale socket: {e}"),
                "remove it by hand",
            )
        })?;
    }
    let listener = UnixListener::bind(socket).map_err(|e| {
        err(
            format!("cannot listen: {e}"),
            "check the directory's permissions",
        )
    })?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| err(format!("cannot set mode 0660: {e}"), "check the filesystem"))?;
    if let Some(group) = &config.socket_group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => {
                nix::unistd::chown(socket, None, Some(g.gid)).map_err(|e| {
                    err(
                        format!("cannot give the socket to group {group}: {e}"),
                        "run the daemon as root, or set daemon.socket_group to a group it is in",
                    )
                })?;
            }
            _ if config.socket_group_explicit => {
                return Err(err(
                    format!("group {group} (daemon.socket_group) does not exist"),
                    "systemd-sysusers creates it from sysusers.d/gantry.conf",
                ));
            }
            _ => {
                tracing::debug!(group = %group, "socket group does not exist; socket stays root-only")
            }
        }
    }
    Ok(listener)
}

/// Connections served at once; more wait in the socket's backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its request line before it is disconnected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((conn, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    handle(conn, shared).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on the daemon socket failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes one event line; false when the client went away.
async fn send(w: &mut tokio::net::unix::OwnedWriteHalf, e: &Event) -> bool {
    let mut line = serde_json::to_vec(e).unwrap_or_default();
    line.push(b'\n');
    w.write_all(&line).await.is_ok()
}

async fn handle(conn: UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = conn.into_split();
    let mut reader = BufReader::new(read).take(api::MAX_LINE as u64);
    let mut line = String::new();
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => serde_json::from_str::<Request>(&line),
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!("a client sent no request within {REQUEST_TIMEOUT:?}: disconnected");
            return;
        }
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            let _ = send(
                &mut write,
                &Event::Error {
                    message: format!(
                        "bad request: {e} (hint: client and daemon must be the same gantry version)"
                    ),
                    exit_code: ExitCode::Usage.code(),
                },
            )
            .await;
            return;
        }
    };
    tracing::debug!(op = request.op(), "request");
    let reply = |stdout: String, code: ExitCode| Event::Done {
        stdout,
        exit_code: code.code(),
    };
    match request {
        Request::Health => {
            let body = serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": shared.started.elapsed().as_secs(),
                "docker_connected": shared.metrics.docker_connected.load(std::sync::atomic::Ordering::Relaxed),
            });
            let _ = send(&mut write, &reply(format!("{body}\n"), ExitCode::Ok)).await;
        }
        Request::Releases { stack, output } => {
            let e = match releases(&shared.ledger, &stack, output) {
                Ok(text) => reply(text, ExitCode::Ok),
                Err((message, code)) => Event::Error {
                    message,
                    exit_code: code.code(),
                },
            };
            let _ = send(&mut write, &e).await;
        }
        Request::Canary { stack, command } => {
            let e = match crate::ledger::CanaryCommand::parse(&command) {
                Some(c) => match crate::ledger::canary_request(&shared.ledger, stack.as_str(), c) {
                    Ok(text) => reply(text, ExitCode::Ok),
                    Err((message, code)) => Event::Error {
                        message,
                        exit_code: code.code(),
                    },
                },
                None => Event::Error {
                    message: format!("unknown canary command {command:?} (promote or abort)"),
                    exit_code: ExitCode::Usage.code(),
                },
            };
            let _ = send(&mut write, &e).await;
        }
        Request::Status { stack, output } => {
            let e = match status::collect(&shared, stack.as_ref()).await {
                Ok(s) => reply(status::render(&s, output), ExitCode::Ok),
                Err((message, code)) => Event::Error {
                    message,
                    exit_code: code.code(),
                },
            };
            let _ = send(&mut write, &e).await;
        }
        Request::Plan {
            stack,
            load,
            output,
        } => {
            let req = DeployRequest::new(&stack, load.into_options());
            let e = match shared.jobs.deployer().plan(&req).await {
                Ok(plan) => reply(render_plan(&plan, output), ExitCode::Ok),
                Err(e) => Event::Error {
                    message: e.to_string(),
                    exit_code: e.exit_code().code(),
                },
            };
            let _ = send(&mut write, &e).await;
        }
        Request::Deploy {
            stack,
            load,
            variables,
            deploy_id,
            lock_wait_ms,
            timeout_ms,
            ready_timeout_ms,
            output,
        } => {
            let mut req = DeployRequest::new(&stack, load.into_options());
            req.variables = variables;
            req.deploy_id = deploy_id;
            req.lock_wait = Duration::from_millis(lock_wait_ms);
            req.timeout = Duration::from_millis(timeout_ms);
            req.ready_timeout = Duration::from_millis(ready_timeout_ms);
            let job = Job {
                kind: JobKind::Deploy(req),
                origin: Origin::Cli,
            };
            follow(&shared, job, output, write).await;
        }
        Request::Rollback {
            stack,
            to,
            lock_wait_ms,
            ready_timeout_ms,
            output,
        } => {
            let mut req = DeployRequest::new(&stack, crate::compose::LoadOptions::default());
            req.lock_wait = Duration::from_millis(lock_wait_ms);
            req.ready_timeout = Duration::from_millis(ready_timeout_ms);
            let job = Job {
                kind: JobKind::Rollback { req, to },
                origin: Origin::Cli,
            };
            follow(&shared, job, output, write).await;
        }
        Request::Down {
            stack,
            volumes,
            lock_wait_ms,
            timeout_ms,
            output,
        } => {
            let mut req = DeployRequest::new(&stack, crate::compose::LoadOptions::default());
            req.lock_wait = Duration::from_millis(lock_wait_ms);
            req.timeout = Duration::from_millis(timeout_ms);
            let job = Job {
                kind: JobKind::Down { req, volumes },
                origin: Origin::Cli,
            };
            follow(&shared, job, output, write).await;
        }
    }
}

/// Submits `job` and streams it to the client; the job goes on if the client goes away.
async fn follow(
    shared: &Shared,
    job: Job,
    output: OutputFormat,
    mut write: tokio::net::unix::OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, handle) = shared.jobs.submit(job, Some(tx));
    let mut connected = send(&mut write, &Event::Accepted { job: id.clone() }).await;
    while let Some(line) = rx.recv().await {
        if connected && !send(&mut write, &Event::Progress { line }).await {
            tracing::info!(job = %id, "client went away; the job goes on");
            connected = false;
        }
    }
    let Ok(report) = handle.await else {
        let _ = send(
            &mut write,
            &Event::Error {
                message: format!("job {id} panicked (hint: journalctl -u gantry)"),
                exit_code: ExitCode::Failed.code(),
            },
        )
        .await;
        return;
    };
    if connected {
        let _ = send(
            &mut write,
            &Event::Done {
                stdout: render_report(&report, output),
                exit_code: report.exit_code().code(),
            },
        )
        .await;
    }
}

/// Whether `path` is a socket a daemon answers on.
pub fn answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}
