//! The AWS shared `credentials` and `config` INI files.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use crate::config::RoleName;
use crate::credentials::Credentials;
use crate::shell;

/// `credentials`: one `[<role>]` per role with valid credentials, and `[default]` for `default_role`.
pub fn render_credentials(
    creds: &BTreeMap<RoleName, Arc<Credentials>>,
    default_role: Option<&RoleName>,
) -> String {
    let mut out =
        String::from("# Written by rolerelay and replaced at every refresh; do not edit.\n");
    let default = default_role.and_then(|name| creds.get(name));
    let sections = creds
        .iter()
        .map(|(name, c)| (name.as_str(), c))
        .chain(default.map(|c| ("default", c)));
    for (section, c) in sections {
        let _ = write!(
            out,
            "\n[{section}]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\naws_account_id = {}\n",
            c.access_key_id,
            c.secret_access_key.expose(),
            c.session_token.expose(),
            c.account_id
        );
    }
    out
}

/// `config`: one `[profile <role>]` per role running `process_command`, with `region`, and
/// `[default]` for `default_role`. `{dir}` (`app_dir`) and `{role}` are [`shell::fill`]ed in:
/// quoted, shell-style, when they hold spaces or shell characters.
pub fn render_config(
    roles: &[RoleName],
    process_command: &str,
    app_dir: &Path,
    region: &str,
    default_role: Option<&RoleName>,
) -> String {
    let mut out = String::from("# Written by rolerelay; do not edit.\n");
    let dir = app_dir.display().to_string();
    let sections = roles
        .iter()
        .map(|name| (format!("profile {name}"), name))
        .chain(default_role.map(|name| ("default".to_string(), name)));
    for (section, name) in sections {
        // Each value stays one word, however the SDK splits the line (shlex, or `sh -c`).
        let command = shell::fill(process_command, &[("dir", &dir), ("role", name.as_str())]);
        let _ = write!(
            out,
            "\n[{section}]\ncredential_process = {command}\nregion = {region}\n"
        );
    }
    out
}
