//! Temporary credentials and the `Secret` type that keeps their secret parts out of every print.

use std::fmt;
use std::ops::RangeInclusive;
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
    /// The role's 12-digit account, for SDKs that route by account (`AccountId`,
    /// `aws_account_id`, `AWS_ACCOUNT_ID`): from the assumed-role ARN STS returned.
    pub account_id: String,
}

impl Credentials {
    /// True when they are still usable at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.expiration > now
    }

    /// Checks that each part has the shape AWS gives it, so that none can end a line, a quote or
    /// a section of a file it is written into (or of a log line): an access key id of
    /// [`ACCESS_KEY_ID_LENGTH`] upper-case letters and digits, and a secret key and session token
    /// of base64 characters (letters, digits, `+/=`) of a plausible length.
    pub fn check_shape(&self) -> Result<(), Malformed> {
        let key = &self.access_key_id;
        if !ACCESS_KEY_ID_LENGTH.contains(&key.len())
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(Malformed::AccessKeyId);
        }
        if !is_base64_like(self.secret_access_key.expose(), &SECRET_ACCESS_KEY_LENGTH) {
            return Err(Malformed::SecretAccessKey);
        }
        if !is_base64_like(self.session_token.expose(), &SESSION_TOKEN_LENGTH) {
            return Err(Malformed::SessionToken);
        }
        Ok(())
    }
}

/// The lengths of an access key id that IAM documents.
pub const ACCESS_KEY_ID_LENGTH: RangeInclusive<usize> = 16..=128;
/// The lengths accepted for a secret access key (AWS issues 40 characters).
pub const SECRET_ACCESS_KEY_LENGTH: RangeInclusive<usize> = 16..=128;
/// The lengths accepted for a session token (AWS documents no maximum; session tags and policies
/// make it grow to a few kilobytes).
pub const SESSION_TOKEN_LENGTH: RangeInclusive<usize> = 16..=16_384;

/// Letters, digits and `+/=` only, with a length in `lengths`.
fn is_base64_like(value: &str, lengths: &RangeInclusive<usize>) -> bool {
    lengths.contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// The part of a set of credentials that is not shaped like what AWS issues. It names the part
/// and the rule, never the value (a secret, or text meant to mislead whoever reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not [`ACCESS_KEY_ID_LENGTH`] characters of A-Z and 0-9.
    #[error("an access key id that is not 16 to 128 characters of A-Z and 0-9")]
    AccessKeyId,
    /// Not [`SECRET_ACCESS_KEY_LENGTH`] characters of letters, digits and `+/=`.
    #[error("a secret access key that is not 16 to 128 characters of letters, digits and +/=")]
    SecretAccessKey,
    /// Not [`SESSION_TOKEN_LENGTH`] characters of letters, digits and `+/=`.
    #[error("a session token that is not 16 to 16384 characters of letters, digits and +/=")]
    SessionToken,
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
            account_id: "111111111111".into(),
        };
        let printed = format!("{creds:?} {}", creds.session_token);
        assert!(printed.contains("ASIAEXAMPLE"));
        assert!(!printed.contains("wJalrXUtnFEMI"), "{printed}");
        assert!(!printed.contains("FQoGZXIvYXCUm8"), "{printed}");
    }

    fn shaped(key: &str, secret: &str, token: &str) -> Result<(), Malformed> {
        Credentials {
            access_key_id: key.into(),
            secret_access_key: Secret::new(secret),
            session_token: Secret::new(token),
            expiration: SystemTime::UNIX_EPOCH,
            issued: SystemTime::UNIX_EPOCH,
            role_arn: "arn:aws:iam::111111111111:role/R".into(),
            account_id: "111111111111".into(),
        }
        .check_shape()
    }

    #[test]
    fn only_parts_shaped_like_what_aws_issues_pass() {
        let key = "ASIAQWERTYUIOPASDFGH";
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let token = "IQoJb3JpZ2luX2VjEK7//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+==";
        assert_eq!(shaped(key, secret, token), Ok(()));
        assert_eq!(shaped(&"A".repeat(16), secret, &"t".repeat(16_384)), Ok(()));
        for bad_key in [
            "",
            "ASIA12345678901",
            "asiaqwertyuiopasdfgh",
            "ASIAQWERTYUIOPASDFGH\nFORGED",
            "ASIAQWERTYUIOPASDFG ",
            &"A".repeat(129),
        ] {
            assert_eq!(
                shaped(bad_key, secret, token),
                Err(Malformed::AccessKeyId),
                "{bad_key:?}"
            );
        }
        for bad in [
            "short",
            "wJalrXUtnFEMI'K7MDENG",
            "wJalrXUtnFEMI K7MDENG",
            "wJalrXUtnFEMI-K7MDENG",
        ] {
            assert_eq!(
                shaped(key, bad, token),
                Err(Malformed::SecretAccessKey),
                "{bad:?}"
            );
        }
        for bad in [
            "FQoGZXIvYXdzEBYaD\nAWS_PWN=$(touch x)",
            "FQoGZXIvYXdzEBYaD[default]",
            "c2hvcnQ=",
            &"t".repeat(16_385),
        ] {
            assert_eq!(
                shaped(key, secret, bad),
                Err(Malformed::SessionToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_malformed_part_is_named_without_its_value() {
        let refused = shaped(
            "ASIAQWERTYUIOPASDFGH",
            "wJalrXUtnFEMI'K7MDENG'x",
            "tokentokentokentoken",
        )
        .unwrap_err()
        .to_string();
        assert!(refused.contains("secret access key"), "{refused}");
        assert!(!refused.contains("wJalrXUtnFEMI"), "{refused}");
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
