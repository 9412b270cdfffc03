//! A weighted canary through the edge switch (`x-gantry.canary`).
//!
//! What: the first new container of a service, once it passes its gate, gets the first step's
//! share of new connections (the old containers share the rest), is watched for `pause`, then
//! gets the next share, up to 100; then the rollout goes on as usual (the old containers drain
//! and go). While a step is watched, the new container's `x-gantry.health` probe runs at its
//! interval and its restarts and exits are counted: `abort.probe_failures` failures or
//! `abort.restarts` restarts abort the canary. `gantry promote STACK` moves to the next step
//! at once; `gantry abort STACK` aborts. An abort sends every new connection back to the old
//! containers, lets the connections open on the canary finish (drained up to its grace period,
//! then its `pre_stop` hooks and stop signal, as a replaced container), removes it and fails the
//! rollout, which rolls the deploy back (exit 2).
//!
//! Design: the shares are nftables `numgen` ranges ([`crate::edge`]); an operator's command
//! arrives through the stack's state ([`crate::ledger::CanaryCommand`]), polled every 200 ms.
//! Each step reached (and each probe failure) is recorded in the stack's state
//! ([`crate::ledger::CanaryState`]: step, pause deadline, counters, containers), so a daemon
//! that stops (SIGTERM, crash, `kill -9`) leaves the canary at its step: the kernel keeps the
//! shares meanwhile, and the next daemon resumes the canary there (`resume.rs`).
//! What is decided is recorded before it is done, and a command is removed only once its
//! effect is recorded: a promote records the next step (and the command's id, so a command
//! file left behind is not acted on twice); an abort, whatever its cause, records `aborted`
//! before the canary leaves the rotation. A daemon stopped in between leaves that record: the
//! next one keeps every new connection on the old version and finishes the abort (the deploy
//! rolls back) instead of resuming the canary.
//!
//! Limits: one canary container (replica 1); a canary needs a published TCP port through the
//! switch. Probe failures counted between the last record and a crash are lost (at most the
//! failures of one probe interval).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::compose::Service;
use crate::compose::xgantry::Canary;
use crate::engine::ContainerInfo;
use crate::ledger::{CanaryCommand, CanaryContainer, CanaryState, unix_ms};

use super::edge::Rotation;
use super::rollout::Rollout;
use super::{DeployError, health};

