//! Unit tests of the ledger on temporary state dirs.

use super::*;

fn draft(deploy_id: Option<&str>) -> Release {
    Release {
        seq: 0,
        stack: String::new(),
        deploy_id: deploy_id.map(str::to_owned),
        started_at: now_rfc3339(),
        finished_at: None,
        outcome: Outcome::InProgress,
        pid: 0,
        variables: BTreeMap::from([("IMAGE_TAG".into(), "abc".into())]),
        files: vec![],
        model: serde_json::json!({}),
        x_gantry: BTreeMap::new(),
        images: BTreeMap::new(),
        env_files: BTreeMap::new(),
        env_file_refs: BTreeMap::new(),
        services: vec![],
        jobs: BTreeMap::new(),
        error: None,
        exit_code: None,
        unsettled: false,
        down: false,
    }
}

#[test]
fn releases_are_numbered_and_found_by_deploy_id() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    let lock = stack.try_lock(&Holder::me("test", None)).unwrap();
    let mut r1 = stack.begin(&lock, draft(Some("ci-1"))).unwrap();
    assert_eq!(r1.id(), "r1");
    r1.outcome = Outcome::Succeeded;
    stack.write(&r1).unwrap();
    let r2 = stack.begin(&lock, draft(Some("ci-2"))).unwrap();
    assert_eq!(r2.seq, 2);
    assert_eq!(stack.find_deploy("ci-1").unwrap().unwrap().seq, 1);
    assert_eq!(stack.last_good().unwrap().unwrap().seq, 1);
    assert_eq!(stack.release("r2").unwrap().seq, 2);
    assert!(matches!(
        stack.release("r9"),
        Err(LedgerError::NoSuchRelease { .. })
    ));
}

#[test]
fn rollback_targets_are_found_by_release_deploy_id_or_variable_value() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    let lock = stack.try_lock(&Holder::me("test", None)).unwrap();
    let add = |id: &str, tag: &str, model: &str, outcome: Outcome| {
        let mut r = draft(Some(id));
        r.variables = BTreeMap::from([("IMAGE_TAG".into(), tag.into())]);
        r.model = serde_json::json!({ "m": model });
        let mut r = stack.begin(&lock, r).unwrap();
        r.outcome = outcome;
        stack.write(&r).unwrap();
    };
    add("101", "aaa", "1", Outcome::Succeeded); // r1
    add("102", "bbb", "2", Outcome::Succeeded); // r2
    add("103", "ccc", "3", Outcome::RolledBack); // r3: not a target by id or value
    add("104", "bbb", "2", Outcome::Succeeded); // r4: same model as r2
    add("105", "ddd", "4", Outcome::Succeeded); // r5
    add("2", "eee", "5", Outcome::Succeeded); // r6: deploy id "2" vs release number 2

    assert_eq!(stack.resolve_release("r3").unwrap().seq, 3);
    assert_eq!(stack.resolve_release("101").unwrap().seq, 1, "deploy id");
    assert_eq!(
        stack.resolve_release("aaa").unwrap().seq,
        1,
        "IMAGE_TAG value"
    );
    // The same model deployed twice counts once: the newest.
    assert_eq!(stack.resolve_release("bbb").unwrap().seq, 4);
    let unknown = stack.resolve_release("ccc").unwrap_err();
    assert!(
        matches!(unknown, LedgerError::NoSuchRelease { .. }),
        "{unknown}"
    );
    let err = stack.resolve_release("2").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LedgerError::AmbiguousRelease { .. }), "{msg}");
    assert!(
        msg.contains("r6 (deploy id)") && msg.contains("r2 (release number)"),
        "{msg}"
    );
}

#[test]
fn second_lock_is_busy_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    let _lock = stack
        .try_lock(&Holder::me("gantry deploy web", Some("ci-7")))
        .unwrap();
    let err = stack.try_lock(&Holder::me("other", None)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ci-7") && msg.contains("gantry deploy web"),
        "{msg}"
    );
    drop(_lock);
    stack.try_lock(&Holder::me("other", None)).unwrap();
}

