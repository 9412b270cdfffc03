//! `gantry remote deploy|rollback|status`: run Gantry's SSM documents on a fleet from CI, wait,
//! print every instance's result, exit with the fleet's one code (see [`crate::remote`]).
//!
//! The command line is checked here, before anything is uploaded or sent ([`RemoteArgsError`],
//! exit 64): targets within SSM's limits (50 instance ids, none empty or named twice, no empty
//! tag value), `--poll-interval` of at least a second, `--lock-wait` and `--timeout` as the
//! documents take them, and `--lock-wait` (twice with a bundle) + `--timeout` + a margin to
//! start (and fetch the bundle) below `--execution-timeout` (else SSM kills the deploy with 137
//! before Gantry's own bound ends it).
//! In a CI job the wait ends a minute before the job's own timeout (GitLab's `CI_JOB_TIMEOUT`,
//! counted from `CI_JOB_STARTED_AT`; the deadline is fixed here, so uploading the bundle and
//! sending count against it, and with less than one poll interval left right before the send
//! nothing is sent, 64), and SIGTERM or SIGINT (a job cancelled or timing out) ends it
//! too: either way the command is cancelled in SSM and what came back so far is printed
//! (exit 5).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::ExitCode;
use crate::remote::{self, CommandSpec, Targets, Wait, ssm::SsmFleet};

#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    #[command(subcommand)]
    pub command: RemoteCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RemoteCommand {
    /// Deploy a stack on the fleet (document Gantry-Deploy).
    Deploy(RemoteDeployArgs),
    /// Roll a stack back on the fleet (document Gantry-Rollback).
    Rollback(RemoteRollbackArgs),
    /// Print the status of a stack (or all) on the fleet (document Gantry-Status).
    Status(RemoteStatusArgs),
}

/// Which instances, how SSM rolls over them, how long to wait.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Instance ids, comma separated or repeated.
    #[arg(long = "instance-ids", value_name = "ID", value_delimiter = ',')]
    pub instance_ids: Vec<String>,
    /// Instances by tag instead: KEY=VALUE[,VALUE...] (SSM target tag:KEY).
    #[arg(long, value_name = "KEY=VALUES", conflicts_with = "instance_ids")]
    pub tag: Option<String>,
    /// How many instances run at once (a number or a percentage): SSM rolls the fleet.
    #[arg(long, default_value = "1")]
    pub max_concurrency: String,
    /// How many failed instances stop the roll (a number or a percentage).
    #[arg(long, default_value = "0")]
    pub max_errors: String,
    /// The document to run [default: Gantry-Deploy, Gantry-Rollback or Gantry-Status].
    #[arg(long, value_name = "NAME")]
    pub document: Option<String>,
    /// Seconds before SSM kills the script on an instance (the document's executionTimeout).
    #[arg(long, default_value_t = 3600)]
    pub execution_timeout: u32,
    /// How long an instance may take to pick the command up.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg, default_value = "10m")]
    pub delivery_timeout: Duration,
    /// How often to ask SSM for progress (at least 1s).
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg, default_value = "5s")]
    pub poll_interval: Duration,
    /// Stop waiting after this long [default: delivery timeout + execution timeout, times the rounds max-concurrency implies when it is a number].
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg)]
    pub wait: Option<Duration>,
    /// Send and print the command id without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// AWS region of the instances [default: the AWS chain's].
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// The CI job's own timeout (seconds, or a duration like 2h): the wait ends, and the command
    /// is cancelled, a minute before it (GitLab sets CI_JOB_TIMEOUT).
    #[arg(long, value_name = "DURATION", env = "CI_JOB_TIMEOUT")]
    pub job_timeout: Option<String>,
    /// When the CI job started, RFC 3339 (GitLab's CI_JOB_STARTED_AT): the job's timeout counts
    /// from there.
    #[arg(long, value_name = "TIME", env = "CI_JOB_STARTED_AT", hide = true)]
    pub job_started_at: Option<String>,
}

