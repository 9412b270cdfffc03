//! The scheduler's preflight: what can only fail part-way is refused before anything changes.

use std::sync::Mutex;

use crate::deploy::tests::Setup;
use crate::deploy::{Deployer, Progress};
use crate::ledger::Outcome;

/// Every step the deploy reports, as `service: message`.
#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl Progress for Steps {
    fn step(&self, service: Option<&str>, message: &str) {
        let line = format!("{}: {message}", service.unwrap_or("-"));
        self.0.lock().unwrap().push(line);
    }
}

fn stack(api_secret: &str) -> String {
    format!(
        "services:
  db:
    image: app:${{V}}
    x-gantry: {{min_ready: 1s}}
  api:
    image: app:${{V}}
    depends_on: [db]
    secrets: [{{source: tok, uid: '1000', mode: 0400}}]
    x-gantry: {{min_ready: 1s}}
secrets:
  tok: {{{api_secret}}}
"
    )
}

#[tokio::test(start_paused = true)]
async fn a_secret_that_is_not_a_file_is_refused_before_anything_changes() {
    let s = Setup::new();
    std::fs::write(s.dir.path().join("tok.txt"), "x").unwrap();
    let report = s.deploy(&stack("file: ./tok.txt"), "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    s.engine.clear_calls();

    // db goes first: it must not be replaced for a deploy that cannot end at api.
    for (source, key) in [
        ("environment: TOK", "secrets.tok.environment"),
        ("content: hello", "secrets.tok.content"),
    ] {
        let report = s.deploy(&stack(source), "2").await;
        let error = report.error.clone().unwrap_or_default();
        assert_eq!(report.exit_code(), crate::ExitCode::InvalidInput, "{error}");
        let file = s.file.display().to_string();
        assert!(error.starts_with(&format!("{file}: {key}: ")), "{error}");
        assert!(
            !error.contains("hello"),
            "a content is never quoted: {error}"
        );
        let touched: Vec<String> = s
            .engine
            .calls()
            .into_iter()
            .filter(|c| !c.starts_with("pull") && !c.starts_with("inspect"))
            .collect();
        assert!(touched.is_empty(), "{touched:#?}");
        assert!(
            s.engine.containers()["app-db-1"]
                .image_id
                .ends_with(&"1".repeat(64))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn uid_gid_and_mode_of_a_mounted_file_are_said_to_be_ignored() {
    let s = Setup::new();
    std::fs::write(s.dir.path().join("tok.txt"), "x").unwrap();
    let compose = stack("file: ./tok.txt");
    let project = crate::compose::load(&s.request(&compose, "1").load).unwrap();
    let warning = "services.api.secrets[0]: uid, mode not applied";
    assert!(
        project.warnings.iter().any(|w| w.starts_with(warning)),
        "{:?}",
        project.warnings
    );
    let steps = Steps::default();
    let deployer: &Deployer = &s.deployer;
    let report = deployer.deploy(&s.request(&compose, "1"), &steps).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let steps = steps.0.lock().unwrap().clone();
    assert!(
        steps
            .iter()
            .any(|l| l.starts_with(&format!("api: warning: {warning}"))),
        "{steps:#?}"
    );
}

fn with_network(back: &str) -> String {
    format!(
        "services:
  db:
    image: app:1
    networks: [back]
    volumes: [data:/data]
    x-gantry: {{min_ready: 1s}}
  web:
    image: app:1
    x-gantry: {{min_ready: 1s}}
networks:
  back: {{{back}}}
volumes:
  data: {{}}
"
    )
}

/// Docker cannot change a network in place: the plan and the deploy say what differs and
/// what to do, instead of leaving it as it was without a word.
#[tokio::test(start_paused = true)]
async fn a_network_whose_configuration_changed_is_named_with_what_to_do() {
    let s = Setup::new();
    let report = s
        .deploy(&with_network("driver_opts: {com.example: a}"), "1")
        .await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);

    let changed = with_network("internal: true, driver_opts: {com.example: b}");
    let plan = s.plan(&changed, "1").await;
    let db = plan.get("db").unwrap();
    assert_eq!(db.action, crate::deploy::plan::Action::Unchanged);
    let why = db.reasons.join("\n");
    for part in [
        "network app_back changed in the files since r1: ",
        "driver_opts.com.example: one value in the files, another in r1 (driver option values are not shown)",
        "internal: true in the files, false in r1",
        "`gantry down app`, then deploy",
    ] {
        assert!(why.contains(part), "{part:?} not in {why}");
    }
    assert!(plan.get("web").unwrap().reasons.is_empty());

    let steps = Steps::default();
    let deployer: &Deployer = &s.deployer;
    let report = deployer.deploy(&s.request(&changed, "1"), &steps).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let steps = steps.0.lock().unwrap().join("\n");
    for part in [
        "-: warning: network app_back (networks.back) differs from the files: ",
        "internal: true in the files, false on the network",
        "`gantry down app`, then deploy",
    ] {
        assert!(steps.contains(part), "{part:?} not in {steps}");
    }
    // Unchanged files: nothing to say.
    let steps = Steps::default();
    let report = deployer
        .deploy(
            &s.request(&with_network("driver_opts: {com.example: a}"), "1"),
            &steps,
        )
        .await;
    assert!(report.outcome.is_good(), "{:?}", report.error);
    assert!(
        !steps
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("warning"))
    );
}