/// The daemon's route sync holds a stack for milliseconds: a deploy without `--lock-wait`
/// waits for it instead of exiting busy; a deploy's hold is still busy at once.
#[tokio::test]
async fn a_brief_holder_is_waited_for_whatever_the_lock_wait() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    let sync = stack
        .try_lock(&Holder::brief("gantryd edge sync web"))
        .unwrap();
    let me = Holder::me("gantry deploy web", None);
    let waiting = {
        let stack = stack.clone();
        let me = me.clone();
        tokio::spawn(async move { stack.lock(&me, Duration::ZERO).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "waits for the brief holder");
    drop(sync);
    waiting.await.unwrap().expect("taken once the sync let go");

    let _deploy = stack
        .try_lock(&Holder::me("gantry deploy web", None))
        .unwrap();
    let busy = stack.lock(&me, Duration::ZERO).await;
    assert!(
        matches!(busy, Err(LedgerError::LockBusy { .. })),
        "{busy:?}"
    );
}

#[test]
fn interrupted_releases_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    let lock = stack.try_lock(&Holder::me("test", None)).unwrap();
    stack.begin(&lock, draft(Some("ci-1"))).unwrap();
    assert_eq!(stack.recover(&lock).unwrap(), vec![1]);
    assert_eq!(stack.releases().unwrap()[0].outcome, Outcome::Interrupted);
    // An interrupted deploy id runs again rather than reporting the interruption.
    assert!(stack.find_deploy("ci-1").unwrap().is_none());
}

#[test]
fn prune_keeps_the_newest_good_releases() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    let lock = stack.try_lock(&Holder::me("test", None)).unwrap();
    for outcome in [
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Succeeded,
        Outcome::RolledBack,
        Outcome::Succeeded,
    ] {
        let mut r = stack.begin(&lock, draft(None)).unwrap();
        r.outcome = outcome;
        stack.write(&r).unwrap();
    }
    let removed: Vec<u64> = stack
        .prune(&lock, 2)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(removed, vec![1, 2]);
    let kept: Vec<u64> = stack.releases().unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(kept, vec![3, 4, 5]);
}

#[test]
fn a_corrupt_release_is_reported_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    let bad = dir.path().join("stacks/web/releases/000001.json");
    fs::create_dir_all(bad.parent().unwrap()).unwrap();
    fs::write(&bad, b"{not json").unwrap();
    let err = stack.releases().unwrap_err();
    assert!(err.to_string().contains("000001.json"), "{err}");
    assert!(bad.exists());
}

#[test]
fn reading_a_stack_creates_no_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ghost = Ledger::new(dir.path()).stack("ghost").unwrap();
    assert!(ghost.releases().unwrap().is_empty());
    assert!(ghost.last_good().unwrap().is_none());
    assert!(ghost.holder().is_none());
    assert!(!dir.path().join("stacks").exists(), "a phantom stack dir");
    assert!(Ledger::new(dir.path()).stacks().unwrap().is_empty());
    let _lock = ghost.try_lock(&Holder::me("test", None)).unwrap();
    assert!(dir.path().join("stacks/ghost/releases").is_dir());
}

#[test]
fn rejects_bad_stack_names() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Ledger::new(dir.path()).stack("../etc").is_err());
    assert!(Ledger::new(dir.path()).stack("Web").is_err());
}

#[test]
fn a_lock_record_left_by_a_dead_process_or_a_recycled_pid_is_not_a_live_holder() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Ledger::new(dir.path()).stack("web").unwrap();
    {
        let _lock = stack
            .try_lock(&Holder::me("gantry deploy web", None))
            .unwrap();
        assert_eq!(stack.live_holder().unwrap().pid, std::process::id());
    }
    assert!(stack.live_holder().is_none(), "released: no holder");

    // A kill -9 leaves lock.json behind; what it names decides.
    let record = |pid: u32, started_at: String| {
        let h = Holder {
            pid,
            deploy_id: None,
            started_at,
            command: "gantry deploy web".into(),
            brief: false,
        };
        fs::write(
            dir.path().join("stacks/web/lock.json"),
            serde_json::to_vec(&h).unwrap(),
        )
        .unwrap();
    };
    // This process, recorded after it started: alive.
    record(std::process::id(), now_rfc3339());
    assert!(stack.live_holder().is_some());
    // This pid recorded a day before this process started: a recycled pid, stale.
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    record(
        std::process::id(),
        humantime::format_rfc3339_seconds(day_ago).to_string(),
    );
    assert!(stack.holder().is_some() && stack.live_holder().is_none());
    // A process that is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    record(gone, now_rfc3339());
    assert!(stack.live_holder().is_none());
}

#[test]
fn taking_the_lock_removes_temp_files_a_killed_writer_left() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::new(dir.path());
    let stack = ledger.stack("web").unwrap();
    let releases = dir.path().join("stacks/web/releases");
    std::fs::create_dir_all(&releases).unwrap();
    // Above any pid_max: no process has this pid (a --local deploy killed mid-write).
    let left = releases.join(".000004.json.tmp.4194305.0");
    std::fs::write(&left, "{\"environment\": {\"PW\": \"secret\"}}").unwrap();
    let kept = releases.join("000003.json");
    std::fs::write(&kept, "{}").unwrap();
    let _lock = stack.try_lock(&Holder::me("test", None)).unwrap();
    assert!(!left.exists(), "the leftover is gone");
    assert!(kept.exists(), "a release is not a temp file");
}
