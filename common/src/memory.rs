//! Freed memory handed back to the system after a burst of work.
//!
//! glibc's allocator keeps the pages its per-thread arenas freed: a daemon that has just
//! converged twenty services at once (several worker threads, many requests in flight) kept
//! about 1 MiB of such pages resident at idle, for nothing. [`release_free`] asks the allocator
//! to return them (`malloc_trim(0)`, which also gives back free pages inside the arenas).
//!
//! Limits: only glibc builds have anything to do; elsewhere (the static musl builds of
//! `packaging/`) it is a no-op, musl's allocator returns freed memory by itself. It walks every
//! arena under its lock: call it after a burst, off the async workers, not on a hot path.

/// Returns the allocator's free pages to the system (glibc), or does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free() {
    // SAFETY: malloc_trim takes no pointer of ours and only walks the allocator's own free
    // lists under the allocator's locks; glibc documents it as safe to call from any thread.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Returns the allocator's free pages to the system (glibc), or does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free() {}

#[cfg(test)]
mod tests {
    #[test]
    fn release_free_can_run_beside_allocating_threads() {
        let workers: Vec<_> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    let v: Vec<Vec<u8>> = (0..1000).map(|n| vec![i as u8; n]).collect();
                    v.iter().map(Vec::len).sum::<usize>()
                })
            })
            .collect();
        super::release_free();
        let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(total, 4 * (0..1000).sum::<usize>());
    }
}
