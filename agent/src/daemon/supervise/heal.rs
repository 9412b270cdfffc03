//! Healing: restarting a container in place, after its backoff, within its restart budget.
//!
//! What: [`Supervisor::heal`] serves both reasons to restart ([`Cause`]): Docker's healthcheck
//! turned `unhealthy` (from the event stream or a resync), or the `x-gantry.health` probe
//! failed `failures` times in a row after the deploy (liveness, [`super::liveness`]). Both
//! share one budget and one backoff per container ([`super::decide::heal_decision`]); when the
//! budget is spent Gantry gives up loudly (error log, `gantry_heal_giveups_total`, `status`).
//!
//! Design: the decision is taken before the backoff, the restart after it, against the
//! container's state then: a stack a deploy holds, a container that stopped, or (for Docker's
//! reason) one healthy again is left alone. Events about the restart are marked as ours, so
//! they count as no death.
//!
//! Limits: a restart is stop then start (the container keeps its id and name); a container
//! that keeps failing after its budget is left running, given up on, until it passes again or
//! is replaced.

use std::sync::Arc;

use tokio::time::Instant;

use crate::engine::HealthStatus;

use super::decide::{HealDecision, heal_decision};
use super::{STOP_TIMEOUT, Supervisor};

/// Why a container is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Docker's healthcheck says `unhealthy`.
    Unhealthy,
    /// The `x-gantry.health` probe failed this many times in a row.
    Probe { failures: u32 },
}

impl Cause {
    /// What keeps happening, for the give-up message.
    fn persists(self) -> &'static str {
        match self {
            Cause::Unhealthy => "stays unhealthy",
            Cause::Probe { .. } => "keeps failing its x-gantry.health probe",
        }
    }

    fn describe(self) -> String {
        match self {
            Cause::Unhealthy => "is unhealthy".into(),
            Cause::Probe { failures } => {
                format!("failed its x-gantry.health probe {failures} times in a row")
            }
        }
    }
}

impl Supervisor {
    /// Restarts a container after its backoff, within its budget; `true` when it did.
    pub(super) async fn heal(
        self: Arc<Self>,
        id: String,
        name: String,
        stack: String,
        service: String,
        cause: Cause,
    ) -> bool {
        let decision = {
            let mut s = self.state();
            let t = self.track(&mut s, &name, &id, &stack, &service);
            let d = heal_decision(t, &self.config.heal, Instant::now());
            (d, t.restarts)
        };
        let wait = match decision {
            (HealDecision::Leave, _) => return false,
            (HealDecision::GiveUp, restarts) => {
                self.save();
                self.metrics.inc(
                    "gantry_heal_giveups_total",
                    &[("stack", &stack), ("service", &service)],
                );
                tracing::error!(
                    stack = %stack,
                    service = %service,
                    container = %name,
                    restarts,
                    budget = self.config.heal.max_restarts,
                    window = %humantime::format_duration(self.config.heal.window),
                    "container {} and its restart budget is spent; giving up (hint: docker logs {name}; gantry status {stack})",
                    cause.persists()
                );
                return false;
            }
            (HealDecision::RestartAfter(wait), _) => wait,
        };
        tokio::time::sleep(wait).await;
        let outcome = self.restart(&id, &name, &stack, &service, cause).await;
        let restarted = {
            let mut s = self.state();
            let t = s.tracks.get_mut(&name);
            let restarted = outcome == Some(true) && t.is_some();
            if let Some(t) = t {
                t.healing = false;
                if restarted {
                    t.budget.take(Instant::now());
                    t.restarts += 1;
                }
            }
            restarted
        };
        if restarted {
            self.save();
        }
        restarted
    }

    /// `Some(true)` when it restarted the container (or tried to and failed).
    async fn restart(
        &self,
        id: &str,
        name: &str,
        stack: &str,
        service: &str,
        cause: Cause,
    ) -> Option<bool> {
        if self.paused(stack) {
            return Some(false);
        }
        let info = self.engine.inspect_container(id).await.ok()?;
        let still = match cause {
            Cause::Unhealthy => info.state.health == Some(HealthStatus::Unhealthy),
            Cause::Probe { .. } => true,
        };
        if !info.state.running || !still {
            return Some(false);
        }
        self.state().ours.insert(id.to_owned(), Instant::now());
        tracing::warn!(stack = %stack, service = %service, container = %name, "container {}; restarting it", cause.describe());
        let result = async {
            self.engine.stop_container(id, None, STOP_TIMEOUT).await?;
            self.engine.start_container(id).await
        }
        .await;
        self.state().ours.insert(id.to_owned(), Instant::now());
        match result {
            Ok(()) => {
                self.metrics.inc(
                    "gantry_heal_restarts_total",
                    &[("stack", stack), ("service", service)],
                );
                tracing::info!(stack = %stack, service = %service, container = %name, "restarted a container that {}", cause.describe());
                Some(true)
            }
            Err(e) => {
                tracing::error!(stack = %stack, service = %service, container = %name, error = %e, "restarting a container that {} failed", cause.describe());
                Some(true)
            }
        }
    }

    /// Supervision resumes for a container it gave up on, now healthy (or passing) again.
    pub(super) fn resume(&self, name: &str, stack: &str, service: &str) {
        let resumed = match self.state().tracks.get_mut(name) {
            Some(t) if t.gave_up => {
                t.gave_up = false;
                true
            }
            _ => false,
        };
        if resumed {
            tracing::info!(stack = %stack, service = %service, container = %name, "container is healthy again; supervision resumes");
            self.save();
        }
    }
}
