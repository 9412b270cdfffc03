//! The `gantry` command line (clap derive). Each command lives in its own module and returns
//! an [`ExitCode`]; errors are printed once, as their `Display`, and mapped to the table in
//! [`crate::exit`].
//!
//! `deploy`, `rollback`, `plan`, `releases` and `status` are clients of `gantry daemon` (over
//! its unix socket, see [`crate::api`]) unless `--local` (GANTRY_LOCAL=1) runs them in-process;
//! `status` needs the daemon.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gantry_common::logging::LogFormat;

use crate::ExitCode;

pub mod client;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod plan;
pub mod releases;
pub mod rollback;
pub mod stack;
pub mod status;

/// Gantry host agent: applies Docker Compose stacks through the Docker Engine API.
#[derive(Debug, Parser)]
#[command(name = "gantry", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares. Layering: built-in default < environment < flag.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Where releases, locks and job logs are kept.
    #[arg(
        long,
        global = true,
        env = "GANTRY_STATE_DIR",
        default_value = "/var/lib/gantry"
    )]
    pub state_dir: PathBuf,
    /// Gantry's configuration; stacks live in <config-dir>/stacks/<name>/compose.yaml.
    #[arg(
        long,
        global = true,
        env = "GANTRY_CONFIG_DIR",
        default_value = "/etc/gantry"
    )]
    pub config_dir: PathBuf,
    /// Run the job in this process instead of submitting it to the daemon.
    #[arg(long, global = true, env = "GANTRY_LOCAL", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub local: bool,
    /// The daemon's unix socket.
    #[arg(
        long,
        global = true,
        env = "GANTRY_SOCKET",
        default_value = crate::api::DEFAULT_SOCKET
    )]
    pub socket: PathBuf,
    /// Log filter (error, warn, info, debug, trace, or tracing directives); RUST_LOG wins.
    /// Commands print their own progress on stdout, so logs default to warnings only.
    #[arg(long, global = true, env = "GANTRY_LOG", default_value = "warn")]
    pub log_level: String,
    /// Log format on stderr when not under journald.
    #[arg(long, global = true, env = "GANTRY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the resolved Compose model (the shape of `docker compose config`).
    Config(config::ConfigArgs),
    /// Compare the stack's files with what runs and list what a deploy would do.
    Plan(plan::PlanArgs),
    /// Apply the stack: pull, create, replace and remove containers, record a release.
    Deploy(deploy::DeployArgs),
    /// List a stack's releases, newest first.
    Releases(releases::ReleasesArgs),
    /// Re-apply the previous good release (or --to RELEASE) exactly, by image id.
    Rollback(rollback::RollbackArgs),
    /// Run the daemon: jobs, supervision, env-file watching, status and metrics.
    Daemon(daemon::DaemonArgs),
    /// Stacks, services, containers, health, last release and heal counts (from the daemon).
    Status(status::StatusArgs),
}

/// Parses the command line with Gantry's exit codes: usage errors exit 64, not clap's 2.
/// The daemon logs at `info` unless told otherwise; commands default to warnings only.
pub fn parse() -> Result<Cli, ExitCode> {
    use clap::{CommandFactory, FromArgMatches};
    let fail = |e: clap::Error| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::Usage
        } else {
            ExitCode::Ok // --help, --version
        }
    };
    let matches = Cli::command().try_get_matches().map_err(fail)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(fail)?;
    let defaulted =
        matches.value_source("log_level") == Some(clap::parser::ValueSource::DefaultValue);
    if defaulted && matches!(cli.command, Command::Daemon(_)) {
        cli.global.log_level = "info".into();
    }
    Ok(cli)
}

/// Runs a parsed command line to its exit code.
pub fn main(cli: Cli) -> ExitCode {
    let global = cli.global;
    match cli.command {
        Command::Config(args) => config::run(&global, args),
        Command::Plan(args) => with_runtime(|| plan::run(&global, args)),
        Command::Deploy(args) => with_runtime(|| deploy::run(&global, args)),
        Command::Releases(args) => with_runtime(|| releases::run(&global, args)),
        Command::Rollback(args) => with_runtime(|| rollback::run(&global, args)),
        Command::Daemon(args) => daemon::run(&global, args),
        Command::Status(args) => with_runtime(|| status::run(&global, args)),
    }
}

fn with_runtime<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f()),
        Err(e) => {
            eprintln!("gantry: cannot start the async runtime: {e}");
            ExitCode::Failed
        }
    }
}
