//! Supervision's decisions, apart from Docker and the clock's source: the restart budget
//! ([`Budget`]), the backoff before a restart ([`backoff`]), whether to heal now, later or
//! give up ([`heal_decision`]), and a probed container's liveness and readiness
//! ([`Liveness`]).
//!
//! Design: pure state machines over tokio's [`Instant`], so unit tests drive them on a paused
//! clock; the supervisor ([`super::Supervisor`]) applies what they decide through the engine.
//!
//! Limits: readiness leaves on the first failed probe and comes back after `passes` passes in a
//! row; liveness restarts after `failures` failures in a row, never within a startup deadline
//! the container has not passed yet (a container that passed its deploy's gate and has not
//! restarted since has passed it).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::compose::xgantry::Probe;
use crate::daemon::HealConfig;

use super::Track;

/// Uses per window: the restart budget and the crash-loop detector.
#[derive(Debug, Clone)]
pub struct Budget {
    pub(super) max: u32,
    pub(super) window: Duration,
    pub(super) used: VecDeque<Instant>,
}

impl Budget {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            used: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(t) = self.used.front() {
            if now.duration_since(*t) >= self.window {
                self.used.pop_front();
            } else {
                break;
            }
        }
    }

    /// Uses left in the window ending now.
    pub fn remaining(&mut self, now: Instant) -> u32 {
        self.prune(now);
        self.max.saturating_sub(self.used.len() as u32)
    }

    /// Takes one use; `Some(n)` is how many were already used in the window.
    pub fn take(&mut self, now: Instant) -> Option<u32> {
        if self.remaining(now) == 0 {
            return None;
        }
        let n = self.used.len() as u32;
        self.used.push_back(now);
        Some(n)
    }
}

/// Delay before the restart that follows `used` restarts in the window: backoff × 2^used,
/// capped.
pub fn backoff(config: &HealConfig, used: u32) -> Duration {
    let factor = 1u32.checked_shl(used.min(20)).unwrap_or(u32::MAX);
    config
        .backoff
        .saturating_mul(factor)
        .min(config.backoff_max)
}

/// What to do about a container that needs healing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealDecision {
    /// A heal is under way, or supervision gave up on it: nothing.
    Leave,
    /// The budget is spent: give up now, loudly (the track is marked given up).
    GiveUp,
    /// Restart after this backoff (the track is marked healing).
    RestartAfter(Duration),
}

/// Decides a heal of `t` at `now`, and marks the track (healing, given up) accordingly.
pub fn heal_decision(t: &mut Track, config: &HealConfig, now: Instant) -> HealDecision {
    if t.healing || t.gave_up {
        return HealDecision::Leave;
    }
    let remaining = t.budget.remaining(now);
    if remaining == 0 {
        t.gave_up = true;
        return HealDecision::GiveUp;
    }
    t.healing = true;
    HealDecision::RestartAfter(backoff(config, config.max_restarts - remaining))
}

/// Whether a container that started at `started_at` (Docker's `State.StartedAt`) had started
/// before its release was recorded at `recorded_at`, both RFC 3339: then it passed that
/// deploy's gate (or an earlier one) and has not restarted since. `false` when either does not
/// parse.
pub fn started_before(started_at: &str, recorded_at: &str) -> bool {
    match (
        humantime::parse_rfc3339(started_at),
        humantime::parse_rfc3339(recorded_at),
    ) {
        (Ok(started), Ok(recorded)) => started <= recorded,
        _ => false,
    }
}

/// What one probe result changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// The readiness changed to this.
    pub ready: Option<bool>,
    /// Liveness failed: restart the container.
    pub restart: bool,
}

/// A probed container after its deploy: consecutive passes and failures, readiness, and
/// whether it is still within its startup deadline.
#[derive(Debug, Clone)]
pub struct Liveness {
    passes: u32,
    /// Failures in a row that fail liveness.
    threshold: u32,
    start_period: Duration,
    startup: Option<Duration>,
    /// The container's (re)start as supervision saw it.
    since: Instant,
    passed_once: bool,
    oks: u32,
    fails: u32,
    ready: Option<bool>,
}

impl Liveness {
    /// A container supervision starts probing at `now` (adopted, or just deployed: it passed
    /// its gate, so its first pass makes it ready).
    pub fn new(probe: &Probe, now: Instant) -> Self {
        Self {
            passes: probe.passes.max(1),
            threshold: probe.failures.max(1),
            start_period: probe.start_period,
            startup: probe.startup,
            since: now,
            passed_once: false,
            oks: 0,
            fails: 0,
            ready: None,
        }
    }

    /// Whether to probe at `now` (not within `start_period` after a restart).
    pub fn due(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= self.start_period
    }

    /// The readiness reported last (`None`: not probed yet).
    pub fn ready(&self) -> Option<bool> {
        self.ready
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.fails
    }

    /// Applies one probe result.
    pub fn observe(&mut self, passed: bool, now: Instant) -> Step {
        let mut step = Step::default();
        if passed {
            self.passed_once = true;
            self.fails = 0;
            self.oks = self.oks.saturating_add(1);
            if self.ready != Some(true) && (self.ready.is_none() || self.oks >= self.passes) {
                self.ready = Some(true);
                step.ready = Some(true);
            }
        } else {
            self.oks = 0;
            self.fails = self.fails.saturating_add(1);
            if self.ready != Some(false) {
                self.ready = Some(false);
                step.ready = Some(false);
            }
            let starting = !self.passed_once
                && self
                    .startup
                    .is_some_and(|d| now.duration_since(self.since) < d);
            step.restart = !starting && self.fails >= self.threshold;
        }
        step
    }

    /// The container is not running (stopped, or being restarted): not ready; when it runs
    /// again, it starts over as after a restart.
    pub fn down(&mut self, now: Instant) -> Step {
        self.restarted(now);
        let mut step = Step::default();
        if self.ready == Some(true) {
            self.ready = Some(false);
            step.ready = Some(false);
        }
        step
    }

    /// The container passed its deploy's gate and has not restarted since (it was running
    /// before its release was recorded): its startup is over, so failures count at once.
    pub fn gated(&mut self) {
        self.passed_once = true;
    }

    /// A deploy holds the stack: failures so far do not count towards a restart.
    pub fn hold(&mut self) {
        self.fails = 0;
    }

    /// The container was restarted at `now`: start period and startup deadline apply again.
    pub fn restarted(&mut self, now: Instant) {
        self.since = now;
        self.passed_once = false;
        self.oks = 0;
        self.fails = 0;
    }
}
