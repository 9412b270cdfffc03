//! A stack's release history as printed by `gantry releases`, in-process or by the daemon.
//!
//! Design: [`releases`] reads the history and renders it with [`render_releases`]: text is one
//! line per release, newest first; JSON is an array of release objects, newest first. The
//! error side carries the exit code it means, so both callers report it the same way.
//!
//! Limits: the whole history is rendered (the ledger keeps what its retention keeps).

use crate::ExitCode;
use crate::api::OutputFormat;
use crate::compose::StackName;

use super::{Ledger, LedgerError, Release};

/// The rendered history of `stack`, or the error and its exit code.
pub fn releases(
    ledger: &Ledger,
    stack: &StackName,
    output: OutputFormat,
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
pub fn render_releases(stack: &str, releases: &[Release], output: OutputFormat) -> String {
    match output {
        OutputFormat::Json => {
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
        OutputFormat::Text => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_history_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        let web = StackName::parse("web").unwrap();
        let text = releases(&ledger, &web, OutputFormat::Text).unwrap();
        assert_eq!(text, "stack web has no releases yet\n");
        let json = releases(&ledger, &web, OutputFormat::Json).unwrap();
        assert_eq!(json, "[]\n");
    }
}
