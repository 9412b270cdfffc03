//! `gantry deploy`. Being written; see issue 2.

use super::GlobalArgs;
use crate::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DeployArgs {}

pub async fn run(_global: &GlobalArgs, _args: DeployArgs) -> ExitCode {
    eprintln!("gantry deploy: not built yet");
    ExitCode::Failed
}
