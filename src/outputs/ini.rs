//! The AWS shared `credentials` and `config` INI files.

use std::fmt::Write;
use std::path::Path;

use crate::config::RoleName;
use crate::credentials::Credentials;
use crate::shell;

/// `credentials`: one `[<role>]` per role with valid credentials (`creds`, in order), and
/// `[default]` for `default_role`.
pub fn render_credentials(
    creds: &[(&RoleName, &Credentials)],
    default_role: Option<&RoleName>,
) -> String {
    const HEADER: &str = "# Written by rolerelay and replaced at every refresh; do not edit.\n";
    let default = default_role.and_then(|name| creds.iter().find(|(n, _)| *n == name));
    let sections: Vec<(&str, &Credentials)> = creds
        .iter()
        .map(|(name, c)| (name.as_str(), *c))
        .chain(default.map(|(_, c)| ("default", *c)))
        .collect();
    // Sized once: at thousands of roles the file is megabytes, rewritten as they refresh.
    let size = sections
        .iter()
        .map(|(s, c)| section_size(s, c))
        .sum::<usize>();
    let mut out = String::with_capacity(HEADER.len() + size);
    out.push_str(HEADER);
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

/// The length of a `credentials` section: 89 bytes of fixed text (pinned by the golden test).
fn section_size(section: &str, c: &Credentials) -> usize {
    89 + section.len()
        + c.access_key_id.len()
        + c.secret_access_key.expose().len()
        + c.session_token.expose().len()
        + c.account_id.len()
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
