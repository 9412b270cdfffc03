//! The notify task: the watchdog ping interval taken from systemd's environment, and the loop
//! that pings at it (on tokio's paused clock) while every daemon loop lives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

const OWN: u32 = 4242;

fn interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    watchdog_ping_interval(usec, pid, OWN)
}

#[test]
fn pings_at_half_of_the_watchdog_period() {
    assert_eq!(
        interval(Some("2000000"), None),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        interval(Some("30000000"), None),
        Some(Duration::from_secs(15))
    );
    // An odd number of microseconds is halved exactly, not rounded to zero.
    assert_eq!(interval(Some("1"), None), Some(Duration::from_nanos(500)));
}

#[test]
fn no_watchdog_asked_for_means_no_pings() {
    assert_eq!(interval(None, None), None);
    assert_eq!(interval(Some("0"), None), None);
}

#[test]
fn a_watchdog_period_that_is_not_a_number_means_no_pings() {
    for bogus in [
        "",
        "abc",
        "-1",
        "1.5",
        "2s",
        " 2000000",
        "18446744073709551616",
    ] {
        assert_eq!(interval(Some(bogus), None), None, "WATCHDOG_USEC={bogus:?}");
    }
}

#[test]
fn watchdog_pid_must_be_the_daemons_own() {
    let own = OWN.to_string();
    assert_eq!(
        interval(Some("2000000"), Some(&own)),
        Some(Duration::from_secs(1))
    );
    assert_eq!(interval(Some("2000000"), Some("1")), None);
    assert_eq!(interval(Some("2000000"), Some("not-a-pid")), None);
    assert_eq!(interval(Some("2000000"), Some("")), None);
    // The pid being ours does not make a missing or zero period a watchdog.
    assert_eq!(interval(None, Some(&own)), None);
    assert_eq!(interval(Some("0"), Some(&own)), None);
}

/// What the notify loop sent, each with the paused clock's time since the test began.
struct Recorder {
    start: tokio::time::Instant,
    sent: Mutex<Vec<(Duration, String)>>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            sent: Mutex::default(),
        }
    }

    fn record(&self, message: String) {
        let at = self.start.elapsed();
        self.sent.lock().unwrap().push((at, message));
    }

    /// The times of the pings, in whole milliseconds since the test began.
    fn pings(&self) -> Vec<u128> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m == "WATCHDOG=1")
            .map(|(at, _)| at.as_millis())
            .collect()
    }

    /// The status lines sent, with their times in whole milliseconds since the test began.
    fn statuses(&self) -> Vec<(u128, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(at, m)| Some((at.as_millis(), m.strip_prefix("STATUS=")?.to_owned())))
            .collect()
    }
}

impl Notify for Recorder {
    fn send_status(&self, line: &str) {
        self.record(format!("STATUS={line}"));
    }

    fn ping(&self) {
        self.record("WATCHDOG=1".to_owned());
    }
}

/// A daemon loop that runs until the test ends.
fn alive(name: &'static str) -> (&'static str, tokio::task::JoinHandle<()>) {
    (name, tokio::spawn(std::future::pending()))
}

#[tokio::test(start_paused = true)]
async fn pings_at_the_interval_it_is_given() {
    let notifier = Recorder::new();
    let loops = [alive("accept"), alive("watch")];
    let run = notify_loop(&notifier, Some(Duration::from_secs(10)), &loops, || {
        "ready".to_owned()
    });
    // 35 s of the paused clock: ticks at 0, 10, 20 and 30 s.
    let _ = tokio::time::timeout(Duration::from_secs(35), run).await;
    assert_eq!(notifier.pings(), [0, 10_000, 20_000, 30_000]);
    // The status line did not change: sent once.
    assert_eq!(notifier.statuses(), [(0, "ready".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn a_loop_that_ended_stops_the_pings() {
    let notifier = Recorder::new();
    let ends = tokio::spawn(tokio::time::sleep(Duration::from_millis(2500)));
    let loops = [alive("accept"), ("watch", ends)];
    let run = notify_loop(&notifier, Some(Duration::from_secs(1)), &loops, || {
        "ready".to_owned()
    });
    let _ = tokio::time::timeout(Duration::from_millis(5500), run).await;
    // Pings at 0, 1 and 2 s; "watch" ended at 2.5 s: none at 3, 4 or 5 s.
    assert_eq!(notifier.pings(), [0, 1000, 2000]);
    assert!(loops[1].1.is_finished());
}

#[tokio::test(start_paused = true)]
async fn without_a_watchdog_only_status_changes_are_sent() {
    let notifier = Recorder::new();
    let loops = [alive("accept")];
    let line = Arc::new(Mutex::new("starting".to_owned()));
    let run = notify_loop(&notifier, None, &loops, {
        let line = line.clone();
        move || line.lock().unwrap().clone()
    });
    let change = async {
        tokio::time::sleep(Duration::from_secs(7)).await;
        *line.lock().unwrap() = "ready: 1 stack(s)".to_owned();
        std::future::pending::<()>().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(16), async {
        tokio::join!(run, change);
    })
    .await;
    assert_eq!(notifier.pings(), Vec::<u128>::new());
    // Looked at every 5 s (STATUS_EVERY): the change at 7 s is sent at the 10 s tick, and
    // the unchanged line is not sent again at 5 or 15 s.
    assert_eq!(STATUS_EVERY, Duration::from_secs(5));
    assert_eq!(
        notifier.statuses(),
        [
            (0, "starting".to_owned()),
            (10_000, "ready: 1 stack(s)".to_owned())
        ]
    );
}
