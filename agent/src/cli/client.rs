//! The CLI as a client of the daemon: submit a request, stream progress, print the end.
//!
//! Progress lines go to stdout (stderr with `--output json`, so stdout carries one JSON
//! object), within the same output budget as `--local`. The exit code is the job's. A daemon
//! that cannot be reached is exit 69 with a hint (`systemctl start gantry`, or `--local`). A
//! daemon that goes away during a canary step is exit 69 too, naming the stack, the step and
//! what follows (a restarted daemon resumes the canary there; `gantry promote|abort`).

use std::io::Write;

use crate::ExitCode;
use crate::api::{Client, Event, Request};

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
    let mut budget = crate::api::PROGRESS_OUTPUT;
    let mut canary: Option<CanaryStep> = None;
    loop {
        match client.next().await {
            Ok(Some(Event::Accepted { job })) => {
                tracing::debug!(job = %job, "job accepted by the daemon");
            }
            Ok(Some(Event::Progress { line })) => {
                if let Some(step) = CanaryStep::parse(&line) {
                    canary = step;
                }
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
            Ok(None) if canary.is_some() => {
                if let Some(step) = &canary {
                    eprintln!("gantry {command}: {}", step.gone());
                }
                return ExitCode::Unavailable;
            }
            Ok(None) => {
                eprintln!(
                    "gantry {command}: the daemon closed the connection before the end (hint: journalctl -u gantry; a deploy goes on in the daemon: run it again with the same --id to see its result)"
                );
                return ExitCode::Unavailable;
            }
            Err(e) => {
                eprintln!("gantry {command}: {e}");
                if let Some(step) = &canary {
                    eprintln!("gantry {command}: {}", step.gone());
                }
                return ExitCode::Unavailable;
            }
        }
    }
}

/// The canary step a deploy's progress last reported (`[stack] service: canary 10%: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CanaryStep {
    stack: String,
    service: String,
    share: u8,
}

impl CanaryStep {
    /// `Some(Some(step))` for a line reporting a step being watched, `Some(None)` for one that
    /// ends the canary (100 % or aborted), `None` for any other line.
    fn parse(line: &str) -> Option<Option<Self>> {
        let rest = line.strip_prefix('[')?;
        let (stack, rest) = rest.split_once("] ")?;
        let (service, rest) = rest.split_once(": ")?;
        if rest.starts_with("canary aborted") {
            return Some(None);
        }
        let (share, _) = rest.strip_prefix("canary ")?.split_once("%:")?;
        let share: u8 = share.parse().ok()?;
        Some((share < 100).then(|| Self {
            stack: stack.to_owned(),
            service: service.to_owned(),
            share,
        }))
    }

    /// What to tell the operator when the daemon went away during this step.
    fn gone(&self) -> String {
        let s = &self.stack;
        format!(
            "the daemon stopped while stack {s} was at canary step {}% (service {}). The switch \
             keeps that share and a restarted daemon resumes the canary at that step (hint: \
             systemctl status gantry). Follow it with `gantry status {s}` and `gantry releases \
             {s}`; finish it with `gantry promote {s}`, or roll it back with `gantry abort {s}`.",
            self.share, self.service
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn canary_steps_are_read_from_progress_lines() {
        let step = CanaryStep::parse(
            "[shop] web: canary 10%: 10% of new connections to shop-web-1-gantry-next, watching for 5m (gantry promote shop / gantry abort shop)",
        );
        assert_eq!(
            step,
            Some(Some(CanaryStep {
                stack: "shop".into(),
                service: "web".into(),
                share: 10
            }))
        );
        let text = step.flatten().map(|s| s.gone()).unwrap_or_default();
        assert!(
            text.contains("stack shop was at canary step 10% (service web)"),
            "{text}"
        );
        assert!(text.contains("`gantry promote shop`"), "{text}");
        assert_eq!(
            CanaryStep::parse(
                "[shop] web: canary 100%: every new connection goes to the new version"
            ),
            Some(None)
        );
        assert_eq!(
            CanaryStep::parse(
                "[shop] web: canary aborted at 10%: aborted by hand; every new connection back to the old version"
            ),
            Some(None)
        );
        assert_eq!(
            CanaryStep::parse("[shop] web: shop-web-1 serving after 1.0s"),
            None
        );
    }

    #[test]
    fn exit_codes_map_back() {
        for c in [ExitCode::Ok, ExitCode::RolledBack, ExitCode::LockBusy] {
            assert_eq!(exit_code_from(c.code()), c);
        }
        assert_eq!(exit_code_from(200), ExitCode::Failed);
    }

    /// A progress line as the daemon writes one (`[stack] service: message`, as
    /// `cli::deploy::Lines::step` formats it).
    fn line(stack: &str, service: &str, message: &str) -> String {
        format!("[{stack}] {service}: {message}")
    }

    proptest! {
        /// Any line: never a panic; a step read from it is below 100 % and names the stack and
        /// service the line starts with.
        #[test]
        fn a_step_read_from_any_line_is_the_one_it_names(
            text in prop_oneof![
                any::<String>(),
                "\\[[a-z\\] ]{0,4}\\] [a-z: ]{0,4}: canary [+0-9]{0,4}%:.{0,8}",
            ],
        ) {
            if let Some(Some(step)) = CanaryStep::parse(&text) {
                prop_assert!(step.share < 100, "{text:?}: {step:?}");
                let head = format!("[{}] {}: canary ", step.stack, step.service);
                prop_assert!(text.starts_with(&head), "{text:?}: {step:?}");
            }
        }

        /// A canary step line reads back as its stack, service and share below 100 %, and as
        /// the end of the canary at 100 % and above.
        #[test]
        fn a_canary_step_line_reads_back(
            stack in "[a-z0-9][a-z0-9_-]{0,12}",
            service in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,12}",
            share in any::<u8>(),
            rest in ".{0,40}",
        ) {
            let text = line(&stack, &service, &format!("canary {share}%: {rest}"));
            let want = (share < 100).then_some(CanaryStep { stack, service, share });
            prop_assert_eq!(CanaryStep::parse(&text), Some(want));
        }

        #[test]
        fn an_aborted_canary_line_ends_the_canary(
            stack in "[a-z0-9][a-z0-9_-]{0,12}",
            service in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,12}",
            rest in ".{0,40}",
        ) {
            let text = line(&stack, &service, &format!("canary aborted{rest}"));
            prop_assert_eq!(CanaryStep::parse(&text), Some(None));
        }
    }
}
