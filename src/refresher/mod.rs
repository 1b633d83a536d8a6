//! The per-role loop: assume, publish, sleep until the next refresh; and the single refresh that
//! both the loop and `rolerelay once` perform.
//!
//! Each role has its own task and schedule, so a failing or slow role never delays another's
//! schedule; they share the semaphore that bounds STS calls in flight, and the outputs' lock
//! that serializes file writes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::assume::{AssumeError, Assumed, ErrorKind};
use crate::clock::later;
use crate::config::{HumanDuration, RoleConfig, RoleName, ONE_HOUR};
use crate::context::Context;
use crate::credentials::rfc3339;
use crate::memory::FirstRound;
use crate::metrics::Attempt;
use crate::outputs::{container, WriteFailure};
use crate::schedule::{self, Failure};

/// The longest the loop sleeps before it looks at the wall clock again.
pub const WALL_CLOCK_CHECK: Duration = Duration::from_secs(30);

/// How late a loop may be (a timer firing, a write finishing) before `/healthz` calls it wedged.
pub const HEARTBEAT_GRACE: Duration = Duration::from_secs(30);

/// Why one refresh did not fully succeed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// STS gave no credentials.
    #[error(transparent)]
    Assume(#[from] AssumeError),
    /// Credentials were received but some outputs could not be written.
    #[error("{}", .0.iter().map(|f| format!("{}: {f}", f.output)).collect::<Vec<_>>().join("; "))]
    Write(Vec<WriteFailure>),
}

impl RefreshError {
    /// Whether STS refused for its request quota (`Throttling`).
    pub fn is_throttle(&self) -> bool {
        matches!(self, RefreshError::Assume(e) if e.kind == ErrorKind::Throttled)
    }
}

/// The duration to request first: a chained role cannot get more than an hour, so ask for at
/// most that from the start (and say so once).
fn initial_duration(role: &RoleConfig) -> Duration {
    let requested = role.duration.0;
    if !role.chain.is_empty() && requested > ONE_HOUR {
        warn!(role = %role.name, requested = %role.duration, "a role assumed through a chain gets at most 1h from STS; requesting 1h");
        return ONE_HOUR;
    }
    requested
}

/// When the loop wakes next, and what it does then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wake {
    /// The next attempt (a refresh, or a retry of failed writes).
    next: SystemTime,
    /// When the credentials held now expire, if that comes first: they are withdrawn then.
    expiry: Option<SystemTime>,
}

/// One role's refresh loop and what it remembers between attempts.
#[derive(Debug)]
pub struct RoleLoop {
    ctx: Context,
    role: RoleConfig,
    /// The session duration to ask for: lowered to 1h for good once STS refuses more.
    duration: Duration,
    /// When STS is next due.
    refresh_at: SystemTime,
    /// Failed publications in a row; they are retried without calling STS again.
    write_failures: u32,
    /// The expiration of the credentials last withdrawn: each expired generation is withdrawn once.
    withdrawn: Option<SystemTime>,
    /// The start's first round, told when this loop's first attempt is done.
    first_round: Option<Arc<FirstRound>>,
}

impl RoleLoop {
    /// A loop for `role`, due at once.
    pub fn new(ctx: Context, role: RoleConfig) -> RoleLoop {
        RoleLoop {
            duration: initial_duration(&role),
            refresh_at: ctx.clock.now(),
            write_failures: 0,
            withdrawn: None,
            first_round: None,
            ctx,
            role,
        }
    }

    /// The role this loop refreshes.
    pub fn name(&self) -> &RoleName {
        &self.role.name
    }

    /// The loop counts in `round`: a start's roles, whose first attempts end together.
    pub fn in_first_round(mut self, round: Arc<FirstRound>) -> RoleLoop {
        self.first_round = Some(round);
        self
    }

