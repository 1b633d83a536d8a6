//! What every role has now: written by the refreshers, read by the outputs and the HTTP side.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::assume::AssumeError;
use crate::config::{default_min_remaining, ClientConfig, ClientName, RoleConfig, RoleName};
use crate::credentials::{Credentials, SecretBytes};

/// The state of one role.
#[derive(Clone, Debug, Default)]
pub struct RoleState {
    /// The ARN configured for the role (shown in `/status`).
    pub role_arn: String,
    /// The last credentials received, valid or not (readers check `is_valid_at`).
    pub credentials: Option<Arc<Credentials>>,
    /// The endpoint's answer for these credentials, rendered once when they arrive.
    pub endpoint_body: Option<SecretBytes>,
    /// When the last refresh succeeded.
    pub last_success: Option<SystemTime>,
    /// When the next attempt is scheduled.
    pub next_refresh: Option<SystemTime>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The last failure, kept until the next success.
    pub last_error: Option<AssumeError>,
    /// Outputs whose last write for this role failed, with the reason.
    pub write_errors: BTreeMap<String, String>,
    /// The expiration of the credentials last written to every output, until they are
    /// withdrawn. Newer credentials being written over still-valid ones leave it as it is, so a
    /// refresh never flickers readiness; a failed write shows in `write_errors` instead.
    pub published: Option<SystemTime>,
    /// The current credentials came after failed refreshes and are not written yet: until they
    /// are, readiness judges what the outputs hold, which may be near expiry.
    pub recovering: bool,
    /// When the role's loop must next show progress (wake up, or finish a call or a write);
    /// none while it waits for its turn to call STS.
    pub heartbeat_deadline: Option<SystemTime>,
}

impl RoleState {
    /// The credentials, if they are still valid at `now`.
    pub fn valid_credentials(&self, now: SystemTime) -> Option<&Arc<Credentials>> {
        self.credentials.as_ref().filter(|c| c.is_valid_at(now))
    }

    /// Whether the role is ready at `now`: valid credentials written to every output, and not
    /// about to expire while refreshes fail. The error says why not.
    /// `min_remaining` is `refresh.min_remaining`; none: the default for these credentials'
    /// lifetime.
    pub fn readiness(
        &self,
        now: SystemTime,
        min_remaining: Option<Duration>,
    ) -> Result<(), String> {
        let failing = || match &self.last_error {
            Some(e) => format!("; the last refresh failed: {}", e.kind),
            None => String::new(),
        };
        let Some(creds) = &self.credentials else {
            return Err(format!("no credentials yet{}", failing()));
        };
        if !creds.is_valid_at(now) {
            return Err(format!(
                "the credentials expired at {}{}",
                crate::credentials::rfc3339(creds.expiration),
                failing()
            ));
        }
        if let Some((output, _)) = self.write_errors.iter().next() {
            return Err(format!("the {output} output could not be written"));
        }
        let Some(published) = self.published else {
            return Err("the credentials are not written to every output yet".into());
        };
        // Near expiry, what the outputs hold decides while refreshes fail or until the
        // credentials that ended the failures are written. An on-time refresh is never judged so:
        // it may fall exactly at min_remaining, and readiness would flicker at each one.
        let remaining = published.duration_since(now).unwrap_or_default();
        let lifetime = creds
            .expiration
            .duration_since(creds.issued)
            .unwrap_or_default();
        let margin = min_remaining.unwrap_or_else(|| default_min_remaining(lifetime));
        if remaining < margin {
            if self.consecutive_failures > 0 {
                return Err(format!(
                    "the credentials expire in {}s and refreshing them fails{}",
                    remaining.as_secs(),
                    failing()
                ));
            }
            if self.recovering {
                return Err(format!(
                    "the credentials in the outputs expire in {}s; newer ones are being written",
                    remaining.as_secs()
                ));
            }
        }
        Ok(())
    }

    /// Whether the role serves credentials at `now`: its loop is alive, and its outputs hold
    /// credentials that have not expired, whether or not refreshing them fails. The health
    /// checks that restart or unroute use this: a failing STS is no reason to restart, while a
    /// wedged loop or credentials that really expired are.
    pub fn serving(&self, now: SystemTime) -> Result<(), String> {
        self.liveness(now)?;
        match (&self.credentials, self.published) {
            (None, _) => Err("no credentials yet".into()),
            (Some(_), None) => Err("the credentials are not written to every output yet".into()),
            (Some(_), Some(published)) if published <= now => Err(format!(
                "the credentials in the outputs expired at {}",
                crate::credentials::rfc3339(published)
            )),
            (Some(_), Some(_)) => Ok(()),
        }
    }

