//! Configuration of `gantry-secrets`: the YAML file, the environment-only form, and flags.
//!
//! Design: the file is read into [`RawConfig`] (`deny_unknown_fields`, everything optional),
//! then validated into [`Config`] (durations parsed, signals resolved, owners looked up, the
//! listener checked to be loopback). Layering is file < environment < flags: [`Overrides`]
//! carries the scalar settings of one layer and [`load`] applies them in that order. The
//! `sources:`/`vault:` parts belong to the backends (`crate::source`): they are kept as YAML
//! here and handed on untouched. When no file is given (containers), the sources come from the
//! environment (`VAULT_ADDR`, `VAULT_SECRET_PATH`, `GANTRY_SECRETS_AWS_IDS`, ...).
//!
//! Every error names where the bad value came from (the file path, the environment variable or
//! the flag) and the key, never a secret.
//!
//! Limits: outputs' `sources:` are matched against the sources' ids (`vault:kv/app`) after the
//! sources are built, so an unknown id is reported at start, not here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::source::{self, RawSourcesConfig, SourcesConfig};

/// Default interval between two checks of a source when it does not say otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Default time given to the child to stop on a restart before SIGKILL.
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time given to the child to stop when we are asked to stop (below ECS's 30 s).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(25);
/// Default quiet period that gathers several changes into one restart or render.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Default minimum time between two restarts of the child.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Why the configuration cannot be used. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// Several problems, each on its own line.
    #[error("{} problems:\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Many(Vec<ConfigError>),
    #[error("{origin}: {key}: {message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Invalid {
        origin: String,
        key: String,
        message: String,
        hint: Option<String>,
    },
}

impl ConfigError {
    fn invalid(origin: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            origin: origin.to_owned(),
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }
    /// `None` for no error, the error itself for one, [`ConfigError::Many`] for more.
    fn many(mut errs: Vec<ConfigError>) -> Option<Self> {
        match errs.len() {
            0 => None,
            1 => errs.pop(),
            _ => Some(Self::Many(errs)),
        }
    }

    fn hint(mut self, h: impl Into<String>) -> Self {
        if let Self::Invalid { hint, .. } = &mut self {
            *hint = Some(h.into());
        }
        self
    }
}

// ---------------------------------------------------------------- raw file

/// The file as written, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Backends' part: the secrets to read (validated by `crate::source`).
    #[serde(default)]
    pub sources: Vec<source::RawSourceSpec>,
    /// Backends' part: Vault address and auth.
    #[serde(default)]
    pub vault: Option<source::RawVaultConfig>,
    /// Backends' part: AWS region and endpoint overrides.
    #[serde(default)]
    pub aws: Option<source::RawAwsConfig>,
    #[serde(default)]
    pub outputs: Vec<RawOutput>,
    pub refresh: Option<String>,
    pub grace: Option<String>,
    pub debounce: Option<String>,
    pub on_change: Option<RawAction>,
    pub restart: Option<RawRestart>,
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub path: PathBuf,
    pub format: Option<Format>,
    pub mode: Option<serde_yaml::Value>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub sources: Option<Vec<String>>,
    pub keys: Option<Vec<String>>,
    pub on_change: Option<RawAction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub signal: Option<String>,
    pub pid_file: Option<PathBuf>,
    pub systemd_unit: Option<String>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestart {
    pub signal: Option<String>,
    pub timeout: Option<String>,
    pub stop_timeout: Option<String>,
    pub debounce: Option<String>,
    pub min_interval: Option<String>,
    pub exit_on_change: Option<bool>,
}

// ---------------------------------------------------------------- validated

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `KEY='value'` lines that Docker Compose's `env_file` reads back exactly.
    Dotenv,
    /// One JSON object, key → string.
    Json,
    /// One value (or the binary secret) as-is.
    Raw,
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub path: PathBuf,
    pub format: Format,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Source ids that feed this file; `None`: all sources.
    pub sources: Option<Vec<String>>,
    /// Keys to keep; `None`: all keys of those sources.
    pub keys: Option<Vec<String>>,
    /// Overrides the top-level action for this file.
    pub on_change: Option<Action>,
}

