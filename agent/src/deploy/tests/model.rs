//! Model-based property test of deploys: random stacks (services, replicas, one-shot jobs,
//! dependencies on services and jobs, pinned or versioned images, stop-first or start-first)
//! deployed through random sequences of versions, configuration changes, replica counts and
//! services leaving and coming back, some deploys killed after a random engine call, some of a
//! version that crashes; between them `gantry rollback` (to the good release before the newest
//! with another model) and containers stopped or removed by hand, then the daemon's reconcile.
//! After every operation that ran to its end: a good version succeeded and a crashing one
//! failed or rolled back; each service runs exactly its replicas under their own names, on the
//! version and with the configuration of the last good release, no job container is left, and
//! planning that release again changes no service.
//!
//! The engine is the in-memory [`FakeEngine`] on a paused clock: what is checked is Gantry's
//! own logic (plan, schedule, rollout, ledger), not Docker.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use crate::compose::LoadOptions;
use crate::deploy::{DeployRequest, Deployer, Quiet};
use crate::engine::fake::FakeEngine;
use crate::ledger::{Ledger, Outcome};

#[derive(Debug, Clone)]
struct Svc {
    job: bool,
    /// A Docker healthcheck (the fake engine passes it at once); services that depend on it
    /// wait for `service_healthy`.
    healthcheck: bool,
    /// On the shared network `net` beside `default`.
    on_net: bool,
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
    /// The generation of the Docker names given to the shared network and the volumes
    /// (`name: net-g1`): a new one moves the services that use them.
    names: u8,
}

/// One thing done to the stack.
#[derive(Debug, Clone)]
enum Op {
    Deploy(Step),
    /// `gantry rollback STACK`.
    Rollback,
    /// A container (the `pick`-th, by name) stopped (or removed) by hand, then the daemon's
    /// reconcile.
    Disrupt {
        pick: usize,
        remove: bool,
    },
}

fn svc(earlier: usize) -> impl Strategy<Value = Svc> {
    (
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.4),
        prop::bool::weighted(0.3),
        prop::collection::vec(any::<bool>(), earlier),
    )
        .prop_map(
            |(job, healthcheck, on_net, pinned, stop_first, picks)| Svc {
                job,
                healthcheck: healthcheck && !job,
                on_net,
                pinned,
                stop_first: stop_first && !job,
                deps: picks
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| **p)
                    .map(|(i, _)| i)
                    .collect(),
            },
        )
}

fn stack() -> impl Strategy<Value = Vec<Svc>> {
    (1usize..=5).prop_flat_map(|n| (0..n).map(svc).collect::<Vec<_>>().prop_map(|v| v))
}

fn step(services: usize) -> impl Strategy<Value = Step> {
    (
        prop::sample::select(vec!["1", "2", "3", "4"]),
        prop::collection::vec(any::<bool>(), services),
        prop::collection::vec(1u32..=3, services),
        prop::collection::vec(prop::bool::weighted(0.85), services),
        prop::option::weighted(0.3, 1usize..40),
        prop::sample::select(vec![0u8, 0, 0, 1, 2]),
    )
        .prop_map(
            |(version, knobs, replicas, present, kill_after, names)| Step {
                version,
                knobs,
                replicas,
                present,
                kill_after,
                names,
            },
        )
}

fn ops(services: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            6 => step(services).prop_map(Op::Deploy),
            1 => Just(Op::Rollback),
            1 => (any::<usize>(), any::<bool>())
                .prop_map(|(pick, remove)| Op::Disrupt { pick, remove }),
        ],
        1..=6,
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
    let mut net = false;
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
        if s.on_net {
            out.push_str("    networks: [default, net]\n");
            net = true;
        }
        if !s.deps.is_empty() {
            out.push_str("    depends_on:\n");
            for d in &s.deps {
                let condition = if stack[*d].job {
                    "service_completed_successfully"
                } else if stack[*d].healthcheck {
                    "service_healthy"
                } else {
                    "service_started"
                };
                out.push_str(&format!("      s{d}: {{condition: {condition}}}\n"));
            }
        }
        if s.healthcheck {
            out.push_str("    healthcheck: {test: [CMD, \"true\"], interval: 1s}\n");
        }
        if s.job {
            out.push_str("    x-gantry: {job: {timeout: 1m}}\n");
        } else {
            out.push_str("    x-gantry: {min_ready: 1s}\n");
        }
    }
    let g = step.names;
    if !volumes.is_empty() {
        out.push_str("volumes:\n");
        for v in volumes {
            out.push_str(&format!("  {v}: {{name: vol-{v}-g{g}}}\n"));
        }
    }
    if net {
        out.push_str(&format!("networks:\n  net: {{name: net-g{g}}}\n"));
    }
    out
}

