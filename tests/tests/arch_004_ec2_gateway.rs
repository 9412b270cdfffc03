//! Architecture 004 (connexing: one EC2 instance behind an ALB, GitLab CI → SSM Run Command →
//! Docker Compose, Spring gateway + Java services + Rasa + Kafka in KRaft mode, secrets in AWS
//! Secrets Manager) played as its team's day, with `compose/ec2-gateway`, against the real
//! Docker daemon, moto and the local registry:
//!
//! 1. CI builds the stand-in image once per commit (`compose/ec2-gateway/Dockerfile`,
//!    `RELEASE=<sha>`) and pushes it to one repository per service in the local registry,
//!    which Gantry pulls from as ECR (a token from moto's GetAuthorizationToken);
//! 2. on the host, a real `gantry-secrets run` renders the Secrets Manager secret (moto) into
//!    the stack's `secrets.env`, and a real `gantry daemon` runs the deploys;
//! 3. the GitLab job's `gantry remote deploy --stack-dir deploy --bundle-bucket ...` uploads the
//!    stack's files to moto's S3 and sends `Gantry-Deploy` to the instance; the document's
//!    script (`gantry fetch-bundle`, `gantry deploy --var IMAGE_TAG=<sha> --id <pipeline>`)
//!    runs on this host through the daemon's socket;
//! 4. checks: the gateway answers on its fixed port through the edge switch (Docker publishes
//!    nothing), routes to accounts by DNS name, memory limits as listed, Kafka's KRaft settings
//!    and its named volume (formatted once, kept), the migration job ran once per release
//!    before the services, the secret reached the services that read it and not the others;
//! 5. the secret is rotated in Secrets Manager: the daemon sees the new `secrets.env` and
//!    redeploys, health gated, exactly the services that read it;
//! 6. a release whose gateway reports DOWN is rolled back by itself (exit 2 through SSM) while
//!    a client keeps getting the page; the migration ran for it once and not again on the way
//!    back;
//! 7. the manual rollback job: `gantry remote rollback --to <first sha>` (Gantry-Rollback)
//!    brings the first commit back, without running any migration.
//!
//! Stand-ins, and why: SSM and its agent cannot run here, so `tests/standins/ssm.py` plays
//! them (it runs the documents of `packaging/ssm/` with `sh` on this host); the applications
//! are busybox scripts (`compose/ec2-gateway/app/`); RDS is not contacted (the migration
//! writes its history into a named volume); the ALB is the test's own HTTP client on
//! 127.0.0.1. Needs root with `nft` (the edge switch): a prerequisite (CI=true fails without).

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gantry_tests::arch_host::{
    Images, Secret, Traffic, env_sha256_in, example_dir, moto_env, sha256_hex, volume_file,
};
use gantry_tests::aws::{SsmStandIn, boto};
use gantry_tests::daemon::Daemon;
use gantry_tests::sidecar::{Sidecar, Vault, assert_no_secret, sidecar_command};
use gantry_tests::{
    ANSWER_WITHIN, bin, edge_switch_available, env, free_port, http_get, http_get_within, inspect,
    stdout, unique, wait_for,
};

/// Commit SHAs of three pipelines: two good releases and one whose gateway reports DOWN.
const SHA_1: &str = "4b1d2c3e5f60718293a4b5c6d7e8f90a1b2c3d4e";
const SHA_2: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d";
const SHA_BAD: &str = "badc0ffee0ddf00d1234567890abcdef12345678";

/// The services CI builds per commit, one ECR repository each.
const BUILT: [&str; 4] = ["gateway", "accounts", "conversations", "migrations"];

/// Memory limits of compose/ec2-gateway (12 GB of the t4g.xlarge's 16).
const LIMITS: [(&str, u64); 5] = [
    ("kafka", 5 << 30),
    ("rasa", 2 << 30),
    ("accounts", 1536 << 20),
    ("conversations", 1536 << 20),
    ("gateway", 1 << 30),
];

