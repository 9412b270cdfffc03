//! Atomic writes, leftover temp files, bounded reads, and the comparison of
//! `write_atomic_if_changed`.

use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn writes_with_mode_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.env");
    write_atomic(&p, b"A=1\n", 0o600, Owner::default()).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"A=1\n");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!write_atomic_if_changed(&p, b"A=1\n", 0o600, Owner::default()).unwrap());
    assert!(write_atomic_if_changed(&p, b"A=2\n", 0o600, Owner::default()).unwrap());
    assert_eq!(fs::read(&p).unwrap(), b"A=2\n");
    // no temp files left behind
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn concurrent_writers_of_one_path_never_clobber_each_other() {
    // Before temp names were unique per write, two threads shared `.<name>.tmp.<pid>`:
    // one removed or renamed the other's partial file (failed writes, or a torn file).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("release.json");
    let threads = 8;
    let rounds = 40;
    let body = |t: usize| vec![b'a' + t as u8; 64 * 1024];
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(got) = fs::read(&p) {
                    assert_eq!(got.len(), 64 * 1024, "a reader saw a partial file");
                    assert!(got.iter().all(|b| *b == got[0]), "a reader saw a torn file");
                    reads += 1;
                }
            }
            reads
        });
        let writers: Vec<_> = (0..threads)
            .map(|t| {
                let p = &p;
                s.spawn(move || {
                    (0..rounds)
                        .map(|_| write_atomic(p, &body(t), 0o600, Owner::default()))
                        .filter_map(Result::err)
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let failed: Vec<String> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join();
        assert_eq!(failed, Vec::<String>::new(), "every write succeeds");
        assert!(reads.unwrap() > 0, "the reader read the file");
    });
    let last = fs::read(&p).unwrap();
    assert!(
        (0..threads).any(|t| last == body(t)),
        "one writer's whole file"
    );
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["release.json"], "no temp file left behind");
}

#[test]
fn temp_names_are_unique_per_write() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _fa) = create_temp(dir.path(), "x.env", 0o600).unwrap();
    let (b, _fb) = create_temp(dir.path(), "x.env", 0o600).unwrap();
    assert_ne!(a, b);
    let pid = std::process::id();
    for t in [&a, &b] {
        let name = t.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_writer(name), Some(("x.env", pid)), "{name}");
    }
    // A leftover with the name the next write would take is skipped, not reused.
    let next = TEMP_SEQ.load(Ordering::Relaxed);
    let taken = dir.path().join(format!(".x.env.tmp.{pid}.{next}"));
    fs::write(&taken, "LEFTOVER").unwrap();
    write_atomic(&dir.path().join("x.env"), b"A=1\n", 0o600, Owner::default()).unwrap();
    assert_eq!(fs::read(&taken).unwrap(), b"LEFTOVER");
}

#[test]
fn a_running_process_keeps_its_own_temps_when_it_asks_so() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir
        .path()
        .join(format!(".canary-command.tmp.{}.4", std::process::id()));
    fs::write(&own, "promote").unwrap();
    // A daemon taking a lock: another of its threads may be writing this one.
    assert!(
        remove_leftover_temps_of_others(dir.path())
            .unwrap()
            .is_empty()
    );
    assert!(own.exists());
    // At start: a former process had our pid.
    assert_eq!(
        remove_leftover_temps(dir.path()).unwrap(),
        std::slice::from_ref(&own)
    );
    assert!(!own.exists());
}

