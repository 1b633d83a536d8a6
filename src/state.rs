//! What every role has now: written by the refreshers, read by the outputs and the HTTP side.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::assume::AssumeError;
use crate::config::{RoleConfig, RoleName};
use crate::credentials::Credentials;

/// The state of one role.
#[derive(Clone, Debug, Default)]
pub struct RoleState {
    /// The role's ARN.
    pub role_arn: String,
    /// The last credentials received, valid or not (readers check `is_valid_at`).
    pub credentials: Option<Arc<Credentials>>,
    /// When the last refresh succeeded.
    pub last_success: Option<SystemTime>,
    /// When the next attempt is scheduled.
    pub next_refresh: Option<SystemTime>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The last failure, kept until the next success.
    pub last_error: Option<AssumeError>,
    /// Outputs whose last write for this role failed, with the reason.
    pub write_errors: BTreeMap<&'static str, String>,
}

impl RoleState {
    /// The credentials, if they are still valid at `now`.
    pub fn valid_credentials(&self, now: SystemTime) -> Option<&Arc<Credentials>> {
        self.credentials.as_ref().filter(|c| c.is_valid_at(now))
    }
}

/// Shared, cloneable state of all roles.
///
/// One `std::sync::RwLock` over a small map: every access copies in or out and never holds the
/// lock across an `.await` or a file write, so a blocking lock is the simple right choice.
#[derive(Clone, Debug, Default)]
pub struct State {
    roles: Arc<RwLock<BTreeMap<RoleName, RoleState>>>,
}

impl State {
    /// A state holding `roles`, none of them with credentials yet.
    pub fn new(roles: &[RoleConfig]) -> State {
        let state = State::default();
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

    /// Runs `f` on one role's state, if the role exists.
    pub fn update(&self, name: &RoleName, f: impl FnOnce(&mut RoleState)) {
        if let Some(role) = self
            .roles
            .write()
            .expect("state lock poisoned")
            .get_mut(name)
        {
            f(role);
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

    /// A copy of every role's state, by name.
    pub fn snapshot(&self) -> BTreeMap<RoleName, RoleState> {
        self.roles.read().expect("state lock poisoned").clone()
    }

    /// Every role's credentials that are valid at `now`, by name.
    pub fn valid_credentials(&self, now: SystemTime) -> BTreeMap<RoleName, Arc<Credentials>> {
        let roles = self.roles.read().expect("state lock poisoned");
        roles
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), s.valid_credentials(now)?.clone())))
            .collect()
    }
}
