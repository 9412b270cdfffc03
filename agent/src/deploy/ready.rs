//! Readiness waits: dependencies met, a new container ready by its service's rule, a batch
//! watched through its monitor period.
//!
//! Design: [`wait_ready`] applies the rule [`health::rule`] chose: Gantry's own probe (N
//! consecutive passes after the start period, within the deadline; with a startup deadline,
//! the first pass within it and the readiness deadline counted from that pass), the Docker
//! healthcheck (`healthy` with its last checks passing; `unhealthy` fails at once), or running
//! for `min_ready`. A container that exits or restarts fails at once. Failures carry the health
//! or probe log and the container's last [`LOG_LINES`] log lines. [`monitor`] watches a batch
//! after its gate: running, not unhealthy, and its `x-gantry.health` probe not failing
//! `failures` times in a row. Time is tokio's, so tests can pause the clock.
//!
//! A Docker healthcheck is followed through Docker's event stream: the wait subscribes to the
//! container's events (replayed from just before its first inspect, so a state reached before
//! the subscription is not missed) and inspects again on each event (`health_status`, `die`,
//! `restart`, ...), with a slow inspect every [`EVENT_FALLBACK`] in case the stream breaks;
//! when the engine has no event stream it polls every [`POLL`]. Probes and `min_ready` are
//! timed (the probe's interval, or [`POLL`]).
//!
//! Gantry's own `min_ready` (2 s, when neither the service nor the stack sets one) watches a
//! replacement per container: the old one serves until the new one has run 2 s. The
//! containers a deploy creates where none ran (a cold deploy, a service or replica added) are
//! watched together ([`Together`]): each is ready once it runs and 2 s have passed since the
//! first of them started, and none may have exited when the deploy ends
//! ([`Rollout::check_together`]). A cold deploy of a hundred services then ends when the last
//! one runs, not 2 s later, while a one-service deploy still watches its container 2 s. A
//! `min_ready` set in the files is always per container.
//!
//! Limits: `monitor` polls.

use tokio::time::Instant;

use std::time::Duration;

use crate::compose::{DependsCondition, Service};
use futures_util::StreamExt;

use crate::engine::{
    ContainerInfo, ContainerStatus, Engine, EventFilter, HealthStatus, ObjectType,
};

use super::plan::Action;
use super::rollout::{Applied, Rollout};
use super::{DeployError, health};

/// Lines of a failing container's or job's log carried in the error.
pub(super) const LOG_LINES: usize = 50;
/// How often readiness is polled (without events).
const POLL: Duration = Duration::from_millis(250);
/// How often a wait that follows events inspects anyway.
const EVENT_FALLBACK: Duration = Duration::from_secs(2);

