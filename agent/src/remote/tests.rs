//! Unit tests of the agreement rules and the wait loop, with a scripted fleet (no AWS).

use std::sync::Mutex;

use super::*;

fn result(id: &str, code: Option<i32>) -> InvocationResult {
    InvocationResult {
        instance_id: id.into(),
        status: if code == Some(0) { "Success" } else { "Failed" }.into(),
        status_details: if code == Some(0) { "Success" } else { "Failed" }.into(),
        exit_code: code,
        stdout: format!("[shop] output of {id}\n"),
        stderr: String::new(),
        seen_running: code.is_some(),
    }
}

#[test]
fn all_instances_agreeing_give_their_code() {
    let v = verdict(&[result("i-1", Some(0)), result("i-2", Some(0))], 2);
    assert_eq!(v.exit, ExitCode::Ok);
    let v = verdict(&[result("i-1", Some(2)), result("i-2", Some(2))], 2);
    assert_eq!(v.exit, ExitCode::RolledBack);
    assert!(v.summary.contains("2 of 2"), "{}", v.summary);
    // Serving but not recorded (a full state dir) is a Gantry result, not "no result".
    let v = verdict(&[result("i-1", Some(6)), result("i-2", Some(6))], 0);
    assert_eq!(v.exit, ExitCode::NotRecorded, "{}", v.summary);
    // Every code `gantry deploy`, `rollback` and `status` can end with passes through.
    for code in [0, 1, 2, 3, 6, 64, 65, 69, 75, 78] {
        let v = verdict(&[result("i-1", Some(code))], 1);
        assert_eq!(i32::from(v.exit.code()), code, "{}", v.summary);
    }
}

#[test]
fn a_split_result_is_its_own_code_and_names_every_instance() {
    let v = verdict(
        &[
            result("i-1", Some(0)),
            result("i-2", Some(2)),
            result("i-3", None),
        ],
        3,
    );
    assert_eq!(v.exit, ExitCode::RemoteSplit);
    for id in ["i-1", "i-2", "i-3"] {
        assert!(v.summary.contains(id), "{}", v.summary);
    }
    assert!(v.summary.contains("exit 2") && v.summary.contains("no exit code"));
}

#[test]
fn no_gantry_result_is_never_passed_through_as_137() {
    // SSM's executionTimeout kills the script: 137 everywhere is not a Gantry code.
    let v = verdict(&[result("i-1", Some(137)), result("i-2", Some(137))], 2);
    assert_eq!(v.exit, ExitCode::RemoteNoResult);
    assert_ne!(v.exit.code(), 137);
    let v = verdict(&[], 0);
    assert_eq!(v.exit, ExitCode::RemoteNoResult);
    assert!(v.summary.contains("no instance matched"));
}

/// How a scripted call fails.
#[derive(Debug, Clone, Copy)]
enum Fail {
    /// Throttling: tried again at the next poll.
    Throttled,
    /// Access denied: retrying cannot help.
    Denied,
    /// InvalidPluginName: a custom document of more than one step.
    SeveralSteps,
    /// InvalidCommandId a second after the send: SSM does not list the command yet.
    NotListedYet,
}

impl Fail {
    fn error(self, operation: &'static str) -> RemoteError {
        match self {
            Self::Throttled => RemoteError::Api {
                operation,
                message: "ThrottlingException: Rate exceeded".into(),
            },
            Self::Denied => RemoteError::Rejected {
                operation,
                message:
                    "AccessDeniedException: not authorized to perform ssm:GetCommandInvocation"
                        .into(),
            },
            Self::SeveralSteps => super::ssm::read_error(
                "cmd-1",
                "i-1",
                Some("InvalidPluginName"),
                Some("name the step"),
                None,
            ),
            Self::NotListedYet => super::ssm::command_error(
                operation,
                Some("InvalidCommandId"),
                None,
                Some(Duration::from_secs(1)),
            ),
        }
    }
}

/// A fleet whose invocations end one poll after another.
struct Scripted {
    /// What each poll answers, in turn; the last one again and again.
    polls: Mutex<Vec<CommandState>>,
    /// What each result read of an instance answers, in turn; the last one again and again.
    results: Mutex<BTreeMap<String, Vec<InvocationResult>>>,
    sent: Mutex<Vec<CommandSpec>>,
    /// This many calls (polls and result reads alike) fail first, as throttling does.
    failing: Mutex<u32>,
    /// Result reads fail so, in turn, before the scripted results.
    read_failures: Mutex<Vec<Fail>>,
    /// How many result reads were made.
    reads: Mutex<u32>,
    /// How many polls were answered.
    polls_made: Mutex<u32>,
    /// The commands cancelled.
    cancelled: Mutex<Vec<String>>,
    /// Whether CancelCommand fails.
    cancel_fails: bool,
    /// SendCommand fails with this.
    send_fails: Option<fn() -> RemoteError>,
    /// How long SendCommand takes.
    send_takes: Duration,
    /// How long each poll takes (an API call hanging past the SDK's own timeouts).
    poll_takes: Duration,
}

impl Scripted {
    fn new(polls: Vec<CommandState>, results: &[(&str, Option<i32>)]) -> Self {
        Self {
            polls: Mutex::new(polls),
            results: Mutex::new(
                results
                    .iter()
                    .map(|(id, code)| ((*id).to_owned(), vec![result(id, *code)]))
                    .collect(),
            ),
            sent: Mutex::default(),
            failing: Mutex::new(0),
            read_failures: Mutex::default(),
            reads: Mutex::new(0),
            polls_made: Mutex::new(0),
            cancelled: Mutex::default(),
            cancel_fails: false,
            send_fails: None,
            send_takes: Duration::ZERO,
            poll_takes: Duration::ZERO,
        }
    }

    fn throttled(&self) -> Result<(), RemoteError> {
        let mut n = self.failing.lock().unwrap();
        if *n == 0 {
            return Ok(());
        }
        *n -= 1;
        Err(Fail::Throttled.error("ListCommandInvocations"))
    }
}

