//! The on_change actions still owed: an output was rewritten and its action has not succeeded
//! since (it failed, or a stop interrupted it).
//!
//! Design: [`Owed`] keeps the outputs (config order) whose action is owed. An owed action is
//! tried again with the sources' backoff ([`engine::backoff`]: 1 s doubling, capped at the
//! refresh interval and 60 s, with jitter) until it succeeds, and [`Status`] reports its output
//! meanwhile (`/readyz` 503, `action:<path>`). The next render does not bring it back: the file
//! is unchanged by then.
//!
//! To survive a restart (a stop during the action, a crash, a failure the service never got
//! over) each owed output has a marker file beside it, `.<name>.on_change-owed` ([`marker`]),
//! written atomically *before* the output is (so a crash between the write and the action
//! leaves it), removed when the action succeeded, or when the write left the file as it was.
//! At start [`Owed::load`] takes the markers of the configured outputs as owed. A marker holds
//! one fixed sentence, never a value.
//!
//! Limits: the marker of an output removed from the configuration stays; an output whose
//! marker cannot be written (its directory is read-only: then so is the output) is owed in
//! memory only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_common::fsx::{self, Owner};
use tokio::time::Instant;

use crate::config::{Action, Config, Output};
use crate::engine::{self, Status};

/// What a marker holds (existence is what counts).
const MARKER_TEXT: &[u8] = b"gantry-secrets: the on_change action of this output has not succeeded since the file was written; it runs when gantry-secrets starts\n";

/// The marker of the output at `path`: `.<name>.on_change-owed` in the same directory.
pub fn marker(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.on_change-owed"))
}

/// The action an output calls for: its own `on_change`, else the top-level one.
pub fn action_of<'a>(config: &'a Config, o: &'a Output) -> &'a Action {
    o.on_change.as_ref().unwrap_or(&config.on_change)
}

/// The outputs whose action is owed, and when it is tried again.
#[derive(Debug, Default)]
pub struct Owed {
    /// Per output (config order): its marker, when it has an action.
    markers: Vec<Option<PathBuf>>,
    /// Paths of the outputs, for the status.
    paths: Vec<String>,
    owed: BTreeSet<usize>,
    failures: u32,
    at: Option<Instant>,
}

impl Owed {
    /// Nothing owed yet, for the outputs of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            markers: config
                .outputs
                .iter()
                .map(|o| (*action_of(config, o) != Action::None).then(|| marker(&o.path)))
                .collect(),
            paths: config
                .outputs
                .iter()
                .map(|o| o.path.display().to_string())
                .collect(),
            ..Self::default()
        }
    }

    /// At start: the actions owed from before (their markers exist). A marker of an output that
    /// has no action any more is removed.
    pub fn load(config: &Config) -> Self {
        let mut owed = Self::new(config);
        for (i, o) in config.outputs.iter().enumerate() {
            let m = marker(&o.path);
            let _ = fsx::remove_leftover_temps_of(&m);
            if !m.exists() {
                continue;
            }
            if owed.markers[i].is_some() {
                tracing::warn!(output = %o.path.display(), "the on_change action of this output did not succeed before the last stop: it runs now");
                owed.owed.insert(i);
            } else {
                remove_marker(&m);
            }
        }
        owed
    }

    /// Whether no action is owed.
    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    /// When the owed actions are tried again, if one failed.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// Before output `i` may be written: its marker, unless it has no action or is owed
    /// already. `true` when a marker was written now (for [`Owed::written`]).
    pub(super) fn before_write(&mut self, i: usize) -> bool {
        let Some(Some(m)) = self.markers.get(i) else {
            return false;
        };
        if self.owed.contains(&i) {
            return false;
        }
        match fsx::write_atomic(m, MARKER_TEXT, 0o600, Owner::default()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(output = %self.paths[i], error = %e, "cannot write the marker of a pending on_change action (a restart before the action succeeds would not run it)");
                false
            }
        }
    }

    /// After the write of output `i`: its action is owed when the file was written; a marker
    /// written for nothing ([`Owed::before_write`]) goes.
    pub(super) fn written(&mut self, i: usize, wrote: bool, marked: bool) {
        if wrote {
            if self.markers.get(i).is_some_and(Option::is_some) {
                self.owed.insert(i);
            }
        } else if marked && let Some(Some(m)) = self.markers.get(i) {
            remove_marker(m);
        }
    }

    /// The owed actions, each distinct action once, with the outputs that call for it (the
    /// first one names it in the logs).
    pub(super) fn due<'a>(&self, config: &'a Config) -> Vec<(&'a Output, &'a Action, Vec<usize>)> {
        let mut due: Vec<(&Output, &Action, Vec<usize>)> = Vec::new();
        for &i in &self.owed {
            let Some(o) = config.outputs.get(i) else {
                continue;
            };
            let action = action_of(config, o);
            match due.iter_mut().find(|(_, a, _)| *a == action) {
                Some((_, _, outputs)) => outputs.push(i),
                None => due.push((o, action, vec![i])),
            }
        }
        due
    }

    /// The action of `outputs` succeeded: no longer owed, markers removed.
    pub(super) fn done(&mut self, outputs: &[usize]) {
        for i in outputs {
            if self.owed.remove(i)
                && let Some(Some(m)) = self.markers.get(*i)
            {
                remove_marker(m);
            }
        }
    }

    /// After a pass over the owed actions: while one is still owed the next try is scheduled
    /// with the backoff, else the retry stops; `status` learns which outputs' actions are owed.
    pub(super) fn record(&mut self, status: &Status, refresh: Duration) {
        if self.owed.is_empty() {
            if self.failures > 0 {
                tracing::info!(
                    after_failures = self.failures,
                    "every on_change action done"
                );
            }
            self.failures = 0;
            self.at = None;
        } else {
            self.failures = self.failures.saturating_add(1);
            let wait = engine::backoff(self.failures, refresh);
            tracing::warn!(
                owed = self.owed.len(),
                attempt = self.failures,
                retry_in_ms = wait.as_millis() as u64,
                "on_change actions failed, trying them again"
            );
            self.at = Some(Instant::now() + wait);
        }
        status.set_owed_actions(self.owed.iter().map(|i| self.paths[*i].clone()).collect());
    }
}

fn remove_marker(m: &Path) {
    match std::fs::remove_file(m) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(marker = %m.display(), error = %e, "cannot remove the marker of a done on_change action (the action runs again at the next start)")
        }
    }
}
