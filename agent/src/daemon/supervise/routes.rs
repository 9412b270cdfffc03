//! What supervision tells the edge switch about the containers behind it, so that a stack's
//! routes never point at an address its container no longer has.
//!
//! What: Docker gives a container that starts again (its restart policy after a crash, a heal's
//! stop and start, a dockerd restart) whatever address is free on its network then, not
//! necessarily the one it had: the switch's DNAT would keep sending new connections to the old
//! address (nothing there, or another container) until the next deploy. So supervision reports
//! to a [`RouteSink`]:
//! - each `start` and `die` of a container carrying [`crate::edge::LABEL`], heals included
//!   ([`RouteSink::container_moved`]);
//! - each resync's listing of a stack ([`RouteSink::stack_listed`]), which catches up with
//!   events missed while the event stream was down.
//!
//! Design: supervision only reports; the sink (the daemon's `edge_ready::EdgeReadiness`)
//! decides whether the routes are stale, debounces, and leaves a stack a deploy holds alone.
//!
//! The sink's sync takes the stack's ledger lock as [`edge_sync_holder`]: supervision does not
//! count that as a deploy holding the stack ([`is_edge_sync`]), so a death or a probe failure
//! in those milliseconds still counts.
//!
//! Limits: the sink is [`NoRoutes`] until someone sets another
//! ([`Supervisor::set_route_sink`]).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::engine::ContainerInfo;
use crate::ledger::Holder;

use super::Supervisor;

/// Where supervision reports what may have moved a stack's containers behind the switch.
pub trait RouteSink: Send + Sync {
    /// `container` (a name) of `stack`'s `service`, behind the switch, started or died: its
    /// address may have changed.
    fn container_moved(&self, stack: &str, service: &str, container: &str);

    /// A resync listed `stack`'s containers (stopped ones included).
    fn stack_listed(&self, stack: &str, containers: &[ContainerInfo]);

    /// Takes `container` (an id) of `stack` out of the switch's rotation now, for a heal that
    /// holds the stack and is about to run its `pre_stop` hooks and stop it (as a rollout
    /// takes a container out before it drains and stops). Its start puts it back
    /// ([`Self::container_moved`]).
    fn leave<'a>(&'a self, stack: &'a str, container: &'a str) -> BoxFuture<'a, ()>;
}

/// What the lock file names while this daemon rebuilds a stack's routes.
const EDGE_SYNC: &str = "gantryd edge sync";

/// The holder of `stack`'s lock while this daemon rebuilds its routes.
pub fn edge_sync_holder(stack: &str) -> Holder {
    Holder::brief(&format!("{EDGE_SYNC} {stack}"))
}

/// Whether `holder` is this daemon rebuilding routes (not a deploy).
pub fn is_edge_sync(holder: &Holder) -> bool {
    holder.pid == std::process::id() && holder.command.starts_with(EDGE_SYNC)
}

/// The default sink: nothing follows.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRoutes;

impl RouteSink for NoRoutes {
    fn container_moved(&self, _: &str, _: &str, _: &str) {}
    fn stack_listed(&self, _: &str, _: &[ContainerInfo]) {}
    fn leave<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

impl Supervisor {
    /// Where moves of containers behind the switch go from now on.
    pub fn set_route_sink(&self, sink: Arc<dyn RouteSink>) {
        *self.routes.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    pub(super) fn route_sink(&self) -> Arc<dyn RouteSink> {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
