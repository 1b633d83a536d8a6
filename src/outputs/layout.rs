//! A reload's new set of directories: what each keeps, gets and loses, and the files that go
//! with it.

use std::collections::HashSet;
use std::time::SystemTime;

use super::places::{issued_to, Layout, Place};
use super::writer::Writer;
use super::{prepare_dir, Output, WriteFailure};
use crate::config::{ClientName, RoleName};
use crate::state::State;

impl Writer {
    /// Sets the configured roles and clients (after a reload), with the tokens now issued
    /// (none: the endpoint is off). Every directory's `config` and `credentials` are rewritten
    /// for its roles now, and the files of a role new there written; then the files of what
    /// left a directory are removed (as in `withdraw`: once `<role>.json` is gone, so are the
    /// role's sections): the files of roles no longer there, and all the files of a client that
    /// is gone. A new client's directory is created and gets its files and its token; a kept
    /// client's token stays.
    pub(super) fn set_layout(
        &mut self,
        layout: &Layout,
        state: &State,
        now: SystemTime,
    ) -> Vec<WriteFailure> {
        let old_roles: Vec<Vec<RoleName>> = self.places.iter().map(|p| self.roles_of(p)).collect();
        // Sets for the lookups below: a reload of thousands of roles stays linear.
        let old_sets: Vec<HashSet<&RoleName>> =
            old_roles.iter().map(|r| r.iter().collect()).collect();
        let mut places = vec![Place::top(&self.config.directory)];
        places.extend(layout.clients.iter().map(Place::client));
        let old_places = std::mem::replace(&mut self.places, places);
        self.roles = layout.roles.iter().map(|r| r.name.clone()).collect();
        let mut failures = Vec::new();
        for place in &mut self.places {
            place.token = issued_to(layout.tokens.as_deref(), place.client.as_ref());
        }
        for index in 0..self.places.len() {
            let place = &self.places[index];
            let old = old_places.iter().position(|old| old.same(place));
            if old.is_none() {
                if let Err(error) = prepare_dir(&place.dir, self.config.owner) {
                    failures.push(WriteFailure {
                        output: Output::Config,
                        path: place.dir.clone(),
                        removing: false,
                        error,
                    });
                }
            }
            failures.extend(self.write_config(state, index));
            let place = &self.places[index];
            failures.extend(self.write_credentials(state, place, now));
            // Only what is new here: a reload of many roles rewrites no file it need not.
            let had = |role: &RoleName| old.is_some_and(|old| old_sets[old].contains(role));
            for role in self.roles_of(place).iter().filter(|role| !had(role)) {
                failures.extend(self.write_role_files(state, place, role, now));
            }
            let kept_token = old.is_some_and(|old| {
                old_places[old].token == place.token && !old_places[old].token_failed
            });
            if !kept_token {
                failures.extend(self.write_token(state, index));
            }
        }
        for (old, roles) in old_places.iter().zip(&old_roles) {
            failures.extend(self.remove_left(state, old, roles));
        }
        failures
    }

    /// Removes every file of `place` (a client that is gone, or moved): `credentials` first, so
    /// that once a role's JSON is gone, its section is too; the token last.
    pub(super) fn remove_place(&self, place: &Place, roles: &[RoleName]) -> Vec<WriteFailure> {
        let mut failures = Vec::new();
        let config = &self.config;
        if let Some(name) = &config.credentials_file {
            failures.extend(self.remove(place, Output::Credentials, name).err());
        }
        for role in roles {
            failures.extend(self.remove_role_files(place, role));
        }
        if let Some(name) = &config.config_file {
            failures.extend(self.remove(place, Output::Config, name).err());
        }
        if let (Some(name), Some(_)) = (&self.token_file, &place.token) {
            failures.extend(self.remove(place, Output::Token, name).err());
        }
        failures
    }

    /// Removes from `old` (a place before a reload, which held `roles`) what is no longer
    /// there: everything when the place is gone (a client removed or moved), else the files of
    /// the roles it lost and a token it no longer has. Their write errors go with them.
    pub(super) fn remove_left(
        &self,
        state: &State,
        old: &Place,
        roles: &[RoleName],
    ) -> Vec<WriteFailure> {
        let Some(now) = self.places.iter().find(|place| place.same(old)) else {
            for role in roles {
                forget_errors(state, role, old.client.as_ref());
            }
            return self.remove_place(old, roles);
        };
        let kept = self.roles_of(now);
        let kept: HashSet<&RoleName> = kept.iter().collect();
        let mut failures = Vec::new();
        for role in roles.iter().filter(|role| !kept.contains(role)) {
            forget_errors(state, role, old.client.as_ref());
            failures.extend(self.remove_role_files(old, role));
        }
        if let (Some(name), Some(_), None) = (&self.token_file, &old.token, &now.token) {
            failures.extend(self.remove(old, Output::Token, name).err());
        }
        failures
    }
}

/// Forgets `role`'s write errors of the outputs of `client`'s directory (none: the top level's),
/// which it no longer has there.
fn forget_errors(state: &State, role: &RoleName, client: Option<&ClientName>) {
    state.update(role, |s| {
        s.write_errors
            .retain(|key, _| key_client(key) != client.map(ClientName::as_str))
    });
}

/// The client of a `write_errors` key (see [`Place::key`]); none at the top level.
fn key_client(key: &str) -> Option<&str> {
    key.split_once('/').map(|(client, _)| client)
}
