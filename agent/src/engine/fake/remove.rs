//! The fake's container removal, as Docker does it: with its anonymous volumes (`rm -v`) the
//! volumes made for this container go, unless another container uses them; one it mounts by
//! name (inherited) stays. Every removal is recorded with the flag ([`FakeEngine::removals`]).

use super::{FakeEngine, Result, mounts};

impl FakeEngine {
    /// Removes container `id`; with `volumes`, the anonymous volumes made for it.
    pub(super) async fn remove(&self, id: &str, volumes: bool) -> Result<bool> {
        self.gate().await;
        let mut s = self.lock();
        let Some(found) = s.find(id) else {
            return Ok(false);
        };
        let c = s.containers.remove(&found).expect("found above");
        self.events.emit(&c, "destroy");
        s.calls.push(format!("remove {}", c.name));
        s.removals.push((c.name.clone(), volumes));
        if volumes {
            for (target, name) in &c.anonymous_volumes {
                let made_for_it = mounts::fresh(&c.id, target) == *name;
                let used = s
                    .containers
                    .values()
                    .any(|o| o.anonymous_volumes.iter().any(|(_, n)| n == name));
                if made_for_it && !used {
                    s.volumes.remove(name);
                }
            }
        }
        Ok(true)
    }

    /// Every container removed so far, in order, by its name then: (name, whether its
    /// anonymous volumes went with it).
    pub fn removals(&self) -> Vec<(String, bool)> {
        self.lock().removals.clone()
    }
}
