//! `gantry status`: stacks, services, containers, health, last release, heal counts, a canary
//! in progress (its service, step, share and the rest of its pause).
//!
//! Collected on request from the ledger, Docker and the supervisor's memory; rendered as one
//! JSON object (`--output json`) or compact lines.

use std::fmt::Write as _;

use serde::Serialize;

use super::supervise::HealStatus;
use crate::ExitCode;
use crate::api::OutputFormat;
use crate::compose::StackName;
use crate::engine::labels;

use super::jobs::RunningJob;
use super::server::Shared;

#[derive(Debug, Serialize)]
pub struct Status {
    pub daemon: DaemonStatus,
    pub stacks: Vec<StackStatus>,
}

#[derive(Debug, Serialize)]
pub struct DaemonStatus {
    pub version: &'static str,
    pub uptime_s: u64,
    pub docker_connected: bool,
    pub supervision: String,
}

#[derive(Debug, Serialize)]
pub struct StackStatus {
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_release: Option<ReleaseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_good_release: Option<ReleaseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<RunningJob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    pub reconcile: bool,
    pub heal: bool,
    pub containers: Vec<ContainerStatus>,
}

/// A canary in progress, as last recorded by its rollout.
#[derive(Debug, Serialize)]
pub struct CanaryStatus {
    pub service: String,
    pub release: String,
    /// Share of new connections the canary has at the step reached (percent).
    pub share: u8,
    pub steps: Vec<u8>,
    pub pause_left_s: u64,
}

#[derive(Debug, Serialize)]
pub struct ReleaseStatus {
    pub id: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ContainerStatus {
    pub name: String,
    pub service: String,
    pub id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    pub heal: HealStatus,
}

fn release_status(r: &crate::ledger::Release) -> ReleaseStatus {
    ReleaseStatus {
        id: r.id(),
        outcome: r.outcome.as_str().to_owned(),
        finished_at: r.finished_at.clone(),
        deploy_id: r.deploy_id.clone(),
    }
}

/// Status of `only` (or of every stack in the ledger).
pub async fn collect(
    shared: &Shared,
    only: Option<&StackName>,
) -> Result<Status, (String, ExitCode)> {
    let stacks = match only {
        Some(s) => {
            shared
                .ledger
                .stack(s)
                .map_err(|e| (e.to_string(), ExitCode::InvalidInput))?;
            vec![s.to_string()]
        }
        None => shared
            .ledger
            .stacks()
            .map_err(|e| (e.to_string(), ExitCode::Failed))?,
    };
    let mut out = Vec::new();
    for stack in stacks {
        let ledger = shared
            .ledger
            .stack(&stack)
            .map_err(|e| (e.to_string(), ExitCode::Failed))?;
        let releases = ledger.releases().unwrap_or_default();
        let containers = shared
            .engine
            .list_containers(&stack, true)
            .await
            .map_err(|e| (e.to_string(), e.exit_code()))?;
        let policy = shared.config.policy(&stack);
        out.push(StackStatus {
            last_release: releases.last().map(release_status),
            last_good_release: releases
                .iter()
                .rev()
                .find(|r| r.outcome.is_good())
                .map(release_status),
            job: shared.jobs.running(&stack),
            canary: ledger.canary().map(|c| CanaryStatus {
                service: c.service.clone(),
                release: format!("r{}", c.release),
                share: c.share(),
                steps: c.steps.clone(),
                pause_left_s: c.pause_left().as_secs(),
            }),
            reconcile: policy.reconcile,
            heal: policy.heal,
            containers: containers
                .iter()
                .filter(|c| !c.oneoff && c.label(labels::GANTRY_HASH).is_some())
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    service: c.service.clone().unwrap_or_default(),
                    id: c.id.chars().take(12).collect(),
                    state: c.state.status.as_str().to_owned(),
                    health: c.state.health.map(|h| h.as_str().to_owned()),
                    heal: shared.supervisor.heal_status(&c.name, &c.id),
                })
                .collect(),
            stack,
        });
    }
    Ok(Status {
        daemon: DaemonStatus {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: shared.started.elapsed().as_secs(),
            docker_connected: shared
                .metrics
                .docker_connected
                .load(std::sync::atomic::Ordering::Relaxed),
            supervision: shared.supervisor.status_line(),
        },
        stacks: out,
    })
}

/// The status as printed.
pub fn render(s: &Status, output: OutputFormat) -> String {
    if output == OutputFormat::Json {
        return format!("{}\n", serde_json::to_string_pretty(s).unwrap_or_default());
    }
    let mut out = format!(
        "gantry {} up {}s; {}\n",
        s.daemon.version, s.daemon.uptime_s, s.daemon.supervision
    );
    for st in &s.stacks {
        let rel = |r: &Option<ReleaseStatus>| {
            r.as_ref()
                .map(|r| format!("{} {}", r.id, r.outcome))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            out,
            "stack {}: last {}, good {}{}",
            st.stack,
            rel(&st.last_release),
            rel(&st.last_good_release),
            st.job
                .as_ref()
                .map(|j| format!(", job {} ({}) running", j.id, j.kind))
                .unwrap_or_default()
        );
        if let Some(c) = &st.canary {
            let _ = writeln!(
                out,
                "  canary of {} ({}) at {}% of new connections, {}s of pause left (gantry promote {s} / gantry abort {s})",
                c.service,
                c.release,
                c.share,
                c.pause_left_s,
                s = st.stack
            );
        }
        for c in &st.containers {
            let mut flags = String::new();
            if c.heal.restarts > 0 {
                let _ = write!(flags, " restarts={}", c.heal.restarts);
            }
            if c.heal.gave_up {
                flags.push_str(" GAVE-UP");
            }
            if c.heal.crash_looping {
                flags.push_str(" CRASH-LOOPING");
            }
            let _ = writeln!(
                out,
                "  {:24} {:10} {:8} {}{}",
                c.name,
                c.service,
                c.state,
                c.health.as_deref().unwrap_or("-"),
                flags
            );
        }
    }
    out
}