/// What to do after an output file changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Action {
    /// Nothing (the agent watches env files itself).
    #[default]
    None,
    /// Send `signal` to the pid read from `pid_file`.
    SignalPidFile { signal: Signal, pid_file: PathBuf },
    /// Send `signal` to the main process of a systemd unit (`systemctl show -p MainPID`).
    SignalUnit { signal: Signal, unit: String },
    /// Run a program (no shell), waiting up to `timeout`.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// How exec mode restarts or stops its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub signal: Signal,
    pub timeout: Duration,
    pub stop_timeout: Duration,
    pub debounce: Duration,
    pub min_interval: Duration,
    pub exit_on_change: bool,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            signal: Signal::SIGTERM,
            timeout: DEFAULT_RESTART_TIMEOUT,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            debounce: DEFAULT_DEBOUNCE,
            min_interval: DEFAULT_MIN_INTERVAL,
            exit_on_change: false,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The sources, validated by `crate::source` (file < environment), `refresh` set.
    pub sources: SourcesConfig,
    pub outputs: Vec<Output>,
    /// Default refresh interval (sources may ask for another through `next_refresh`).
    pub refresh: Duration,
    /// How long a source may go without a successful refresh and still count as ready.
    pub grace: Option<Duration>,
    pub on_change: Action,
    pub restart: RestartPolicy,
    pub listen: Option<SocketAddr>,
    /// The config file, if any.
    pub file: Option<PathBuf>,
}

impl Config {
    /// The readiness grace: the configured one or three refresh intervals.
    pub fn grace(&self) -> Duration {
        self.grace.unwrap_or(self.refresh * 3)
    }
}

/// Scalar settings that the environment or flags can override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub refresh: Option<String>,
    pub restart_signal: Option<String>,
    pub restart_timeout: Option<String>,
    pub stop_timeout: Option<String>,
    pub exit_on_change: Option<String>,
    pub listen: Option<String>,
}

impl Overrides {
    /// The `GANTRY_SECRETS_*` variables of `env`.
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            refresh: get("GANTRY_SECRETS_REFRESH"),
            restart_signal: get("GANTRY_SECRETS_RESTART_SIGNAL"),
            restart_timeout: get("GANTRY_SECRETS_RESTART_TIMEOUT"),
            stop_timeout: get("GANTRY_SECRETS_STOP_TIMEOUT"),
            exit_on_change: get("GANTRY_SECRETS_EXIT_ON_CHANGE"),
            listen: get("GANTRY_SECRETS_LISTEN"),
        }
    }
}

/// Loads the configuration: `file` (if any) < `env` < `flags`.
pub fn load(
    file: Option<&Path>,
    env: &BTreeMap<String, String>,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let (mut raw, origin) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let origin = path.display().to_string();
            (parse_raw(&text, &origin)?, origin)
        }
        None => (RawConfig::default(), "environment".to_owned()),
    };
    let raw_sources = RawSourcesConfig {
        sources: std::mem::take(&mut raw.sources),
        vault: raw.vault.take(),
        aws: raw.aws.take(),
    };
    let file_has_sources =
        !raw_sources.sources.is_empty() || raw_sources.vault.is_some() || raw_sources.aws.is_some();
    // Every problem (file, environment, flags, sources) is reported at once.
    let mut errs: Vec<ConfigError> = Vec::new();
    let mut settings = validate(raw, &origin).unwrap_or_else(|e| {
        errs.push(e);
        Settings::default()
    });
    apply(
        &mut settings,
        &Overrides::from_env(env),
        OverrideOrigin::Env,
        &mut errs,
    );
    apply(&mut settings, flags, OverrideOrigin::Flag, &mut errs);
    let source_err = |origin: &str, e: source::ConfigError| match e {
        source::ConfigError::Invalid { field, message } => {
            ConfigError::invalid(origin, field, message)
        }
    };
    let merged_origin = if source::config::raw_sources_from_env(env).is_some() && file_has_sources {
        format!("{origin} + environment")
    } else if file_has_sources {
        origin.clone()
    } else {
        "environment".to_owned()
    };
    let sources = match source::merge(file_has_sources.then_some(&raw_sources), env) {
        Ok(Some(s)) if !s.sources.is_empty() => Some(s),
        Ok(_) => {
            errs.push(
                ConfigError::invalid(&origin, "sources", "no secret source is configured").hint(
                    "list them under `sources:` in the file, or set VAULT_SECRET_PATH or \
                     GANTRY_SECRETS_AWS_IDS",
                ),
            );
            None
        }
        Err(e) => {
            errs.push(source_err(&merged_origin, e));
            None
        }
    };
    let flat: Vec<ConfigError> = errs
        .into_iter()
        .flat_map(|e| match e {
            ConfigError::Many(v) => v,
            e => vec![e],
        })
        .collect();
    if let Some(e) = ConfigError::many(flat) {
        return Err(e);
    }
    let Some(mut sources) = sources else {
        unreachable!("a missing source is an error above")
    };
    sources.refresh = settings.refresh;
    Ok(Config {
        sources,
        outputs: settings.outputs,
        refresh: settings.refresh,
        grace: settings.grace,
        on_change: settings.on_change,
        restart: settings.restart,
        listen: settings.listen,
        file: file.map(Path::to_path_buf),
    })
}

