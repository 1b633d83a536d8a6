//! The files of the shared volume: one module per format, each file written atomically.
//!
//! Writes are serialized by one mutex: `credentials` holds every role, so two refreshers must
//! not render it at once, and each render reads the newest state so the last write wins with
//! the newest credentials of every role.

pub mod atomic;
pub mod env;
pub mod ini;
pub mod process_json;

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::{OutputsConfig, RoleConfig, RoleName};
use crate::state::State;

/// Output names, as the `output` label of `rolerelay_output_write_errors_total` uses them.
pub const CREDENTIALS: &str = "credentials";
/// The config INI.
pub const CONFIG: &str = "config";
/// `<role>.json`.
pub const PROCESS_JSON: &str = "process_json";
/// `<role>.env`.
pub const ENV_FILE: &str = "env_file";

/// A failed write: which output and why.
pub type WriteFailure = (&'static str, String);

/// Writes the outputs of every role.
#[derive(Debug)]
pub struct Outputs {
    config: OutputsConfig,
    region: String,
    /// The configured roles, in order; the lock also serializes every write.
    roles: Mutex<Vec<RoleName>>,
}

impl Outputs {
    /// Outputs for `roles` as `config` describes them; `region` goes into the config INI.
    pub fn new(config: &OutputsConfig, region: &str, roles: &[RoleConfig]) -> Outputs {
        Outputs {
            config: config.clone(),
            region: region.to_string(),
            roles: Mutex::new(roles.iter().map(|r| r.name.clone()).collect()),
        }
    }

    /// The output names written for every role, for readiness and metrics.
    pub fn enabled(&self) -> Vec<&'static str> {
        let c = &self.config;
        [
            (c.credentials_file.is_some(), CREDENTIALS),
            (c.config_file.is_some(), CONFIG),
            (c.process_json, PROCESS_JSON),
            (c.env_file, ENV_FILE),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// Creates the directory if missing, removes temporary files a crash left, and writes `config`.
    pub fn prepare(&self, state: &State) -> io::Result<usize> {
        let dir = &self.config.directory;
        if !dir.is_dir() {
            DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
            if let Some(o) = self.config.owner {
                std::os::unix::fs::chown(dir, Some(o.uid), Some(o.gid))?;
            }
        }
        let removed = atomic::remove_stale_temp_files(dir)?;
        let roles = self.roles.lock().expect("outputs lock poisoned");
        if let Some(failure) = self.write_config(&roles) {
            for role in roles.iter() {
                record(state, role, CONFIG, Some(&failure.1));
            }
            return Err(io::Error::other(failure.1));
        }
        for role in roles.iter() {
            record(state, role, CONFIG, None);
        }
        Ok(removed)
    }

    /// Writes `role`'s files from its credentials in `state` and rewrites `credentials`.
    ///
    /// Nothing is written for credentials that are expired at `now`. Each failure is also kept
    /// in the role's state until a later write of that output succeeds.
    pub fn publish(&self, state: &State, role: &RoleName, now: SystemTime) -> Vec<WriteFailure> {
        let _roles = self.roles.lock().expect("outputs lock poisoned");
        let Some(creds) = state
            .get(role)
            .and_then(|s| s.valid_credentials(now).cloned())
        else {
            return Vec::new();
        };
        let mut failures = Vec::new();
        let mut write_one = |output: &'static str, name: String, body: String| {
            let result = self.write(&name, &body);
            record(state, role, output, result.as_ref().err());
            if let Err(e) = result {
                failures.push((output, e));
            }
        };
        if self.config.process_json {
            write_one(
                PROCESS_JSON,
                format!("{role}.json"),
                process_json::render(&creds),
            );
        }
        if self.config.env_file {
            write_one(ENV_FILE, format!("{role}.env"), env::render(&creds));
        }
        failures.extend(self.write_credentials(state, now));
        failures
    }

    /// Removes `role`'s own files and its `credentials` section (its credentials expired or the
    /// role was removed).
    pub fn withdraw(&self, state: &State, role: &RoleName, now: SystemTime) -> Vec<WriteFailure> {
        let _roles = self.roles.lock().expect("outputs lock poisoned");
        let mut failures = Vec::new();
        for (output, name) in [
            (PROCESS_JSON, format!("{role}.json")),
            (ENV_FILE, format!("{role}.env")),
        ] {
            if let Err(e) = atomic::remove(&self.config.directory, &name) {
                failures.push((output, e.to_string()));
            }
        }
        failures.extend(self.write_credentials(state, now));
        failures
    }

    /// Removes every file rolerelay writes (for `remove_on_exit`).
    pub fn remove_all(&self, extra: &[String]) -> io::Result<()> {
        let roles = self.roles.lock().expect("outputs lock poisoned");
        let dir = &self.config.directory;
        let fixed = [
            self.config.credentials_file.as_deref(),
            self.config.config_file.as_deref(),
        ];
        for name in fixed
            .into_iter()
            .flatten()
            .chain(extra.iter().map(String::as_str))
        {
            atomic::remove(dir, name)?;
        }
        for role in roles.iter() {
            atomic::remove(dir, &format!("{role}.json"))?;
            atomic::remove(dir, &format!("{role}.env"))?;
        }
        Ok(())
    }

    /// Writes a file of the output directory with the configured mode and owner.
    pub fn write(&self, name: &str, body: &str) -> Result<(), String> {
        atomic::write(
            &self.config.directory,
            name,
            body.as_bytes(),
            self.config.file_mode.0,
            self.config.owner,
        )
        .map_err(|e| {
            format!(
                "cannot write {}: {e}",
                self.config.directory.join(name).display()
            )
        })
    }

    fn write_config(&self, roles: &[RoleName]) -> Option<WriteFailure> {
        let name = self.config.config_file.as_ref()?;
        let c = &self.config;
        let body = ini::render_config(
            roles,
            &c.process_command,
            c.app_dir(),
            &self.region,
            c.default_role.as_ref(),
        );
        self.write(name, &body).err().map(|e| (CONFIG, e))
    }

    /// Rewrites `credentials` from every role's valid credentials; the caller holds the lock.
    fn write_credentials(&self, state: &State, now: SystemTime) -> Option<WriteFailure> {
        let name = self.config.credentials_file.as_ref()?;
        let creds = state.valid_credentials(now);
        let result = self.write(
            name,
            &ini::render_credentials(&creds, self.config.default_role.as_ref()),
        );
        for role in creds.keys() {
            record(state, role, CREDENTIALS, result.as_ref().err());
        }
        result.err().map(|e| (CREDENTIALS, e))
    }
}

fn record(state: &State, role: &RoleName, output: &'static str, error: Option<&String>) {
    state.update(role, |s| match error {
        Some(e) => {
            s.write_errors.insert(output, e.clone());
        }
        None => {
            s.write_errors.remove(output);
        }
    });
}

#[cfg(test)]
mod tests;
