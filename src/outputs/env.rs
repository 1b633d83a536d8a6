//! `<role>.env`: `KEY=value` lines for shell scripts and `--env-file`.

use crate::credentials::{rfc3339, Credentials};

/// The file's content.
pub fn render(creds: &Credentials) -> String {
    format!(
        "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nAWS_SESSION_TOKEN={}\nAWS_CREDENTIAL_EXPIRATION={}\n",
        creds.access_key_id,
        creds.secret_access_key.expose(),
        creds.session_token.expose(),
        rfc3339(creds.expiration)
    )
}
