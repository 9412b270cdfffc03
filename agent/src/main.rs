//! `gantry`: the command line. Commands for the daemon are sent over its socket from here;
//! everything else runs in `gantryd` or `gantry-fleet`, which this process becomes (see
//! [`gantry_agent::cli::Program`]).

use gantry_agent::cli::{self, Program};

fn main() -> std::process::ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    match cli::program_for(&cli) {
        Program::Client => cli::client_main(cli).into(),
        other => cli::exec_program(other).into(),
    }
}
