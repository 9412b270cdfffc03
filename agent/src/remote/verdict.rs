//! The agreement rules of `gantry remote` (pure): one exit code for what every instance
//! answered, measured against how many instances SSM targeted, and the lines that say so.
//!
//! An instance without an exit code never ran the command (SSM stopped it at MaxErrors, as
//! `--max-errors 0` does at the first failure, or could not deliver it: the reason comes from
//! its StatusDetails where that says, Undeliverable, DeliveryTimedOut or Terminated), nor did a
//! target SSM never listed (a tag target SSM stopped before it reached): those are left out of
//! the agreement and listed apart (`2 not run, no exit code: SSM stopped the command after 1
//! error ...`). One a poll saw running that ended without an exit code (cancelled mid-run) did
//! run it: it gave no Gantry result, as a 137. Of the instances that ran, [`verdict`] gives
//! their common code when all agree
//! on a code of Gantry's table, so a serial fleet whose first host rolled back exits 2, as one
//! host does; a 3 (rollback failed, look now) anywhere is 3; [`ExitCode::RemoteSplit`] when
//! they disagree, or when they agree on a code that left them on the new release (0, 6) while
//! others never ran; [`ExitCode::RemoteNoResult`] when none ran, or all agree on something
//! that is not a Gantry result (137 from SSM's kill, 127 for a missing `gantry`). [`so_far`]
//! describes the results of a wait that ended early (its bound, a signal, the API), which has
//! no verdict.

use std::collections::BTreeMap;
use std::io::Write;

use super::{InvocationResult, Targets};
use crate::ExitCode;

/// The codes a Gantry document's command (`gantry deploy`, `rollback`, `status`) ends with:
/// what an instance can agree on. Anything else (137 from SSM's kill, 127 for a missing
/// `gantry`) is no Gantry result.
const DEPLOY_CODES: [ExitCode; 10] = [
    ExitCode::Ok,
    ExitCode::Failed,
    ExitCode::RolledBack,
    ExitCode::RollbackFailed,
    ExitCode::NotRecorded,
    ExitCode::Usage,
    ExitCode::InvalidInput,
    ExitCode::Unavailable,
    ExitCode::LockBusy,
    ExitCode::Config,
];

/// What the fleet answered, and the one exit code for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub exit: ExitCode,
    pub summary: String,
}

/// How many rounds SSM runs `targets` instances in at `max_concurrency` ("N" or "P%").
pub fn rounds(targets: usize, max_concurrency: &str) -> usize {
    let per_round = match max_concurrency.strip_suffix('%') {
        Some(p) => p
            .parse::<usize>()
            .map_or(1, |p| (targets.saturating_mul(p) / 100).max(1)),
        None => max_concurrency.parse::<usize>().unwrap_or(1).max(1),
    };
    targets.div_ceil(per_round).max(1)
}

/// The results grouped by exit code: `2 exit 0 (i-1, i-2); 1 no exit code (i-3)`.
fn by_code(results: &[InvocationResult]) -> BTreeMap<Option<i32>, Vec<&str>> {
    let mut by_code: BTreeMap<Option<i32>, Vec<&str>> = BTreeMap::new();
    for r in results {
        by_code
            .entry(r.exit_code)
            .or_default()
            .push(r.instance_id.as_str());
    }
    for ids in by_code.values_mut() {
        ids.sort_unstable();
    }
    by_code
}

fn describe(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit {c}"),
        None => "no exit code".to_string(),
    }
}

