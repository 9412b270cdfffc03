//! The supervisor's heal state on disk (`<state-dir>/heal.json`), so that restarting the daemon
//! (systemd after a crash or a watchdog timeout, an upgrade) neither gives a container it gave
//! up on a fresh restart budget, nor forgets a crash loop, nor leaves stopped a container a
//! heal stopped and had not started again (`stopped_by_heal`, written before the stop).
//!
//! Design: budgets count uses on the monotonic clock; on disk each use is a wall-clock time in
//! milliseconds since the epoch, converted both ways against "now" on each clock, so a use ten
//! minutes old is still ten minutes old after a restart. The file is replaced atomically (0600)
//! when the state changes; one that cannot be read is set aside as `heal.json.unreadable` and
//! the daemon starts with fresh budgets, saying so.
//!
//! Limits: a wall clock stepped while the daemon was down shifts the restored uses by the step.
//! A daemon older than `stopped_by_heal` sets aside a file written during a heal (the key is
//! only written while true).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Budget;

/// Where the heal state lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("heal.json")
}

/// Milliseconds since the epoch, now.
pub fn wall_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One container's heal state, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedTrack {
    pub stack: String,
    pub service: String,
    pub id: String,
    pub restarts: u64,
    pub gave_up: bool,
    pub crash_looping: bool,
    /// Restarts within the window, ms since the epoch.
    pub restarts_at: Vec<u64>,
    /// Deaths within the window, ms since the epoch.
    pub deaths_at: Vec<u64>,
    /// A heal stopped it and has not started it again (written only while true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_by_heal: bool,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// By container name (a heal keeps the name and the id).
    pub containers: BTreeMap<String, SavedTrack>,
    /// Reconcile uses per stack, ms since the epoch.
    pub reconciles: BTreeMap<String, Vec<u64>>,
}

impl Budget {
    /// The uses still in the window as wall-clock times.
    pub(super) fn wall_times(&mut self, now: Instant, wall_now: u64) -> Vec<u64> {
        self.remaining(now);
        self.used
            .iter()
            .map(|t| wall_now.saturating_sub(now.duration_since(*t).as_millis() as u64))
            .collect()
    }

    /// A budget with the saved uses that still fall in the window ending now.
    pub(super) fn from_wall(
        max: u32,
        window: Duration,
        uses: &[u64],
        now: Instant,
        wall_now: u64,
    ) -> Self {
        let mut used: Vec<Instant> = uses
            .iter()
            .filter_map(|t| {
                let age = Duration::from_millis(wall_now.saturating_sub(*t));
                (age < window).then(|| now.checked_sub(age)).flatten()
            })
            .collect();
        used.sort();
        Self {
            max,
            window,
            used: VecDeque::from(used),
        }
    }
}

/// Reads the saved state; a missing file is an empty state. An unreadable one is moved aside
/// (nothing is lost) and reported as the error.
pub fn load(path: &Path) -> Result<Saved, String> {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&body).map_err(|e| {
        let aside = path.with_extension("json.unreadable");
        let _ = std::fs::rename(path, &aside);
        format!(
            "{} is not valid heal state ({e}); moved to {}",
            path.display(),
            aside.display()
        )
    })
}

/// Replaces the saved state (atomically, 0600; unchanged content is not rewritten).
pub fn store(path: &Path, saved: &Saved) -> Result<(), String> {
    let body = serde_json::to_vec_pretty(saved).map_err(|e| e.to_string())?;
    gantry_common::fsx::write_atomic_if_changed(
        path,
        &body,
        0o600,
        gantry_common::fsx::Owner::default(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budgets_survive_the_round_trip_through_wall_clock_times() {
        let window = Duration::from_secs(600);
        let mut b = Budget::new(3, window);
        let start = Instant::now();
        b.take(start).unwrap();
        tokio::time::advance(Duration::from_secs(300)).await;
        b.take(Instant::now()).unwrap();
        let wall = 1_800_000_000_000;
        let saved = b.wall_times(Instant::now(), wall);
        assert_eq!(saved, vec![wall - 300_000, wall]);

        // A "restart" 100 s later: both uses still count, the first leaves the window 200 s on.
        tokio::time::advance(Duration::from_secs(100)).await;
        let mut back = Budget::from_wall(3, window, &saved, Instant::now(), wall + 100_000);
        assert_eq!(back.remaining(Instant::now()), 1);
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(back.remaining(Instant::now()), 2);

        // Uses older than the window are dropped on the way in.
        let old = Budget::from_wall(3, window, &[wall - 700_000], Instant::now(), wall)
            .remaining(Instant::now());
        assert_eq!(old, 3);
    }

    #[test]
    fn the_file_round_trips_and_a_bad_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        assert_eq!(load(&path).unwrap(), Saved::default());
        let mut saved = Saved::default();
        saved.containers.insert(
            "shop-web-1".into(),
            SavedTrack {
                stack: "shop".into(),
                service: "web".into(),
                id: "abc".into(),
                restarts: 5,
                gave_up: true,
                crash_looping: false,
                restarts_at: vec![1, 2],
                deaths_at: vec![],
                stopped_by_heal: true,
            },
        );
        saved.reconciles.insert("shop".into(), vec![3]);
        store(&path, &saved).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap(), saved);

        std::fs::write(&path, b"{\"containers\": 7}").unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.contains("heal.json") && err.contains("unreadable"),
            "{err}"
        );
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(path.with_extension("json.unreadable")).unwrap(),
            b"{\"containers\": 7}"
        );
    }
}
