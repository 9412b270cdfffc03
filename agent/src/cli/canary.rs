//! `gantry promote STACK` and `gantry abort STACK`: move a canary in progress by hand.
//!
//! The rollout watching a canary step ([`crate::deploy`], `x-gantry.canary`) reads the command
//! from the stack's state (`canary-command`): promote goes to the next step at once, abort sends
//! every new connection back to the old version and rolls back (the deploy exits 2). Through the
//! daemon by default (the state dir is root's), in-process with `--local`.

use crate::ExitCode;
use crate::api::Request;
use crate::ledger::{CanaryCommand, Ledger, canary_request};

use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct CanaryArgs {
    /// The stack whose canary to move.
    pub stack: String,
}

/// Asks the daemon to pass `command` to the stack's canary.
pub async fn submit(global: &GlobalArgs, args: CanaryArgs, command: CanaryCommand) -> ExitCode {
    let stack = match super::stack_name(command.as_str(), &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let request = Request::Canary {
        stack,
        command: command.as_str().to_owned(),
    };
    client::submit(global, command.as_str(), &request, true).await
}

pub async fn run(global: &GlobalArgs, args: CanaryArgs, command: CanaryCommand) -> ExitCode {
    if !global.local {
        return submit(global, args, command).await;
    }
    let stack = match super::stack_name(command.as_str(), &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match canary_request(&Ledger::new(&global.state_dir), stack.as_str(), command) {
        Ok(text) => {
            print!("{text}");
            ExitCode::Ok
        }
        Err((message, code)) => {
            eprintln!("gantry {}: {message}", command.as_str());
            code
        }
    }
}