/// A command line `gantry remote` refuses before it uploads or sends anything (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum RemoteArgsError {
    #[error("choose the instances: --instance-ids ID[,ID...] or --tag KEY=VALUE[,VALUE...]")]
    NoTargets,
    #[error(
        "--bundle-bucket is empty: name the bucket, or leave out --stack-dir and --bundle-bucket to deploy the stack's files already on the hosts"
    )]
    EmptyBundleBucket,
    #[error(
        "--tag {tag:?}: expected KEY=VALUE[,VALUE...] with no empty key or value (SSM refuses an empty one)"
    )]
    BadTag { tag: String },
    #[error(
        "--tag {tag:?}: {count} values, SSM takes at most {MAX_TARGETS} in one tag target: tag the instances with one value, or send several commands"
    )]
    TooManyTagValues { tag: String, count: usize },
    #[error("--instance-ids {given:?}: an empty instance id")]
    EmptyInstanceId { given: String },
    #[error(
        "--instance-ids: {id} is named twice (SSM refuses a command that names an instance twice)"
    )]
    DuplicateInstanceId { id: String },
    #[error(
        "--poll-interval {}: at least {} between polls (SSM throttles faster polling of a command)",
        humantime::format_duration(*given),
        humantime::format_duration(MIN_POLL_INTERVAL)
    )]
    PollTooFast { given: Duration },
    #[error(
        "--instance-ids: {count} instances, SSM takes at most {MAX_TARGETS} ids in one command: target them with --tag KEY=VALUE, or split them over several commands"
    )]
    TooManyInstances { count: usize },
    #[error(
        "{flag} {value:?}: expected a whole number of seconds, minutes or hours, as the SSM document takes it (1 to 5 digits then s, m or h: 90s, 30m)"
    )]
    BadDuration { flag: &'static str, value: String },
    #[error(
        "{bounds} + {} {start} is not below --execution-timeout {execution_timeout} (seconds): SSM would kill the script (exit 137, no Gantry result) before Gantry's own bound ends it; raise --execution-timeout or lower {flags}",
        humantime::format_duration(START_MARGIN)
    )]
    OverBudget {
        bounds: String,
        flags: String,
        /// What the margin is for: fetching the bundle and starting, or starting.
        start: &'static str,
        execution_timeout: u32,
    },
    #[error("--job-timeout (CI_JOB_TIMEOUT) {value:?}: expected seconds or a duration such as 2h")]
    BadJobTimeout { value: String },
    #[error(
        "the CI job's timeout (--job-timeout / CI_JOB_TIMEOUT {}) leaves {} to wait, less than the {} kept to cancel and report: raise the job's `timeout:`, or pass --no-wait",
        humantime::format_duration(*timeout),
        humantime::format_duration(*left),
        humantime::format_duration(JOB_MARGIN)
    )]
    NoTimeLeft { timeout: Duration, left: Duration },
}

/// Kept between a deploy's own bounds (`--lock-wait` + `--timeout`) and SSM's
/// executionTimeout: fetching the bundle from S3 (when there is one) and starting `gantry`.
pub const START_MARGIN: Duration = Duration::from_secs(30);

