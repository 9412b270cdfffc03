//! Errors of the Compose loader. Every variant names the failing object (file, key path,
//! service) and reads as a hint; all of them are invalid input (exit 65).

use std::path::PathBuf;

/// Why a Compose project could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A compose or env file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No `-f` was given and no default compose file exists.
    #[error(
        "no compose file in {} (looked for compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml): pass -f FILE",
        dir.display()
    )]
    NoComposeFile { dir: PathBuf },
    /// A default compose file that is there but cannot be read.
    #[error(transparent)]
    UnreadableComposeFile(#[from] UnreadableComposeFile),
    /// The file is not valid YAML.
    #[error("{}:{line}:{column}: invalid YAML: {message}", file.display())]
    Yaml {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key Gantry does not implement. Never silently ignored.
    #[error("{}: {path}: not supported by Gantry (remove it, or open an issue)", file.display())]
    Unsupported { file: PathBuf, path: String },
    /// A key the Compose Specification does not define (typo?). `suggestion`: the closest
    /// known key, if one is close.
    #[error(
        "{}: {path}: unknown key ({})",
        file.display(),
        match suggestion {
            Some(s) => format!("did you mean {s:?}?"),
            None => "check the spelling against the Compose Specification".to_string(),
        }
    )]
    UnknownKey {
        file: PathBuf,
        path: String,
        suggestion: Option<String>,
    },
    /// A value of the wrong type or shape.
    #[error("{}: {path}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        path: String,
        message: String,
    },
    /// `${VAR:?msg}` on an unset variable, or a malformed `${...}`. `line`: where in the file
    /// the malformed `${` is (or the value holding it starts), when that could be found.
    #[error(
        "{}{}: {path}: {message}",
        file.display(),
        line.map(|l| format!(":{l}")).unwrap_or_default()
    )]
    Interpolation {
        file: PathBuf,
        line: Option<usize>,
        path: String,
        message: String,
    },
    /// An env file (`.env`, `--env-file`, `env_file:`) that does not parse.
    #[error("{}:{line}: {message}", file.display())]
    EnvFile {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// `extends` that cannot be resolved (missing service or file, cycle).
    #[error("{}: services.{service}.extends: {message}", file.display())]
    Extends {
        file: PathBuf,
        service: String,
        message: String,
    },
    /// A problem across the merged model (undefined reference, dependency cycle, bad name).
    #[error("{message}")]
    Project { message: String },
}

/// A compose file to load is there but cannot be read: a directory, a file without read
/// permission, a symlink to nothing or a symlink loop. A default file (or override file) found
/// in the project directory is not skipped for the next default name: that would load another
/// file than the one the user sees. The message says what to do: for a file with a default
/// name, removing it is one way.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}: cannot read this compose file: {source} ({})",
    file.display(),
    unreadable_hint(file)
)]
pub struct UnreadableComposeFile {
    pub file: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn unreadable_hint(file: &std::path::Path) -> &'static str {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let default = super::loader::DEFAULT_FILES
        .iter()
        .chain(super::loader::OVERRIDE_FILES)
        .any(|d| *d == name);
    if default {
        "make it a readable file, remove it to use the next default file, or pass -f FILE"
    } else {
        "make it a readable file, or pass -f with another file"
    }
}

impl ComposeError {
    pub(crate) fn invalid(
        file: &std::path::Path,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ComposeError::Invalid {
            file: file.to_path_buf(),
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn project(message: impl Into<String>) -> Self {
        ComposeError::Project {
            message: message.into(),
        }
    }
}