#[async_trait::async_trait]
impl Fleet for Scripted {
    async fn send(&self, spec: &CommandSpec) -> Result<String, RemoteError> {
        tokio::time::sleep(self.send_takes).await;
        if let Some(e) = self.send_fails {
            return Err(e());
        }
        self.sent.lock().unwrap().push(spec.clone());
        Ok("cmd-1".into())
    }
    async fn poll(&self, _: &str) -> Result<CommandState, RemoteError> {
        tokio::time::sleep(self.poll_takes).await;
        self.throttled()?;
        *self.polls_made.lock().unwrap() += 1;
        let mut polls = self.polls.lock().unwrap();
        Ok(if polls.len() > 1 {
            polls.remove(0)
        } else {
            polls[0].clone()
        })
    }
    async fn result(&self, _: &str, id: &str) -> Result<InvocationResult, RemoteError> {
        *self.reads.lock().unwrap() += 1;
        self.throttled()?;
        {
            let mut failures = self.read_failures.lock().unwrap();
            if !failures.is_empty() {
                return Err(failures.remove(0).error("GetCommandInvocation"));
            }
        }
        let mut results = self.results.lock().unwrap();
        let answers = results.get_mut(id).expect("a scripted result");
        Ok(if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0].clone()
        })
    }
    async fn cancel(&self, command_id: &str) -> Result<(), RemoteError> {
        if self.cancel_fails {
            return Err(Fail::Denied.error("CancelCommand"));
        }
        self.cancelled.lock().unwrap().push(command_id.to_owned());
        Ok(())
    }
}

/// No signal ever.
fn never() -> std::future::Pending<&'static str> {
    std::future::pending()
}

fn state(status: &str, invs: &[(&str, &str)]) -> CommandState {
    CommandState {
        status: status.into(),
        target_count: invs.len(),
        invocations: invs
            .iter()
            .map(|(id, s)| InvocationState {
                instance_id: (*id).into(),
                status: (*s).into(),
            })
            .collect(),
    }
}

