//! `gantry releases`: a stack's release history.
//!
//! Through the daemon by default (the ledger may be readable by root only), in-process with
//! `--local`.

use crate::ExitCode;
use crate::api::{OutputFormat, Request};
use crate::ledger::Ledger;
use crate::ledger::render::releases;

use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    /// The stack.
    pub stack: String,
    /// text: one line per release, newest first; json: an array of release objects.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Asks the daemon for the stack's releases.
pub async fn submit(global: &GlobalArgs, args: ReleasesArgs) -> ExitCode {
    let stack = match super::stack_name("releases", &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let request = Request::Releases {
        stack,
        output: args.output,
    };
    client::submit(global, "releases", &request, true).await
}

pub async fn run(global: &GlobalArgs, args: ReleasesArgs) -> ExitCode {
    if !global.local {
        return submit(global, args).await;
    }
    let stack = match super::stack_name("releases", &args.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match releases(&Ledger::new(&global.state_dir), &stack, args.output) {
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
