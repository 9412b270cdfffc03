//! What the rollouts of this process are doing now, per stack: how many service tasks are in
//! flight, and how many of them only watch a canary step.
//!
//! Design: counters behind one mutex, moved by guards ([`Busy`]) that the scheduler holds
//! around each service's task and the canary around its watch. The daemon reads it when it
//! stops: a job whose only work in flight is a canary watching its step is left to the next
//! daemon (it resumes the canary there); one with anything else in flight (a stop-first
//! replacement, a one-off job of the same deploy) is waited for, as any job.
//!
//! Limits: only what runs inside this process is seen.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Per stack, the service tasks in flight and those watching a canary step.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Mutex<BTreeMap<String, Counts>>>);

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    tasks: usize,
    watching: usize,
}

/// Counts one task (or one canary watch) of a stack while it lives.
#[derive(Debug)]
pub(super) struct Busy {
    activity: Activity,
    stack: String,
    watch: bool,
}

impl Activity {
    fn counts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Counts>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(&self, stack: &str, watch: bool) -> Busy {
        let mut counts = self.counts();
        let c = counts.entry(stack.to_owned()).or_default();
        if watch {
            c.watching += 1;
        } else {
            c.tasks += 1;
        }
        Busy {
            activity: self.clone(),
            stack: stack.to_owned(),
            watch,
        }
    }

    /// A service task of `stack` in flight, until the guard drops.
    pub(super) fn task(&self, stack: &str) -> Busy {
        self.enter(stack, false)
    }

    /// A canary of `stack` watching its step (inside its service's task), until the guard
    /// drops.
    pub(super) fn watch(&self, stack: &str) -> Busy {
        self.enter(stack, true)
    }

    /// Whether every service task of `stack` in flight is a canary watching its step (and at
    /// least one is).
    pub fn only_watching(&self, stack: &str) -> bool {
        self.counts()
            .get(stack)
            .is_some_and(|c| c.watching > 0 && c.tasks <= c.watching)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut counts = self.activity.counts();
        if let Some(c) = counts.get_mut(&self.stack) {
            if self.watch {
                c.watching = c.watching.saturating_sub(1);
            } else {
                c.tasks = c.tasks.saturating_sub(1);
            }
            if c.tasks == 0 && c.watching == 0 {
                counts.remove(&self.stack);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Activity;

    #[test]
    fn a_stack_is_only_watching_while_its_one_task_in_flight_watches() {
        let a = Activity::default();
        assert!(!a.only_watching("app"));
        let canary = a.task("app");
        assert!(!a.only_watching("app"), "before the watch");
        let watch = a.watch("app");
        assert!(a.only_watching("app"));
        let other = a.task("app");
        assert!(
            !a.only_watching("app"),
            "a stop-first replacement beside it"
        );
        drop(other);
        assert!(a.only_watching("app"));
        assert!(!a.only_watching("shop"));
        drop(watch);
        drop(canary);
        assert!(!a.only_watching("app"));
        assert!(a.0.lock().unwrap().is_empty());
    }
}
