//! The daemon's side of the edge switch: it rebuilds a stack's routes from what runs when the
//! daemon starts, when a container behind the switch moves, when readiness changes, and after
//! each job, never while a deploy holds the stack.
//!
//! What: [`EdgeReadiness`] keeps the set of containers whose `x-gantry.health` probe fails now
//! (supervision reports each change: [`ReadinessSink`]) and rebuilds a stack's routes without
//! them ([`sync_edge_except`]; [`sync_edge_canary`] while a canary is recorded):
//! - at start-up, every stack ([`EdgeReadiness::restore`]): the switch is not persistent;
//! - on a readiness change of one of its containers;
//! - when one of its containers behind the switch starts or dies ([`RouteSink`]): Docker may
//!   give a restarted container another address, and the DNAT would keep the old one; or when
//!   a resync finds its containers' addresses changed since the last sync (a missed event), or
//!   some of them not ready (a deploy in another process put them back);
//! - after each job on it ([`AfterJob`], before the job's report goes back): a canary's end,
//!   or containers a job removed, change what it routes.
//!
//! Design: a sync holds, for its whole length, the stack's turn between the daemon's jobs
//! ([`Jobs::between_jobs`]: a job that arrives meanwhile waits for it) and the stack's ledger
//! lock (`try_lock`, so a `gantry --local` deploy in another process excludes it and is
//! excluded). A stack either holds is left as it is: its deploy owns the routes and syncs at
//! its end (a daemon job's end comes back here; a sync another process's deploy kept out
//! tries again every [`HELD_RETRY`] until it has ended). Supervision does not count this lock as a deploy's
//! ([`super::supervise::routes::is_edge_sync`]). Requests are gathered per stack: one sync at
//! a time, and one scheduled sync takes every request made before it starts (container moves
//! wait [`MOVED_DEBOUNCE`], so a crash and its restart make one sync). A sync that fails is
//! tried again at the next resync (what it saw is only kept when it succeeds).
//!
//! Limits: a service whose containers all fail keeps them all in rotation (and supervision
//! restarts them). The set lives in memory: a new daemon starts with every container ready
//! until its probes say otherwise. The daemon's own deploys read the same set ([`Unready`]: their
//! rollouts and end syncs leave those replicas out); after a `gantry --local` deploy (another
//! process, which cannot see it) a replica that is not ready is in rotation until the daemon
//! syncs again (within [`HELD_RETRY`] of its end when the daemon tried during it, else at the
//! next resync). A canary's routes keep every running
//! container, ready or not. A deploy that arrives during a sync (milliseconds) waits for it
//! whatever its `--lock-wait` (the sync's lock holder is [`crate::ledger::Holder::brief`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::deploy::{DeployError, sync_edge_canary, sync_edge_except};
use crate::edge::{self, Edge, Unready};
use crate::engine::{ContainerInfo, Engine, EngineError};
use crate::ledger::{Holder, Ledger, LedgerError};

use super::jobs::{AfterJob, Jobs};
use super::supervise::routes::edge_sync_holder;
use super::supervise::{ReadinessSink, RouteSink};

/// How long the moves of a stack's containers are gathered before its routes are rebuilt.
pub const MOVED_DEBOUNCE: Duration = Duration::from_millis(250);

/// How often a sync that another process's deploy kept out tries again (a `try_lock`).
pub const HELD_RETRY: Duration = Duration::from_secs(1);

/// Why a stack's routes are rebuilt (the log's `reasons`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A container's readiness changed.
    Readiness,
    /// A container behind the switch started or died.
    Moved,
    /// A resync found the addresses changed, or containers not ready.
    Listed,
    /// A job on the stack ended.
    JobEnded,
    /// Another process's deploy held the stack at the last try.
    Held,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Readiness => "readiness",
            Self::Moved => "moved",
            Self::Listed => "listed",
            Self::JobEnded => "job_ended",
            Self::Held => "held",
        }
    }
}

/// Why a stack's routes were not rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("stack {stack}: a daemon job holds it; its end rebuilds the routes")]
    JobHolds { stack: String },
    #[error("stack {stack} is held by {holder}; its routes are left to it")]
    Held { stack: String, holder: Holder },
    #[error("stack {stack}: {source}")]
    Ledger {
        stack: String,
        #[source]
        source: LedgerError,
    },
    #[error("stack {stack}: cannot list its containers: {source}")]
    Engine {
        stack: String,
        #[source]
        source: EngineError,
    },
    #[error("stack {stack}: {source}")]
    Deploy {
        stack: String,
        #[source]
        source: DeployError,
    },
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// The services routed.
    pub services: Vec<String>,
    /// Running containers (names) left out as not ready.
    pub unready: Vec<String>,
}

/// What a sync saw behind the switch: container id → (name, network → address).
type Seen = BTreeMap<String, (String, BTreeMap<String, String>)>;

