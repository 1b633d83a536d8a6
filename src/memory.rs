//! Giving back the memory a start's burst freed: a sidecar started with thousands of roles makes
//! their first calls and writes together, and glibc's allocator keeps what they freed as the
//! process's high-water mark, resident for as long as it runs.

use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::info;

/// The roles of a start that have not finished their first attempt; when the last one has, the
/// heap memory freed by then goes back to the system, once.
#[derive(Debug)]
pub struct FirstRound {
    left: AtomicUsize,
}

impl FirstRound {
    /// A round of `roles` first attempts.
    pub fn new(roles: usize) -> FirstRound {
        FirstRound {
            left: AtomicUsize::new(roles),
        }
    }

    /// One role finished its first attempt (succeeded or not). True for the last one, which
    /// gives the memory back; false for the others and for any call after the last.
    pub fn finished_one(&self) -> bool {
        let last = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            == Ok(1);
        if last {
            let before = resident_kib();
            release_freed();
            info!(
                rss_before_kib = before,
                rss_after_kib = resident_kib(),
                "every role has made its first attempt; the memory freed since the start is returned to the system",
            );
        }
        last
    }
}

/// Returns the heap's free memory to the system. Only glibc keeps it (musl gives it back as it
/// goes), and only a burst leaves much of it.
fn release_freed() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's resident memory in KiB (0 if `/proc` cannot say).
fn resident_kib() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096) / 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_of_the_round_gives_the_memory_back() {
        let round = FirstRound::new(3);
        assert!(!round.finished_one());
        assert!(!round.finished_one());
        assert!(round.finished_one(), "the third of three");
        assert!(!round.finished_one(), "a role started later does not count");
        assert!(!FirstRound::new(0).finished_one());
    }

    #[test]
    fn the_resident_size_is_read() {
        assert!(resident_kib() > 0);
    }
}