/// The shortest `--poll-interval`: each poll is two or more SSM calls, on the account's shared
/// rate of SSM's API.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Kept between the end of the wait and the CI job's timeout: time to cancel the command in
/// SSM and print the summary before the runner kills the job.
pub const JOB_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct RemoteDeployArgs {
    /// The stack.
    pub stack: String,
    /// IMAGE_TAG for interpolation, e.g. $CI_COMMIT_SHA.
    #[arg(long, value_name = "TAG")]
    pub image_tag: String,
    /// The deploy id, e.g. $CI_PIPELINE_ID: a retried job reports the first result.
    #[arg(long = "id", value_name = "ID", value_parser = super::deploy::parse_deploy_id)]
    pub deploy_id: Option<String>,
    /// More variables, KEY=VALUE (repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// s3://bucket/key of the stack's files as .tar.gz (see `gantry fetch-bundle`).
    #[arg(
        long,
        value_name = "S3_URL",
        requires = "bundle_sha256",
        conflicts_with = "stack_dir"
    )]
    pub bundle: Option<String>,
    /// Pack this directory (compose.yaml, .env, ...) as the stack's bundle and upload it to
    /// s3://BUNDLE_BUCKET/STACK/<sha256>.tar.gz first.
    #[arg(long, value_name = "DIR", requires = "bundle_bucket")]
    pub stack_dir: Option<std::path::PathBuf>,
    /// The bucket for --stack-dir.
    #[arg(long, value_name = "BUCKET", requires = "stack_dir")]
    pub bundle_bucket: Option<String>,
    /// SHA-256 of the bundle.
    #[arg(long, value_name = "HEX", requires = "bundle")]
    pub bundle_sha256: Option<String>,
    /// Wait this long for another deploy of the stack on an instance.
    #[arg(long, default_value = "10m")]
    pub lock_wait: String,
    /// Bound on the deploy on each instance (keep it below --execution-timeout).
    #[arg(long, default_value = "30m")]
    pub timeout: String,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, clap::Args)]
pub struct RemoteRollbackArgs {
    /// The stack.
    pub stack: String,
    /// A release (r12), a deploy id, or a variable value such as the IMAGE_TAG it deployed.
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Wait this long for another deploy of the stack on an instance.
    #[arg(long, default_value = "10m")]
    pub lock_wait: String,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, clap::Args)]