fn parts(by_code: &BTreeMap<Option<i32>, Vec<&str>>) -> String {
    by_code
        .iter()
        .map(|(code, ids)| format!("{} {} ({})", ids.len(), describe(*code), ids.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The codes with which an instance is left on the new release: the fleet is only partly
/// there when other instances never ran the command.
const CHANGED_CODES: [ExitCode; 2] = [ExitCode::Ok, ExitCode::NotRecorded];

/// Decides the exit code from every instance's result and the number of instances SSM
/// targeted (`target_count`; 0 when SSM did not say): see the module header.
pub fn verdict(results: &[InvocationResult], target_count: usize) -> Verdict {
    let listed = results.len();
    let m = target_count.max(listed);
    if m == 0 {
        return Verdict {
            exit: ExitCode::RemoteNoResult,
            summary: "no instance matched the targets (check the instance ids or tag, and that the SSM agent is online)".to_string(),
        };
    }
    // An invocation without an exit code never ran its script (SSM stopped the command, or
    // could not deliver it), unless a poll saw it running (cancelled mid-run: no Gantry
    // result, as a 137); nor did a target SSM never listed.
    let (ran, not_run): (Vec<InvocationResult>, Vec<InvocationResult>) = results
        .iter()
        .cloned()
        .partition(|r| r.exit_code.is_some() || r.seen_running);
    let unlisted = m - listed;
    let tail = if not_run.is_empty() && unlisted == 0 {
        String::new()
    } else {
        format!("; {}", not_run_text(results, &not_run, unlisted))
    };
    let n = ran.len();
    if n == 0 {
        return Verdict {
            exit: ExitCode::RemoteNoResult,
            summary: format!(
                "0 of {m} targeted instances gave a result{tail} (check that the SSM agent is online on them)"
            ),
        };
    }
    let by_code = by_code(&ran);
    let parts = parts(&by_code);
    let complete = tail.is_empty();
    if by_code.len() == 1 {
        let code = *by_code.keys().next().expect("one code");
        let gantry_code = code
            .and_then(|c| u8::try_from(c).ok())
            .and_then(|c| DEPLOY_CODES.into_iter().find(|e| e.code() == c));
        return match gantry_code {
            None => Verdict {
                exit: ExitCode::RemoteNoResult,
                summary: format!(
                    "{n} of {m} instances gave no Gantry result: {parts}{tail} (137: killed by SSM's executionTimeout or a cancel; 127: gantry not installed; no exit code: stopped while it ran)"
                ),
            },
            Some(exit) if complete => Verdict {
                exit,
                summary: format!("{n} of {m} instances agree: {}", describe(code)),
            },
            // The ones that ran are on the new release, the others are not.
            Some(exit) if CHANGED_CODES.contains(&exit) => Verdict {
                exit: ExitCode::RemoteSplit,
                summary: format!(
                    "split result, {n} of {m} targeted instances answered: {parts}{tail}"
                ),
            },
            // Nothing changed where it ran (failed, rolled back, refused), nor where it did
            // not: the fleet as one host would be.
            Some(exit) => Verdict {
                exit,
                summary: format!(
                    "{n} of {m} targeted instances ran the command and agree: {}{tail}",
                    describe(code)
                ),
            },
        };
    }
    if let Some(ids) = by_code.get(&Some(i32::from(ExitCode::RollbackFailed.code()))) {
        return Verdict {
            exit: ExitCode::RollbackFailed,
            summary: format!(
                "rollback failed on {} (exit 3: look now), {n} of {m} targeted instances answered: {parts}{tail}",
                ids.join(", ")
            ),
        };
    }
    let summary = if complete {
        format!("split result over {n} instances: {parts}")
    } else {
        format!("split result, {n} of {m} targeted instances answered: {parts}{tail}")
    };
    Verdict {
        exit: ExitCode::RemoteSplit,
        summary,
    }
}

/// Why SSM never ran the command on an instance, when its StatusDetails says (finer than its
/// status: an undeliverable command and one cancelled both end without an exit code).
fn detail_reason(details: &str) -> Option<&'static str> {
    Some(match details {
        "Undeliverable" => {
            "SSM could not deliver the command (Undeliverable: the instance is stopped, gone, or not managed by SSM)"
        }
        "DeliveryTimedOut" => {
            "SSM did not deliver the command within --delivery-timeout (DeliveryTimedOut: check that the SSM agent is online on them)"
        }
        "Terminated" => "the instance was terminated (Terminated)",
        _ => return None,
    })
}

/// The instances that never ran the command, and why: `2 not run: SSM stopped the command
/// after 1 error (i-2 Cancelled, i-3 Cancelled)`. The reason comes from StatusDetails where it
/// tells ([`detail_reason`]), else from the statuses.
fn not_run_text(
    results: &[InvocationResult],
    not_run: &[InvocationResult],
    unlisted: usize,
) -> String {
    // What SSM counts against MaxErrors: a script that failed or timed out (a delivery that
    // timed out, an undeliverable command or a terminated instance does not count).
    let errors = results
        .iter()
        .filter(|r| {
            !matches!(r.status.as_str(), "Success" | "Cancelled")
                && detail_reason(&r.status_details).is_none()
        })
        .count();
    let mut reasons: Vec<&str> = not_run
        .iter()
        .filter_map(|r| detail_reason(&r.status_details))
        .collect();
    reasons.sort_unstable();
    reasons.dedup();
    let rest: Vec<&InvocationResult> = not_run
        .iter()
        .filter(|r| detail_reason(&r.status_details).is_none())
        .collect();
    let cancelled = rest.iter().any(|r| r.status == "Cancelled");
    let reason = if errors > 0 && (cancelled || unlisted > 0) {
        Some(format!(
            "SSM stopped the command after {errors} error{} (--max-errors)",
            if errors == 1 { "" } else { "s" }
        ))
    } else if cancelled {
        Some("the command was cancelled in SSM".to_string())
    } else if !rest.is_empty() {
        Some(
            "SSM did not deliver the command (check that the SSM agent is online on them)"
                .to_string(),
        )
    } else if unlisted > 0 {
        Some(format!(
            "SSM listed no invocation for {}",
            if unlisted == 1 { "it" } else { "them" }
        ))
    } else {
        None
    };
    let reason = reasons
        .into_iter()
        .map(str::to_owned)
        .chain(reason)
        .collect::<Vec<_>>()
        .join("; ");
    let mut ids = not_run
        .iter()
        .map(|r| {
            let word = if detail_reason(&r.status_details).is_some() {
                &r.status_details
            } else {
                &r.status
            };
            format!("{} {word}", r.instance_id)
        })
        .collect::<Vec<_>>();
    ids.sort_unstable();
    if unlisted > 0 {
        ids.push(format!("{unlisted} never listed"));
    }
    format!(
        "{} not run, no exit code: {reason} ({})",
        not_run.len() + unlisted,
        ids.join(", ")
    )
}

/// What came back before a wait ended early: `1 of 3 targeted instances answered: 1 exit 0
/// (i-1); 2 without a result`.
pub fn so_far(results: &[InvocationResult], target_count: usize) -> String {
    let n = results.len();
    let m = target_count.max(n);
    let mut text = if m == 0 {
        "no instance had answered (SSM had not said how many it targets)".to_string()
    } else {
        format!("{n} of {m} targeted instances answered")
    };
    if n > 0 {
        text.push_str(": ");
        text.push_str(&parts(&by_code(results)));
    }
    if m > n {
        text.push_str(&format!("; {} without a result", m - n));
    }
    text
}

pub(super) fn describe_targets(t: &Targets) -> String {
    match t {
        Targets::Instances(ids) => format!("instances {}", ids.join(",")),
        Targets::Tag { key, values } => format!("instances tagged {key}={}", values.join(",")),
    }
}

pub(super) fn print_result(out: &mut (dyn Write + Send), r: &InvocationResult) {
    let _ = writeln!(
        out,
        "== {} {} {}",
        r.instance_id,
        r.status,
        describe(r.exit_code)
    );
    for line in r.stdout.lines() {
        let _ = writeln!(out, "   {line}");
    }
    if !r.stderr.trim().is_empty() {
        let _ = writeln!(out, "   -- stderr");
        for line in r.stderr.lines() {
            let _ = writeln!(out, "   {line}");
        }
    }
}
