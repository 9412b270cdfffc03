//! Plans and rollouts. Being written; see issue 2.
