//! The work behind the outputs' lock: rendering each file from the state and writing or
//! removing it, and keeping each outcome in the role's state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::{atomic, env, ini, process_json, Output, WriteFailure};
use crate::config::{OutputsConfig, RoleName};
use crate::credentials::Secret;
use crate::state::State;

/// What the writes need to know, behind the outputs' lock.
#[derive(Debug)]
pub(super) struct Writer {
    /// The last `credentials` written renders every publication numbered up to this one, so a
    /// publication with a lower number (its credentials were in the state before that render
    /// began) need not write the file again: many roles refreshing together write it once or
    /// twice, not once each.
    pub(super) credentials_upto: u64,
    /// Set by `remove_all` at shutdown: a write still in flight must not bring the files back.
    pub(super) closed: bool,
    /// The endpoint's token file, once written: rewritten when the mode or group change.
    pub(super) token: Option<(String, Secret)>,
    /// The last write of the token file failed (and every role records it).
    pub(super) token_failed: bool,
    /// The last write of `config` failed (and every role records it).
    pub(super) config_failed: bool,
    pub(super) config: OutputsConfig,
    /// Goes into the config INI.
    pub(super) region: String,
    /// The configured roles, in order.
    pub(super) roles: Vec<RoleName>,
}

impl Writer {
    pub(super) fn dir(&self) -> &Path {
        &self.config.directory
    }

    pub(super) fn write(&self, output: Output, name: &str, body: &str) -> Result<(), WriteFailure> {
        if self.closed {
            return Ok(());
        }
        let config = &self.config;
        atomic::write(
            self.dir(),
            name,
            body.as_bytes(),
            config.file_mode.0,
            config.owner.map(|owner| owner.gid),
        )
        .map_err(|error| WriteFailure {
            output,
            path: self.dir().join(name),
            removing: false,
            error,
        })
    }

    pub(super) fn remove(&self, output: Output, name: &str) -> Result<(), WriteFailure> {
        atomic::remove(self.dir(), name).map_err(|error| WriteFailure {
            output,
            path: self.dir().join(name),
            removing: true,
            error,
        })
    }

    /// Writes `<role>.json` and `<role>.env` from the role's valid credentials.
    pub(super) fn write_role_files(
        &self,
        state: &State,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let Some(creds) = state
            .get(role)
            .and_then(|s| s.valid_credentials(now).cloned())
        else {
            return Vec::new();
        };
        let mut failures = Vec::new();
        for output in Output::PER_ROLE {
            let (Some(name), true) = (
                output.file_name(role.as_str()),
                output.enabled(&self.config),
            ) else {
                continue;
            };
            let body = match output {
                Output::ProcessJson => process_json::render(&creds),
                _ => env::render(&creds),
            };
            let result = self.write(output, &name, &body);
            record(state, role, output, result.as_ref().err());
            failures.extend(result.err());
        }
        failures
    }

    /// Rewrites `credentials` and remembers which publications it covers.
    pub(super) fn write_credentials_upto(
        &mut self,
        state: &State,
        now: SystemTime,
        publications: &AtomicU64,
    ) -> Option<WriteFailure> {
        let covered = publications.load(Ordering::SeqCst);
        let failure = self.write_credentials(state, now);
        if failure.is_none() {
            self.credentials_upto = covered;
        }
        failure
    }

    /// Removes `<role>.env`, then `<role>.json`: once the JSON is gone, nothing of the role is left.
    pub(super) fn remove_role_files(&self, role: &RoleName) -> Vec<WriteFailure> {
        [Output::EnvFile, Output::ProcessJson]
            .into_iter()
            .filter_map(|output| {
                let name = output.file_name(role.as_str())?;
                self.remove(output, &name).err()
            })
            .collect()
    }

    /// Removes the files of outputs that `old` wrote and the current settings no longer do
    /// (turned off, or renamed).
    pub(super) fn remove_dropped_files(&self, old: &OutputsConfig) -> Vec<WriteFailure> {
        let mut failures = Vec::new();
        for (output, before, after) in [
            (
                Output::Credentials,
                &old.credentials_file,
                &self.config.credentials_file,
            ),
            (Output::Config, &old.config_file, &self.config.config_file),
        ] {
            if let Some(name) = before.as_ref().filter(|b| Some(*b) != after.as_ref()) {
                failures.extend(self.remove(output, name).err());
            }
        }
        for role in &self.roles {
            for output in Output::PER_ROLE {
                if output.enabled(old) && !output.enabled(&self.config) {
                    let name = output.file_name(role.as_str()).expect("a per-role output");
                    failures.extend(self.remove(output, &name).err());
                }
            }
        }
        failures
    }

    /// Rewrites `config` and the token file if someone deleted them or their last write failed;
    /// they change only at a start or a reload, so the next publication is when they come back.
    pub(super) fn restore_shared(&mut self, state: &State) -> Vec<WriteFailure> {
        let dir = self.dir().to_path_buf();
        let missing = |name: &str| !dir.join(name).exists();
        let mut failures = Vec::new();
        if self.config_failed || self.config.config_file.as_deref().is_some_and(missing) {
            failures.extend(self.write_config(state));
        }
        let token = match &self.token {
            Some((name, token)) if self.token_failed || missing(name) => {
                Some(self.write(Output::Token, name, token.expose()))
            }
            Some(_) => Some(Ok(())),
            None => None,
        };
        if let Some(result) = token {
            failures.extend(self.token_outcome(state, result));
        }
        failures
    }

    /// Records a write of the token file: a failure is every role's (the endpoint needs it for
    /// all of them), and so is the success that ends it.
    pub(super) fn token_outcome(
        &mut self,
        state: &State,
        result: Result<(), WriteFailure>,
    ) -> Option<WriteFailure> {
        if result.is_err() || self.token_failed {
            for role in &self.roles {
                record(state, role, Output::Token, result.as_ref().err());
            }
        }
        self.token_failed = result.is_err();
        result.err()
    }

    /// Rewrites `config` for the configured roles, recording the result for each.
    pub(super) fn write_config(&mut self, state: &State) -> Option<WriteFailure> {
        let Some(name) = self.config.config_file.as_ref() else {
            self.config_failed = false;
            return None;
        };
        let config = &self.config;
        let body = ini::render_config(
            &self.roles,
            &config.process_command,
            config.app_dir(),
            &self.region,
            config.default_role.as_ref(),
        );
        let result = self.write(Output::Config, name, &body);
        for role in &self.roles {
            record(state, role, Output::Config, result.as_ref().err());
        }
        self.config_failed = result.is_err();
        result.err()
    }

    /// Rewrites `credentials` from every role's valid credentials.
    pub(super) fn write_credentials(&self, state: &State, now: SystemTime) -> Option<WriteFailure> {
        let name = self.config.credentials_file.as_ref()?;
        let creds: BTreeMap<_, _> = state
            .valid_credentials(now)
            .into_iter()
            .filter(|(name, _)| self.roles.contains(name))
            .collect();
        let result = self.write(
            Output::Credentials,
            name,
            &ini::render_credentials(&creds, self.config.default_role.as_ref()),
        );
        for role in creds.keys() {
            record(state, role, Output::Credentials, result.as_ref().err());
        }
        result.err()
    }
}

/// Keeps the outcome of a write in the role's state: the failure until a later write succeeds.
fn record(state: &State, role: &RoleName, output: Output, failure: Option<&WriteFailure>) {
    state.update(role, |s| match failure {
        Some(failure) => {
            s.write_errors.insert(output.label(), failure.to_string());
        }
        None => {
            s.write_errors.remove(output.label());
        }
    });
}
