//! Model-based property test of deploys: random stacks (services, replicas, one-shot jobs,
//! dependencies on services and jobs, pinned or versioned images, stop-first or start-first)
//! deployed through random sequences of versions and configuration changes, some deploys
//! killed after a random engine call. After every deploy that ran to its end: it succeeded,
//! each service runs exactly its replicas under their own names, on the version and with the
//! configuration asked for, no job container is left, and planning again changes nothing.
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
    replicas: u32,
    pinned: bool,
    stop_first: bool,
    /// Indexes of earlier services.
    deps: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Step {
    version: &'static str,
    /// Service index → the value of its `K` variable.
    knobs: Vec<bool>,
    /// Kill this deploy after that many engine calls, then deploy the same again.
    kill_after: Option<usize>,
}

fn svc(earlier: usize) -> impl Strategy<Value = Svc> {
    (
        prop::bool::weighted(0.25),
        1u32..=3,
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::collection::vec(any::<bool>(), earlier),
    )
        .prop_map(|(job, replicas, pinned, stop_first, picks)| Svc {
            job,
            replicas: if job { 1 } else { replicas },
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
            prop::sample::select(vec!["1", "2", "3"]),
            prop::collection::vec(any::<bool>(), services),
            prop::option::weighted(0.3, 1usize..40),
        )
            .prop_map(|(version, knobs, kill_after)| Step {
                version,
                knobs,
                kill_after,
            }),
        1..=4,
    )
}

fn compose(stack: &[Svc]) -> String {
    let mut out = String::from("services:\n");
    let mut volumes = Vec::new();
    for (i, s) in stack.iter().enumerate() {
        out.push_str(&format!("  s{i}:\n"));
        let image = if s.pinned { "app:1" } else { "app:${V}" };
        out.push_str(&format!("    image: {image}\n"));
        out.push_str(&format!("    environment: {{K: \"${{K{i}}}\"}}\n"));
        if s.replicas > 1 {
            out.push_str(&format!("    deploy: {{replicas: {}}}\n", s.replicas));
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
    let text = compose(stack);
    std::fs::write(&file, &text).unwrap();
    let engine = Arc::new(FakeEngine::new());
    for v in ["1", "2", "3"] {
        engine.publish(&format!("app:{v}"), &v.repeat(64));
    }
    let deployer = Deployer::new(engine.clone(), Ledger::new(&dir.path().join("state")));
    for (n, step) in steps.iter().enumerate() {
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
        if !matches!(report.outcome, Outcome::Succeeded | Outcome::Unchanged) {
            return Err(at(format!("{:?}: {:?}", report.outcome, report.error)));
        }
        let mut want = Vec::new();
        for (i, s) in stack.iter().enumerate().filter(|(_, s)| !s.job) {
            for r in 1..=s.replicas {
                want.push(format!("app-s{i}-{r}"));
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
            let version = if stack[i].pinned { "1" } else { step.version };
            let knob = if step.knobs[i] { "on" } else { "off" };
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
        let again = deployer.plan(&req).await.map_err(|e| at(e.to_string()))?;
        if !again.is_noop() {
            let actions: Vec<_> = again
                .services
                .iter()
                .map(|s| (&s.service, s.action, &s.reasons))
                .collect();
            return Err(at(format!("planning again is not a no-op: {actions:?}")));
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
