//! `<role>.env`: `KEY=value` lines for shell scripts and env-file readers.
//!
//! Each value is [`shell::quote`]d, so the file is inert to a shell whatever a value holds: a
//! value of plain characters (every value rolerelay accepts from STS) stays bare, which env-file
//! readers that take the rest of the line verbatim (`docker run --env-file`) read as it is; any
//! other would be single-quoted.

use crate::credentials::{rfc3339, Credentials};
use crate::shell;

/// The file's content.
pub fn render(creds: &Credentials) -> String {
    let expiration = rfc3339(creds.expiration);
    [
        ("AWS_ACCESS_KEY_ID", creds.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.expose()),
        ("AWS_SESSION_TOKEN", creds.session_token.expose()),
        ("AWS_CREDENTIAL_EXPIRATION", expiration.as_str()),
        ("AWS_ACCOUNT_ID", creds.account_id.as_str()),
    ]
    .iter()
    .map(|(key, value)| format!("{key}={}\n", shell::quote(value)))
    .collect()
}
