//! Arguments every stack command shares, and how they become [`LoadOptions`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::compose::{self, LoadOptions};

use super::GlobalArgs;

/// Which stack, from which files, with which variables.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// The stack: its name is the Compose project name.
    pub stack: String,
    /// Compose files, merged in order [default: the stack directory <config-dir>/stacks/STACK/'s
    /// compose.yaml (or another name compose looks for), and its compose.override.yaml if any].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A variable for interpolation, e.g. IMAGE_TAG=3f2a1c; wins over the environment and .env.
    #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Env files for interpolation instead of the project's .env.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not K=V (example: --var IMAGE_TAG=3f2a1c)"))?;
    let valid = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{k:?} is not a variable name (letters, digits, _)"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

impl StackArgs {
    /// The `--var` values as a map.
    pub fn variables(&self) -> BTreeMap<String, String> {
        self.vars.iter().cloned().collect()
    }

    /// Load options: the process environment with the variables over it.
    pub fn load_options(&self, global: &GlobalArgs) -> LoadOptions {
        let files = if self.files.is_empty() {
            // As compose finds them in a project directory; with none there, the path the
            // "no such file" error should name.
            let dir = global.config_dir.join("stacks").join(&self.stack);
            let mut warnings = Vec::new();
            // A file found there that cannot be read is returned all the same: the load
            // refuses it, naming it and saying what to do.
            let found = compose::discover(&dir, &mut warnings);
            for w in warnings {
                tracing::warn!(stack = %self.stack, "{w}");
            }
            if found.is_empty() {
                vec![dir.join("compose.yaml")]
            } else {
                found
            }
        } else {
            self.files.clone()
        };
        let mut environment: BTreeMap<String, String> = super::settings::environment();
        environment.extend(self.variables());
        LoadOptions {
            files,
            project_name: Some(self.stack.clone()),
            project_dir: None,
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            environment,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn vars_are_validated() {
        assert_eq!(
            parse_var("IMAGE_TAG=a=b").unwrap(),
            ("IMAGE_TAG".into(), "a=b".into())
        );
        assert!(parse_var("NOPE").unwrap_err().contains("K=V"));
        assert!(parse_var("1X=2").is_err());
    }

    proptest! {
        /// Any text: refused, or split at its first `=` into a variable name and the value.
        #[test]
        fn a_var_accepted_is_a_name_and_the_rest_of_the_text(
            s in prop_oneof![any::<String>(), "[A-Za-z0-9_ .-]{0,6}=?.{0,8}"],
        ) {
            if let Ok((k, v)) = parse_var(&s) {
                prop_assert_eq!(format!("{k}={v}"), s.clone());
                let name = regex::Regex::new("^[A-Za-z_][A-Za-z0-9_]*$").unwrap();
                prop_assert!(name.is_match(&k), "{s:?}: {k:?}");
            }
        }

        #[test]
        fn name_equals_value_round_trips(k in "[A-Za-z_][A-Za-z0-9_]{0,16}", v in ".{0,24}") {
            prop_assert_eq!(parse_var(&format!("{k}={v}")), Ok((k, v)));
        }
    }

    fn global(config_dir: &std::path::Path) -> GlobalArgs {
        GlobalArgs {
            state_dir: "/nonexistent/state".into(),
            config_dir: config_dir.to_path_buf(),
            local: true,
            socket: "/nonexistent/gantry.sock".into(),
            log_level: "warn".into(),
            log_format: gantry_common::logging::LogFormat::Text,
        }
    }

    fn stack(name: &str) -> StackArgs {
        StackArgs {
            stack: name.into(),
            files: Vec::new(),
            vars: Vec::new(),
            env_files: Vec::new(),
            profiles: Vec::new(),
        }
    }

    /// Without -f, a stack's files are what compose would find in its directory: the default
    /// file and its override; one that is there but cannot be read (a directory) is taken all
    /// the same, and the load refuses it naming it; none there, the compose.yaml the "cannot
    /// read" error then names.
    #[test]
    fn a_stack_s_files_are_found_in_its_directory() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("stacks/web");
        std::fs::create_dir_all(&dir).unwrap();
        let g = global(t.path());
        assert_eq!(
            stack("web").load_options(&g).files,
            vec![dir.join("compose.yaml")],
            "nothing there"
        );
        std::fs::write(
            dir.join("docker-compose.yml"),
            "services: {a: {image: x}}\n",
        )
        .unwrap();
        std::fs::write(dir.join("compose.override.yaml"), "services: {}\n").unwrap();
        assert_eq!(
            stack("web").load_options(&g).files,
            vec![
                dir.join("docker-compose.yml"),
                dir.join("compose.override.yaml")
            ]
        );
        std::fs::create_dir(dir.join("compose.yaml")).unwrap();
        let o = stack("web").load_options(&g);
        assert_eq!(
            o.files,
            vec![dir.join("compose.yaml"), dir.join("compose.override.yaml")]
        );
        match compose::load(&o) {
            Err(compose::ComposeError::UnreadableComposeFile(e)) => {
                assert_eq!(e.file, dir.join("compose.yaml"));
            }
            other => panic!("{other:?}"),
        }
        let mut named = stack("web");
        named.files = vec!["/elsewhere/c.yaml".into()];
        assert_eq!(
            named.load_options(&g).files,
            vec![PathBuf::from("/elsewhere/c.yaml")]
        );
    }
}
