//! `gantry deploy`: the whole job, with output that fits an SSM invocation.
//!
//! Text output is line based (`[stack] service: what happened`), on stdout; with
//! `--output json` the progress lines go to stderr and stdout carries one JSON object.
//! Either way the output stays under [`api::MAX_OUTPUT`] bytes whatever the logs hold, since
//! SSM returns only the first 24,000 characters of stdout.

use std::io::Write;
use std::time::Duration;

use crate::ExitCode;
use crate::api::{self, OutputFormat, Request, WireLoad};
use crate::deploy::render::render_report;
use crate::deploy::{DeployReport, DeployRequest, Progress};

use super::stack::StackArgs;
use super::{GlobalArgs, client};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// text: lines as it goes; json: one object at the end.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// A deploy id (CI pipeline or job id): applying the same id again reports its result.
    /// An empty or blank one is refused (exit 64).
    #[arg(long = "id", value_name = "ID", value_parser = parse_deploy_id)]
    pub deploy_id: Option<String>,
    /// Wait this long for another deploy of the stack to finish (e.g. 10m) instead of exit 75.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg)]
    pub lock_wait: Option<Duration>,
    /// Bound on the whole deploy.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg, default_value = "30m")]
    pub timeout: Duration,
    /// How long one container may take to become healthy.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg, default_value = "2m")]
    pub ready_timeout: Duration,
}

/// `--id`: refused when empty or blank ([`api::check_deploy_id`]).
pub(super) fn parse_deploy_id(id: &str) -> Result<String, api::DeployIdError> {
    api::check_deploy_id(id)?;
    Ok(id.to_owned())
}

/// Prints progress lines, `[stack] service: message`, within the output budget.
#[derive(Debug)]
pub struct Lines {
    stack: String,
    to_stderr: bool,
    budget: std::sync::Mutex<usize>,
    /// Pull progress per image, drawn as one bar when stdout is a terminal.
    bars: Option<std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>>,
}

impl Lines {
    pub fn new(stack: &str, to_stderr: bool) -> Self {
        Self {
            stack: stack.to_owned(),
            to_stderr,
            budget: std::sync::Mutex::new(api::PROGRESS_OUTPUT),
            bars: (!to_stderr && std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .then(Default::default),
        }
    }
}

impl Progress for Lines {
    fn pull(&self, image: &str, done: u64, total: u64) {
        self.draw_bar(image, done, total);
    }

    fn step(&self, service: Option<&str>, message: &str) {
        let line = match service {
            Some(s) => format!("[{}] {s}: {message}\n", self.stack),
            None => format!("[{}] {message}\n", self.stack),
        };
        let Ok(mut budget) = self.budget.lock() else {
            return;
        };
        if *budget < line.len() {
            return;
        }
        *budget -= line.len();
        let line = if self.bars.is_some() {
            format!("\r\x1b[K{line}") // over a pull bar, if one is drawn
        } else {
            line
        };
        if self.to_stderr {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

impl Lines {
    fn draw_bar(&self, image: &str, done: u64, total: u64) {
        let Some(bars) = &self.bars else { return };
        let Ok(mut bars) = bars.lock() else { return };
        bars.insert(image.to_owned(), (done, total));
        let (done, total) = bars.values().fold((0, 0), |(d, t), (a, b)| (d + a, t + b));
        let width = 30u64;
        let filled = (done * width).checked_div(total).unwrap_or(0).min(width);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut out = std::io::stdout().lock();
        let _ = write!(
            out,
            "\r\x1b[K[{}] pulling {} image(s) [{}{}] {:.1}/{:.1} MiB",
            self.stack,
            bars.len(),
            "#".repeat(filled as usize),
            ".".repeat((width - filled) as usize),
            mib(done),
            mib(total)
        );
        let _ = out.flush();
    }
}

/// Submits the deploy to the daemon and follows it.
pub async fn submit(global: &GlobalArgs, args: DeployArgs) -> ExitCode {
    let stack = match super::stack_name("deploy", &args.stack.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let request = Request::Deploy {
        stack,
        load: WireLoad::from_options(&args.stack.load_options(global), &cwd),
        variables: args.stack.variables(),
        deploy_id: args.deploy_id.clone(),
        lock_wait_ms: api::ms(args.lock_wait.unwrap_or(Duration::ZERO)),
        timeout_ms: api::ms(args.timeout),
        ready_timeout_ms: api::ms(args.ready_timeout),
        output: args.output,
    };
    client::submit(
        global,
        "deploy",
        &request,
        args.output == OutputFormat::Json,
    )
    .await
}

pub async fn run(global: &GlobalArgs, args: DeployArgs) -> ExitCode {
    if !global.local {
        return submit(global, args).await;
    }
    let stack = match super::stack_name("deploy", &args.stack.stack) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // The files are loaded by the deploy once it holds the stack's lock (a `gantry
    // fetch-bundle` may be rewriting them until then), not before.
    let load = args.stack.load_options(global);
    let deployer = match super::local_deployer(global, "deploy").await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let mut req = DeployRequest::new(&stack, load);
    req.variables = args.stack.variables();
    req.deploy_id = args.deploy_id.clone();
    req.lock_wait = args.lock_wait.unwrap_or(Duration::ZERO);
    req.timeout = args.timeout;
    req.ready_timeout = args.ready_timeout;
    let lines = Lines::new(&stack, args.output == OutputFormat::Json);
    let report = deployer.deploy(&req, &lines).await;
    print_report(&report, args.output);
    report.exit_code()
}

/// Prints the end of a deploy or rollback.
pub fn print_report(report: &DeployReport, output: OutputFormat) {
    print!("{}", render_report(report, output));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{Command, parse_from};
    use super::parse_deploy_id;
    use crate::ExitCode;

    /// `--id "$CI_PIPELINE_ID"` with the variable unset: refused as a usage error (64), not
    /// recorded as an id every later empty one would match.
    #[test]
    fn an_empty_or_blank_id_is_a_usage_error() {
        for id in ["", "   "] {
            let parsed = parse_from(["gantry", "deploy", "shop", "--id", id]);
            assert_eq!(parsed.err(), Some(ExitCode::Usage), "--id {id:?}");
        }
        let Ok(cli) = parse_from(["gantry", "deploy", "shop", "--id", "4242"]) else {
            panic!("--id 4242 refused");
        };
        let Command::Deploy(args) = cli.command else {
            panic!("not a deploy");
        };
        assert_eq!(args.deploy_id.as_deref(), Some("4242"));
    }

    proptest! {
        /// Any id: taken as written when it has something besides blanks, refused otherwise.
        #[test]
        fn an_id_is_taken_as_written_unless_blank(
            id in prop_oneof![
                any::<String>(),
                "[ \t\n\u{a0}\u{3000}]{0,4}",
                "[ \t]{0,2}[0-9a-z-]{0,8}[ \t]{0,2}",
            ],
        ) {
            match parse_deploy_id(&id) {
                Ok(taken) => {
                    prop_assert!(!id.trim().is_empty(), "{id:?}");
                    prop_assert_eq!(taken, id);
                }
                Err(_) => prop_assert!(id.trim().is_empty(), "{id:?} refused"),
            }
        }
    }
}
