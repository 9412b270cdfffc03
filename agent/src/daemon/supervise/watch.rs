//! Env-file (and opted-in compose-file) watching: a changed file redeploys its stack.
//!
//! What: for every stack with a good release, the env files its services read (`env_file`, as
//! the release recorded them with their hashes) and, when the stack opts in (`watch_compose_files`), its compose files
//! are watched through their directories (so an atomic rename by `gantry-secrets run` is seen).
//! A change, once `debounce` has passed without another, is compared with the release: env-file
//! content against the hashes the release recorded; compose files against their content when
//! the daemon first saw the release. On a real change the stack is redeployed as a job from the
//! release's files and variables: the normal health-gated rollout, and only services whose
//! merged environment changed are recreated (the hash covers it).
//!
//! Design: a stack that does not opt in to compose-file changes is redeployed only if, apart
//! from `environment`, the reloaded model equals the release's; otherwise the change is
//! refused with a warning naming the stack (someone edited the compose files: deploy them).
//!
//! Env-file changes are applied here only, by the stack's policy: supervision's drift check
//! leaves them alone ([`crate::deploy::env_only`], `supervise::drift`), and so does a
//! reconcile another service's drift started.
//!
//! A watched directory that is replaced (removed and made again, or a symlink to it swapped to
//! another directory: inotify keeps watching the old one) is watched again ([`Dirs`]): after
//! the debounce when its removal is seen, else at the next refresh (a job's end, or every
//! `resync_interval`); its stacks are then compared with their releases as after a change.
//!
//! Limits: interpolation uses the release's `--var`s and the daemon's environment (the caller's
//! shell environment at deploy time is not recorded); profiles are those of the release's
//! services; `--env-file` interpolation files are not recorded and so not reused; an optional
//! env file that did not exist at deploy time is not recorded, so its creation is not seen; a
//! symlink swap is only seen at the next refresh (nothing in the watched directory changes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::compose::{LoadOptions, Project};
use crate::daemon::jobs::{Job, JobKind, Origin};
use crate::deploy::DeployRequest;
use crate::deploy::apply::project_from_release;
use crate::ledger::Release;

use super::Supervisor;

/// What is watched for one stack.
#[derive(Debug, Clone, Default)]
struct Watched {
    seq: u64,
    env_files: BTreeSet<PathBuf>,
    compose_files: BTreeSet<PathBuf>,
    /// Hash of the compose files when this release was first seen.
    compose_hash: Option<String>,
}

impl Watched {
    /// Whether a file watched for the stack lies in `dir`.
    fn in_dir(&self, dir: &Path) -> bool {
        self.env_files
            .iter()
            .chain(self.compose_files.iter())
            .any(|f| f.parent() == Some(dir))
    }
}

/// The directories watched, each with the identity (device, inode) it had when its watch was
/// added, and the ones wanted that could not be watched (not there).
#[derive(Debug, Default)]
struct Dirs {
    watched: BTreeMap<PathBuf, (u64, u64)>,
    missing: BTreeSet<PathBuf>,
}

