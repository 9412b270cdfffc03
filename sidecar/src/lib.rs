//! `gantry-sidecar`: the library behind `gantry-secrets`. Being written; see issue 3.

pub mod source;
