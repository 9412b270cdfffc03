//! `gantry-secrets`: thin entry point. Parses the command line, sets up logging and a
//! single-threaded tokio runtime, runs the command and exits with its code (see
//! `gantry_sidecar::cli::exit` and docs/sidecar.md).

use clap::Parser;
use gantry_sidecar::cli::{self, Cli, exit};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; a bad command line is 64 (EX_USAGE).
            std::process::exit(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    // A log filter that does not parse (`warning`) is a bad command line: it would otherwise
    // silence every line, fatal errors included.
    if let Err(e) =
        gantry_common::logging::try_init(&cli.log_level, cli.log_format, "gantry-secrets")
    {
        eprintln!("gantry-secrets: {e}");
        std::process::exit(exit::USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gantry-secrets: cannot start the runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            tracing::error!(exit_code = code, "{}", anyhow::Error::from(e));
            code
        }
    };
    // Do not wait for background tasks (watchers, listener) to wind down.
    runtime.shutdown_background();
    std::process::exit(code);
}