/// The device and inode of the directory `path` names now (a symlink followed).
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Dirs {
    /// Takes in an event about `path`: when it says a watched directory was removed (its watch
    /// ended with it), the next sync watches whatever is there again, even a new directory
    /// that was given the old one's inode. Returns whether `path` is a watched directory.
    fn event(&mut self, kind: &notify::EventKind, path: &Path) -> bool {
        if !self.watched.contains_key(path) {
            return false;
        }
        if matches!(kind, notify::EventKind::Remove(_)) {
            self.watched.remove(path);
            self.missing.insert(path.to_owned());
        }
        true
    }

    /// Watches `wanted` and only it: drops the others, adds the new ones, and adds again a
    /// directory that is no longer the one watched (replaced: inotify follows the old inode,
    /// which gets no more writes; or removed, as [`Dirs::event`] saw). Returns the directories watched again after they were
    /// replaced or missing: what they hold may have changed unseen.
    fn sync(&mut self, wanted: &BTreeSet<PathBuf>, watcher: &mut impl Watcher) -> Vec<PathBuf> {
        self.missing.retain(|d| wanted.contains(d));
        let mut lost = std::mem::take(&mut self.missing);
        for (d, id) in std::mem::take(&mut self.watched) {
            if !wanted.contains(&d) {
                let _ = watcher.unwatch(&d);
            } else if identity(&d) != Some(id) {
                tracing::info!(dir = %d.display(), "a watched directory was replaced; watching it again");
                let _ = watcher.unwatch(&d);
                lost.insert(d);
            } else {
                self.watched.insert(d, id);
            }
        }
        for d in wanted {
            if self.watched.contains_key(d) {
                continue;
            }
            // Before the watch: a replacement in between is seen at the next sync.
            let Some(id) = identity(d) else {
                tracing::debug!(dir = %d.display(), "a directory of env or compose files is not there");
                self.missing.insert(d.clone());
                continue;
            };
            match watcher.watch(d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(dir = %d.display(), "watching");
                    self.watched.insert(d.clone(), id);
                }
                Err(e) => {
                    tracing::warn!(dir = %d.display(), error = %e, "cannot watch a directory of env or compose files");
                    self.missing.insert(d.clone());
                }
            }
        }
        lost.into_iter()
            .filter(|d| self.watched.contains_key(d))
            .collect()
    }
}

/// Runs the watcher until the task is dropped.
pub async fn run(sup: Arc<Supervisor>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<notify::Event>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && may_change_content(&ev.kind)
        {
            let _ = tx.send(ev);
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch files (inotify); env-file changes will not redeploy");
            std::future::pending::<()>().await;
            return;
        }
    };
    let mut stacks: BTreeMap<String, Watched> = BTreeMap::new();
    let mut dirs = Dirs::default();
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let mut finished = sup.jobs.finished();
    let mut tick = tokio::time::interval(sup.config.resync_interval);
    // A watched directory itself went: the watches are looked at again with the next check.
    let mut dirs_went = false;
    let debounce = sup.config.debounce;
    let mut refresh_all = |stacks: &mut BTreeMap<String, Watched>,
                           dirs: &mut Dirs,
                           pending: &mut HashMap<String, Instant>| {
        for dir in refresh(&sup, stacks, dirs, &mut watcher) {
            for (stack, _) in stacks.iter().filter(|(_, w)| w.in_dir(&dir)) {
                pending.insert(stack.clone(), Instant::now() + debounce);
            }
        }
    };
    refresh_all(&mut stacks, &mut dirs, &mut pending);
    loop {
        let next = pending.values().min().copied();
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                for p in ev.paths {
                    if dirs.event(&ev.kind, &p) {
                        tracing::debug!(dir = %p.display(), "a watched directory changed itself");
                        dirs_went = true;
                        for (stack, _) in stacks.iter().filter(|(_, w)| w.in_dir(&p)) {
                            pending.insert(stack.clone(), Instant::now() + debounce);
                        }
                    }
                    for (stack, w) in &stacks {
                        if w.env_files.contains(&p) || w.compose_files.contains(&p) {
                            tracing::debug!(stack = %stack, file = %p.display(), "watched file changed");
                            pending.insert(stack.clone(), Instant::now() + sup.config.debounce);
                        }
                    }
                }
            }
            _ = sleep => {
                if std::mem::take(&mut dirs_went) {
                    refresh_all(&mut stacks, &mut dirs, &mut pending);
                }
                let now = Instant::now();
                let due: Vec<String> = pending.iter().filter(|(_, t)| **t <= now).map(|(s, _)| s.clone()).collect();
                for stack in due {
                    pending.remove(&stack);
                    if sup.paused(&stack) {
                        pending.insert(stack, now + sup.config.debounce);
                        continue;
                    }
                    if let Some(w) = stacks.get(&stack) {
                        changed(&sup, &stack, w);
                    }
                }
            }
            _ = finished.changed() => refresh_all(&mut stacks, &mut dirs, &mut pending),
            _ = tick.tick() => refresh_all(&mut stacks, &mut dirs, &mut pending),
        }
    }
}

