//! The exit codes of `gantry-secrets` (documented in `docs/sidecar.md`).
//!
//! Never 137 or 194 for our own failures (SSM gives them their own meaning). In exec mode the
//! code is the child's own (128+n when it died of signal n) once it ran.

/// Success.
pub const OK: i32 = 0;
/// Unexpected failure of the sidecar itself.
pub const FAILURE: i32 = 1;
/// Bad command line (EX_USAGE, as `gantry`).
pub const USAGE: i32 = 64;
/// Secret data unusable: invalid variable name, key given by two sources, raw output ambiguous.
pub const DATA: i32 = 65;
/// `check`: some sources cannot be reached; or the health listener cannot listen.
pub const UNAVAILABLE: i32 = 69;
/// An output file cannot be written.
pub const CANT_WRITE: i32 = 73;
/// exec with `exit_on_change`: the child was stopped because secrets changed.
pub const CHANGED: i32 = crate::supervise::EXIT_CHANGED;
/// The configuration is invalid.
pub const CONFIG: i32 = 78;
/// First source failure: 100 + the failing source's index in config order (0-based).
pub const SOURCE_FAILED_BASE: i32 = 100;
/// Last code of the source range (sources at index 25 and beyond share it).
pub const SOURCE_FAILED_MAX: i32 = 125;
/// exec: CMD exists but cannot be run.
pub const NOT_EXECUTABLE: i32 = 126;
/// exec: CMD not found.
pub const NOT_FOUND: i32 = 127;

/// The code for a failure of the source at `index` (config order).
pub fn source_failed(index: usize) -> i32 {
    (SOURCE_FAILED_BASE + i32::try_from(index).unwrap_or(i32::MAX - SOURCE_FAILED_BASE))
        .min(SOURCE_FAILED_MAX)
}
