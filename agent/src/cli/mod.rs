//! The `gantry` command line (clap derive). Each command lives in its own module and returns
//! an [`ExitCode`]; errors are printed once, as their `Display`, and mapped to the table in
//! [`gantry_common::exit`].
//!
//! The CLI is the edge: it reads the environment and `<config-dir>/gantry.yaml` ([`settings`])
//! once, validates them into typed configuration and passes that down to the daemon or the
//! deployer; nothing below it reads either.
//!
//! `deploy`, `rollback`, `down`, `plan`, `releases` and `status` are clients of `gantry daemon` (over
//! its unix socket, see [`crate::api`]) unless `--local` (GANTRY_LOCAL=1) runs them in-process;
//! `status` needs the daemon.
//!
//! Three programs share this command line ([`Program`]). `gantry` is the client: it answers
//! those commands through the socket in one thread, and hands everything else to another
//! program with `exec`: `--local`, `config` and `daemon` to `gantryd`, which runs the engine
//! in-process; `remote` and `fetch-bundle` to `gantry-fleet`, the only program that links the
//! SSM and S3 clients (CI images need `gantry` and `gantry-fleet`; hosts get all three). The
//! split keeps each program to what it runs: a no-op deploy through the daemon is a few
//! milliseconds, loading the whole engine was a third of it, and the SSM and S3 clients added
//! 7 MB and a measurable start-up cost to `gantryd`, which starts for every `--local` job.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use gantry_common::logging::LogFormat;

use crate::ExitCode;
use crate::compose::StackName;
use crate::deploy::Deployer;
use crate::engine::DockerEngine;

pub mod canary;
mod client;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod down;
pub mod fetch_bundle;
pub mod plan;
pub mod releases;
pub mod remote;
pub mod rollback;
pub mod settings;
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
    /// Stop and remove the stack's containers and networks (--volumes: named volumes too) and
    /// keep it down; `gantry rollback` brings it back.
    Down(down::DownArgs),
    /// Run the daemon: jobs, supervision, env-file watching, status and metrics.
    Daemon(daemon::DaemonArgs),
    /// Stacks, services, containers, health, last release and heal counts (from the daemon).
    Status(status::StatusArgs),
    /// Run Gantry's SSM documents on a fleet from CI: deploy, rollback, status.
    Remote(remote::RemoteArgs),
    /// Install a stack's files from a bundle in S3, verified by its SHA-256.
    FetchBundle(fetch_bundle::FetchBundleArgs),
    /// Move the stack's canary in progress to its next step now.
    Promote(canary::CanaryArgs),
    /// Stop the stack's canary in progress: every connection back to the old version, roll back.
    Abort(canary::CanaryArgs),
}

/// Parses the command line with Gantry's exit codes: usage errors exit 64, not clap's 2.
/// The daemon logs at `info` unless told otherwise; commands default to warnings only.
pub fn parse() -> Result<Cli, ExitCode> {
    parse_from(std::env::args_os())
}

/// [`parse`] over the given arguments (the program's name first).
pub fn parse_from<I, T>(args: I) -> Result<Cli, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let fail = |e: clap::Error| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::Usage
        } else {
            ExitCode::Ok // --help, --version
        }
    };
    let matches = Cli::command().try_get_matches_from(args).map_err(fail)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(fail)?;
    let defaulted =
        matches.value_source("log_level") == Some(clap::parser::ValueSource::DefaultValue);
    if defaulted && matches!(cli.command, Command::Daemon(_)) {
        cli.global.log_level = "info".into();
    }
    Ok(cli)
}

/// The program that runs the engine in-process, installed beside `gantry`.
pub const ENGINE: &str = "gantryd";

/// The program that runs the fleet commands (SSM and S3), installed beside `gantry`.
pub const FLEET: &str = "gantry-fleet";

/// Which of the three programs runs a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `gantry` itself, as a client of the daemon ([`client_main`]).
    Client,
    /// `gantryd` ([`main`]): the daemon, `--local` jobs, `config`.
    Engine,
    /// `gantry-fleet` ([`fleet_main`]): `remote` and `fetch-bundle`.
    Fleet,
}

impl Program {
    /// The installed name of the program.
    pub fn name(self) -> &'static str {
        match self {
            Program::Client => "gantry",
            Program::Engine => ENGINE,
            Program::Fleet => FLEET,
        }
    }
}

/// The program that answers `cli`.
pub fn program_for(cli: &Cli) -> Program {
    match cli.command {
        Command::Remote(_) | Command::FetchBundle(_) => Program::Fleet,
        Command::Config(_) | Command::Daemon(_) => Program::Engine,
        Command::Plan(_)
        | Command::Deploy(_)
        | Command::Releases(_)
        | Command::Rollback(_)
        | Command::Down(_)
        | Command::Status(_)
        | Command::Promote(_)
        | Command::Abort(_) => {
            if cli.global.local {
                Program::Engine
            } else {
                Program::Client
            }
        }
    }
}

