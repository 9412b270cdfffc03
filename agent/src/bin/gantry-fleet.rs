//! `gantry-fleet`: runs `gantry remote` (SSM Run Command across a fleet, from CI) and `gantry
//! fetch-bundle` (a stack's files from S3, on a host). The only program that links the SSM and
//! S3 clients, so `gantryd` stays small; any other command is handed on to the program that
//! runs it. Parse arguments, set up logging, run, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    let cli = match gantry_agent::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    gantry_common::logging::init(&cli.global.log_level, cli.global.log_format, "gantry");
    gantry_agent::cli::fleet_main(cli).into()
}
