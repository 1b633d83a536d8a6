//! The one place that reads the wall clock; everything else takes `now` as an argument.

use std::time::SystemTime;

/// The current wall-clock time.
#[allow(clippy::disallowed_methods)]
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// Seconds since the Unix epoch, as a float (for metrics and JSON).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
