//! `gantry status [STACK]`: asks the daemon (heal counts and running jobs live there).

use crate::ExitCode;
use crate::api::{OutputFormat, Request};

use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One stack [default: every stack in the ledger].
    pub stack: Option<String>,
    /// text: compact lines; json: one object.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(global: &GlobalArgs, args: StatusArgs) -> ExitCode {
    if global.local {
        eprintln!(
            "gantry status: status comes from the daemon (heal counts, running jobs); --local has none (hint: gantry releases STACK --local for the ledger)"
        );
        return ExitCode::Usage;
    }
    submit(global, args).await
}

/// Asks the daemon for the status.
pub async fn submit(global: &GlobalArgs, args: StatusArgs) -> ExitCode {
    let stack = match args
        .stack
        .as_deref()
        .map(|s| super::stack_name("status", s))
    {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(code)) => return code,
    };
    let request = Request::Status {
        stack,
        output: args.output,
    };
    client::submit(global, "status", &request, true).await
}
