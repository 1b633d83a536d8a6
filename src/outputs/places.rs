//! The directories the outputs go to: the top level (every role) and each client's (its roles).

use std::path::{Path, PathBuf};

use super::Output;
use crate::access::Issued;
use crate::config::{ClientConfig, ClientName, RoleConfig, RoleName};
use crate::credentials::Secret;

/// One directory the outputs go to: the top level (every role), or a client's (its roles).
#[derive(Debug)]
pub(super) struct Place {
    /// The client; none for the top level.
    pub(super) client: Option<ClientName>,
    pub(super) dir: PathBuf,
    /// A client's `{dir}` in its `config`; none for the top level, whose comes from the settings.
    pub(super) app_dir: Option<PathBuf>,
    /// A client's roles, in its order; none: every configured role.
    pub(super) roles: Option<Vec<RoleName>>,
    /// The endpoint token written here, once issued: rewritten when the mode or group change,
    /// removed at exit.
    pub(super) token: Option<Secret>,
    /// The last write of the token file failed (and the place's roles record it).
    pub(super) token_failed: bool,
    /// The last write of `config` failed (and the place's roles record it).
    pub(super) config_failed: bool,
}

impl Place {
    /// The top level, `directory`.
    pub(super) fn top(directory: &Path) -> Place {
        Place::new(None, directory.to_path_buf(), None, None)
    }

    /// A client's directory.
    pub(super) fn client(client: &ClientConfig) -> Place {
        Place::new(
            Some(client.name.clone()),
            client.directory.clone(),
            Some(client.app_dir().to_path_buf()),
            Some(client.roles.clone()),
        )
    }

    fn new(
        client: Option<ClientName>,
        dir: PathBuf,
        app_dir: Option<PathBuf>,
        roles: Option<Vec<RoleName>>,
    ) -> Place {
        Place {
            client,
            dir,
            app_dir,
            roles,
            token: None,
            token_failed: false,
            config_failed: false,
        }
    }

    /// Whether `role`'s files go here.
    pub(super) fn has(&self, role: &RoleName) -> bool {
        self.roles.as_ref().is_none_or(|roles| roles.contains(role))
    }

    /// Whether `other` is this place (the same client and directory): what it holds stays.
    pub(super) fn same(&self, other: &Place) -> bool {
        self.client == other.client && self.dir == other.dir
    }

    /// The key of this place's `output` in a role's `write_errors`: the output's label at the
    /// top level, `<client>/<label>` in a client's directory.
    pub(super) fn key(&self, output: Output) -> String {
        match &self.client {
            None => output.label().to_string(),
            Some(client) => format!("{client}/{}", output.label()),
        }
    }
}

/// The roles and clients of a reloaded configuration, with the tokens issued for it (none
/// while the endpoint is off).
#[derive(Clone, Debug)]
pub struct Layout {
    /// Every configured role.
    pub roles: Vec<RoleConfig>,
    /// The clients, each with its directory and roles.
    pub clients: Vec<ClientConfig>,
    /// The token of each directory that has one.
    pub tokens: Option<Issued>,
}

/// The token `tokens` gives the directory of `client` (none: the top level).
pub(super) fn issued_to(
    tokens: Option<&[(Option<ClientName>, Secret)]>,
    client: Option<&ClientName>,
) -> Option<Secret> {
    tokens?
        .iter()
        .find(|(c, _)| c.as_ref() == client)
        .map(|(_, token)| token.clone())
}
