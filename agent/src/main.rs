//! `gantry`: the command line. Commands for the daemon are sent over its socket from here;
//! everything else runs in `gantryd`, which this process becomes (see [`gantry_agent::cli`]).

fn main() -> std::process::ExitCode {
    let cli = match gantry_agent::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    if gantry_agent::cli::is_client_command(&cli) {
        gantry_agent::cli::client_main(cli).into()
    } else {
        gantry_agent::cli::exec_engine().into()
    }
}
