//! `gantry config`: print the resolved Compose model, in the shape of `docker compose config`.
//!
//! Files default to `compose.yaml` / `compose.yml` / `docker-compose.yaml` /
//! `docker-compose.yml` in the project directory (or the current one). Variables come from the
//! process environment over `.env` (or the `--env-file` files). Warnings (unset variables,
//! obsolete `version`) go to stderr; errors print once and exit 65.

use std::path::PathBuf;

use super::GlobalArgs;
use crate::ExitCode;
use crate::compose::{self, LoadOptions};

/// Output format of `gantry config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigFormat {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Compose file (repeatable; merged in order).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name (default: `name:` in the file, COMPOSE_PROJECT_NAME, the directory name).
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Project directory (default: the first file's directory).
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Env file for interpolation instead of `<project-dir>/.env` (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a profile (repeatable; `*` enables all).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: ConfigFormat,
    /// Print only the service names, one per line.
    #[arg(long)]
    pub services: bool,
    /// Print each service's Gantry config hash (`service hash`), one per line.
    #[arg(long)]
    pub hash: bool,
}

pub fn run(_global: &GlobalArgs, args: ConfigArgs) -> ExitCode {
    let opts = LoadOptions {
        files: args.files,
        project_name: args.project_name,
        project_dir: args.project_directory,
        env_files: args.env_files,
        profiles: args.profiles,
        environment: super::settings::environment(),
    };
    let project = match compose::load(&opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gantry config: {e}");
            return ExitCode::InvalidInput;
        }
    };
    for w in &project.warnings {
        eprintln!("gantry config: warning: {w}");
    }
    if args.services {
        for name in project.services.keys() {
            println!("{name}");
        }
        return ExitCode::Ok;
    }
    if args.hash {
        for svc in project.services() {
            println!("{} {}", svc.name, svc.config_hash());
        }
        return ExitCode::Ok;
    }
    match args.format {
        ConfigFormat::Json => match serde_json::to_string_pretty(&project.to_compose_json()) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("gantry config: cannot print JSON: {e}");
                return ExitCode::Failed;
            }
        },
        ConfigFormat::Yaml => print!("{}", project.to_yaml()),
    }
    ExitCode::Ok
}
