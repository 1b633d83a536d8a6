//! Temporary credentials and the `Secret` type that keeps their secret parts out of every print.

use std::fmt;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use subtle::{Choice, ConstantTimeEq};

/// A string that must never be printed: `Debug` and `Display` show `[redacted]`, the memory is
/// zeroed when it is dropped (`secrecy`), and comparing two takes the same time wherever they
/// differ (`subtle`).
///
/// The only way to the value is [`Secret::expose`], which makes every use greppable.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret value, for writing it where it belongs (an output file, the endpoint).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether `given` is this secret, in time that does not depend on where they differ, so a
    /// secret cannot be guessed byte by byte (only its length shows).
    pub fn matches(&self, given: &[u8]) -> Choice {
        self.expose().as_bytes().ct_eq(given)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.expose().as_bytes()).into()
    }
}

impl Eq for Secret {}

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
    fn secrets_compare_through_subtle() {
        let secret = Secret::new("abcdef");
        // The result is subtle's Choice: the crate's constant-time compare, not a hand-written
        // loop that an optimiser may turn into an early exit.
        let choice: Choice = secret.matches(b"abcdef");
        assert!(bool::from(choice));
        for wrong in [&b"abcdeF"[..], b"abcde", b"abcdefg", b""] {
            assert!(!bool::from(secret.matches(wrong)), "{wrong:?}");
        }
        assert_eq!(secret, Secret::new("abcdef"));
        assert_ne!(secret, Secret::new("abcdeg"));
    }

    #[test]
    fn rfc3339_is_utc_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_500);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }
}
