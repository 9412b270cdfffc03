//! `gantry fetch-bundle STACK --from s3://B/K --sha256 HEX`: install a stack's files from a
//! bundle CI uploaded (see [`crate::bundle`]); run by the Gantry-Deploy SSM document.
//!
//! The bundle is fetched, verified and read first; then the stack's files are installed under
//! the stack's lock, the one every deploy, rollback and down of the stack holds while it runs
//! (in `gantryd` too, after its client is gone): no job reads the stack's files while a bundle
//! rewrites them, and two fetch-bundles of one stack do not interleave. It waits up to
//! `--lock-wait` for the lock (exit 75 after that, nothing installed).

use std::str::FromStr as _;
use std::time::Duration;

use crate::ExitCode;
use crate::bundle::{self, BundleError, BundleSource, S3Location, S3Source, Sha256Hex};
use crate::ledger::{Holder, Ledger, LedgerError};

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct FetchBundleArgs {
    /// The stack: files go to <config-dir>/stacks/STACK/.
    pub stack: String,
    /// Where the bundle is: s3://bucket/key.
    #[arg(long = "from", value_name = "S3_URL")]
    pub from: String,
    /// Its SHA-256 (hex); a bundle that does not match is refused.
    #[arg(long, value_name = "HEX")]
    pub sha256: String,
    /// AWS region of the bucket [default: the AWS chain's].
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Wait this long for a deploy, rollback or down of the stack (or another fetch-bundle) to
    /// finish before installing, instead of exit 75.
    #[arg(long, value_name = "DURATION", value_parser = gantry_common::duration::parse_arg, default_value = "10m")]
    pub lock_wait: Duration,
}

/// Fetches, verifies and installs; prints one line.
pub async fn run(global: &GlobalArgs, args: FetchBundleArgs) -> ExitCode {
    if !valid_stack(&args.stack) {
        eprintln!(
            "gantry fetch-bundle: {:?} is not a stack name (lowercase letters, digits, - and _, starting with a letter or digit)",
            args.stack
        );
        return ExitCode::InvalidInput;
    }
    let parsed = S3Location::from_str(&args.from)
        .and_then(|loc| Ok((loc, Sha256Hex::from_str(&args.sha256)?)));
    let (location, sha256) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let source = S3Source::from_env(args.region.clone(), None).await;
    fetch_and_install(global, &args, &location, &sha256, &source).await
}

/// Fetches, verifies and reads the bundle from `source`, then installs it under the stack's
/// lock.
async fn fetch_and_install(
    global: &GlobalArgs,
    args: &FetchBundleArgs,
    location: &S3Location,
    sha256: &Sha256Hex,
    source: &dyn BundleSource,
) -> ExitCode {
    let files = match bundle::fetch_verified(source, location, sha256).await {
        Ok(files) => files,
        Err(e) => return fail(&e),
    };
    let holder = Holder::me(&format!("gantry fetch-bundle {}", args.stack), None);
    let lock = match Ledger::new(&global.state_dir).stack(&args.stack) {
        Ok(stack) => stack.lock(&holder, args.lock_wait).await,
        Err(e) => Err(e),
    };
    let _lock = match lock {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("gantry fetch-bundle: {}", lock_failure(&e));
            return match e {
                LedgerError::LockBusy { .. } => ExitCode::LockBusy,
                LedgerError::BadStackName { .. } => ExitCode::InvalidInput,
                _ => ExitCode::Failed,
            };
        }
    };
    let dir = global.config_dir.join("stacks").join(&args.stack);
    match bundle::install(&files, &dir, sha256.as_str()) {
        Ok(done) => {
            println!(
                "[{}] bundle {location}: {} written, {} unchanged, {} removed",
                args.stack,
                done.written.len(),
                done.unchanged.len(),
                done.removed.len()
            );
            ExitCode::Ok
        }
        Err(e) => fail(&e),
    }
}

/// Why the stack's lock was not taken. The ledger's own hint for a state dir it cannot use
/// ("or set --state-dir") does not fit here: the lock is only the stack's if it is the one
/// deploys take, in the daemon's state dir.
fn lock_failure(e: &LedgerError) -> String {
    match e {
        LedgerError::LockBusy { .. } | LedgerError::BadStackName { .. } => {
            format!("{e}; nothing installed")
        }
        LedgerError::Io { path, source } => format!(
            "cannot take the stack's lock in the state dir {}: {source}; nothing installed ({LOCK_HINT})",
            path.display()
        ),
        other => format!("cannot take the stack's lock: {other}; nothing installed ({LOCK_HINT})"),
    }
}

/// How to take the lock deploys take.
const LOCK_HINT: &str = "hint: fetch-bundle must run as root with the daemon's state dir, GANTRY_STATE_DIR as in gantry.service (default /var/lib/gantry): a lock in another state dir is one no deploy of the stack respects";

fn fail(e: &BundleError) -> ExitCode {
    eprintln!("gantry fetch-bundle: {e}");
    match e {
        BundleError::Fetch { .. } => ExitCode::Unavailable,
        BundleError::Write { .. } | BundleError::Interrupted { .. } => ExitCode::Failed,
        _ => ExitCode::InvalidInput,
    }
}

