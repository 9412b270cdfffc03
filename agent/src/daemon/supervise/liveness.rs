//! Probes that keep running after the deploy: liveness (restart after `failures` failures in a
//! row) and readiness (reported to a [`ReadinessSink`]) of every current container whose
//! service has an `x-gantry.health` probe.
//!
//! What: [`run`] scans the supervised stacks every [`SCAN`] and whenever a job finishes; each
//! running, Gantry-managed container of a service with a probe (as its stack's last good
//! release records it) gets one task that probes it at the probe's `interval`
//! ([`crate::deploy::health::probe_once`], body checks included). Each result goes through
//! [`Liveness`]: a change of readiness is logged (`stack`, `service`, `container`, `ready`)
//! and reported to the sink; a liveness failure restarts the container through the
//! supervisor's heal path ([`Cause::Probe`]): same budget, same backoff, same give-up.
//!
//! Design: a stack a deploy holds (a job queued or running, a live `--local` lock) is never
//! restarted: its probes keep reporting readiness, failures do not count towards a restart,
//! and no task starts for its containers until the deploy ends. A container that goes away
//! (removed, or replaced by a deploy) loses its task at the next scan, and, if it was ready, is
//! reported not ready; a stopped one keeps its task, idle, and is reported not ready. A heal
//! runs as its own task, so stopping a probe task never cuts a restart short. The sink is [`NoReadiness`] until someone sets another
//! ([`Supervisor::set_readiness_sink`]).
//!
//! A container already running when its stack's last good release was recorded passed that
//! deploy's gate: its startup deadline is over, and failures count towards liveness at once
//! (without this, one failing right after a deploy was given the whole startup deadline again).
//!
//! Limits: probes run from the host to the container's first network address, like the
//! deploy's; `heal: false` in a stack's policy keeps readiness reporting and turns restarts
//! off. A restarted daemon starts every container's counts afresh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::compose::xgantry::Probe;
use crate::deploy::apply::project_from_release;
use crate::deploy::health::probe_once;
use crate::engine::{EngineError, labels};

use super::decide::{Liveness, started_before};
use super::{Cause, Supervisor};

/// How often the set of probed containers is refreshed.
pub const SCAN: Duration = Duration::from_secs(2);
/// The shortest interval between two probes of one container.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Where readiness changes go (the edge switch takes a replica out of rotation while its
/// probe fails).
pub trait ReadinessSink: Send + Sync {
    fn readiness_changed(&self, stack: &str, service: &str, container_id: &str, ready: bool);
}

/// The default sink: changes are only logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReadiness;

impl ReadinessSink for NoReadiness {
    fn readiness_changed(&self, _: &str, _: &str, _: &str, _: bool) {}
}

/// One container to probe.
#[derive(Debug, Clone)]
struct Want {
    stack: String,
    service: String,
    probe: Probe,
    /// When the stack's last good release was recorded (RFC 3339): a container running since
    /// before it passed its gate.
    recorded_at: Option<String>,
}

/// A running probe task and the readiness it reported last.
pub(super) struct Task {
    want: Want,
    ready: Arc<Mutex<Option<bool>>>,
    handle: JoinHandle<()>,
}

impl Supervisor {
    /// Where readiness changes go from now on.
    pub fn set_readiness_sink(&self, sink: Arc<dyn ReadinessSink>) {
        *self.readiness.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    fn readiness_changed(&self, stack: &str, service: &str, id: &str, name: &str, ready: bool) {
        tracing::info!(stack = %stack, service = %service, container = %name, container_id = %id, ready, "readiness changed");
        let sink = self
            .readiness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        sink.readiness_changed(stack, service, id, ready);
    }
}

/// Runs the probe tasks until dropped (then they stop with it).
pub async fn run(sup: Arc<Supervisor>) {
    let mut tasks: HashMap<String, Task> = HashMap::new();
    let mut finished = sup.jobs.finished();
    let mut tick = tokio::time::interval(SCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cache: HashMap<String, (String, BTreeMap<String, Probe>)> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = finished.changed() => {}
        }
        scan(&sup, &mut tasks, &mut cache).await;
    }
}

