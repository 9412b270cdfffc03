//! Deploy reports and plans as printed: the one rendering both `--local` and the daemon use,
//! so `gantry deploy` prints the same thing either way.
//!
//! Design: pure functions from a [`DeployReport`] or a [`Plan`] and an [`OutputFormat`] to the
//! text the CLI writes on stdout (the daemon sends that text in its `done` event). Text is one
//! summary line (and the error); JSON is one object.
//!
//! Limits: what is printed stays under [`MAX_OUTPUT`] bytes: SSM returns only the first 24,000
//! characters of stdout, so the error carried by a report is cut (saying so) to fit.

use crate::api::{ERROR_OUTPUT, MAX_OUTPUT, OutputFormat};

use super::{Action, DeployReport, Plan};

/// Cuts `s` to at most `max` bytes on a char boundary, saying so.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes cut]", &s[..end], s.len() - end)
}

/// The end of a deploy or rollback as printed: one JSON line, or a summary line and the error.
pub fn render_report(report: &DeployReport, output: OutputFormat) -> String {
    match output {
        OutputFormat::Json => {
            let mut report = report.clone();
            report.error = report.error.map(|e| truncate(&e, MAX_OUTPUT / 2));
            format!("{}\n", serde_json::to_string(&report).unwrap_or_default())
        }
        OutputFormat::Text => {
            let mut changed: Vec<String> = report
                .services
                .iter()
                .filter(|s| s.action.changes())
                .map(|s| format!("{} {}", s.service, s.action))
                .collect();
            // The list takes at most 1,500 bytes; past that, how many more.
            let mut bytes = 0;
            if let Some(cut) = changed.iter().position(|c| {
                bytes += c.len() + 2;
                bytes > 1_500
            }) {
                let more = changed.len() - cut;
                changed.truncate(cut);
                changed.push(format!("and {more} more"));
            }
            let mut line = format!("[{}] {}", report.stack, report.outcome);
            if let Some(r) = &report.release {
                line.push_str(&format!(" release={r}"));
            }
            if report.repeated {
                line.push_str(" (repeated deploy id: recorded result)");
            }
            if let Some(to) = &report.rolled_back_to {
                line.push_str(&format!(" rolled_back_to={to}"));
            }
            if !changed.is_empty() {
                line.push_str(&format!(" changed=[{}]", changed.join(", ")));
            }
            line.push_str(&format!(
                " in {:.1}s exit={}",
                report.duration_ms as f64 / 1000.0,
                report.exit_code().code()
            ));
            line.push('\n');
            if let Some(e) = &report.error {
                line.push_str(&format!("error: {}\n", truncate(e, ERROR_OUTPUT)));
            }
            line
        }
    }
}

/// The plan as printed: one JSON object, or a summary line and one line per service.
pub fn render_plan(plan: &Plan, output: OutputFormat) -> String {
    match output {
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(plan).unwrap_or_default()
        ),
        OutputFormat::Text => {
            let count = |a: Action| plan.services.iter().filter(|s| s.action == a).count();
            let mut out = format!(
                "stack {}: {} to create, {} to recreate, {} to remove, {} unchanged\n",
                plan.stack,
                count(Action::Create),
                count(Action::Recreate),
                count(Action::Remove),
                count(Action::Unchanged)
            );
            let width = plan
                .services
                .iter()
                .map(|s| s.service.len())
                .max()
                .unwrap_or(0);
            for s in &plan.services {
                let mut why = s.reasons.join(", ");
                let mut add = |more: String| {
                    if !why.is_empty() {
                        why.push_str("; ");
                    }
                    why.push_str(&more);
                };
                if !s.edge.is_empty() {
                    add(format!("edge switch: {}", s.edge.join(", ")));
                }
                // Why a change replaces it stop-first (and, for a published port, why not
                // through the switch).
                if s.action.changes()
                    && s.strategy == Some(super::health::Strategy::StopFirst)
                    && !s.strategy_reason.is_empty()
                {
                    add(format!("stop-first: {}", s.strategy_reason));
                }
                out.push_str(&format!(
                    "  {:width$}  {:9}  {}\n",
                    s.service,
                    s.action.as_str(),
                    why
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text plan says which services go through the edge switch, and for one replaced
    /// stop-first, why (a port the switch cannot own among them).
    #[test]
    fn the_text_plan_says_through_the_switch_or_why_stop_first() {
        use super::super::ServicePlan;
        use super::super::health::Strategy;
        let service = |name: &str, edge: &[&str], strategy, reason: &str| ServicePlan {
            service: name.into(),
            action: Action::Recreate,
            reasons: vec!["image".into()],
            image: None,
            image_id: None,
            replicas: 1,
            job: false,
            strategy: Some(strategy),
            strategy_reason: reason.into(),
            ready: String::new(),
            edge: edge.iter().map(|e| (*e).to_owned()).collect(),
            hash: String::new(),
            legacy_hash: None,
            containers: Vec::new(),
            last: None,
            keep_running: false,
        };
        let plan = Plan {
            stack: "shop".into(),
            services: vec![
                service("web", &["127.0.0.1:8080->80/tcp"], Strategy::StartFirst, ""),
                service(
                    "dns",
                    &[],
                    Strategy::StopFirst,
                    "publishes fixed host port 53/udp",
                ),
            ],
            unapplied: Vec::new(),
        };
        let text = render_plan(&plan, OutputFormat::Text);
        assert!(
            text.contains("  web  recreate   image; edge switch: 127.0.0.1:8080->80/tcp\n"),
            "{text}"
        );
        assert!(
            text.contains("image; stop-first: publishes fixed host port 53/udp\n"),
            "{text}"
        );
    }

    #[test]
    fn truncate_cuts_on_a_char_boundary_and_says_so() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 3);
        assert!(
            cut.starts_with('é') && cut.contains("more bytes cut"),
            "{cut}"
        );
    }

    #[test]
    fn the_end_of_a_report_fits_beside_the_progress_budget() {
        use crate::api::PROGRESS_OUTPUT;
        let mut report = DeployReport::failed("shop");
        report.release = Some("r12".into());
        report.error = Some("a long log line of a failing service\n".repeat(5_000));
        report.services = (0..300)
            .map(|i| crate::ledger::ServiceRecord {
                service: format!("service-with-a-rather-long-name-{i:03}"),
                action: Action::Recreate,
                duration_ms: 1,
                error: None,
            })
            .collect();
        let text = render_report(&report, OutputFormat::Text);
        assert!(
            text.len() + PROGRESS_OUTPUT <= MAX_OUTPUT,
            "{} bytes of end beside {PROGRESS_OUTPUT} of progress exceed {MAX_OUTPUT}",
            text.len()
        );
        assert!(
            text.contains(" more]") && text.contains("more bytes cut"),
            "{text}"
        );
    }
}
