//! `clients:`: each application container's roles and directory, checked so that no client can
//! reach another's files: every directory its own, none inside another or the top level's files.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::{Resolver, Sourced};
use crate::config::checks;
use crate::config::file::FileClient;
use crate::config::{ClientConfig, ConfigError, EndpointConfig, OutputsConfig, RoleConfig};

/// The key of a setting of `clients[index]`.
fn client_key(index: usize, field: &str) -> String {
    format!("clients[{index}].{field}")
}

impl Resolver<'_> {
    /// `clients:`; `roles` are the resolved roles, which each client's must be among, and the
    /// names of the top level's files come from `outputs` and `endpoint`.
    pub(super) fn clients(
        &self,
        entries: &[FileClient],
        roles: &[RoleConfig],
        outputs: &OutputsConfig,
        endpoint: &EndpointConfig,
    ) -> Result<Vec<ClientConfig>, ConfigError> {
        let top_files = top_level_files(roles, outputs, endpoint);
        let mut clients: Vec<ClientConfig> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let name = self.sourced(&client_key(index, "name"), &entry.name);
            if let Some(first) = clients.iter().position(|c| c.name == name.value) {
                return Err(name.fail(format!(
                    "client name {:?} is already used by clients[{first}]: give each client a name of its own",
                    name.value.as_str()
                )));
            }
            let client = ClientConfig {
                roles: self.client_roles(index, entry, roles, &name)?,
                directory: self.client_directory(index, entry, outputs, &top_files, &clients)?,
                app_directory: self.client_app_directory(index, entry)?,
                name: name.value,
            };
            if client.app_directory.is_none() {
                let directory = client.directory.to_string_lossy();
                checks::directory_in_config(
                    &directory,
                    "the client's directory (the {dir} of its `config`)",
                )
                .map_err(|e| {
                    self.client_error(
                        index,
                        entry,
                        "directory",
                        format!("{e}, or set app_directory"),
                    )
                })?;
            }
            clients.push(client);
        }
        Ok(clients)
    }

    /// An error about a setting of `clients[index]`, at its line if it is in the file, else at
    /// the client's name.
    fn client_error(
        &self,
        index: usize,
        entry: &FileClient,
        field: &str,
        message: String,
    ) -> ConfigError {
        let line = match field {
            "directory" => entry.directory.as_ref().map(|d| d.referenced.line()),
            _ => None,
        };
        let line = line.unwrap_or_else(|| entry.name.referenced.line());
        ConfigError {
            at: self.origin(&client_key(index, field), line),
            message,
        }
    }

    /// The client's roles: at least one, each configured, none twice.
    fn client_roles(
        &self,
        index: usize,
        entry: &FileClient,
        roles: &[RoleConfig],
        name: &Sourced<crate::config::ClientName>,
    ) -> Result<Vec<crate::config::RoleName>, ConfigError> {
        if entry.roles.is_empty() {
            return Err(self.client_error(
                index,
                entry,
                "roles",
                format!(
                    "client {:?} has no roles: list the roles it may fetch, like roles: [{}]",
                    name.value.as_str(),
                    roles.first().map_or("account-a", |r| r.name.as_str())
                ),
            ));
        }
        let mut seen = HashSet::new();
        for (at, role) in entry.roles.iter().enumerate() {
            let role = self.sourced(&format!("{}[{at}]", client_key(index, "roles")), role);
            if !roles.iter().any(|r| r.name == role.value) {
                let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
                return Err(role.fail(format!(
                    "{:?} is not a configured role: use one of {}",
                    role.value.as_str(),
                    names.join(", ")
                )));
            }
            if !seen.insert(role.value.clone()) {
                return Err(role.fail(format!(
                    "role {:?} is listed twice for this client: list it once",
                    role.value.as_str()
                )));
            }
        }
        Ok(entry.roles.iter().map(|r| r.value.clone()).collect())
    }

    /// The client's directory, absolute: its own, not the top level, not inside or around
    /// another client's, and not named like one of the top level's files.
    fn client_directory(
        &self,
        index: usize,
        entry: &FileClient,
        outputs: &OutputsConfig,
        top_files: &HashSet<String>,
        earlier: &[ClientConfig],
    ) -> Result<PathBuf, ConfigError> {
        let fail = |message: String| self.client_error(index, entry, "directory", message);
        let written = entry
            .directory
            .as_ref()
            .map_or_else(|| entry.name.value.to_string(), |d| d.value.clone());
        if written.is_empty() {
            return Err(fail(format!(
                "directory is empty: give a sub-directory of outputs.directory, like {:?}, or an absolute path",
                entry.name.value.as_str()
            )));
        }
        let top = &outputs.directory;
        let directory = normal_path(Path::new(&written))
            .map(|relative| top.join(relative))
            .ok_or_else(|| {
                fail(format!(
                    "{written:?} is not a plain directory path: write a sub-directory of outputs.directory \
                     like {:?}, or an absolute path, without '..'",
                    entry.name.value.as_str()
                ))
            })?;
        if directory == *top || top.starts_with(&directory) {
            return Err(fail(format!(
                "{} is outputs.directory or contains it, where the sidecar's own files are: give the \
                 client a sub-directory, like {:?}",
                directory.display(),
                entry.name.value.as_str()
            )));
        }
        if let Ok(inside) = directory.strip_prefix(top) {
            let first = inside
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy());
            if let Some(first) =
                first.filter(|f| top_files.contains(f.as_ref()) || f.starts_with(".rolerelay-"))
            {
                return Err(fail(format!(
                    "{first:?} is the name of a file of outputs.directory: give the client's directory another name"
                )));
            }
        }
        let overlapping = earlier
            .iter()
            .find(|c| c.directory.starts_with(&directory) || directory.starts_with(&c.directory));
        if let Some(other) = overlapping {
            return Err(fail(format!(
                "{} is client {}'s directory, inside it or around it: each client needs a directory \
                 of its own, or it reads the other's files",
                directory.display(),
                other.name
            )));
        }
        Ok(directory)
    }

    /// `clients[index].app_directory`: a path in the client's container, so absolute.
    fn client_app_directory(
        &self,
        index: usize,
        entry: &FileClient,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(app_directory) = &entry.app_directory else {
            return Ok(None);
        };
        let directory = self.sourced(&client_key(index, "app_directory"), app_directory);
        if !directory.value.starts_with('/') {
            return Err(directory.fail(
                "app_directory must be an absolute path: where the client's container mounts its directory",
            ));
        }
        directory
            .check(|d| checks::directory_in_config(d, "app_directory"))
            .map(|d| Some(PathBuf::from(d)))
    }
}

/// `path` without `.` components (empty for `.` itself), or none when it climbs with `..`. An
/// absolute path stays absolute (joining it to a directory gives itself).
fn normal_path(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
            Component::RootDir | Component::Normal(_) => normal.push(component),
        }
    }
    Some(normal)
}

/// The names of the files the top level holds: a client directory named like one would replace it.
fn top_level_files(
    roles: &[RoleConfig],
    outputs: &OutputsConfig,
    endpoint: &EndpointConfig,
) -> HashSet<String> {
    let fixed = [
        outputs.credentials_file.clone(),
        outputs.config_file.clone(),
        Some(endpoint.token_file.clone()),
    ];
    let per_role = roles
        .iter()
        .flat_map(|r| [r.file_name("json"), r.file_name("env")]);
    fixed.into_iter().flatten().chain(per_role).collect()
}
