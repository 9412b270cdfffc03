//! `gantry plan`: what a deploy would do, per service, and why.

use std::sync::Arc;

use crate::ExitCode;
use crate::deploy::{self, Action, DeployRequest};
use crate::engine::DockerEngine;

use super::GlobalArgs;
use super::stack::{Output, StackArgs};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// text: one line per service; json: one object.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(global: &GlobalArgs, args: PlanArgs) -> ExitCode {
    let engine = match DockerEngine::connect().await {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("gantry plan: {e}");
            return e.exit_code();
        }
    };
    let deployer = deploy::deployer(engine, &global.state_dir);
    let req = DeployRequest::new(&args.stack.stack, args.stack.load_options(global));
    let plan = match deployer.plan(&req).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gantry plan: {e}");
            return e.exit_code();
        }
    };
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        ),
        Output::Text => {
            let count = |a: Action| plan.services.iter().filter(|s| s.action == a).count();
            println!(
                "stack {}: {} to create, {} to recreate, {} to remove, {} unchanged",
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
                println!("  {:width$}  {:9}  {}", s.service, s.action.as_str(), why);
            }
        }
    }
    ExitCode::Ok
}