/// `gantry remote ...` as the GitLab job runs it: SSM is the stand-in, S3 and ECR are moto.
fn remote(ssm: &SsmStandIn, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("gantry"));
    cmd.arg("remote").args(args).env_remove("AWS_PROFILE");
    for (k, v) in moto_env() {
        cmd.env(k, v);
    }
    cmd.env("AWS_ENDPOINT_URL_SSM", &ssm.url);
    let out = cmd.output().expect("run gantry remote");
    eprintln!(
        "$ gantry remote {}\n--- exit {:?}\n{}{}",
        args.join(" "),
        out.status.code(),
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Container id per service (replica 1) of the stack.
fn ids(stack: &str) -> BTreeMap<&'static str, String> {
    ["kafka", "rasa", "accounts", "conversations", "gateway"]
        .into_iter()
        .map(|s| (s, inspect(&format!("{stack}-{s}-1"), "{{.Id}}")))
        .collect()
}

/// Releases the migration job recorded (one line per run: release and time).
fn migrations(stack: &str) -> Vec<String> {
    volume_file(&format!("{stack}_schema-history"), "history")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn connexing_day_on_ec2_deploy_rotate_bad_release_rollback_by_sha() {
    if !edge_switch_available() {
        return;
    }
    let t0 = Instant::now();
    let e = env();
    let host = e.get("GANTRY_TEST_REGISTRY");
    let registry = format!("{host}/{}", unique("c1"));

    // CI: the pinned upstream images (mirrored to ECR) and one build per commit.
    let mut images = Images::default();
    let context = example_dir("ec2-gateway");
    let mut pushed = Vec::new();
    images.build(&context, &format!("{registry}/platform:build"), &[]);
    for (repo, tag) in [("kafka", "3.8.0"), ("rasa", "3.6.20")] {
        let to = format!("{registry}/connexing/{repo}:{tag}");
        images.tag(&format!("{registry}/platform:build"), &to);
        pushed.push(to);
    }
    for (sha, fault) in [(SHA_1, "none"), (SHA_2, "none"), (SHA_BAD, "gateway-down")] {
        let built = format!("{registry}/build:{sha}");
        images.build(&context, &built, &[("RELEASE", sha), ("FAULT", fault)]);
        for repo in BUILT {
            let to = format!("{registry}/connexing/{repo}:{sha}");
            images.tag(&built, &to);
            pushed.push(to);
        }
    }
    images.push(&pushed);
    for tag in &pushed {
        images.pulled(tag);
    }
    eprintln!("images built and pushed in {:?}", t0.elapsed());

    // The instance: gantryd pulling from "ECR" with the instance role (moto).
    let mut daemon_env: Vec<(&str, String)> = moto_env();
    daemon_env.push(("GANTRY_ECR_REGISTRIES", host.to_owned()));
    let daemon_env: Vec<(&str, &str)> = daemon_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Daemon::start("daemon:\n  debounce: 500ms\n", &daemon_env);
    let stack = unique("connexing");
    d.stacks.push(stack.clone());
    let stack_dir = d.config_dir().join("stacks").join(&stack);
    std::fs::create_dir_all(&stack_dir).unwrap();

    // Secrets Manager → secrets.env, by the real sidecar in host mode (systemd's gantry-secrets).
    let (pw1, pw2, key) = (
        unique("db-pw-one"),
        unique("db-pw-two"),
        unique("partner-key"),
    );
    let secret = Secret::create(
        &unique("connexing/prod/app"),
        &serde_json::json!({"SPRING_DATASOURCE_PASSWORD": pw1, "PARTNER_API_KEY": key}),
    );
    let work = tempfile::tempdir().unwrap();
    let secrets_yaml = work.path().join("secrets.yaml");
    let secrets_env = stack_dir.join("secrets.env");
    std::fs::write(
        &secrets_yaml,
        format!(
            "sources:\n  - aws: {{ id: {} }}\nrefresh: 1s\noutputs:\n  - path: {}\n",
            secret.name,
            secrets_env.display()
        ),
    )
    .unwrap();
    let no_vault = Vault {
        addr: String::new(),
        token: String::new(),
        bao: "bao".into(),
    };
    let moto = moto_env();
    let moto_refs: Vec<(&str, &str)> = moto.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut c = sidecar_command(work.path(), &no_vault, &moto_refs);
    c.0.env_remove("VAULT_ADDR").env_remove("VAULT_TOKEN");
    c.0.args(["run", "--config"]).arg(&secrets_yaml);
    let mut sidecar = Sidecar::spawn(c);
    wait_for("secrets.env", Duration::from_secs(30), || {
        secrets_env.exists().then_some(())
    });

    // The repository's deploy/ directory: the example's compose file and this host's .env.
    let port = free_port();
    let deploy = work.path().join("deploy");
    std::fs::create_dir(&deploy).unwrap();
    std::fs::copy(context.join("compose.yaml"), deploy.join("compose.yaml")).unwrap();
    std::fs::write(
        deploy.join(".env"),
        format!(
            "REGISTRY={registry}\nGATEWAY_ADDRESS=127.0.0.1\nGATEWAY_PORT={port}\nGATEWAY_READY_DEADLINE=10s\n"
        ),
    )
    .unwrap();
    let bucket = unique("connexing-bundles");
    boto(&format!("c('s3').create_bucket(Bucket='{bucket}')"));

    // SSM and the instance's agent: the documents' scripts run here, against the daemon.
    let mut instance: serde_json::Map<String, serde_json::Value> = moto
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone().into()))
        .collect();
    for (k, v) in [
        (
            "PATH",
            format!(
                "{}:/usr/bin:/bin",
                bin("gantry").parent().unwrap().display()
            ),
        ),
        ("GANTRY_SOCKET", d.socket.display().to_string()),
        ("GANTRY_CONFIG_DIR", d.config_dir().display().to_string()),
        ("GANTRY_STATE_DIR", d.state_dir().display().to_string()),
        ("DOCKER_HOST", e.get("DOCKER_HOST").to_owned()),
    ] {
        instance.insert(k.to_owned(), v.into());
    }
    let ssm = SsmStandIn::start(&serde_json::json!({"instances": {"i-0c1app": {"env": instance}}}));
    let deploy_sha = |sha: &str, pipeline: &str| {
        remote(
            &ssm,
            &[
                "deploy",
                &stack,
                "--image-tag",
                sha,
                "--id",
                pipeline,
                "--stack-dir",
                deploy.to_str().unwrap(),
                "--bundle-bucket",
                &bucket,
                "--instance-ids",
                "i-0c1app",
                "--max-concurrency",
                "1",
                "--max-errors",
                "0",
                "--poll-interval",
                "1s",
            ],
        )
    };
    let gateway = format!("http://127.0.0.1:{port}/");
    let page = |want: &str| {
        let (url, want) = (gateway.clone(), want.to_owned());
        wait_for(
            &format!("the gateway page {want}"),
            Duration::from_secs(20),
            move || http_get(&url).filter(|(s, b)| *s == 200 && b.contains(&want)),
        )
    };

    // --- Pipeline 101: the first commit.
    let started = Instant::now();
    let out = deploy_sha(SHA_1, "101");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("== i-0c1app Success exit 0"), "{text}");
    assert!(text.contains("1 of 1 instances agree: exit 0"), "{text}");
    eprintln!("first deploy through SSM: {:?}", started.elapsed());
    page(&format!("connexing gateway {SHA_1}"));

    // The ALB's view: the fixed port, owned by the edge switch (Docker publishes nothing).
    let gw = format!("{stack}-gateway-1");
    assert_eq!(
        inspect(&gw, "{{index .Config.Labels \"io.gantry.edge\"}}"),
        format!("127.0.0.1:{port}:8080")
    );
    let published = inspect(&gw, "{{json .NetworkSettings.Ports}}");
    assert!(
        !published.contains("HostPort"),
        "Docker publishes nothing: {published}"
    );
    let (code, body) = http_get_within(
        &format!("http://127.0.0.1:{port}/actuator/health"),
        ANSWER_WITHIN,
    )
    .unwrap();
    assert_eq!((code, body.trim()), (200, r#"{"status":"UP"}"#));
    // Service discovery by Docker DNS: the gateway's route reaches accounts.
    let (code, body) = http_get_within(
        &format!("http://127.0.0.1:{port}/cgi-bin/accounts"),
        ANSWER_WITHIN,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!(r#""release":"{SHA_1}""#)), "{body}");

    // Memory limits as the compose file lists them.
    for (service, bytes) in LIMITS {
        assert_eq!(
            inspect(&format!("{stack}-{service}-1"), "{{.HostConfig.Memory}}"),
            bytes.to_string(),
            "memory limit of {service}"
        );
    }
    // Kafka: KRaft settings, its data on the named volume, formatted once.
    let kafka = format!("{stack}-kafka-1");
    let kenv = inspect(&kafka, "{{json .Config.Env}}");
    for setting in [
        "KAFKA_PROCESS_ROLES=broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS=1@kafka:9093",
        "KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://kafka:9092",
        "KAFKA_HEAP_OPTS=-Xms3g -Xmx4g",
    ] {
        assert!(kenv.contains(setting), "{setting} in {kenv}");
    }
    assert_eq!(
        inspect(
            &kafka,
            "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}"
        ),
        format!("volume {stack}_kafka-data /var/lib/kafka/data")
    );
    let meta = volume_file(&format!("{stack}_kafka-data"), "meta.properties");
    assert!(meta.contains("cluster.id=q1Sh-9_ISia_zwGINzRvyQ"), "{meta}");

    // The migration ran once, before the services (its job line comes before any rollout).
    assert_eq!(migrations(&stack), [SHA_1]);
    let job_done = text
        .find("migrate: job succeeded")
        .expect("the job in the deploy's output");
    for service in ["kafka", "rasa", "accounts", "conversations", "gateway"] {
        let created = text.find(&format!("{service}: creating")).expect(service);
        assert!(job_done < created, "the job ran before {service}:\n{text}");
    }

    // The secret reached the services that read secrets.env, and only them.
    let sha_pw1 = sha256_hex(pw1.as_bytes());
    let none = sha256_hex(b"");
    for service in ["accounts", "conversations"] {
        assert!(
            env_sha256_in(
                &format!("{stack}-{service}-1"),
                "httpd",
                "SPRING_DATASOURCE_PASSWORD"
            ) == sha_pw1,
            "{service} runs with the password from Secrets Manager"
        );
    }
    for service in ["gateway", "rasa", "kafka"] {
        assert!(
            env_sha256_in(
                &format!("{stack}-{service}-1"),
                "httpd",
                "SPRING_DATASOURCE_PASSWORD"
            ) == none,
            "{service} does not read secrets.env"
        );
    }

    // --- Rotation in Secrets Manager: the daemon redeploys exactly accounts and conversations.
    let before = ids(&stack);
    let releases_before = d.releases(&stack).len();
    let gated = |log: &str| {
        log.matches(&format!("{stack}-accounts-1 serving after"))
            .count()
    };
    let gates_before = gated(&d.log());
    let traffic = Traffic::start(&gateway);
    let rotated_at = Instant::now();
    secret.put(&serde_json::json!({"SPRING_DATASOURCE_PASSWORD": pw2, "PARTNER_API_KEY": key}));
    let release = wait_for(
        "the redeploy after the rotation",
        Duration::from_secs(90),
        || {
            let r = d.releases(&stack);
            (r.len() > releases_before && r[0]["outcome"] != "in_progress").then(|| r[0].clone())
        },
    );
    let seen = traffic.finish();
    eprintln!(
        "rotation: secrets.env rendered and the stack redeployed in {:?}; gateway during it: {} ok, {} failed",
        rotated_at.elapsed(),
        seen.ok,
        seen.failed
    );
    assert_eq!(release["outcome"], "succeeded", "{release}");
    let after = ids(&stack);
    for service in ["accounts", "conversations"] {
        assert_ne!(before[service], after[service], "{service} was recreated");
        assert!(
            env_sha256_in(
                &format!("{stack}-{service}-1"),
                "httpd",
                "SPRING_DATASOURCE_PASSWORD"
            ) == sha256_hex(pw2.as_bytes()),
            "{service} runs with the rotated password"
        );
    }
    for service in ["gateway", "rasa", "kafka"] {
        assert_eq!(before[service], after[service], "{service} was left alone");
    }
    assert_eq!(seen.failed, 0, "the gateway kept answering");
    let log = d.log();
    assert!(log.contains("watched files changed; redeploying"));
    assert_eq!(
        gated(&log),
        gates_before + 1,
        "the new accounts container passed its health gate before it served"
    );
    // The job reads secrets.env too: a new password is a new configuration, so it runs once
    // more (before accounts and conversations are replaced). Flyway finds nothing to apply.
    assert_eq!(migrations(&stack), [SHA_1, SHA_1]);

    // --- Pipeline 102: the second commit. Kafka and Rasa are not touched.
    let out = deploy_sha(SHA_2, "102");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    page(&format!("connexing gateway {SHA_2}"));
    let good = ids(&stack);
    assert_eq!(good["kafka"], before["kafka"], "kafka kept across releases");
    assert_eq!(good["rasa"], before["rasa"]);

    // --- Pipeline 103: the gateway reports DOWN. Rolled back by itself while pages are served.
    let history = migrations(&stack);
    let traffic = Traffic::start(&gateway);
    let out = deploy_sha(SHA_BAD, "103");
    let seen = traffic.finish();
    let text = stdout(&out);
    eprintln!(
        "bad release: gateway {} ok, {} failed",
        seen.ok, seen.failed
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("1 of 1 instances agree: exit 2"), "{text}");
    assert!(text.contains(r#"/status is "DOWN", not "UP""#), "{text}");
    assert_eq!(seen.failed, 0, "pages kept being served: {seen:?}");
    assert_eq!(
        seen.bodies,
        [format!("connexing gateway {SHA_2}")],
        "only the good release answered"
    );
    let mut want = history.clone();
    want.push(SHA_BAD.to_owned());
    assert_eq!(
        migrations(&stack),
        want,
        "the bad release's migration ran once, before the services"
    );
    let (_, body) = http_get_within(
        &format!("http://127.0.0.1:{port}/cgi-bin/accounts"),
        ANSWER_WITHIN,
    )
    .unwrap();
    assert!(
        body.contains(SHA_2),
        "accounts is back on the good release: {body}"
    );

    // --- The manual rollback job: back to the first commit, by its SHA.
    let history = migrations(&stack);
    let out = remote(
        &ssm,
        &[
            "rollback",
            &stack,
            "--to",
            SHA_1,
            "--instance-ids",
            "i-0c1app",
            "--poll-interval",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    page(&format!("connexing gateway {SHA_1}"));
    let (_, body) = http_get_within(
        &format!("http://127.0.0.1:{port}/cgi-bin/accounts"),
        ANSWER_WITHIN,
    )
    .unwrap();
    assert!(body.contains(SHA_1), "{body}");
    assert_eq!(
        migrations(&stack),
        history,
        "no migration runs on a rollback"
    );
    assert_eq!(ids(&stack)["kafka"], before["kafka"]);
    let starts = volume_file(&format!("{stack}_kafka-data"), "starts");
    assert_eq!(starts.lines().count(), 1, "kafka started once: {starts}");
    assert!(
        env_sha256_in(
            &format!("{stack}-accounts-1"),
            "httpd",
            "SPRING_DATASOURCE_PASSWORD"
        ) == sha256_hex(pw2.as_bytes()),
        "a rollback keeps the current secret"
    );

    // What the team checks from its desk: Gantry-Status through SSM.
    let out = remote(
        &ssm,
        &[
            "status",
            &stack,
            "--instance-ids",
            "i-0c1app",
            "--poll-interval",
            "1s",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // r1 pipeline 101, r2 the rotation, r3 pipeline 102, r4 the bad 103, r5 the rollback.
    assert!(
        text.contains(&format!(
            "stack {stack}: last r5 succeeded, good r5 succeeded"
        )),
        "{text}"
    );
    for service in ["kafka", "rasa", "accounts", "conversations", "gateway"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("{stack}-{service}-1 ")))
            .unwrap_or_else(|| panic!("{service} in {text}"));
        assert!(line.contains("running"), "{line}");
    }

    assert!(sidecar.running(), "gantry-secrets kept running");
    assert_no_secret(&sidecar.output(), &[&pw1, &pw2, &key]);
    assert_no_secret(&d.log(), &[&pw1, &pw2, &key]);
    eprintln!("the whole day: {:?}", t0.elapsed());
}