#[test]
fn leftover_temps_of_dead_writers_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("stacks/web/releases")).unwrap();
    // Above any pid_max (at most 2^22): no process has these pids.
    let dead = 4_194_305;
    let leftovers = [
        d.join(format!(".app.env.tmp.{dead}.0")),
        d.join(format!("stacks/web/releases/.000003.json.tmp.{dead}.17")),
        d.join(format!(".old-format.json.tmp.{}", dead + 1)),
    ];
    let parent = std::os::unix::process::parent_id();
    let kept = [
        d.join("app.env"),
        d.join(".hidden"),
        d.join("notes.tmp.12"),
        d.join(".x.tmp.abc"),
        d.join(format!(".x.tmp.{dead}.1a")),
        d.join(".tmp.5"),
        // a writer that is alive (our parent) may be between create and rename
        d.join(format!(".live.env.tmp.{parent}.3")),
        d.join("stacks/web/releases/000003.json"),
    ];
    for f in leftovers.iter().chain(&kept) {
        fs::write(f, "SECRET=1").unwrap();
    }
    // A directory with a temp-like name is not a temp file.
    fs::create_dir(d.join(format!(".dir.tmp.{dead}.0"))).unwrap();
    let mut removed = remove_leftover_temps(d).unwrap();
    removed.sort();
    let mut want = leftovers.to_vec();
    want.sort();
    assert_eq!(removed, want);
    for f in &leftovers {
        assert!(!f.exists(), "{}", f.display());
    }
    for f in &kept {
        assert!(f.exists(), "{} was kept", f.display());
    }
    assert!(
        remove_leftover_temps(&d.join("missing"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn leftover_temps_of_one_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("sub")).unwrap();
    let dead = 4_194_305;
    let mine = d.join(format!(".app.env.tmp.{dead}.4"));
    let others = [
        d.join(format!(".other.env.tmp.{dead}.4")),
        d.join(format!(".app.env.old.tmp.{dead}.4")),
        d.join(format!("sub/.app.env.tmp.{dead}.4")),
    ];
    for f in std::iter::once(&mine).chain(&others) {
        fs::write(f, "SECRET=1").unwrap();
    }
    let removed = remove_leftover_temps_of(&d.join("app.env")).unwrap();
    assert_eq!(removed, std::slice::from_ref(&mine));
    assert!(!mine.exists());
    for f in &others {
        assert!(f.exists(), "{} was kept", f.display());
    }
}

#[test]
fn names_the_path_on_failure() {
    let e = write_atomic(
        Path::new("/nonexistent-dir/x"),
        b"",
        0o600,
        Owner::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent-dir/x"), "{e}");
}

#[test]
fn bounded_reads_refuse_fifos_devices_and_large_files_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("compose.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // No writer: a plain read would block forever.
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || tx.send(read_bounded(&f, MAX_COMPOSE_FILE)).unwrap());
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("reading a FIFO must not hang");
    let e = got.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("a FIFO"), "{e}");

    let e = read_bounded(Path::new("/dev/zero"), MAX_SMALL_FILE).unwrap_err();
    assert!(e.to_string().contains("a device"), "{e}");

    let big = dir.path().join(".env");
    fs::write(&big, vec![b'A'; (MAX_SMALL_FILE + 1) as usize]).unwrap();
    let e = read_bounded(&big, MAX_SMALL_FILE).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
    assert!(e.to_string().contains("1024 KiB cap"), "{e}");

    fs::write(&big, "A=1\n").unwrap();
    assert_eq!(read_bounded(&big, MAX_SMALL_FILE).unwrap(), "A=1\n");
}

/// What `f` logged (fmt layer, no colours), for checking warnings and that no content leaks.
fn logged(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || out.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn bounded_nofollow_reads_refuse_links_fifos_and_large_files() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("app.pid");
    fs::write(&pid, "4242\n").unwrap();
    fs::set_permissions(&pid, fs::Permissions::from_mode(0o640)).unwrap();
    let (text, meta) = read_bounded_nofollow(&pid, 32).unwrap();
    assert_eq!(text, "4242\n");
    assert_eq!(meta.mode() & 0o7777, 0o640, "the open file's own metadata");

    // A symbolic link is refused, not followed (whatever it points at).
    let link = dir.path().join("link.pid");
    std::os::unix::fs::symlink(&pid, &link).unwrap();
    let e = read_bounded_nofollow(&link, 32).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("a symbolic link"), "{e}");
    assert!(e.to_string().contains("not followed"), "{e}");
    // read_bounded itself still follows links (compose files, env files).
    assert_eq!(read_bounded(&link, 32).unwrap(), "4242\n");

    // A FIFO with no writer: refused at once, not waited on.
    let fifo = dir.path().join("fifo.pid");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        tx.send(read_bounded_nofollow(&f, 32).map(|(t, _)| t))
            .unwrap()
    });
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("reading a FIFO must not hang")
        .unwrap_err();
    assert!(e.to_string().contains("a FIFO"), "{e}");

    // A device, and a file over the cap (in bytes for a small cap).
    let e = read_bounded_nofollow(Path::new("/dev/zero"), 32).unwrap_err();
    assert!(e.to_string().contains("a device"), "{e}");
    fs::write(&pid, "1".repeat(33)).unwrap();
    let e = read_bounded_nofollow(&pid, 32).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
    assert!(e.to_string().contains("32-byte cap"), "{e}");
    fs::write(&pid, "1".repeat(32)).unwrap();
    assert_eq!(read_bounded_nofollow(&pid, 32).unwrap().0.len(), 32);
}

#[test]
fn a_link_or_fifo_at_the_path_is_replaced_never_read_through() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.env");
    // A link to a file that holds exactly the new content: still replaced by a file of ours,
    // and the file it pointed at is left alone.
    let elsewhere = dir.path().join("elsewhere");
    fs::write(&elsewhere, "A=1\n").unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &p).unwrap();
    assert!(write_atomic_if_changed(&p, b"A=1\n", 0o600, Owner::default()).unwrap());
    assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
    assert_eq!(fs::read(&elsewhere).unwrap(), b"A=1\n");
    assert!(!write_atomic_if_changed(&p, b"A=1\n", 0o600, Owner::default()).unwrap());

    // A FIFO with no writer: replaced at once (a plain read would wait forever).
    let fifo = dir.path().join("fifo.env");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        tx.send(write_atomic_if_changed(&f, b"A=1\n", 0o600, Owner::default()).is_ok())
            .unwrap()
    });
    let ok = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("a FIFO at the path must not hang the comparison");
    assert!(ok);
    assert_eq!(fs::read(&fifo).unwrap(), b"A=1\n");

    // Same content with another mode, or one byte more: rewritten.
    assert!(write_atomic_if_changed(&p, b"A=1\n", 0o640, Owner::default()).unwrap());
    assert!(write_atomic_if_changed(&p, b"A=1\n\n", 0o640, Owner::default()).unwrap());
    assert!(write_atomic_if_changed(&p, b"A=2\n\n", 0o640, Owner::default()).unwrap());
    assert_eq!(fs::read(&p).unwrap(), b"A=2\n\n");
    assert!(!write_atomic_if_changed(&p, b"A=2\n\n", 0o640, Owner::default()).unwrap());
}