pub struct RemoteStatusArgs {
    /// One stack [default: every stack].
    pub stack: Option<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// What `gantry remote` will do once the command line is checked: nothing sent yet.
#[derive(Debug)]
struct Prepared {
    document: &'static str,
    parameters: BTreeMap<String, String>,
    targets: Targets,
    fleet: FleetArgs,
    /// `--stack-dir` and `--bundle-bucket`: pack and upload this first.
    upload: Option<(std::path::PathBuf, String)>,
    /// The wait's ceiling from the CI job's timeout, fixed when the command line was checked:
    /// the upload, loading the AWS configuration and the send count against it.
    ceiling: Option<Instant>,
}

/// Checks the whole command line and builds the document's parameters; uploads and sends
/// nothing, so a refusal leaves no trace (exit 64).
fn prepare(args: RemoteArgs, now: SystemTime) -> Result<Prepared, RemoteArgsError> {
    let (document, mut parameters, fleet, upload) = match args.command {
        RemoteCommand::Deploy(a) => {
            let lock_wait = ssm_duration("--lock-wait", &a.lock_wait)?;
            let timeout = ssm_duration("--timeout", &a.timeout)?;
            // With a bundle, `fetch-bundle` waits for the stack's lock first, then the deploy.
            let bundled =
                a.bundle.is_some() || (a.stack_dir.is_some() && a.bundle_bucket.is_some());
            check_budget(
                ("--lock-wait", &a.lock_wait, lock_wait),
                Some(("--timeout", &a.timeout, timeout)),
                bundled,
                a.fleet.execution_timeout,
            )?;
            let mut p = BTreeMap::from([
                ("Stack".to_string(), a.stack),
                ("ImageTag".to_string(), a.image_tag),
                ("LockWait".to_string(), a.lock_wait),
                ("Timeout".to_string(), a.timeout),
            ]);
            if let Some(id) = a.deploy_id {
                p.insert("DeployId".into(), id);
            }
            if !a.vars.is_empty() {
                p.insert("Variables".into(), a.vars.join(" "));
            }
            if let (Some(url), Some(sum)) = (a.bundle, a.bundle_sha256) {
                p.insert("BundleUrl".into(), url);
                p.insert("BundleSha256".into(), sum);
            }
            if a.bundle_bucket
                .as_deref()
                .is_some_and(|b| b.trim().is_empty())
            {
                return Err(RemoteArgsError::EmptyBundleBucket);
            }
            let upload = a.stack_dir.zip(a.bundle_bucket);
            ("Gantry-Deploy", p, a.fleet, upload)
        }
        RemoteCommand::Rollback(a) => {
            let lock_wait = ssm_duration("--lock-wait", &a.lock_wait)?;
            // A rollback runs under the deploy's default bound; it has no flag to lower.
            let limit = crate::deploy::DEFAULT_TIMEOUT;
            let shown = humantime::format_duration(limit).to_string();
            check_budget(
                ("--lock-wait", &a.lock_wait, lock_wait),
                Some(("a rollback's own limit", &shown, limit)),
                false,
                a.fleet.execution_timeout,
            )?;
            let mut p = BTreeMap::from([
                ("Stack".to_string(), a.stack),
                ("LockWait".to_string(), a.lock_wait),
            ]);
            if let Some(to) = a.to {
                p.insert("To".into(), to);
            }
            ("Gantry-Rollback", p, a.fleet, None)
        }
        RemoteCommand::Status(a) => {
            let mut p = BTreeMap::new();
            if let Some(s) = a.stack {
                p.insert("Stack".to_string(), s);
            }
            ("Gantry-Status", p, a.fleet, None)
        }
    };
    let targets = targets(&fleet)?;
    if !fleet.no_wait && fleet.poll_interval < MIN_POLL_INTERVAL {
        return Err(RemoteArgsError::PollTooFast {
            given: fleet.poll_interval,
        });
    }
    if document != "Gantry-Status" {
        parameters.insert(
            "executionTimeout".into(),
            fleet.execution_timeout.to_string(),
        );
    }
    let ceiling = if fleet.no_wait {
        None
    } else {
        job_ceiling(
            fleet.job_timeout.as_deref(),
            fleet.job_started_at.as_deref(),
            now,
        )?
        .map(|left| Instant::now() + left)
    };
    Ok(Prepared {
        document,
        parameters,
        targets,
        fleet,
        upload,
        ceiling,
    })
}

/// Runs one `gantry remote` command.
pub async fn run(args: RemoteArgs) -> ExitCode {
    let Prepared {
        document,
        mut parameters,
        targets,
        fleet,
        upload,
        ceiling,
    } = match prepare(args, SystemTime::now()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gantry remote: {e}");
            return ExitCode::Usage;
        }
    };
    if let Some((dir, bucket)) = &upload {
        match upload_bundle(dir, bucket, &parameters["Stack"], fleet.region.clone()).await {
            Ok((url, sum)) => {
                println!("uploaded {} as {url} (sha256 {sum})", dir.display());
                parameters.insert("BundleUrl".into(), url);
                parameters.insert("BundleSha256".into(), sum);
            }
            Err(e) => {
                eprintln!("gantry remote: {e}");
                return match e {
                    crate::bundle::BundleError::Fetch { .. } => ExitCode::Unavailable,
                    _ => ExitCode::InvalidInput,
                };
            }
        }
    }
    let comment = format!(
        "gantry remote {} {}",
        document.trim_start_matches("Gantry-").to_lowercase(),
        parameters.get("Stack").map_or("", String::as_str)
    );
    let spec = CommandSpec {
        document: fleet
            .document
            .clone()
            .unwrap_or_else(|| document.to_owned()),
        parameters,
        targets,
        max_concurrency: fleet.max_concurrency.clone(),
        max_errors: fleet.max_errors.clone(),
        delivery_timeout: fleet.delivery_timeout,
        comment,
    };
    if let (Some(w), Some(c)) = (
        fleet.wait,
        ceiling.map(|c| c.saturating_duration_since(Instant::now())),
    ) && w > c
    {
        eprintln!(
            "gantry remote: --wait {} goes past the CI job's timeout: waiting {} at most",
            humantime::format_duration(w),
            humantime::format_duration(c)
        );
    }
    let wait = (!fleet.no_wait).then(|| Wait {
        poll_every: fleet.poll_interval,
        limit: fleet
            .wait
            .unwrap_or_else(|| default_wait(&fleet, &spec.targets)),
        // Without --wait, the bound follows the fleet's size once SSM knows it.
        per_round: fleet.wait.is_none().then(|| round(&fleet)),
        ceiling,
    });
    let ssm = SsmFleet::from_env(fleet.region.clone()).await;
    let mut stdout = std::io::stdout();
    // Registered before the command is sent: a signal during the send ends the wait at once.
    let interrupt = if fleet.no_wait {
        None
    } else {
        Some(interrupted())
    };
    let interrupt = async move {
        match interrupt {
            Some(i) => i.await,
            None => std::future::pending().await,
        }
    };
    match remote::run(&ssm, &spec, wait, &mut stdout, interrupt).await {
        Ok(v) => v.exit,
        Err(e) => {
            eprintln!("gantry remote: {e}");
            e.exit_code()
        }
    }
}

