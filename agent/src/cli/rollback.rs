//! `gantry rollback`: re-apply the previous good release, or a named one, exactly (by image id).
//!
//! A job in the daemon by default (it survives the CLI being killed), in-process with `--local`.

use std::time::Duration;

use crate::ExitCode;
use crate::api::{self, OutputFormat, Request};
use crate::compose::LoadOptions;
use crate::deploy::DeployRequest;

use super::deploy::{Lines, print_report};
use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The stack.
    pub stack: String,
    /// The release to return to: a release (`r3`, see `gantry releases`), a deploy id
    /// (`$CI_PIPELINE_ID`) or a variable value it was deployed with (the commit SHA given as
    /// IMAGE_TAG) [default: the previous good one]. Unknown or ambiguous: exit 65 listing the
    /// candidates.
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// text: lines as it goes; json: one object at the end.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Wait this long for another deploy of the stack to finish instead of exit 75.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg)]
    pub lock_wait: Option<Duration>,
    /// How long one container may take to become healthy.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg, default_value = "2m")]
    pub ready_timeout: Duration,
}

/// Submits the rollback to the daemon and follows it.
pub async fn submit(global: &GlobalArgs, args: RollbackArgs) -> ExitCode {
    let stack = match super::stack_name("rollback", &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let request = Request::Rollback {
        stack,
        to: args.to.clone(),
        lock_wait_ms: api::ms(args.lock_wait.unwrap_or(Duration::ZERO)),
        ready_timeout_ms: api::ms(args.ready_timeout),
        output: args.output,
    };
    client::submit(
        global,
        "rollback",
        &request,
        args.output == OutputFormat::Json,
    )
    .await
}

pub async fn run(global: &GlobalArgs, args: RollbackArgs) -> ExitCode {
    if !global.local {
        return submit(global, args).await;
    }
    let stack = match super::stack_name("rollback", &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let deployer = match super::local_deployer(global, "rollback").await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let mut req = DeployRequest::new(&stack, LoadOptions::default());
    req.lock_wait = args.lock_wait.unwrap_or(Duration::ZERO);
    req.ready_timeout = args.ready_timeout;
    let lines = Lines::new(&stack, args.output == OutputFormat::Json);
    let report = deployer.rollback(&req, args.to.as_deref(), &lines).await;
    print_report(&report, args.output);
    report.exit_code()
}
