//! The files of the shared volume: one module per format, each file written atomically, in
//! each directory of `places` (the top level, and each client's); `layout` moves a reload from
//! one set of directories to the next, and `writer` does the writes behind the lock.
//!
//! Writes are serialized by one mutex: `credentials` holds every role, so two refreshers must
//! not render it at once, and each render reads the newest state so the last write wins with
//! the newest credentials of every role.
//!
//! Every write fsyncs, so each operation comes twice: `blocking_*`, which does the work on the
//! calling thread, and an `async` twin that runs it on tokio's blocking pool.

pub mod atomic;
pub mod container;
pub mod env;
pub mod ini;
mod layout;
mod places;
pub mod process_json;
mod read;
mod writer;

use std::fmt;
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::time::Instant;

use crate::access::Issued;
use crate::config::{ClientConfig, OutputsConfig, Owner, RoleConfig, RoleName};
use crate::state::State;
pub use places::Layout;
use places::{issued_to, Place};
use writer::Writer;

/// The mode of an output directory rolerelay creates: the files in it hold credentials, so
/// other users may not even list it; the group may, as `file_mode` lets it read them.
pub const DIRECTORY_MODE: u32 = 0o750;

/// One kind of file rolerelay writes. Its label is the `output` label of
/// `rolerelay_output_write_errors_total` and the key of a role's write errors in `/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Output {
    /// The shared credentials INI (`outputs.credentials_file`).
    Credentials,
    /// The config INI with `credential_process` (`outputs.config_file`).
    Config,
    /// `<role>.json`, in the credential_process format.
    ProcessJson,
    /// `<role>.env`.
    EnvFile,
    /// The endpoint's token file.
    Token,
}

impl Output {
    /// The outputs written once per role.
    pub const PER_ROLE: [Output; 2] = [Output::ProcessJson, Output::EnvFile];

    /// The fixed label value.
    pub fn label(self) -> &'static str {
        match self {
            Output::Credentials => "credentials",
            Output::Config => "config",
            Output::ProcessJson => "process_json",
            Output::EnvFile => "env_file",
            Output::Token => "token",
        }
    }

    /// The file of a per-role output for `role` (`<role>.json`, `<role>.env`); none for the
    /// shared outputs, whose names are configured.
    pub fn file_name(self, role: &str) -> Option<String> {
        match self {
            Output::ProcessJson => Some(format!("{role}.json")),
            Output::EnvFile => Some(format!("{role}.env")),
            Output::Credentials | Output::Config | Output::Token => None,
        }
    }

    /// Whether `config` turns this output on (the token is the endpoint's, always on here).
    fn enabled(self, config: &OutputsConfig) -> bool {
        match self {
            Output::Credentials => config.credentials_file.is_some(),
            Output::Config => config.config_file.is_some(),
            Output::ProcessJson => config.process_json,
            Output::EnvFile => config.env_file,
            Output::Token => true,
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A failed write or removal of one output's file. Its message names the file and the cause,
/// never the content.
#[derive(Debug, thiserror::Error)]
#[error("cannot {} {}: {error}", if *.removing { "remove" } else { "write" }, .path.display())]
pub struct WriteFailure {
    /// Which output.
    pub output: Output,
    /// The file.
    pub path: PathBuf,
    /// True when the file was being removed rather than written.
    pub removing: bool,
    /// The cause, with its `io::ErrorKind`.
    pub error: io::Error,
}

/// Creates the output directory with [`DIRECTORY_MODE`] (its missing parents 0755: they hold
/// nothing, and an application in `owner`'s group must pass through them). It stays this
/// process's: were it the application's, the application could delete and plant files in it.
/// With `owner`, it gets `owner`'s group, so the application lists and reads it but writes
/// nothing.
fn create_dir(dir: &Path, owner: Option<Owner>) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    let Some(owner) = owner else {
        return DirBuilder::new().mode(DIRECTORY_MODE).create(dir);
    };
    // Shut until its group is set, and changed through a descriptor of what was made, so that
    // a link swapped in meanwhile is refused rather than followed.
    DirBuilder::new().mode(0o700).create(dir)?;
    let made = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)?;
    std::os::unix::fs::fchown(&made, None, Some(owner.gid))?;
    made.set_permissions(Permissions::from_mode(DIRECTORY_MODE))
}