    /// Whether the role's loop is alive at `now`: it has not missed its heartbeat deadline.
    pub fn liveness(&self, now: SystemTime) -> Result<(), String> {
        match self.heartbeat_deadline {
            Some(deadline) if now > deadline => Err(format!(
                "the refresh loop has shown no progress since {}",
                crate::credentials::rfc3339(deadline)
            )),
            _ => Ok(()),
        }
    }
}

/// What the endpoint answers for a role.
#[derive(Debug)]
pub enum EndpointAnswer {
    /// No such role is configured.
    UnknownRole,
    /// The role has no valid credentials now.
    NoValidCredentials,
    /// The body to send, and the access key id in it (for the audit log).
    Ready {
        /// The rendered answer.
        body: SecretBytes,
        /// The credentials' access key id: not a secret.
        access_key_id: String,
    },
}

/// The outcome of the last configuration reload, for `/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadStatus {
    /// When it happened.
    pub time: SystemTime,
    /// Why the new file was refused (the running configuration stayed), if it was.
    pub error: Option<String>,
    /// Changed keys that need a restart to take effect.
    pub restart_needed: Vec<&'static str>,
}

/// A client as `/status` shows it: its directory and roles, and when it last fetched each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientState {
    /// Its directory, as rolerelay sees it.
    pub directory: PathBuf,
    /// Its roles, in its order.
    pub roles: Vec<RoleName>,
    /// When it last got each role's credentials from the endpoint (a 200).
    pub last_fetch: BTreeMap<RoleName, SystemTime>,
}

/// What is not any one role's: the last reload, the readiness margin and the clients.
#[derive(Debug, Default)]
struct SidecarWide {
    reload: Option<ReloadStatus>,
    clients: BTreeMap<ClientName, ClientState>,
    /// `refresh.min_remaining`: readiness turns 503 inside it while refreshes fail; none: each
    /// role's default.
    min_remaining: Option<Duration>,
}

/// Shared, cloneable state of all roles.
///
/// `std::sync::RwLock`s over small values: every access copies in or out and never holds a
/// lock across an `.await` or a file write, so a blocking lock is the simple right choice.
#[derive(Clone, Debug, Default)]
pub struct State {
    roles: Arc<RwLock<BTreeMap<RoleName, RoleState>>>,
    sidecar: Arc<RwLock<SidecarWide>>,
}

impl State {
    /// A state holding `roles`, none of them with credentials yet; readiness judges near
    /// expiry by `min_remaining`.
    pub fn new(roles: &[RoleConfig], min_remaining: Option<Duration>) -> State {
        let state = State::default();
        state.set_min_remaining(min_remaining);
        for role in roles {
            state.add_role(role);
        }
        state
    }

    /// Adds a role with no credentials (or resets an existing one's ARN).
    pub fn add_role(&self, role: &RoleConfig) {
        let mut roles = self.roles.write().expect("state lock poisoned");
        roles.entry(role.name.clone()).or_default().role_arn = role.role_arn.to_string();
    }

    /// Forgets a role.
    pub fn remove_role(&self, name: &RoleName) {
        self.roles
            .write()
            .expect("state lock poisoned")
            .remove(name);
    }

    /// Runs `f` on one role's state and returns its result, if the role exists.
    pub fn update<T>(&self, name: &RoleName, f: impl FnOnce(&mut RoleState) -> T) -> Option<T> {
        self.roles
            .write()
            .expect("state lock poisoned")
            .get_mut(name)
            .map(f)
    }