/// The compose text with the step's variables in place: two steps with the same text have
/// the same model (what `gantry rollback` compares).
fn effective(stack: &[Svc], step: &Step) -> String {
    let mut text = compose(stack, step).replace("${V}", step.version);
    for (i, k) in step.knobs.iter().enumerate() {
        text = text.replace(&format!("${{K{i}}}"), if *k { "on" } else { "off" });
    }
    text
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

/// What must run after `good`: `Err` says what differs.
async fn check(
    stack: &[Svc],
    good: &Step,
    engine: &FakeEngine,
    deployer: &Deployer,
    file: &std::path::Path,
) -> Result<(), String> {
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
        return Err(format!("containers {names:?}, wanted {want:?}"));
    }
    for (name, c) in &left {
        let i: usize = name.split('-').nth(1).unwrap()[1..].parse().unwrap();
        let version = if stack[i].pinned { "1" } else { good.version };
        let knob = if good.knobs[i] { "on" } else { "off" };
        if !c.state.running || !c.image_id.ends_with(&version.repeat(64)) {
            return Err(format!("{name} is not running version {version}: {c:?}"));
        }
        let g = good.names;
        if stack[i].on_net && !c.networks.contains(&format!("net-g{g}")) {
            return Err(format!("{name} is not on net-g{g}: {:?}", c.networks));
        }
        if stack[i].stop_first && !c.volumes.contains(&format!("vol-d{i}-g{g}")) {
            return Err(format!(
                "{name} does not mount vol-d{i}-g{g}: {:?}",
                c.volumes
            ));
        }
        if engine.env_of(name).get("K").map(String::as_str) != Some(knob) {
            return Err(format!(
                "{name} has K={:?}, wanted {knob}",
                engine.env_of(name).get("K")
            ));
        }
    }
    std::fs::write(file, compose(stack, good)).unwrap();
    let again = deployer
        .plan(&request(file, good))
        .await
        .map_err(|e| e.to_string())?;
    // Jobs are left out: one that ran in a deploy rolled back since has moved forward
    // (migrations are not undone), and runs again for the good configuration.
    if again.services.iter().any(|s| !s.job && s.action.changes()) {
        let actions: Vec<_> = again
            .services
            .iter()
            .map(|s| (&s.service, s.action, &s.reasons))
            .collect();
        return Err(format!(
            "planning the last good release again is not a no-op: {actions:?}"
        ));
    }
    Ok(())
}

/// Runs the operations; `Err` says what broke, with the operation and the compose text.
async fn run(stack: &[Svc], ops: &[Op]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    let engine = Arc::new(FakeEngine::new());
    for v in ["1", "2", "3", "4"] {
        engine.publish(&format!("app:{v}"), &v.repeat(64));
    }
    engine.crash_image(&format!("sha256:{}", "4".repeat(64)));
    engine.auto_healthy();
    let deployer = Deployer::new(engine.clone(), Ledger::new(&dir.path().join("state")));
    // What must run: the last good release's step.
    let mut good: Option<Step> = None;
    // The steps of the good releases written, oldest first (what `gantry rollback` picks from).
    let mut history: Vec<Step> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let text = good.as_ref().map(|g| compose(stack, g)).unwrap_or_default();
        let at = |what: String| format!("op {n} {op:?}: {what}\n{text}");
        match op {
            Op::Deploy(step) => {
                let text = compose(stack, step);
                let at = |what: String| format!("op {n} {op:?}: {what}\n{text}");
                std::fs::write(&file, &text).unwrap();
                let req = request(&file, step);
                // Killed after call `m`, then deployed again; a deploy that made fewer calls
                // ended by itself.
                let mut ended = None;
                if let Some(m) = step.kill_after {
                    ended = engine.killed_after(m, deployer.deploy(&req, &Quiet)).await;
                }
                let report = match ended {
                    Some(report) => report,
                    None => deployer.deploy(&req, &Quiet).await,
                };
                match report.outcome {
                    // A deploy that finds nothing to do records nothing, except the first
                    // of a stack (a stack whose services are all absent, or jobs).
                    Outcome::Unchanged => {
                        if history.is_empty() {
                            history.push(step.clone());
                        }
                        good = Some(step.clone());
                    }
                    Outcome::Succeeded => {
                        good = Some(step.clone());
                        history.push(step.clone());
                    }
                    Outcome::Failed | Outcome::RolledBack if step.version == "4" => {}
                    // With no good release to go back to, a failure that changed what ran
                    // says so.
                    Outcome::RollbackFailed if step.version == "4" && good.is_none() => {}
                    other => return Err(at(format!("{other:?}: {:?}", report.error))),
                }
            }
            Op::Rollback => {
                let Some(newest) = history.last() else {
                    continue;
                };
                let target = history
                    .iter()
                    .rev()
                    .find(|s| effective(stack, s) != effective(stack, newest))
                    .cloned();
                let req = request(&file, newest);
                let report = deployer.rollback(&req, None, &Quiet).await;
                match (&target, report.outcome) {
                    (Some(t), Outcome::Succeeded) => {
                        good = Some(t.clone());
                        history.push(t.clone());
                    }
                    (None, Outcome::Failed) => {}
                    (_, other) => {
                        return Err(at(format!(
                            "rollback to {target:?}: {other:?}: {:?}",
                            report.error
                        )));
                    }
                }
            }
            Op::Disrupt { pick, remove } => {
                let Some(g) = &good else {
                    continue;
                };
                let names: Vec<String> = engine.containers().into_keys().collect();
                if names.is_empty() {
                    continue;
                }
                let name = &names[pick % names.len()];
                if *remove {
                    use crate::engine::Engine as _;
                    engine.remove_container(name, true).await.unwrap();
                } else {
                    engine.stop_by_hand(name);
                }
                let report = deployer.reconcile(&request(&file, g), &Quiet).await;
                if report.outcome != Outcome::Succeeded {
                    return Err(at(format!(
                        "reconcile after {name} went: {:?}: {:?}",
                        report.outcome, report.error
                    )));
                }
            }
        }
        if let Some(g) = &good {
            check(stack, g, &engine, &deployer, &file)
                .await
                .map_err(at)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_stacks_and_deploys_converge(
        (stack, ops) in stack().prop_flat_map(|s| {
            let n = s.len();
            (Just(s), ops(n))
        })
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let result = rt.block_on(run(&stack, &ops));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
