//! The work behind the outputs' lock: rendering each file from the state and writing or
//! removing it in each directory, and keeping each outcome in the role's state.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::time::Instant;

use super::places::Place;
use super::{atomic, env, ini, process_json, Output, WriteFailure};
use crate::config::{OutputsConfig, RoleName};
use crate::credentials::Credentials;
use crate::state::{RoleState, State};

/// How many times as long as a rewrite of `credentials` took the next paced one waits: when
/// thousands of roles refresh together, the file (megabytes by then) is rewritten once for
/// many of them, with at most a tenth of the writer's time, instead of back to back for a few
/// each, which made the start quadratic.
pub(super) const CREDENTIALS_PACE: u32 = 9;

/// What the writes need to know, behind the outputs' lock.
#[derive(Debug)]
pub(super) struct Writer {
    /// The last `credentials` written renders every publication numbered up to this one, so a
    /// publication with a lower number (its credentials were in the state before that render
    /// began) need not write the file again: many roles refreshing together write it once or
    /// twice, not once each.
    pub(super) credentials_upto: u64,
    /// A paced rewrite of `credentials` waits for this: [`CREDENTIALS_PACE`] times as long as
    /// the last rewrite took, after it ended.
    pub(super) credentials_not_before: Option<Instant>,
    /// Set by `remove_all` at shutdown: a write still in flight must not bring the files back.
    pub(super) closed: bool,
    pub(super) config: OutputsConfig,
    /// Goes into the config INI.
    pub(super) region: String,
    /// The configured roles, in order.
    pub(super) roles: Vec<RoleName>,
    /// The top level first, then each client's directory.
    pub(super) places: Vec<Place>,
    /// The token file's name, once tokens are issued (`credentials_endpoint.token_file`).
    pub(super) token_file: Option<String>,
}

impl Writer {
    /// The roles whose files go to `place`, in its order.
    pub(super) fn roles_of(&self, place: &Place) -> Vec<RoleName> {
        match &place.roles {
            None => self.roles.clone(),
            Some(roles) => {
                let configured: HashSet<&RoleName> = self.roles.iter().collect();
                roles
                    .iter()
                    .filter(|r| configured.contains(r))
                    .cloned()
                    .collect()
            }
        }
    }

    pub(super) fn write(
        &self,
        place: &Place,
        output: Output,
        name: &str,
        body: &str,
    ) -> Result<(), WriteFailure> {
        self.write_each(place, &[(output, name, body)])
            .pop()
            .expect("one result for one file")
    }

