//! The per-role loop: assume, publish, sleep until the next refresh; and the single refresh that
//! both the loop and `rolerelay once` perform.
//!
//! Each role has its own task and schedule, so a failing or slow role never delays another's
//! schedule; they share the semaphore that bounds STS calls in flight, and the outputs' lock
//! that serializes file writes.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Semaphore};
use tracing::{error, info, warn};

use crate::assume::{AssumeError, Assumer};
use crate::clock;
use crate::config::{Dur, RoleConfig, ONE_HOUR};
use crate::credentials::rfc3339;
use crate::metrics::Metrics;
use crate::outputs::{Outputs, WriteFailure};
use crate::schedule::{self, Policy};
use crate::state::State;

/// The settings a reload can change while the loops run.
#[derive(Clone, Debug)]
pub struct Live {
    /// Calls STS.
    pub assumer: Assumer,
    /// When to refresh and retry.
    pub policy: Policy,
}

/// What every refresher, and the HTTP side, share.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Replaced whole by a reload; read (and cloned) at each step, never held across an `.await`.
    pub live: Arc<RwLock<Live>>,
    /// Writes the files.
    pub outputs: Arc<Outputs>,
    /// Where results are recorded.
    pub state: State,
    /// Bounds STS calls in flight across all roles (`refresh.concurrency`).
    pub limit: Arc<Semaphore>,
    /// Counts every attempt and write.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// The current live settings.
    pub fn live(&self) -> Live {
        self.live
            .read()
            .expect("live settings lock poisoned")
            .clone()
    }

    /// Replaces the live settings (a reload).
    pub fn set_live(&self, live: Live) {
        *self.live.write().expect("live settings lock poisoned") = live;
    }
}

/// How late a loop may be (a timer firing, a write finishing) before `/healthz` calls it wedged.
pub const HEARTBEAT_GRACE: Duration = Duration::from_secs(30);

/// Why one refresh did not fully succeed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// STS gave no credentials.
    #[error(transparent)]
    Assume(#[from] AssumeError),
    /// Credentials were received but some outputs could not be written.
    #[error("{}", .0.iter().map(|(o, e)| format!("{o}: {e}")).collect::<Vec<_>>().join("; "))]
    Write(Vec<WriteFailure>),
}

/// The duration to request first: a chained role cannot get more than an hour, so ask for at
/// most that from the start (and say so once).
pub fn initial_duration(role: &RoleConfig) -> Duration {
    let requested = role.duration.0;
    if !role.chain.is_empty() && requested > ONE_HOUR {
        warn!(role = %role.name, requested = %role.duration, "a role assumed through a chain gets at most 1h from STS; requesting 1h");
        return ONE_HOUR;
    }
    requested
}

