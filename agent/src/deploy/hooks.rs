//! Lifecycle hooks: `post_start` commands run in a container once it started, `pre_stop`
//! commands before Gantry stops it, as compose runs them.
//!
//! Design: each hook is an exec waited for to its end ([`Engine::exec`]), one after another in
//! the order written. A `post_start` hook that fails (non-zero status, or still running when
//! the readiness timeout is up) fails the container's start, so the rollout stops and rolls
//! back as when a container never turns ready; the error names the service, the container,
//! the command and the last lines the hook wrote. A `pre_stop` hook only delays the stop:
//! together the hooks get the container's stop grace period, and one that fails or runs out
//! of time is a warning; the container is stopped anyway (a retirement must not hang on it).
//!
//! Limits: hooks run where the deploy starts and stops containers, and `pre_stop` before the
//! daemon's supervision restarts a container in place (a heal), and `post_start` after it (a
//! failure there is logged: nothing is left to roll back); not for one-shot jobs, nor when
//! Docker's restart policy restarts a container. A hook cut short by its bound keeps
//! running in the container until it ends by itself.

use std::time::Duration;

use tokio::time::Instant;

use crate::compose::{Hook, Service};
use crate::engine::{Engine, Env, ExecSpec};

use super::{DeployError, Progress};

fn exec_spec(hook: &Hook) -> ExecSpec {
    ExecSpec {
        command: hook.command.clone(),
        user: hook.user.clone(),
        privileged: hook.privileged,
        working_dir: hook.working_dir.clone(),
        // A name listed without a value and unset where the file was read is not passed.
        env: hook
            .environment
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect::<Env>(),
    }
}

/// Runs the service's `post_start` hooks in the container `id` (named `name`), each bounded
/// by what is left of `within`.
pub async fn post_start(
    engine: &dyn Engine,
    svc: &Service,
    id: &str,
    name: &str,
    within: Duration,
) -> Result<(), DeployError> {
    let deadline = Instant::now() + within;
    for hook in &svc.post_start {
        let command = hook.command.join(" ");
        let fail = |problem: String, output: Vec<String>| DeployError::Hook {
            service: svc.name.clone(),
            container: name.to_owned(),
            command: command.clone(),
            problem,
            output,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, engine.exec(id, &exec_spec(hook))).await {
            Err(_) => {
                let after = humantime::format_duration(within);
                return Err(fail(format!("did not finish within {after}"), Vec::new()));
            }
            Ok(Err(e)) => return Err(fail(format!("could not run: {e}"), Vec::new())),
            Ok(Ok(out)) if out.exit_code != 0 => {
                return Err(fail(
                    format!("exited with status {}", out.exit_code),
                    out.output,
                ));
            }
            Ok(Ok(_)) => {
                tracing::debug!(service = %svc.name, container = name, command, "post_start hook done");
            }
        }
    }
    Ok(())
}

/// Runs the service's `pre_stop` hooks in the running container `id` (named `name`),
/// together within `grace`. A failure is reported and logged, never returned.
pub async fn pre_stop(
    engine: &dyn Engine,
    progress: &dyn Progress,
    hooks: &[Hook],
    service: &str,
    id: &str,
    name: &str,
    grace: Duration,
) {
    let deadline = Instant::now() + grace;
    for hook in hooks {
        let command = hook.command.join(" ");
        let left = deadline.saturating_duration_since(Instant::now());
        let problem = match tokio::time::timeout(left, engine.exec(id, &exec_spec(hook))).await {
            Err(_) => format!(
                "did not finish within the stop grace period ({})",
                humantime::format_duration(grace)
            ),
            Ok(Err(e)) => format!("could not run: {e}"),
            Ok(Ok(out)) if out.exit_code != 0 => match out.output.last() {
                Some(line) => format!("exited with status {}: {line}", out.exit_code),
                None => format!("exited with status {}", out.exit_code),
            },
            Ok(Ok(_)) => continue,
        };
        tracing::warn!(
            service,
            container = name,
            command,
            problem,
            "pre_stop hook failed; stopping the container anyway"
        );
        progress.step(
            Some(service),
            &format!("pre_stop hook `{command}` in {name} {problem}; stopping it anyway"),
        );
    }
}
