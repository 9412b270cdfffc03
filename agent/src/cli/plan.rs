//! `gantry plan`. Being written; see issue 2.

use super::GlobalArgs;
use crate::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {}

pub async fn run(_global: &GlobalArgs, _args: PlanArgs) -> ExitCode {
    eprintln!("gantry plan: not built yet");
    ExitCode::Failed
}
