//! The commands of `gantry-secrets` and their exit codes.
//!
//! Design: clap derive types ([`Cli`]), one async function per command, and one typed
//! [`Error`] whose [`Error::exit_code`] follows the table in [`exit`] (documented in
//! `docs/sidecar.md`). `main` only parses, sets up logging and the runtime, and exits.

pub mod exit;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gantry_common::sdnotify::Notifier;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigError, Overrides};
use crate::engine::{self, BuildError, FirstFetchError, Status};
use crate::health::{self, ListenError};
use crate::host;
use crate::render::{self, RenderError};
use crate::supervise::{self, ExecError, Signals};

/// gantry-secrets: fetches Vault and AWS Secrets Manager secrets, renders them to files or runs
/// the app with them, and keeps them fresh.
#[derive(Debug, Parser)]
#[command(name = "gantry-secrets", version)]
pub struct Cli {
    /// Log filter (`info`, `debug`, `gantry_sidecar=debug`); RUST_LOG wins.
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "GANTRY_SECRETS_LOG"
    )]
    pub log_level: String,
    /// Log format on stderr (text or json); journald is used natively under systemd.
    #[arg(
        long,
        global = true,
        default_value = "text",
        env = "GANTRY_SECRETS_LOG_FORMAT"
    )]
    pub log_format: gantry_common::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Container ENTRYPOINT: fetch, then run CMD with the secrets in its environment (PID 1).
    Exec {
        #[command(flatten)]
        common: Common,
        /// The program and its arguments (after `--`). No shell is used.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<OsString>,
    },
    /// Host service: keep the output files rendered, run on_change actions.
    Run {
        #[command(flatten)]
        common: Common,
    },
    /// Render every output once and exit.
    Render {
        #[command(flatten)]
        common: Common,
        /// Render once and exit (the only mode of `render`).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Validate the configuration and reach every source; report all problems.
    Check {
        #[command(flatten)]
        common: Common,
        /// Validate the configuration only, contact nothing (for ExecStartPre).
        #[arg(long)]
        offline: bool,
    },
}

/// Options of every command.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// YAML configuration file; without it, the environment-only form is used.
    #[arg(long, short = 'c', env = "GANTRY_SECRETS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Default refresh interval (60s).
    #[arg(long)]
    pub refresh: Option<String>,
    /// Signal that asks the child to stop on a restart (SIGTERM).
    #[arg(long)]
    pub restart_signal: Option<String>,
    /// Time the child gets to stop on a restart before SIGKILL (10s).
    #[arg(long)]
    pub restart_timeout: Option<String>,
    /// Time the child gets to stop when we are stopped (25s).
    #[arg(long)]
    pub stop_timeout: Option<String>,
    /// Exit (code 75) instead of restarting the child when secrets change.
    #[arg(long)]
    pub exit_on_change: bool,
    /// Loopback address for /healthz, /readyz and /metrics (e.g. 127.0.0.1:9464).
    #[arg(long)]
    pub listen: Option<String>,
}

impl Common {
    fn overrides(&self) -> Overrides {
        Overrides {
            refresh: self.refresh.clone(),
            restart_signal: self.restart_signal.clone(),
            restart_timeout: self.restart_timeout.clone(),
            stop_timeout: self.stop_timeout.clone(),
            exit_on_change: self.exit_on_change.then(|| "true".to_owned()),
            listen: self.listen.clone(),
        }
    }

    /// Loads the layered configuration from our process environment.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        config::load(self.config.as_deref(), &env, &self.overrides())
    }
}

/// Why a command failed; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A source could not be set up or read first; `index` is its place in config order.
    #[error("{error}")]
    Source { index: usize, error: String },
    #[error("{failed} of {total} sources failed")]
    Check { failed: usize, total: usize },
    #[error(transparent)]
    Render(RenderError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("{0} outputs cannot be rendered from the values (see above)")]
    Outputs(usize),
    #[error("interrupted by {0} before the app started")]
    Interrupted(nix::sys::signal::Signal),
}

impl From<FirstFetchError> for Error {
    fn from(e: FirstFetchError) -> Self {
        Self::Source {
            index: e.first_index(),
            error: e.to_string(),
        }
    }
}

impl From<RenderError> for Error {
    fn from(e: RenderError) -> Self {
        Self::Render(e)
    }
}

