//! The socket's connections: one request each, answered, or followed as a job.
//!
//! Slots: at most [`MAX_CONNECTIONS`] connections are read or answered at once (more wait in
//! the socket's backlog); a client that sends no request line within [`REQUEST_TIMEOUT`] is
//! disconnected. A client following a job (deploy, rollback, down) moves to one of
//! [`MAX_FOLLOWERS`] follower slots and gives its connection slot back, so followers (CI jobs
//! queued with `--lock-wait`) never starve short requests (`status`, `health`, `plan`...). A
//! job request that finds every follower slot taken waits for one, but at most
//! `MAX_CONNECTIONS - RESERVE` connections wait so: [`RESERVE`] connection slots always stay
//! for short requests; beyond that the job request is refused (exit 75, nothing submitted).
//!
//! A follower whose client goes away (its connection closed: SSM killed the CLI; or a write
//! that fails or takes longer than [`WRITE_TIMEOUT`]: a client that stopped reading) gives its
//! slot back at once, queue time included; its job goes on and is recorded as usual. A client
//! that only shuts its writing side after the request (socat) is still there until it closes.
//! A job's report counts in `Jobs::finishing` until it has been sent, so a stopping daemon
//! waits for it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::Shared;
use crate::ExitCode;
use crate::api::{self, Event, OutputFormat, Request};
use crate::daemon::jobs::{Job, JobKind, Origin};
use crate::daemon::status;
use crate::deploy::DeployRequest;
use crate::deploy::render::{render_plan, render_report};
use crate::ledger::render::releases;

/// Connections read or answered at once; more wait in the socket's backlog.
pub(super) const MAX_CONNECTIONS: usize = 64;
/// Connection slots a job request waiting for a follower slot can never take.
pub(super) const RESERVE: usize = 8;
/// Clients following a job at once.
pub(super) const MAX_FOLLOWERS: usize = 64;
/// How long a client has to send its request line before it is disconnected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one answer line may take to be written before the client counts as gone.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a client that shut its writing side is checked for having closed.
const HALF_CLOSED_POLL: Duration = Duration::from_secs(1);

/// The socket's slots (see the module's documentation).
#[derive(Debug, Clone)]
struct Slots {
    connections: Arc<Semaphore>,
    followers: Arc<Semaphore>,
    /// Job requests that may hold a connection slot while they wait for a follower slot.
    waiting: Arc<Semaphore>,
}

impl Slots {
    fn new() -> Self {
        Self {
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            followers: Arc::new(Semaphore::new(MAX_FOLLOWERS)),
            waiting: Arc::new(Semaphore::new(MAX_CONNECTIONS - RESERVE)),
        }
    }
}

