//! Model-based property test of deploys: random stacks (services, replicas, one-shot jobs,
//! dependencies on services and jobs, pinned or versioned images, stop-first or start-first)
//! deployed through random sequences of versions, configuration changes, replica counts and
//! services leaving and coming back, some deploys killed after a random engine call, some of a
//! version that crashes. After every deploy that ran to its end: a good version succeeded and
//! a crashing one failed or rolled back; each service runs exactly its replicas under their own
//! names, on the version and with the configuration of the last good deploy, no job container
//! is left, and planning that deploy again changes no service.
//!
//! The engine is the in-memory [`FakeEngine`] on a paused clock: what is checked is Gantry's
//! own logic (plan, schedule, rollout, ledger), not Docker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::compose::LoadOptions;
use crate::deploy::{DeployRequest, Deployer, Quiet};
use crate::engine::fake::FakeEngine;
use crate::ledger::{Ledger, Outcome};

#[derive(Debug, Clone)]
struct Svc {
    job: bool,
    pinned: bool,
    stop_first: bool,
    /// Indexes of earlier services.
    deps: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Step {
    /// `4` crashes at start.
    version: &'static str,
    /// Service index → the value of its `K` variable.
    knobs: Vec<bool>,
    /// Service index → its replicas in this step (jobs: ignored).
    replicas: Vec<u32>,
    /// Service index → whether it is in the files (one another present service depends on
    /// always is).
    present: Vec<bool>,
    /// Kill this deploy after that many engine calls, then deploy the same again.
    kill_after: Option<usize>,
}

fn svc(earlier: usize) -> impl Strategy<Value = Svc> {
    (
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::collection::vec(any::<bool>(), earlier),
    )
        .prop_map(|(job, pinned, stop_first, picks)| Svc {
            job,
            pinned,
            stop_first: stop_first && !job,
            deps: picks
                .iter()
                .enumerate()
                .filter(|(_, p)| **p)
                .map(|(i, _)| i)
                .collect(),
        })
}

fn stack() -> impl Strategy<Value = Vec<Svc>> {
    (1usize..=5).prop_flat_map(|n| (0..n).map(svc).collect::<Vec<_>>().prop_map(|v| v))
}

fn steps(services: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["1", "2", "3", "4"]),
            prop::collection::vec(any::<bool>(), services),
            prop::collection::vec(1u32..=3, services),
            prop::collection::vec(prop::bool::weighted(0.85), services),
            prop::option::weighted(0.3, 1usize..40),
        )
            .prop_map(|(version, knobs, replicas, present, kill_after)| Step {
                version,
                knobs,
                replicas,
                present,
                kill_after,
            }),
        1..=5,
    )
}

/// `step.present`, with every dependency of a present service present too.
fn present(stack: &[Svc], step: &Step) -> Vec<bool> {
    let mut present = step.present.clone();
    for i in (0..stack.len()).rev() {
        if (i + 1..stack.len()).any(|j| present[j] && stack[j].deps.contains(&i)) {
            present[i] = true;
        }
    }
    present
}

fn compose(stack: &[Svc], step: &Step) -> String {
    let present = present(stack, step);
    let mut out = String::from("services:\n");
    let mut volumes = Vec::new();
    for (i, s) in stack.iter().enumerate().filter(|(i, _)| present[*i]) {
        out.push_str(&format!("  s{i}:\n"));
        let image = if s.pinned { "app:1" } else { "app:${V}" };
        out.push_str(&format!("    image: {image}\n"));
        out.push_str(&format!("    environment: {{K: \"${{K{i}}}\"}}\n"));
        let replicas = if s.job { 1 } else { step.replicas[i] };
        if replicas > 1 {
            out.push_str(&format!("    deploy: {{replicas: {replicas}}}\n"));
        }
        if s.stop_first {
            out.push_str(&format!("    volumes: [d{i}:/data]\n"));
            volumes.push(format!("d{i}"));
        }
        if !s.deps.is_empty() {
            out.push_str("    depends_on:\n");
            for d in &s.deps {
                let condition = if stack[*d].job {
                    "service_completed_successfully"
                } else {
                    "service_started"
                };
                out.push_str(&format!("      s{d}: {{condition: {condition}}}\n"));
            }
        }
        if s.job {
            out.push_str("    x-gantry: {job: {timeout: 1m}}\n");
        } else {
            out.push_str("    x-gantry: {min_ready: 1s}\n");
        }
    }
    if !volumes.is_empty() {
        out.push_str("volumes:\n");
        for v in volumes {
            out.push_str(&format!("  {v}: {{}}\n"));
        }
    }
    out
}