/// Assumes `role` once, records the result in the state and the metrics, and publishes the files.
pub async fn refresh(
    shared: &Shared,
    role: &RoleConfig,
    duration: &mut Duration,
) -> Result<(), RefreshError> {
    let name = role.name.as_str();
    let requested = *duration;
    let permit = shared
        .limit
        .acquire()
        .await
        .expect("the semaphore is never closed");
    // Each hop, and a repeat with a capped duration, may take up to the timeout.
    let assumer = shared.live().assumer;
    let budget = assumer.timeout() * (role.chain.len() as u32 + 2) + HEARTBEAT_GRACE;
    shared.state.update(&role.name, |s| {
        s.heartbeat_deadline = Some(clock::now() + budget)
    });
    let started = std::time::Instant::now();
    let result = assumer.assume(role, duration, clock::now).await;
    drop(permit);
    let took = started.elapsed();
    let m = &shared.metrics;
    m.refresh_duration_seconds
        .with_label_values(&[name])
        .observe(took.as_secs_f64());
    if *duration != requested {
        warn!(role = %name, requested = requested.as_secs(), using = duration.as_secs(),
            "STS refused the requested session duration; using 1h from now on (role chaining or the role's MaxSessionDuration)");
    }
    let creds = match result {
        Ok(creds) => Arc::new(creds),
        Err(e) => {
            // The state first, the counters last: whoever sees a counter grow finds the rest.
            shared.state.update(&role.name, |s| {
                s.consecutive_failures += 1;
                s.last_error = Some(e.clone());
                m.consecutive_failures
                    .with_label_values(&[name])
                    .set(i64::from(s.consecutive_failures));
            });
            m.refresh_total.with_label_values(&[name, "error"]).inc();
            m.refresh_errors_total
                .with_label_values(&[name, e.kind.metric_label()])
                .inc();
            return Err(e.into());
        }
    };
    let now = clock::now();
    info!(
        role = %name,
        role_arn = %role.role_arn,
        access_key_id = %creds.access_key_id,
        expiration = %rfc3339(creds.expiration),
        session_duration = %Dur(*duration),
        took_ms = took.as_millis() as u64,
        "assumed role",
    );
    shared.state.update(&role.name, |s| {
        s.endpoint_body = Some(crate::endpoint::render(&creds));
        s.credentials = Some(creds.clone());
        s.last_success = Some(now);
        s.recovering = s.consecutive_failures > 0;
        s.consecutive_failures = 0;
        s.last_error = None;
    });
    m.refresh_total.with_label_values(&[name, "success"]).inc();
    m.consecutive_failures.with_label_values(&[name]).set(0);
    m.credentials_expiry_timestamp_seconds
        .with_label_values(&[name])
        .set(clock::unix_seconds(creds.expiration));
    m.last_success_timestamp_seconds
        .with_label_values(&[name])
        .set(clock::unix_seconds(now));
    publish(shared, role).await
}

/// Writes `role`'s current credentials to every output, and records and counts what failed.
pub async fn publish(shared: &Shared, role: &RoleConfig) -> Result<(), RefreshError> {
    let now = clock::now();
    // The files get these credentials or newer ones (a later refresh may overtake this write).
    let writing = shared.state.update(&role.name, |s| {
        s.heartbeat_deadline = Some(now + HEARTBEAT_GRACE);
        s.credentials.as_ref().map(|c| c.expiration)
    });
    let (outputs, state, name) = (
        shared.outputs.clone(),
        shared.state.clone(),
        role.name.clone(),
    );
    // File writes fsync: keep them off the async threads.
    let failures = tokio::task::spawn_blocking(move || outputs.publish(&state, &name, now))
        .await
        .expect("publishing does not panic");
    for (output, _) in &failures {
        shared
            .metrics
            .output_write_errors_total
            .with_label_values(&[role.name.as_str(), output])
            .inc();
    }
    if failures.is_empty() {
        shared.state.update(&role.name, |s| {
            s.published = writing.flatten();
            s.recovering = false;
        });
        Ok(())
    } else {
        Err(RefreshError::Write(failures))
    }
}

