//! Unit tests of the command line checks of `gantry remote` (nothing is sent).

use super::*;

#[derive(Debug, clap::Parser)]
struct Line {
    #[command(flatten)]
    remote: RemoteArgs,
}

/// The command line as `gantry remote` parses it, except that no flag is read from the
/// environment: these tests also run inside GitLab jobs, whose CI_JOB_TIMEOUT and
/// CI_JOB_STARTED_AT would otherwise give every command line a job timeout (and tests running
/// in parallel share one environment, so it is not cleared either). A test passes
/// `--job-timeout` / `--job-started-at` when it wants them.
fn parse(args: &[&str]) -> Line {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let command = Line::command().mut_subcommands(|s| s.mut_args(|a| a.env(None)));
    let matches = command
        .try_get_matches_from(std::iter::once("remote").chain(args.iter().copied()))
        .expect("clap parses it");
    Line::from_arg_matches(&matches).expect("clap parses it")
}

fn prepared(args: &[&str]) -> Result<Prepared, RemoteArgsError> {
    prepare(parse(args).remote, SystemTime::now())
}

/// The tests' parse reads no environment, while `gantry remote` reads the CI job's timeout from
/// it; given as flags, they count as in a job.
#[test]
fn the_tests_parse_ignores_the_ci_jobs_environment_that_gantry_reads() {
    use clap::CommandFactory as _;
    let real = Line::command();
    for sub in ["deploy", "rollback", "status"] {
        let sub = real.find_subcommand(sub).expect("a subcommand");
        let env = |id: &str| {
            sub.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env("job_timeout").as_deref(), Some("CI_JOB_TIMEOUT"));
        assert_eq!(env("job_started_at").as_deref(), Some("CI_JOB_STARTED_AT"));
    }
    let p = deploy(&["--instance-ids", "i-1"]).unwrap();
    assert_eq!(p.ceiling, None, "no job timeout unless given");
    let started = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(30));
    let e = deploy(&[
        "--instance-ids",
        "i-1",
        "--job-timeout",
        "90",
        "--job-started-at",
        &started.to_string(),
    ])
    .unwrap_err();
    assert!(matches!(e, RemoteArgsError::NoTimeLeft { .. }), "{e}");
}

fn deploy(extra: &[&str]) -> Result<Prepared, RemoteArgsError> {
    let mut args = vec!["deploy", "shop", "--image-tag", "abc"];
    args.extend(extra);
    prepared(&args)
}

/// `--id "$CI_PIPELINE_ID"` with the variable unset: refused (exit 64) as by `gantry
/// deploy`, where the SSM document took it for no id and the job lost its idempotency.
#[test]
fn an_empty_remote_deploy_id_is_a_usage_error() {
    for id in ["", "  "] {
        let args = [
            "gantry",
            "remote",
            "deploy",
            "shop",
            "--image-tag",
            "a",
            "--id",
            id,
        ];
        let parsed = crate::cli::parse_from(args);
        assert_eq!(parsed.err(), Some(crate::ExitCode::Usage), "--id {id:?}");
    }
    assert!(deploy(&["--id", "4242", "--instance-ids", "i-0123456789abcdef0"]).is_ok());
}

#[test]
fn targets_ssm_would_refuse_are_refused_here_naming_the_flag() {
    let ids: Vec<String> = (0..51).map(|i| format!("i-{i:017x}")).collect();
    let e = deploy(&["--instance-ids", &ids.join(",")]).unwrap_err();
    assert!(
        matches!(e, RemoteArgsError::TooManyInstances { count: 51 }),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("--instance-ids: 51 instances"),
        "{e}"
    );
    assert!(deploy(&["--instance-ids", &ids[..50].join(",")]).is_ok());
    let e = deploy(&["--instance-ids", "i-1,,i-2"]).unwrap_err();
    assert!(e.to_string().contains("--instance-ids"), "{e}");
    for tag in ["Role=web,", "Role=", "=web", "Role", "Role=web,,api"] {
        let e = deploy(&["--tag", tag]).unwrap_err();
        assert!(matches!(e, RemoteArgsError::BadTag { .. }), "{tag}: {e}");
        assert!(e.to_string().starts_with("--tag"), "{e}");
    }
    let many: Vec<String> = (0..51).map(|i| format!("v{i}")).collect();
    let e = deploy(&["--tag", &format!("Role={}", many.join(","))]).unwrap_err();
    assert!(
        matches!(e, RemoteArgsError::TooManyTagValues { count: 51, .. }),
        "{e}"
    );
    let ok = deploy(&["--tag", "Role=web,api"]).unwrap();
    assert_eq!(
        ok.targets,
        Targets::Tag {
            key: "Role".into(),
            values: vec!["web".into(), "api".into()]
        }
    );
    assert!(matches!(
        deploy(&[]).unwrap_err(),
        RemoteArgsError::NoTargets
    ));
}