/// What preparing the output directory did; see [`Outputs::blocking_prepare`].
#[derive(Debug, Default)]
pub struct Prepared {
    /// Temporary files of an earlier run, and role files expired or unreadable, removed.
    pub removed: usize,
    /// Entries left in place, each with why.
    pub left: Vec<(PathBuf, io::Error)>,
    /// The failed write of `config`, already recorded in every role's state.
    pub failures: Vec<WriteFailure>,
}

/// Writes the outputs of every role: in the output directory, and in each client's.
#[derive(Debug)]
pub struct Outputs {
    /// The settings, the roles and the places; the lock also serializes every write (held only
    /// on the blocking pool, never across an `.await`).
    writer: Mutex<Writer>,
    /// Counts publications; see `Writer::credentials_upto`.
    publications: AtomicU64,
}

impl Outputs {
    /// Outputs for `roles` and `clients` as `config` describes them; `region` goes into the
    /// config INI.
    pub fn new(
        config: &OutputsConfig,
        region: &str,
        roles: &[RoleConfig],
        clients: &[ClientConfig],
    ) -> Outputs {
        let mut places = vec![Place::top(&config.directory)];
        places.extend(clients.iter().map(Place::client));
        let writer = Writer {
            credentials_upto: 0,
            credentials_not_before: None,
            closed: false,
            config: config.clone(),
            region: region.to_string(),
            roles: roles.iter().map(|r| r.name.clone()).collect(),
            places,
            token_file: None,
        };
        Outputs {
            writer: Mutex::new(writer),
            publications: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().expect("outputs lock poisoned")
    }

    /// Runs `job` on tokio's blocking pool: the writes fsync, which must not stall the async
    /// threads.
    async fn in_background<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&Outputs) -> T + Send + 'static,
    ) -> T {
        let outputs = self.clone();
        tokio::task::spawn_blocking(move || job(&outputs))
            .await
            .expect("writing the outputs does not panic")
    }

    /// Creates each directory if missing, removes temporary files a crash left and the files of
    /// configured roles whose credentials expired meanwhile (an emptyDir outlives a container
    /// restart), and writes `config`. Valid files of an earlier run stay until replaced.
    ///
    /// Only a directory that cannot be created is an error. What else is found there (planted or
    /// left: a directory under a temporary name, a role file that cannot be removed) is left and
    /// reported, and a failed write of `config` is every role's write error, retried with the
    /// roles' writes.
    pub fn blocking_prepare(&self, state: &State, now: SystemTime) -> io::Result<Prepared> {
        let mut writer = self.lock();
        let mut prepared = Prepared::default();
        for index in 0..writer.places.len() {
            let place = &writer.places[index];
            prepare_dir(&place.dir, writer.config.owner)?;
            let (removed, left) = atomic::remove_stale_temp_files(&place.dir);
            prepared.removed += removed;
            prepared.left.extend(left);
            for role in writer.roles_of(place) {
                let json = Output::ProcessJson
                    .file_name(role.as_str())
                    .map(|name| place.dir.join(name));
                // Whatever is there, a link (dangling or not) included.
                let present = json.is_some_and(|path| path.symlink_metadata().is_ok());
                if present && process_json::read_current(&place.dir, &role, now).is_err() {
                    let failed = writer.remove_role_files(place, &role);
                    prepared.removed += usize::from(failed.is_empty());
                    let failed = failed.into_iter().map(|f| (f.path, f.error));
                    prepared.left.extend(failed);
                }
            }
            prepared.failures.extend(writer.write_config(state, index));
        }
        Ok(prepared)
    }

    /// Writes `role`'s files from its credentials in `state` and rewrites `credentials`.
    ///
    /// Nothing is written for credentials that are expired at `now`. Each failure is also kept
    /// in the role's state until a later write of that output succeeds.
    pub fn blocking_publish(
        &self,
        state: &State,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        self.publish_numbered(state, role, now, self.number_publication())
    }

    /// Numbers a publication: after the caller put the credentials in the state, before its
    /// write. A `credentials` written later covers it (`Writer::credentials_upto`).
    fn number_publication(&self) -> u64 {
        self.publications.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// [`Outputs::blocking_publish`] of a publication already numbered.
    fn publish_numbered(
        &self,
        state: &State,
        role: &RoleName,
        now: SystemTime,
        number: u64,
    ) -> Vec<WriteFailure> {
        let mut failures = self.write_own_files(state, role, now);
        failures.extend(self.cover(state, now, number, false).unwrap_or_default());
        failures
    }

    /// `role`'s own files, and the shared ones that went missing.
    fn write_own_files(
        &self,
        state: &State,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let mut writer = self.lock();
        let mut failures = writer.write_role_everywhere(state, role, now);
        failures.extend(writer.restore_shared(state));
        failures
    }

    /// Makes sure a `credentials` written after publication `number` is in place: nothing to
    /// do if one is, else it is rewritten now, unless `paced` and the last rewrite was too
    /// recent (`Writer::credentials_not_before`): then the time to come back.
    fn cover(
        &self,
        state: &State,
        now: SystemTime,
        number: u64,
        paced: bool,
    ) -> Result<Vec<WriteFailure>, Instant> {
        let mut writer = self.lock();
        if writer.credentials_upto >= number {
            return Ok(Vec::new());
        }
        match writer.credentials_not_before {
            Some(at) if paced && at > Instant::now() => Err(at),
            _ => Ok(writer.write_credentials_upto(state, now, &self.publications)),
        }
    }

    /// [`Outputs::blocking_publish`] on the blocking pool, with `credentials` paced.
    ///
    /// Numbered before it waits for a blocking thread: when many roles succeed together (a
    /// start with thousands of roles), the first `credentials` written covers every one queued
    /// by then, and a publication that finds the last rewrite too recent waits (off the blocking
    /// pool) for the next, which covers it and every other that came meanwhile.
    pub async fn publish(
        self: &Arc<Self>,
        state: &State,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let number = self.number_publication();
        let (own, role) = (state.clone(), role.clone());
        // One trip to the blocking pool when `credentials` is due or already covers this.
        let (mut failures, mut covered) = self
            .in_background(move |outputs| {
                let failures = outputs.write_own_files(&own, &role, now);
                (failures, outputs.cover(&own, now, number, true))
            })
            .await;
        while let Err(at) = covered {
            tokio::time::sleep_until(at).await;
            let state = state.clone();
            covered = self
                .in_background(move |outputs| outputs.cover(&state, now, number, true))
                .await;
        }
        failures.extend(covered.unwrap_or_default());
        failures
    }

    /// Removes `role`'s own files and its `credentials` sections (its credentials expired).
    ///
    /// The shared files go first, so once `<role>.json` is gone, `credentials` is too.
    pub fn blocking_withdraw(
        &self,
        state: &State,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let writer = self.lock();
        let mut failures = writer.write_all_credentials(state, now);
        failures.extend(writer.remove_role_everywhere(role));
        failures
    }

    /// [`Outputs::blocking_withdraw`] on the blocking pool.
    pub async fn withdraw(
        self: &Arc<Self>,
        state: &State,
        role: &RoleName,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let (state, role) = (state.clone(), role.clone());
        self.in_background(move |outputs| outputs.blocking_withdraw(&state, &role, now))
            .await
    }

    /// Sets the configured roles and clients (after a reload), with the tokens now issued
    /// (none: the endpoint is off). Every directory's `config` and `credentials` are rewritten
    /// for its roles now, and the files of a role new there written; then the files of what
    /// left a directory are removed (as in `withdraw`: once `<role>.json` is gone, so are the
    /// role's sections): the files of roles no longer there, and all the files of a client that
    /// is gone. A new client's directory is created and gets its files and its token; a kept
    /// client's token stays.
    pub fn blocking_set_layout(
        &self,
        layout: &Layout,
        state: &State,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        self.lock().set_layout(layout, state, now)
    }

    /// Applies new settings (after a reload; the directory stays): removes the files of outputs
    /// that were turned off or renamed, then rewrites every file with the new settings.
    pub fn blocking_reconfigure(
        &self,
        config: &OutputsConfig,
        region: &str,
        state: &State,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let mut writer = self.lock();
        let old = std::mem::replace(&mut writer.config, config.clone());
        writer.config.directory = old.directory.clone();
        writer.region = region.to_string();
        let mut failures = writer.remove_dropped_files(&old);
        // An output turned off can no longer fail: forget its last error, or the role stays unready.
        let off: Vec<&'static str> = [
            Output::Credentials,
            Output::Config,
            Output::ProcessJson,
            Output::EnvFile,
        ]
        .into_iter()
        .filter(|output| !output.enabled(&writer.config))
        .map(Output::label)
        .collect();
        for role in &writer.roles {
            state.update(role, |s| {
                s.write_errors
                    .retain(|key, _| !off.contains(&writer::key_output(key)))
            });
        }
        failures.extend(writer.write_all_configs(state));
        for role in writer.roles.clone() {
            failures.extend(writer.write_role_everywhere(state, &role, now));
        }
        failures.extend(writer.write_all_credentials(state, now));
        for index in 0..writer.places.len() {
            failures.extend(writer.write_token(state, index));
        }
        failures
    }

    /// Applies a reload in one go on the blocking pool: withdraws `replaced` roles (their
    /// settings changed, so their old credentials may be another role's now), sets the layout,
    /// and with `settings` (when the outputs or the region changed) rewrites every file.
    pub async fn apply_reload(
        self: &Arc<Self>,
        state: &State,
        replaced: Vec<RoleName>,
        layout: Layout,
        settings: Option<(OutputsConfig, String)>,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let state = state.clone();
        self.in_background(move |outputs| {
            let mut failures = Vec::new();
            for name in &replaced {
                failures.extend(outputs.blocking_withdraw(&state, name, now));
            }
            failures.extend(outputs.blocking_set_layout(&layout, &state, now));
            if let Some((config, region)) = &settings {
                failures.extend(outputs.blocking_reconfigure(config, region, &state, now));
            }
            failures
        })
        .await
    }

    /// Removes every file rolerelay writes (for `remove_on_exit`).
    /// Later writes are skipped, so a write still in flight cannot bring a file back; every file
    /// is tried, and the first error is returned.
    pub fn blocking_remove_all(&self) -> Result<(), WriteFailure> {
        let mut writer = self.lock();
        writer.closed = true;
        let mut first_error = None;
        for place in &writer.places {
            let roles = writer.roles_of(place);
            if let Some(e) = writer.remove_place(place, &roles).into_iter().next() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// [`Outputs::blocking_remove_all`] on the blocking pool.
    pub async fn remove_all(self: &Arc<Self>) -> Result<(), WriteFailure> {
        self.in_background(Outputs::blocking_remove_all).await
    }

    /// Writes the endpoint's token files, named `name`, one in each directory that `tokens`
    /// gives one to (without a trailing newline: SDKs send it verbatim), and keeps them to
    /// rewrite after a reload and to remove at exit. A failed write is every one of the
    /// directory's roles' write error (the endpoint needs it for all of them), removes an
    /// earlier run's token file, and is retried with the roles' writes.
    pub fn blocking_write_tokens(
        &self,
        state: &State,
        name: &str,
        tokens: &Issued,
    ) -> Vec<WriteFailure> {
        let mut writer = self.lock();
        writer.token_file = Some(name.to_string());
        for place in &mut writer.places {
            place.token = issued_to(Some(tokens), place.client.as_ref());
        }
        (0..writer.places.len())
            .filter_map(|index| writer.write_token(state, index))
            .collect()
    }

    /// [`Outputs::blocking_write_tokens`] on the blocking pool.
    pub async fn write_tokens(
        self: &Arc<Self>,
        state: &State,
        name: &str,
        tokens: Issued,
    ) -> Vec<WriteFailure> {
        let (state, name) = (state.clone(), name.to_string());
        self.in_background(move |outputs| outputs.blocking_write_tokens(&state, &name, &tokens))
            .await
    }
}

/// Creates `dir` if it is missing (see [`create_dir`]).
pub(super) fn prepare_dir(dir: &Path, owner: Option<Owner>) -> io::Result<()> {
    match dir.is_dir() {
        true => Ok(()),
        false => create_dir(dir, owner),
    }
}

#[cfg(test)]
mod publish_tests;
#[cfg(test)]
mod tests;
