//! `x-gantry`: Gantry's own settings on a service, parsed once, when the files load.
//!
//! What: [`XGantry`] is the typed form of a service's `x-gantry` mapping: `health` (Gantry's
//! own probe: readiness during a deploy, liveness and readiness after it, with optional body
//! checks and a startup deadline; see docs/probes.md), `min_ready`, `job`, `edge` and `canary`
//! (see docs/deploy.md, docs/edge.md). [`XGantry::parse_file`] reads the raw JSON the loader
//! kept aside, [`XGantry::parse`] the same JSON a release recorded, without the checks added
//! since releases were first recorded (see [`Source`]); deploy reads only the typed form. [`StackDefaults`] is the Compose file's top-level `x-gantry`: defaults (only
//! `min_ready`) the loader writes into each service's raw `x-gantry` that lacks them, so a
//! service carries them into its release and nothing downstream knows about the stack level.
//!
//! Design: the mapping is walked by hand, so every error names the key it is about
//! (`x-gantry.health.status`) and the loader can add the file and the service. A malformed
//! value is an error, never a default; an unknown key is an error naming it. Durations are a
//! number of seconds or a duration string (`10s`, `1m30s`). A whole number, a number of seconds
//! or a boolean may also be a string holding one, as interpolation makes them
//! (`passes: ${PASSES}`), read as compose reads `replicas: ${N}` or `privileged: ${P}`
//! ([`whole`], [`boolean`]). An error shows a number, a boolean or null it is about, never a
//! string, list or mapping ([`shown`]), nor a number read from a string: `x-gantry` is read
//! after the files are merged, where which strings interpolation made (a secret, maybe) is no
//! longer known.
//!
//! Limits: the daemon's per-stack settings (`reconcile`, `watch_compose_files`) live in
//! `gantry.yaml` under `daemon.stacks.<name>`, not here; `x-gantry.reconcile` and `x-gantry.watch_compose`
//! are refused with that hint.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::ComposeError;
use probe::probe;

/// A service's `x-gantry`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XGantry {
    /// Gantry's own readiness probe.
    pub health: Option<Probe>,
    /// With no healthcheck and no probe: how long a new container must keep running.
    pub min_ready: Option<Duration>,
    /// The service is a one-shot job (`job: pre-deploy`, `job: true` or `job: {timeout: 10m}`).
    pub job: Option<Job>,
    /// `edge: false`: Docker publishes the service's ports, not Gantry's edge switch.
    pub edge: Option<bool>,
    /// A weighted canary through the edge switch.
    pub canary: Option<Canary>,
}

/// `x-gantry.canary`: the new version gets these shares of new connections, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// Percentages of new connections, strictly increasing, ending at 100.
    pub steps: Vec<u8>,
    /// How long each step (but the last) is watched before the next.
    pub pause: Duration,
    /// Probe failures of the new version within a step that abort the canary.
    pub probe_failures: u32,
    /// Restarts (or exits) of the new version that abort the canary.
    pub restarts: u32,
}

/// `x-gantry.job`: the service runs to completion before the services that need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    /// How long it may run (default: the deploy's job timeout, 10 min).
    pub timeout: Option<Duration>,
}

/// What an HTTP probe's body must hold besides its status (both when both are set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyCheck {
    /// `body: "substring"`: the body contains it.
    pub contains: Option<String>,
    /// `json: {pointer: /status, equals: ok}`: the body is JSON and the value at the pointer
    /// equals this one.
    pub json: Option<JsonCheck>,
}

impl BodyCheck {
    /// Whether anything in the body is checked (then the body is read).
    pub fn is_set(&self) -> bool {
        self.contains.is_some() || self.json.is_some()
    }
}

/// `x-gantry.health.json`: a JSON pointer (RFC 6901) and the value it must point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonCheck {
    pub pointer: String,
    /// A string, number or bool, compared as JSON (`1` equals `1.0`, `"1"` does not).
    pub equals: Value,
}

/// Where a probe connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// HTTP GET; `host: None` means the container's own address.
    Http {
        host: Option<String>,
        port: u16,
        path: String,
        status: (u16, u16),
        body: BodyCheck,
    },
    Tcp {
        port: u16,
    },
}

/// `x-gantry.health`: Gantry's own probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    /// Consecutive passes needed (default 3).
    pub passes: u32,
    /// Consecutive failures after which the daemon restarts a running container (liveness,
    /// default 3).
    pub failures: u32,
    /// Between attempts (default 1 s).
    pub interval: Duration,
    /// Per attempt (default 2 s).
    pub timeout: Duration,
    /// No probing before (default 0).
    pub start_period: Duration,
    /// The whole wait (default: the deploy's `--ready-timeout`); with `startup`, the wait
    /// for `passes` passes counted from the first pass.
    pub deadline: Option<Duration>,
    /// `startup: {deadline: 2m}`: how long a new or restarted container has to pass the first
    /// time (a Kubernetes startup probe); until then failures count neither against the
    /// readiness deadline nor for liveness.
    pub startup: Option<Duration>,
}

