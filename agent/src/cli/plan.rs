//! `gantry plan`: what a deploy would do, per service, and why.
//!
//! Through the daemon by default (it answers with the same rendering), in-process with `--local`.

use std::sync::Arc;

use crate::ExitCode;
use crate::api::{Request, WireLoad};
use crate::deploy::{self, Action, DeployRequest, Plan};
use crate::engine::DockerEngine;

use super::stack::{Output, StackArgs};
use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// text: one line per service; json: one object.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Asks the daemon for the plan.
pub async fn submit(global: &GlobalArgs, args: PlanArgs) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_default();
    let request = Request::Plan {
        stack: args.stack.stack.clone(),
        load: WireLoad::from_options(&args.stack.load_options(global), &cwd),
        output: args.output.into(),
    };
    client::submit(global, "plan", &request, true).await
}

pub async fn run(global: &GlobalArgs, args: PlanArgs) -> ExitCode {
    if !global.local {
        return submit(global, args).await;
    }
    let engine = match DockerEngine::connect().await {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("gantry plan: {e}");
            return e.exit_code();
        }
    };
    let deployer = deploy::deployer(engine, &global.state_dir);
    let req = DeployRequest::new(&args.stack.stack, args.stack.load_options(global));
    match deployer.plan(&req).await {
        Ok(plan) => {
            print!("{}", render_plan(&plan, args.output));
            ExitCode::Ok
        }
        Err(e) => {
            eprintln!("gantry plan: {e}");
            e.exit_code()
        }
    }
}

/// The plan as printed: one JSON object, or a summary line and one line per service.
pub fn render_plan(plan: &Plan, output: Output) -> String {
    match output {
        Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(plan).unwrap_or_default()
        ),
        Output::Text => {
            let count = |a: Action| plan.services.iter().filter(|s| s.action == a).count();
            let mut out = format!(
                "stack {}: {} to create, {} to recreate, {} to remove, {} unchanged\n",
                plan.stack,
                count(Action::Create),
                count(Action::Recreate),
                count(Action::Remove),
                count(Action::Unchanged)
            );
            let width = plan
                .services
                .iter()
                .map(|s| s.service.len())
                .max()
                .unwrap_or(0);
            for s in &plan.services {
                let why = s.reasons.join(", ");
                out.push_str(&format!(
                    "  {:width$}  {:9}  {}\n",
                    s.service,
                    s.action.as_str(),
                    why
                ));
            }
            out
        }
    }
}