#[test]
fn an_empty_bundle_bucket_is_refused_not_uploaded_to() {
    let e = deploy(&[
        "--instance-ids",
        "i-1",
        "--stack-dir",
        "deploy",
        "--bundle-bucket",
        "",
    ])
    .unwrap_err();
    assert!(matches!(e, RemoteArgsError::EmptyBundleBucket), "{e}");
    assert!(e.to_string().starts_with("--bundle-bucket"), "{e}");
    let ok = deploy(&["--instance-ids", "i-1"]).unwrap();
    assert!(ok.upload.is_none() && !ok.parameters.contains_key("BundleUrl"));
}

#[test]
fn bounds_that_the_execution_timeout_would_cut_are_refused() {
    let target = ["--instance-ids", "i-1"];
    // The defaults fit: 10m + 30m + 30s < 3600 s.
    let ok = deploy(&target).unwrap();
    assert_eq!(ok.parameters["executionTimeout"], "3600");
    // 10m + 30m + 30s is not below 1800 s.
    let e = deploy(&[&target[..], &["--execution-timeout", "1800"]].concat()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, RemoteArgsError::OverBudget { .. }), "{text}");
    assert!(
        text.contains("--lock-wait 10m + --timeout 30m + 30s to start is not below")
            && text.contains("--execution-timeout 1800")
            && text.contains("lower --timeout or --lock-wait"),
        "{text}"
    );
    // With a bundle, fetch-bundle waits for the stack's lock before the deploy does:
    // 2 x 10m + 30m + 30s fits 3600 s, 2 x 15m + 30m + 30s does not (one wait would).
    let bundle = [
        "--bundle",
        "s3://bucket/shop/x.tar.gz",
        "--bundle-sha256",
        &"a".repeat(64),
    ];
    assert!(deploy(&[&target[..], &bundle].concat()).is_ok());
    let long_wait = ["--lock-wait", "15m"];
    assert!(deploy(&[&target[..], &long_wait].concat()).is_ok());
    let e = deploy(&[&target[..], &bundle, &long_wait].concat()).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "2 x --lock-wait 15m + --timeout 30m + 30s to fetch the bundle and start is not below"
        ),
        "{e}"
    );
    // Exactly at the limit is refused too; one second under passes.
    let at = [
        "--lock-wait",
        "0s",
        "--timeout",
        "30s",
        "--execution-timeout",
        "60",
    ];
    assert!(deploy(&[&target[..], &at].concat()).is_err());
    let under = [
        "--lock-wait",
        "0s",
        "--timeout",
        "29s",
        "--execution-timeout",
        "60",
    ];
    assert!(deploy(&[&target[..], &under].concat()).is_ok());
    // A rollback: --lock-wait and its own 30 min bound (no flag to lower that one).
    let rollback = |lock_wait: &str| {
        prepared(&[
            "rollback",
            "shop",
            "--lock-wait",
            lock_wait,
            "--instance-ids",
            "i-1",
        ])
    };
    let e = rollback("40m").unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("--lock-wait 40m + a rollback's own limit 30m + 30s to start is not below --execution-timeout 3600")
            && text.ends_with("raise --execution-timeout or lower --lock-wait"),
        "{text}"
    );
    assert!(rollback("29m").is_ok());
    // Gantry-Status takes neither.
    assert!(
        prepared(&[
            "status",
            "--instance-ids",
            "i-1",
            "--execution-timeout",
            "1"
        ])
        .is_ok()
    );
    // A value the document's pattern refuses is named here, not by SSM.
    for (flag, value) in [
        ("--timeout", "1m30s"),
        ("--lock-wait", "10"),
        ("--timeout", "5м"),
    ] {
        let e = deploy(&[&target[..], &[flag, value]].concat()).unwrap_err();
        assert!(matches!(e, RemoteArgsError::BadDuration { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{flag} {value:?}")),
            "{e}"
        );
    }
}

#[test]
fn the_wait_ends_a_minute_before_the_ci_jobs_timeout() {
    let now = humantime::parse_rfc3339("2026-03-01T12:10:00Z").unwrap();
    let started = Some("2026-03-01T12:00:00Z");
    // Not in a CI job (or GitLab left it empty): no ceiling.
    assert_eq!(job_ceiling(None, started, now).unwrap(), None);
    assert_eq!(job_ceiling(Some(""), started, now).unwrap(), None);
    // GitLab's seconds, counted from the job's start: 2 h - 10 min - 1 min.
    assert_eq!(
        job_ceiling(Some("7200"), started, now).unwrap(),
        Some(Duration::from_secs(109 * 60))
    );
    // Without a start time, from now.
    assert_eq!(
        job_ceiling(Some("2h"), None, now).unwrap(),
        Some(Duration::from_secs(119 * 60))
    );
    let e = job_ceiling(Some("600"), started, now).unwrap_err();
    assert!(e.to_string().contains("CI_JOB_TIMEOUT"), "{e}");
    let e = job_ceiling(Some("soon"), started, now).unwrap_err();
    assert!(e.to_string().contains("--job-timeout"), "{e}");
}

/// `--instance-ids "i-1, i-2"` (a space after the comma) names i-2, not " i-2" that SSM would
/// refuse; an id named twice, and polling faster than once a second, are refused here (64).
#[test]
fn instance_ids_are_trimmed_and_named_once_and_polls_are_a_second_apart() {
    let ok = deploy(&["--instance-ids", "i-1, i-2 ,i-3"]).unwrap();
    assert_eq!(
        ok.targets,
        Targets::Instances(vec!["i-1".into(), "i-2".into(), "i-3".into()])
    );
    let ok = deploy(&["--instance-ids", " i-1", "--instance-ids", "i-2 "]).unwrap();
    assert_eq!(
        ok.targets,
        Targets::Instances(vec!["i-1".into(), "i-2".into()])
    );
    for given in ["i-1,i-2,i-1", "i-1, i-2, i-1 ", "i-2,i-1,i-1"] {
        let e = deploy(&["--instance-ids", given]).unwrap_err();
        assert!(
            matches!(&e, RemoteArgsError::DuplicateInstanceId { id } if id == "i-1"),
            "{given}: {e}"
        );
        assert!(
            e.to_string()
                .starts_with("--instance-ids: i-1 is named twice"),
            "{e}"
        );
    }
    for fast in ["0s", "200ms", "999ms"] {
        let e = deploy(&["--instance-ids", "i-1", "--poll-interval", fast]).unwrap_err();
        assert!(
            matches!(e, RemoteArgsError::PollTooFast { .. }),
            "{fast}: {e}"
        );
        assert!(e.to_string().starts_with("--poll-interval"), "{e}");
    }
    assert!(deploy(&["--instance-ids", "i-1", "--poll-interval", "1s"]).is_ok());
    // Without a wait there is no poll.
    assert!(
        deploy(&[
            "--instance-ids",
            "i-1",
            "--poll-interval",
            "200ms",
            "--no-wait"
        ])
        .is_ok()
    );
}

/// The CI job's ceiling is an instant taken when the command line is checked, before the
/// upload and the send, which count against it.
#[tokio::test(start_paused = true)]
async fn the_ci_ceiling_is_fixed_when_the_command_line_is_checked() {
    let checked = Instant::now();
    let p = deploy(&["--instance-ids", "i-1", "--job-timeout", "2h"]).unwrap();
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(
        p.ceiling,
        Some(checked + Duration::from_secs(7200) - JOB_MARGIN)
    );
    let p = deploy(&["--instance-ids", "i-1", "--job-timeout", "2h", "--no-wait"]).unwrap();
    assert_eq!(p.ceiling, None);
}