fn spec() -> CommandSpec {
    CommandSpec {
        document: "Gantry-Deploy".into(),
        parameters: BTreeMap::from([("Stack".into(), "shop".into())]),
        targets: Targets::Tag {
            key: "Role".into(),
            values: vec!["web".into()],
        },
        max_concurrency: "1".into(),
        max_errors: "0".into(),
        delivery_timeout: Duration::from_secs(600),
        comment: "gantry deploy shop".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn waits_for_every_instance_and_prints_each_as_it_ends() {
    let fleet = Scripted::new(
        vec![
            state("InProgress", &[("i-1", "InProgress")]),
            state("InProgress", &[("i-1", "Success"), ("i-2", "InProgress")]),
            state("Failed", &[("i-1", "Success"), ("i-2", "Failed")]),
        ],
        &[("i-1", Some(0)), ("i-2", Some(2))],
    );
    let mut out = Vec::new();
    let wait = Wait {
        poll_every: Duration::from_secs(2),
        limit: Duration::from_secs(60),
        per_round: None,
        ceiling: None,
    };
    let v = run(&fleet, &spec(), Some(wait), &mut out, never())
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(v.exit, ExitCode::RemoteSplit, "{text}");
    let first = text.find("== i-1 Success exit 0").expect(&text);
    let second = text.find("== i-2 Failed exit 2").expect(&text);
    assert!(first < second, "{text}");
    assert!(text.contains("output of i-2"), "{text}");
    assert_eq!(fleet.sent.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_command_that_never_ends_is_reported_after_the_wait_limit() {
    let fleet = Scripted::new(vec![state("InProgress", &[("i-1", "InProgress")])], &[]);
    let wait = Wait {
        poll_every: Duration::from_secs(5),
        limit: Duration::from_secs(30),
        per_round: None,
        ceiling: None,
    };
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(wait), &mut out, never())
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(err.exit_code(), ExitCode::RemoteNoResult);
    assert!(err.to_string().contains("cmd-1"), "{err}");
    // Nobody watches it any more: SSM is asked to cancel it, and the output says so.
    assert_eq!(*fleet.cancelled.lock().unwrap(), ["cmd-1"], "{text}");
    assert!(text.contains("cancelled command cmd-1 in SSM"), "{text}");
    assert!(
        text.contains("Gantry-Deploy: stopped waiting after 30s, command cancelled; 0 of 1 targeted instances answered; 1 without a result (exit 5)"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tag_target_waits_as_many_rounds_as_it_has_instances() {
    // Three instances one at a time, each round taking its whole 10 s bound: 30 s in all.
    let polls = (0..=3)
        .map(|done| {
            let invs: Vec<(String, &str)> = (1..=3)
                .map(|i| {
                    let s = if i <= done {
                        "Success"
                    } else if i == done + 1 {
                        "InProgress"
                    } else {
                        "Pending"
                    };
                    (format!("i-{i}"), s)
                })
                .collect();
            let invs: Vec<(&str, &str)> = invs.iter().map(|(i, s)| (i.as_str(), *s)).collect();
            let mut s = state(if done == 3 { "Success" } else { "InProgress" }, &invs);
            s.target_count = 3;
            s
        })
        .flat_map(|s| std::iter::repeat_n(s, 5))
        .collect();
    let fleet = Scripted::new(
        polls,
        &[("i-1", Some(0)), ("i-2", Some(0)), ("i-3", Some(0))],
    );
    let wait = Wait {
        poll_every: Duration::from_secs(2),
        limit: Duration::from_secs(10),
        per_round: Some(Duration::from_secs(10)),
        ceiling: None,
    };
    let mut out = Vec::new();
    let v = run(&fleet, &spec(), Some(wait), &mut out, never()).await;
    let text = String::from_utf8(out).unwrap();
    assert_eq!(v.map(|v| v.exit).ok(), Some(ExitCode::Ok), "{text}");
    assert_eq!(rounds(3, "1"), 3);
    assert_eq!(rounds(10, "20%"), 5);
    assert_eq!(rounds(3, "10%"), 3, "at least one instance a round");
}

#[tokio::test(start_paused = true)]
async fn throttled_calls_are_tried_again_not_the_end_of_the_wait() {
    let fleet = Scripted::new(
        vec![
            state("InProgress", &[("i-1", "InProgress")]),
            state("Success", &[("i-1", "Success")]),
        ],
        &[("i-1", Some(0))],
    );
    // Two polls fail, then the result read of i-1 fails once: all tried again.
    *fleet.failing.lock().unwrap() = 2;
    fleet.read_failures.lock().unwrap().push(Fail::Throttled);
    let wait = Wait {
        poll_every: Duration::from_secs(2),
        limit: Duration::from_secs(60),
        per_round: None,
        ceiling: None,
    };
    let mut out = Vec::new();
    let v = run(&fleet, &spec(), Some(wait), &mut out, never())
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(v.exit, ExitCode::Ok, "{text}");
    assert!(
        text.contains("trying again") && text.contains("== i-1 Success exit 0"),
        "{text}"
    );

    // Failures in a row past the bound end it, with the API's error.
    let fleet = Scripted::new(vec![state("InProgress", &[("i-1", "InProgress")])], &[]);
    *fleet.failing.lock().unwrap() = 100;
    let wait = Wait {
        poll_every: Duration::from_secs(2),
        limit: Duration::from_secs(600),
        per_round: None,
        ceiling: None,
    };
    let err = run(&fleet, &spec(), Some(wait), &mut Vec::new(), never())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Unavailable, "{err}");
}

fn quick_wait(limit: u64) -> Wait {
    Wait {
        poll_every: Duration::from_secs(2),
        limit: Duration::from_secs(limit),
        per_round: None,
        ceiling: None,
    }
}

#[tokio::test(start_paused = true)]
async fn result_reads_failing_in_a_row_end_the_wait_as_polls_do() {
    // Every poll succeeds and says i-1 ended, but every read of its result is throttled: five
    // polls with a failed call in a row end the wait with 69, well before the wait bound.
    let fleet = Scripted::new(
        vec![state("Success", &[("i-1", "Success")])],
        &[("i-1", Some(0))],
    );
    *fleet.read_failures.lock().unwrap() = vec![Fail::Throttled; 100];
    let mut out = Vec::new();
    let started = tokio::time::Instant::now();
    let err = run(&fleet, &spec(), Some(quick_wait(3600)), &mut out, never())
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(err.exit_code(), ExitCode::Unavailable, "{err}\n{text}");
    assert!(err.to_string().contains("GetCommandInvocation"), "{err}");
    assert_eq!(*fleet.reads.lock().unwrap(), 5, "{text}");
    assert!(started.elapsed() < Duration::from_secs(60), "{text}");
    assert!(
        text.contains("stopped waiting, the runner's SSM calls failed")
            && text.contains("0 of 1 targeted instances answered"),
        "{text}"
    );

    // A success between failures starts the count again.
    let fleet = Scripted::new(
        vec![
            state("InProgress", &[("i-1", "Success"), ("i-2", "InProgress")]),
            state("InProgress", &[("i-1", "Success"), ("i-2", "InProgress")]),
            state("Success", &[("i-1", "Success"), ("i-2", "Success")]),
        ],
        &[("i-1", Some(0)), ("i-2", Some(0))],
    );
    *fleet.read_failures.lock().unwrap() = vec![Fail::Throttled; 4];
    *fleet.failing.lock().unwrap() = 0;
    let mut out = Vec::new();
    let v = run(&fleet, &spec(), Some(quick_wait(3600)), &mut out, never())
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(v.exit, ExitCode::Ok, "{text}");
}

#[tokio::test(start_paused = true)]
async fn an_access_denied_result_read_ends_the_wait_at_once() {
    let fleet = Scripted::new(
        vec![state("Success", &[("i-1", "Success")])],
        &[("i-1", Some(0))],
    );
    fleet.read_failures.lock().unwrap().push(Fail::Denied);
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(quick_wait(3600)), &mut out, never())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Unavailable, "{err}");
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("ssm:GetCommandInvocation permission"),
        "the permission hint: {err}"
    );
    assert_eq!(*fleet.reads.lock().unwrap(), 1, "not tried again");
}

#[tokio::test(start_paused = true)]
async fn a_result_read_that_lags_behind_the_listing_is_read_again() {
    // ListCommandInvocations says Success; GetCommandInvocation still says InProgress with
    // code -1 and no output, then catches up.
    let fleet = Scripted::new(
        vec![state("Success", &[("i-1", "Success"), ("i-2", "Success")])],
        &[("i-2", Some(0))],
    );
    let lagging = InvocationResult {
        instance_id: "i-1".into(),
        status: "InProgress".into(),
        status_details: "InProgress".into(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        seen_running: false,
    };
    fleet.results.lock().unwrap().insert(
        "i-1".into(),
        vec![lagging.clone(), lagging, result("i-1", Some(0))],
    );
    let mut out = Vec::new();
    let v = run(&fleet, &spec(), Some(quick_wait(3600)), &mut out, never())
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(v.exit, ExitCode::Ok, "{text}");
    assert!(
        v.summary.contains("2 of 2 instances agree: exit 0"),
        "{text}"
    );
    assert!(
        !text.contains("InProgress"),
        "not printed as a result: {text}"
    );
    assert_eq!(text.matches("== i-1 ").count(), 1, "{text}");
}

#[test]
fn fewer_results_than_targets_is_a_split_naming_the_missing() {
    let v = verdict(&[result("i-1", Some(0)), result("i-2", Some(0))], 3);
    assert_eq!(v.exit, ExitCode::RemoteSplit, "{}", v.summary);
    assert!(
        v.summary.contains("2 of 3")
            && v.summary.contains("1 not run")
            && v.summary.contains("SSM listed no invocation for it"),
        "{}",
        v.summary
    );
    let v = verdict(&[], 2);
    assert_eq!(v.exit, ExitCode::RemoteNoResult, "{}", v.summary);
    assert!(v.summary.contains("0 of 2"), "{}", v.summary);
    // SSM not saying (0) is taken as the results' own count.
    let v = verdict(&[result("i-1", Some(0))], 0);
    assert_eq!(v.exit, ExitCode::Ok);
    assert!(v.summary.contains("1 of 1"), "{}", v.summary);
}

#[tokio::test(start_paused = true)]
async fn a_fleet_that_answers_for_fewer_instances_than_it_targets_is_not_green() {
    // SSM says it targets three instances, and the command ends with two invocations listed.
    let mut done = state("Success", &[("i-1", "Success"), ("i-2", "Success")]);
    done.target_count = 3;
    let fleet = Scripted::new(vec![done], &[("i-1", Some(0)), ("i-2", Some(0))]);
    let mut out = Vec::new();
    let v = run(&fleet, &spec(), Some(quick_wait(3600)), &mut out, never())
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(v.exit, ExitCode::RemoteSplit, "{text}");
    assert!(
        text.contains("2 of 3 targeted instances answered"),
        "{text}"
    );
}

#[test]
fn ssm_errors_are_sorted_by_their_code() {
    use super::ssm::classify;
    let e = classify(
        "ListCommands",
        None,
        Some("ThrottlingException"),
        Some("Rate exceeded"),
    );
    assert!(e.is_transient(), "{e}");
    assert_eq!(e.exit_code(), ExitCode::Unavailable);
    let e = classify("ListCommands", None, None, None);
    assert!(e.is_transient(), "a network error: {e}");
    for code in [
        "AccessDeniedException",
        "ValidationException",
        "UnrecognizedClientException",
    ] {
        let e = classify("GetCommandInvocation", None, Some(code), Some("no"));
        assert!(!e.is_transient(), "{e}");
        assert_eq!(e.exit_code(), ExitCode::Unavailable, "{e}");
        assert!(
            e.to_string()
                .contains("ssm:GetCommandInvocation permission"),
            "{e}"
        );
    }
    let e = classify(
        "SendCommand",
        Some("Gantry-Deploy"),
        Some("InvalidParameters"),
        Some("ImageTag"),
    );
    assert_eq!(e.exit_code(), ExitCode::InvalidInput, "{e}");
    // A request outside the API's limits (51 instance ids, an empty tag value) is SSM refusing
    // the command (65), not the runner's credentials (69).
    let e = classify(
        "SendCommand",
        Some("Gantry-Deploy"),
        Some("ValidationException"),
        Some(
            "1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50",
        ),
    );
    assert!(matches!(e, RemoteError::Refused { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::InvalidInput, "{e}");
    assert!(!e.to_string().contains("credentials"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_cancels_the_command_and_prints_what_came_back() {
    // i-1 ended, i-2 still runs when the CI job is cancelled (SIGTERM after 7 s).
    let fleet = Scripted::new(
        vec![
            state(
                "InProgress",
                &[("i-1", "InProgress"), ("i-2", "InProgress")],
            ),
            state("InProgress", &[("i-1", "Success"), ("i-2", "InProgress")]),
        ],
        &[("i-1", Some(0))],
    );
    let signal = async {
        tokio::time::sleep(Duration::from_secs(7)).await;
        "SIGTERM"
    };
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(quick_wait(3600)), &mut out, signal)
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(err.exit_code(), ExitCode::RemoteNoResult, "{err}");
    assert!(err.to_string().contains("SIGTERM"), "{err}");
    assert_eq!(*fleet.cancelled.lock().unwrap(), ["cmd-1"], "{text}");
    assert!(text.contains("== i-1 Success exit 0"), "{text}");
    assert!(
        text.contains("stopped waiting on SIGTERM, command cancelled; 1 of 2 targeted instances answered: 1 exit 0 (i-1); 1 without a result (exit 5)"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_that_fails_is_said_and_changes_no_exit_code() {
    let mut fleet = Scripted::new(vec![state("InProgress", &[("i-1", "InProgress")])], &[]);
    fleet.cancel_fails = true;
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(quick_wait(10)), &mut out, never())
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(err.exit_code(), ExitCode::RemoteNoResult, "{err}");
    assert!(
        text.contains("could not cancel command cmd-1") && text.contains("aws ssm cancel-command"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_wait_never_passes_its_ceiling_however_many_rounds() {
    // 10 instances one at a time would allow 10 rounds of 100 s; the CI job leaves 250 s.
    let mut running = state("InProgress", &[("i-1", "InProgress")]);
    running.target_count = 10;
    let fleet = Scripted::new(vec![running], &[]);
    let wait = Wait {
        poll_every: Duration::from_secs(5),
        limit: Duration::from_secs(100),
        per_round: Some(Duration::from_secs(100)),
        ceiling: Some(Instant::now() + Duration::from_secs(250)),
    };
    let started = tokio::time::Instant::now();
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(wait), &mut out, never())
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert!(
        matches!(err, RemoteError::WaitTimeout { after, .. } if after == Duration::from_secs(250)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(260), "{text}");
    assert!(text.contains("just before the CI job's timeout"), "{text}");
}

/// The exit code and the last line `run` printed.
async fn last_line(fleet: &Scripted) -> (ExitCode, String) {
    let mut out = Vec::new();
    let r = run(fleet, &spec(), Some(quick_wait(60)), &mut out, never()).await;
    let text = String::from_utf8(out).unwrap();
    let exit = r.map_or_else(|e| e.exit_code(), |v| v.exit);
    (exit, text.lines().last().unwrap_or("").to_owned())
}

#[tokio::test(start_paused = true)]
async fn the_summary_line_tells_the_runners_65_and_69_from_the_instances() {
    // The instances' own codes.
    for code in [65, 69] {
        let fleet = Scripted::new(
            vec![state("Failed", &[("i-1", "Failed"), ("i-2", "Failed")])],
            &[("i-1", Some(code)), ("i-2", Some(code))],
        );
        let (exit, line) = last_line(&fleet).await;
        assert_eq!(i32::from(exit.code()), code);
        assert_eq!(
            line,
            format!("Gantry-Deploy: 2 of 2 instances agree: exit {code} (exit {code})")
        );
    }
    // The runner's.
    let mut fleet = Scripted::new(vec![], &[]);
    fleet.send_fails = Some(|| RemoteError::Refused {
        document: "Gantry-Deploy".into(),
        message: "InvalidParameters: ImageTag".into(),
    });
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::InvalidInput);
    assert_eq!(
        line,
        "Gantry-Deploy: not sent, SSM refused the command (exit 65)"
    );
    fleet.send_fails = Some(|| Fail::Denied.error("SendCommand"));
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::Unavailable);
    assert_eq!(
        line,
        "Gantry-Deploy: not sent, the runner's SSM call failed (exit 69)"
    );
}

/// An invocation that never ran: SSM stopped the command (MaxErrors) or it was cancelled.
fn never_ran(id: &str, status: &str) -> InvocationResult {
    InvocationResult {
        instance_id: id.into(),
        status: status.into(),
        status_details: status.into(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        seen_running: false,
    }
}

/// A fleet scripted as `Scripted::new` does, whose `never` instances each read as never run
/// with the status given.
fn scripted_with_never_ran(
    polls: Vec<CommandState>,
    results: &[(&str, Option<i32>)],
    never: &[(&str, &str)],
) -> Scripted {
    let fleet = Scripted::new(polls, results);
    {
        let mut reads = fleet.results.lock().unwrap();
        for (id, status) in never {
            reads.insert((*id).into(), vec![never_ran(id, status)]);
        }
    }
    fleet
}

/// With `--max-concurrency 1 --max-errors 0`, SSM stops the command at the first failure:
/// the instances after it end Cancelled with no exit code (or, for a tag target, are never
/// listed). They are left out of the agreement: a fleet whose first host rolled back exits 2,
/// as one host does, and a 3 anywhere is 3, not a split.
#[test]
fn instances_ssm_never_ran_are_left_out_of_the_agreement() {
    let rolled_back = result("i-1", Some(2));
    let v = verdict(
        &[
            rolled_back.clone(),
            never_ran("i-2", "Cancelled"),
            never_ran("i-3", "Cancelled"),
        ],
        3,
    );
    assert_eq!(v.exit, ExitCode::RolledBack, "{}", v.summary);
    assert_eq!(
        v.summary,
        "1 of 3 targeted instances ran the command and agree: exit 2; 2 not run, no exit code: SSM stopped the command after 1 error (--max-errors) (i-2 Cancelled, i-3 Cancelled)"
    );
    // A tag target: SSM never listed the instances after the first.
    let v = verdict(std::slice::from_ref(&rolled_back), 3);
    assert_eq!(v.exit, ExitCode::RolledBack, "{}", v.summary);
    assert!(
        v.summary
            .contains("2 not run, no exit code: SSM stopped the command after 1 error (--max-errors) (2 never listed)"),
        "{}",
        v.summary
    );
    // Failed before anything changed, refused, Docker unreachable: the fleet as one host.
    for code in [1, 65, 69, 75] {
        let v = verdict(
            &[result("i-1", Some(code)), never_ran("i-2", "Cancelled")],
            2,
        );
        assert_eq!(i32::from(v.exit.code()), code, "{}", v.summary);
    }
    // A 3 (rollback failed: look now) wins, whether the others ran or not.
    let v = verdict(&[result("i-1", Some(3)), never_ran("i-2", "Cancelled")], 2);
    assert_eq!(v.exit, ExitCode::RollbackFailed, "{}", v.summary);
    let v = verdict(
        &[
            result("i-1", Some(0)),
            result("i-2", Some(3)),
            never_ran("i-3", "Cancelled"),
        ],
        3,
    );
    assert_eq!(v.exit, ExitCode::RollbackFailed, "{}", v.summary);
    assert!(
        v.summary
            .starts_with("rollback failed on i-2 (exit 3: look now)")
            && v.summary.contains("1 exit 0 (i-1)")
            && v.summary.contains("1 not run"),
        "{}",
        v.summary
    );
    let v = verdict(&[result("i-1", Some(0)), result("i-2", Some(3))], 2);
    assert_eq!(v.exit, ExitCode::RollbackFailed, "{}", v.summary);
    // Deployed where it ran, not deployed where it did not: only part of the fleet is on the
    // new release, a split.
    for code in [0, 6] {
        let v = verdict(
            &[result("i-1", Some(code)), never_ran("i-2", "Cancelled")],
            2,
        );
        assert_eq!(v.exit, ExitCode::RemoteSplit, "{}", v.summary);
        // 6 is an error to SSM (not 0): it stopped the command there.
        let why = if code == 0 {
            "the command was cancelled in SSM"
        } else {
            "SSM stopped the command after 1 error"
        };
        assert!(v.summary.contains(why), "{}", v.summary);
    }
    let v = verdict(&[result("i-1", Some(0)), never_ran("i-2", "TimedOut")], 2);
    assert_eq!(v.exit, ExitCode::RemoteSplit, "{}", v.summary);
    assert!(
        v.summary.contains("SSM did not deliver the command") && v.summary.contains("i-2 TimedOut"),
        "{}",
        v.summary
    );
    // Those that ran disagree: still a split, the others listed apart.
    let v = verdict(
        &[
            result("i-1", Some(0)),
            result("i-2", Some(2)),
            never_ran("i-3", "Cancelled"),
        ],
        3,
    );
    assert_eq!(v.exit, ExitCode::RemoteSplit, "{}", v.summary);
    assert!(
        v.summary.starts_with("split result, 2 of 3 targeted instances answered: 1 exit 0 (i-1); 1 exit 2 (i-2); 1 not run"),
        "{}",
        v.summary
    );
    // None ran a Gantry result: SSM killed the first, or delivered to none.
    let v = verdict(
        &[result("i-1", Some(137)), never_ran("i-2", "Cancelled")],
        2,
    );
    assert_eq!(v.exit, ExitCode::RemoteNoResult, "{}", v.summary);
    let v = verdict(
        &[never_ran("i-1", "TimedOut"), never_ran("i-2", "Cancelled")],
        2,
    );
    assert_eq!(v.exit, ExitCode::RemoteNoResult, "{}", v.summary);
    assert!(
        v.summary
            .starts_with("0 of 2 targeted instances gave a result; 2 not run"),
        "{}",
        v.summary
    );
}

#[tokio::test(start_paused = true)]
async fn a_serial_fleet_whose_first_host_rolled_back_exits_2() {
    let fleet = scripted_with_never_ran(
        vec![
            state("InProgress", &[("i-1", "InProgress"), ("i-2", "Pending")]),
            state("Failed", &[("i-1", "Failed"), ("i-2", "Cancelled")]),
        ],
        &[("i-1", Some(2))],
        &[("i-2", "Cancelled")],
    );
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::RolledBack, "{line}");
    assert_eq!(
        line,
        "Gantry-Deploy: 1 of 2 targeted instances ran the command and agree: exit 2; 1 not run, no exit code: SSM stopped the command after 1 error (--max-errors) (i-2 Cancelled) (exit 2)"
    );
}

/// SSM's listings are eventually consistent: the command can read Success while
/// ListCommandInvocations does not show every invocation yet. Gantry polls again (twice at
/// most) before it takes the missing ones as never run.
#[tokio::test(start_paused = true)]
async fn a_final_listing_short_of_the_target_count_is_polled_again() {
    let mut short = state("Success", &[("i-1", "Success"), ("i-2", "Success")]);
    short.target_count = 3;
    let full = state(
        "Success",
        &[("i-1", "Success"), ("i-2", "Success"), ("i-3", "Success")],
    );
    let fleet = Scripted::new(
        vec![short.clone(), short.clone(), full],
        &[("i-1", Some(0)), ("i-2", Some(0)), ("i-3", Some(0))],
    );
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::Ok, "{line}");
    assert_eq!(
        line,
        "Gantry-Deploy: 3 of 3 instances agree: exit 0 (exit 0)"
    );
    assert_eq!(*fleet.polls_made.lock().unwrap(), 3);

    // A listing that never catches up: two more polls, then the missing one never ran.
    let fleet = Scripted::new(vec![short], &[("i-1", Some(0)), ("i-2", Some(0))]);
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::RemoteSplit, "{line}");
    assert!(line.contains("1 not run"), "{line}");
    assert_eq!(*fleet.polls_made.lock().unwrap(), 3);
}

/// The CI job's ceiling is an instant fixed before anything was sent: the time the send took
/// counts against it, a poll in flight is cut short at it, and the last sleep ends at it, not a
/// whole poll interval later.
#[tokio::test(start_paused = true)]
async fn the_ci_ceiling_is_an_instant_that_neither_the_send_nor_a_poll_pushes_back() {
    let running = || state("InProgress", &[("i-1", "InProgress")]);
    let wait = |poll_every: u64, ceiling: Instant| Wait {
        poll_every: Duration::from_secs(poll_every),
        limit: Duration::from_secs(3600),
        per_round: None,
        ceiling: Some(ceiling),
    };
    let ended = async |fleet: &Scripted, wait: Wait| {
        let started = Instant::now();
        let mut out = Vec::new();
        let err = run(fleet, &spec(), Some(wait), &mut out, never())
            .await
            .unwrap_err();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(err.exit_code(), ExitCode::RemoteNoResult, "{err}");
        assert_eq!(*fleet.cancelled.lock().unwrap(), ["cmd-1"], "{text}");
        assert!(text.contains("just before the CI job's timeout"), "{text}");
        (started.elapsed(), text)
    };

    // Uploading and sending took 100 s of the 250 s left: the wait has 150 s.
    let mut fleet = Scripted::new(vec![running()], &[]);
    fleet.send_takes = Duration::from_secs(100);
    let (took, text) = ended(&fleet, wait(5, Instant::now() + Duration::from_secs(250))).await;
    assert_eq!(took, Duration::from_secs(250), "{text}");
    assert!(text.contains("stopped waiting after 2m 30s"), "{text}");

    // A poll hanging for 1000 s is cut at the ceiling.
    let mut fleet = Scripted::new(vec![running()], &[]);
    fleet.poll_takes = Duration::from_secs(1000);
    let (took, text) = ended(&fleet, wait(5, Instant::now() + Duration::from_secs(250))).await;
    assert_eq!(took, Duration::from_secs(250), "{text}");

    // Polls every 100 s: the one at 200 s is followed by 50 s of sleep, not 100, and a last look
    // at the ceiling.
    let fleet = Scripted::new(vec![running()], &[]);
    let (took, text) = ended(&fleet, wait(100, Instant::now() + Duration::from_secs(250))).await;
    assert_eq!(took, Duration::from_secs(250), "{text}");
    assert_eq!(*fleet.polls_made.lock().unwrap(), 4, "{text}");
}

/// An error retrying cannot cure (access denied, a document of several steps) ends the wait:
/// nobody can watch the command any more, so SSM is asked to cancel it, and the summary says
/// whether it was. Calls that kept failing leave it running, and say so.
#[tokio::test(start_paused = true)]
async fn a_command_nobody_can_watch_is_cancelled_and_the_summary_says_so() {
    let running = || {
        vec![state(
            "InProgress",
            &[("i-1", "Success"), ("i-2", "InProgress")],
        )]
    };
    for fail in [Fail::Denied, Fail::SeveralSteps] {
        let fleet = Scripted::new(running(), &[("i-1", Some(0))]);
        fleet.read_failures.lock().unwrap().push(fail);
        let (exit, line) = last_line(&fleet).await;
        assert_eq!(exit, ExitCode::Unavailable, "{fail:?}: {line}");
        assert_eq!(*fleet.cancelled.lock().unwrap(), ["cmd-1"], "{fail:?}");
        assert_eq!(
            line,
            "Gantry-Deploy: stopped waiting, the runner's SSM calls failed; command cancelled; 0 of 2 targeted instances answered; 2 without a result (exit 69)"
        );
    }
    // The cancel refused too: said, with the command left running.
    let mut fleet = Scripted::new(running(), &[("i-1", Some(0))]);
    fleet.cancel_fails = true;
    fleet.read_failures.lock().unwrap().push(Fail::Denied);
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(quick_wait(60)), &mut out, never())
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(err.exit_code(), ExitCode::Unavailable, "{err}");
    assert!(
        text.contains("aws ssm cancel-command --command-id cmd-1")
            && text.contains(
                "the runner's SSM calls failed; could not cancel the command, it goes on in SSM;"
            ),
        "{text}"
    );
    // Throttled five times in a row: not cancelled (the API is not answering), and said.
    let fleet = Scripted::new(running(), &[("i-1", Some(0))]);
    *fleet.read_failures.lock().unwrap() = vec![Fail::Throttled; 5];
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::Unavailable, "{line}");
    assert!(fleet.cancelled.lock().unwrap().is_empty());
    assert!(
        line.contains("the runner's SSM calls failed; the command goes on in SSM;"),
        "{line}"
    );
}

/// GetCommandInvocation is sent without PluginName: for a document of several steps SSM
/// answers InvalidPluginName, which is said as such (not as a credentials problem).
#[test]
fn invalid_plugin_name_says_the_document_must_have_one_step() {
    use super::ssm::read_error;
    let e = read_error(
        "cmd-9",
        "i-0abc",
        Some("InvalidPluginName"),
        Some("the document has more than one step"),
        None,
    );
    assert!(
        matches!(&e, RemoteError::NotOneStep { command_id, instance_id, .. } if command_id == "cmd-9" && instance_id == "i-0abc"),
        "{e}"
    );
    assert!(!e.is_transient());
    assert_eq!(e.exit_code(), ExitCode::Unavailable);
    let text = e.to_string();
    assert!(
        text.contains("must have exactly one step")
            && text.contains("InvalidPluginName")
            && !text.contains("credentials"),
        "{text}"
    );
    // Other errors of the read are sorted as any call's.
    let e = read_error("cmd-9", "i-0abc", Some("ThrottlingException"), None, None);
    assert!(e.is_transient(), "{e}");
    let e = read_error("cmd-9", "i-0abc", Some("AccessDeniedException"), None, None);
    assert!(matches!(e, RemoteError::Rejected { .. }), "{e}");
}

/// A wait that ends early (a call retrying cannot cure, the bound, a signal, failures in a row)
/// after the last poll showed the command ended in SSM does not cancel it, nor say it was
/// cancelled or goes on: it says the command had ended and its results could not be read.
#[tokio::test(start_paused = true)]
async fn a_command_that_had_already_ended_is_not_cancelled_and_the_summary_says_so() {
    let ended = || vec![state("Success", &[("i-1", "Success"), ("i-2", "Success")])];
    // Result reads that keep lagging behind the listing (InProgress, no code): never final.
    let lagging = [("i-1", "InProgress"), ("i-2", "InProgress")];
    // Access denied on a result read.
    let fleet = Scripted::new(ended(), &[("i-1", Some(0)), ("i-2", Some(0))]);
    fleet.read_failures.lock().unwrap().push(Fail::Denied);
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::Unavailable, "{line}");
    assert!(fleet.cancelled.lock().unwrap().is_empty(), "{line}");
    assert_eq!(
        line,
        "Gantry-Deploy: stopped waiting, the runner's SSM calls failed; the command had already ended in SSM (status Success); its results could not be read; 0 of 2 targeted instances answered; 2 without a result (exit 69)"
    );

    // The bound passes while the result reads still lag: not cancelled, and the error says why.
    let fleet = scripted_with_never_ran(ended(), &[], &lagging);
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(quick_wait(10)), &mut out, never())
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(err.exit_code(), ExitCode::RemoteNoResult, "{err}");
    assert!(fleet.cancelled.lock().unwrap().is_empty(), "{text}");
    assert!(
        text.contains("Gantry-Deploy: stopped waiting after 10s; the command had already ended in SSM (status Success); its results could not be read; 0 of 2 targeted instances answered"),
        "{text}"
    );
    let err = err.to_string();
    assert!(
        err.contains("had already ended in SSM (status Success)") && !err.contains("cancel"),
        "{err}"
    );

    // A signal, the same.
    let fleet = scripted_with_never_ran(ended(), &[], &lagging);
    let signal = async {
        tokio::time::sleep(Duration::from_secs(7)).await;
        "SIGTERM"
    };
    let mut out = Vec::new();
    let err = run(&fleet, &spec(), Some(quick_wait(3600)), &mut out, signal)
        .await
        .unwrap_err();
    let text = String::from_utf8(out).unwrap();
    assert!(fleet.cancelled.lock().unwrap().is_empty(), "{text}");
    assert!(
        text.contains(
            "stopped waiting on SIGTERM; the command had already ended in SSM (status Success)"
        ),
        "{text}"
    );
    assert!(!err.to_string().contains("cancel"), "{err}");

    // Every invocation ended while the command's own status still lags: ended too; reads
    // throttled five times in a row say so instead of "goes on in SSM".
    let fleet = Scripted::new(
        vec![state(
            "InProgress",
            &[("i-1", "Success"), ("i-2", "Failed")],
        )],
        &[("i-1", Some(0)), ("i-2", Some(1))],
    );
    *fleet.read_failures.lock().unwrap() = vec![Fail::Throttled; 5];
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::Unavailable, "{line}");
    assert!(
        line.contains("the runner's SSM calls failed; the command had already ended in SSM (status InProgress, every invocation ended); its results could not be read;"),
        "{line}"
    );

    // Still running somewhere (one invocation of two listed, or one in progress): cancelled.
    let mut short = state("InProgress", &[("i-1", "Success")]);
    short.target_count = 2;
    // Failed at --max-errors while another instance still runs (SSM lets it go on): not
    // ended either.
    for polls in [
        vec![short],
        vec![state(
            "InProgress",
            &[("i-1", "Success"), ("i-2", "InProgress")],
        )],
        vec![state("Failed", &[("i-1", "Failed"), ("i-2", "InProgress")])],
    ] {
        let fleet = Scripted::new(polls, &[("i-1", Some(0))]);
        fleet.read_failures.lock().unwrap().push(Fail::Denied);
        let (_, line) = last_line(&fleet).await;
        assert_eq!(*fleet.cancelled.lock().unwrap(), ["cmd-1"], "{line}");
        assert!(line.contains("; command cancelled;"), "{line}");
    }
}

/// The CI job's ceiling is checked right before the send: an upload or AWS set-up that used
/// the time up leaves no command running unwatched (64, as the command line's own check).
#[tokio::test(start_paused = true)]
async fn nothing_is_sent_when_the_ci_ceiling_leaves_less_than_one_poll() {
    let wait = |left: u64| Wait {
        poll_every: Duration::from_secs(5),
        limit: Duration::from_secs(3600),
        per_round: None,
        ceiling: Some(Instant::now() + Duration::from_secs(left)),
    };
    for left in [0, 4] {
        let fleet = Scripted::new(vec![state("Success", &[("i-1", "Success")])], &[]);
        let mut out = Vec::new();
        let err = run(&fleet, &spec(), Some(wait(left)), &mut out, never())
            .await
            .unwrap_err();
        let text = String::from_utf8(out).unwrap();
        assert!(fleet.sent.lock().unwrap().is_empty(), "{left}: {text}");
        assert!(
            matches!(err, RemoteError::NoTimeLeft { .. }),
            "{left}: {err}"
        );
        assert_eq!(err.exit_code(), ExitCode::Usage);
        assert!(err.to_string().contains("nothing was sent"), "{err}");
        assert_eq!(
            text,
            "Gantry-Deploy: not sent, no time left before the CI job's timeout (exit 64)\n"
        );
    }
    // A ceiling already passed.
    let fleet = Scripted::new(vec![state("Success", &[("i-1", "Success")])], &[]);
    let passed = wait(0);
    tokio::time::advance(Duration::from_secs(30)).await;
    let err = run(&fleet, &spec(), Some(passed), &mut Vec::new(), never())
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::NoTimeLeft { .. }), "{err}");
    assert!(fleet.sent.lock().unwrap().is_empty());
    // One poll interval left: sent and followed.
    let fleet = Scripted::new(
        vec![state("Success", &[("i-1", "Success")])],
        &[("i-1", Some(0))],
    );
    let v = run(&fleet, &spec(), Some(wait(5)), &mut Vec::new(), never())
        .await
        .unwrap();
    assert_eq!(v.exit, ExitCode::Ok);
    // Without a wait there is no ceiling to check.
    let fleet = Scripted::new(vec![], &[]);
    assert!(
        run(&fleet, &spec(), None, &mut Vec::new(), never())
            .await
            .is_ok()
    );
    assert_eq!(fleet.sent.lock().unwrap().len(), 1);
}

/// SSM's listings are eventually consistent: right after the send, ListCommands and the others
/// may answer InvalidCommandId. Within 30 s of the send that is tried again (no cancel), after
/// that, or for a command this client did not send, it is final.
#[test]
fn invalid_command_id_is_tried_again_only_right_after_the_send() {
    use super::ssm::{NEW_COMMAND, command_error, read_error};
    let code = Some("InvalidCommandId");
    for ago in [Duration::ZERO, Duration::from_secs(29)] {
        let e = command_error("ListCommands", code, Some("no such command"), Some(ago));
        assert!(e.is_transient(), "{ago:?}: {e}");
        assert!(e.to_string().contains("may not list it yet"), "{e}");
        let e = read_error("cmd-1", "i-1", code, None, Some(ago));
        assert!(e.is_transient(), "{ago:?}: {e}");
    }
    for ago in [Some(NEW_COMMAND), Some(Duration::from_secs(600)), None] {
        let e = command_error("ListCommandInvocations", code, None, ago);
        assert!(matches!(e, RemoteError::Rejected { .. }), "{ago:?}: {e}");
        let e = read_error("cmd-1", "i-1", code, None, ago);
        assert!(!e.is_transient(), "{ago:?}: {e}");
    }
    // Other codes are sorted as any call's, however new the command.
    let young = Some(Duration::from_secs(1));
    let e = command_error("ListCommands", Some("AccessDeniedException"), None, young);
    assert!(!e.is_transient(), "{e}");
    let e = command_error("ListCommands", Some("ThrottlingException"), None, young);
    assert!(e.is_transient(), "{e}");
    let e = read_error("cmd-1", "i-1", Some("InvalidPluginName"), None, young);
    assert!(matches!(e, RemoteError::NotOneStep { .. }), "{e}");
}

/// SSM not listing a command it was just sent is not a failed poll: more than five of those in
/// the first 30 s do not end the wait (which would leave the command running unwatched).
#[tokio::test(start_paused = true)]
async fn a_command_not_listed_yet_does_not_use_up_the_failed_polls() {
    let fleet = Scripted::new(
        vec![state("Success", &[("i-1", "Success")])],
        &[("i-1", Some(0))],
    );
    *fleet.read_failures.lock().unwrap() = vec![Fail::NotListedYet; 8];
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::Ok, "{line}");
    assert!(fleet.cancelled.lock().unwrap().is_empty(), "{line}");
}