fn request(file: &std::path::Path, step: &Step) -> DeployRequest {
    let mut environment = BTreeMap::from([("V".to_owned(), step.version.to_owned())]);
    for (i, k) in step.knobs.iter().enumerate() {
        environment.insert(format!("K{i}"), if *k { "on" } else { "off" }.to_owned());
    }
    DeployRequest::new(
        "app",
        LoadOptions {
            files: vec![file.to_path_buf()],
            project_name: Some("app".into()),
            environment,
            ..LoadOptions::default()
        },
    )
}

/// Runs the steps; `Err` says what broke, with the compose text and the step.
async fn run(stack: &[Svc], steps: &[Step]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    let engine = Arc::new(FakeEngine::new());
    for v in ["1", "2", "3", "4"] {
        engine.publish(&format!("app:{v}"), &v.repeat(64));
    }
    engine.crash_image(&format!("sha256:{}", "4".repeat(64)));
    let deployer = Deployer::new(engine.clone(), Ledger::new(&dir.path().join("state")));
    // The last deploy that succeeded: what must run.
    let mut good: Option<Step> = None;
    for (n, step) in steps.iter().enumerate() {
        let text = compose(stack, step);
        std::fs::write(&file, &text).unwrap();
        let req = request(&file, step);
        let at = |what: String| format!("step {n} {step:?}: {what}\n{text}");
        if let Some(m) = step.kill_after {
            engine.clear_calls();
            engine.freeze_after(Some(m));
            tokio::select! {
                _ = deployer.deploy(&req, &Quiet) => {}
                () = async {
                    while !engine.frozen() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                } => {}
            }
            engine.freeze_after(None);
        }
        let report = deployer.deploy(&req, &Quiet).await;
        match report.outcome {
            // A deploy that found nothing to do records nothing: with no release before it,
            // a failure after it has nothing to return to (and leaves what failed to look at).
            Outcome::Unchanged if good.is_none() => {}
            Outcome::Succeeded | Outcome::Unchanged => good = Some(step.clone()),
            Outcome::Failed | Outcome::RolledBack if step.version == "4" => {}
            // With no good release to go back to, a failure that changed what ran says so.
            Outcome::RollbackFailed if step.version == "4" && good.is_none() => {}
            other => return Err(at(format!("{other:?}: {:?}", report.error))),
        }
        let Some(good) = &good else {
            continue;
        };
        let present = present(stack, good);
        let mut want = Vec::new();
        for (i, s) in stack.iter().enumerate() {
            if present[i] && !s.job {
                for r in 1..=good.replicas[i] {
                    want.push(format!("app-s{i}-{r}"));
                }
            }
        }
        want.sort();
        let left = engine.containers();
        let names: Vec<String> = left.keys().cloned().collect();
        if names != want {
            return Err(at(format!("containers {names:?}, wanted {want:?}")));
        }
        for (name, c) in &left {
            let i: usize = name.split('-').nth(1).unwrap()[1..].parse().unwrap();
            let version = if stack[i].pinned { "1" } else { good.version };
            let knob = if good.knobs[i] { "on" } else { "off" };
            if !c.state.running || !c.image_id.ends_with(&version.repeat(64)) {
                return Err(at(format!(
                    "{name} is not running version {version}: {c:?}"
                )));
            }
            if engine.env_of(name).get("K").map(String::as_str) != Some(knob) {
                return Err(at(format!(
                    "{name} has K={:?}, wanted {knob}",
                    engine.env_of(name).get("K")
                )));
            }
        }
        std::fs::write(&file, compose(stack, good)).unwrap();
        let again = deployer
            .plan(&request(&file, good))
            .await
            .map_err(|e| at(e.to_string()))?;
        // Jobs are left out: one that ran in a deploy rolled back since has moved forward
        // (migrations are not undone), and runs again for the good configuration.
        if again.services.iter().any(|s| !s.job && s.action.changes()) {
            let actions: Vec<_> = again
                .services
                .iter()
                .map(|s| (&s.service, s.action, &s.reasons))
                .collect();
            return Err(at(format!(
                "planning the last good deploy again is not a no-op: {actions:?}"
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn random_stacks_and_deploys_converge(
        (stack, steps) in stack().prop_flat_map(|s| {
            let n = s.len();
            (Just(s), steps(n))
        })
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let result = rt.block_on(run(&stack, &steps));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
