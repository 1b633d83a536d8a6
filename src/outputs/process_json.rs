//! `<role>.json`: the credential_process format (Version 1, RFC 3339 `Expiration`).

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::RoleName;
use crate::credentials::{rfc3339, Credentials};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessCredentials<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
    account_id: &'a str,
}

/// The file's content.
pub fn render(creds: &Credentials) -> String {
    let doc = ProcessCredentials {
        version: 1,
        access_key_id: &creds.access_key_id,
        secret_access_key: creds.secret_access_key.expose(),
        session_token: creds.session_token.expose(),
        expiration: rfc3339(creds.expiration),
        account_id: &creds.account_id,
    };
    serde_json::to_string(&doc).expect("plain strings serialize") + "\n"
}

/// Reads `dir/<role>.json` for `rolerelay credential-process` (and for the start's check of an
/// earlier run's files): the text to print, if the file is a regular file of a sane size, parses,
/// and has not expired at `now`. `role` is a [`RoleName`], so the file is in `dir`. The error
/// never contains the file's content.
pub fn read_current(dir: &Path, role: &RoleName, now: SystemTime) -> Result<String, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Check {
        version: u8,
        expiration: String,
    }
    let name = super::Output::ProcessJson
        .file_name(role.as_str())
        .expect("a per-role output");
    let path = dir.join(name);
    // Anyone who mounts the directory may have put a FIFO, a link or a huge file there.
    let bytes = super::read::regular_file(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{} is not credential_process JSON", path.display()))?;
    let check: Check = serde_json::from_str(&text)
        .map_err(|_| format!("{} is not credential_process JSON", path.display()))?;
    let expiration = humantime::parse_rfc3339(&check.expiration)
        .map_err(|_| format!("{} has an unreadable Expiration", path.display()))?;
    if check.version != 1 {
        return Err(format!(
            "{} has Version {}, expected 1",
            path.display(),
            check.version
        ));
    }
    if expiration <= now {
        return Err(format!(
            "the credentials in {} expired at {}",
            path.display(),
            check.expiration
        ));
    }
    Ok(text)
}
