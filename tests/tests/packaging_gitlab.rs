//! The GitLab CI template (`packaging/gitlab/gantry.gitlab-ci.yml`) run by a real runner of
//! `.gitlab-ci.yml` files: `gitlab-ci-local` (npm, installed by `tests/env/up gitlabci`), whose
//! shell executor runs the jobs on this host as a GitLab shell runner would. The jobs' `aws` is
//! the AWS CLI that `up gitlabci` pinned (first on their PATH): it honours AWS_ENDPOINT_URL, by
//! which the jobs reach moto (Debian 12's awscli 2.9 ignores it and would call AWS itself).
//!
//! A project that `include:`s the template (a local copy, as the template's header suggests)
//! with a Dockerfile and a stack under `deploy/`, in a git repository:
//! - two pipelines, one per commit: `gantry-build` logs in to the registry with
//!   `aws ecr get-login-password` (moto's ECR token; the test registry takes it as user `AWS`),
//!   builds and pushes `IMAGE:$CI_COMMIT_SHA` to the local registry; `gantry-deploy` runs
//!   `gantry remote deploy` with the release tarball's static `gantry`, which uploads the
//!   bundle to moto's S3 and sends `Gantry-Deploy` to the instances tagged `Role=web`;
//! - the manual `gantry-rollback` job with `GANTRY_ROLLBACK_TO` = the first commit's SHA (a
//!   value the team knows), then with an unknown value (the job fails, exit 65);
//! - a third pipeline with `GANTRY_BUNDLE_BUCKET` empty: no bundle is uploaded or sent, and the
//!   instance deploys the stack's files it already has (host-local stacks).
//!
//! SSM is the stand-in `tests/standins/ssm.py` (SSM and its agent cannot run here): it runs the
//! documents' scripts on this host for its one "instance", which fetches the bundle from moto's
//! S3 and deploys with the same static `gantry` in-process (`GANTRY_LOCAL=1`, no daemon), pulling
//! from the local registry through ECR credentials (`registries.ecr`). What the container
//! prints shows which commit's image runs.
//!
//! `#[ignore]`d in the workspace run: `packaging/test` builds the static binaries and runs it.

mod packaging_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use gantry_tests::aws::{SsmStandIn, boto};
use gantry_tests::{docker, env, stderr, stdout, unique, wait_for};
use packaging_support::{TRIPLE, dist, repo, run};

/// `git` in `dir`, with an identity (the runner reads the commit from the repository).
fn git(dir: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .args([
            "-c",
            "user.name=Gantry Test",
            "-c",
            "user.email=test@gantry.invalid",
        ])
        .args(args)
        .current_dir(dir))
    .trim()
    .to_owned()
}

/// What the container of the stack's `web` service printed (the commit's `version` file).
fn running_version(stack: &str) -> String {
    let name = format!("{stack}-web-1");
    wait_for(
        "the web container's output",
        Duration::from_secs(30),
        || {
            let out = docker(&["logs", &name]);
            let text = stdout(&out);
            (!text.trim().is_empty()).then(|| text.trim().to_owned())
        },
    )
}

