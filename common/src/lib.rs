//! `gantry-common`: the few pieces both Gantry binaries need.
//!
//! - [`Secret`]: a value that prints as `[redacted]` in `Debug` and `Display`, is wiped on drop,
//!   and is only read through an explicit [`Secret::expose`], so a secret cannot reach a log line
//!   or an error message by accident.
//! - [`fsx::write_atomic`]: crash-safe file replacement (temp file created with its final mode in
//!   the same directory, optional chown, write, fsync, rename, fsync of the directory).
//! - [`sdnotify`]: the systemd notification protocol (`READY=1`, `STATUS=`, `WATCHDOG=1`) spoken
//!   in-process over `NOTIFY_SOCKET`, without libsystemd.
//! - [`exit::ExitCode`]: the exit-code table of both programs (shared sysexits codes and each
//!   program's own), never 137 or 194.
//! - [`logging`]: tracing set-up: native journald when systemd started us (`JOURNAL_STREAM`
//!   matches stderr), otherwise stderr as text or JSON; other libraries are capped (bodies and
//!   headers never reach a log, whatever level the user sets).
//! - [`duration`], [`signal`], [`net`]: one rule for durations (saturating), signal names and
//!   the loopback check, for every file, flag and variable of both programs.
//! - [`yaml`]: YAML loading with the error's line and column.
//! - [`dotenv`]: the dotenv codec (the sidecar writes, the agent reads by Compose's rules).
//! - [`http`] and [`metrics_text`]: a tiny loopback HTTP responder and the Prometheus text format.
//! - [`aws`]: the AWS SDK set-up, with the guard that drops the SDK's body logging.
//! - [`memory`]: freed memory handed back to the system after a burst (glibc keeps it).
//!
//! Limits: Linux only (the targets are EC2 hosts and ECS/App Runner containers).

pub mod aws;
pub mod dotenv;
pub mod duration;
pub mod exit;
pub mod fsx;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics_text;
pub mod net;
pub mod sdnotify;
mod secret;
pub mod signal;
pub mod yaml;

pub use secret::Secret;
