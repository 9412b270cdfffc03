//! `gantry-agent`: the Gantry host agent, the library behind its binaries: `gantry` (the small
//! client), `gantryd` (the engine and systemd daemon, which `gantry` execs for in-process
//! work) and `gantry-fleet` (`remote` and `fetch-bundle`: the SSM and S3 clients).
//!
//! Design: a pure Compose model ([`compose`]: load, interpolate, merge, validate, canonical hash)
//! is turned into a plan against what runs ([`deploy`]), and the plan is applied through a small
//! engine trait at our level of abstraction ([`engine`], with a bollard implementation). Releases,
//! locks and idempotency live on disk in [`ledger`], written atomically so `kill -9` at any point
//! leaves a state the next deploy converges from. [`cli`] maps commands onto these and every error
//! onto the documented [`ExitCode`] table (shared with `gantry-secrets`, in `gantry_common`).
//! [`daemon`] runs deploys as jobs and supervises what they deployed; [`edge`] is the
//! published-port switch (nftables); [`remote`] drives a fleet through SSM and [`bundle`]
//! packs the stack's files it ships.
//!
//! Layering: dependencies point one way, `cli` → `daemon` → `deploy` → {`engine`, `compose`,
//! `ledger`, `registry`, `edge`} → `gantry_common`; [`api`] (the socket protocol's types) imports only
//! [`compose`]. Configuration and the environment are read in [`cli`] only (`cli::settings`) and
//! passed down as typed values. To check: for each module `m`, `grep -rhoE 'crate::[a-z_]+'
//! agent/src/m | sort -u` names only modules below it.
//!
//! Limits: one host, one Docker engine; Compose features outside what [`compose`] documents are
//! refused with an error naming the file, service and key rather than silently ignored.

pub mod api;
pub mod bundle;
pub mod cli;
pub mod compose;
pub mod daemon;
pub mod deploy;
pub mod edge;
pub mod engine;
pub mod ledger;
pub mod registry;
pub mod remote;

pub use gantry_common::exit;
pub use gantry_common::exit::ExitCode;
