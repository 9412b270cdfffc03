//! The fake engine's Docker events: what its containers do, sent to the streams that follow
//! and kept for `since` as dockerd does.
//!
//! Design: a stream subscribes at its first poll (bollard sends the request then, so that is
//! when dockerd starts following for it): from then on it gets every event that passes its
//! filter and, when the filter has `since`, first the kept events from that time on; with
//! `until` too, only the kept events up to then, and the stream ends (as dockerd's). Docker's
//! filter semantics: lists AND-ed; types, containers and actions OR-ed within their list
//! (`health_status` matches `health_status: healthy`); every label filter must match.
//!
//! Limits: only container events; the last [`KEPT`] are kept, as dockerd keeps them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::engine::{ContainerInfo, Event, EventAction, EventFilter, ObjectType, Result};

/// How many events dockerd keeps for `since` to replay.
pub const KEPT: usize = 256;

#[derive(Debug, Default)]
struct State {
    /// Events with their action as Docker names it, oldest first.
    kept: VecDeque<(String, Event)>,
    streams: Vec<(EventFilter, UnboundedSender<Event>)>,
}

/// The events of one fake engine. Cheap to clone (one shared state).
#[derive(Debug, Default, Clone)]
pub(super) struct Hub(Arc<Mutex<State>>);

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Container `c`'s event `action` (as Docker names it: `die`, `health_status: healthy`),
    /// now, with the labels, `name`, `image` and (`die`) `exitCode` as attributes.
    pub(super) fn emit(&self, c: &ContainerInfo, action: &str) {
        let mut attributes = c.labels.clone();
        attributes.insert("name".into(), c.name.clone());
        attributes.insert("image".into(), c.image.clone());
        if action == "die" {
            let code = c.state.exit_code.unwrap_or(0);
            attributes.insert("exitCode".into(), code.to_string());
        }
        let e = Event {
            object_type: ObjectType::Container,
            action: EventAction::parse(action),
            id: c.id.clone(),
            attributes,
            time: SystemTime::now(),
        };
        let mut s = self.lock();
        s.streams.retain(|(f, tx)| {
            !tx.is_closed() && (!passes(f, action, &e) || tx.send(e.clone()).is_ok())
        });
        s.kept.push_back((action.to_owned(), e));
        if s.kept.len() > KEPT {
            s.kept.pop_front();
        }
    }

    /// The events passing `filter`, from the stream's first poll on.
    pub(super) fn stream(&self, filter: &EventFilter) -> BoxStream<'static, Result<Event>> {
        let (hub, filter) = (self.clone(), filter.clone());
        stream::once(async move {
            let mut s = hub.lock();
            let since: Vec<Event> = s
                .kept
                .iter()
                .filter(|(action, e)| {
                    filter.since.is_some_and(|t| e.time >= t)
                        && filter.until.is_none_or(|t| e.time <= t)
                        && passes(&filter, action, e)
                })
                .map(|(_, e)| e.clone())
                .collect();
            if filter.until.is_some() {
                return stream::iter(since).boxed();
            }
            let (tx, rx) = unbounded_channel();
            s.streams.push((filter, tx));
            let live = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
            stream::iter(since).chain(live).boxed()
        })
        .flatten()
        .map(Ok)
        .boxed()
    }
}

/// Whether `e` (of `action`) passes `f` (`since` aside).
fn passes(f: &EventFilter, action: &str, e: &Event) -> bool {
    let label = |l: &String| match l.split_once('=') {
        Some((k, v)) => e.label(k) == Some(v),
        None => e.attributes.contains_key(l),
    };
    let prefix = action.split(':').next().unwrap_or(action);
    (f.types.is_empty() || f.types.contains(&e.object_type))
        && f.labels.iter().all(label)
        && (f.containers.is_empty()
            || f.containers
                .iter()
                .any(|c| *c == e.id || e.name() == Some(c)))
        && (f.actions.is_empty() || f.actions.iter().any(|a| a == action || a == prefix))
}
