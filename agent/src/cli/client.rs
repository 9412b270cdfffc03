//! The CLI as a client of the daemon: submit a request, stream progress, print the end.
//!
//! Progress lines go to stdout (stderr with `--output json`, so stdout carries one JSON
//! object), within the same output budget as `--local`. The exit code is the job's. A daemon
//! that cannot be reached is exit 69 with a hint (`systemctl start gantry`, or `--local`).

use std::io::Write;

use crate::ExitCode;
use crate::api::{Client, Event, MAX_OUTPUT, Request};

use super::GlobalArgs;

/// The [`ExitCode`] a daemon sent back (unknown values read as a plain failure).
pub fn exit_code_from(code: u8) -> ExitCode {
    ExitCode::from_code(code).unwrap_or(ExitCode::Failed)
}

/// Sends `request` to the daemon, follows it to its end and returns its exit code.
pub async fn submit(
    global: &GlobalArgs,
    command: &str,
    request: &Request,
    progress_to_stderr: bool,
) -> ExitCode {
    let mut client = match Client::send(&global.socket, request).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gantry {command}: {e}");
            return ExitCode::Unavailable;
        }
    };
    let mut budget = MAX_OUTPUT - 4_000;
    loop {
        match client.next().await {
            Ok(Some(Event::Accepted { job })) => {
                tracing::debug!(job = %job, "job accepted by the daemon");
            }
            Ok(Some(Event::Progress { line })) => {
                let line = format!("{line}\n");
                if line.len() > budget {
                    continue;
                }
                budget -= line.len();
                if progress_to_stderr {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                } else {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.flush();
                }
            }
            Ok(Some(Event::Done { stdout, exit_code })) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(stdout.as_bytes());
                let _ = out.flush();
                return exit_code_from(exit_code);
            }
            Ok(Some(Event::Error { message, exit_code })) => {
                eprintln!("gantry {command}: {message}");
                return exit_code_from(exit_code);
            }
            Ok(None) => {
                eprintln!(
                    "gantry {command}: the daemon closed the connection before the end (hint: journalctl -u gantry; a deploy goes on in the daemon: run it again with the same --id to see its result)"
                );
                return ExitCode::Unavailable;
            }
            Err(e) => {
                eprintln!("gantry {command}: {e}");
                return ExitCode::Unavailable;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_back() {
        for c in [ExitCode::Ok, ExitCode::RolledBack, ExitCode::LockBusy] {
            assert_eq!(exit_code_from(c.code()), c);
        }
        assert_eq!(exit_code_from(200), ExitCode::Failed);
    }
}