impl Error {
    /// The exit code of this error (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::Source { index, .. } => exit::source_failed(*index),
            Error::Check { .. } => exit::UNAVAILABLE,
            Error::Render(RenderError::Write(_)) => exit::CANT_WRITE,
            // An output naming a source that does not exist is a configuration mistake.
            Error::Render(RenderError::UnknownSource { .. }) => exit::CONFIG,
            Error::Render(_) | Error::Outputs(_) => exit::DATA,
            Error::Exec(ExecError::Render(RenderError::Write(_))) => exit::CANT_WRITE,
            Error::Exec(ExecError::Render(_)) => exit::DATA,
            Error::Exec(ExecError::Spawn(e)) => match e.source.kind() {
                std::io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::NOT_EXECUTABLE,
            },
            Error::Exec(ExecError::Signals(_)) => exit::FAILURE,
            Error::Listen(_) => exit::UNAVAILABLE,
            Error::Interrupted(sig) => 128 + *sig as i32,
        }
    }
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Self::Source {
            index: e.index(),
            error: e.to_string(),
        }
    }
}

/// Runs the command; `Ok(code)` is the code to exit with when nothing failed on our side
/// (exec mode: the child's).
pub async fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Exec { common, command } => exec(&common, command).await,
        Command::Run { common } => run_host(&common).await,
        Command::Render { common, .. } => render_once(&common).await,
        Command::Check { common, offline } => check(&common, offline).await,
    }
}

async fn exec(common: &Common, mut argv: Vec<OsString>) -> Result<i32, Error> {
    // Signals first: a SIGTERM during the first fetch must not kill us uncleanly, and no
    // SIGCHLD may be missed once the child runs.
    let mut signals = Signals::install().map_err(ExecError::from)?;
    let config = common.load()?;
    log_start("exec", &config);
    remove_leftover_temps(&config);
    let program = argv.remove(0);
    let cmd = supervise::Command {
        program,
        args: argv,
    };
    let ids = engine::source_ids(&config.sources);
    let status = Status::new(&ids, config.grace());
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    if let Some(addr) = config.listen {
        health::spawn(addr, status.clone(), shutdown.clone()).await?;
    }
    let start = async {
        let mut sources = engine::build_sources(&config.sources).await?;
        let ids: Vec<String> = sources.iter().map(|s| s.id().to_owned()).collect();
        let snaps = engine::first_fetch(&mut sources, &status).await?;
        supervise::child_env(&ids, &snaps)?;
        // Files (a binary secret, a TLS key) are in place before the app starts.
        render::check_sources(&config.outputs, &ids)?;
        let opt: Vec<_> = snaps.iter().cloned().map(Some).collect();
        host::render_all(&config.outputs, &ids, &opt, &status).into_result()?;
        Ok::<_, Error>((sources, snaps, ids))
    };
    let (sources, snaps, ids) = tokio::select! {
        r = start => r?,
        sig = signals.stop_requested() => return Err(Error::Interrupted(sig)),
    };
    tracing::info!(
        sources = ids.len(),
        "all sources fetched, starting the child"
    );
    Ok(supervise::supervise(
        &config,
        &cmd,
        signals,
        sources,
        snaps,
        ids,
        status,
        shutdown.clone(),
    )
    .await?)
}

async fn run_host(common: &Common) -> Result<i32, Error> {
    let config = common.load()?;
    log_start("run", &config);
    // on_change commands run as this user: they must not read our credentials either.
    supervise::protect::protect_credentials();
    remove_leftover_temps(&config);
    let notifier = Notifier::from_env();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    spawn_stop_signals(shutdown.clone());
    let ids = engine::source_ids(&config.sources);
    let status = Status::new(&ids, config.grace());
    if let Some(addr) = config.listen {
        health::spawn(addr, status.clone(), shutdown.clone()).await?;
    }
    let _ = notifier.status("fetching secrets");
    let start = async {
        let mut sources = engine::build_sources(&config.sources).await?;
        let ids: Vec<String> = sources.iter().map(|s| s.id().to_owned()).collect();
        render::check_sources(&config.outputs, &ids)?;
        let snaps = engine::first_fetch(&mut sources, &status).await?;
        let opt: Vec<_> = snaps.iter().cloned().map(Some).collect();
        // Files that exist already belong to a running app: if they change now (values
        // changed while we were down), its action runs. New files precede their app. An
        // action still owed at the last stop (its marker) runs too.
        let mut owed = host::Owed::load(&config);
        let existed: Vec<bool> = config.outputs.iter().map(|o| o.path.exists()).collect();
        host::render_owing(
            &config.outputs,
            &ids,
            &opt,
            &status,
            Some((&mut owed, &|i| existed[i])),
        )
        .into_result()?;
        if !owed.is_empty() {
            host::run_owed(&config, &mut owed, &status).await;
        }
        Ok::<_, Error>((sources, snaps, ids, owed))
    };
    let (sources, snaps, ids, owed) = tokio::select! {
        r = start => r?,
        () = shutdown.cancelled() => return Ok(exit::OK),
    };
    status.set_started();
    let _ = notifier.ready();
    let _ = notifier.status(&status.summary());
    tracing::info!(outputs = config.outputs.len(), "outputs rendered, ready");
    host::serve(
        &config,
        sources,
        snaps,
        ids,
        status,
        &notifier,
        owed,
        shutdown.clone(),
    )
    .await;
    Ok(exit::OK)
}

