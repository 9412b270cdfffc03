//! The systemd units, sysusers.d and tmpfiles.d files pass `systemd-analyze verify` (through
//! systemd/verify.sh, which installs Debian's systemd package when it is missing).

use std::path::Path;
use std::process::Command;

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/verify.sh");
    let out = Command::new("sh").arg(&script).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("units verified"), "{text}");
}