/// A malformed `x-gantry`: the key (`x-gantry.health.port`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct XGantryError {
    pub key: String,
    pub message: String,
}

impl XGantryError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// The loader's error: the file, `services.<service>.<key>` and the message (exit 65).
    pub fn in_service(self, file: &Path, service: &str) -> ComposeError {
        ComposeError::invalid(
            file,
            format!("services.{service}.{}", self.key),
            self.message,
        )
    }

    /// The loader's error for the stack's own (top-level) `x-gantry`: the file and the key.
    pub fn in_stack(self, file: &Path) -> ComposeError {
        ComposeError::invalid(file, self.key, self.message)
    }
}

/// Where an `x-gantry` is read from, and so how strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A compose file being loaded: every check applies.
    File,
    /// A release recorded earlier: read without the checks added since releases were first
    /// recorded (a probe key its kind ignores, an interval or timeout of 0, an `http` target a
    /// request cannot carry), so that a release a deploy accepted stays readable for rollback,
    /// reconcile and supervision, with the meaning it had then.
    Recorded,
}

impl XGantry {
    /// Reads a service's raw `x-gantry` (`None` or `null`: nothing set) as a release recorded
    /// it: a malformed value or an unknown key is an error, but not the checks
    /// [`XGantry::parse_file`] adds for a compose file being loaded.
    pub fn parse(raw: Option<&Value>) -> Result<Self, XGantryError> {
        Self::read(raw, Source::Recorded)
    }

    /// Reads a service's raw `x-gantry` from a compose file being loaded: [`XGantry::parse`],
    /// and also refused what a probe would ignore or cannot send (`port` or `status` with
    /// `tcp`, `port` with an `http://` URL, an `interval` or `timeout` of 0, whitespace or a
    /// control character in `http`, a URL's port 0).
    pub fn parse_file(raw: Option<&Value>) -> Result<Self, XGantryError> {
        Self::read(raw, Source::File)
    }