/// Everything of [`Config`] but the sources.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub outputs: Vec<Output>,
    pub refresh: Duration,
    pub grace: Option<Duration>,
    pub on_change: Action,
    pub restart: RestartPolicy,
    pub listen: Option<SocketAddr>,
}

/// Parses the YAML text of a config file (named `origin` in errors).
pub fn parse_raw(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

/// Validates a raw file's own settings (not its sources; no env or flag overrides yet).
pub fn validate(raw: RawConfig, origin: &str) -> Result<Settings, ConfigError> {
    // Every problem of the file is reported at once, not only the first.
    let mut errs: Vec<ConfigError> = Vec::new();
    let mut keep = |r: Result<Option<Duration>, ConfigError>| match r {
        Ok(d) => d,
        Err(e) => {
            errs.push(e);
            None
        }
    };
    let refresh = keep(opt_duration(origin, "refresh", raw.refresh.as_deref()));
    let grace = keep(opt_duration(origin, "grace", raw.grace.as_deref()));
    let debounce = keep(opt_duration(origin, "debounce", raw.debounce.as_deref()));
    let mut restart = RestartPolicy::default();
    let mut signal = None;
    if let Some(r) = &raw.restart {
        let d = |k: &str, v: &Option<String>| {
            opt_duration(origin, &format!("restart.{k}"), v.as_deref())
        };
        if let Some(v) = keep(d("timeout", &r.timeout)) {
            restart.timeout = v;
        }
        if let Some(v) = keep(d("stop_timeout", &r.stop_timeout)) {
            restart.stop_timeout = v;
        }
        if let Some(v) = keep(d("debounce", &r.debounce)) {
            restart.debounce = v;
        }
        if let Some(v) = keep(d("min_interval", &r.min_interval)) {
            restart.min_interval = v;
        }
        if let Some(b) = r.exit_on_change {
            restart.exit_on_change = b;
        }
        signal = r.signal.clone();
    }
    if let Some(d) = debounce {
        restart.debounce = d;
    }
    let refresh = refresh.unwrap_or(DEFAULT_REFRESH);
    if refresh.is_zero() {
        errs.push(ConfigError::invalid(
            origin,
            "refresh",
            "must be more than 0",
        ));
    }
    if let Some(s) = signal {
        match parse_signal(&s) {
            Ok(sig) => restart.signal = sig,
            Err(m) => errs.push(ConfigError::invalid(origin, "restart.signal", m)),
        }
    }
    let on_change = match raw.on_change.map(|a| action(origin, "on_change", a)) {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            errs.push(e);
            Action::None
        }
        None => Action::None,
    };
    let listen = match raw.listen.as_deref().map(parse_listen) {
        Some(Ok(a)) => Some(a),
        Some(Err(m)) => {
            errs.push(ConfigError::invalid(origin, "listen", m));
            None
        }
        None => None,
    };
    let mut outputs = Vec::with_capacity(raw.outputs.len());
    for (i, o) in raw.outputs.into_iter().enumerate() {
        match output(origin, i, o) {
            Ok(o) => {
                if outputs.iter().any(|b: &Output| b.path == o.path) {
                    errs.push(ConfigError::invalid(
                        origin,
                        format!("outputs[{i}].path"),
                        format!("{} is already the path of another output", o.path.display()),
                    ));
                }
                outputs.push(o);
            }
            Err(e) => errs.push(e),
        }
    }
    if let Some(e) = ConfigError::many(errs) {
        return Err(e);
    }
    Ok(Settings {
        outputs,
        refresh,
        grace,
        on_change,
        restart,
        listen,
    })
}

#[derive(Debug, Clone, Copy)]
enum OverrideOrigin {
    Env,
    Flag,
}