    /// `f` of the state of each role of `names` that is configured, under one lock: for an
    /// outcome shared by thousands of roles.
    pub fn update_each<'a>(
        &self,
        names: impl IntoIterator<Item = &'a RoleName>,
        mut f: impl FnMut(&mut RoleState),
    ) {
        let mut roles = self.roles.write().expect("state lock poisoned");
        for name in names {
            if let Some(s) = roles.get_mut(name) {
                f(s);
            }
        }
    }

    /// A copy of one role's state.
    pub fn get(&self, name: &RoleName) -> Option<RoleState> {
        self.roles
            .read()
            .expect("state lock poisoned")
            .get(name)
            .cloned()
    }

    /// Runs `f` on every role's state, by name, without copying them.
    pub fn for_each(&self, mut f: impl FnMut(&RoleName, &RoleState)) {
        let roles = self.roles.read().expect("state lock poisoned");
        for (name, role) in roles.iter() {
            f(name, role);
        }
    }

    /// `f` of every role's state, by name, read in place: what the status server answers from.
    /// Writers wait while `f` runs, so `f` must not block.
    pub fn read_roles<R>(&self, f: impl FnOnce(&BTreeMap<RoleName, RoleState>) -> R) -> R {
        f(&self.roles.read().expect("state lock poisoned"))
    }

    /// New credentials for `name`, received at `now`, with the endpoint's answer for them:
    /// the failures end, and readiness waits for them to be written if they ended a run of
    /// failures.
    pub fn record_success(
        &self,
        name: &RoleName,
        credentials: Arc<Credentials>,
        endpoint_body: SecretBytes,
        now: SystemTime,
    ) {
        self.update(name, |s| {
            s.endpoint_body = Some(endpoint_body);
            s.credentials = Some(credentials);
            s.last_success = Some(now);
            s.recovering = s.consecutive_failures > 0;
            s.consecutive_failures = 0;
            s.last_error = None;
        });
    }

    /// A failed attempt for `name`; returns the failures in a row, this one included.
    pub fn record_failure(&self, name: &RoleName, error: &AssumeError) -> u32 {
        self.update(name, |s| {
            s.consecutive_failures += 1;
            s.last_error = Some(error.clone());
            s.consecutive_failures
        })
        .unwrap_or(1)
    }

    /// Every output of `name` now holds credentials expiring at `expiration` (or newer).
    pub fn record_published(&self, name: &RoleName, expiration: Option<SystemTime>) {
        self.update(name, |s| {
            s.published = expiration;
            s.recovering = false;
        });
    }

    /// The outputs of `name` no longer hold credentials (they expired and were removed).
    pub fn record_withdrawn(&self, name: &RoleName) {
        self.update(name, |s| s.published = None);
    }

    /// When the loop of `name` must next show progress (none while it waits for its turn).
    pub fn set_heartbeat(&self, name: &RoleName, deadline: Option<SystemTime>) {
        self.update(name, |s| s.heartbeat_deadline = deadline);
    }

    /// When the next attempt for `name` is scheduled.
    pub fn set_next_refresh(&self, name: &RoleName, at: SystemTime) {
        self.update(name, |s| s.next_refresh = Some(at));
    }

    /// The credentials of `name`, if it has any valid at `now`.
    pub fn valid_credentials_of(
        &self,
        name: &RoleName,
        now: SystemTime,
    ) -> Option<Arc<Credentials>> {
        let roles = self.roles.read().expect("state lock poisoned");
        roles.get(name)?.valid_credentials(now).cloned()
    }

    /// What the endpoint answers for `role` at `now`, found without copying the role's state.
    pub fn endpoint_answer(&self, role: &str, now: SystemTime) -> EndpointAnswer {
        let roles = self.roles.read().expect("state lock poisoned");
        match roles.get(role) {
            None => EndpointAnswer::UnknownRole,
            Some(s) => match (s.valid_credentials(now), &s.endpoint_body) {
                (Some(creds), Some(body)) => EndpointAnswer::Ready {
                    body: body.clone(),
                    access_key_id: creds.access_key_id.clone(),
                },
                _ => EndpointAnswer::NoValidCredentials,
            },
        }
    }

    /// Sets the configured clients (at start, after a reload): a kept client keeps the fetch
    /// times of the roles it keeps.
    pub fn set_clients(&self, clients: &[ClientConfig]) {
        let mut sidecar = self.sidecar.write().expect("state lock poisoned");
        let mut old = std::mem::take(&mut sidecar.clients);
        for client in clients {
            let mut last_fetch = old
                .remove(&client.name)
                .map(|c| c.last_fetch)
                .unwrap_or_default();
            last_fetch.retain(|role, _| client.roles.contains(role));
            let state = ClientState {
                directory: client.directory.clone(),
                roles: client.roles.clone(),
                last_fetch,
            };
            sidecar.clients.insert(client.name.clone(), state);
        }
    }

    /// `client` got `role`'s credentials from the endpoint at `now`.
    pub fn record_fetch(&self, client: &ClientName, role: &RoleName, now: SystemTime) {
        let mut sidecar = self.sidecar.write().expect("state lock poisoned");
        if let Some(state) = sidecar.clients.get_mut(client) {
            state.last_fetch.insert(role.clone(), now);
        }
    }

    /// A copy of every client's state, by name.
    pub fn clients(&self) -> BTreeMap<ClientName, ClientState> {
        self.sidecar
            .read()
            .expect("state lock poisoned")
            .clients
            .clone()
    }

    /// Records the outcome of a reload.
    pub fn set_reload(&self, status: ReloadStatus) {
        self.sidecar.write().expect("state lock poisoned").reload = Some(status);
    }

    /// The outcome of the last reload, if any.
    pub fn reload(&self) -> Option<ReloadStatus> {
        self.sidecar
            .read()
            .expect("state lock poisoned")
            .reload
            .clone()
    }

    /// Sets the readiness margin (`refresh.min_remaining`, which a reload may change).
    pub fn set_min_remaining(&self, min_remaining: Option<Duration>) {
        self.sidecar
            .write()
            .expect("state lock poisoned")
            .min_remaining = min_remaining;
    }

    /// The readiness margin; none: each role's default.
    pub fn min_remaining(&self) -> Option<Duration> {
        self.sidecar
            .read()
            .expect("state lock poisoned")
            .min_remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assume::ErrorKind;
    use crate::credentials::Secret;

    const MIN: Duration = Duration::from_secs(1200);

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn with_creds(expiry: u64) -> RoleState {
        RoleState {
            credentials: Some(Arc::new(Credentials {
                access_key_id: "ASIA".into(),
                secret_access_key: Secret::new("s"),
                session_token: Secret::new("t"),
                expiration: at(expiry),
                issued: at(0),
                role_arn: "arn".into(),
                account_id: "111111111111".into(),
            })),
            published: Some(at(expiry)),
            ..RoleState::default()
        }
    }

    #[test]
    fn ready_only_with_valid_published_credentials() {
        assert!(RoleState::default()
            .readiness(at(0), Some(MIN))
            .unwrap_err()
            .contains("no credentials yet"));
        assert!(with_creds(3600).readiness(at(100), Some(MIN)).is_ok());
        assert!(with_creds(3600)
            .readiness(at(3600), Some(MIN))
            .unwrap_err()
            .contains("expired"));
        let unpublished = RoleState {
            published: None,
            ..with_creds(3600)
        };
        assert!(unpublished.readiness(at(100), Some(MIN)).is_err());
        let mut broken = with_creds(3600);
        broken
            .write_errors
            .insert("env_file".into(), "disk full".into());
        assert!(broken
            .readiness(at(100), Some(MIN))
            .unwrap_err()
            .contains("env_file"));
    }

    #[test]
    fn not_ready_near_expiry_only_while_refreshes_fail() {
        let near = at(3600 - 600);
        assert!(
            with_creds(3600).readiness(near, Some(MIN)).is_ok(),
            "no failure: still ready"
        );
        let mut failing = with_creds(3600);
        failing.consecutive_failures = 2;
        failing.last_error = Some(crate::assume::AssumeError {
            kind: ErrorKind::Network,
            code: None,
            message: "unreachable".into(),
        });
        assert!(
            failing.readiness(at(100), Some(MIN)).is_ok(),
            "plenty left: still ready"
        );
        let why = failing.readiness(near, Some(MIN)).unwrap_err();
        assert!(
            why.contains("expire in 600s") && why.contains("network"),
            "{why}"
        );
    }

    #[test]
    fn what_the_outputs_hold_decides_readiness_through_a_refresh() {
        // A refresh succeeded after failures; its credentials are not written yet.
        let mut recovering = with_creds(7200);
        recovering.published = Some(at(3600));
        recovering.recovering = true;
        let why = recovering.readiness(at(3600 - 600), Some(MIN)).unwrap_err();
        assert!(why.contains("being written"), "{why}");
        assert!(
            recovering.readiness(at(100), Some(MIN)).is_ok(),
            "the old ones have plenty left: no flicker"
        );
        recovering.published = Some(at(7200));
        recovering.recovering = false;
        assert!(recovering.readiness(at(3600 - 600), Some(MIN)).is_ok());
        // An on-time refresh at exactly min_remaining: still ready while its files are written.
        let mut on_time = with_creds(7200);
        on_time.published = Some(at(3600));
        assert!(on_time.readiness(at(3600 - 600), Some(MIN)).is_ok());
    }

    #[test]
    fn serving_ignores_failing_refreshes_until_the_credentials_in_the_outputs_expire() {
        assert!(RoleState::default().serving(at(0)).is_err(), "nothing yet");
        let mut failing = with_creds(3600);
        failing.consecutive_failures = 9;
        let near = at(3600 - 60);
        assert!(
            failing.readiness(near, Some(MIN)).is_err(),
            "not ready near expiry"
        );
        assert_eq!(failing.serving(near), Ok(()), "but serving");
        assert!(failing.serving(at(3600)).unwrap_err().contains("expired"));
        failing.heartbeat_deadline = Some(at(100));
        assert!(
            failing.serving(at(200)).is_err(),
            "a wedged loop is not serving"
        );
        let unwritten = RoleState {
            published: None,
            ..with_creds(3600)
        };
        assert!(unwritten.serving(at(100)).is_err());
    }

    #[test]
    fn a_loop_past_its_heartbeat_deadline_is_not_alive() {
        let mut s = RoleState::default();
        assert!(
            s.liveness(at(10)).is_ok(),
            "waiting for a turn has no deadline"
        );
        s.heartbeat_deadline = Some(at(100));
        assert!(s.liveness(at(100)).is_ok());
        assert!(s.liveness(at(101)).is_err());
    }
}