    fn read(raw: Option<&Value>, source: Source) -> Result<Self, XGantryError> {
        let mut out = Self::default();
        for (path, key, value) in entries(raw)? {
            match key {
                "health" => out.health = Some(probe(&path, value, source)?),
                "min_ready" => out.min_ready = Some(duration(&path, value)?),
                "job" => out.job = job(&path, value)?,
                "canary" => out.canary = Some(canary(&path, value)?),
                "edge" => {
                    out.edge = Some(boolean(value).ok_or_else(|| {
                        not(
                            &path,
                            value,
                            "true or false",
                            "false: Docker publishes the ports",
                        )
                    })?);
                }
                "reconcile" | "watch_compose" => {
                    return Err(XGantryError::new(
                        &path,
                        "not a service setting: set the stack's `reconcile` / \
                         `watch_compose_files` under `daemon.stacks.<name>` in gantry.yaml",
                    ));
                }
                _ => {
                    return Err(XGantryError::new(
                        &path,
                        "unknown key (x-gantry has health, min_ready, job, edge and canary)",
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// The stack-level `x-gantry` (at the top of the Compose file): defaults for every service.
/// Only `min_ready` today, given to each service that does not set its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackDefaults {
    /// `min_ready` as written (a number of seconds or a duration string), validated.
    min_ready: Option<Value>,
}

impl StackDefaults {
    /// Reads the top-level `x-gantry` (`None` or `null`: no defaults). Keys that belong on a
    /// service are refused with where they go, as is anything unknown.
    pub fn parse(raw: Option<&Value>) -> Result<Self, XGantryError> {
        let mut out = Self::default();
        for (path, key, value) in entries(raw)? {
            match key {
                "min_ready" => {
                    duration(&path, value)?;
                    out.min_ready = Some(value.clone());
                }
                "health" | "job" | "edge" | "canary" => {
                    return Err(XGantryError::new(
                        &path,
                        format!(
                            "a service setting: write it under services.<name>.x-gantry.{key} \
                             (the stack's own x-gantry has only min_ready, a default for every \
                             service)"
                        ),
                    ));
                }
                _ => {
                    return Err(XGantryError::new(
                        &path,
                        "unknown key (the stack's own x-gantry has only min_ready, a default \
                         for every service)",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Gives a service's raw definition the defaults it does not set itself, in its own
    /// `x-gantry`, so the service carries them wherever it goes (its recorded release too).
    pub fn apply(&self, service: &mut Value) {
        let Some(min_ready) = &self.min_ready else {
            return;
        };
        let Some(obj) = service.as_object_mut() else {
            return;
        };
        let x = obj.entry("x-gantry").or_insert(Value::Null);
        if x.is_null() {
            *x = Value::Object(serde_json::Map::new());
        }
        // A service's own x-gantry that is not a mapping is left for its parse to refuse.
        if let Some(x) = x.as_object_mut() {
            x.entry("min_ready").or_insert_with(|| min_ready.clone());
        }
    }
}

/// Why `key`, an extension key of a service or of the top level, is refused when it looks
/// like a misspelt `x-gantry` (Gantry would not read the settings in it): within two edits of
/// it or equal but for case (`x-gantri`, `x-Gantry`), or `x-gantry.` with more (`x-gantry.health`,
/// a dotted path YAML does not nest). `None` for `x-gantry` itself and any other extension.
pub fn misspelt(key: &str) -> Option<String> {
    const X: &str = "x-gantry";
    if key == X {
        return None;
    }
    let lower = key.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("x-gantry.") {
        let first = rest.split('.').next().unwrap_or_default();
        return Some(format!(
            "not read by Gantry: did you mean \"x-gantry\"? (YAML does not nest a dotted key: \
             write x-gantry: {{{first}: ...}})"
        ));
    }
    super::canonical::closest(key, [X].iter()).map(|_| {
        "not read by Gantry: did you mean \"x-gantry\"? (Gantry reads its settings only \
         from x-gantry, spelt so)"
            .to_owned()
    })
}

/// The keys of an `x-gantry` mapping, each with its path (`x-gantry.<key>`) and value; none
/// for `None` or `null`.
fn entries(raw: Option<&Value>) -> Result<Vec<(String, &str, &Value)>, XGantryError> {
    let Some(raw) = raw.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    Ok(mapping("x-gantry", raw)?
        .iter()
        .map(|(key, value)| (format!("x-gantry.{key}"), key.as_str(), value))
        .collect())
}

fn mapping<'a>(
    key: &str,
    value: &'a Value,
) -> Result<&'a serde_json::Map<String, Value>, XGantryError> {
    value
        .as_object()
        .ok_or_else(|| XGantryError::new(key, format!("must be a mapping, not {}", shown(value))))
}

fn job(key: &str, value: &Value) -> Result<Option<Job>, XGantryError> {
    if let Some(b) = boolean(value) {
        return Ok(b.then(Job::default));
    }
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s == "pre-deploy" => Ok(Some(Job::default())),
        Value::Object(m) => {
            let mut job = Job::default();
            for (k, v) in m {
                let path = format!("{key}.{k}");
                match k.as_str() {
                    "timeout" => job.timeout = Some(duration(&path, v)?),
                    _ => return Err(XGantryError::new(&path, "unknown key (job has timeout)")),
                }
            }
            Ok(Some(job))
        }
        other => Err(not(
            key,
            other,
            "a job setting",
            "write pre-deploy, true, false, or {timeout: 10m}",
        )),
    }
}

/// What a count is and how to write one, for its errors.
const COUNT: (&str, &str) = ("a count", "a whole number, 1 or more, like 3");

/// A count of at least 1.
fn count(key: &str, v: &Value) -> Result<u32, XGantryError> {
    integer(key, v, |n: &u32| *n > 0, COUNT)
}

/// A whole number that fits `T` and passes `ok`, written as a number or as a string holding
/// one ([`whole`]); else an error saying what the key holds (`what`) and how to write it.
fn integer<T: TryFrom<i128>>(
    key: &str,
    v: &Value,
    ok: impl Fn(&T) -> bool,
    (what, write): (&str, &str),
) -> Result<T, XGantryError> {
    whole(v)
        .and_then(|n| T::try_from(n).ok())
        .filter(ok)
        .ok_or_else(|| not(key, v, what, &format!("write {write}")))
}

/// A whole number: one YAML wrote, or a string of digits with an optional sign and nothing
/// around them (`"3"`, `"+3"`, `"03"`, `"-1"`), as compose's `strconv.Atoi` reads an
/// interpolated `replicas: ${N}`. Far too many digits saturate (out of every key's range).
fn whole(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => {
            let (negative, digits) = match s.as_bytes().first() {
                Some(b'-') => (true, &s[1..]),
                Some(b'+') => (false, &s[1..]),
                _ => (false, s.as_str()),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n = digits.parse::<i128>().unwrap_or(i128::MAX);
            Some(if negative { -n } else { n })
        }
        _ => None,
    }
}

/// A boolean: one YAML wrote, or a string compose reads as one when interpolation made it
/// (`privileged: ${P}`): `true`, `yes`, `y`, `on` and `false`, `no`, `n`, `off`, in any case.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Some(true),
            "false" | "no" | "n" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `key`'s value `v` is not `what`: the error, with `hint` in parentheses. A string is not
/// shown, not even when it holds a number out of range (a variable may have given it).
fn not(key: &str, v: &Value, what: &str, hint: &str) -> XGantryError {
    let found = match v {
        Value::String(s) if !s.is_empty() => "a string that".to_owned(),
        other => shown(other),
    };
    XGantryError::new(key, format!("{found} is not {what} ({hint})"))
}

fn canary(key: &str, value: &Value) -> Result<Canary, XGantryError> {
    let mut out = Canary {
        steps: Vec::new(),
        pause: Duration::from_secs(60),
        probe_failures: 3,
        restarts: 1,
    };
    let mut steps = None;
    for (k, v) in mapping(key, value)? {
        let path = format!("{key}.{k}");
        match k.as_str() {
            "steps" => {
                let list = v.as_array().ok_or_else(|| {
                    XGantryError::new(
                        &path,
                        format!("{} is not a list like [10, 50, 100]", shown(v)),
                    )
                })?;
                // Numbers read from strings are not shown: steps are then named by position.
                let from_strings = list.iter().any(Value::is_string);
                let mut parsed: Vec<u8> = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    let n = integer(
                        &path,
                        item,
                        |n: &u8| (1..=100).contains(n),
                        ("a percentage from 1 to 100", "a whole number from 1 to 100"),
                    )?;
                    if let Some(last) = parsed.last().filter(|last| **last >= n) {
                        let which = if from_strings {
                            format!("step {} is not above step {i}", i + 1)
                        } else {
                            format!("{n} comes after {last}")
                        };
                        return Err(XGantryError::new(
                            &path,
                            format!("must increase step by step (like [10, 50, 100]): {which}"),
                        ));
                    }
                    parsed.push(n);
                }
                if parsed.last() != Some(&100) {
                    let what = if from_strings {
                        "the steps".to_owned()
                    } else {
                        format!("{parsed:?}")
                    };
                    return Err(XGantryError::new(
                        &path,
                        format!("{what} must end at 100 (the new version takes every connection)"),
                    ));
                }
                steps = Some(parsed);
            }
            "pause" => out.pause = duration(&path, v)?,
            "abort" => {
                for (ak, av) in mapping(&path, v)? {
                    let apath = format!("{path}.{ak}");
                    match ak.as_str() {
                        "probe_failures" => out.probe_failures = count(&apath, av)?,
                        "restarts" => out.restarts = count(&apath, av)?,
                        _ => {
                            return Err(XGantryError::new(
                                &apath,
                                "unknown key (abort has probe_failures and restarts)",
                            ));
                        }
                    }
                }
            }
            _ => {
                return Err(XGantryError::new(
                    &path,
                    "unknown key (canary has steps, pause and abort)",
                ));
            }
        }
    }
    out.steps = steps.ok_or_else(|| XGantryError::new(key, "needs steps, like [10, 50, 100]"))?;
    Ok(out)
}

/// A number of seconds or a duration string (`"90"` and `"1.5"`, a number of seconds as
/// interpolation gives it, included).
fn duration(key: &str, v: &Value) -> Result<Duration, XGantryError> {
    // Saturating like the strings (at 100 years), where `from_secs_f64` alone panics on a
    // number of seconds too large for a Duration.
    let seconds =
        |s: f64| Duration::from_secs_f64(s.min(gantry_common::duration::MAX.as_secs_f64()));
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(seconds)
            .ok_or_else(|| XGantryError::new(key, format!("{n} is not a duration"))),
        // Not the parser's message: it quotes the text, or a part of it.
        Value::String(s) => gantry_common::duration::parse(s)
            .ok()
            .or_else(|| decimal_seconds(s).map(seconds))
            .ok_or_else(|| {
                XGantryError::new(
                    key,
                    "a string that is not a duration (write it like 60s, 1m30s or 500ms)",
                )
            }),
        other => Err(XGantryError::new(
            key,
            format!("{} is not a duration (write 10s, 1m30s)", shown(other)),
        )),
    }
}

/// A number of seconds with a fraction, as a string (`"1.5"`): digits, a point, digits. (The
/// duration rule reads whole numbers of seconds; it has no fractions.)
fn decimal_seconds(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.')?;
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (digits(int) && digits(frac))
        .then(|| s.parse::<f64>().ok())
        .flatten()
        .filter(|f| f.is_finite())
}

/// `v` for an error message: a number, a boolean or null as it is (YAML wrote it, since
/// interpolation only makes strings); a string, a list or a mapping only by its kind, since it
/// is (or may hold) what a variable gave.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "an empty string".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
        Value::Null | Value::Bool(_) | Value::Number(_) => v.to_string(),
    }
}

mod probe;
#[cfg(test)]
mod tests;