/// Environment variable telling [`under_capabilities_child`] it runs under `setpriv`.
const CAPS_CHILD: &str = "GANTRY_FSX_CAPS_CHILD";

/// The capabilities of the shipped sidecar unit (`CapabilityBoundingSet=`), as `setpriv` names
/// them (`+chown,+kill,...`).
fn unit_capabilities() -> Vec<String> {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/gantry-secrets.service");
    let text = fs::read_to_string(&unit).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet=");
    line.split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect()
}

/// Runs [`under_capabilities_child`] as root with only `caps` (the bounding set, as under
/// the unit), expecting `expect`; `None` when this cannot be checked here (not root, no
/// `setpriv`), with why.
fn run_under_capabilities(caps: &[String], expect: &str) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let set = std::iter::once("-all".to_owned())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    let out = match std::process::Command::new("setpriv")
        .arg("--bounding-set")
        .arg(&set)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fsx::tests::under_capabilities_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CAPS_CHILD, dir.path())
        .env("GANTRY_FSX_CAPS_EXPECT", expect)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            not_checked("setpriv (util-linux) is not installed");
            return None;
        }
        Err(e) => panic!("cannot run setpriv: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "under {set}: {text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run: {text}"
    );
    Some(text)
}

/// Finding of a review: under the shipped unit (root without CAP_DAC_OVERRIDE) an output given
/// to another user with mode 0600 could not be read back, and the failure counted as a change:
/// the file was rewritten, and its on_change action ran, on every batch and every start.
#[test]
fn a_file_given_to_another_user_is_compared_under_the_units_capabilities() {
    let caps = unit_capabilities();
    assert!(
        caps.iter().any(|c| c == "dac_read_search"),
        "the unit must grant CAP_DAC_READ_SEARCH to compare outputs it gave away: {caps:?}"
    );
    if run_under_capabilities(&caps, "unchanged").is_none() {
        not_checked("the capability check needs root");
        return;
    }
    // Without it (the unit as it was), the failure is logged and the file rewritten.
    let without: Vec<String> = caps
        .into_iter()
        .filter(|c| c != "dac_read_search")
        .collect();
    run_under_capabilities(&without, "rewritten").unwrap();
}

/// Half of the test above, run by it under `setpriv`: writes a file for uid 65534 with mode
/// 0600, then writes the same again and checks what `GANTRY_FSX_CAPS_EXPECT` says (hence
/// ignored in a normal run: outside that child it has nothing to check and fails saying so).
#[test]
#[ignore = "run by a_file_given_to_another_user_is_compared_under_the_units_capabilities"]
fn under_capabilities_child() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = std::env::var_os(CAPS_CHILD).expect(
        "under_capabilities_child checks a file written under setpriv by \
         a_file_given_to_another_user_is_compared_under_the_units_capabilities: run that test",
    );
    let expect = std::env::var("GANTRY_FSX_CAPS_EXPECT").unwrap();
    let p = Path::new(&dir).join("shop.env");
    let owner = Owner {
        uid: Some(65534),
        gid: Some(65534),
    };
    let body = b"PASSWORD='s3cr3t-under-test'\n";
    assert!(write_atomic_if_changed(&p, body, 0o600, owner).unwrap());
    let before = fs::metadata(&p).unwrap().ino();
    let mut wrote = None;
    let log = logged(|| wrote = Some(write_atomic_if_changed(&p, body, 0o600, owner).unwrap()));
    let after = fs::metadata(&p).unwrap().ino();
    assert!(!log.contains("s3cr3t"), "content in the log: {log}");
    match expect.as_str() {
        "unchanged" => {
            assert_eq!(wrote, Some(false), "rewritten: {log}");
            assert_eq!(before, after, "the file was replaced");
            assert!(log.is_empty(), "{log}");
        }
        _ => {
            assert_eq!(wrote, Some(true));
            assert!(log.contains("WARN"), "{log}");
            assert!(log.contains(&p.display().to_string()), "{log}");
            assert!(log.contains("permission denied"), "{log}");
            assert!(log.contains("CAP_DAC_READ_SEARCH"), "{log}");
        }
    }
}

/// A prerequisite missing: under `CI=true` the test fails with the reason; elsewhere it says
/// what was not checked.
fn not_checked(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "{why}: under CI=true this check must run");
    eprintln!("{why}: not checked here (CI=true fails instead)");
}