/// Whether an inotify event can mean new content. Opening or reading a file (as this watcher
/// does when it hashes one, or a deploy when it loads it) is not a change: counting it made
/// every check of a file schedule the next one, forever.
fn may_change_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn hash_files(files: &BTreeSet<PathBuf>) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(std::fs::read(f).unwrap_or_default());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn file_hash(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| hex::encode(Sha256::digest(&b)))
}

/// Recomputes what to watch from the ledger and adjusts the inotify watches; returns the
/// directories watched again after they were replaced or missing ([`Dirs::sync`]).
fn refresh(
    sup: &Supervisor,
    stacks: &mut BTreeMap<String, Watched>,
    dirs: &mut Dirs,
    watcher: &mut notify::RecommendedWatcher,
) -> Vec<PathBuf> {
    let mut next = BTreeMap::new();
    for stack in sup.refresh_managed() {
        let policy = sup.config.policy(&stack);
        if !policy.watch_env_files && !policy.watch_compose_files {
            continue;
        }
        let Some(release) = sup.last_good(&stack) else {
            continue;
        };
        let mut w = Watched {
            seq: release.seq,
            ..Watched::default()
        };
        if policy.watch_env_files {
            // The release records every env file its services read (path → hash).
            w.env_files = release.env_files.keys().map(PathBuf::from).collect();
        }
        if policy.watch_compose_files {
            w.compose_files = release.files.iter().cloned().collect();
            w.compose_hash = match stacks.get(&stack) {
                Some(old) if old.seq == release.seq => old.compose_hash.clone(),
                _ => Some(hash_files(&w.compose_files)),
            };
        }
        next.insert(stack, w);
    }
    let wanted: BTreeSet<PathBuf> = next
        .values()
        .flat_map(|w| w.env_files.iter().chain(w.compose_files.iter()))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    let again = dirs.sync(&wanted, watcher);
    *stacks = next;
    again
}

/// Whether the env files (or opted-in compose files) differ from the release; redeploys if so.
fn changed(sup: &Arc<Supervisor>, stack: &str, w: &Watched) {
    let Some(release) = sup.last_good(stack) else {
        return;
    };
    let env_changed: Vec<String> = w
        .env_files
        .iter()
        .filter(|p| file_hash(p) != release.env_files.get(&p.display().to_string()).cloned())
        .map(|p| p.display().to_string())
        .collect();
    let compose_changed = w.compose_hash.is_some()
        && w.compose_hash.as_deref() != Some(hash_files(&w.compose_files).as_str());
    if env_changed.is_empty() && !compose_changed {
        return;
    }
    let req = request_from_release(&release, &sup.config.environment);
    if !compose_changed && !sup.config.policy(stack).watch_compose_files {
        let same = match (
            sup.jobs.deployer().load(&req),
            project_from_release(&release),
        ) {
            (Ok(new), Ok(old)) => without_environment(&new) == without_environment(&old),
            _ => false,
        };
        if !same {
            tracing::warn!(stack = %stack, release = %release.id(), files = ?env_changed, "env files changed but so did the compose model (and watch_compose_files is off): not redeploying (hint: gantry deploy {stack})");
            return;
        }
    }
    tracing::info!(stack = %stack, release = %release.id(), env_files = ?env_changed, compose_files_changed = compose_changed, "watched files changed; redeploying");
    sup.metrics
        .inc("gantry_file_redeploys_total", &[("stack", stack)]);
    let job = Job {
        kind: JobKind::Deploy(req),
        origin: Origin::FileChange,
    };
    let (_, handle) = sup.jobs.submit(job, None);
    let stack = stack.to_owned();
    tokio::spawn(async move {
        if let Ok(r) = handle.await
            && r.exit_code() != crate::ExitCode::Ok
        {
            tracing::error!(stack = %stack, outcome = %r.outcome, error = r.error.as_deref().unwrap_or(""), "redeploy after a file change failed");
        }
    });
}

