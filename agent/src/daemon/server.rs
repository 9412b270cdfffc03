//! The daemon's start-up, socket server and shutdown.
//!
//! Order: ledger readable → Docker answers → edge routes rebuilt from what runs (but a stack a
//! live deploy holds) → socket bound (mode 0660, group) and answering its own health request →
//! `READY=1`. Loops (accept, supervisor, watcher, metrics) are tasks; the
//! watchdog task pings systemd at half of `WATCHDOG_USEC` only while all of them are alive.
//! SIGTERM/SIGINT: stop accepting, start no queued job (they end at once, exit 75: see
//! `Jobs::stop`), begin no heal's restart, let running jobs and restarts under way finish (up
//! to [`DRAIN`]; a job whose only work in flight is a canary watching a step below 100 % is not
//! waited for: the next daemon resumes it; a
//! container a restart cut short left stopped is started by the next daemon), remove the
//! socket.
//! Connections, their slots and timeouts: [`conn`].

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixListener;

use gantry_common::sdnotify::Notifier;

use super::edge_ready::EdgeReadiness;
use super::supervise::{self, Supervisor};
use crate::api::{self, Event, Request};
use crate::deploy::{self, DeployRequest};
use crate::engine::{DockerEngine, Engine};
use crate::ledger::Ledger;

use super::jobs::{Job, JobKind, Jobs, Origin};
use super::metrics::{self, Metrics};
use super::{DaemonConfig, DaemonError};

mod conn;
use conn::accept_loop;

/// How long running jobs may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(120);
/// How long the daemon waits for Docker at start.
const DOCKER_WAIT: Duration = Duration::from_secs(30);
/// How often the notify task looks at the status line when systemd asked for no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(5);

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
        let ping = watchdog_ping_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        let loops = loops.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let status_line = || shared.supervisor.status_line();
            notify_loop(&Notifier::from_env(), ping, &loops, status_line).await;
        });
    }

    wait_for_signal().await;
    jobs.stop();
    // No heal begins a restart from now on; one under way is waited for as a job is.
    shared.supervisor.close();
    let _ = notifier.stopping();
    tracing::info!("stopping: waiting for running jobs");
    for (_, h) in loops.iter() {
        h.abort();
    }
    let _ = std::fs::remove_file(&config.socket);
    let deadline = Instant::now() + DRAIN;
    let busy = |shared: &Shared| stacks_busy(shared) || shared.supervisor.restarting();
    while Instant::now() < deadline && busy(&shared) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if shared.supervisor.restarting() {
        tracing::warn!(
            "a heal's restart is still under way; the next daemon starts its container if it is left stopped"
        );
    }
    tracing::info!("daemon stopped");
    Ok(())
}

/// How often the daemon sends `WATCHDOG=1`: half of the period systemd asked for
/// ([`gantry_common::sdnotify::watchdog_period`]: `WATCHDOG_USEC` and `WATCHDOG_PID` as read
/// from the environment, `None` when unset or not Unicode, and the daemon's own pid).
fn watchdog_ping_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    gantry_common::sdnotify::watchdog_period(usec, pid, own_pid).map(|period| period / 2)
}

/// Where the notify task's messages go: systemd's socket, or a recorder in tests.
trait Notify {
    fn send_status(&self, line: &str);
    fn ping(&self);
}

impl Notify for Notifier {
    fn send_status(&self, line: &str) {
        let _ = self.status(line);
    }

    fn ping(&self) {
        let _ = self.watchdog();
    }
}

/// The notify task, ticking every `ping` ([`STATUS_EVERY`] when `None`): `STATUS=` when
/// `status_line` changed, and, when `ping` is given, `WATCHDOG=1` as long as no task of
/// `loops` has ended (a dead loop stops the pings: systemd restarts the daemon). Never returns.
async fn notify_loop(
    notifier: &impl Notify,
    ping: Option<Duration>,
    loops: &[(&'static str, tokio::task::JoinHandle<()>)],
    status_line: impl Fn() -> String,
) {
    let mut tick = tokio::time::interval(ping.unwrap_or(STATUS_EVERY));
    let mut last_status = String::new();
    loop {
        tick.tick().await;
        let s = status_line();
        if s != last_status {
            notifier.send_status(&s);
            last_status = s;
        }
        if ping.is_none() {
            continue;
        }
        if let Some((name, _)) = loops.iter().find(|(_, h)| h.is_finished()) {
            tracing::error!(
                task = name,
                "a daemon loop ended; withholding the watchdog ping"
            );
            continue;
        }
        notifier.ping();
    }
}

/// Whether a job runs that the stop waits for: any but one whose only work in flight is a
/// canary watching a step below 100 % (recorded at each step and resumed there by the next
/// daemon: a step's pause, minutes long, is not waited for). A canary at 100 % (its old
/// containers draining, the other replicas being replaced) or being aborted, or one beside
/// which another service is being replaced, is waited for as any job.
fn stacks_busy(shared: &Shared) -> bool {
    // A job that ended but still runs its after-job step has not answered its client yet.
    shared.jobs.finishing()
        || shared.ledger.stacks().unwrap_or_default().iter().any(|s| {
            shared.jobs.busy(s) && !left_to_the_next(&shared.ledger, shared.jobs.deployer(), s)
        })
}

/// Whether the job on `stack` may be left to the next daemon at a stop: a canary watches a
/// step below 100 % and nothing else of the deploy is in flight (another service's stop-first
/// replacement or one-off job would be cut half-way).
fn left_to_the_next(ledger: &Ledger, deployer: &deploy::Deployer, stack: &str) -> bool {
    deployer.activity().only_watching(stack)
        && ledger
            .stack(stack)
            .ok()
            .and_then(|l| l.canary())
            .is_some_and(|c| c.watching())
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

/// Whether `path` is a socket a daemon answers on.
pub fn answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

#[cfg(test)]
mod tests;
