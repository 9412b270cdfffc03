//! `gantry releases`: a stack's release history.

use crate::ExitCode;
use crate::ledger::{Ledger, LedgerError};

use super::GlobalArgs;
use super::stack::Output;

#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    /// The stack.
    pub stack: String,
    /// text: one line per release, newest first; json: an array of release objects.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub fn run(global: &GlobalArgs, args: ReleasesArgs) -> ExitCode {
    let result = Ledger::new(&global.state_dir)
        .stack(&args.stack)
        .and_then(|s| s.releases());
    let releases = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gantry releases: {e}");
            return match e {
                LedgerError::BadStackName { .. } => ExitCode::InvalidInput,
                _ => ExitCode::Failed,
            };
        }
    };
    match args.output {
        Output::Json => {
            let list: Vec<serde_json::Value> = releases
                .iter()
                .rev()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id(),
                        "started_at": r.started_at,
                        "finished_at": r.finished_at,
                        "outcome": r.outcome,
                        "deploy_id": r.deploy_id,
                        "variables": r.variables,
                        "images": r.images,
                        "services": r.services,
                        "error": r.error,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        Output::Text => {
            if releases.is_empty() {
                println!("stack {} has no releases yet", args.stack);
            }
            for r in releases.iter().rev() {
                let vars: Vec<String> = r
                    .variables
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let images: Vec<String> = r
                    .images
                    .iter()
                    .map(|(svc, img)| {
                        let id = img.id.strip_prefix("sha256:").unwrap_or(&img.id);
                        format!("{svc}@{}", &id[..id.len().min(12)])
                    })
                    .collect();
                println!(
                    "{:>5}  {}  {:15}  id={}  {}  {}",
                    r.id(),
                    r.started_at,
                    r.outcome.as_str(),
                    r.deploy_id.as_deref().unwrap_or("-"),
                    if vars.is_empty() {
                        "-".into()
                    } else {
                        vars.join(" ")
                    },
                    images.join(" ")
                );
            }
        }
    }
    ExitCode::Ok
}
