//! `gantry config`. Being written; see issue 2.

use super::GlobalArgs;
use crate::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {}

pub fn run(_global: &GlobalArgs, _args: ConfigArgs) -> ExitCode {
    eprintln!("gantry config: not built yet");
    ExitCode::Failed
}
