//! What a reloaded configuration changes: which roles are added, removed, changed or kept, which
//! other settings apply live, and which need a restart.

use super::{ClientConfig, Config, RoleConfig, RoleName};

/// The difference between the running configuration and a reloaded one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Roles only in the new configuration: assume them at once.
    pub added: Vec<RoleConfig>,
    /// Roles only in the old one: stop them and remove their files.
    pub removed: Vec<RoleName>,
    /// Roles in both whose settings differ (or whose STS settings changed): re-assume at once.
    pub changed: Vec<RoleConfig>,
    /// Roles untouched: their credentials and schedule stay as they are.
    pub kept: Vec<RoleName>,
    /// The STS client must be rebuilt (`sts` or `source` changed).
    pub sts: bool,
    /// The schedule or the call timeout changed (applies from each role's next scheduling).
    pub refresh: bool,
    /// The outputs changed (files are rewritten).
    pub outputs: bool,
    /// The clients changed (added, removed, or their roles or directories).
    pub clients: bool,
    /// Keys that changed but only take effect after a restart.
    pub restart_needed: Vec<&'static str>,
}

impl Diff {
    /// True when the reload changes nothing that is applied live.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.sts
            && !self.refresh
            && !self.outputs
            && !self.clients
    }
}

/// Compares `old` (running) with `new` (reloaded).
pub fn diff(old: &Config, new: &Config) -> Diff {
    let mut changes = Diff {
        sts: old.sts != new.sts || old.source != new.source,
        ..Diff::default()
    };
    let (old_refresh, new_refresh) = (&old.refresh, &new.refresh);
    changes.refresh = old_refresh.lifetime_fraction != new_refresh.lifetime_fraction
        || old_refresh.min_remaining != new_refresh.min_remaining
        || old_refresh.max_interval != new_refresh.max_interval
        || old_refresh.jitter != new_refresh.jitter
        || old_refresh.backoff_initial != new_refresh.backoff_initial
        || old_refresh.backoff_max != new_refresh.backoff_max
        || old_refresh.timeout != new_refresh.timeout;
    let mut live_outputs = new.outputs.clone();
    live_outputs.directory = old.outputs.directory.clone();
    changes.outputs = live_outputs != old.outputs;
    changes.clients = running_clients(old, new) != old.clients;

    let restart = [
        ("server.listen", old.server.listen != new.server.listen),
        (
            "credentials_endpoint",
            old.credentials_endpoint != new.credentials_endpoint,
        ),
        (
            "outputs.directory",
            old.outputs.directory != new.outputs.directory,
        ),
        (
            "refresh.concurrency",
            old_refresh.concurrency != new_refresh.concurrency,
        ),
        ("logging", old.logging != new.logging),
    ];
    changes.restart_needed = restart
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| *key)
        .collect();

    // A role's `min_remaining` follows `refresh` (applied live, from the credentials' lifetime):
    // a change there alone does not call STS again.
    let same_role = |before: &RoleConfig, after: &RoleConfig| {
        RoleConfig {
            min_remaining: before.min_remaining,
            ..after.clone()
        } == *before
    };
    for role in &new.roles {
        match old.roles.iter().find(|r| r.name == role.name) {
            None => changes.added.push(role.clone()),
            Some(before) if !same_role(before, role) || changes.sts => {
                changes.changed.push(role.clone())
            }
            Some(_) => changes.kept.push(role.name.clone()),
        }
    }
    changes.removed = old
        .roles
        .iter()
        .filter(|r| !new.roles.iter().any(|n| n.name == r.name))
        .map(|r| r.name.clone())
        .collect();
    changes
}

/// The configuration to run after a reload: `new`, except the settings that need a restart,
/// which keep their running values.
pub fn running_after_reload(old: &Config, new: Config) -> Config {
    let mut running = new;
    running.server = old.server.clone();
    running.credentials_endpoint = old.credentials_endpoint.clone();
    running.clients = running_clients(old, &running);
    running.outputs.directory = old.outputs.directory.clone();
    running.refresh.concurrency = old.refresh.concurrency;
    running.logging = old.logging.clone();
    running
}

