//! `gantry daemon`: run the daemon (see [`crate::daemon`]); `--check-config` validates the
//! configuration and exits (0, or 78 with the key at fault), for systemd's `ExecStartPre=`.

use crate::ExitCode;
use crate::daemon;

use super::GlobalArgs;
use super::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Validate <config-dir>/gantry.yaml (daemon and registries) and exit (0, or 78 naming the
    /// key at fault).
    #[arg(long)]
    pub check_config: bool,
    /// Serve Prometheus metrics on this loopback address (over daemon.metrics_address).
    #[arg(long, env = "GANTRY_METRICS_ADDRESS", value_name = "ADDR")]
    pub metrics_address: Option<String>,
}

pub fn run(global: &GlobalArgs, args: DaemonArgs) -> ExitCode {
    let config = match Settings::load(&global.config_dir)
        .and_then(|s| s.daemon(global, args.metrics_address.as_deref()))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("gantry daemon: {e}");
            return ExitCode::Config;
        }
    };
    if args.check_config {
        println!(
            "configuration OK ({})",
            global.config_dir.join("gantry.yaml").display()
        );
        return ExitCode::Ok;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gantry daemon: cannot start the async runtime: {e}");
            return ExitCode::Failed;
        }
    };
    match rt.block_on(daemon::run(config)) {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            tracing::error!(error = %e, "daemon stopped");
            eprintln!("gantry daemon: {e}");
            e.exit_code()
        }
    }
}
