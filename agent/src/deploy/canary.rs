//! A weighted canary through the edge switch (`x-gantry.canary`).
//!
//! What: the first new container of a service, once it passes its gate, gets the first step's
//! share of new connections (the old containers share the rest), is watched for `pause`, then
//! gets the next share, up to 100; then the rollout goes on as usual (the old containers drain
//! and go). While a step is watched, the new container's `x-gantry.health` probe runs at its
//! interval and its restarts and exits are counted: `abort.probe_failures` failures or
//! `abort.restarts` restarts abort the canary. `gantry promote STACK` moves to the next step
//! at once; `gantry abort STACK` aborts. An abort sends every new connection back to the old
//! containers (connections open on the canary finish), removes the canary and fails the rollout,
//! which rolls the deploy back (exit 2).
//!
//! Design: the shares are nftables `numgen` ranges ([`crate::edge`]); an operator's command
//! arrives through the stack's state ([`crate::ledger::CanaryCommand`]), polled every 200 ms.
//!
//! Limits: one canary container (replica 1); a canary needs a published TCP port through the
//! switch. A daemon that dies during a canary does not resume it: the next daemon converges on
//! the last good release (the canary is removed, every connection goes to the old version).

use std::time::{Duration, Instant};

use crate::compose::Service;
use crate::compose::xgantry::Canary;
use crate::engine::ContainerInfo;
use crate::ledger::CanaryCommand;

use super::edge::Rotation;
use super::rollout::Rollout;
use super::{DeployError, health};

impl Rollout<'_> {
    /// Runs `canary`'s steps for `new` (ready, not yet in rotation) against the old
    /// containers in `rotation`. Returns once the last step (100) is reached; on an abort,
    /// the canary is out of rotation and removed, and the error says why.
    pub(super) async fn canary(
        &self,
        svc: &Service,
        canary: &Canary,
        rotation: &mut Rotation<'_>,
        new: &ContainerInfo,
    ) -> Result<(), DeployError> {
        // The canary serves real traffic from here on: a failure is a rollback.
        self.applied.with(|a| a.touched_running = true);
        let stack = self.project.name.clone();
        let probe = svc.gantry.health.clone();
        let interval = probe
            .as_ref()
            .map_or(Duration::from_secs(1), |p| p.interval)
            .max(Duration::from_millis(200));
        let ip = new.ip_addresses.values().next().cloned();
        let restarts_at_start = new.state.restart_count.unwrap_or(0);
        let _ = self.stack.take_canary_command(); // a stale one from an earlier deploy
        for &share in &canary.steps {
            rotation.split(new, share).await?;
            if share >= 100 {
                self.progress.step(
                    Some(&svc.name),
                    "canary 100%: every new connection goes to the new version",
                );
                break;
            }
            self.progress.step(
                Some(&svc.name),
                &format!(
                    "canary {share}%: {share}% of new connections to {}, watching for {} \
                     (gantry promote {stack} / gantry abort {stack})",
                    new.name,
                    humantime::format_duration(canary.pause)
                ),
            );
            let t0 = Instant::now();
            let mut failures = 0u32;
            let mut next_probe = Instant::now();
            let why = loop {
                match self.stack.take_canary_command() {
                    Some(CanaryCommand::Promote) => {
                        self.progress
                            .step(Some(&svc.name), &format!("canary {share}%: promoted"));
                        break None;
                    }
                    Some(CanaryCommand::Abort) => break Some("aborted by hand".to_owned()),
                    None => {}
                }
                if t0.elapsed() >= canary.pause {
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
            if let Some(reason) = why {
                self.progress.step(
                    Some(&svc.name),
                    &format!("canary aborted at {share}%: {reason}; every new connection back to the old version"),
                );
                rotation.leave(&new.id).await?;
                let _ = self.engine.remove_container(&new.id, true).await;
                return Err(DeployError::CanaryAborted {
                    service: svc.name.clone(),
                    share,
                    reason,
                });
            }
        }
        Ok(())
    }
}
