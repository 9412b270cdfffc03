//! Releases on disk, locks, idempotency. Being written; see issue 2.
