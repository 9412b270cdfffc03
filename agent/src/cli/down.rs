//! `gantry down`: stop and remove a stack's containers and networks (`--volumes`: its named
//! volumes too), and record that it is down so supervision leaves it off.
//!
//! A job in the daemon by default (it survives the CLI being killed), in-process with `--local`.
//! `gantry rollback STACK` afterwards brings back the release before the down.

use std::time::Duration;

use crate::ExitCode;
use crate::api::{self, OutputFormat, Request};
use crate::compose::LoadOptions;
use crate::deploy::DeployRequest;

use super::deploy::{Lines, print_report};
use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The stack.
    pub stack: String,
    /// Also remove the named volumes the stack declared (not `external` ones): their data is
    /// lost.
    #[arg(long)]
    pub volumes: bool,
    /// text: lines as it goes; json: one object at the end.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Wait this long for another deploy of the stack to finish instead of exit 75.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg)]
    pub lock_wait: Option<Duration>,
    /// Bound on the whole down (containers stop within their `stop_grace_period`).
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg, default_value = "30m")]
    pub timeout: Duration,
}

/// Submits the down to the daemon and follows it.
pub async fn submit(global: &GlobalArgs, args: DownArgs) -> ExitCode {
    let stack = match super::stack_name("down", &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let request = Request::Down {
        stack,
        volumes: args.volumes,
        lock_wait_ms: api::ms(args.lock_wait.unwrap_or(Duration::ZERO)),
        timeout_ms: api::ms(args.timeout),
        output: args.output,
    };
    client::submit(global, "down", &request, args.output == OutputFormat::Json).await
}

pub async fn run(global: &GlobalArgs, args: DownArgs) -> ExitCode {
    if !global.local {
        return submit(global, args).await;
    }
    let stack = match super::stack_name("down", &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let deployer = match super::local_deployer(global, "down").await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let mut req = DeployRequest::new(&stack, LoadOptions::default());
    req.lock_wait = args.lock_wait.unwrap_or(Duration::ZERO);
    req.timeout = args.timeout;
    let lines = Lines::new(&stack, args.output == OutputFormat::Json);
    let report = deployer.down(&req, args.volumes, &lines).await;
    print_report(&report, args.output);
    report.exit_code()
}
