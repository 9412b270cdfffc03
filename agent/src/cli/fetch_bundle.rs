//! `gantry fetch-bundle STACK --from s3://B/K --sha256 HEX`: install a stack's files from a
//! bundle CI uploaded (see [`crate::bundle`]); run by the Gantry-Deploy SSM document.

use std::str::FromStr as _;

use crate::ExitCode;
use crate::bundle::{self, BundleError, S3Location, S3Source, Sha256Hex};

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
    let dir = global.config_dir.join("stacks").join(&args.stack);
    let source = S3Source::from_env(args.region, None).await;
    match bundle::fetch_and_install(&source, &location, &sha256, &dir).await {
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

fn fail(e: &BundleError) -> ExitCode {
    eprintln!("gantry fetch-bundle: {e}");
    match e {
        BundleError::Fetch { .. } => ExitCode::Unavailable,
        BundleError::Write { .. } => ExitCode::Failed,
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
    /// input (65, nothing installed); a write that fails on the way is a failure (1).
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
    }
}
