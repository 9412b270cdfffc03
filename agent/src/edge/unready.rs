//! Which containers are out of rotation because their readiness probe fails now.
//!
//! The daemon's supervision probes each container with an `x-gantry.health` probe and records
//! its readiness here; every writer of a stack's routes reads it: the daemon's own syncs and a
//! deploy run by the daemon (its rollout and its end sync), so a replica that is not ready is
//! never put back in rotation by a deploy, not even for the moment before the daemon syncs
//! again. Cheap to clone: the clones share one set. In memory: a new daemon starts with every
//! container ready until its probes say otherwise; a `gantry --local` deploy (another process)
//! has an empty set.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Per stack, the containers (ids) whose readiness probe fails now.
#[derive(Debug, Clone, Default)]
pub struct Unready(Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>);

impl Unready {
    fn sets(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The containers of `stack` not ready now.
    pub fn of(&self, stack: &str) -> BTreeSet<String> {
        self.sets().get(stack).cloned().unwrap_or_default()
    }

    /// Whether any container of `stack` is not ready now.
    pub fn any(&self, stack: &str) -> bool {
        self.sets().contains_key(stack)
    }

    /// Records `container`'s readiness; true when that changed the set.
    pub fn set(&self, stack: &str, container: &str, ready: bool) -> bool {
        let mut sets = self.sets();
        if ready {
            let Some(set) = sets.get_mut(stack) else {
                return false;
            };
            let removed = set.remove(container);
            if set.is_empty() {
                sets.remove(stack);
            }
            removed
        } else {
            sets.entry(stack.to_owned())
                .or_default()
                .insert(container.to_owned())
        }
    }

    /// Forgets the containers of `stack` for which `exists` says no; returns what is left.
    pub fn retain(&self, stack: &str, exists: impl Fn(&str) -> bool) -> BTreeSet<String> {
        let mut sets = self.sets();
        let Some(set) = sets.get_mut(stack) else {
            return BTreeSet::new();
        };
        set.retain(|id| exists(id));
        let left = set.clone();
        if set.is_empty() {
            sets.remove(stack);
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_set_and_an_empty_stack_is_forgotten() {
        let a = Unready::default();
        let b = a.clone();
        assert!(a.set("s", "c1", false));
        assert!(!a.set("s", "c1", false), "already unready");
        assert_eq!(b.of("s"), BTreeSet::from(["c1".to_owned()]));
        assert!(b.any("s") && !b.any("t"));
        assert!(!b.set("t", "c9", true), "nothing to remove");
        assert!(b.set("s", "c2", false));
        assert_eq!(
            a.retain("s", |id| id == "c2"),
            BTreeSet::from(["c2".to_owned()])
        );
        assert!(a.set("s", "c2", true));
        assert!(!a.any("s"));
        assert!(a.of("s").is_empty());
    }
}