/// `new`'s clients as they run: a directory under a new `outputs.directory` (which needs a
/// restart) stays under the running one.
fn running_clients(old: &Config, new: &Config) -> Vec<ClientConfig> {
    let (from, to) = (&new.outputs.directory, &old.outputs.directory);
    let mut clients = new.clients.clone();
    for client in &mut clients {
        if let Ok(inside) = client.directory.strip_prefix(from) {
            client.directory = to.join(inside);
        }
    }
    clients
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ConfigArgs, TemplateVars};

    fn config(text: &str) -> Config {
        let vars = TemplateVars {
            hostname: "h".into(),
            pod: "p".into(),
        };
        Config::from_parts(
            &ConfigArgs::default(),
            Some((Path::new("c.yaml"), text)),
            &|_| None,
            &vars,
        )
        .unwrap()
    }

    fn role(name: &str, account: &str, extra: &str) -> String {
        format!("  - name: {name}\n    role_arn: arn:aws:iam::{account}:role/R\n{extra}")
    }

    fn names(roles: &[RoleConfig]) -> Vec<&str> {
        roles.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn roles_are_added_removed_changed_or_kept() {
        let old = config(&format!(
            "roles:\n{}{}{}",
            role("kept", "111111111111", ""),
            role("gone", "111111111111", ""),
            role("edited", "111111111111", "")
        ));
        let new = config(&format!(
            "roles:\n{}{}{}",
            role("kept", "111111111111", ""),
            role("edited", "111111111111", "    external_id: new-id\n"),
            role("fresh", "222222222222", "")
        ));
        let changes = diff(&old, &new);
        assert_eq!(names(&changes.added), ["fresh"]);
        assert_eq!(
            changes
                .removed
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>(),
            ["gone"]
        );
        assert_eq!(names(&changes.changed), ["edited"]);
        assert_eq!(
            changes.kept.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            ["kept"]
        );
        assert!(
            !changes.sts
                && !changes.refresh
                && !changes.outputs
                && changes.restart_needed.is_empty()
        );
        assert!(!changes.is_empty());
    }

    #[test]
    fn every_role_setting_counts_as_a_change() {
        let base = role("a", "111111111111", "");
        for extra in [
            "    duration: 2h\n",
            "    session_name: other\n",
            "    chain: [arn:aws:iam::222222222222:role/Hop]\n",
            "    tags: {k: v}\n",
            "    policy_arns: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n",
            "    source_identity: someone\n",
        ] {
            let changes = diff(
                &config(&format!("roles:\n{base}")),
                &config(&format!("roles:\n{base}{extra}")),
            );
            assert_eq!(names(&changes.changed), ["a"], "{extra}");
        }
        let moved = diff(
            &config(&format!("roles:\n{base}")),
            &config(&format!("roles:\n{}", role("a", "333333333333", ""))),
        );
        assert_eq!(names(&moved.changed), ["a"]);
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let text = format!(
            "refresh:\n  jitter: 0.2\nroles:\n{}",
            role("a", "111111111111", "")
        );
        let changes = diff(&config(&text), &config(&text));
        assert!(changes.is_empty() && changes.restart_needed.is_empty());
        assert_eq!(changes.kept.len(), 1);
    }

    #[test]
    fn sts_changes_re_assume_every_role() {
        let roles = format!(
            "roles:\n{}{}",
            role("a", "111111111111", ""),
            role("b", "111111111111", "")
        );
        let changes = diff(
            &config(&roles),
            &config(&format!("sts:\n  region: eu-west-1\n{roles}")),
        );
        assert!(changes.sts);
        assert_eq!(names(&changes.changed), ["a", "b"]);
        assert!(changes.kept.is_empty());
    }

    #[test]
    fn listen_addresses_and_the_directory_need_a_restart_and_the_rest_still_applies() {
        let roles = format!("roles:\n{}", role("a", "111111111111", ""));
        let old = config(&roles);
        let new = config(&format!(
            "server:\n  listen: 127.0.0.1:9999\noutputs:\n  directory: /elsewhere\n  file_mode: \"0600\"\nrefresh:\n  jitter: 0.3\n  concurrency: 2\n{roles}"
        ));
        let changes = diff(&old, &new);
        assert_eq!(
            changes.restart_needed,
            ["server.listen", "outputs.directory", "refresh.concurrency"]
        );
        assert!(changes.outputs && changes.refresh);
        let running = running_after_reload(&old, new);
        assert_eq!(running.server, old.server);
        assert_eq!(running.outputs.directory, old.outputs.directory);
        assert_eq!(running.outputs.file_mode.0, 0o600);
        assert_eq!(running.refresh.jitter, 0.3);
        assert_eq!(running.refresh.concurrency, old.refresh.concurrency);
        // Once running, the same file reports the same restart-needed keys and nothing else.
        let again = diff(&running, &config(&format!(
            "server:\n  listen: 127.0.0.1:9999\noutputs:\n  directory: /elsewhere\n  file_mode: \"0600\"\nrefresh:\n  jitter: 0.3\n  concurrency: 2\n{roles}"
        )));
        assert!(again.is_empty());
        assert_eq!(again.restart_needed.len(), 3);
    }
}