#[derive(Debug, Default)]
struct State {
    /// Per stack, what its last sync saw.
    seen: HashMap<String, Seen>,
    /// Stacks with a sync scheduled that has not started, and why.
    scheduled: HashMap<String, BTreeSet<Reason>>,
    /// Per stack, held by its sync in progress.
    serial: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

struct Inner {
    engine: Arc<dyn Engine>,
    edge: Arc<dyn Edge>,
    ledger: Ledger,
    jobs: Arc<Jobs>,
    /// The containers whose readiness probe fails now, shared with the daemon's deployer.
    unready: Unready,
    state: Mutex<State>,
}

/// Keeps the edge switch in line with what runs and what is ready. Cheap to clone.
#[derive(Clone)]
pub struct EdgeReadiness(Arc<Inner>);

impl std::fmt::Debug for EdgeReadiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeReadiness")
            .field("edge", &self.0.edge)
            .finish_non_exhaustive()
    }
}

impl EdgeReadiness {
    pub fn new(
        engine: Arc<dyn Engine>,
        edge: Arc<dyn Edge>,
        ledger: Ledger,
        jobs: Arc<Jobs>,
        unready: Unready,
    ) -> Self {
        Self(Arc::new(Inner {
            engine,
            edge,
            ledger,
            jobs,
            unready,
            state: Mutex::default(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The containers (ids) of `stack` not ready now.
    pub fn unready(&self, stack: &str) -> BTreeSet<String> {
        self.0.unready.of(stack)
    }

    /// At start-up: rebuilds the routes of `stacks` from what runs (the switch is not
    /// persistent, and a daemon killed mid-rollout may have left it half-way), leaving alone a
    /// stack whose lock a live process holds (a `--local` deploy mid-rollout owns its routes).
    pub async fn restore(&self, stacks: &[String]) {
        for stack in stacks {
            match self.sync(stack).await {
                Ok(s) if !s.services.is_empty() => {
                    tracing::info!(stack = %stack, services = %s.services.join(","), "edge routes restored");
                }
                Ok(_) => {}
                Err(SyncError::Held { holder, .. }) => {
                    tracing::info!(stack = %stack, holder = %holder, "edge routes left as they are: a deploy holds the stack");
                    self.request(stack, Reason::Held, HELD_RETRY);
                }
                Err(e) => tracing::warn!(stack = %stack, error = %e, "edge routes not restored"),
            }
        }
    }

    /// Schedules a sync of `stack` in `delay`: a sync already scheduled and not started takes
    /// this request too.
    pub fn request(&self, stack: &str, reason: Reason, delay: Duration) {
        if self.0.edge.available().is_err() {
            return;
        }
        {
            let mut s = self.state();
            let first = !s.scheduled.contains_key(stack);
            s.scheduled
                .entry(stack.to_owned())
                .or_default()
                .insert(reason);
            if !first {
                return;
            }
        }
        let (this, stack) = (self.clone(), stack.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let serial = this.serial(&stack);
            let _one = serial.lock().await;
            // From here on a request schedules another sync: this one may have read too early.
            let reasons = this.state().scheduled.remove(&stack).unwrap_or_default();
            this.sync_logged(&stack, &reasons).await;
        });
    }

    /// [`Self::sync_serial`], logged with `reasons`.
    async fn sync_logged(&self, stack: &str, reasons: &BTreeSet<Reason>) {
        let reasons_str = reasons
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",");
        match self.sync_serial(stack).await {
            Ok(s) if reasons.contains(&Reason::Readiness) => tracing::info!(
                stack = %stack,
                reasons = %reasons_str,
                services = %s.services.join(","),
                unready = %s.unready.join(","),
                "edge: rotation follows readiness"
            ),
            Ok(s) => tracing::info!(
                stack = %stack,
                reasons = %reasons_str,
                services = %s.services.join(","),
                unready = %s.unready.join(","),
                "edge: routes follow the containers"
            ),
            Err(SyncError::JobHolds { .. }) => {
                tracing::debug!(
                    stack = %stack,
                    reasons = %reasons_str,
                    "edge: a job holds the stack; its end rebuilds the routes"
                );
                // Not a job (a heal holds the stack's turn): nothing syncs at its end, so try
                // again until it is done.
                if !self.0.jobs.busy(stack) {
                    self.request(stack, Reason::Held, HELD_RETRY);
                }
            }
            Err(SyncError::Held { holder, .. }) => {
                // Its end is synced as soon as it lets go (it cannot see the probes).
                if !reasons.contains(&Reason::Held) {
                    tracing::info!(
                        stack = %stack,
                        reasons = %reasons_str,
                        holder = %holder,
                        "edge: a deploy holds the stack; its routes are left to it until it ends"
                    );
                }
                self.request(stack, Reason::Held, HELD_RETRY);
            }
            Err(e) => tracing::warn!(
                stack = %stack,
                reasons = %reasons_str,
                error = %e,
                "edge: routes not updated"
            ),
        }
    }

    fn serial(&self, stack: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.state()
            .serial
            .entry(stack.to_owned())
            .or_default()
            .clone()
    }

    /// Rebuilds `stack`'s routes now, after any sync of it in progress: without its containers
    /// that are not ready, or with the canary's share when one is recorded. Refused while a
    /// daemon job or another process holds the stack.
    pub async fn sync(&self, stack: &str) -> Result<Synced, SyncError> {
        let serial = self.serial(stack);
        let _one = serial.lock().await;
        self.sync_serial(stack).await
    }

    async fn sync_serial(&self, stack: &str) -> Result<Synced, SyncError> {
        let Inner {
            engine,
            edge,
            ledger,
            jobs,
            ..
        } = self.0.as_ref();
        if edge.available().is_err() {
            return Ok(Synced::default());
        }
        let job_holds = || SyncError::JobHolds {
            stack: stack.to_owned(),
        };
        if jobs.busy(stack) {
            return Err(job_holds());
        }
        // Both held to the end: no job starts and no other process deploys meanwhile.
        let _turn = jobs.between_jobs(stack).ok_or_else(job_holds)?;
        let ledger = ledger.stack(stack).map_err(|source| SyncError::Ledger {
            stack: stack.to_owned(),
            source,
        })?;
        let _lock = match ledger.try_lock(&edge_sync_holder(stack)) {
            Ok(lock) => Some(lock),
            Err(LedgerError::LockBusy { holder, .. }) => {
                return Err(SyncError::Held {
                    stack: stack.to_owned(),
                    holder,
                });
            }
            // The lock cannot be written (the state dir full or read-only): nobody can deploy
            // the stack then, and its routes still follow its containers (after a reboot
            // too), without it.
            Err(e) => {
                tracing::warn!(stack, error = %e, "edge sync without the stack's lock");
                None
            }
        };
        let containers = engine
            .list_containers(stack, true)
            .await
            .map_err(|source| SyncError::Engine {
                stack: stack.to_owned(),
                source,
            })?;
        let unready = self
            .0
            .unready
            .retain(stack, |id| containers.iter().any(|c| c.id == id));
        let routed = match ledger.canary() {
            Some(canary) => sync_edge_canary(engine.as_ref(), edge.as_ref(), stack, &canary).await,
            None => sync_edge_except(engine.as_ref(), edge.as_ref(), stack, &unready).await,
        };
        let services = routed.map_err(|source| SyncError::Deploy {
            stack: stack.to_owned(),
            source,
        })?;
        self.state()
            .seen
            .insert(stack.to_owned(), seen(&containers));
        let unready = containers
            .iter()
            .filter(|c| c.state.running && unready.contains(&c.id))
            .map(|c| c.name.clone())
            .collect();
        Ok(Synced { services, unready })
    }
}

/// The running containers behind the switch, with their names and addresses.
fn seen(containers: &[ContainerInfo]) -> Seen {
    containers
        .iter()
        .filter(|c| c.state.running && !c.oneoff && c.labels.contains_key(edge::LABEL))
        .map(|c| (c.id.clone(), (c.name.clone(), c.ip_addresses.clone())))
        .collect()
}

impl ReadinessSink for EdgeReadiness {
    fn readiness_changed(&self, stack: &str, _service: &str, container_id: &str, ready: bool) {
        if self.0.edge.available().is_err() {
            return;
        }
        if self.0.unready.set(stack, container_id, ready) {
            self.request(stack, Reason::Readiness, Duration::ZERO);
        }
    }
}

/// After each job on a stack: its routes again, without the containers not ready (the
/// deploy's own end sync put them back). A job already queued takes the stack first: its own
/// end comes back here.
#[async_trait::async_trait]
impl AfterJob for EdgeReadiness {
    async fn job_ended(&self, stack: &str) {
        if self.0.edge.available().is_err() {
            return;
        }
        let serial = self.serial(stack);
        let _one = serial.lock().await;
        self.sync_logged(stack, &BTreeSet::from([Reason::JobEnded]))
            .await;
    }
}

impl RouteSink for EdgeReadiness {
    fn container_moved(&self, stack: &str, service: &str, container: &str) {
        tracing::debug!(stack = %stack, service = %service, container = %container, "edge: a container behind the switch started or stopped");
        self.request(stack, Reason::Moved, MOVED_DEBOUNCE);
    }

    fn stack_listed(&self, stack: &str, containers: &[ContainerInfo]) {
        let stale = {
            let s = self.state();
            s.seen.get(stack) != Some(&seen(containers)) || self.0.unready.any(stack)
        };
        if stale {
            self.request(stack, Reason::Listed, Duration::ZERO);
        }
    }

    fn leave<'a>(&'a self, stack: &'a str, container: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // The caller (a heal) holds the stack: no lock taken here. A canary's shares are
            // the canary's to change.
            if self
                .0
                .ledger
                .stack(stack)
                .ok()
                .and_then(|l| l.canary())
                .is_some()
            {
                return;
            }
            let mut out = self.0.unready.of(stack);
            out.insert(container.to_owned());
            let (engine, edge) = (self.0.engine.as_ref(), self.0.edge.as_ref());
            match sync_edge_except(engine, edge, stack, &out).await {
                Ok(_) => tracing::info!(
                    stack,
                    container,
                    "edge: out of rotation before a heal's stop"
                ),
                Err(e) => {
                    tracing::warn!(stack, container, error = %e, "edge: could not take a container out of rotation before a heal's stop")
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
