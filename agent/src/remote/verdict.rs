//! The agreement rules of `gantry remote` (pure): one exit code for what every instance
//! answered, measured against how many instances SSM targeted, and the lines that say so.
//!
//! [`verdict`] gives the instances' common code when every targeted instance answered and all
//! agree on a code of Gantry's table; [`ExitCode::RemoteSplit`] when they disagree or when
//! fewer results than targets came back (the missing ones are counted in the summary);
//! [`ExitCode::RemoteNoResult`] when none answered, or all agree on something that is not a
//! Gantry result (137 from SSM's kill, 127 for a missing `gantry`). [`so_far`] describes the
//! results of a wait that ended early (its bound, a signal, the API), which has no verdict.

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

/// Decides the exit code from every instance's result and the number of instances SSM
/// targeted (`target_count`; 0 when SSM did not say): see the module header.
pub fn verdict(results: &[InvocationResult], target_count: usize) -> Verdict {
    let n = results.len();
    let m = target_count.max(n);
    if n == 0 {
        let summary = if m == 0 {
            "no instance matched the targets (check the instance ids or tag, and that the SSM agent is online)".to_string()
        } else {
            format!(
                "0 of {m} targeted instances gave a result (check that the SSM agent is online on them)"
            )
        };
        return Verdict {
            exit: ExitCode::RemoteNoResult,
            summary,
        };
    }
    let by_code = by_code(results);
    let parts = parts(&by_code);
    if n < m {
        let missing = m - n;
        return Verdict {
            exit: ExitCode::RemoteSplit,
            summary: format!(
                "split result, {n} of {m} targeted instances answered: {parts}; {missing} gave no result (SSM listed no invocation for {})",
                if missing == 1 { "it" } else { "them" }
            ),
        };
    }
    if by_code.len() == 1 {
        let code = *by_code.keys().next().expect("one code");
        let gantry_code = code
            .and_then(|c| u8::try_from(c).ok())
            .and_then(|c| DEPLOY_CODES.into_iter().find(|e| e.code() == c));
        return match gantry_code {
            Some(exit) => Verdict {
                exit,
                summary: format!("{n} of {m} instances agree: {}", describe(code)),
            },
            None => Verdict {
                exit: ExitCode::RemoteNoResult,
                summary: format!(
                    "{n} of {m} instances gave no Gantry result: {parts} (137: killed by SSM's executionTimeout; 127: gantry not installed)"
                ),
            },
        };
    }
    Verdict {
        exit: ExitCode::RemoteSplit,
        summary: format!("split result over {n} instances: {parts}"),
    }
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
