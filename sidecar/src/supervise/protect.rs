//! Keeps the sidecar's own credentials away from the child it supervises.
//!
//! The child runs as the same user as the sidecar (in a container, both are usually root
//! without `CAP_SYS_PTRACE`). Not passing `VAULT_TOKEN` in the child's environment
//! ([`crate::credentials::for_child`]) is not enough: `/proc/<sidecar>/environ` shows the
//! environment the sidecar was started with, and `/proc/<sidecar>/mem` its memory, to any
//! process of the same user.
//!
//! Design, before the first child starts:
//! - `PR_SET_DUMPABLE` 0: the kernel then allows `/proc/<pid>/{environ,mem,maps,...}` and
//!   ptrace only to a process with `CAP_SYS_PTRACE` (the files become root-owned and the access
//!   check fails for a same-uid process without the capability), and no core dump is written;
//! - the credential variables are removed from our own environment, so nothing we start later
//!   (a hook, a future code path) inherits them.
//!
//! Limits: `remove_var` does not change `/proc/self/environ` (the kernel shows the original
//! block): the non-dumpable flag is what protects it. A child with `CAP_SYS_PTRACE` (root on
//! the host, `--cap-add SYS_PTRACE`) can still read everything; run the child as another user
//! or without that capability. AWS variables stay in our environment: the SDK re-reads them
//! whenever it refreshes credentials.

use crate::credentials::VAULT_VARS;

/// Makes the process non-dumpable and drops [`VAULT_VARS`] from our environment.
/// Call it before the first child starts; errors are logged (the child still starts).
pub fn protect_credentials() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "cannot make the sidecar non-dumpable: the child may read its credentials from /proc");
    }
    for var in VAULT_VARS {
        if std::env::var_os(var).is_some() {
            remove_env(var);
        }
    }
}

#[allow(unsafe_code)]
fn remove_env(var: &str) {
    // SAFETY: `remove_var` must not race with another thread reading the environment. The
    // sidecar runs a current-thread runtime: no task runs while this synchronous code does.
    // The only other threads are tokio's blocking pool, which runs work a task handed it; the
    // first fetch (the only work so far, DNS lookups included) has completed before exec mode
    // starts the child, and the watchers that fetch again are started after this call.
    unsafe { std::env::remove_var(var) };
}
