//! The one place that reads the wall clock; everything else takes `now` as an argument, or asks
//! the [`Clock`] it was given.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The current wall-clock time, for the edges of the program (commands that run once).
#[allow(clippy::disallowed_methods)]
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// Where the long-running parts (refresh loops, HTTP answers) read the time.
///
/// Production reads the wall clock. Tests use a clock that moves with tokio's paused time, so a
/// loop that sleeps for half an hour runs in a millisecond and still sees half an hour pass.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The wall clock.
    System,
    /// `start`, plus the tokio time elapsed since `origin`, plus the jumps made with
    /// [`Clock::jump`] (a wall clock set forward or back while the monotonic one runs on).
    FollowsTokio {
        /// The wall-clock time at `origin`.
        start: SystemTime,
        /// The tokio instant the clock was made at.
        origin: tokio::time::Instant,
        /// The sum of the jumps, in milliseconds (negative: back); shared by the clones.
        jumped_ms: Arc<AtomicI64>,
    },
}

impl Clock {
    /// A clock that reads `start` now and then advances with tokio's (possibly paused) time.
    pub fn follows_tokio(start: SystemTime) -> Clock {
        Clock::FollowsTokio {
            start,
            origin: tokio::time::Instant::now(),
            jumped_ms: Arc::default(),
        }
    }

    /// Sets a test clock forward (or back) by `by`, as suspending a machine or correcting its
    /// clock does; the system clock is not for setting.
    pub fn jump(&self, by: Duration, forward: bool) {
        if let Clock::FollowsTokio { jumped_ms, .. } = self {
            let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            jumped_ms.fetch_add(if forward { ms } else { -ms }, Ordering::SeqCst);
        }
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        match self {
            Clock::System => now(),
            Clock::FollowsTokio {
                start,
                origin,
                jumped_ms,
            } => {
                let at = *start + origin.elapsed();
                let jumped = jumped_ms.load(Ordering::SeqCst);
                let by = Duration::from_millis(jumped.unsigned_abs());
                if jumped >= 0 {
                    at + by
                } else {
                    at - by
                }
            }
        }
    }

    /// The tokio instant at which this clock will read `t` (now if `t` is past, and no more
    /// than a year ahead), for sleeping until a wall-clock time.
    pub fn instant_at(&self, t: SystemTime) -> tokio::time::Instant {
        let wait = t.duration_since(self.now()).unwrap_or_default();
        tokio::time::Instant::now() + wait.min(A_YEAR)
    }
}

/// The longest a sleep is computed for: no schedule waits that long, and tokio's timer is
/// not asked for an instant it cannot hold.
const A_YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// `t` plus `by`, or the latest time this clock can hold if that is past it: time arithmetic that
/// cannot abort the process, whatever a configuration or a reply says.
pub fn later(t: SystemTime, by: Duration) -> SystemTime {
    t.checked_add(by).unwrap_or_else(|| {
        // SystemTime holds signed 64-bit seconds; half of that is past any real deadline.
        SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2)
    })
}

/// Seconds since the Unix epoch, as a float (for metrics and JSON).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
