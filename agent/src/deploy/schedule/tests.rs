//! The scheduler's preflight: what can only fail part-way is refused before anything changes.

use std::sync::Mutex;

use crate::deploy::plan::bound::tests::Setup;
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