impl Rollout<'_> {
    /// Waits until every dependency of `svc` meets its condition.
    pub(super) async fn wait_dependencies(&self, svc: &Service) -> Result<(), DeployError> {
        let (project, plan, req) = (self.project, self.plan, self.req);
        for (dep, d) in &svc.depends_on {
            // A service leaving the stack is no dependency any more (the loader let it go
            // only if it was optional).
            let Some(dep_plan) = plan.get(dep).filter(|p| p.action != Action::Remove) else {
                if d.required {
                    return Err(DeployError::Dependency {
                        service: svc.name.clone(),
                        dependency: dep.clone(),
                        problem: "is not an active service of the stack".into(),
                    });
                }
                continue;
            };
            match d.condition {
                DependsCondition::ServiceCompletedSuccessfully => {
                    if dep_plan.job
                        && !(dep_plan.action == Action::Unchanged
                            || self.applied.with(|a| a.jobs.contains_key(dep)))
                    {
                        return Err(DeployError::Dependency {
                            service: svc.name.clone(),
                            dependency: dep.clone(),
                            problem: "has not completed successfully".into(),
                        });
                    }
                }
                DependsCondition::ServiceHealthy | DependsCondition::ServiceStarted => {
                    let ids = self
                        .applied
                        .with(|a| a.ready.get(dep).cloned())
                        .unwrap_or_default();
                    if ids.is_empty() && !dep_plan.job {
                        return Err(DeployError::Dependency {
                            service: svc.name.clone(),
                            dependency: dep.clone(),
                            problem: "has no running container".into(),
                        });
                    }
                    if d.condition == DependsCondition::ServiceHealthy {
                        // Healthy means: passes its readiness gate, by a Docker healthcheck
                        // or by Gantry's own probe.
                        let dep_svc = &project.services[dep];
                        let has_check = dep_svc
                            .healthcheck
                            .as_ref()
                            .is_some_and(|h| !h.is_disabled())
                            || matches!(health::rule(dep_svc), health::Rule::Probe(_));
                        for id in ids {
                            let info = self.engine.inspect_container(&id).await?;
                            if info.state.health.is_none() && !has_check {
                                return Err(DeployError::Dependency {
                                    service: svc.name.clone(),
                                    dependency: dep.clone(),
                                    problem: "has no healthcheck nor x-gantry.health probe \
                                              (condition: service_healthy needs one)"
                                        .into(),
                                });
                            }
                            let rule = health::rule(dep_svc);
                            wait_ready(
                                self.engine,
                                dep_svc,
                                &rule,
                                &id,
                                req.ready_timeout,
                                None,
                                None,
                            )
                            .await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Watches freshly started containers for `watch`: they must keep running (and healthy), and
/// with `x-gantry.health` keep passing its probe (`failures` consecutive failures fail).
pub(super) async fn monitor(
    engine: &dyn Engine,
    svc: &Service,
    ids: &[String],
    watch: Duration,
) -> Result<(), DeployError> {
    let until = Instant::now() + watch;
    let probe = match health::rule(svc) {
        health::Rule::Probe(p) => Some(p),
        _ => None,
    };
    let mut fails: Vec<u32> = vec![0; ids.len()];
    let mut probe_logs: Vec<Vec<String>> = vec![Vec::new(); ids.len()];
    let mut next_probe = Instant::now();
    while Instant::now() < until {
        let probing = probe.is_some() && Instant::now() >= next_probe;
        for (i, id) in ids.iter().enumerate() {
            let info = engine.inspect_container(id).await?;
            let bad = if !info.state.running {
                Some("stopped during the monitor period".to_owned())
            } else if info.state.health == Some(HealthStatus::Unhealthy) {
                Some("turned unhealthy during the monitor period".to_owned())
            } else {
                None
            };
            if let Some(problem) = bad {
                return Err(not_ready(engine, svc, &info, problem).await);
            }
            if let Some(p) = probe.as_ref().filter(|_| probing) {
                let ip = info.ip_addresses.values().next().map(String::as_str);
                match health::probe_once(&p.target, ip, p.timeout).await {
                    Ok(()) => fails[i] = 0,
                    Err(e) => {
                        fails[i] += 1;
                        probe_logs[i].push(format!("fail: {e}"));
                        if fails[i] >= p.failures {
                            let problem = format!(
                                "failed its probe {} times in a row during the monitor period",
                                fails[i]
                            );
                            let log = std::mem::take(&mut probe_logs[i]);
                            return Err(not_ready_with(engine, svc, &info, problem, log).await);
                        }
                    }
                }
            }
        }
        if let Some(p) = probe.as_ref().filter(|_| probing) {
            next_probe = Instant::now() + p.interval;
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// The containers of one rollout created where none ran, under Gantry's own `min_ready`
/// (module docs): the earliest start among them and those found ready, for the check at the
/// end.
#[derive(Debug, Default)]
pub(super) struct Together {
    /// The earliest start among them, on tokio's clock and on the wall clock.
    first: Option<(Instant, std::time::SystemTime)>,
    /// service, container id of each one found ready.
    pub(super) ready: Vec<(String, String)>,
}

impl Together {
    /// How long ago the first of them started, `up` being how long this one has run.
    fn up_since_first(&mut self, up: Duration) -> Duration {
        let now = Instant::now();
        let own = (
            now.checked_sub(up).unwrap_or(now),
            std::time::SystemTime::now() - up,
        );
        let first = self.first.get_or_insert(own);
        if own.0 < first.0 {
            *first = own;
        }
        now - first.0
    }

    /// When the first of them started, by the wall clock.
    pub(super) fn since(&self) -> Option<std::time::SystemTime> {
        self.first.map(|f| f.1)
    }
}

/// How long the check at the end of a rollout waits for Docker's record of what exited.
const CHECK_WITHIN: Duration = Duration::from_secs(10);

impl Rollout<'_> {
    /// The end of a rollout: none of the containers watched together ([`Together`]) may have
    /// exited since the first of them started, not even one its restart policy brought back.
    /// Docker's event history says which died (one call); without it, their states do.
    pub(super) async fn check_together(&self) -> Result<(), DeployError> {
        let (since, ready) = self
            .applied
            .with(|d| (d.together.since(), d.together.ready.clone()));
        let Some(since) = since.filter(|_| !ready.is_empty()) else {
            return Ok(());
        };
        let project = &self.project.name;
        let filter = EventFilter {
            actions: vec!["die".into()],
            since: Some(since - Duration::from_secs(1)),
            until: Some(std::time::SystemTime::now()),
            ..EventFilter::project(project)
        };
        let events = self.engine.events(&filter).collect::<Vec<_>>();
        let died: Vec<String> = match tokio::time::timeout(CHECK_WITHIN, events).await {
            Ok(events) if events.iter().all(Result::is_ok) => {
                events.into_iter().flatten().map(|e| e.id).collect()
            }
            _ => {
                tracing::warn!(stack = %project, "no event history from Docker; checking the new containers' states instead");
                self.engine
                    .list_containers(project, true)
                    .await?
                    .into_iter()
                    .filter(|c| !c.state.running || c.state.status == ContainerStatus::Restarting)
                    .map(|c| c.id)
                    .collect()
            }
        };
        let exited: Vec<&(String, String)> =
            ready.iter().filter(|(_, id)| died.contains(id)).collect();
        let Some((service, id)) = exited.first() else {
            return Ok(());
        };
        let info = self.engine.inspect_container(id).await?;
        let mut problem = "exited after it started, before the deploy ended".to_owned();
        if exited.len() > 1 {
            problem += &format!(
                " ({} of the {} new containers watched together did)",
                exited.len(),
                ready.len()
            );
        }
        Err(not_ready(self.engine, &self.project.services[service], &info, problem).await)
    }
}

/// Waits until a container is ready by its service's rule. `requested`: when Gantry asked
/// Docker to start it, if it did; `min_ready` then counts from the start Docker recorded
/// (see [`up_by_docker`]), otherwise from this call. `together`: the rollout's record when the
/// container was created where none ran ([`Together`]).
pub(super) async fn wait_ready(
    engine: &dyn Engine,
    svc: &Service,
    rule: &health::Rule,
    id: &str,
    timeout: Duration,
    requested: Option<Instant>,
    together: Option<&Applied>,
) -> Result<(), DeployError> {
    let started = Instant::now();
    // With a startup deadline, the probe has that long to pass once; the readiness deadline
    // counts from the first pass.
    let mut starting = matches!(rule, health::Rule::Probe(p) if p.startup.is_some());
    let mut deadline = match rule {
        health::Rule::Probe(p) => started + p.startup.or(p.deadline).unwrap_or(timeout),
        _ => started + timeout,
    };
    let mut passes = 0u32;
    let mut probe_log: Vec<String> = Vec::new();
    let mut restarts: Option<u32> = None;
    // A Docker healthcheck reports through events: follow them from just before the first
    // inspect (Docker replays what happened since), so nothing between the two is missed.
    let mut events = matches!(rule, health::Rule::Docker { .. }).then(|| {
        engine.events(&EventFilter {
            types: vec![ObjectType::Container],
            containers: vec![id.to_owned()],
            since: Some(std::time::SystemTime::now() - Duration::from_secs(1)),
            ..EventFilter::default()
        })
    });
    loop {
        let info = engine.inspect_container(id).await?;
        let status = info.state.status;
        let exited = !info.state.running
            && !matches!(
                status,
                ContainerStatus::Created | ContainerStatus::Restarting
            );
        if exited {
            let problem = format!("exited with code {}", info.state.exit_code.unwrap_or(-1));
            return Err(not_ready_with(engine, svc, &info, problem, probe_log).await);
        }
        let restarted = match (restarts, info.state.restart_count) {
            (Some(before), Some(now)) => now > before,
            _ => false,
        };
        if restarts.is_none() {
            restarts = info.state.restart_count;
        }
        if restarted || status == ContainerStatus::Restarting {
            return Err(not_ready_with(
                engine,
                svc,
                &info,
                "restarted while starting".into(),
                probe_log,
            )
            .await);
        }
        let wait = match rule {
            health::Rule::Docker { passes: want } => match info.state.health {
                Some(HealthStatus::Healthy) => {
                    let ok = info.state.health_log.iter().rev().take(*want as usize);
                    if ok.clone().count() >= *want as usize
                        && ok.clone().all(|p| p.exit_code == Some(0))
                    {
                        return Ok(());
                    }
                    POLL
                }
                Some(HealthStatus::Unhealthy) => {
                    return Err(not_ready_with(
                        engine,
                        svc,
                        &info,
                        "is unhealthy".into(),
                        probe_log,
                    )
                    .await);
                }
                // No healthcheck after all (the image had none): running is ready.
                None if info.state.running => return Ok(()),
                _ => POLL,
            },
            health::Rule::MinReady { min, built_in } => {
                let mut elapsed = requested
                    .and_then(|r| up_by_docker(&info, r))
                    .map_or(started.elapsed(), |up| up.max(started.elapsed()));
                let together = together.filter(|_| *built_in && info.state.running);
                if let Some(applied) = together {
                    elapsed = applied.with(|d| d.together.up_since_first(elapsed));
                }
                if info.state.running && elapsed >= *min {
                    if let Some(applied) = together {
                        applied.with(|d| d.together.ready.push((svc.name.clone(), id.to_owned())));
                    }
                    return Ok(());
                }
                // Nothing to learn before `min_ready` has passed: an exit or a restart in
                // between shows in the one inspect after it. (Polling meant eight inspects
                // per container, which a hundred services made Docker's main cost.)
                if elapsed < *min { *min - elapsed } else { POLL }
            }
            health::Rule::Probe(p) => {
                if started.elapsed() < p.start_period || !info.state.running {
                    POLL
                } else {
                    let ip = info.ip_addresses.values().next().map(String::as_str);
                    match health::probe_once(&p.target, ip, p.timeout).await {
                        Ok(()) => {
                            if starting {
                                starting = false;
                                deadline = Instant::now() + p.deadline.unwrap_or(timeout);
                            }
                            passes += 1;
                            probe_log.push(format!("pass {passes}/{}", p.passes));
                            if passes >= p.passes {
                                return Ok(());
                            }
                        }
                        Err(e) => {
                            passes = 0;
                            probe_log.push(format!("fail: {e}"));
                        }
                    }
                    p.interval
                }
            }
        };
        if Instant::now() >= deadline {
            let problem = if starting {
                format!(
                    "did not pass its probe within its startup deadline {} ({})",
                    humantime::format_duration(deadline - started),
                    rule.describe()
                )
            } else {
                format!(
                    "was not ready within {} ({})",
                    humantime::format_duration(deadline - started),
                    rule.describe()
                )
            };
            return Err(not_ready_with(engine, svc, &info, problem, probe_log).await);
        }
        let wait = wait.min(deadline.saturating_duration_since(Instant::now()));
        match events.as_mut() {
            Some(stream) if wait == POLL => {
                tokio::select! {
                    event = stream.next() => match event {
                        Some(Ok(_)) => {}
                        // The stream broke (or the engine has none): poll from here on.
                        Some(Err(_)) | None => events = None,
                    },
                    () = tokio::time::sleep(EVENT_FALLBACK.min(deadline.saturating_duration_since(Instant::now()))) => {}
                }
            }
            _ => tokio::time::sleep(wait).await,
        }
    }
}

/// How long a container has run by Docker's record of its start (`StartedAt`), when Gantry
/// asked for that start at `requested`. A busy Docker answers a start request seconds after
/// the process began (1.8 s for the last of a hundred services started together on 2 cores):
/// counting `min_ready` from the answer made every container wait that long on top of its
/// `min_ready`. Docker's clock is trusted only as far as it cannot put the start before the
/// request (a remote Docker's clock may run ahead); `None` when it puts the start in the
/// future or gives no start.
fn up_by_docker(info: &ContainerInfo, requested: Instant) -> Option<Duration> {
    let at = humantime::parse_rfc3339(info.state.started_at.as_deref()?).ok()?;
    let up = std::time::SystemTime::now().duration_since(at).ok()?;
    Some(up.min(requested.elapsed()))
}

async fn not_ready(
    engine: &dyn Engine,
    svc: &Service,
    info: &ContainerInfo,
    problem: String,
) -> DeployError {
    not_ready_with(engine, svc, info, problem, Vec::new()).await
}

/// The error for a container that did not become ready: its health or probe log and its
/// last log lines.
async fn not_ready_with(
    engine: &dyn Engine,
    svc: &Service,
    info: &ContainerInfo,
    problem: String,
    probe_log: Vec<String>,
) -> DeployError {
    let logs = engine
        .logs_tail(&info.id, LOG_LINES)
        .await
        .unwrap_or_default();
    let mut health_log: Vec<String> = info
        .state
        .health_log
        .iter()
        .map(|p| format!("exit {}: {}", p.exit_code.unwrap_or(-1), p.output.trim()))
        .collect();
    health_log.extend(
        probe_log
            .into_iter()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .into_iter()
            .rev(),
    );
    DeployError::NotReady {
        service: svc.name.clone(),
        container: info.name.clone(),
        problem,
        health_log,
        logs,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::engine::ContainerState;

    fn started(at: Option<SystemTime>) -> ContainerInfo {
        ContainerInfo {
            id: "c1".into(),
            name: "web-1".into(),
            labels: Default::default(),
            project: None,
            service: None,
            number: None,
            oneoff: false,
            image_id: String::new(),
            image: String::new(),
            networks: Vec::new(),
            ip_addresses: Default::default(),
            volumes: Vec::new(),
            anonymous_volumes: Vec::new(),
            ports: Vec::new(),
            stop_timeout: None,
            state: ContainerState {
                status: ContainerStatus::Running,
                running: true,
                health: None,
                health_log: Vec::new(),
                // As Docker writes it: nanoseconds, UTC.
                started_at: at.map(|t| humantime::format_rfc3339_nanos(t).to_string()),
                finished_at: None,
                restart_count: Some(0),
                exit_code: None,
                oom_killed: false,
                pid: Some(1),
            },
        }
    }

    fn ago(secs: u64) -> Instant {
        Instant::now() - Duration::from_secs(secs)
    }

    #[test]
    fn docker_start_counts_from_when_the_process_began() {
        let info = started(Some(SystemTime::now() - Duration::from_secs(2)));
        let up = up_by_docker(&info, ago(5)).unwrap();
        assert!(
            up >= Duration::from_secs(2) && up < Duration::from_secs(3),
            "{up:?}"
        );
    }

    #[test]
    fn docker_clock_cannot_put_the_start_before_the_request() {
        // A Docker whose clock runs 60 s ahead of ours: the request bounds what it claims.
        let info = started(Some(SystemTime::now() - Duration::from_secs(60)));
        let up = up_by_docker(&info, ago(1)).unwrap();
        assert!(
            up >= Duration::from_secs(1) && up < Duration::from_secs(2),
            "{up:?}"
        );
    }

    #[test]
    fn no_credit_for_a_start_in_the_future_or_none_or_garbage() {
        let future = started(Some(SystemTime::now() + Duration::from_secs(30)));
        assert_eq!(up_by_docker(&future, ago(1)), None);
        assert_eq!(up_by_docker(&started(None), ago(1)), None);
        let mut garbage = started(None);
        garbage.state.started_at = Some("yesterday".into());
        assert_eq!(up_by_docker(&garbage, ago(1)), None);
    }

    #[test]
    fn reads_the_fractions_go_writes() {
        // Go's RFC 3339 with nanoseconds drops trailing zeros, down to none.
        for at in [
            "2026-12-03T15:47:03.378380787Z",
            "2026-12-03T15:47:03.37838Z",
            "2026-12-03T15:47:03Z",
        ] {
            let mut info = started(None);
            info.state.started_at = Some(at.into());
            assert!(up_by_docker(&info, ago(1)).is_some(), "{at}");
        }
    }
}