#[test]
#[ignore = "packaging/test runs it after packaging/build"]
fn the_template_builds_deploys_and_rolls_back_through_gitlab_ci_local() {
    let e = env();
    // Installed by `tests/env/up gitlabci`, with the AWS CLI the build job runs.
    let runner = e.get("GITLAB_CI_LOCAL_BIN");
    let aws_cli = Path::new(e.get("GANTRY_TEST_AWS_CLI"));
    assert!(
        aws_cli.is_file(),
        "{}: no AWS CLI: run tests/env/up gitlabci",
        aws_cli.display()
    );
    let aws_dir = aws_cli.parent().expect("the AWS CLI's directory").display();
    let bin_dir = dist().join(TRIPLE);
    assert!(
        bin_dir.join("gantry").is_file() && bin_dir.join("gantry-fleet").is_file(),
        "{}: no static gantry/gantry-fleet: run packaging/build --target x86_64",
        bin_dir.display()
    );
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display());
    let stack = unique("glci");
    let registry = e.get("GANTRY_TEST_REGISTRY");
    let image = format!("{registry}/gantry-test/{stack}");
    let bucket = format!("{stack}-bundles");
    boto(&format!("c('s3').create_bucket(Bucket='{bucket}')"));

    // The instance: its config names the local registry as an ECR registry (moto's token).
    let work = tempfile::tempdir().unwrap();
    let etc = work.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("gantry.yaml"),
        format!(
            "registries:\n  ecr: [\"{registry}\"]\n  ecr_region: {}\n",
            e.get("GANTRY_TEST_AWS_REGION")
        ),
    )
    .unwrap();
    let aws = [
        ("AWS_REGION", e.get("GANTRY_TEST_AWS_REGION")),
        ("AWS_DEFAULT_REGION", e.get("GANTRY_TEST_AWS_REGION")),
        ("AWS_ACCESS_KEY_ID", e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID")),
        (
            "AWS_SECRET_ACCESS_KEY",
            e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
        ),
        ("AWS_ENDPOINT_URL", e.get("GANTRY_TEST_AWS_ENDPOINT")),
    ];
    let mut instance = serde_json::json!({
        "PATH": path,
        "GANTRY_LOCAL": "1",
        "GANTRY_CONFIG_DIR": etc.display().to_string(),
        "GANTRY_STATE_DIR": work.path().join("state").display().to_string(),
        "DOCKER_HOST": e.get("DOCKER_HOST"),
    });
    for (k, v) in aws {
        instance[k] = v.into();
    }
    let ssm = SsmStandIn::start(&serde_json::json!({
        "instances": {"i-0web1": {"env": instance}},
        "tags": {"Role=web": ["i-0web1"]},
    }));

    // The project, as a team would lay it out.
    let project = work.path().join("project");
    std::fs::create_dir_all(project.join("deploy")).unwrap();
    std::fs::copy(
        repo().join("packaging/gitlab/gantry.gitlab-ci.yml"),
        project.join("gantry.gitlab-ci.yml"),
    )
    .unwrap();
    std::fs::write(
        project.join(".gitlab-ci.yml"),
        format!(
            "include:\n  - local: gantry.gitlab-ci.yml\nvariables:\n  GANTRY_STACK: {stack}\n  GANTRY_IMAGE: {image}\n  GANTRY_BUNDLE_BUCKET: {bucket}\n  GANTRY_TARGET_TAG: Role=web\n"
        ),
    )
    .unwrap();
    std::fs::write(
        project.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY version /version\nCMD [\"sh\", \"-c\", \"cat /version; exec sleep 3600\"]\n",
            e.get("GANTRY_TEST_IMAGE")
        ),
    )
    .unwrap();
    std::fs::write(
        project.join("deploy/compose.yaml"),
        format!("services:\n  web:\n    image: {image}:${{IMAGE_TAG}}\n    init: true\n"),
    )
    .unwrap();
    std::fs::write(project.join("version"), "one\n").unwrap();
    git(&project, &["init", "-q", "-b", "main", "."]);
    git(
        &project,
        &[
            "remote",
            "add",
            "origin",
            "https://gitlab.invalid/shop/app.git",
        ],
    );
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-qm", "one"]);
    let first = git(&project, &["rev-parse", "HEAD"]);
    // As a clone would have it: the runner asks for origin's default branch.
    git(
        &project,
        &["update-ref", "refs/remotes/origin/main", "HEAD"],
    );
    git(&project, &["remote", "set-head", "origin", "main"]);

    // The runner's own environment: the CI image's tools (the pinned AWS CLI first, so that no
    // other `aws` of this machine is run) and the CI role's AWS credentials (S3 and ECR at moto,
    // SSM at the stand-in); docker login writes into a config of its own.
    let docker_config = work.path().join("docker-config");
    std::fs::create_dir(&docker_config).unwrap();
    let gitlab = |args: &[&str]| -> Output {
        let mut cmd = Command::new(runner);
        cmd.args(args)
            .current_dir(&project)
            .env(
                "PATH",
                format!("{aws_dir}:{path}:{}", std::env::var("PATH").unwrap()),
            )
            .env("DOCKER_CONFIG", &docker_config)
            .env("DOCKER_HOST", e.get("DOCKER_HOST"))
            .env("AWS_ENDPOINT_URL_SSM", &ssm.url)
            .env_remove("AWS_PROFILE");
        for (k, v) in aws {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run gitlab-ci-local");
        eprintln!(
            "--- gitlab-ci-local {args:?}\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        out
    };
    let cleanup = || {
        gantry_tests::remove_project(&stack);
        for tag in [first.as_str(), "latest"] {
            docker(&["rmi", &format!("{image}:{tag}")]);
        }
    };

    // Pipeline 1: build, push, deploy.
    let out = gitlab(&[]);
    let text = stdout(&out);
    assert!(out.status.success(), "pipeline 1 failed: {text}");
    assert!(
        text.contains("PASS  gantry-build") && text.contains("PASS  gantry-deploy"),
        "{text}"
    );
    assert!(text.contains("== i-0web1 Success exit 0"), "{text}");
    assert!(text.contains("1 of 1 instances agree: exit 0"), "{text}");
    assert!(
        !text.contains("gantry-rollback starting"),
        "the rollback job is manual: {text}"
    );
    assert_eq!(running_version(&stack), "one");

    // Pipeline 2: a new commit, a new image, a new pipeline id.
    std::fs::write(project.join("version"), "two\n").unwrap();
    git(&project, &["commit", "-qam", "two"]);
    let second = git(&project, &["rev-parse", "HEAD"]);
    let out = gitlab(&[]);
    let text = stdout(&out);
    let ok = out.status.success();
    let version = running_version(&stack);
    docker(&["rmi", &format!("{image}:{second}")]);
    assert!(ok, "pipeline 2 failed: {text}");
    assert!(text.contains("succeeded release=r2"), "{text}");
    assert_eq!(version, "two", "{text}");

    // The manual rollback, to the first commit's SHA as the team knows it.
    let out = gitlab(&[
        "--job",
        "gantry-rollback",
        "--variable",
        &format!("GANTRY_ROLLBACK_TO={first}"),
    ]);
    let text = stdout(&out);
    let ok = out.status.success();
    let version = running_version(&stack);
    if !ok || version != "one" {
        cleanup();
    }
    assert!(ok, "rollback job failed: {text}");
    assert!(text.contains("PASS  gantry-rollback"), "{text}");
    assert!(text.contains("rolled_back_to=r1"), "{text}");
    assert_eq!(version, "one", "{text}");

    // An unknown value: the job fails with Gantry's 65, nothing changes.
    let out = gitlab(&[
        "--job",
        "gantry-rollback",
        "--variable",
        "GANTRY_ROLLBACK_TO=no-such-sha",
    ]);
    let text = stdout(&out);
    let version = running_version(&stack);
    if version != "one" {
        cleanup();
    }
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FAIL 65") || text.contains("exit 65"),
        "{text}"
    );
    assert!(text.contains("has no release no-such-sha"), "{text}");
    assert_eq!(version, "one");

    // Pipeline 3 without a bundle bucket: the instance deploys the files it already has (here,
    // those the last bundle installed) with the new commit's image.
    std::fs::write(project.join("version"), "three\n").unwrap();
    git(&project, &["commit", "-qam", "three"]);
    let third = git(&project, &["rev-parse", "HEAD"]);
    let out = gitlab(&["--variable", "GANTRY_BUNDLE_BUCKET="]);
    let text = stdout(&out);
    let ok = out.status.success();
    let version = running_version(&stack);
    docker(&["rmi", &format!("{image}:{third}")]);
    cleanup();
    assert!(ok, "pipeline 3 (host-local stack) failed: {text}");
    assert!(!text.contains("uploaded"), "no bundle: {text}");
    assert!(!text.contains("bundle s3://"), "no bundle fetched: {text}");
    assert!(text.contains("1 of 1 instances agree: exit 0"), "{text}");
    assert_eq!(version, "three", "{text}");
}
