//! Deploys that cannot leave production broken, against the real daemon: rollback to a
//! release by image id after its tag moved, deploy ids applied once, the stack lock, and
//! `kill -9` of the deploying process group (as SSM does) at the worst moments.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use gantry_tests::stack::Stack;
use gantry_tests::{DockerEvent, EventWatch, docker, unique, wait_for};
use gantry_tests::{kill_group, stderr, stdout};

/// A one-service stack whose container needs `min_ready` to count as ready.
fn app_stack(image: &str, min_ready: &str) -> Stack {
    Stack::with_file(&format!(
        "services:\n  app:\n    image: {image}\n    init: true\n    command: [\"sleep\", \"3600\"]\n    environment:\n      VERSION: ${{VERSION:-1}}\n    x-gantry:\n      min_ready: {min_ready}\n"
    ))
}

fn names_like(stack: &Stack, needle: &str) -> Vec<String> {
    stack
        .containers()
        .into_keys()
        .filter(|n| n.contains(needle))
        .collect()
}

#[test]
fn rollback_to_the_first_release_uses_its_image_even_after_the_tag_moved() {
    let repo = format!("gantry-test/{}", unique("app"));
    let tag = format!("{repo}:stable");
    assert!(
        docker(&["tag", "gantry-test/busybox:latest", &tag])
            .status
            .success()
    );
    let stack = app_stack(&tag, "1s");
    let first_image = {
        let out = docker(&["image", "inspect", "-f", "{{.Id}}", &tag]);
        stdout(&out).trim().to_owned()
    };
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let app = format!("{}-app-1", stack.name);
    assert_eq!(stack.image_of(&app), first_image);

    // A new image under the same tag (CI pushed :stable again).
    let builder = unique("build");
    assert!(
        docker(&[
            "run",
            "--name",
            &builder,
            "gantry-test/busybox:latest",
            "sh",
            "-c",
            "echo v2 > /version"
        ])
        .status
        .success()
    );
    assert!(docker(&["commit", &builder, &tag]).status.success());
    docker(&["rm", "-f", &builder]);
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("app: recreating (image)"),
        "{}",
        stdout(&out)
    );
    let second_image = stack.image_of(&app);
    assert_ne!(second_image, first_image);

    let out = stack.gantry(&["rollback", &stack.name, "--to", "r1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stack.image_of(&app), first_image, "runs r1's image, by id");
    let out = stack.gantry(&["releases", &stack.name, "--output", "json"]);
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(releases.as_array().unwrap().len(), 3);
    assert_eq!(releases[0]["outcome"], "succeeded");
    docker(&["rm", "-f", &app]);
    docker(&["rmi", "-f", &tag, &first_image, &second_image]);
}

#[test]
fn the_same_deploy_id_applies_once() {
    let stack = app_stack("${IMAGE}", "1s");
    assert_eq!(stack.deploy(&["--id", "pipeline-7"]).status.code(), Some(0));
    let before = stack.containers();
    // A retry of the same id (SSM or CI retried) with other variables changes nothing.
    let out = stack.deploy(&[
        "--id",
        "pipeline-7",
        "--var",
        "VERSION=2",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["repeated"], true);
    assert_eq!(report["release"], "r1");
    assert_eq!(stack.containers(), before);
    // A new id applies.
    let out = stack.deploy(&["--id", "pipeline-8", "--var", "VERSION=2"]);
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(stack.containers(), before);
}

#[test]
fn a_second_deploy_while_one_runs_exits_75_naming_the_holder_or_waits() {
    let stack = app_stack("${IMAGE}", "6s");
    let mut first = stack.spawn_deploy(&["--id", "slow-1"]);
    let lock = stack
        .state
        .path()
        .join(format!("stacks/{}/lock.json", stack.name));
    wait_for(
        "the first deploy to hold the lock",
        Duration::from_secs(20),
        || lock.exists().then_some(()),
    );
    let out = stack.deploy(&["--var", "VERSION=2"]);
    assert_eq!(out.status.code(), Some(75));
    let text = stdout(&out) + &stderr(&out);
    assert!(text.contains("slow-1") && text.contains("pid"), "{text}");

    // The first deploy still runs (its container proves itself for 6 s): the next one waits.
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first deploy ended before the --lock-wait deploy started"
    );
    let out = stack.deploy(&["--var", "VERSION=2", "--lock-wait", "2m"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "waited for the lock, then deployed"
    );
    assert!(first.wait().unwrap().success());
    // It began once the first had finished: its release starts no earlier than the first's
    // ends (the ledger's times are whole seconds).
    let out = stack.gantry(&["releases", &stack.name, "--output", "json"]);
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (second, first) = (&releases[0], &releases[1]);
    assert_eq!(releases.as_array().map(Vec::len), Some(2), "{releases:#}");
    assert_eq!(first["deploy_id"], "slow-1", "{releases:#}");
    assert_eq!(first["outcome"], "succeeded", "{releases:#}");
    assert_eq!(second["outcome"], "succeeded", "{releases:#}");
    let (finished, started) = (
        first["finished_at"]
            .as_str()
            .expect("the first release finished"),
        second["started_at"]
            .as_str()
            .expect("the second release started"),
    );
    assert!(
        finished <= started,
        "the second deploy started at {started}, before the first finished at {finished}"
    );
}

#[test]
fn kill_9_during_a_job_then_deploy_again_converges() {
    let stack = Stack::with_file(
        "services:\n  migrate:\n    image: ${IMAGE}\n    command: [\"sleep\", \"${JOB_SECONDS:-10}\"]\n  app:\n    image: ${IMAGE}\n    init: true\n    command: [\"sleep\", \"3600\"]\n    x-gantry:\n      min_ready: 1s\n    depends_on:\n      migrate:\n        condition: service_completed_successfully\n",
    );
    let mut deploy = stack.spawn_deploy(&[]);
    // Started, not only created: a deploy killed between the two leaves a job that never ran,
    // which the next deploy just removes (a busy CI machine once hit that window).
    wait_for("the job container running", Duration::from_secs(30), || {
        stack
            .containers()
            .iter()
            .any(|(name, (_, started))| {
                name.contains("-migrate-run-") && !started.starts_with("0001-")
            })
            .then_some(())
    });
    kill_group(&mut deploy);

    // The job container outlives the kill: the next deploy waits for it (a migration is
    // never killed half-way), then runs its own.
    let out = stack.deploy(&["--var", "JOB_SECONDS=0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("recovered interrupted release"), "{said}");
    assert!(said.contains("of an earlier deploy to finish"), "{said}");
    assert!(
        names_like(&stack, "-migrate-run-").is_empty(),
        "no orphaned job container"
    );
    assert_eq!(
        names_like(&stack, "-app-"),
        vec![format!("{}-app-1", stack.name)]
    );
    let out = stack.gantry(&["releases", &stack.name, "--output", "json"]);
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(releases[0]["outcome"], "succeeded");
    assert_eq!(releases[1]["outcome"], "interrupted");
}

#[test]
fn kill_9_during_a_start_first_rollout_then_deploy_again_converges() {
    let stack = app_stack("${IMAGE}", "8s");
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let mut deploy = stack.spawn_deploy(&["--var", "VERSION=2"]);
    // The new container is up next to the old one, still proving itself.
    wait_for("the new container to run", Duration::from_secs(30), || {
        let next = names_like(&stack, "-gantry-next");
        let running = next
            .first()
            .is_some_and(|n| gantry_tests::inspect(n, "{{.State.Running}}") == "true");
        running.then_some(())
    });
    kill_group(&mut deploy);
    assert_eq!(stack.containers().len(), 2, "old and new side by side");

    let out = stack.deploy(&["--var", "VERSION=2"]);
    assert_eq!(out.status.code(), Some(0));
    let names: Vec<String> = stack.containers().into_keys().collect();
    assert_eq!(
        names,
        vec![format!("{}-app-1", stack.name)],
        "no duplicate left"
    );
    let app = format!("{}-app-1", stack.name);
    let env = docker(&[
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &app,
    ]);
    assert!(stdout(&env).contains("VERSION=2"));
    // And a further deploy is a no-op.
    let out = stack.deploy(&["--var", "VERSION=2", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "unchanged");
}

#[test]
fn kill_9_during_a_pull_then_deploy_again_converges() {
    use std::process::Stdio;

    let e = gantry_tests::env();
    let registry = e.get("GANTRY_TEST_REGISTRY");
    let (user, password) = (
        e.get("GANTRY_TEST_REGISTRY_USER"),
        e.get("GANTRY_TEST_REGISTRY_PASSWORD"),
    );
    // A 64 MiB random layer, so that the pull takes a while.
    let builder = unique("big");
    let image = format!("{registry}/gantry-test/{builder}:v1");
    assert!(
        docker(&[
            "run",
            "--name",
            &builder,
            e.get("GANTRY_TEST_IMAGE"),
            "sh",
            "-c",
            "head -c 67108864 /dev/urandom > /blob"
        ])
        .status
        .success()
    );
    assert!(docker(&["commit", &builder, &image]).status.success());
    docker(&["rm", "-f", &builder]);
    let config = tempfile::tempdir().unwrap();
    let auth = gantry_tests::base64(format!("{user}:{password}"));
    std::fs::write(
        config.path().join("config.json"),
        format!("{{\"auths\":{{\"{registry}\":{{\"auth\":\"{auth}\"}}}}}}"),
    )
    .unwrap();
    let pushed = std::process::Command::new("docker")
        .env("DOCKER_HOST", e.get("DOCKER_HOST"))
        .env("DOCKER_CONFIG", config.path())
        .args(["push", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(pushed.success(), "push {image}");
    docker(&["rmi", "-f", &image]);

    let stack = app_stack(&image, "1s");
    let file = stack.file();
    let log_path = config.path().join("deploy.log");
    let mut deploy = stack
        .command(&["deploy", &stack.name, "-f", file.to_str().unwrap()])
        .env("DOCKER_CONFIG", config.path())
        .env("GANTRY_LOG", "gantry_agent=debug,warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    // Killed once the pull has started (the engine logs it as it asks Docker for the image)...
    wait_for("the pull to start", Duration::from_secs(30), || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.lines()
            .any(|l| l.contains("pulling image") && l.contains(&image))
            .then_some(())
    });
    kill_group(&mut deploy);
    // ... and before it ended: the image is not there.
    assert!(
        !docker(&["image", "inspect", &image]).status.success(),
        "the pull had already finished when the deploy was killed (make the layer bigger)"
    );
    assert!(
        stack.containers().is_empty(),
        "nothing created before the pull ended"
    );

    let out = stack
        .command(&["deploy", &stack.name, "-f", file.to_str().unwrap()])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        names_like(&stack, "-app-"),
        vec![format!("{}-app-1", stack.name)]
    );
    let app = format!("{}-app-1", stack.name);
    docker(&["rm", "-f", &app]);
    docker(&["rmi", "-f", &image]);
}

/// The rollback of a deploy that added a service removes that service's container as the
/// container itself says it stops (its stop signal, its grace period): the release rolled back
/// to has no word on a service it lacks, and Docker's SIGTERM with 10 s would hold a PID 1 that
/// ignores SIGTERM for the whole 10 s. `witness`, added by the same deploy and removed with
/// `extra` at once, exits 8 s after its SIGTERM: `extra`'s SIGKILL coming before that exit is
/// its 3 s grace, seen in Docker's event order (after 10 s it would come after). (3 s and 8 s,
/// not less: the witness's SIGTERM, sent at once, must come before extra's SIGKILL on a loaded
/// 2-core machine.)
#[test]
fn a_rollback_stops_the_new_service_of_the_failed_deploy_by_its_own_signal_and_grace() {
    let stack = app_stack("${IMAGE}", "1s");
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    // `extra` (a PID 1 `sleep`: it ignores SIGTERM and SIGUSR1 alike) and `witness` are
    // running before `app` fails, so the rollback has them to remove.
    stack.write(
        "services:\n  app:\n    image: ${IMAGE}\n    command: [\"sh\", \"-c\", \"exit 3\"]\n    depends_on: [extra, witness]\n    x-gantry: {min_ready: 1s}\n  extra:\n    image: ${IMAGE}\n    command: [\"sleep\", \"3600\"]\n    stop_signal: SIGUSR1\n    stop_grace_period: 3s\n    x-gantry: {min_ready: 0s}\n  witness:\n    image: ${IMAGE}\n    command: [\"sh\", \"-c\", \"trap 'sleep 8; exit 0' TERM; while true; do sleep 0.1; done\"]\n    stop_grace_period: 30s\n    x-gantry: {min_ready: 0s}\n",
    );
    let (extra, witness) = (
        format!("{}-extra-1", stack.name),
        format!("{}-witness-1", stack.name),
    );
    let watch = EventWatch::start(&[&format!("label=com.docker.compose.project={}", stack.name)]);
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(2), "the failed deploy rolls back");
    assert!(
        stdout(&out).contains("extra: removing (not in the release rolled back to)"),
        "{}",
        stdout(&out)
    );
    assert!(
        names_like(&stack, "extra").is_empty() && names_like(&stack, "witness").is_empty(),
        "the rollback removed extra and witness"
    );
    // Both are gone: their events are Docker's to send now.
    let dead = |e: &DockerEvent, name: &str| e.name == name && e.action == "die";
    watch.wait_for("both deaths", Duration::from_secs(10), |events| {
        (events.iter().any(|e| dead(e, &extra)) && events.iter().any(|e| dead(e, &witness)))
            .then_some(())
    });
    let events = watch.stop();
    let timeline = DockerEvent::kill_die_timeline(&events);
    let kills = |name: &str| -> Vec<&DockerEvent> {
        events
            .iter()
            .filter(|e| e.name == name && e.action == "kill")
            .collect()
    };
    let signals: Vec<&str> = kills(&extra).iter().map(|e| e.signal.as_str()).collect();
    // SIGUSR1 (10), then SIGKILL (9) once its grace is over.
    assert_eq!(signals, ["10", "9"], "kill events of {extra}: {timeline}");
    let signals: Vec<&str> = kills(&witness).iter().map(|e| e.signal.as_str()).collect();
    assert_eq!(signals, ["15"], "kill events of {witness}: {timeline}");
    let witness_exit = events
        .iter()
        .find(|e| dead(e, &witness))
        .expect("witness died");
    assert_eq!(
        witness_exit.exit_code, "0",
        "witness exited by its trap: {timeline}"
    );
    // The two leave at once (the witness had its SIGTERM before extra's SIGKILL), and extra's
    // SIGKILL came while the witness was still in its trap's 8 s: its grace was its own 3 s.
    let (witness_term, extra_kill) = (kills(&witness)[0].at, kills(&extra)[1].at);
    assert!(
        witness_term < extra_kill,
        "the rollback did not remove {extra} and {witness} at once: {timeline}"
    );
    assert!(
        extra_kill < witness_exit.at,
        "{extra} was not killed at the end of its own 3 s grace: {timeline}"
    );
}
