//! The daemon: being written (issue 5).

use serde::Deserialize;

/// The `daemon:` section of gantry.yaml, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemonConfig {}
