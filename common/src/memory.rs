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
    /// This process's resident anonymous memory, in KiB.
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// 64 MiB in small blocks (below glibc's mmap threshold, so inside an arena), freed while
    /// one block allocated after them stays: the free space is not at the arena's top, so
    /// glibc's `free` keeps it resident and only a trim gives it back.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn release_free_gives_back_what_free_kept() {
        let blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![1u8; 4096]).collect();
        let pin = vec![1u8; 100_000];
        drop(blocks);
        let kept = rss_anon_kib();
        super::release_free();
        let after = rss_anon_kib();
        assert!(pin[0] == 1);
        assert!(
            kept.saturating_sub(after) >= 32 * 1024,
            "resident anonymous memory went from {kept} KiB to {after} KiB"
        );
    }

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
