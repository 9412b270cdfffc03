//! Architecture 003 (App Runner workers), its team's day on `compose/workers`, against real
//! Docker, a real `gantry daemon` and Secrets Manager (moto).
//!
//! The document's NestJS monorepo is built once and each App Runner service starts one worker
//! with `bash apps/api/scripts/start-worker.sh [worker-file]`, its settings injected from
//! `.env.workers`. Here one image (`compose/workers/Dockerfile`) has `gantry-secrets exec` as
//! its ENTRYPOINT, which runs `start-worker.sh <worker>` with the workers' secret (a Secrets
//! Manager JSON secret: `DB_PASSWORD`, `JWT_SECRET`) in its environment; each worker is a
//! service of the stack, with `.env.workers` as its `env_file` and its own health check.
//!
//! What is a stand-in, and why: the workers are busybox `sh` scripts
//! (`apps/api/src/workers/*.sh`, for `dist/workers/*.js`) that serve `/health` and log their
//! start with a digest of `DB_PASSWORD`; Secrets Manager is moto, reached with static test
//! credentials (`aws.env`) where App Runner gives the instance role's; App Runner's per-service
//! restarts are Docker's restart policy and Gantry's daemon, which reports crash loops; the API
//! Gateway, VPC link and WAF in front are not part of this (each worker answers on its own
//! loopback port). `network_mode: host` because moto listens on loopback only.
//!
//! The day: deploy the four workers (each runs as its own service, sees `.env.workers` and the
//! secret); rotate the secret (`PutSecretValue`): every worker restarts with the new value in
//! its own container, no deployment; ship a release whose `reports` worker crashes at boot: the
//! deploy is rolled back (exit 2, the report names `reports` and carries its error) and every
//! worker runs the previous release; a poison message kills `payments` at run time: it crash-loops
//! and `gantry status` reports it, while the other three keep running untouched.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_tests::arch_exec::{ExampleImage, container_logs, copy_dir, digest16, example_dir};
use gantry_tests::aws::boto;
use gantry_tests::daemon::Daemon;
use gantry_tests::sidecar::{assert_no_secret, value};
use gantry_tests::{docker, env, free_port, http_get, inspect, path_str, stdout, unique, wait_for};

const WORKERS: [&str; 4] = ["api", "notifications", "payments", "reports"];

/// The workers' Secrets Manager secret, deleted on drop.
struct Secret {
    name: String,
}

impl Secret {
    fn put(&self, db_password: &str, jwt: &str) {
        boto(&format!(
            "s = json.dumps({{'DB_PASSWORD': '{db_password}', 'JWT_SECRET': '{jwt}'}})\n\
             try:\n    c('secretsmanager').put_secret_value(SecretId='{0}', SecretString=s)\n\
             except c('secretsmanager').exceptions.ResourceNotFoundException:\n    \
             c('secretsmanager').create_secret(Name='{0}', SecretString=s)",
            self.name
        ));
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        boto(&format!(
            "c('secretsmanager').delete_secret(SecretId='{}', ForceDeleteWithoutRecovery=True)",
            self.name
        ));
    }
}

/// `worker NAME started ...` lines of a worker's container.
fn starts(container: &str) -> Vec<String> {
    container_logs(container)
        .lines()
        .filter(|l| l.starts_with("worker ") && l.contains(" started "))
        .map(str::to_owned)
        .collect()
}

/// What a worker's `/` answers (`<worker> <release>`), or `None`.
fn page(port: u16) -> Option<String> {
    http_get(&format!("http://127.0.0.1:{port}/"))
        .filter(|(code, _)| *code == 200)
        .map(|(_, body)| body.trim().to_owned())
}

