//! Validation: a [`RawConfig`]'s settings, and the environment's and flags' overrides, into
//! typed [`Settings`].
//!
//! Design: every problem is collected and reported at once; each names its origin (the file,
//! `environment` or `command line`) and the key or variable, never a secret. Durations,
//! signal names and the loopback check follow the rules in `gantry_common` (one rule for both
//! programs); an output's `mode:` must be a valid octal permission.
//!
//! Limits: owners and groups are looked up on this host (NSS) at start.

use std::time::Duration;

use gantry_common::{dotenv, duration as dur, net, signal};
use nix::sys::signal::Signal;

use super::{
    Action, ConfigError, DEFAULT_REFRESH, Format, Output, Overrides, RawAction, RawConfig,
    RawOutput, RestartPolicy, Settings,
};

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
pub(super) enum OverrideOrigin {
    Env,
    Flag,
}

pub(super) fn apply(
    config: &mut Settings,
    o: &Overrides,
    from: OverrideOrigin,
    errs: &mut Vec<ConfigError>,
) {
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
            && let Some(bad) = keys.iter().find(|k| !dotenv::valid_name(k))
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

/// A duration by `gantry_common::duration`'s rule (`60s`, `1m30s`, `500ms`, bare seconds).
fn duration(origin: &str, key: &str, v: &str) -> Result<Duration, ConfigError> {
    dur::parse(v).map_err(|e| ConfigError::invalid(origin, key, e.to_string()))
}

/// `SIGTERM`, `TERM`, `sigterm` or `15` (`gantry_common::signal`).
pub fn parse_signal(v: &str) -> Result<Signal, String> {
    signal::parse(v).map_err(|e| e.to_string())
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (true/false)")),
    }
}

/// A loopback `host:port` (the health listener never listens on the network).
pub fn parse_listen(v: &str) -> Result<std::net::SocketAddr, String> {
    net::parse_loopback(v).map_err(|e| format!("{e} (the health listener never faces the network)"))
}

/// `"0640"`, `"640"`, `"0o640"` as a string (the documented form), or an unquoted number,
/// whose digits are read as octal digits: `640` and `0640` (serde_yaml keeps a leading-zero
/// number as the string `"0640"`, per YAML 1.2) are 0o640. An unquoted number with a digit 8 or
/// 9 is refused, and so is one that YAML read in another base (`0o640` is the integer 416, which
/// would be read as 0o416): it must be quoted. `mode: 500` is 0o500, not 500 = 0o764.
pub(super) fn parse_mode(v: &serde_yaml::Value) -> Result<u32, String> {
    let digits = match v {
        serde_yaml::Value::String(s) => s.trim().trim_start_matches("0o").to_owned(),
        serde_yaml::Value::Number(n) => {
            let d = n.to_string();
            if !d.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(format!(
                    "{d} is not an octal mode (digits 0-7 only); quote it, like \"0600\""
                ));
            }
            d
        }
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
