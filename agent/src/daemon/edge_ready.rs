//! Readiness after the deploy, applied to the edge switch: a container whose `x-gantry.health`
//! probe fails is taken out of its service's published ports until it passes again.
//!
//! Design: supervision reports each change ([`ReadinessSink`]); this sink keeps the set of
//! containers not ready and rebuilds the stack's routes without them ([`sync_edge_except`]),
//! in a task of its own. A stack a deploy holds is left alone: the rollout owns its routes
//! then, and rebuilds them when it ends.
//!
//! Limits: a service whose containers all fail keeps them all in rotation (and supervision
//! restarts them). The set lives in memory: a new daemon starts with every container ready
//! until its probes say otherwise.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::deploy::sync_edge_except;
use crate::edge::Edge;
use crate::engine::Engine;
use crate::ledger::Ledger;

use super::supervise::ReadinessSink;

/// Takes unready containers out of the edge switch.
pub struct EdgeReadiness {
    engine: Arc<dyn Engine>,
    edge: Arc<dyn Edge>,
    ledger: Ledger,
    unready: Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for EdgeReadiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeReadiness")
            .field("edge", &self.edge)
            .finish_non_exhaustive()
    }
}

impl EdgeReadiness {
    pub fn new(engine: Arc<dyn Engine>, edge: Arc<dyn Edge>, ledger: Ledger) -> Self {
        Self {
            engine,
            edge,
            ledger,
            unready: Arc::default(),
        }
    }
}

impl ReadinessSink for EdgeReadiness {
    fn readiness_changed(&self, stack: &str, service: &str, container_id: &str, ready: bool) {
        if self.edge.available().is_err() {
            return;
        }
        let changed = {
            let mut set = self.unready.lock().unwrap_or_else(|e| e.into_inner());
            if ready {
                set.remove(container_id)
            } else {
                set.insert(container_id.to_owned())
            }
        };
        if !changed {
            return;
        }
        if self
            .ledger
            .stack(stack)
            .ok()
            .and_then(|s| s.live_holder())
            .is_some()
        {
            tracing::info!(
                stack,
                service,
                container = container_id,
                ready,
                "edge: a deploy holds the stack; its rollout sets the routes"
            );
            return;
        }
        let (engine, edge, unready) =
            (self.engine.clone(), self.edge.clone(), self.unready.clone());
        let (stack, service, container) = (
            stack.to_owned(),
            service.to_owned(),
            container_id.to_owned(),
        );
        tokio::spawn(async move {
            let skip = unready.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match sync_edge_except(engine.as_ref(), edge.as_ref(), &stack, &skip).await {
                Ok(_) => tracing::info!(
                    stack = %stack,
                    service = %service,
                    container = %container,
                    ready,
                    "edge: rotation follows readiness"
                ),
                Err(e) => tracing::warn!(stack = %stack, error = %e, "edge: routes not updated"),
            }
        });
    }
}