/// A task stops with its entry (when its container goes, or when [`run`] is dropped).
impl Drop for Task {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// One scan: start tasks for new containers, stop those of containers gone.
pub(super) async fn scan(
    sup: &Arc<Supervisor>,
    tasks: &mut HashMap<String, Task>,
    cache: &mut HashMap<String, (String, BTreeMap<String, Probe>)>,
) {
    let mut wanted: HashMap<String, Want> = HashMap::new();
    // Stacks whose tasks stay as they are (a deploy holds them, or Docker did not answer).
    let mut kept: HashSet<String> = HashSet::new();
    let stacks = sup.refresh_managed();
    cache.retain(|stack, _| stacks.contains(stack));
    for stack in stacks {
        if sup.paused(&stack) {
            kept.insert(stack);
            continue;
        }
        let Some(release) = sup.last_good(&stack) else {
            continue;
        };
        let fresh = cache.get(&stack).is_none_or(|(id, _)| *id != release.id());
        if fresh {
            let probes = match project_from_release(&release) {
                Ok(p) => p
                    .services
                    .into_iter()
                    .filter_map(|(name, svc)| svc.gantry.health.map(|p| (name, p)))
                    .collect(),
                Err(e) => {
                    tracing::warn!(stack = %stack, error = %e, "cannot read the probes of the stack's release");
                    BTreeMap::new()
                }
            };
            cache.insert(stack.clone(), (release.id(), probes));
        }
        let recorded_at = release.finished_at.clone();
        let probes = &cache[&stack].1;
        if probes.is_empty() {
            continue;
        }
        // Stopped ones too: a container being restarted keeps its task (and its heal).
        let containers = match sup.engine.list_containers(&stack, true).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(stack = %stack, error = %e, "cannot list the stack's containers for its probes");
                kept.insert(stack);
                continue;
            }
        };
        for c in containers {
            if c.oneoff || c.label(labels::GANTRY_HASH).is_none() {
                continue;
            }
            let Some(probe) = c.service.as_ref().and_then(|s| probes.get(s)) else {
                continue;
            };
            wanted.insert(
                c.id.clone(),
                Want {
                    stack: stack.clone(),
                    service: c.service.clone().unwrap_or_default(),
                    probe: probe.clone(),
                    recorded_at: recorded_at.clone(),
                },
            );
        }
    }
    let gone: Vec<String> = tasks
        .iter()
        .filter(|(id, t)| {
            !kept.contains(&t.want.stack)
                && (t.handle.is_finished() || !wanted.contains_key(id.as_str()))
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        let Some(task) = tasks.remove(&id) else {
            continue;
        };
        task.handle.abort();
        let was_ready = *task.ready.lock().unwrap_or_else(|e| e.into_inner()) == Some(true);
        tracing::debug!(stack = %task.want.stack, service = %task.want.service, container_id = %id, "container gone; its probe stops");
        if was_ready {
            sup.readiness_changed(&task.want.stack, &task.want.service, &id, &id, false);
        }
    }
    for (id, want) in wanted {
        if tasks.contains_key(&id) {
            continue;
        }
        let ready = Arc::new(Mutex::new(None));
        let handle = tokio::spawn(probe_container(
            sup.clone(),
            id.clone(),
            want.clone(),
            ready.clone(),
        ));
        tasks.insert(
            id,
            Task {
                want,
                ready,
                handle,
            },
        );
    }
}

/// Probes one container at its interval until it goes away.
async fn probe_container(
    sup: Arc<Supervisor>,
    id: String,
    want: Want,
    ready: Arc<Mutex<Option<bool>>>,
) {
    let Want {
        stack,
        service,
        probe,
        recorded_at,
    } = want;
    let mut live = Liveness::new(&probe, Instant::now());
    // Until the first inspect of the running container tells whether it passed its gate.
    let mut first = true;
    // `interval: 0s` is refused in a compose file, but a release recorded before that check
    // may hold it; here it would spin.
    let interval = probe.interval.max(MIN_INTERVAL);
    loop {
        tokio::time::sleep(interval).await;
        if !live.due(Instant::now()) {
            continue;
        }
        let info = match sup.engine.inspect_container(&id).await {
            Ok(i) => i,
            Err(EngineError::NotFound { .. }) => return,
            Err(e) => {
                tracing::debug!(stack = %stack, container_id = %id, error = %e, "cannot inspect a probed container");
                continue;
            }
        };
        if !info.state.running {
            if let Some(r) = live.down(Instant::now()).ready {
                *ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                sup.readiness_changed(&stack, &service, &id, &info.name, r);
            }
            continue;
        }
        if std::mem::take(&mut first)
            && let (Some(started), Some(recorded)) = (&info.state.started_at, &recorded_at)
            && started_before(started, recorded)
        {
            live.gated();
        }
        let ip = info.ip_addresses.values().next().map(String::as_str);
        let result = probe_once(&probe.target, ip, probe.timeout).await;
        let now = Instant::now();
        let mut step = live.observe(result.is_ok(), now);
        if let Err(reason) = &result {
            tracing::debug!(stack = %stack, service = %service, container = %info.name, failures = live.failures(), reason = %reason, "probe failed");
        }
        if let Some(r) = step.ready {
            *ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            sup.readiness_changed(&stack, &service, &id, &info.name, r);
            if r {
                sup.resume(&info.name, &stack, &service);
            }
        }
        if step.restart && (sup.paused(&stack) || !sup.config.policy(&stack).heal) {
            live.hold();
            step.restart = false;
        }
        if step.restart {
            if let Err(reason) = result.as_ref()
                && !sup.heal_status(&info.name, &id).gave_up
            {
                tracing::warn!(stack = %stack, service = %service, container = %info.name, failures = live.failures(), reason = %reason, "liveness probe failed");
            }
            let cause = Cause::Probe {
                failures: live.failures(),
            };
            // Its own task: a heal is never cut short half-way (its track marked healing).
            let heal = sup.clone().heal(
                id.clone(),
                info.name.clone(),
                stack.clone(),
                service.clone(),
                cause,
            );
            let restarted = tokio::spawn(heal).await.unwrap_or(false);
            if restarted {
                live.restarted(Instant::now());
            } else {
                live.hold();
            }
        }
    }
}