    /// Writes each `(output, name, body)` in `place`, with one fsync of the directory.
    fn write_each(
        &self,
        place: &Place,
        files: &[(Output, &str, &str)],
    ) -> Vec<Result<(), WriteFailure>> {
        if self.closed {
            return files.iter().map(|_| Ok(())).collect();
        }
        let config = &self.config;
        let contents: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(_, name, body)| (*name, body.as_bytes()))
            .collect();
        let group = config.owner.map(|owner| owner.gid);
        let results = atomic::write_each(&place.dir, &contents, config.file_mode.0, group);
        files
            .iter()
            .zip(results)
            .map(|((output, name, _), result)| {
                result.map_err(|error| WriteFailure {
                    output: *output,
                    path: place.dir.join(name),
                    removing: false,
                    error,
                })
            })
            .collect()
    }

    pub(super) fn remove(
        &self,
        place: &Place,
        output: Output,
        name: &str,
    ) -> Result<(), WriteFailure> {
        atomic::remove(&place.dir, name).map_err(|error| WriteFailure {
            output,
            path: place.dir.join(name),
            removing: true,
            error,
        })
    }

    /// Writes `<role>.json` and `<role>.env` in `place` from the role's valid credentials.
    pub(super) fn write_role_files(
        &self,
        state: &State,
        place: &Place,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let Some(creds) = state
            .get(role)
            .and_then(|s| s.valid_credentials(now).cloned())
        else {
            return Vec::new();
        };
        let rendered: Vec<(Output, String, String)> = Output::PER_ROLE
            .into_iter()
            .filter(|output| output.enabled(&self.config))
            .filter_map(|output| {
                let name = output.file_name(role.as_str())?;
                let body = match output {
                    Output::ProcessJson => process_json::render(&creds),
                    _ => env::render(&creds),
                };
                Some((output, name, body))
            })
            .collect();
        let files: Vec<(Output, &str, &str)> = rendered
            .iter()
            .map(|(output, name, body)| (*output, name.as_str(), body.as_str()))
            .collect();
        let mut failures = Vec::new();
        for ((output, _, _), result) in files.iter().zip(self.write_each(place, &files)) {
            record(state, role, place.key(*output), result.as_ref().err());
            failures.extend(result.err());
        }
        failures
    }

    /// Writes `role`'s own files in every place it goes to.
    pub(super) fn write_role_everywhere(
        &self,
        state: &State,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        self.places
            .iter()
            .filter(|place| place.has(role))
            .flat_map(|place| self.write_role_files(state, place, role, now))
            .collect()
    }

    /// Rewrites every place's `credentials` and remembers which publications they cover.
    pub(super) fn write_credentials_upto(
        &mut self,
        state: &State,
        now: SystemTime,
        publications: &AtomicU64,
    ) -> Vec<WriteFailure> {
        let covered = publications.load(Ordering::SeqCst);
        let started = Instant::now();
        let failures = self.write_all_credentials(state, now);
        let ended = Instant::now();
        self.credentials_not_before = Some(ended + (ended - started) * CREDENTIALS_PACE);
        if failures.is_empty() {
            self.credentials_upto = covered;
        }
        failures
    }

    /// Removes `<role>.env`, then `<role>.json` from `place`: once the JSON is gone, nothing of
    /// the role is left there.
    pub(super) fn remove_role_files(&self, place: &Place, role: &RoleName) -> Vec<WriteFailure> {
        [Output::EnvFile, Output::ProcessJson]
            .into_iter()
            .filter_map(|output| {
                let name = output.file_name(role.as_str())?;
                self.remove(place, output, &name).err()
            })
            .collect()
    }

    /// Removes `role`'s own files from every place it goes to.
    pub(super) fn remove_role_everywhere(&self, role: &RoleName) -> Vec<WriteFailure> {
        self.places
            .iter()
            .filter(|place| place.has(role))
            .flat_map(|place| self.remove_role_files(place, role))
            .collect()
    }

    /// Removes the files of outputs that `old` wrote and the current settings no longer do
    /// (turned off, or renamed), in every place.
    pub(super) fn remove_dropped_files(&self, old: &OutputsConfig) -> Vec<WriteFailure> {
        let mut failures = Vec::new();
        for place in &self.places {
            for (output, before, after) in [
                (
                    Output::Credentials,
                    &old.credentials_file,
                    &self.config.credentials_file,
                ),
                (Output::Config, &old.config_file, &self.config.config_file),
            ] {
                if let Some(name) = before.as_ref().filter(|b| Some(*b) != after.as_ref()) {
                    failures.extend(self.remove(place, output, name).err());
                }
            }
            for role in self.roles_of(place) {
                for output in Output::PER_ROLE {
                    if output.enabled(old) && !output.enabled(&self.config) {
                        let name = output.file_name(role.as_str()).expect("a per-role output");
                        failures.extend(self.remove(place, output, &name).err());
                    }
                }
            }
        }
        failures
    }

    /// Rewrites `config` and the token file of each place if someone deleted them or their last
    /// write failed; they change only at a start or a reload, so the next publication is when
    /// they come back.
    pub(super) fn restore_shared(&mut self, state: &State) -> Vec<WriteFailure> {
        let mut failures = Vec::new();
        for index in 0..self.places.len() {
            let place = &self.places[index];
            let missing = |name: &str| !place.dir.join(name).exists();
            if place.config_failed || self.config.config_file.as_deref().is_some_and(missing) {
                failures.extend(self.write_config(state, index));
            }
            let place = &self.places[index];
            let missing = |name: &str| !place.dir.join(name).exists();
            let token = match (&place.token, &self.token_file) {
                (Some(token), Some(name)) if place.token_failed || missing(name) => {
                    Some(self.write(place, Output::Token, name, token.expose()))
                }
                (Some(_), Some(_)) => Some(Ok(())),
                _ => None,
            };
            if let Some(result) = token {
                failures.extend(self.token_outcome(state, index, result));
            }
        }
        failures
    }

    /// Writes the token file of the place at `index`, if it has a token.
    pub(super) fn write_token(&mut self, state: &State, index: usize) -> Option<WriteFailure> {
        let place = &self.places[index];
        let (Some(token), Some(name)) = (&place.token, &self.token_file) else {
            return None;
        };
        let result = self.write(place, Output::Token, name, token.expose());
        if result.is_err() {
            // What is there is an earlier token, which the endpoint refuses: none is better
            // (removing takes no space). Best effort: a directory there stays.
            let _ = self.remove(place, Output::Token, name);
        }
        self.token_outcome(state, index, result)
    }

    /// Records a write of the token file of the place at `index`: a failure is every one of
    /// its roles' (the endpoint needs it for all of them), and so is the success that ends it.
    pub(super) fn token_outcome(
        &mut self,
        state: &State,
        index: usize,
        result: Result<(), WriteFailure>,
    ) -> Option<WriteFailure> {
        let place = &self.places[index];
        if result.is_err() || place.token_failed {
            for role in self.roles_of(place) {
                record(
                    state,
                    &role,
                    place.key(Output::Token),
                    result.as_ref().err(),
                );
            }
        }
        self.places[index].token_failed = result.is_err();
        result.err()
    }

    /// Rewrites `config` of the place at `index` for its roles, recording the result for each.
    pub(super) fn write_config(&mut self, state: &State, index: usize) -> Option<WriteFailure> {
        let place = &self.places[index];
        let Some(name) = self.config.config_file.as_ref() else {
            self.places[index].config_failed = false;
            return None;
        };
        let config = &self.config;
        let roles = self.roles_of(place);
        let app_dir = place.app_dir.as_deref().unwrap_or(config.app_dir());
        let default_role = config.default_role.as_ref().filter(|r| roles.contains(r));
        let body = ini::render_config(
            &roles,
            &config.process_command,
            app_dir,
            &self.region,
            default_role,
        );
        let result = self.write(place, Output::Config, name, &body);
        for role in &roles {
            record(
                state,
                role,
                place.key(Output::Config),
                result.as_ref().err(),
            );
        }
        self.places[index].config_failed = result.is_err();
        result.err()
    }

    /// Rewrites every place's `config`.
    pub(super) fn write_all_configs(&mut self, state: &State) -> Vec<WriteFailure> {
        (0..self.places.len())
            .filter_map(|index| self.write_config(state, index))
            .collect()
    }

    /// Rewrites `credentials` of `place` from its roles' valid credentials.
    pub(super) fn write_credentials(
        &self,
        state: &State,
        place: &Place,
        now: SystemTime,
    ) -> Option<WriteFailure> {
        let name = self.config.credentials_file.as_ref()?;
        let roles = self.roles_of(place);
        // A set: the file is rewritten for thousands of roles, each looked up here.
        let roles: HashSet<&RoleName> = roles.iter().collect();
        let default_role = self
            .config
            .default_role
            .as_ref()
            .filter(|r| roles.contains(r));
        // Rendered from the state in place: no copy of every role's credentials.
        let (body, written) = state.read_roles(|all| {
            let creds: Vec<(&RoleName, &Credentials)> = all
                .iter()
                .filter(|(name, _)| roles.contains(name))
                .filter_map(|(name, s)| Some((name, &**s.valid_credentials(now)?)))
                .collect();
            let written: Vec<RoleName> = creds.iter().map(|(name, _)| (*name).clone()).collect();
            (ini::render_credentials(&creds, default_role), written)
        });
        let result = self.write(place, Output::Credentials, name, &body);
        let key = place.key(Output::Credentials);
        let failure = result.as_ref().err();
        state.update_each(&written, |s| keep_outcome(s, &key, failure));
        result.err()
    }

    /// Rewrites every place's `credentials`.
    pub(super) fn write_all_credentials(
        &self,
        state: &State,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        self.places
            .iter()
            .filter_map(|place| self.write_credentials(state, place, now))
            .collect()
    }
}

/// Keeps the outcome of a write in the role's state under `key`: the failure until a later
/// write succeeds.
fn record(state: &State, role: &RoleName, key: String, failure: Option<&WriteFailure>) {
    state.update(role, |s| keep_outcome(s, &key, failure));
}

fn keep_outcome(s: &mut RoleState, key: &str, failure: Option<&WriteFailure>) {
    match failure {
        Some(failure) => {
            s.write_errors.insert(key.to_string(), failure.to_string());
        }
        None => {
            s.write_errors.remove(key);
        }
    }
}

/// The output label of a `write_errors` key.
pub(super) fn key_output(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
