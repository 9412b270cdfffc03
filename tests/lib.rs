//! Helpers for Gantry's integration tests: paths of the built binaries and of the services that
//! `tests/env/up` started. Being written; see issue 2.
