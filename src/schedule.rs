//! When to refresh and when to retry: pure functions of time and a random sample, so they are
//! tested without sleeping and the refresher only has to sleep until the instant they return.

use std::time::{Duration, SystemTime};

use crate::clock::later;
use crate::config::{default_min_remaining, RefreshConfig};

/// The shortest wait between two refreshes of one role, whatever the credentials say, so that
/// credentials that come back already short-lived cannot turn the loop into a hot loop.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The parameters of the schedule, in plain durations.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Refresh once this fraction of the lifetime has passed.
    pub lifetime_fraction: f64,
    /// Never later than this before expiry; none: [`default_min_remaining`] of the lifetime.
    pub min_remaining: Option<Duration>,
    /// Never later than this after the credentials were issued.
    pub max_interval: Option<Duration>,
    /// +/- fraction applied to each refresh interval.
    pub jitter: f64,
    /// First retry delay.
    pub backoff_initial: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
}

impl From<&RefreshConfig> for Policy {
    fn from(r: &RefreshConfig) -> Self {
        Policy {
            lifetime_fraction: r.lifetime_fraction,
            min_remaining: r.min_remaining.map(|d| d.0),
            max_interval: r.max_interval.map(|d| d.0),
            jitter: r.jitter,
            backoff_initial: r.backoff_initial.0,
            backoff_max: r.backoff_max.0,
        }
    }
}

impl Policy {
    /// How long before expiry credentials that live `lifetime` are due.
    pub fn margin(&self, lifetime: Duration) -> Duration {
        self.min_remaining
            .unwrap_or_else(|| default_min_remaining(lifetime))
    }
}

/// When to refresh credentials issued at `issued` that expire at `expiry`.
///
/// `sample` is uniform in `[-1, 1]` and scales the jitter. The result is never later than
/// `expiry - margin` nor `issued + max_interval`, and never sooner than
/// `issued + MIN_INTERVAL`.
pub fn next_refresh(
    policy: &Policy,
    issued: SystemTime,
    expiry: SystemTime,
    sample: f64,
) -> SystemTime {
    let lifetime = expiry.duration_since(issued).unwrap_or_default();
    let mut latest = expiry
        .checked_sub(policy.margin(lifetime))
        .unwrap_or(issued)
        .max(issued);
    if let Some(max) = policy.max_interval {
        latest = latest.min(later(issued, max));
    }
    let fraction = policy.lifetime_fraction.clamp(0.0, 1.0);
    let planned = later(issued, lifetime.mul_f64(fraction)).min(latest);
    let interval = planned.duration_since(issued).unwrap_or_default();
    let factor = 1.0 + policy.jitter.clamp(0.0, 1.0) * sample.clamp(-1.0, 1.0);
    let jittered = later(issued, interval.mul_f64(factor));
    jittered.min(latest).max(later(issued, MIN_INTERVAL))
}

/// What a retry follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Any failure but a throttle: the network, STS refusing, a write.
    Error,
    /// STS's `Throttling`: the account's request quota is spent.
    Throttled,
}

/// The first throttle's retry window, in multiples of `backoff_initial` (4 s by default).
const THROTTLE_WINDOW: u32 = 4;

/// How the throttle window grows with each throttle in a row.
const THROTTLE_GROWTH: f64 = 1.5;

/// How long to wait before retry number `failures` (1 for the first retry) after `failure`.
/// `sample` is uniform in `[0, 1)`.
///
/// After an error: "full jitter", a uniform pick in `[0, min(backoff_max, backoff_initial *
/// 2^(failures-1))]`: one sidecar whose STS call failed retries within a second.
///
/// After a throttle: the account's quota is spent, most often by many sidecars that started
/// together (a fleet restarting). Retrying within the first second would meet that crowd again,
/// and the retries themselves would keep the quota spent. The retry is spread over `[w/3, w]`,
/// `w = min(backoff_max, 4 * backoff_initial * 1.5^(failures-1))`: wide from the first throttle,
/// never at once, growing gently. The restart storm of `bench/fleet.py` chose these numbers
/// (bench/RESULTS.md): 300 sidecars against a quota of 50/s.
pub fn backoff(policy: &Policy, failure: Failure, failures: u32, sample: f64) -> Duration {
    let sample = sample.clamp(0.0, 1.0);
    let exponent = failures.saturating_sub(1).min(30);
    match failure {
        Failure::Error => policy
            .backoff_initial
            .saturating_mul(1u32 << exponent)
            .min(policy.backoff_max)
            .mul_f64(sample),
        Failure::Throttled => {
            let window = policy
                .backoff_initial
                .saturating_mul(THROTTLE_WINDOW)
                .mul_f64(THROTTLE_GROWTH.powi(exponent as i32).min(1e6))
                .min(policy.backoff_max);
            window.mul_f64((1.0 + 2.0 * sample) / 3.0)
        }
    }
}

