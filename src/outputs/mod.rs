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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::{OutputsConfig, RoleConfig, RoleName};
use crate::credentials::Secret;
use crate::state::State;

/// Output names, as the `output` label of `rolerelay_output_write_errors_total` uses them.
pub const CREDENTIALS: &str = "credentials";
/// The config INI.
pub const CONFIG: &str = "config";
/// `<role>.json`.
pub const PROCESS_JSON: &str = "process_json";
/// `<role>.env`.
pub const ENV_FILE: &str = "env_file";
/// The endpoint's token file.
pub const TOKEN: &str = "token";

/// A failed write: which output and why.
pub type WriteFailure = (&'static str, String);

/// Writes the outputs of every role.
#[derive(Debug)]
pub struct Outputs {
    /// The settings and the roles; the lock also serializes every write.
    inner: Mutex<Inner>,
    /// Counts publications; see `Inner::credentials_upto`.
    publications: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    /// The last `credentials` written renders every publication numbered up to this one, so a
    /// publication with a lower number (its credentials were in the state before that render
    /// began) need not write the file again: many roles refreshing together write it once or
    /// twice, not once each.
    credentials_upto: u64,
    /// Set by `remove_all` at shutdown: a write still in flight must not bring the files back.
    closed: bool,
    /// The endpoint's token file, once written: rewritten when the mode or owner change.
    token: Option<(String, Secret)>,
    /// The last write of the token file failed (and every role records it).
    token_failed: bool,
    config: OutputsConfig,
    /// Goes into the config INI.
    region: String,
    /// The configured roles, in order.
    roles: Vec<RoleName>,
}

impl Outputs {
    /// Outputs for `roles` as `config` describes them; `region` goes into the config INI.
    pub fn new(config: &OutputsConfig, region: &str, roles: &[RoleConfig]) -> Outputs {
        let inner = Inner {
            credentials_upto: 0,
            closed: false,
            token: None,
            token_failed: false,
            config: config.clone(),
            region: region.to_string(),
            roles: roles.iter().map(|r| r.name.clone()).collect(),
        };
        Outputs {
            inner: Mutex::new(inner),
            publications: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("outputs lock poisoned")
    }

    /// Creates the directory if missing, removes temporary files a crash left and the files of
    /// configured roles whose credentials expired meanwhile (an emptyDir outlives a container
    /// restart), and writes `config`. Valid files of an earlier run stay until replaced.
    pub fn prepare(&self, state: &State, now: SystemTime) -> io::Result<usize> {
        let inner = self.lock();
        let dir = &inner.config.directory;
        if !dir.is_dir() {
            DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
            if let Some(o) = inner.config.owner {
                std::os::unix::fs::chown(dir, Some(o.uid), Some(o.gid))?;
            }
        }
        let mut removed = atomic::remove_stale_temp_files(dir)?;
        for role in &inner.roles {
            let json = dir.join(format!("{role}.json"));
            if json.exists() && process_json::read_current(dir, role.as_str(), now).is_err() {
                inner.remove_role_files(role);
                removed += 1;
            }
        }
        match inner.write_config(state) {
            Some(failure) => Err(io::Error::other(failure.1)),
            None => Ok(removed),
        }
    }

    /// Writes `role`'s files from its credentials in `state` and rewrites `credentials`.
    ///
    /// Nothing is written for credentials that are expired at `now`. Each failure is also kept
    /// in the role's state until a later write of that output succeeds.
    pub fn publish(&self, state: &State, role: &RoleName, now: SystemTime) -> Vec<WriteFailure> {
        // Numbered after the caller put the credentials in the state, before taking the lock.
        let number = self.publications.fetch_add(1, Ordering::SeqCst) + 1;
        let mut inner = self.lock();
        let mut failures = inner.write_role_files(state, role, now);
        if inner.credentials_upto < number {
            failures.extend(inner.write_credentials_upto(state, now, &self.publications));
        }
        failures.extend(inner.restore_missing(state));
        failures
    }

    /// Removes `role`'s own files and its `credentials` section (its credentials expired).
    ///
    /// The shared file goes first, so once `<role>.json` is gone, `credentials` is too.
    pub fn withdraw(&self, state: &State, role: &RoleName, now: SystemTime) -> Vec<WriteFailure> {
        let inner = self.lock();
        let mut failures: Vec<WriteFailure> =
            inner.write_credentials(state, now).into_iter().collect();
        failures.extend(inner.remove_role_files(role));
        failures
    }

    /// Sets the configured roles (after a reload) and rewrites `config`; `credentials` is
    /// rewritten without the roles no longer configured, and then their own files are removed
    /// (as in `withdraw`: once `<role>.json` is gone, so are the role's sections).
    pub fn set_roles(
        &self,
        roles: &[RoleConfig],
        state: &State,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let mut inner = self.lock();
        let names: Vec<RoleName> = roles.iter().map(|r| r.name.clone()).collect();
        let gone: Vec<RoleName> = inner
            .roles
            .iter()
            .filter(|r| !names.contains(r))
            .cloned()
            .collect();
        inner.roles = names;
        let mut failures: Vec<WriteFailure> = inner.write_config(state).into_iter().collect();
        failures.extend(inner.write_credentials(state, now));
        failures.extend(gone.iter().flat_map(|r| inner.remove_role_files(r)));
        failures
    }

    /// Applies new settings (after a reload; the directory stays): removes the files of outputs
    /// that were turned off or renamed, then rewrites every file with the new settings.
    pub fn reconfigure(
        &self,
        config: &OutputsConfig,
        region: &str,
        state: &State,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let mut inner = self.lock();
        let mut failures = Vec::new();
        let old = std::mem::replace(&mut inner.config, config.clone());
        inner.config.directory = old.directory.clone();
        inner.region = region.to_string();
        let dir = &inner.config.directory;
        for (output, before, after) in [
            (
                CREDENTIALS,
                &old.credentials_file,
                &inner.config.credentials_file,
            ),
            (CONFIG, &old.config_file, &inner.config.config_file),
        ] {
            if let Some(name) = before.as_ref().filter(|b| Some(*b) != after.as_ref()) {
                if let Err(e) = atomic::remove(dir, name) {
                    failures.push((output, e.to_string()));
                }
            }
        }
        for role in &inner.roles {
            for (output, was, is, ext) in [
                (
                    PROCESS_JSON,
                    old.process_json,
                    inner.config.process_json,
                    "json",
                ),
                (ENV_FILE, old.env_file, inner.config.env_file, "env"),
            ] {
                if was && !is {
                    if let Err(e) = atomic::remove(dir, &format!("{role}.{ext}")) {
                        failures.push((output, e.to_string()));
                    }
                }
            }
        }
        // An output turned off can no longer fail: forget its last error, or the role stays unready.
        let c = &inner.config;
        let off: Vec<&'static str> = [
            (c.credentials_file.is_none(), CREDENTIALS),
            (c.config_file.is_none(), CONFIG),
            (!c.process_json, PROCESS_JSON),
            (!c.env_file, ENV_FILE),
        ]
        .into_iter()
        .filter_map(|(is_off, output)| is_off.then_some(output))
        .collect();
        for role in &inner.roles {
            state.update(role, |s| {
                s.write_errors.retain(|output, _| !off.contains(output))
            });
        }
        failures.extend(inner.write_config(state));
        for role in inner.roles.clone() {
            failures.extend(inner.write_role_files(state, &role, now));
        }
        failures.extend(inner.write_credentials(state, now));
        if let Some(result) = inner
            .token
            .as_ref()
            .map(|(n, t)| inner.write(n, t.expose()))
        {
            failures.extend(inner.token_outcome(state, result));
        }
        failures
    }

    /// Removes every file rolerelay writes (for `remove_on_exit`).
    /// Later writes are skipped, so a write still in flight cannot bring a file back; every file
    /// is tried, and the first error is returned.
    pub fn remove_all(&self) -> io::Result<()> {
        let mut inner = self.lock();
        inner.closed = true;
        let c = &inner.config;
        let token = inner.token.as_ref().map(|(name, _)| name.clone());
        let fixed = [c.credentials_file.clone(), c.config_file.clone(), token];
        let roles = inner
            .roles
            .iter()
            .flat_map(|r| [format!("{r}.json"), format!("{r}.env")]);
        let names: Vec<String> = fixed.into_iter().flatten().chain(roles).collect();
        let mut first_error = None;
        for name in names {
            if let Err(e) = atomic::remove(&c.directory, &name) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes the endpoint's token file (without a trailing newline: SDKs send it verbatim), and
    /// keeps it to rewrite after a reload and to remove at exit.
    pub fn write_token(&self, name: &str, token: &Secret) -> Result<(), String> {
        let mut inner = self.lock();
        inner.write(name, token.expose())?;
        inner.token = Some((name.to_string(), token.clone()));
        Ok(())
    }
}

impl Inner {
    fn write(&self, name: &str, body: &str) -> Result<(), String> {
        if self.closed {
            return Ok(());
        }
        let c = &self.config;
        atomic::write(&c.directory, name, body.as_bytes(), c.file_mode.0, c.owner)
            .map_err(|e| format!("cannot write {}: {e}", c.directory.join(name).display()))
    }

    /// Writes `<role>.json` and `<role>.env` from the role's valid credentials.
    fn write_role_files(
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
        failures
    }

    /// Rewrites `credentials` and remembers which publications it covers.
    fn write_credentials_upto(
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
    fn remove_role_files(&self, role: &RoleName) -> Vec<WriteFailure> {
        [
            (ENV_FILE, format!("{role}.env")),
            (PROCESS_JSON, format!("{role}.json")),
        ]
        .into_iter()
        .filter_map(|(output, name)| {
            atomic::remove(&self.config.directory, &name)
                .err()
                .map(|e| (output, e.to_string()))
        })
        .collect()
    }

    /// Rewrites `config` and the token file if someone deleted them; they change only at a
    /// start or a reload, so the next publication is when they come back.
    fn restore_missing(&mut self, state: &State) -> Vec<WriteFailure> {
        let missing = |name: &str| !self.config.directory.join(name).exists();
        let mut failures = Vec::new();
        if self.config.config_file.as_deref().is_some_and(missing) {
            failures.extend(self.write_config(state));
        }
        let token = match &self.token {
            Some((name, token)) if missing(name) => Some(self.write(name, token.expose())),
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
    fn token_outcome(&mut self, state: &State, result: Result<(), String>) -> Option<WriteFailure> {
        if result.is_err() || self.token_failed {
            for role in &self.roles {
                record(state, role, TOKEN, result.as_ref().err());
            }
        }
        self.token_failed = result.is_err();
        result.err().map(|e| (TOKEN, e))
    }

    /// Rewrites `config` for the configured roles, recording the result for each.
    fn write_config(&self, state: &State) -> Option<WriteFailure> {
        let name = self.config.config_file.as_ref()?;
        let c = &self.config;
        let body = ini::render_config(
            &self.roles,
            &c.process_command,
            c.app_dir(),
            &self.region,
            c.default_role.as_ref(),
        );
        let result = self.write(name, &body);
        for role in &self.roles {
            record(state, role, CONFIG, result.as_ref().err());
        }
        result.err().map(|e| (CONFIG, e))
    }

    /// Rewrites `credentials` from every role's valid credentials.
    fn write_credentials(&self, state: &State, now: SystemTime) -> Option<WriteFailure> {
        let name = self.config.credentials_file.as_ref()?;
        let creds: std::collections::BTreeMap<_, _> = state
            .valid_credentials(now)
            .into_iter()
            .filter(|(name, _)| self.roles.contains(name))
            .collect();
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