impl Rollout<'_> {
    /// Runs `canary`'s steps for `new` (ready, not yet in rotation) against the old
    /// containers in `rotation`, from the first step or, resumed by a new daemon, from the step
    /// the stack's canary record holds ([`Rollout::resume`]). Returns once the last step (100)
    /// is reached; on an abort (a recorded one included), the canary is out of rotation and
    /// removed, its record is gone, and the error says why.
    pub(super) async fn canary(
        &self,
        svc: &Service,
        canary: &Canary,
        rotation: &mut Rotation<'_>,
        new: &ContainerInfo,
    ) -> Result<(), DeployError> {
        let resumed = self
            .resume
            .as_ref()
            .filter(|r| r.service == svc.name && r.new.id == new.id);
        // The canary serves real traffic from here on: a failure is a rollback.
        self.applied.with(|a| a.touched_running = true);
        let stack = self.project.name.clone();
        let probe = svc.gantry.health.clone();
        let interval = probe
            .as_ref()
            .map_or(Duration::from_secs(1), |p| p.interval)
            .max(Duration::from_millis(200));
        let ip = new.ip_addresses.values().next().cloned();
        let (first, restarts_at_start) = match resumed {
            // A command given while no daemon ran is for this canary: it is kept.
            Some(r) => (
                r.step.min(canary.steps.len().saturating_sub(1)),
                r.restarts_at_start,
            ),
            None => {
                self.stack.discard_canary_command(); // a stale one from an earlier deploy
                (0, new.state.restart_count.unwrap_or(0))
            }
        };
        let mut record = CanaryState {
            release: self.release.seq,
            service: svc.name.clone(),
            steps: canary.steps.clone(),
            step: first,
            pause_until_ms: 0,
            probe_failures: 0,
            restarts_at_start,
            new: CanaryContainer {
                id: new.id.clone(),
                name: new.name.clone(),
            },
            old: rotation
                .members
                .iter()
                .filter(|(id, _)| **id != new.id)
                .map(|(id, m)| CanaryContainer {
                    id: id.clone(),
                    name: m.container.clone(),
                })
                .collect(),
            jobs: self.applied.with(|a| a.jobs.clone()),
            ready_timeout_ms: u64::try_from(self.req.ready_timeout.as_millis()).unwrap_or(u64::MAX),
            deadline_ms: humantime::parse_rfc3339(&self.release.started_at)
                .map_or(0, |t| unix_ms(t + self.req.timeout)),
            aborted: None,
            command: resumed.and_then(|r| r.command.clone()),
        };
        // An abort decided before the daemon stopped is finished, never resumed.
        if let Some(r) = resumed
            && let Some(reason) = &r.aborted
        {
            let reason = format!("{reason} (decided before the daemon stopped)");
            return Err(self
                .abort_canary(svc, rotation, new, r.step_share(), reason)
                .await);
        }
        for (i, &share) in canary.steps.iter().enumerate().skip(first) {
            // Resumed: the rest of the step's pause and its failures; otherwise a fresh step.
            let (pause, mut failures) = match resumed.filter(|r| r.step == i) {
                Some(r) => (r.pause_left().min(canary.pause), r.probe_failures),
                None => (canary.pause, 0),
            };
            // Recorded before the switch moves: `gantry promote|abort` is taken as soon as the
            // canary gets its share, and a daemon that stops in between restores that share.
            record.step = i;
            record.probe_failures = failures;
            record.pause_until_ms = unix_ms(SystemTime::now() + pause);
            self.save_canary(&record);
            rotation.split(new, share).await?;
            if share >= 100 {
                // An abort taken while the step before ended (`gantry abort` took it: that
                // step was still the one recorded) is acted on; a promote has nothing left.
                if let Some(request) = self.stack.canary_command().filter(|r| !record.acted_on(r)) {
                    if request.command == CanaryCommand::Abort {
                        let reason = "aborted by hand".to_owned();
                        record.command.clone_from(&request.id);
                        record.aborted = Some(reason.clone());
                        if self.save_canary(&record) {
                            self.stack.drop_canary_command(&request);
                        }
                        return Err(self.abort_canary(svc, rotation, new, share, reason).await);
                    }
                    self.stack.drop_canary_command(&request);
                }
                self.progress.step(
                    Some(&svc.name),
                    "canary 100%: every new connection goes to the new version",
                );
                break;
            }
            self.progress.step(
                Some(&svc.name),
                &format!(
                    "canary {share}%: {share}% of new connections to {}, {}watching for {} \
                     (gantry promote {stack} / gantry abort {stack})",
                    new.name,
                    if resumed.is_some_and(|r| r.step == i) {
                        "resumed after a daemon restart, "
                    } else {
                        ""
                    },
                    humantime::format_duration(Duration::from_secs(pause.as_secs()))
                ),
            );
            let t0 = Instant::now();
            let mut next_probe = Instant::now();
            // Only watching from here: a daemon that stops may leave this to the next one.
            let watching = self.activity.watch(&stack);
            // The operator's abort, dropped once the abort is recorded.
            let mut abort_request = None;
            let why = loop {
                match self.stack.canary_command() {
                    // Acted on by a daemon that stopped before removing it.
                    Some(request) if record.acted_on(&request) => {
                        self.stack.drop_canary_command(&request);
                    }
                    Some(request) => {
                        record.command.clone_from(&request.id);
                        if request.command == CanaryCommand::Abort {
                            abort_request = Some(request);
                            break Some("aborted by hand".to_owned());
                        }
                        // The next step is recorded before it is switched to: a daemon that
                        // stops now resumes the canary there.
                        record.step = (i + 1).min(canary.steps.len().saturating_sub(1));
                        record.probe_failures = 0;
                        record.pause_until_ms = unix_ms(SystemTime::now() + canary.pause);
                        if self.save_canary(&record) {
                            self.stack.drop_canary_command(&request);
                        }
                        self.progress
                            .step(Some(&svc.name), &format!("canary {share}%: promoted"));
                        break None;
                    }
                    None => {}
                }
                if t0.elapsed() >= pause {
                    break None;
                }
                if Instant::now() >= next_probe {
                    next_probe = Instant::now() + interval;
                    let live = self.engine.inspect_container(&new.id).await?;
                    let restarts = live
                        .state
                        .restart_count
                        .unwrap_or(0)
                        .saturating_sub(restarts_at_start)
                        + u32::from(!live.state.running);
                    if restarts >= canary.restarts {
                        break Some(format!(
                            "the new container restarted or exited {restarts} time(s) \
                             (abort.restarts: {})",
                            canary.restarts
                        ));
                    }
                    if let Some(p) = &probe
                        && let Err(reason) =
                            health::probe_once(&p.target, ip.as_deref(), p.timeout).await
                    {
                        failures += 1;
                        record.probe_failures = failures;
                        self.save_canary(&record);
                        if failures >= canary.probe_failures {
                            break Some(format!(
                                "its probe failed {failures} time(s) (abort.probe_failures: \
                                 {}), last: {reason}",
                                canary.probe_failures
                            ));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            drop(watching);
            if let Some(reason) = why {
                // Decided: recorded before anything is undone (a command not recorded stays
                // for a new daemon to act on).
                record.aborted = Some(reason.clone());
                if self.save_canary(&record)
                    && let Some(request) = &abort_request
                {
                    self.stack.drop_canary_command(request);
                }
                return Err(self.abort_canary(svc, rotation, new, share, reason).await);
            }
        }
        Ok(())
    }

    /// Undoes a canary whose abort is decided (and recorded): every new connection back to the
    /// old containers, the canary removed, its record and any command dropped. Returns the
    /// error that fails the rollout (a rollback), or the switch's if it could not be changed
    /// (the record then stays: the abort is finished by the rollback or by a new daemon).
    async fn abort_canary(
        &self,
        svc: &Service,
        rotation: &mut Rotation<'_>,
        new: &ContainerInfo,
        share: u8,
        reason: String,
    ) -> DeployError {
        tracing::warn!(stack = %self.project.name, service = %svc.name, container = %new.name, share, reason = %reason, "canary aborted");
        self.progress.step(
            Some(&svc.name),
            &format!(
                "canary aborted at {share}%: {reason}; every new connection back to the old version"
            ),
        );
        if let Err(e) = rotation.leave(&new.id).await {
            return e;
        }
        // Connections open on the canary finish, as on any retired container: drained up to
        // the grace period, then its pre_stop hooks and its stop signal.
        if let Err(e) = self.retire_canary(svc, rotation, new).await {
            tracing::warn!(stack = %self.project.name, service = %svc.name, container = %new.name, error = %e, "aborted canary not stopped gracefully");
        }
        // With the volumes made for it: inherited ones (mounted by name) stay with the old.
        if let Err(e) = self
            .engine
            .remove_container_and_volumes(&new.id, true)
            .await
        {
            tracing::warn!(stack = %self.project.name, service = %svc.name, container = %new.name, error = %e, "aborted canary not removed");
        }
        self.stack.clear_canary();
        if let Some(request) = self.stack.canary_command() {
            // Done with: the canary it was for is gone.
            self.stack.drop_canary_command(&request);
        }
        DeployError::CanaryAborted {
            service: svc.name.clone(),
            share,
            reason,
        }
    }

    /// Lets an aborted canary, already out of rotation, finish its open connections (up to its
    /// grace period), then stops it as a rollout stops a container it replaced.
    async fn retire_canary(
        &self,
        svc: &Service,
        rotation: &Rotation<'_>,
        new: &ContainerInfo,
    ) -> Result<(), DeployError> {
        let live = match self.engine.inspect_container(&new.id).await {
            Ok(live) if live.state.running => live,
            Ok(_) | Err(crate::engine::EngineError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let timeout = super::translate::stop_timeout(svc);
        let waited = rotation.drain(&live, timeout).await;
        if waited >= Duration::from_millis(500) {
            self.progress.step(
                Some(&svc.name),
                &format!("{} drained in {:.1}s", new.name, waited.as_secs_f64()),
            );
        }
        let signal = svc.stop_signal.as_deref();
        let rest = super::rollout::rest_of_grace(timeout, waited);
        super::hooks::pre_stop(
            self.engine,
            self.progress,
            &svc.pre_stop,
            &svc.name,
            &new.id,
            &new.name,
            rest,
        )
        .await;
        self.engine.stop_container(&new.id, signal, rest).await?;
        Ok(())
    }

    /// Records the canary's progress; a failure to write is logged, not fatal (the canary
    /// goes on, it would only not be resumed after a crash). Returns whether it was recorded.
    fn save_canary(&self, record: &CanaryState) -> bool {
        match self.stack.save_canary(record) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(stack = %self.project.name, service = %record.service, container = %record.new.name, error = %e, "canary progress not recorded: a new daemon could not resume it");
                false
            }
        }
    }
}

#[cfg(test)]
#[path = "tests/canary.rs"]
mod tests;
