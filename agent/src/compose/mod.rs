//! The Compose model (pure: no Docker, no network). Being written; see issue 2.