/// An instance a poll saw running that ends cancelled without an exit code (the command was
/// cancelled in SSM mid-deploy) ran the command: no Gantry result (as a 137), never "not run".
#[tokio::test(start_paused = true)]
async fn an_instance_seen_running_then_cancelled_is_no_gantry_result_not_not_run() {
    let fleet = scripted_with_never_ran(
        vec![
            state("InProgress", &[("i-1", "Failed"), ("i-2", "InProgress")]),
            state("Cancelled", &[("i-1", "Failed"), ("i-2", "Cancelled")]),
        ],
        &[("i-1", Some(2))],
        &[("i-2", "Cancelled")],
    );
    let (exit, line) = last_line(&fleet).await;
    // i-2 was stopped mid-deploy: its state is not known, so not "the fleet rolled back".
    assert_eq!(exit, ExitCode::RemoteSplit, "{line}");
    assert_eq!(
        line,
        "Gantry-Deploy: split result over 2 instances: 1 no exit code (i-2); 1 exit 2 (i-1) (exit 4)"
    );
    // Never seen running (cancelled while pending): not run, as before.
    let fleet = scripted_with_never_ran(
        vec![
            state("InProgress", &[("i-1", "InProgress"), ("i-2", "Pending")]),
            state("Cancelled", &[("i-1", "Failed"), ("i-2", "Cancelled")]),
        ],
        &[("i-1", Some(2))],
        &[("i-2", "Cancelled")],
    );
    let (exit, line) = last_line(&fleet).await;
    assert_eq!(exit, ExitCode::RolledBack, "{line}");
    assert!(line.contains("1 not run"), "{line}");
    // Alone: no Gantry result (5), listed with the instances that ran.
    let stopped = InvocationResult {
        seen_running: true,
        ..never_ran("i-1", "Cancelled")
    };
    let v = verdict(&[stopped], 1);
    assert_eq!(v.exit, ExitCode::RemoteNoResult, "{}", v.summary);
    assert!(
        v.summary
            .starts_with("1 of 1 instances gave no Gantry result: 1 no exit code (i-1)")
            && !v.summary.contains("not run"),
        "{}",
        v.summary
    );
}