fn apply(config: &mut Settings, o: &Overrides, from: OverrideOrigin, errs: &mut Vec<ConfigError>) {
    let (origin, names): (&str, [&str; 6]) = match from {
        OverrideOrigin::Env => (
            "environment",
            [
                "GANTRY_SECRETS_REFRESH",
                "GANTRY_SECRETS_RESTART_SIGNAL",
                "GANTRY_SECRETS_RESTART_TIMEOUT",
                "GANTRY_SECRETS_STOP_TIMEOUT",
                "GANTRY_SECRETS_EXIT_ON_CHANGE",
                "GANTRY_SECRETS_LISTEN",
            ],
        ),
        OverrideOrigin::Flag => (
            "command line",
            [
                "--refresh",
                "--restart-signal",
                "--restart-timeout",
                "--stop-timeout",
                "--exit-on-change",
                "--listen",
            ],
        ),
    };
    let mut push = |r: Result<(), ConfigError>| {
        if let Err(e) = r {
            errs.push(e);
        }
    };
    if let Some(v) = &o.refresh {
        push(duration(origin, names[0], v).and_then(|d| {
            if d.is_zero() {
                return Err(ConfigError::invalid(
                    origin,
                    names[0],
                    "must be more than 0",
                ));
            }
            config.refresh = d;
            Ok(())
        }));
    }
    if let Some(v) = &o.restart_signal {
        push(
            parse_signal(v)
                .map(|s| config.restart.signal = s)
                .map_err(|m| ConfigError::invalid(origin, names[1], m)),
        );
    }
    if let Some(v) = &o.restart_timeout {
        push(duration(origin, names[2], v).map(|d| config.restart.timeout = d));
    }
    if let Some(v) = &o.stop_timeout {
        push(duration(origin, names[3], v).map(|d| config.restart.stop_timeout = d));
    }
    if let Some(v) = &o.exit_on_change {
        push(
            parse_bool(v)
                .map(|b| config.restart.exit_on_change = b)
                .map_err(|m| ConfigError::invalid(origin, names[4], m)),
        );
    }
    if let Some(v) = &o.listen {
        push(
            parse_listen(v)
                .map(|a| config.listen = Some(a))
                .map_err(|m| ConfigError::invalid(origin, names[5], m)),
        );
    }
}

fn output(origin: &str, i: usize, o: RawOutput) -> Result<Output, ConfigError> {
    let key = |k: &str| format!("outputs[{i}].{k}");
    if o.path.as_os_str().is_empty() || o.path.file_name().is_none() {
        return Err(ConfigError::invalid(
            origin,
            key("path"),
            "must name a file",
        ));
    }
    if o.path.is_relative() {
        return Err(
            ConfigError::invalid(origin, key("path"), "must be an absolute path")
                .hint("outputs are written by a service whose working directory is not yours"),
        );
    }
    let mode = match &o.mode {
        None => 0o600,
        Some(v) => parse_mode(v).map_err(|m| ConfigError::invalid(origin, key("mode"), m))?,
    };
    let uid = o
        .owner
        .as_deref()
        .map(|u| lookup_user(u).map_err(|m| ConfigError::invalid(origin, key("owner"), m)))
        .transpose()?;
    let gid = o
        .group
        .as_deref()
        .map(|g| lookup_group(g).map_err(|m| ConfigError::invalid(origin, key("group"), m)))
        .transpose()?;
    let format = o.format.unwrap_or(Format::Dotenv);
    if let Some(keys) = &o.keys {
        if keys.is_empty() {
            return Err(ConfigError::invalid(
                origin,
                key("keys"),
                "is empty: omit it to take every key",
            ));
        }
        if format == Format::Raw && keys.len() != 1 {
            return Err(ConfigError::invalid(
                origin,
                key("keys"),
                "a raw output takes exactly one key",
            ));
        }
        if format == Format::Dotenv
            && let Some(bad) = keys.iter().find(|k| !crate::render::valid_name(k))
        {
            return Err(ConfigError::invalid(
                origin,
                key("keys"),
                format!("{bad:?} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
    }
    if let Some(s) = &o.sources
        && s.is_empty()
    {
        return Err(ConfigError::invalid(
            origin,
            key("sources"),
            "is empty: omit it to take every source",
        ));
    }
    let on_change = o
        .on_change
        .map(|a| action(origin, &key("on_change"), a))
        .transpose()?;
    Ok(Output {
        path: o.path,
        format,
        mode,
        uid,
        gid,
        sources: o.sources,
        keys: o.keys,
        on_change,
    })
}

fn action(origin: &str, key: &str, a: RawAction) -> Result<Action, ConfigError> {
    let targets = [
        a.pid_file.is_some(),
        a.systemd_unit.is_some(),
        a.command.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if targets > 1 {
        return Err(ConfigError::invalid(
            origin,
            key,
            "give only one of pid_file, systemd_unit, command",
        ));
    }
    let signal = a
        .signal
        .as_deref()
        .map(|s| {
            parse_signal(s).map_err(|m| ConfigError::invalid(origin, format!("{key}.signal"), m))
        })
        .transpose()?;
    if let Some(argv) = a.command {
        if signal.is_some() {
            return Err(ConfigError::invalid(
                origin,
                format!("{key}.signal"),
                "does not go with command",
            ));
        }
        if argv.is_empty() || argv[0].is_empty() {
            return Err(
                ConfigError::invalid(origin, format!("{key}.command"), "is empty")
                    .hint("a list: [program, arg, ...]; it runs without a shell"),
            );
        }
        let timeout = opt_duration(origin, &format!("{key}.timeout"), a.timeout.as_deref())?
            .unwrap_or(Duration::from_secs(30));
        return Ok(Action::Command { argv, timeout });
    }
    if a.timeout.is_some() {
        return Err(ConfigError::invalid(
            origin,
            format!("{key}.timeout"),
            "only goes with command",
        ));
    }
    let signal = signal.unwrap_or(Signal::SIGHUP);
    if let Some(pid_file) = a.pid_file {
        return Ok(Action::SignalPidFile { signal, pid_file });
    }
    if let Some(unit) = a.systemd_unit {
        if unit.is_empty() || unit.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                origin,
                format!("{key}.systemd_unit"),
                "is not a unit name",
            ));
        }
        return Ok(Action::SignalUnit { signal, unit });
    }
    if a.signal.is_some() {
        return Err(ConfigError::invalid(
            origin,
            key,
            "signal needs pid_file or systemd_unit",
        ));
    }
    Ok(Action::None)
}

fn opt_duration(origin: &str, key: &str, v: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    v.map(|v| duration(origin, key, v)).transpose()
}

/// Parses `60s`, `1m30s`, `500ms`, or a bare number of seconds.
fn duration(origin: &str, key: &str, v: &str) -> Result<Duration, ConfigError> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).map_err(|e| {
        ConfigError::invalid(origin, key, format!("{v:?} is not a duration: {e}"))
            .hint("write it like 60s, 1m30s or 500ms")
    })
}

