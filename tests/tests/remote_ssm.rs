//! `gantry remote` and the Gantry SSM documents (`packaging/ssm/`), as a GitLab job uses them.
//!
//! - Against moto's SSM: the documents are valid SSM documents (moto's CreateDocument checks
//!   them), and `gantry remote` sends what AWS expects (document, parameters, targets,
//!   MaxConcurrency, MaxErrors), read back with boto3's ListCommands.
//! - End to end through a stand-in for SSM and its agent (`tests/standins/ssm.py`): SSM cannot
//!   run here and moto runs nothing, so the stand-in plays the API and the agent on this host.
//!   It checks parameters against the documents' allowedPattern as SSM does, runs the
//!   document's script with `sh`, kills it at its timeout with 137, and cuts outputs as SSM
//!   does. The script fetches the stack's bundle from moto's S3 and deploys it with the real
//!   `gantry` on the real Docker daemon (in-process, GANTRY_LOCAL=1: no daemon runs in this
//!   test; on a host the document's `gantry deploy` goes through gantryd).
//! - A serial fleet (`--max-concurrency 1 --max-errors 0`) whose first host fails: SSM stops
//!   the command, the others end Cancelled (by tag: are never listed), and `gantry remote`
//!   exits with the first host's code (2, or 3), listing the others as not run.
//! - A custom `--document` of two steps: GetCommandInvocation without PluginName is refused
//!   (InvalidPluginName), and `gantry remote` cancels the command rather than leave it
//!   running unwatched, and says the document must have one step (69).
//! - A wait cut short, by its bound or by SIGTERM (a GitLab job cancelled or timed out),
//!   cancels the command in the stand-in: the hung script is killed, the invocation ends
//!   Cancelled with 137 (as the agent reports it), and `gantry remote` prints what came back
//!   and exits 5. A command cancelled in SSM by someone else while an instance runs it is no
//!   Gantry result (137, exit 5), not "never ran".
//! - SSM's answers read right: InvalidCommandId right after the send is polled again (not
//!   cancelled); an instance SSM could not deliver to is named by its StatusDetails
//!   (Undeliverable), and a partial `remote status` exits 4.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use gantry_tests::aws::{SsmStandIn, boto};
use gantry_tests::{bin, docker, env, free_port, unique, wait_for};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `gantry ARGS` with the AWS SDK pointed at `endpoint` (moto or the stand-in), not run yet.
fn gantry_command(endpoint: &str, args: &[&str]) -> Command {
    let e = env();
    let mut cmd = Command::new(bin("gantry"));
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", e.get("GANTRY_TEST_AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID"))
        .env(
            "AWS_SECRET_ACCESS_KEY",
            e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("CI_JOB_TIMEOUT")
        .env_remove("CI_JOB_STARTED_AT");
    cmd
}

/// `gantry` with the AWS SDK pointed at `endpoint` (moto or the stand-in).
fn gantry(endpoint: &str, args: &[&str]) -> Output {
    let out = gantry_command(endpoint, args).output().expect("run gantry");
    eprintln!(
        "--- gantry {args:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_documents_are_valid_ssm_documents_and_remote_sends_what_aws_expects() {
    let docs = repo().join("packaging/ssm");
    let suffix = unique("d");
    for name in ["Gantry-Deploy", "Gantry-Rollback", "Gantry-Status"] {
        let path = docs.join(format!("{name}.yaml"));
        let out = boto(&format!(
            "r = c('ssm').create_document(Content=open('{}').read(), Name='{name}-{suffix}', DocumentType='Command', DocumentFormat='YAML')\nprint(r['DocumentDescription']['Status'], json.dumps(sorted(p['Name'] for p in r['DocumentDescription']['Parameters'])))",
            path.display()
        ));
        assert!(out.starts_with("Active"), "{name}: {out}");
    }
    let moto = env().get("GANTRY_TEST_AWS_ENDPOINT");
    let document = format!("Gantry-Deploy-{suffix}");
    let out = gantry(
        moto,
        &[
            "remote",
            "deploy",
            "shop",
            "--image-tag",
            "3f2a1c",
            "--id",
            "4242",
            "--var",
            "REPLICAS=2",
            "--instance-ids",
            "i-0abc,i-0def",
            "--max-concurrency",
            "1",
            "--max-errors",
            "0",
            "--document",
            &document,
            "--no-wait",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let sent = String::from_utf8_lossy(&out.stdout);
    let id = sent
        .split("as command ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no command id in {sent}"));
    let listed = boto(&format!(
        "print(json.dumps(c('ssm').list_commands(CommandId='{id}')['Commands'][0], default=str))"
    ));
    let cmd: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(cmd["DocumentName"], document.as_str());
    assert_eq!(cmd["MaxConcurrency"], "1");
    assert_eq!(cmd["MaxErrors"], "0");
    assert_eq!(cmd["Parameters"]["Stack"], serde_json::json!(["shop"]));
    assert_eq!(cmd["Parameters"]["ImageTag"], serde_json::json!(["3f2a1c"]));
    assert_eq!(cmd["Parameters"]["DeployId"], serde_json::json!(["4242"]));
    assert_eq!(
        cmd["Parameters"]["Variables"],
        serde_json::json!(["REPLICAS=2"])
    );
    assert_eq!(
        cmd["Parameters"]["executionTimeout"],
        serde_json::json!(["3600"])
    );
    let mut ids: Vec<String> = serde_json::from_value(cmd["InstanceIds"].clone()).unwrap();
    ids.sort();
    assert_eq!(ids, ["i-0abc", "i-0def"]);

    // By tag: SSM's Targets, tag:KEY.
    let out = gantry(
        moto,
        &[
            "remote",
            "rollback",
            "shop",
            "--to",
            "4241",
            "--tag",
            "Role=web,api",
            "--max-concurrency",
            "25%",
            "--document",
            &format!("Gantry-Rollback-{suffix}"),
            "--no-wait",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let listed = boto(
        "cmds = c('ssm').list_commands()['Commands']\nprint(json.dumps([x for x in cmds if x['DocumentName'].startswith('Gantry-Rollback')][-1], default=str))",
    );
    let cmd: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        cmd["Targets"],
        serde_json::json!([{"Key": "tag:Role", "Values": ["web", "api"]}])
    );
    assert_eq!(cmd["Parameters"]["To"], serde_json::json!(["4241"]));
    assert_eq!(cmd["MaxConcurrency"], "25%");
}

#[test]
fn every_document_parameter_refuses_shell_metacharacters() {
    // SSM checks values with the document's allowedPattern before any instance sees them.
    let docs = repo().join("packaging/ssm");
    let out = boto(&format!(
        r#"import re, yaml, glob
bad = [";", "$(id)", "`id`", "'", '"', "|", "&", ">", "<", "*", "?", "[", "\\", "\n", "${{IFS}}", "(", ")"]
checked = 0
for path in sorted(glob.glob('{}/*.yaml')):
    doc = yaml.safe_load(open(path))
    for name, spec in doc['parameters'].items():
        pattern = spec['allowedPattern']
        assert 'default' not in spec or re.search(pattern, str(spec['default'])), (path, name, 'default')
        for b in bad + ([] if name == 'Variables' else [' ']):
            for value in (b, 'abc' + b, 'A=1' + b, b + 'x', 'a' + b + 'x'):
                # `$` (Java's as Python's) also matches before one final newline: the scripts
                # keep every value inside single quotes, so that one cannot matter.
                if value.endswith('\n') and value.count('\n') == 1:
                    continue
                assert re.search(pattern, value) is None, (path, name, value)
        checked += 1
print(checked)"#,
        docs.display()
    ));
    assert!(out.trim().parse::<u32>().unwrap() >= 12, "{out}");
}

/// A stack directory packed as a bundle and put in moto's S3; returns (url, sha256).
fn upload_bundle(stack: &str, compose: &str) -> (String, String) {
    use sha2_free::sha256_hex;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
    let tarball = dir.path().join("bundle.tar.gz");
    let st = Command::new("tar")
        .args(["-czf"])
        .arg(&tarball)
        .args(["-C"])
        .arg(dir.path())
        .arg("compose.yaml")
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&tarball).unwrap();
    let bucket = unique("bundles");
    let key = format!("{stack}/{}.tar.gz", unique("b"));
    boto(&format!(
        "s3 = c('s3')\ns3.create_bucket(Bucket='{bucket}')\ns3.put_object(Bucket='{bucket}', Key='{key}', Body=open('{}', 'rb').read())",
        tarball.display()
    ));
    (format!("s3://{bucket}/{key}"), sha256_hex(&bytes))
}

/// SHA-256 through coreutils (the tests crate carries no hash crate).
mod sha2_free {
    pub fn sha256_hex(bytes: &[u8]) -> String {
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha256sum");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

const STACK: &str = r#"
services:
  web:
    image: ${IMAGE}
    command: ["sh", "-c", "echo tag=${IMAGE_TAG} > /tmp/tag; exec sleep 3600"]
    init: true
"#;

/// Removes a stack's containers and network.
fn cleanup(stack: &str) {
    let filter = format!("label=com.docker.compose.project={stack}");
    let out = docker(&["ps", "-aq", "--filter", &filter]);
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    docker(&["network", "rm", &format!("{stack}_default")]);
}

#[test]
fn remote_deploy_runs_the_document_on_each_instance_and_agrees_or_splits() {
    let e = env();
    let stack = unique("fleet");
    let (bundle, sum) = upload_bundle(&stack, STACK);
    let work = tempfile::tempdir().unwrap();
    // What every "instance" shares: the host's Docker, moto as its AWS, gantry on PATH.
    let base = |name: &str| {
        let root = work.path().join(name);
        serde_json::json!({
            "PATH": format!("{}:/usr/bin:/bin", bin("gantry").parent().unwrap().display()),
            "GANTRY_LOCAL": "1",
            "GANTRY_CONFIG_DIR": root.join("etc").display().to_string(),
            "GANTRY_STATE_DIR": root.join("state").display().to_string(),
            "DOCKER_HOST": e.get("DOCKER_HOST"),
            "IMAGE": e.get("GANTRY_TEST_IMAGE"),
            "AWS_ENDPOINT_URL": e.get("GANTRY_TEST_AWS_ENDPOINT"),
            "AWS_REGION": e.get("GANTRY_TEST_AWS_REGION"),
            "AWS_ACCESS_KEY_ID": e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID"),
            "AWS_SECRET_ACCESS_KEY": e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
        })
    };
    // i-broken's Docker is unreachable (gantry exits 69); i-hung's deploy never ends (SSM kills it).
    let hung_bin = work.path().join("hung-bin");
    std::fs::create_dir(&hung_bin).unwrap();
    let mut f = std::fs::File::create(hung_bin.join("gantry")).unwrap();
    f.write_all(b"#!/bin/sh\nexec sleep 600\n").unwrap();
    drop(f);
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(hung_bin.join("gantry"))
        .status()
        .unwrap();
    let mut broken = base("broken");
    broken["DOCKER_HOST"] = "unix:///nonexistent/docker.sock".into();
    let mut hung = base("hung");
    hung["PATH"] = format!("{}:/usr/bin:/bin", hung_bin.display()).into();
    let standin = SsmStandIn::start(&serde_json::json!({
        "instances": {
            "i-good": {"env": base("good")},
            "i-broken": {"env": broken},
            "i-hung": {"env": hung},
        },
        "tags": {"Role=web": ["i-good"]},
    }));

    // One good instance by tag: the bundle is fetched from S3, verified, deployed; exit 0.
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "remote",
            "deploy",
            &stack,
            "--image-tag",
            "v1",
            "--id",
            "77",
            "--bundle",
            &bundle,
            "--bundle-sha256",
            &sum,
            "--poll-interval",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        gantry(&standin.url, &a)
    };
    let out = run(&["--tag", "Role=web"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    cleanup(&stack);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("== i-good Success exit 0"), "{text}");
    assert!(
        text.contains("bundle s3://"),
        "the bundle was fetched: {text}"
    );
    assert!(
        text.contains("succeeded"),
        "the deploy's own report: {text}"
    );
    assert!(text.contains("1 of 1 instances agree: exit 0"), "{text}");

    // Three instances, all at once: a split result, each instance named with its code. SSM
    // kills i-hung at its executionTimeout, which must leave room for Gantry's own bounds
    // (--lock-wait + --timeout + 30 s): the smallest that does here.
    let out = run(&[
        "--instance-ids",
        "i-good,i-broken,i-hung",
        "--max-concurrency",
        "3",
        "--max-errors",
        "3",
        "--lock-wait",
        "0s",
        "--timeout",
        "5s",
        "--execution-timeout",
        "36",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    cleanup(&stack);
    assert_eq!(out.status.code(), Some(4), "split result: {text}");
    assert!(text.contains("== i-broken Failed exit 69"), "{text}");
    assert!(text.contains("== i-hung TimedOut exit 137"), "{text}");
    assert!(text.contains("split result over 3 instances"), "{text}");

    // Rollback to what the team knows: an unknown value is exit 65 on every instance, so 65.
    let out = gantry(
        &standin.url,
        &[
            "remote",
            "rollback",
            &stack,
            "--to",
            "no-such-sha",
            "--instance-ids",
            "i-good",
            "--poll-interval",
            "1s",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(65), "{text}");
    assert!(text.contains("has no release no-such-sha"), "{text}");

    // A parameter with shell metacharacters never reaches an instance: SSM's pattern refuses it.
    let out = gantry(
        &standin.url,
        &[
            "remote",
            "deploy",
            &stack,
            "--image-tag",
            "v1;reboot",
            "--instance-ids",
            "i-good",
        ],
    );
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidParameters") && err.contains("ImageTag"),
        "{err}"
    );
}

/// Runs boto3's SSM client against the stand-in at `url`: `ssm` in the snippet.
fn standin_ssm(url: &str, script: &str) -> String {
    let e = env();
    let out = Command::new(e.get("GANTRY_TEST_PYTHON"))
        .arg("-c")
        .arg(format!(
            "import boto3, json\nssm = boto3.client('ssm', endpoint_url='{url}', region_name='{}', aws_access_key_id='x', aws_secret_access_key='x')\n{script}",
            e.get("GANTRY_TEST_AWS_REGION")
        ))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What the stand-in says of `command_id`: the command's status and each invocation's.
fn standin_statuses(url: &str, command_id: &str) -> String {
    standin_ssm(
        url,
        &format!(
            "c = ssm.list_commands(CommandId='{command_id}')['Commands'][0]['Status']\ni = [x['Status'] for x in ssm.list_command_invocations(CommandId='{command_id}')['CommandInvocations']]\nprint(c, *i)"
        ),
    )
}

fn command_id(stdout: &str) -> String {
    stdout
        .split("as command ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no command id in {stdout}"))
        .to_owned()
}

/// `gantry` run with `args` against the stand-in at `url`, its output piped, read up to the
/// line naming the command sent, and waited on until the stand-in runs the script: the child,
/// the rest of its stdout and the command id.
fn gantry_running(
    url: &str,
    args: &[&str],
) -> (
    Child,
    std::io::Lines<std::io::BufReader<ChildStdout>>,
    String,
) {
    let mut child = gantry_command(url, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gantry");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let sent = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("as command "))
        .expect("the command is sent");
    let id = command_id(&sent);
    wait_for("the script running", Duration::from_secs(20), || {
        (standin_statuses(url, &id) == "InProgress InProgress").then_some(())
    });
    (child, lines, id)
}

#[test]
fn a_wait_cut_short_by_its_bound_or_a_signal_cancels_the_command() {
    // An instance whose deploy never ends (no bundle: the document runs `gantry deploy` at once).
    let work = tempfile::tempdir().unwrap();
    let hung_bin = work.path().join("hung-bin");
    std::fs::create_dir(&hung_bin).unwrap();
    std::fs::write(hung_bin.join("gantry"), "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(hung_bin.join("gantry"))
        .status()
        .unwrap();
    let standin = SsmStandIn::start(&serde_json::json!({
        "instances": {"i-hung": {"env": {"PATH": format!("{}:/usr/bin:/bin", hung_bin.display())}}},
    }));
    let args = [
        "remote",
        "deploy",
        "shop",
        "--image-tag",
        "v1",
        "--instance-ids",
        "i-hung",
        "--poll-interval",
        "1s",
    ];

    // The wait bound passes: SSM is asked to cancel, the summary says what came back.
    let mut bounded = args.to_vec();
    bounded.extend(["--wait", "2s"]);
    let out = gantry(&standin.url, &bounded);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(5), "{text}");
    let id = command_id(&text);
    assert!(
        text.contains(&format!("cancelled command {id} in SSM")),
        "{text}"
    );
    assert!(
        text.contains(
            "stopped waiting after 2s, command cancelled; 0 of 1 targeted instances answered"
        ),
        "{text}"
    );
    wait_for("the command cancelled", Duration::from_secs(20), || {
        (standin_statuses(&standin.url, &id) == "Cancelled Cancelled").then_some(())
    });
    // The script stopped early reports 137, as the SSM agent does.
    assert_eq!(response_code(&standin.url, &id, "i-hung"), "137");

    // SIGTERM, as GitLab sends a job it cancels or that passed its timeout.
    let (mut child, lines, id) = gantry_running(&standin.url, &args);
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let text = rest.join("\n");
    assert_eq!(status.code(), Some(5), "{text}");
    assert!(
        text.contains(&format!("cancelled command {id} in SSM"))
            && text.contains("stopped waiting on SIGTERM, command cancelled"),
        "{text}"
    );
    wait_for("the command cancelled", Duration::from_secs(20), || {
        (standin_statuses(&standin.url, &id) == "Cancelled Cancelled").then_some(())
    });
    assert_eq!(response_code(&standin.url, &id, "i-hung"), "137");
}

/// The result code the stand-in gives for `instance` in `command_id`.
fn response_code(url: &str, command_id: &str, instance: &str) -> String {
    standin_ssm(
        url,
        &format!(
            "print(ssm.get_command_invocation(CommandId='{command_id}', InstanceId='{instance}')['ResponseCode'])"
        ),
    )
}

/// A command cancelled in SSM by someone else while an instance runs it: the instance ran it
/// and was stopped (137, as the agent reports it), no Gantry result (5), not "never ran".
#[test]
fn a_command_cancelled_in_ssm_while_an_instance_runs_it_gives_no_gantry_result() {
    let work = tempfile::tempdir().unwrap();
    let hung_bin = work.path().join("hung-bin");
    std::fs::create_dir(&hung_bin).unwrap();
    std::fs::write(hung_bin.join("gantry"), "#!/bin/sh\nexec sleep 600\n").unwrap();
    let st = Command::new("chmod")
        .arg("+x")
        .arg(hung_bin.join("gantry"))
        .status()
        .unwrap();
    assert!(st.success());
    let standin = SsmStandIn::start(&serde_json::json!({
        "instances": {"i-hung": {"env": {"PATH": format!("{}:/usr/bin:/bin", hung_bin.display())}}},
    }));
    let (mut child, lines, id) = gantry_running(
        &standin.url,
        &[
            "remote",
            "deploy",
            "shop",
            "--image-tag",
            "v1",
            "--instance-ids",
            "i-hung",
            "--poll-interval",
            "1s",
        ],
    );
    standin_ssm(
        &standin.url,
        &format!("ssm.cancel_command(CommandId='{id}')"),
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let text = rest.join("\n");
    assert_eq!(status.code(), Some(5), "{text}");
    assert!(text.contains("== i-hung Cancelled exit 137"), "{text}");
    assert!(
        text.contains("Gantry-Deploy: 1 of 1 instances gave no Gantry result: 1 exit 137 (i-hung)")
            && !text.contains("not run"),
        "{text}"
    );
}

/// Right after SendCommand, SSM's listings may not know the command yet (InvalidCommandId):
/// polled again, not taken as an error retrying cannot cure (which cancels the command).
#[test]
fn a_command_ssm_does_not_list_yet_is_polled_again_not_cancelled() {
    let work = tempfile::tempdir().unwrap();
    let standin = SsmStandIn::start(&serde_json::json!({
        "instances": {"i-1": {"env": {
            "PATH": format!("{}:/usr/bin:/bin", gantry_exiting(work.path(), 0).display()),
        }}},
        "invalid_command_id_calls": 2,
    }));
    let out = gantry(
        &standin.url,
        &[
            "remote",
            "status",
            "--instance-ids",
            "i-1",
            "--poll-interval",
            "1s",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("InvalidCommandId") && text.contains("trying again"),
        "{text}"
    );
    assert!(!text.contains("cancel"), "{text}");
    assert!(
        text.contains("Gantry-Status: 1 of 1 instances agree: exit 0 (exit 0)"),
        "{text}"
    );
}

/// An instance SSM could not deliver the command to is named with SSM's StatusDetails
/// (Undeliverable), not guessed from its status; `remote status` with one answering 0 and one
/// not reached exits 4 (partial).
#[test]
fn an_instance_ssm_could_not_deliver_to_is_named_by_its_status_details() {
    let work = tempfile::tempdir().unwrap();
    let standin = SsmStandIn::start(&serde_json::json!({
        "instances": {
            "i-1": {"env": {
                "PATH": format!("{}:/usr/bin:/bin", gantry_exiting(work.path(), 0).display()),
            }},
            "i-gone": {"delivery": "Undeliverable"},
        },
    }));
    let out = gantry(
        &standin.url,
        &[
            "remote",
            "status",
            "--instance-ids",
            "i-1,i-gone",
            "--max-concurrency",
            "2",
            "--poll-interval",
            "1s",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("1 not run, no exit code: SSM could not deliver the command (Undeliverable")
            && text.contains("(i-gone Undeliverable)"),
        "{text}"
    );
}

#[test]
fn command_lines_ssm_would_refuse_or_cut_are_refused_before_anything_is_sent() {
    // Nothing answers at this endpoint: a command that reached SSM or S3 would exit 69.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let stack_dir = tempfile::tempdir().unwrap();
    std::fs::write(stack_dir.path().join("compose.yaml"), "services: {}\n").unwrap();
    let ids: Vec<String> = (0..51).map(|i| format!("i-{i:017x}")).collect();
    let ids = ids.join(",");
    let dir = stack_dir.path().to_str().unwrap();
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--instance-ids", "i-1, i-2, i-1"],
            &["--instance-ids: i-1 is named twice"],
        ),
        (
            &["--instance-ids", "i-1", "--poll-interval", "200ms"],
            &["--poll-interval 200ms", "at least 1s"],
        ),
        (
            &["--instance-ids", &ids],
            &["--instance-ids: 51 instances", "at most 50"],
        ),
        (&["--tag", "Role=web,"], &["--tag \"Role=web,\"", "empty"]),
        (
            &["--instance-ids", "i-1", "--execution-timeout", "1800"],
            &[
                "--lock-wait 10m + --timeout 30m",
                "--execution-timeout 1800",
            ],
        ),
        (
            &[
                "--instance-ids",
                "i-1",
                "--stack-dir",
                dir,
                "--bundle-bucket",
                "b",
                "--timeout",
                "1m30s",
            ],
            &["--timeout \"1m30s\""],
        ),
        // The job's timeout leaves a minute and two seconds: the wait would end two seconds
        // after the send, less than one poll. Checked right before the send: nothing sent.
        (
            &["--instance-ids", "i-1", "--job-timeout", "62"],
            &["less than one --poll-interval", "nothing was sent"],
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["remote", "deploy", "shop", "--image-tag", "v1"];
        args.extend(extra);
        let out = gantry(&nowhere, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{extra:?}: {err}");
        for e in expected {
            assert!(err.contains(e), "{extra:?}: {err}");
        }
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("uploaded"),
            "nothing uploaded"
        );
    }
}

/// A directory holding a `gantry` that prints a line and exits `code` (what a host's deploy
/// answers), for an instance's PATH.
fn gantry_exiting(work: &Path, code: i32) -> PathBuf {
    let dir = work.join(format!("gantry-{code}"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("gantry");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"[shop] gantry $1 ended {code}\"\nexit {code}\n"),
    )
    .unwrap();
    let st = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

#[test]
fn a_serial_fleet_stopped_at_its_first_failure_exits_with_that_hosts_code() {
    let work = tempfile::tempdir().unwrap();
    let on_path = |code: i32| {
        serde_json::json!({"env": {
            "PATH": format!("{}:/usr/bin:/bin", gantry_exiting(work.path(), code).display()),
        }})
    };
    // The stand-in runs instances in the order of their ids: i-1 first.
    let standin = SsmStandIn::start(&serde_json::json!({
        "instances": {
            "i-1-rolled-back": on_path(2),
            "i-1-rollback-failed": on_path(3),
            "i-2": on_path(0),
            "i-3": on_path(0),
        },
        "tags": {"Role=web": ["i-1-rolled-back", "i-2", "i-3"]},
        "list_tag_targets_when_started": true,
    }));
    let run = |targets: &[&str]| {
        let mut args = vec![
            "remote",
            "deploy",
            "shop",
            "--image-tag",
            "v2",
            "--max-concurrency",
            "1",
            "--max-errors",
            "0",
            "--poll-interval",
            "1s",
        ];
        args.extend(targets);
        let out = gantry(&standin.url, &args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // The first host rolled back, SSM cancelled the rest: the fleet rolled back, exit 2.
    let (code, text) = run(&["--instance-ids", "i-1-rolled-back,i-2,i-3"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("== i-1-rolled-back Failed exit 2"), "{text}");
    assert!(
        text.contains("1 of 3 targeted instances ran the command and agree: exit 2; 2 not run, no exit code: SSM stopped the command after 1 error (--max-errors) (i-2 Cancelled, i-3 Cancelled) (exit 2)"),
        "{text}"
    );

    // By tag, SSM never lists the instances it did not start on.
    let (code, text) = run(&["--tag", "Role=web"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("2 not run, no exit code: SSM stopped the command after 1 error (--max-errors) (2 never listed)"),
        "{text}"
    );

    // The first host's rollback failed: 3 (look now), not a split.
    let (code, text) = run(&["--instance-ids", "i-1-rollback-failed,i-2"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("1 not run"), "{text}");
}

#[test]
fn a_custom_document_of_two_steps_is_cancelled_not_left_running_unwatched() {
    // GetCommandInvocation without PluginName: SSM refuses it for a document of several steps.
    // The second instance is still running when Gantry reads the first instance's result.
    let two_steps = serde_json::json!({
        "schemaVersion": "2.2",
        "description": "two steps",
        "mainSteps": [
            {"action": "aws:runShellScript", "name": "first",
             "inputs": {"runCommand": ["echo first step"]}},
            {"action": "aws:runShellScript", "name": "second",
             "inputs": {"runCommand": ["case \"$SLOW\" in yes) exec sleep 600;; esac"]}},
        ],
    });
    let standin = SsmStandIn::start(&serde_json::json!({
        "instances": {"i-1": {"env": {}}, "i-2": {"env": {"SLOW": "yes"}}},
        "documents": {"Two-Steps": two_steps},
    }));
    let out = gantry(
        &standin.url,
        &[
            "remote",
            "status",
            "--instance-ids",
            "i-1,i-2",
            "--max-concurrency",
            "2",
            "--document",
            "Two-Steps",
            "--poll-interval",
            "1s",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{text}{err}");
    assert!(
        err.contains("InvalidPluginName") && err.contains("must have exactly one step"),
        "{err}"
    );
    let id = command_id(&text);
    assert!(
        text.contains(&format!("cancelled command {id} in SSM"))
            && text.contains("stopped waiting, the runner's SSM calls failed; command cancelled;"),
        "{text}"
    );
    wait_for("the command cancelled", Duration::from_secs(20), || {
        (standin_statuses(&standin.url, &id) == "Cancelled Success Cancelled").then_some(())
    });
}