/// Runs a client command: one thread, no log set-up (the daemon logs the job). What else
/// `cli` asks for is handed to the program that runs it ([`exec_program`]).
pub fn client_main(cli: Cli) -> ExitCode {
    let global = cli.global;
    // Nothing is logged here, but a mistyped filter is refused as the other programs refuse it
    // (it would otherwise only show up, silently, in `--local` runs).
    let rust_log = std::env::var("RUST_LOG").ok();
    if let Err(e) = gantry_common::logging::effective_filter(&global.log_level, rust_log.as_deref())
    {
        eprintln!("gantry: {e}");
        return ExitCode::Usage;
    }
    with_runtime(false, || async move {
        match cli.command {
            Command::Plan(args) => plan::submit(&global, args).await,
            Command::Deploy(args) => deploy::submit(&global, args).await,
            Command::Releases(args) => releases::submit(&global, args).await,
            Command::Rollback(args) => rollback::submit(&global, args).await,
            Command::Down(args) => down::submit(&global, args).await,
            Command::Status(args) => status::submit(&global, args).await,
            Command::Promote(args) => {
                canary::submit(&global, args, crate::ledger::CanaryCommand::Promote).await
            }
            Command::Abort(args) => {
                canary::submit(&global, args, crate::ledger::CanaryCommand::Abort).await
            }
            Command::Config(_) | Command::Daemon(_) => exec_program(Program::Engine),
            Command::Remote(_) | Command::FetchBundle(_) => exec_program(Program::Fleet),
        }
    })
}

/// Replaces this process with `program` (installed beside this one) and the same arguments.
/// The pid and process group stay, so signals (and SSM's `kill -9` of the group) reach the
/// work. Returns only on failure.
pub fn exec_program(program: Program) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let name = program.name();
    let path = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name));
    let err = std::process::Command::new(&path)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "gantry: cannot run {}: {err} (hint: gantry, {ENGINE} and {FLEET} are installed side by side; reinstall the package)",
        path.display()
    );
    ExitCode::Unavailable
}

/// Runs `remote` and `fetch-bundle` in this process (the `gantry-fleet` program); any other
/// command goes to the program that runs it.
pub fn fleet_main(cli: Cli) -> ExitCode {
    let global = cli.global;
    match cli.command {
        Command::Remote(args) => with_runtime(true, || remote::run(args)),
        Command::FetchBundle(args) => with_runtime(true, || fetch_bundle::run(&global, args)),
        command => exec_program(program_for(&Cli { global, command })),
    }
}

/// Runs a parsed command line to its exit code, in this process (the `gantryd` program);
/// `remote` and `fetch-bundle` go to [`FLEET`].
pub fn main(cli: Cli) -> ExitCode {
    let global = cli.global;
    match cli.command {
        Command::Config(args) => config::run(&global, args),
        Command::Plan(args) => with_runtime(global.local, || plan::run(&global, args)),
        Command::Deploy(args) => with_runtime(global.local, || deploy::run(&global, args)),
        Command::Releases(args) => with_runtime(global.local, || releases::run(&global, args)),
        Command::Rollback(args) => with_runtime(global.local, || rollback::run(&global, args)),
        Command::Down(args) => with_runtime(global.local, || down::run(&global, args)),
        Command::Daemon(args) => daemon::run(&global, args),
        Command::Status(args) => with_runtime(false, || status::run(&global, args)),
        Command::Remote(_) | Command::FetchBundle(_) => exec_program(Program::Fleet),
        Command::Promote(args) => with_runtime(global.local, || {
            canary::run(&global, args, crate::ledger::CanaryCommand::Promote)
        }),
        Command::Abort(args) => with_runtime(global.local, || {
            canary::run(&global, args, crate::ledger::CanaryCommand::Abort)
        }),
    }
}

/// The stack named on the command line, parsed once; a bad name is exit 65 (printed here).
fn stack_name(command: &str, name: &str) -> Result<StackName, ExitCode> {
    StackName::parse(name).map_err(|e| {
        eprintln!("gantry {command}: {e}");
        ExitCode::InvalidInput
    })
}

/// What `--local` deploy, plan and rollback run with: `gantry.yaml`'s registries (invalid: exit
/// 78, before Docker is asked), then Docker (unreachable: exit 69). Errors are printed here.
async fn local_deployer(global: &GlobalArgs, command: &str) -> Result<Deployer, ExitCode> {
    let registries = match settings::Settings::load(&global.config_dir).and_then(|s| s.registries())
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gantry {command}: {e}");
            return Err(ExitCode::Config);
        }
    };
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let allow = std::env::var(crate::engine::docker_host::ALLOW_REMOTE_VAR).ok();
    let checked = crate::engine::docker_host::check_docker_host(
        docker_host.as_deref(),
        crate::engine::docker_host::allow_remote(allow.as_deref()),
    );
    if let Err(e) = checked {
        eprintln!("gantry {command}: {e}");
        return Err(e.exit_code());
    }
    match DockerEngine::connect(docker_host.as_deref()).await {
        Ok(engine) => Ok(
            crate::deploy::deployer(Arc::new(engine), &global.state_dir, registries)
                .with_edge(crate::edge::setup(docker_host.as_deref())),
        ),
        Err(e) => {
            eprintln!("gantry {command}: {e}");
            Err(e.exit_code())
        }
    }
}

/// A job run in-process gets two workers (pulls, probes and log streams overlap); a client
/// only waits on one socket, so it starts no threads.
fn with_runtime<F, Fut>(local: bool, f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let mut builder = if local {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(f()),
        Err(e) => {
            eprintln!("gantry: cannot start the async runtime: {e}");
            ExitCode::Failed
        }
    }
}