fn valid_stack(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle that cannot be installed as it is (a bad entry, a file in the way) is bad
    /// input (65, nothing installed); a write that fails on the way, before or after the
    /// install began changing files, is a failure (1); a bundle that cannot be fetched is
    /// unavailable (69).
    #[test]
    fn a_bundle_in_the_way_is_bad_input() {
        let in_the_way = BundleError::InTheWay {
            path: "/etc/gantry/stacks/shop/config/local.conf".into(),
            entry: "config".into(),
            reason: "x".into(),
        };
        assert_eq!(fail(&in_the_way), ExitCode::InvalidInput);
        let entry = BundleError::Entry {
            url: "s3://b/k".into(),
            entry: "a".into(),
            reason: "x".into(),
        };
        assert_eq!(fail(&entry), ExitCode::InvalidInput);
        let write = BundleError::Write {
            path: "/etc/gantry/stacks/shop".into(),
            message: "No space left on device".into(),
        };
        assert_eq!(fail(&write), ExitCode::Failed);
        let interrupted = BundleError::Interrupted {
            path: "/etc/gantry/stacks/shop/compose.yaml".into(),
            message: "No space left on device".into(),
            changed: vec![".env".into()],
        };
        assert_eq!(fail(&interrupted), ExitCode::Failed);
        let fetch = BundleError::Fetch {
            url: "s3://b/k".into(),
            message: "timed out".into(),
        };
        assert_eq!(fail(&fetch), ExitCode::Unavailable);
        assert_eq!(ExitCode::Unavailable.code(), 69);
    }

    /// A state dir the lock cannot be taken in: the hint does not suggest another state dir
    /// (a lock there is one no deploy respects) but the daemon's, as root.
    #[test]
    fn a_state_dir_without_the_lock_says_to_use_the_daemons() {
        let e = LedgerError::Io {
            path: "/var/lib/gantry/stacks/shop".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let text = lock_failure(&e);
        assert!(
            text.contains("/var/lib/gantry/stacks/shop")
                && text.contains("as root")
                && text.contains("GANTRY_STATE_DIR")
                && text.contains("gantry.service")
                && text.contains("nothing installed")
                && !text.contains("set --state-dir"),
            "{text}"
        );
    }

    /// A bundle source that returns the same bytes for any location.
    struct Fixed(Vec<u8>);

    #[async_trait::async_trait]
    impl BundleSource for Fixed {
        async fn fetch(&self, _: &S3Location, _: u64) -> Result<Vec<u8>, BundleError> {
            Ok(self.0.clone())
        }
    }

    /// The stack's files are installed under the stack's lock, the one a deploy or rollback
    /// running in gantryd holds: a fetch-bundle waits for it (`--lock-wait`, 10m by default)
    /// and exits 75 with nothing installed when it does not get it in time.
    #[tokio::test]
    async fn the_install_waits_for_the_stacks_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("compose.yaml"), "services: {}\n").unwrap();
        let (bytes, sum) = bundle::pack(&src).unwrap();
        let state = tmp.path().join("state");
        let etc = tmp.path().join("etc");
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "gantry",
                "--state-dir",
                state.to_str().unwrap(),
                "--config-dir",
                etc.to_str().unwrap(),
                "fetch-bundle",
                "shop",
                "--from",
                "s3://bucket/shop/b.tar.gz",
                "--sha256",
                sum.as_str(),
            ];
            argv.extend_from_slice(extra);
            let cli = crate::cli::parse_from(argv).unwrap();
            let crate::cli::Command::FetchBundle(args) = cli.command else {
                panic!("not fetch-bundle");
            };
            (cli.global, args)
        };
        assert_eq!(parse(&[]).1.lock_wait, Duration::from_secs(600));
        let (global, args) = parse(&["--lock-wait", "300ms"]);
        let location = S3Location::from_str(&args.from).unwrap();
        let source = Fixed(bytes);
        let installed = etc.join("stacks/shop/compose.yaml");

        // A deploy holds the stack (its client may be gone; gantryd still runs it).
        let stack = Ledger::new(&state).stack("shop").unwrap();
        let held = stack
            .try_lock(&Holder::me("gantry deploy shop", Some("42")))
            .unwrap();
        let code = fetch_and_install(&global, &args, &location, &sum, &source).await;
        assert_eq!(code, ExitCode::LockBusy);
        assert!(
            !installed.exists(),
            "nothing installed while the deploy runs"
        );

        // The deploy ends while fetch-bundle waits: it installs then.
        let (global, args) = parse(&["--lock-wait", "30s"]);
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        // While the install changes files, the lock is still held: a deploy starting then
        // is refused (or waits), it does not read files being rewritten.
        let busy = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let _hook = bundle::seam::before_changes({
            let busy = std::rc::Rc::clone(&busy);
            let stack = Ledger::new(&state).stack("shop").unwrap();
            move |_| {
                let deploy = stack.try_lock(&Holder::me("gantry deploy shop", None));
                busy.borrow_mut()
                    .push(matches!(deploy, Err(LedgerError::LockBusy { .. })));
            }
        });
        let code = fetch_and_install(&global, &args, &location, &sum, &source).await;
        release.await.unwrap();
        assert_eq!(code, ExitCode::Ok);
        assert_eq!(
            *busy.borrow(),
            [true],
            "the install ran once, with the stack's lock held"
        );
        assert_eq!(
            std::fs::read_to_string(&installed).unwrap(),
            "services: {}\n"
        );
        // And the lock is free again once it is done.
        drop(
            stack
                .try_lock(&Holder::me("gantry deploy shop", None))
                .unwrap(),
        );
    }
}