/// A deploy of the release's files with its variables over `environment` (the daemon's).
fn request_from_release(
    release: &Release,
    environment: &BTreeMap<String, String>,
) -> DeployRequest {
    let mut environment = environment.clone();
    environment.extend(release.variables.clone());
    let profiles: BTreeSet<String> = project_from_release(release)
        .map(|p| {
            p.services
                .values()
                .flat_map(|s| s.profiles.iter().cloned())
                .collect()
        })
        .unwrap_or_default();
    let load = LoadOptions {
        files: release.files.clone(),
        project_name: Some(release.stack.clone()),
        project_dir: None,
        env_files: Vec::new(),
        profiles: profiles.into_iter().collect(),
        environment,
    };
    let mut req = DeployRequest::new(&release.stack, load);
    req.variables = release.variables.clone();
    req.lock_wait = Duration::from_secs(600);
    req
}

fn without_environment(p: &Project) -> serde_json::Value {
    let mut p = p.clone();
    for s in p.services.values_mut() {
        s.environment.clear();
    }
    serde_json::to_value(&p).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
    };

    use super::{Dirs, may_change_content};

    #[test]
    fn reads_are_not_changes_writes_and_renames_are() {
        for read in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Any),
        ] {
            assert!(!may_change_content(&read), "{read:?}");
        }
        for change in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
        ] {
            assert!(may_change_content(&change), "{change:?}");
        }
    }

    type Events = std::sync::mpsc::Receiver<notify::Event>;

    /// Hands the events so far to `dirs`, as the watcher's loop does (waiting up to 200 ms
    /// for the first).
    fn drain(events: &Events, dirs: &mut Dirs) {
        let wait = std::time::Duration::from_millis(200);
        while let Ok(ev) = events.recv_timeout(wait) {
            for p in &ev.paths {
                dirs.event(&ev.kind, p);
            }
        }
    }

    /// Whether a write of `file` is seen within 2 s (events before it are dropped).
    fn seen(events: &Events, file: &std::path::Path) -> bool {
        while events.try_recv().is_ok() {}
        std::fs::write(file, "X=1\n").unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match events.recv_timeout(left) {
                Ok(ev) if ev.paths.iter().any(|p| p == file) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// A watched directory removed and made again, or a symlink to it swapped to another
    /// directory: the next sync watches it again (and says so), and writes there are seen.
    #[test]
    fn a_replaced_directory_is_watched_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                let _ = tx.send(ev);
            }
        })
        .unwrap();
        let dir = tmp.path().join("secrets");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("app.env");
        let mut dirs = Dirs::default();
        let wanted = std::collections::BTreeSet::from([dir.clone()]);
        assert!(dirs.sync(&wanted, &mut watcher).is_empty());
        assert!(seen(&events, &file));

        // rm -r + mkdir (the new directory may well get the old one's inode).
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        drain(&events, &mut dirs);
        assert_eq!(dirs.sync(&wanted, &mut watcher), vec![dir.clone()]);
        assert!(
            seen(&events, &file),
            "a write in the new directory is not seen"
        );
        assert!(dirs.sync(&wanted, &mut watcher).is_empty());

        // Gone for a while, then back.
        std::fs::remove_dir_all(&dir).unwrap();
        drain(&events, &mut dirs);
        assert!(dirs.sync(&wanted, &mut watcher).is_empty());
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(dirs.sync(&wanted, &mut watcher), vec![dir.clone()]);
        assert!(seen(&events, &file));

        // A symlink swapped to another directory (ln -s v2 tmp && mv -T tmp link).
        let (v1, v2) = (tmp.path().join("v1"), tmp.path().join("v2"));
        std::fs::create_dir(&v1).unwrap();
        std::fs::create_dir(&v2).unwrap();
        let link = tmp.path().join("current");
        std::os::unix::fs::symlink(&v1, &link).unwrap();
        let wanted = std::collections::BTreeSet::from([link.clone()]);
        assert!(dirs.sync(&wanted, &mut watcher).is_empty());
        let via_link = link.join("app.env");
        assert!(seen(&events, &via_link));
        let next = tmp.path().join("next");
        std::os::unix::fs::symlink(&v2, &next).unwrap();
        std::fs::rename(&next, &link).unwrap();
        assert_eq!(dirs.sync(&wanted, &mut watcher), vec![link.clone()]);
        assert!(
            seen(&events, &via_link),
            "a write behind the swapped link is not seen"
        );
    }
}
