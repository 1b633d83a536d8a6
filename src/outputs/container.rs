//! The container-credentials endpoint's answer (the ECS task-role format), rendered once per
//! generation of credentials so that each request only copies bytes.

use serde::Serialize;

use crate::credentials::{rfc3339, Credentials, SecretBytes};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerCredentials<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
    role_arn: &'a str,
    account_id: &'a str,
}

/// The endpoint's 200 answer for `creds`.
pub fn render(creds: &Credentials) -> SecretBytes {
    let body = ContainerCredentials {
        access_key_id: &creds.access_key_id,
        secret_access_key: creds.secret_access_key.expose(),
        token: creds.session_token.expose(),
        expiration: rfc3339(creds.expiration),
        role_arn: &creds.role_arn,
        account_id: &creds.account_id,
    };
    SecretBytes::new(serde_json::to_vec(&body).expect("plain strings serialize"))
}