    /// Refreshes the role on its schedule until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let due = self.ctx.clock.now() >= self.refresh_at;
            let result = if due {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    // Boxed: the sleeping loop then holds a pointer, not the SDK call's whole state.
                    result = Box::pin(self.refresh()) => result,
                }
            } else {
                // Only the writes failed last time: retry them without calling STS again.
                self.publish().await
            };
            self.withdraw_if_expired().await;
            if let Some(round) = self.first_round.take() {
                round.finished_one();
            }
            let wake = self.schedule(due, &result);
            if let Err(e) = &result {
                self.log_failure(e, wake.next);
            }
            if !self.sleep(wake, &mut shutdown).await {
                return;
            }
        }
    }

    /// Assumes the role once, records the result in the state and the metrics, and publishes
    /// the files.
    pub async fn refresh(&mut self) -> Result<(), RefreshError> {
        let ctx = &self.ctx;
        let slot = ctx
            .sts_slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let assumer = ctx.settings().assumer;
        let budget =
            schedule::call_budget(assumer.timeout(), self.role.chain.len(), HEARTBEAT_GRACE);
        ctx.state
            .set_heartbeat(&self.role.name, Some(later(ctx.clock.now(), budget)));
        let started = tokio::time::Instant::now();
        let clock = &ctx.clock;
        let result = assumer
            .assume(&self.role, self.duration, || clock.now())
            .await;
        drop(slot);
        let took = started.elapsed();
        let assumed = self.record(result, took)?;
        if assumed.duration != self.duration {
            warn!(role = %self.role.name, requested = self.duration.as_secs(), using = assumed.duration.as_secs(),
                "STS refused the requested session duration; using 1h from now on (role chaining or the role's MaxSessionDuration)");
            self.duration = assumed.duration;
        }
        self.publish().await
    }

    /// Records an attempt: the state first, the counters last, so whoever sees a counter grow
    /// finds the rest.
    fn record(
        &self,
        result: Result<Assumed, AssumeError>,
        took: Duration,
    ) -> Result<Assumed, AssumeError> {
        let (ctx, name) = (&self.ctx, &self.role.name);
        let now = ctx.clock.now();
        let attempt = match &result {
            Ok(assumed) => {
                let creds = &assumed.credentials;
                info!(
                    role = %name,
                    role_arn = %self.role.role_arn,
                    access_key_id = %creds.access_key_id,
                    expiration = %rfc3339(creds.expiration),
                    session_duration = %HumanDuration(assumed.duration),
                    took_ms = took.as_millis() as u64,
                    "assumed role",
                );
                let body = container::render(creds);
                ctx.state
                    .record_success(name, Arc::new(creds.clone()), body, now);
                Attempt::Succeeded {
                    expiration: creds.expiration,
                    at: now,
                }
            }
            Err(e) => Attempt::Failed {
                kind: e.kind,
                consecutive_failures: ctx.state.record_failure(name, e),
            },
        };
        ctx.metrics.record_refresh(name.as_str(), attempt, took);
        result
    }

    /// Writes the role's current credentials to every output, and records and counts what failed.
    async fn publish(&self) -> Result<(), RefreshError> {
        let (ctx, name) = (&self.ctx, &self.role.name);
        let now = ctx.clock.now();
        ctx.state
            .set_heartbeat(name, Some(later(now, HEARTBEAT_GRACE)));
        // The files get these credentials or newer ones (a later refresh may overtake this write).
        let writing = ctx
            .state
            .get(name)
            .and_then(|s| s.credentials.map(|c| c.expiration));
        let failures = ctx.outputs.publish(&ctx.state, name, now).await;
        ctx.metrics.record_write_failures(name.as_str(), &failures);
        if failures.is_empty() {
            ctx.state.record_published(name, writing);
            Ok(())
        } else {
            Err(RefreshError::Write(failures))
        }
    }

    /// Credentials can expire while a call fails slowly: withdraw them now, not at a later wake.
    async fn withdraw_if_expired(&mut self) {
        let now = self.ctx.clock.now();
        let expired = self
            .ctx
            .state
            .get(&self.role.name)
            .and_then(|s| s.credentials)
            .filter(|c| !c.is_valid_at(now));
        if let Some(c) = expired.filter(|c| self.withdrawn != Some(c.expiration)) {
            self.withdraw(c.expiration).await;
        }
    }

    /// Decides when to wake next after an attempt (`due`: STS was called) that ended in `result`.
    fn schedule(&mut self, due: bool, result: &Result<(), RefreshError>) -> Wake {
        let (ctx, name) = (&self.ctx, &self.role.name);
        let now = ctx.clock.now();
        let policy = ctx.settings().policy;
        let held = ctx.state.valid_credentials_of(name, now);
        if due {
            let sts_failed = matches!(result, Err(RefreshError::Assume(_)));
            self.refresh_at = match &held {
                Some(c) if !sts_failed => schedule::next_refresh(
                    &policy,
                    c.issued,
                    c.expiration,
                    fastrand::f64() * 2.0 - 1.0,
                ),
                _ => {
                    let failures = ctx
                        .state
                        .get(name)
                        .map_or(1, |s| s.consecutive_failures.max(1));
                    let held_times = held.as_ref().map(|c| (c.issued, c.expiration));
                    let failure = match result {
                        Err(e) if e.is_throttle() => Failure::Throttled,
                        _ => Failure::Error,
                    };
                    let after = (failure, failures);
                    schedule::next_retry(&policy, now, after, fastrand::f64(), held_times)
                }
            };
        }
        // Failed writes are retried on their own backoff, sooner than the next refresh.
        self.write_failures = match result {
            Err(RefreshError::Write(_)) => self.write_failures + 1,
            _ => 0,
        };
        let next = match self.write_failures {
            0 => self.refresh_at,
            n => self.refresh_at.min(later(
                now,
                schedule::backoff(&policy, Failure::Error, n, fastrand::f64()),
            )),
        };
        ctx.state.set_next_refresh(name, next);
        Wake {
            next,
            expiry: held.map(|c| c.expiration).filter(|e| *e < next),
        }
    }

    /// Sleeps until `wake.next`, withdrawing the held credentials at their expiry if that comes
    /// first. False when `shutdown` came instead.
    ///
    /// The schedule is in wall-clock time but timers are monotonic: the loop looks at the wall
    /// clock at least every [`WALL_CLOCK_CHECK`], so a jump (suspend and resume, a paused VM, a
    /// corrected clock) is acted on within that, in either direction.
    async fn sleep(&mut self, wake: Wake, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut expiry = wake.expiry;
        let clock = self.ctx.clock.clone();
        loop {
            let until = expiry.unwrap_or(wake.next);
            let step = clock
                .instant_at(until)
                .min(tokio::time::Instant::now() + WALL_CLOCK_CHECK);
            let step_end = later(clock.now(), WALL_CLOCK_CHECK);
            let deadline = later(until.min(step_end), HEARTBEAT_GRACE);
            self.ctx
                .state
                .set_heartbeat(&self.role.name, Some(deadline));
            tokio::select! {
                _ = shutdown.changed() => return false,
                _ = tokio::time::sleep_until(step) => {}
            }
            let now = clock.now();
            if now >= wake.next {
                // Waiting for a turn to call STS has no deadline; `refresh` sets one once it calls.
                self.ctx.state.set_heartbeat(&self.role.name, None);
                return true;
            }
            if let Some(at) = expiry.filter(|at| now >= *at) {
                expiry = None;
                self.withdraw(at).await;
            }
        }
    }

    /// Removes the role's files once its credentials (expiring at `expiration`) expired with no
    /// refresh to replace them.
    async fn withdraw(&mut self, expiration: SystemTime) {
        let (ctx, role) = (&self.ctx, &self.role);
        ctx.state.record_withdrawn(&role.name);
        error!(role = %role.name, role_arn = %role.role_arn,
            "credentials expired before a refresh succeeded; their files are removed until one does");
        let failures = ctx
            .outputs
            .withdraw(&ctx.state, &role.name, ctx.clock.now())
            .await;
        for failure in failures {
            warn!(role = %role.name, output = %failure.output, error = %failure, "could not remove expired credentials");
        }
        self.withdrawn = Some(expiration);
    }

    fn log_failure(&self, e: &RefreshError, next: SystemTime) {
        let role = &self.role;
        let now = self.ctx.clock.now();
        let retry_in_ms = next.duration_since(now).unwrap_or_default().as_millis() as u64;
        match e {
            RefreshError::Assume(a) => {
                let failures = self
                    .ctx
                    .state
                    .get(&role.name)
                    .map_or(0, |s| s.consecutive_failures);
                warn!(role = %role.name, role_arn = %role.role_arn, kind = %a.kind, code = a.code.as_deref().unwrap_or(""),
                    error = %a.message, consecutive_failures = failures, retry_in_ms, "refresh failed");
            }
            RefreshError::Write(failures) => {
                for failure in failures {
                    error!(role = %role.name, output = %failure.output, error = %failure, retry_in_ms, "could not write output");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
