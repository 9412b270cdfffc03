//! `gantryd`: runs the engine in-process: the daemon, `--local` jobs, `config` (`remote` and
//! `fetch-bundle` are handed to `gantry-fleet`).
//! Parse arguments, set up logging, run, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    let cli = match gantry_agent::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    gantry_common::logging::init(&cli.global.log_level, cli.global.log_format, "gantry");
    gantry_agent::cli::main(cli).into()
}
