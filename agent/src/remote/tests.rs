//! Unit tests of the agreement rules and the wait loop, with a scripted fleet (no AWS).

use std::sync::Mutex;

use super::*;

fn result(id: &str, code: Option<i32>) -> InvocationResult {
    InvocationResult {
        instance_id: id.into(),
        status: if code == Some(0) { "Success" } else { "Failed" }.into(),
        exit_code: code,
        stdout: format!("[shop] output of {id}\n"),
        stderr: String::new(),
    }
}

#[test]
fn all_instances_agreeing_give_their_code() {
    let v = verdict(&[result("i-1", Some(0)), result("i-2", Some(0))]);
    assert_eq!(v.exit, ExitCode::Ok);
    let v = verdict(&[result("i-1", Some(2)), result("i-2", Some(2))]);
    assert_eq!(v.exit, ExitCode::RolledBack);
    assert!(v.summary.contains("2 of 2"), "{}", v.summary);
    // Serving but not recorded (a full state dir) is a Gantry result, not "no result".
    let v = verdict(&[result("i-1", Some(6)), result("i-2", Some(6))]);
    assert_eq!(v.exit, ExitCode::NotRecorded, "{}", v.summary);
    // Every code `gantry deploy`, `rollback` and `status` can end with passes through.
    for code in [0, 1, 2, 3, 6, 64, 65, 69, 75, 78] {
        let v = verdict(&[result("i-1", Some(code))]);
        assert_eq!(i32::from(v.exit.code()), code, "{}", v.summary);
    }
}

#[test]
fn a_split_result_is_its_own_code_and_names_every_instance() {
    let v = verdict(&[
        result("i-1", Some(0)),
        result("i-2", Some(2)),
        result("i-3", None),
    ]);
    assert_eq!(v.exit, ExitCode::RemoteSplit);
    for id in ["i-1", "i-2", "i-3"] {
        assert!(v.summary.contains(id), "{}", v.summary);
    }
    assert!(v.summary.contains("exit 2") && v.summary.contains("no exit code"));
}

#[test]
fn no_gantry_result_is_never_passed_through_as_137() {
    // SSM's executionTimeout kills the script: 137 everywhere is not a Gantry code.
    let v = verdict(&[result("i-1", Some(137)), result("i-2", Some(137))]);
    assert_eq!(v.exit, ExitCode::RemoteNoResult);
    assert_ne!(v.exit.code(), 137);
    let v = verdict(&[]);
    assert_eq!(v.exit, ExitCode::RemoteNoResult);
    assert!(v.summary.contains("no instance matched"));
}

/// A fleet whose invocations end one poll after another.
struct Scripted {
    polls: Mutex<Vec<CommandState>>,
    results: BTreeMap<String, InvocationResult>,
    sent: Mutex<Vec<CommandSpec>>,
    /// This many calls (polls and result reads alike) fail first, as throttling does.
    failing: Mutex<u32>,
}

impl Scripted {
    fn new(polls: Vec<CommandState>, results: &[(&str, Option<i32>)]) -> Self {
        Self {
            polls: Mutex::new(polls),
            results: results
                .iter()
                .map(|(id, code)| ((*id).to_owned(), result(id, *code)))
                .collect(),
            sent: Mutex::default(),
            failing: Mutex::new(0),
        }
    }

    fn throttled(&self) -> Result<(), RemoteError> {
        let mut n = self.failing.lock().unwrap();
        if *n == 0 {
            return Ok(());
        }
        *n -= 1;
        Err(RemoteError::Api {
            operation: "ListCommandInvocations",
            message: "ThrottlingException: Rate exceeded".into(),
        })
    }
}

#[async_trait::async_trait]
impl Fleet for Scripted {
    async fn send(&self, spec: &CommandSpec) -> Result<String, RemoteError> {
        self.sent.lock().unwrap().push(spec.clone());
        Ok("cmd-1".into())
    }
    async fn poll(&self, _: &str) -> Result<CommandState, RemoteError> {
        self.throttled()?;
        let mut polls = self.polls.lock().unwrap();
        Ok(if polls.len() > 1 {
            polls.remove(0)
        } else {
            polls[0].clone()
        })
    }
    async fn result(&self, _: &str, id: &str) -> Result<InvocationResult, RemoteError> {
        self.throttled()?;
        Ok(self.results[id].clone())
    }
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
    let fleet = Scripted {
        polls: Mutex::new(vec![
            state("InProgress", &[("i-1", "InProgress")]),
            state("InProgress", &[("i-1", "Success"), ("i-2", "InProgress")]),
            state("Failed", &[("i-1", "Success"), ("i-2", "Failed")]),
        ]),
        results: BTreeMap::from([
            ("i-1".into(), result("i-1", Some(0))),
            ("i-2".into(), result("i-2", Some(2))),
        ]),
        sent: Mutex::default(),
        failing: Mutex::new(0),
    };
    let mut out = Vec::new();
    let wait = Wait {
        poll_every: Duration::from_secs(2),
        limit: Duration::from_secs(60),
        per_round: None,
    };
    let v = run(&fleet, &spec(), Some(wait), &mut out).await.unwrap();
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
    let fleet = Scripted {
        polls: Mutex::new(vec![state("InProgress", &[("i-1", "InProgress")])]),
        results: BTreeMap::new(),
        sent: Mutex::default(),
        failing: Mutex::new(0),
    };
    let wait = Wait {
        poll_every: Duration::from_secs(5),
        limit: Duration::from_secs(30),
        per_round: None,
    };
    let err = run(&fleet, &spec(), Some(wait), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::RemoteNoResult);
    assert!(err.to_string().contains("cmd-1"), "{err}");
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
    };
    let mut out = Vec::new();
    let v = run(&fleet, &spec(), Some(wait), &mut out).await;
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
    let wait = Wait {
        poll_every: Duration::from_secs(2),
        limit: Duration::from_secs(60),
        per_round: None,
    };
    let mut out = Vec::new();
    let v = run(&fleet, &spec(), Some(wait), &mut out).await.unwrap();
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
    };
    let err = run(&fleet, &spec(), Some(wait), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Unavailable, "{err}");
}