/// Why an instance never ran the command comes from SSM's StatusDetails where it says
/// (Undeliverable, DeliveryTimedOut, Terminated), not from its status; the exit code does not
/// change, and those do not count as errors against --max-errors.
#[test]
fn the_reason_an_instance_never_ran_comes_from_its_status_details() {
    let detailed = |id: &str, status: &str, details: &str| InvocationResult {
        status_details: details.into(),
        ..never_ran(id, status)
    };
    for (status, details, reason) in [
        (
            "Failed",
            "Undeliverable",
            "SSM could not deliver the command (Undeliverable",
        ),
        (
            "TimedOut",
            "DeliveryTimedOut",
            "SSM did not deliver the command within --delivery-timeout (DeliveryTimedOut",
        ),
        (
            "Failed",
            "Terminated",
            "the instance was terminated (Terminated)",
        ),
    ] {
        let v = verdict(
            &[result("i-1", Some(0)), detailed("i-2", status, details)],
            2,
        );
        assert_eq!(v.exit, ExitCode::RemoteSplit, "{}", v.summary);
        assert!(
            v.summary
                .contains(&format!("1 not run, no exit code: {reason}"))
                && v.summary.ends_with(&format!("(i-2 {details})")),
            "{}",
            v.summary
        );
    }
    // With a serial fleet stopped at its first failure: the undeliverable one is no error.
    let v = verdict(
        &[
            result("i-1", Some(2)),
            detailed("i-2", "Failed", "Undeliverable"),
            never_ran("i-3", "Cancelled"),
        ],
        3,
    );
    assert_eq!(v.exit, ExitCode::RolledBack, "{}", v.summary);
    assert_eq!(
        v.summary,
        "1 of 3 targeted instances ran the command and agree: exit 2; 2 not run, no exit code: SSM could not deliver the command (Undeliverable: the instance is stopped, gone, or not managed by SSM); SSM stopped the command after 1 error (--max-errors) (i-2 Undeliverable, i-3 Cancelled)"
    );
    // No details: from the statuses, as before.
    let v = verdict(&[result("i-1", Some(0)), never_ran("i-2", "TimedOut")], 2);
    assert!(
        v.summary
            .contains("SSM did not deliver the command (check that the SSM agent is online"),
        "{}",
        v.summary
    );
}