pub(super) async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let slots = Slots::new();
    loop {
        let Ok(slot) = slots.connections.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((conn, _)) => {
                let shared = shared.clone();
                let slots = slots.clone();
                tokio::spawn(async move { handle(conn, shared, slot, slots).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on the daemon socket failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes one event line within [`WRITE_TIMEOUT`]; false when the client went away or stopped
/// reading.
pub(super) async fn send(w: &mut OwnedWriteHalf, e: &Event) -> bool {
    let mut line = serde_json::to_vec(e).unwrap_or_default();
    line.push(b'\n');
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&line)).await,
        Ok(Ok(()))
    )
}

/// Resolves once the client has gone: its connection closed or broke. Anything it sends after
/// its request is read and ignored. A client that shut only its writing side is still there:
/// a write of nothing fails once it has closed (`EPIPE`), checked every [`HALF_CLOSED_POLL`].
async fn client_gone(read: &mut BufReader<OwnedReadHalf>) {
    let mut buf = [0u8; 512];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    loop {
        let stream: &UnixStream = read.get_ref().as_ref();
        match stream.try_write(&[]) {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return,
            _ => tokio::time::sleep(HALF_CLOSED_POLL).await,
        }
    }
}

async fn handle(conn: UnixStream, shared: Arc<Shared>, slot: OwnedSemaphorePermit, slots: Slots) {
    let (read, mut write) = conn.into_split();
    let mut reader = BufReader::new(read).take(api::MAX_LINE as u64);
    let mut line = Vec::new();
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line))
        .await
    {
        Ok(Ok(0)) => return,
        // Cut at the limit before its end: answered as what it is, not as broken JSON.
        Ok(Ok(n)) if n >= api::MAX_LINE && line.last() != Some(&b'\n') => Err(format!(
            "request larger than {} MiB (the command line sends its environment: unset large \
             variables, or pass values through files)",
            api::MAX_LINE >> 20
        )),
        // serde_json checks the bytes are UTF-8 and names where they are not.
        Ok(Ok(_)) => serde_json::from_slice::<Request>(&line).map_err(|e| {
            format!("bad request: {e} (hint: client and daemon must be the same gantry version)")
        }),
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!("a client sent no request within {REQUEST_TIMEOUT:?}: disconnected");
            return;
        }
    };
    let mut reader = reader.into_inner();
    let request = match request {
        Ok(r) => r,
        Err(message) => {
            let error = Event::Error {
                message,
                exit_code: ExitCode::Usage.code(),
            };
            let _ = send(&mut write, &error).await;
            return;
        }
    };
    tracing::debug!(op = request.op(), "request");
    let reply = |stdout: String, code: ExitCode| Event::Done {
        stdout,
        exit_code: code.code(),
    };
    let (job, output) = match request {
        Request::Health => {
            let body = serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": shared.started.elapsed().as_secs(),
                "docker_connected": shared.metrics.docker_connected.load(std::sync::atomic::Ordering::Relaxed),
            });
            let _ = send(&mut write, &reply(format!("{body}\n"), ExitCode::Ok)).await;
            return;
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
            return;
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
            return;
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
            return;
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
            return;
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
            // An empty id would match every later empty one: "already applied", nothing deployed.
            if let Some(Err(e)) = deploy_id.as_deref().map(api::check_deploy_id) {
                let message = format!("bad request: deploy_id: {e}");
                let exit_code = ExitCode::Usage.code();
                let _ = send(&mut write, &Event::Error { message, exit_code }).await;
                return;
            }
            let mut req = DeployRequest::new(&stack, load.into_options());
            req.variables = variables;
            req.deploy_id = deploy_id;
            req.lock_wait = Duration::from_millis(lock_wait_ms);
            req.timeout = Duration::from_millis(timeout_ms);
            req.ready_timeout = Duration::from_millis(ready_timeout_ms);
            (JobKind::Deploy(req), output)
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
            (JobKind::Rollback { req, to }, output)
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
            (JobKind::Down { req, volumes }, output)
        }
    };
    // A follower's own slot; its connection slot goes back to short requests.
    let follower = match slots.followers.clone().try_acquire_owned() {
        Ok(f) => f,
        Err(_) => {
            let Ok(_waiting) = slots.waiting.clone().try_acquire_owned() else {
                let message = format!(
                    "the daemon follows {MAX_FOLLOWERS} jobs and more wait for a slot: not submitted (hint: try again later; gantry status)"
                );
                let code = ExitCode::TempFail.code();
                let _ = send(
                    &mut write,
                    &Event::Error {
                        message,
                        exit_code: code,
                    },
                )
                .await;
                return;
            };
            tokio::select! {
                f = slots.followers.clone().acquire_owned() => match f {
                    Ok(f) => f,
                    Err(_) => return,
                },
                () = client_gone(&mut reader) => return,
            }
        }
    };
    drop(slot);
    let job = Job {
        kind: job,
        origin: Origin::Cli,
    };
    follow(&shared, job, output, reader, write).await;
    drop(follower);
}

/// Submits `job` and streams it to the client; when the client goes away this returns (its
/// slot is free again) and the job goes on.
async fn follow(
    shared: &Shared,
    job: Job,
    output: OutputFormat,
    mut read: BufReader<OwnedReadHalf>,
    mut write: OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, handle) = shared.jobs.submit_followed(job, tx);
    let gone = |id: &str| tracing::info!(job = %id, "client went away; the job goes on");
    if !send(&mut write, &Event::Accepted { job: id.clone() }).await {
        return gone(&id);
    }
    let ended = {
        let hangup = client_gone(&mut read);
        tokio::pin!(hangup);
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(line) => {
                        if !send(&mut write, &Event::Progress { line }).await {
                            return gone(&id);
                        }
                    }
                    // The job dropped its progress: its report follows.
                    None => break,
                },
                () = &mut hangup => return gone(&id),
            }
        }
        tokio::select! {
            ended = handle => ended,
            () = &mut hangup => return gone(&id),
        }
    };
    let Ok(ended) = ended else {
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
    let done = Event::Done {
        stdout: render_report(&ended.report, output),
        exit_code: ended.report.exit_code().code(),
    };
    if !send(&mut write, &done).await {
        gone(&id);
    }
    // The report went out: a stopping daemon no longer waits for it.
    drop(ended);
}

#[cfg(test)]
mod tests;
