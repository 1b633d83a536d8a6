//! `roles:`, or the one role of `--role-arn`: the settings every role has, then those only a file
//! entry has (chain, policies, tags, source identity).

use std::collections::BTreeMap;

use super::{flag_label, Resolver, Sourced};
use crate::config::checks;
use crate::config::file::FileRole;
use crate::config::rules::{default_min_remaining, MAX_SESSION_TAGS, ONE_HOUR};
use crate::config::{
    ConfigError, HumanDuration, RefreshConfig, RoleArn, RoleConfig, RoleName, SessionTemplate,
};

/// The settings of one role before they are checked: from `--role-arn` and its flags, or from
/// one entry of `roles:`.
struct RoleInput<'f> {
    name: Sourced<RoleName>,
    arn: Sourced<RoleArn>,
    session_name: Option<SessionTemplate>,
    /// Defaulted by the caller, which knows what to blame a bad default on.
    duration: Sourced<HumanDuration>,
    external_id: Option<Sourced<String>>,
    /// The entry and its index, for the settings only the file has (chain, policies, tags, ...).
    entry: Option<(usize, &'f FileRole)>,
}

/// The key of a setting of `roles[index]`.
fn role_key(index: usize, field: &str) -> String {
    format!("roles[{index}].{field}")
}

impl Resolver<'_> {
    /// The one role of `--role-arn`, which replaces the file's, else the file's `roles:`.
    pub(super) fn roles(
        &self,
        entries: &[FileRole],
        refresh: &RefreshConfig,
    ) -> Result<Vec<RoleConfig>, ConfigError> {
        let roles = match self.flag_role(refresh)? {
            Some(role) => vec![role],
            None => self.file_roles(entries, refresh)?,
        };
        if roles.is_empty() && self.path.is_empty() {
            return Err(ConfigError {
                at: "roles".into(),
                message: "no roles configured: rolerelay reads a configuration file only from --config or \
                          ROLERELAY_CONFIG, and neither is set; for one role no file is needed: \
                          rolerelay run --role-arn arn:aws:iam::111111111111:role/RoleForB --output-dir /var/run/rolerelay"
                    .into(),
            });
        }
        if roles.is_empty() {
            return Err(ConfigError {
                at: format!("{}: roles", self.path),
                message: "no roles configured: list them under `roles:`, or pass --role-arn".into(),
            });
        }
        Ok(roles)
    }

    /// The role of `--role-arn` and the flags that go with it, if it is given.
    fn flag_role(&self, refresh: &RefreshConfig) -> Result<Option<RoleConfig>, ConfigError> {
        let args = self.args;
        let Some(arn) = self.flag_value::<RoleArn>("--role-arn", &args.role_arn)? else {
            return Ok(None);
        };
        let name = match self.flag_value::<RoleName>("--role-name", &args.role_name)? {
            Some(name) => name,
            None => {
                // A role's own name may hold characters a file name may not (`+=,.@`).
                let own_name = arn.value.role_name().parse();
                let own_name =
                    own_name.map_err(|error| arn.fail(format!("{error}; pass --role-name")))?;
                Sourced::new(own_name, arn.origin.clone())
            }
        };
        let input = RoleInput {
            name,
            arn,
            session_name: self
                .flag_value("--session-name", &args.session_name)?
                .map(|template| template.value),
            duration: self
                .flag_value("--duration", &args.duration)?
                .unwrap_or_else(|| Sourced::new(HumanDuration(ONE_HOUR), flag_label("--duration"))),
            external_id: self.flag_value("--external-id", &args.external_id)?,
            entry: None,
        };
        self.role(input, refresh).map(Some)
    }

    /// The entries of `roles:`, each with a name of its own.
    fn file_roles(
        &self,
        entries: &[FileRole],
        refresh: &RefreshConfig,
    ) -> Result<Vec<RoleConfig>, ConfigError> {
        let mut roles: Vec<RoleConfig> = Vec::new();
        // Each name's index: thousands of roles are checked in one pass.
        let mut taken: BTreeMap<RoleName, usize> = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let key = |field: &str| role_key(index, field);
            let role_line = entry.name.referenced.line();
            // A default duration that does not fit is blamed on the role, at its name's line.
            let default_duration = || {
                Sourced::new(
                    HumanDuration(ONE_HOUR),
                    self.origin(&key("duration"), role_line),
                )
            };
            let input = RoleInput {
                name: self.sourced(&key("name"), &entry.name),
                arn: self.sourced(&key("role_arn"), &entry.role_arn),
                session_name: entry
                    .session_name
                    .as_ref()
                    .map(|template| template.value.clone()),
                duration: self
                    .file_value(&key("duration"), &entry.duration)
                    .unwrap_or_else(default_duration),
                external_id: self.file_value(&key("external_id"), &entry.external_id),
                entry: Some((index, entry)),
            };
            let role = self.role(input, refresh)?;
            if let Some(first) = taken.insert(role.name.clone(), index) {
                return Err(ConfigError {
                    at: self.origin(&key("name"), role_line),
                    message: format!(
                        "role name {:?} is already used by roles[{first}]: give each role its own name",
                        role.name.as_str()
                    ),
                });
            }
            roles.push(role);
        }
        Ok(roles)
    }

    /// One role: the settings any role has, then those only a file entry has.
    fn role(&self, input: RoleInput, refresh: &RefreshConfig) -> Result<RoleConfig, ConfigError> {
        let session_name = input
            .session_name
            .unwrap_or_else(|| "rolerelay-{hostname}".parse().expect("valid default"));
        let duration = input
            .duration
            .check(|duration| checks::session_duration(*duration, refresh.min_remaining))?;
        let min_remaining = refresh
            .min_remaining
            .unwrap_or(HumanDuration(default_min_remaining(duration.0)));
        let external_id = input
            .external_id
            .map(|id| id.check(|id| checks::external_id(id)))
            .transpose()?;
        let mut role = RoleConfig {
            session_name_resolved: session_name.render(&input.name.value, self.vars),
            name: input.name.value,
            role_arn: input.arn.value,
            session_name,
            external_id,
            duration,
            min_remaining,
            chain: Vec::new(),
            policy: None,
            policy_arns: Vec::new(),
            tags: BTreeMap::new(),
            transitive_tag_keys: Vec::new(),
            source_identity: None,
        };
        if let Some((index, entry)) = input.entry {
            self.entry_settings(&mut role, index, entry, refresh)?;
        }
        Ok(role)
    }

    /// The settings only a `roles:` entry has: chain, policies, tags and source identity.
    fn entry_settings(
        &self,
        role: &mut RoleConfig,
        index: usize,
        entry: &FileRole,
        refresh: &RefreshConfig,
    ) -> Result<(), ConfigError> {
        let key = |field: &str| role_key(index, field);
        role.chain = entry.chain.iter().map(|hop| hop.value.clone()).collect();
        if let Some(first_hop) = entry.chain.first() {
            let origin = self.origin(&key("chain"), first_hop.referenced.line());
            Sourced::new(role.duration, origin).check(|duration| {
                checks::chained_session_duration(*duration, refresh.min_remaining)
            })?;
            if refresh.min_remaining.is_none() {
                let granted = role.duration.0.min(ONE_HOUR);
                role.min_remaining = HumanDuration(default_min_remaining(granted));
            }
        }
        role.policy = self
            .file_value(&key("policy"), &entry.policy)
            .map(|policy| policy.check(|policy| checks::policy_json(policy)))
            .transpose()?;
        for (arn_index, arn) in entry.policy_arns.iter().enumerate() {
            let arn = self.sourced(&key(&format!("policy_arns[{arn_index}]")), arn);
            role.policy_arns
                .push(arn.check(|arn| checks::managed_policy_arn(arn))?);
        }
        role.tags = self.session_tags(index, entry)?;
        for tag_key in &entry.transitive_tag_keys {
            let tag_key = self.sourced(&key("transitive_tag_keys"), tag_key);
            role.transitive_tag_keys.push(tag_key.check(|tag_key| {
                entry.tags.contains_key(tag_key).then_some(()).ok_or_else(|| {
                    format!("{tag_key:?} is not one of this role's tags: add it under tags, or remove it here")
                })
            })?);
        }
        role.source_identity = self
            .file_value(&key("source_identity"), &entry.source_identity)
            .map(|id| id.check(|id| checks::source_identity(id)))
            .transpose()?;
        Ok(())
    }

    /// `roles[index].tags`: within STS's limits on their number and size.
    fn session_tags(
        &self,
        index: usize,
        entry: &FileRole,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        if entry.tags.len() > MAX_SESSION_TAGS {
            return Err(ConfigError {
                at: role_key(index, "tags"),
                message: format!(
                    "{} session tags: STS allows at most {MAX_SESSION_TAGS}",
                    entry.tags.len()
                ),
            });
        }
        let mut tags = BTreeMap::new();
        for (tag_key, value) in &entry.tags {
            let value = self
                .sourced(&role_key(index, &format!("tags.{tag_key}")), value)
                .check(|value| checks::session_tag(tag_key, value))?;
            tags.insert(tag_key.clone(), value);
        }
        Ok(tags)
    }
}