#[test]
fn workers_day() {
    let e = env();
    let secret = Secret {
        name: format!("prod/workers/{}", unique("app")),
    };
    let (pw1, pw2, jwt) = (value("pw1"), value("pw2"), value("jwt"));
    secret.put(&pw1, &jwt);

    let mut image = ExampleImage::new("workers");
    image.build("workers", "v1", |_| {});
    // Release v2: a bug in the reports worker makes it throw at boot.
    image.build("workers", "v2", |ctx| {
        let file = ctx.join("apps/api/src/workers/reports.sh");
        let text = std::fs::read_to_string(&file).unwrap();
        let broken = format!(
            "echo 'TypeError: Cannot read properties of undefined (reading \"cron\")' >&2\nexit 1\n{text}"
        );
        std::fs::write(&file, broken).unwrap();
    });

    let mut d = Daemon::start("daemon:\n  heal:\n    crash_loop_deaths: 3\n", &[]);
    let text = std::fs::read_to_string(example_dir("workers").join("compose.yaml")).unwrap();
    let (stack, file) = d.stack("workers", &text);
    let dir = file.parent().unwrap().to_owned();
    copy_dir(&example_dir("workers"), &dir);
    std::fs::write(
        dir.join("aws.env"),
        format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nAWS_REGION={}\nAWS_ENDPOINT_URL={}\n",
            e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID"),
            e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
            e.get("GANTRY_TEST_AWS_REGION"),
            e.get("GANTRY_TEST_AWS_ENDPOINT"),
        ),
    )
    .unwrap();
    let ports: BTreeMap<&str, u16> = WORKERS.iter().map(|w| (*w, free_port())).collect();
    let mut vars = vec![
        format!("WORKERS_IMAGE={}", image.repo),
        format!("WORKERS_SECRET_ID={}", secret.name),
        "SECRETS_REFRESH=2s".to_owned(),
    ];
    for (w, p) in &ports {
        vars.push(format!("{}_PORT={p}", w.to_uppercase()));
    }
    let deploy = |tag: &str, extra: &[&str]| {
        let tag = format!("IMAGE_TAG={tag}");
        let mut args = vec!["deploy", &stack, "-f", path_str(&file), "--var", &tag];
        for v in &vars {
            args.extend(["--var", v.as_str()]);
        }
        args.extend_from_slice(extra);
        d.gantry(&args)
    };
    let container = |w: &str| format!("{stack}-{w}-1");

    // 1. Deploy: each worker its own service, with .env.workers and the secret.
    let out = deploy("v1", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    for w in WORKERS {
        assert_eq!(page(ports[w]).as_deref(), Some(&*format!("{w} v1")), "{w}");
        let s = starts(&container(w));
        assert_eq!(s.len(), 1, "{w}: {s:?}");
        assert!(
            s[0].contains(&format!("queue=api-{w} "))
                && s[0].ends_with(&format!("db_password_sha256={}", digest16(&pw1))),
            "{w} sees .env.workers and the secret: {}",
            s[0]
        );
        let logs = container_logs(&container(w));
        assert!(logs.contains(&format!("start-worker: {w}")), "{logs}");
    }
    let pid1 = docker(&["exec", &container("payments"), "cat", "/proc/1/comm"]);
    assert_eq!(
        stdout(&pid1).trim(),
        "gantry-secrets",
        "the sidecar is PID 1"
    );
    let ids: BTreeMap<&str, String> = WORKERS
        .iter()
        .map(|w| (*w, inspect(&container(w), "{{.Id}} {{.State.StartedAt}}")))
        .collect();

    // 2. Rotation: every worker restarts with the new value, in the same container.
    secret.put(&pw2, &jwt);
    for w in WORKERS {
        let second = wait_for(
            &format!("{w} to restart with the new secret"),
            Duration::from_secs(30),
            || starts(&container(w)).get(1).cloned(),
        );
        assert!(
            second.ends_with(&format!("db_password_sha256={}", digest16(&pw2))),
            "{w}: {second}"
        );
        assert_eq!(
            inspect(&container(w), "{{.Id}} {{.State.StartedAt}}"),
            ids[w],
            "{w}: restarted inside its container, not redeployed"
        );
    }

    // 3. Release v2 breaks the reports worker at boot: rolled back, exit 2.
    let out = deploy("v2", &[]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {report}");
    assert!(
        report.contains("reports") && report.contains("TypeError: Cannot read properties"),
        "the report names the failing worker and carries its error: {report}"
    );
    for w in WORKERS {
        let at = wait_for(
            &format!("{w} on the previous release"),
            Duration::from_secs(30),
            || page(ports[w]).filter(|p| p == &format!("{w} v1")),
        );
        assert_eq!(at, format!("{w} v1"));
        assert!(
            inspect(&container(w), "{{.Config.Image}}").ends_with(":v1"),
            "{w} runs release v1"
        );
    }

    // The previous release is the stack's state again: deploying it changes nothing.
    let out = deploy("v1", &["--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "unchanged", "{report}");

    // 4. A poison message kills payments at run time: it crash-loops and is reported; the
    // other workers keep running, untouched.
    let before: BTreeMap<&str, (String, usize)> = WORKERS
        .iter()
        .map(|w| {
            let c = container(w);
            (
                *w,
                (
                    inspect(&c, "{{.Id}} {{.State.StartedAt}}"),
                    starts(&c).len(),
                ),
            )
        })
        .collect();
    let poison = docker(&[
        "exec",
        &container("payments"),
        "sh",
        "-c",
        "echo msg-4711 > /tmp/poison",
    ]);
    assert!(poison.status.success());
    let status = wait_for(
        "payments to be reported crash-looping",
        Duration::from_secs(60),
        || {
            let s = d.status(&stack);
            let c = s["stacks"][0]["containers"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == container("payments"))?
                .clone();
            (c["heal"]["crash_looping"] == true).then_some(s)
        },
    );
    let text = d.gantry(&["status", &stack]);
    assert!(
        stdout(&text).contains("CRASH-LOOPING"),
        "gantry status shows it: {}",
        stdout(&text)
    );
    assert!(
        container_logs(&container("payments")).contains("cannot process message msg-4711"),
        "the worker's own reason is in its log"
    );
    for w in ["api", "notifications", "reports"] {
        let c = container(w);
        assert_eq!(
            (
                inspect(&c, "{{.Id}} {{.State.StartedAt}}"),
                starts(&c).len()
            ),
            before[w],
            "{w} was not restarted"
        );
        assert_eq!(inspect(&c, "{{.State.Status}}"), "running", "{w}");
        assert_eq!(page(ports[w]), Some(format!("{w} v1")), "{w} still serves");
        let entry = status["stacks"][0]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == c)
            .cloned()
            .unwrap_or_default();
        assert_eq!(entry["heal"]["crash_looping"], false, "{w}: {entry}");
    }

    let mut all = String::new();
    for w in WORKERS {
        all.push_str(&container_logs(&container(w)));
    }
    all.push_str(&d.log());
    assert_no_secret(&all, &[&pw1, &pw2, &jwt]);
}
