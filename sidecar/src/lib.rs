//! `gantry-sidecar`: the library behind `gantry-secrets`.
//!
//! - [`source`]: the backends (Vault, AWS Secrets Manager) behind one trait.
//! - [`config`]: the YAML file, the environment-only form and flags, layered and validated.
//! - [`engine`]: first fetch (fail closed), one watcher per source, backoff, debounce, status.
//! - [`render`]: dotenv / json / raw outputs, written atomically.
//! - [`supervise`]: exec mode (the container's PID 1: child, signals, reaping, restarts).
//! - [`host`]: run mode (the host service: files, on-change actions, systemd notify).
//! - [`health`]: the optional loopback `/healthz`, `/readyz`, `/metrics` listener.
//! - [`cli`]: the commands and the exit-code table ([`cli::exit`]).
//! - [`credentials`]: the sidecar's own credential variables, kept from the processes it starts.

pub mod cli;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod health;
pub mod host;
pub mod render;
pub mod source;
pub mod supervise;