/// Refreshes `role` on its schedule until `shutdown` turns true.
pub async fn run(shared: Shared, role: RoleConfig, mut shutdown: watch::Receiver<bool>) {
    let mut duration = initial_duration(&role);
    let mut refresh_at = clock::now();
    let mut write_failures = 0;
    // The expiration of the credentials last withdrawn: each expired generation is withdrawn once.
    let mut withdrawn = None;
    loop {
        // Waiting for a turn to call STS has no deadline; `refresh` sets one once it calls.
        shared
            .state
            .update(&role.name, |s| s.heartbeat_deadline = None);
        let due = clock::now() >= refresh_at;
        let result = if due {
            tokio::select! {
                _ = shutdown.changed() => return,
                // Boxed: the sleeping loop then holds a pointer, not the SDK call's whole state.
                result = Box::pin(refresh(&shared, &role, &mut duration)) => result,
            }
        } else {
            // Only the writes failed last time: retry them without calling STS again.
            publish(&shared, &role).await
        };
        let now = clock::now();
        let policy = shared.live().policy;
        // Credentials can expire while a call fails slowly: withdraw them now, not at a later wake.
        let expired = shared
            .state
            .get(&role.name)
            .and_then(|s| s.credentials)
            .filter(|c| !c.is_valid_at(now));
        if let Some(c) = expired.filter(|c| withdrawn != Some(c.expiration)) {
            withdraw(&shared, &role).await;
            withdrawn = Some(c.expiration);
        }
        let held = shared
            .state
            .get(&role.name)
            .and_then(|s| s.valid_credentials(now).cloned());
        let sts_failed = matches!(result, Err(RefreshError::Assume(_)));
        if due {
            refresh_at = match &held {
                Some(c) if !sts_failed => schedule::next_refresh(
                    &policy,
                    c.issued,
                    c.expiration,
                    fastrand::f64() * 2.0 - 1.0,
                ),
                _ => {
                    let failures = shared
                        .state
                        .get(&role.name)
                        .map_or(1, |s| s.consecutive_failures.max(1));
                    schedule::next_retry(
                        &policy,
                        now,
                        failures,
                        fastrand::f64(),
                        held.as_ref().map(|c| c.expiration),
                    )
                }
            };
        }
        // Failed writes are retried on their own backoff, sooner than the next refresh.
        write_failures = match &result {
            Err(RefreshError::Write(_)) => write_failures + 1,
            _ => 0,
        };
        let next = match write_failures {
            0 => refresh_at,
            n => refresh_at.min(now + schedule::backoff(&policy, n, fastrand::f64())),
        };
        shared
            .state
            .update(&role.name, |s| s.next_refresh = Some(next));
        if let Err(e) = &result {
            log_failure(&role, e, &shared, next, now);
        }
        // Sleep until the next attempt; if the held credentials expire first, withdraw them then.
        let mut expiry = held.as_ref().map(|c| c.expiration).filter(|e| *e < next);
        loop {
            let wake = expiry.unwrap_or(next);
            shared.state.update(&role.name, |s| {
                s.heartbeat_deadline = Some(wake + HEARTBEAT_GRACE)
            });
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep_until(until(wake)) => {}
            }
            if clock::now() >= next {
                break;
            }
            if let Some(at) = expiry.take() {
                withdraw(&shared, &role).await;
                withdrawn = Some(at);
            }
        }
    }
}

/// Removes `role`'s files once its credentials expired with no refresh to replace them.
async fn withdraw(shared: &Shared, role: &RoleConfig) {
    shared.state.update(&role.name, |s| s.published = None);
    error!(role = %role.name, role_arn = %role.role_arn,
        "credentials expired before a refresh succeeded; their files are removed until one does");
    let (outputs, state, name) = (
        shared.outputs.clone(),
        shared.state.clone(),
        role.name.clone(),
    );
    let failures =
        tokio::task::spawn_blocking(move || outputs.withdraw(&state, &name, clock::now()))
            .await
            .expect("withdrawing does not panic");
    for (output, e) in failures {
        warn!(role = %role.name, output, error = %e, "could not remove expired credentials");
    }
}

fn log_failure(
    role: &RoleConfig,
    e: &RefreshError,
    shared: &Shared,
    next: SystemTime,
    now: SystemTime,
) {
    let retry_in_ms = next.duration_since(now).unwrap_or_default().as_millis() as u64;
    match e {
        RefreshError::Assume(a) => {
            let failures = shared
                .state
                .get(&role.name)
                .map_or(0, |s| s.consecutive_failures);
            warn!(role = %role.name, role_arn = %role.role_arn, kind = %a.kind, code = a.code.as_deref().unwrap_or(""),
                error = %a.message, consecutive_failures = failures, retry_in_ms, "refresh failed");
        }
        RefreshError::Write(failures) => {
            for (output, err) in failures {
                error!(role = %role.name, output, error = %err, retry_in_ms, "could not write output");
            }
        }
    }
}

/// The tokio instant matching a wall-clock time (now if it is past).
fn until(t: SystemTime) -> tokio::time::Instant {
    tokio::time::Instant::now() + t.duration_since(clock::now()).unwrap_or_default()
}