/// The longest one refresh may take before the loop counts as wedged: each hop of `chain_len`
/// and a repeat with a capped duration may each take the whole `timeout`, plus `grace`.
pub fn call_budget(timeout: Duration, chain_len: usize, grace: Duration) -> Duration {
    let calls = u32::try_from(chain_len)
        .unwrap_or(u32::MAX)
        .saturating_add(2);
    timeout.saturating_mul(calls).saturating_add(grace)
}

/// When to retry after the `failures`-th failure in a row at `now`, the last a `failure`, given
/// the issue and expiry times of the credentials still held (if any).
///
/// A retry is never scheduled after the credentials held now stop being fresh, so a long backoff
/// cannot let valid credentials run out while STS is reachable again.
pub fn next_retry(
    policy: &Policy,
    now: SystemTime,
    (failure, failures): (Failure, u32),
    sample: f64,
    held: Option<(SystemTime, SystemTime)>,
) -> SystemTime {
    let at = later(now, backoff(policy, failure, failures, sample));
    let fresh_until = held.and_then(|(issued, expiry)| {
        let lifetime = expiry.duration_since(issued).unwrap_or_default();
        expiry.checked_sub(policy.margin(lifetime))
    });
    match fresh_until {
        // Only pull the retry in while that point is still ahead; past it, backoff rules alone.
        Some(fresh_until) if fresh_until > now => at.min(fresh_until),
        _ => at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            lifetime_fraction: 0.5,
            min_remaining: Some(Duration::from_secs(20 * 60)),
            max_interval: None,
            jitter: 0.1,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(120),
        }
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn at(s: u64) -> SystemTime {
        T0 + secs(s)
    }

    #[test]
    fn refreshes_at_the_lifetime_fraction() {
        // 1 h credentials: half way is 30 min, before the 40 min min_remaining bound.
        assert_eq!(next_refresh(&policy(), T0, at(3600), 0.0), at(1800));
    }

    #[test]
    fn min_remaining_pulls_the_refresh_in() {
        let p = Policy {
            lifetime_fraction: 0.9,
            ..policy()
        };
        // 90 % of 1 h is 54 min, but 20 min must remain: 40 min.
        assert_eq!(next_refresh(&p, T0, at(3600), 0.0), at(2400));
    }

    #[test]
    fn max_interval_caps_the_wait() {
        let p = Policy {
            max_interval: Some(secs(600)),
            ..policy()
        };
        assert_eq!(next_refresh(&p, T0, at(3600), 0.0), at(600));
    }

    #[test]
    fn jitter_spreads_within_its_fraction() {
        let p = policy();
        assert_eq!(next_refresh(&p, T0, at(3600), 1.0), at(1980));
        assert_eq!(next_refresh(&p, T0, at(3600), -1.0), at(1620));
        // Out-of-range samples are clamped rather than trusted.
        assert_eq!(next_refresh(&p, T0, at(3600), 7.0), at(1980));
    }

    #[test]
    fn jitter_never_crosses_the_hard_bounds() {
        let p = Policy {
            lifetime_fraction: 0.9,
            jitter: 0.5,
            ..policy()
        };
        assert_eq!(next_refresh(&p, T0, at(3600), 1.0), at(2400));
        let p = Policy {
            max_interval: Some(secs(600)),
            jitter: 0.5,
            ..policy()
        };
        assert_eq!(next_refresh(&p, T0, at(3600), 1.0), at(600));
        assert_eq!(next_refresh(&p, T0, at(3600), -1.0), at(300));
    }

    #[test]
    fn short_lived_credentials_cannot_cause_a_hot_loop() {
        // Credentials shorter than min_remaining, or already expired, still wait MIN_INTERVAL.
        assert_eq!(next_refresh(&policy(), T0, at(600), 0.0), T0 + MIN_INTERVAL);
        assert_eq!(
            next_refresh(&policy(), at(100), at(50), 0.0),
            at(100) + MIN_INTERVAL
        );
    }

    #[test]
    fn a_throttle_waits_a_third_to_all_of_a_window_of_4_s_growing_by_half_each_time() {
        let p = policy();
        let throttled = |n, sample| backoff(&p, Failure::Throttled, n, sample);
        let millis = |d: Duration| d.as_millis();
        assert_eq!(millis(throttled(1, 0.0)), 1333, "never at once");
        assert_eq!(millis(throttled(1, 0.5)), 2666);
        assert_eq!(millis(throttled(1, 0.999_999_999)), 3999);
        assert_eq!(millis(throttled(2, 0.999_999_999)), 5999);
        assert_eq!(millis(throttled(3, 0.0)), 3000);
        assert_eq!(millis(throttled(3, 0.999_999_999)), 8999);
        // Capped at backoff_max, and still spread below it.
        assert_eq!(throttled(13, 0.999_999_999).as_secs(), 119);
        assert_eq!(throttled(1000, 0.0), secs(40));
        // The window scales with backoff_initial.
        let fast = Policy {
            backoff_initial: Duration::from_millis(100),
            ..policy()
        };
        assert_eq!(
            backoff(&fast, Failure::Throttled, 1, 1.0),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn backoff_grows_exponentially_to_the_cap() {
        let p = policy();
        let ceiling = |n| backoff(&p, Failure::Error, n, 0.999_999_999);
        assert_eq!(ceiling(1).as_secs(), 0); // 0.999.. of 1 s
        assert_eq!(ceiling(2).as_secs(), 1);
        assert_eq!(ceiling(4).as_secs(), 7);
        assert_eq!(ceiling(7).as_secs(), 63);
        assert_eq!(ceiling(8).as_secs(), 119);
        assert_eq!(ceiling(1000).as_secs(), 119);
        assert_eq!(backoff(&p, Failure::Error, 5, 0.0), Duration::ZERO);
        assert_eq!(backoff(&p, Failure::Error, 5, 0.5), secs(8));
        assert_eq!(backoff(&p, Failure::Error, 0, 1.0), secs(1));
    }

    #[test]
    fn retries_never_wait_past_the_freshness_of_held_credentials() {
        let p = policy();
        let now = at(1000);
        // Backoff would say 60 s; credentials stop being fresh at 3600 - 1200 = 2400: no change.
        assert_eq!(
            next_retry(
                &p,
                now,
                (Failure::Error, 7),
                60.0 / 64.0,
                Some((T0, at(3600)))
            ),
            at(1060)
        );
        // Fresh only until 1030: retry then.
        assert_eq!(
            next_retry(
                &p,
                now,
                (Failure::Error, 7),
                60.0 / 64.0,
                Some((T0, at(2230)))
            ),
            at(1030)
        );
        // Already past fresh: plain backoff.
        assert_eq!(
            next_retry(
                &p,
                now,
                (Failure::Error, 7),
                60.0 / 64.0,
                Some((T0, at(2000)))
            ),
            at(1060)
        );
        assert_eq!(
            next_retry(&p, now, (Failure::Error, 7), 60.0 / 64.0, None),
            at(1060)
        );
    }

    #[test]
    fn without_min_remaining_the_margin_is_twenty_minutes_or_a_third_of_the_lifetime() {
        let p = Policy {
            min_remaining: None,
            lifetime_fraction: 0.99,
            ..policy()
        };
        let minutes = |m: u64| secs(m * 60);
        for (lifetime, margin) in [
            (minutes(15), minutes(5)),
            (minutes(16), secs(320)),
            (minutes(60), minutes(20)),
            (minutes(720), minutes(20)),
        ] {
            assert_eq!(p.margin(lifetime), margin, "{lifetime:?}");
            // 99 % of the lifetime would be later than the margin allows: the margin decides.
            let expiry = T0 + lifetime;
            assert_eq!(next_refresh(&p, T0, expiry, 0.0), expiry - margin);
        }
        // A retry is pulled in to the margin of the credentials held too: backoff says 640 s,
        // 15 min credentials are due at 600 s.
        let now = at(580);
        assert_eq!(
            next_retry(
                &p,
                now,
                (Failure::Error, 7),
                60.0 / 64.0,
                Some((T0, T0 + minutes(15)))
            ),
            T0 + minutes(10)
        );
    }
}
