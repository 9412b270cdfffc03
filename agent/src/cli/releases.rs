//! `gantry releases`: a stack's release history.
//!
//! Through the daemon by default (the ledger may be readable by root only), in-process with
//! `--local`.

use crate::ExitCode;
use crate::api::Request;
use crate::ledger::{Ledger, LedgerError, Release};

use super::stack::Output;
use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    /// The stack.
    pub stack: String,
    /// text: one line per release, newest first; json: an array of release objects.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Asks the daemon for the stack's releases.
pub async fn submit(global: &GlobalArgs, args: ReleasesArgs) -> ExitCode {
    let request = Request::Releases {
        stack: args.stack.clone(),
        output: args.output.into(),
    };
    client::submit(global, "releases", &request, true).await
}

pub async fn run(global: &GlobalArgs, args: ReleasesArgs) -> ExitCode {
    if !global.local {
        return submit(global, args).await;
    }
    match releases(&Ledger::new(&global.state_dir), &args.stack, args.output) {
        Ok(text) => {
            print!("{text}");
            ExitCode::Ok
        }
        Err((message, code)) => {
            eprintln!("gantry releases: {message}");
            code
        }
    }
}

/// The rendered history of `stack`, or the error and its exit code.
pub fn releases(
    ledger: &Ledger,
    stack: &str,
    output: Output,
) -> Result<String, (String, ExitCode)> {
    let result = ledger.stack(stack).and_then(|s| s.releases());
    match result {
        Ok(r) => Ok(render_releases(stack, &r, output)),
        Err(e) => {
            let code = match e {
                LedgerError::BadStackName { .. } => ExitCode::InvalidInput,
                _ => ExitCode::Failed,
            };
            Err((e.to_string(), code))
        }
    }
}

/// Releases as printed, newest first.
pub fn render_releases(stack: &str, releases: &[Release], output: Output) -> String {
    match output {
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
            format!(
                "{}\n",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            )
        }
        Output::Text => {
            let mut out = String::new();
            if releases.is_empty() {
                out.push_str(&format!("stack {stack} has no releases yet\n"));
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
                out.push_str(&format!(
                    "{:>5}  {}  {:15}  id={}  {}  {}\n",
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
                ));
            }
            out
        }
    }
}