/// One line saying what we run with (no secret: ids, counts, durations).
fn log_start(mode: &str, config: &Config) {
    tracing::info!(
        mode,
        version = env!("CARGO_PKG_VERSION"),
        config = %config.file.as_ref().map_or("environment".to_owned(), |f| f.display().to_string()),
        sources = %engine::source_ids(&config.sources).join(","),
        outputs = config.outputs.len(),
        refresh_s = config.refresh.as_secs_f64(),
        "gantry-secrets starting"
    );
}

fn spawn_stop_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    tokio::spawn(async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
        tracing::info!("stop requested");
        shutdown.cancel();
    });
}

async fn render_once(common: &Common) -> Result<i32, Error> {
    let config = common.load()?;
    remove_leftover_temps(&config);
    let mut sources = engine::build_sources(&config.sources).await?;
    let ids: Vec<String> = sources.iter().map(|s| s.id().to_owned()).collect();
    render::check_sources(&config.outputs, &ids)?;
    let status = Status::new(&ids, config.grace());
    let snaps = engine::first_fetch(&mut sources, &status).await?;
    let opt: Vec<_> = snaps.into_iter().map(Some).collect();
    let written = host::render_all(&config.outputs, &ids, &opt, &status).into_result()?;
    tracing::info!(
        outputs = config.outputs.len(),
        written = written.len(),
        "rendered once"
    );
    Ok(exit::OK)
}

async fn check(common: &Common, offline: bool) -> Result<i32, Error> {
    let config = common.load()?;
    let declared = engine::source_ids(&config.sources);
    println!(
        "config ok: {} sources, {} outputs{}",
        declared.len(),
        config.outputs.len(),
        config
            .file
            .as_ref()
            .map(|f| format!(" ({})", f.display()))
            .unwrap_or_default()
    );
    render::check_sources(&config.outputs, &declared)?;
    if offline {
        return Ok(exit::OK);
    }
    let total = declared.len();
    let mut sources = match engine::build_sources(&config.sources).await {
        Ok(s) => s,
        Err(e) => {
            println!("FAILED {}", e);
            println!("{total} of {total} sources failed (cannot set up sources)");
            return Err(Error::Check {
                failed: total,
                total,
            });
        }
    };
    let status = Status::new(&declared, config.grace());
    let results = futures_util::future::join_all(sources.iter_mut().map(|s| async move {
        let id = s.id().to_owned();
        let r = tokio::time::timeout(engine::CALL_TIMEOUT, s.fetch()).await;
        (id, r)
    }))
    .await;
    let mut failed = 0;
    let mut snaps = Vec::new();
    for (i, (id, r)) in results.into_iter().enumerate() {
        match r {
            Ok(Ok(snap)) => {
                status.fetched(i, false);
                println!(
                    "ok     {id}: {} keys{}",
                    snap.values.len(),
                    if snap.binary.is_some() {
                        " + binary"
                    } else {
                        ""
                    }
                );
                snaps.push(Some(snap));
            }
            Ok(Err(e)) => {
                failed += 1;
                println!("FAILED {e}");
                snaps.push(None);
            }
            Err(_) => {
                failed += 1;
                println!(
                    "FAILED {id}: no answer within {}s",
                    engine::CALL_TIMEOUT.as_secs()
                );
                snaps.push(None);
            }
        }
    }
    // Outputs whose sources all answered must render (names, collisions, raw picks).
    let view = engine::view(&declared, &snaps);
    let mut bad_outputs = 0;
    for o in &config.outputs {
        match render::render(o, &view) {
            Ok(Some(_)) => println!("ok     output {}", o.path.display()),
            Ok(None) => println!("skip   output {} (a source failed)", o.path.display()),
            Err(e) => {
                bad_outputs += 1;
                println!("FAILED output {e}");
            }
        }
    }
    println!("{failed} of {total} sources failed");
    if failed > 0 {
        return Err(Error::Check { failed, total });
    }
    if bad_outputs > 0 {
        return Err(Error::Outputs(bad_outputs));
    }
    Ok(exit::OK)
}

/// Removes temp files a killed writer left beside the outputs (they can hold secret values).
fn remove_leftover_temps(config: &Config) {
    for o in &config.outputs {
        if let Err(e) = gantry_common::fsx::remove_leftover_temps_of(&o.path) {
            tracing::warn!(output = %o.path.display(), error = %e, "cannot remove leftover temp files");
        }
    }
}
