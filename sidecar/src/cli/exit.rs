//! The exit codes of `gantry-secrets` (documented in `docs/sidecar.md`), as numbers taken from
//! the one table both programs share ([`gantry_common::exit::ExitCode`]).
//!
//! Never 137 or 194 for our own failures (SSM gives them their own meaning). In exec mode the
//! code is the child's own (128+n when it died of signal n) once it ran; that one is not a
//! table code.

use gantry_common::exit::ExitCode;

/// Success.
pub const OK: i32 = ExitCode::Ok.as_i32();
/// Unexpected failure of the sidecar itself.
pub const FAILURE: i32 = ExitCode::Failed.as_i32();
/// Bad command line (EX_USAGE, as `gantry`).
pub const USAGE: i32 = ExitCode::Usage.as_i32();
/// Secret data unusable: invalid variable name, NUL byte in an environment value, key given by
/// two sources, raw output ambiguous.
pub const DATA: i32 = ExitCode::InvalidInput.as_i32();
/// `check`: some sources cannot be reached; or the health listener cannot listen.
pub const UNAVAILABLE: i32 = ExitCode::Unavailable.as_i32();
/// An output file cannot be written.
pub const CANT_WRITE: i32 = ExitCode::CantWrite.as_i32();
/// exec with `exit_on_change`: the child was stopped because secrets changed.
pub const CHANGED: i32 = ExitCode::SecretsChanged.as_i32();
/// The configuration is invalid.
pub const CONFIG: i32 = ExitCode::Config.as_i32();
/// First source failure: 100 + the failing source's index in config order (0-based).
pub const SOURCE_FAILED_BASE: i32 = ExitCode::SourceFailedFirst.as_i32();
/// Last code of the source range (sources at index 25 and beyond share it).
pub const SOURCE_FAILED_MAX: i32 = ExitCode::SourceFailedLast.as_i32();
/// exec: CMD exists but cannot be run.
pub const NOT_EXECUTABLE: i32 = ExitCode::NotExecutable.as_i32();
/// exec: CMD not found.
pub const NOT_FOUND: i32 = ExitCode::NotFound.as_i32();

// The supervisor's own constant must be the table's.
const _: () = assert!(CHANGED == crate::supervise::EXIT_CHANGED);

/// The code for a failure of the source at `index` (config order).
pub fn source_failed(index: usize) -> i32 {
    ExitCode::source_failed(index).as_i32()
}
