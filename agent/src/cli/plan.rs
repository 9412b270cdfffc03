//! `gantry plan`: what a deploy would do, per service, and why.
//!
//! Through the daemon by default (it answers with the same rendering), in-process with `--local`.

use crate::ExitCode;
use crate::api::{OutputFormat, Request, WireLoad};
use crate::deploy::DeployRequest;
use crate::deploy::render::render_plan;

use super::stack::StackArgs;
use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// text: one line per service; json: one object.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Asks the daemon for the plan.
pub async fn submit(global: &GlobalArgs, args: PlanArgs) -> ExitCode {
    let stack = match super::stack_name("plan", &args.stack.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let request = Request::Plan {
        stack,
        load: WireLoad::from_options(&args.stack.load_options(global), &cwd),
        output: args.output,
    };
    client::submit(global, "plan", &request, true).await
}

pub async fn run(global: &GlobalArgs, args: PlanArgs) -> ExitCode {
    if !global.local {
        return submit(global, args).await;
    }
    let stack = match super::stack_name("plan", &args.stack.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let deployer = match super::local_deployer(global, "plan").await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let req = DeployRequest::new(&stack, args.stack.load_options(global));
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
