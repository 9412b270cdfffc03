//! The Docker side behind a small trait. Being written; see issue 2.