/// Packs `dir` and uploads it under its own checksum: the same files give the same key.
async fn upload_bundle(
    dir: &std::path::Path,
    bucket: &str,
    stack: &str,
    region: Option<String>,
) -> Result<(String, String), crate::bundle::BundleError> {
    use std::str::FromStr as _;
    let (bytes, sum) = crate::bundle::pack(dir)?;
    let url = format!("s3://{bucket}/{stack}/{}.tar.gz", sum.as_str());
    let location = crate::bundle::S3Location::from_str(&url)?;
    crate::bundle::S3Source::from_env(region, None)
        .await
        .put(&location, bytes)
        .await?;
    Ok((url, sum.as_str().to_owned()))
}

/// SSM's limit on instance ids in one command, and on the values of one tag target.
pub const MAX_TARGETS: usize = 50;

fn targets(f: &FleetArgs) -> Result<Targets, RemoteArgsError> {
    match (&f.tag, f.instance_ids.is_empty()) {
        (Some(tag), true) => {
            let (key, values) = tag
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && v.split(',').all(|v| !v.is_empty()))
                .ok_or_else(|| RemoteArgsError::BadTag { tag: tag.clone() })?;
            let values: Vec<String> = values.split(',').map(str::to_owned).collect();
            if values.len() > MAX_TARGETS {
                return Err(RemoteArgsError::TooManyTagValues {
                    tag: tag.clone(),
                    count: values.len(),
                });
            }
            Ok(Targets::Tag {
                key: key.to_owned(),
                values,
            })
        }
        (None, false) => {
            // `--instance-ids "i-1, i-2"`: the spaces are the shell's, not the ids'.
            let ids: Vec<String> = f
                .instance_ids
                .iter()
                .map(|id| id.trim().to_owned())
                .collect();
            if ids.iter().any(String::is_empty) {
                return Err(RemoteArgsError::EmptyInstanceId {
                    given: f.instance_ids.join(","),
                });
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(id) = ids.iter().find(|id| !seen.insert(id.as_str())) {
                return Err(RemoteArgsError::DuplicateInstanceId { id: id.clone() });
            }
            if ids.len() > MAX_TARGETS {
                return Err(RemoteArgsError::TooManyInstances { count: ids.len() });
            }
            Ok(Targets::Instances(ids))
        }
        _ => Err(RemoteArgsError::NoTargets),
    }
}