/// `SIGTERM`, `TERM`, `sigterm` or `15`.
pub fn parse_signal(v: &str) -> Result<Signal, String> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("{n} is not a signal number"));
    }
    let upper = v.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("{v:?} is not a signal name (like SIGTERM or HUP)"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (true/false)")),
    }
}

/// A loopback `host:port` (the health listener never listens on the network).
pub fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = v
        .trim()
        .parse()
        .or_else(|_| {
            v.trim()
                .strip_prefix("localhost:")
                .and_then(|p| p.parse::<u16>().ok())
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
                .ok_or(())
        })
        .map_err(|()| format!("{v:?} is not an address like 127.0.0.1:9464"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: the health listener only listens on 127.0.0.0/8 or [::1]"
        ));
    }
    Ok(addr)
}

/// `"0640"`, `"640"`, `"0o640"` as a string (the documented form), or a YAML integer: YAML
/// reads `0640` as octal (416 = 0o640), and a plain `640` is taken digit by digit as octal.
fn parse_mode(v: &serde_yaml::Value) -> Result<u32, String> {
    let digits = match v {
        serde_yaml::Value::String(s) => s.trim().trim_start_matches("0o").to_owned(),
        serde_yaml::Value::Number(n) => match n.as_u64() {
            Some(m) if m <= 0o777 => format!("{m:o}"),
            _ => n.to_string(),
        },
        _ => return Err("must be an octal mode like \"0600\"".to_owned()),
    };
    let mode = u32::from_str_radix(&digits, 8)
        .map_err(|_| format!("{digits:?} is not an octal mode like \"0600\""))?;
    if mode > 0o777 {
        return Err(format!("{mode:o} has bits beyond 0777"));
    }
    if mode & 0o600 != 0o600 {
        return Err(format!(
            "{mode:04o} does not let the owner read and write the file"
        ));
    }
    if mode & 0o002 != 0 {
        return Err(format!("{mode:04o} lets anyone write the file"));
    }
    Ok(mode)
}

fn lookup_user(v: &str) -> Result<u32, String> {
    if let Ok(uid) = v.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(v) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("no user named {v:?} on this host")),
        Err(e) => Err(format!("cannot look up user {v:?}: {e}")),
    }
}

fn lookup_group(v: &str) -> Result<u32, String> {
    if let Ok(gid) = v.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(v) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group named {v:?} on this host")),
        Err(e) => Err(format!("cannot look up group {v:?}: {e}")),
    }
}

#[cfg(test)]
mod tests;
