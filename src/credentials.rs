//! Temporary credentials and the `Secret` type that keeps their secret parts out of every print.

use std::fmt;
use std::time::SystemTime;

/// A string that must never be printed: `Debug` and `Display` show `[redacted]`.
///
/// The only way to the value is [`Secret::expose`], which makes every use greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for writing it where it belongs (an output file, the endpoint).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Bytes that must never be printed (a response body carrying a secret).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(bytes::Bytes);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<bytes::Bytes>) -> Self {
        SecretBytes(bytes.into())
    }

    /// The bytes, to send them where they belong; cloning them is a reference count.
    pub fn expose(&self) -> bytes::Bytes {
        self.0.clone()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One set of temporary credentials for a role, as returned by STS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id; not a secret, and the one part that may be logged.
    pub access_key_id: String,
    /// The secret access key: written to the outputs, never printed.
    pub secret_access_key: Secret,
    /// The session token: written to the outputs, never printed.
    pub session_token: Secret,
    /// When STS says they stop working.
    pub expiration: SystemTime,
    /// When rolerelay received them; the start of their lifetime for scheduling.
    pub issued: SystemTime,
    /// The role they are for, as configured (not the assumed-role session ARN).
    pub role_arn: String,
}

impl Credentials {
    /// True when they are still usable at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.expiration > now
    }
}

/// `Expiration` as AWS tools write it: RFC 3339, UTC, whole seconds (`2026-11-28T10:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let creds = Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI"),
            session_token: Secret::new("FQoGZXIvYXCUm8"),
            expiration: SystemTime::UNIX_EPOCH,
            issued: SystemTime::UNIX_EPOCH,
            role_arn: "arn:aws:iam::111111111111:role/R".into(),
        };
        let printed = format!("{creds:?} {}", creds.session_token);
        assert!(printed.contains("ASIAEXAMPLE"));
        assert!(!printed.contains("wJalrXUtnFEMI"), "{printed}");
        assert!(!printed.contains("FQoGZXIvYXCUm8"), "{printed}");
    }

    #[test]
    fn rfc3339_is_utc_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_500);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }
}