/// A `--lock-wait` / `--timeout` value as the SSM documents take it (`^[0-9]{1,5}[smh]$`).
fn ssm_duration(flag: &'static str, value: &str) -> Result<Duration, RemoteArgsError> {
    let bad = || RemoteArgsError::BadDuration {
        flag,
        value: value.to_owned(),
    };
    if !value.is_ascii() {
        return Err(bad());
    }
    let (digits, unit) = value.split_at(value.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

/// Refuses bounds SSM's executionTimeout would cut: `--lock-wait` (as many times as it is
/// waited: twice when `bundled`, as `fetch-bundle` takes the stack's lock too) + `--timeout`
/// (a deploy; a rollback's own bound) + [`START_MARGIN`] must stay below `--execution-timeout`,
/// so an instance answers with Gantry's code, not SSM's 137 for a killed script.
fn check_budget(
    lock_wait: (&'static str, &str, Duration),
    timeout: Option<(&'static str, &str, Duration)>,
    bundled: bool,
    execution_timeout: u32,
) -> Result<(), RemoteArgsError> {
    let waits = if bundled { 2 } else { 1 };
    let total = lock_wait.2 * waits + timeout.map_or(Duration::ZERO, |t| t.2) + START_MARGIN;
    if total < Duration::from_secs(u64::from(execution_timeout)) {
        return Ok(());
    }
    let mut bounds = match waits {
        1 => format!("{} {}", lock_wait.0, lock_wait.1),
        n => format!("{n} x {} {}", lock_wait.0, lock_wait.1),
    };
    let mut flags = lock_wait.0.to_string();
    if let Some((flag, value, _)) = timeout {
        bounds.push_str(&format!(" + {flag} {value}"));
        // A bound without a flag (a rollback's own limit) is shown, not offered to lower.
        if flag.starts_with("--") {
            flags = format!("{flag} or {flags}");
        }
    }
    Err(RemoteArgsError::OverBudget {
        bounds,
        flags,
        // A rollback, or a deploy of the files already on the hosts, fetches no bundle.
        start: if bundled {
            "to fetch the bundle and start"
        } else {
            "to start"
        },
        execution_timeout,
    })
}

/// Resolves to the signal's name at the first SIGTERM or SIGINT after this call (GitLab sends
/// SIGTERM to a job it cancels or that passed its timeout). A signal that cannot be watched is
/// left to its default action.
fn interrupted() -> impl Future<Output = &'static str> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    async fn first(s: std::io::Result<tokio::signal::unix::Signal>) {
        match s {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    }
    let term = first(signal(SignalKind::terminate()));
    let int = first(signal(SignalKind::interrupt()));
    async move {
        tokio::select! {
            () = term => "SIGTERM",
            () = int => "SIGINT",
        }
    }
}

/// How long the wait may last in a CI job with `timeout` (`CI_JOB_TIMEOUT`: seconds or a
/// duration) that started at `started_at` (`CI_JOB_STARTED_AT`, RFC 3339; unknown or
/// unreadable: now): what is left of it, less [`JOB_MARGIN`]. `None` outside a CI job.
pub fn job_ceiling(
    timeout: Option<&str>,
    started_at: Option<&str>,
    now: SystemTime,
) -> Result<Option<Duration>, RemoteArgsError> {
    let Some(value) = timeout.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let timeout =
        gantry_common::duration::parse(value).map_err(|_| RemoteArgsError::BadJobTimeout {
            value: value.to_owned(),
        })?;
    let elapsed = started_at
        .map(str::trim)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default();
    let left = timeout.saturating_sub(elapsed);
    if left <= JOB_MARGIN {
        return Err(RemoteArgsError::NoTimeLeft { timeout, left });
    }
    Ok(Some(left - JOB_MARGIN))
}

/// One round: delivered, then run to its execution timeout.
fn round(f: &FleetArgs) -> Duration {
    f.delivery_timeout + Duration::from_secs(u64::from(f.execution_timeout))
}

/// Long enough for every round to be delivered and run to its timeout: for listed instances
/// known now; for a tag target, one round until SSM says how many instances it targets.
fn default_wait(f: &FleetArgs, t: &Targets) -> Duration {
    let rounds = match t {
        Targets::Instances(ids) => crate::remote::rounds(ids.len(), &f.max_concurrency),
        Targets::Tag { .. } => 1,
    };
    round(f) * u32::try_from(rounds).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
