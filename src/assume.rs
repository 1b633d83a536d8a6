//! One AssumeRole call, role chains, and the one place where STS failures are classified into
//! the error kinds that logs, metrics and `/status` use.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::{PolicyDescriptorType, Tag};
use aws_sdk_sts::Client;

use crate::config::{one_line, RoleArn, RoleConfig, MAX_SESSION_DURATION, ONE_HOUR};
use crate::credentials::{Credentials, Secret};

/// Intermediate hops of a chain live only long enough to assume the next hop.
pub const HOP_DURATION: Duration = Duration::from_secs(900);

/// What kind of failure an attempt was: the fixed `kind` label of metrics, logs and `/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// STS refused: the trust policy or the source's permissions do not allow the call.
    AccessDenied,
    /// STS asked us to slow down.
    Throttled,
    /// The sidecar's own credentials are missing, invalid or expired.
    InvalidSourceCredentials,
    /// STS could not be reached.
    Network,
    /// The call took longer than `refresh.timeout`.
    Timeout,
    /// STS refused a parameter (duration, policy, tags...).
    Validation,
    /// Anything else, including malformed replies.
    Other,
}

impl ErrorKind {
    /// The label value, as the README's metrics table names it.
    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::Throttled => "throttled",
            ErrorKind::InvalidSourceCredentials => "invalid_source_credentials",
            ErrorKind::Network => "network",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Validation => "validation",
            ErrorKind::Other => "other",
        }
    }

    /// The kind of an STS error code.
    pub fn from_code(code: &str) -> ErrorKind {
        match code {
            "AccessDenied" | "AccessDeniedException" => ErrorKind::AccessDenied,
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "SlowDown"
            | "PriorRequestNotComplete" => ErrorKind::Throttled,
            "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "InvalidAccessKeyId"
            | "UnrecognizedClientException"
            | "InvalidToken"
            | "AuthFailure" => ErrorKind::InvalidSourceCredentials,
            "ValidationError"
            | "ValidationException"
            | "MalformedPolicyDocument"
            | "PackedPolicyTooLarge"
            | "RegionDisabledException"
            | "InvalidParameterValue"
            | "InvalidParameterCombination"
            | "MissingParameter"
            | "InvalidAction" => ErrorKind::Validation,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_label())
    }
}

/// A failed attempt to get credentials for a role. Its message carries the STS error code and
/// message, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct AssumeError {
    /// The classification.
    pub kind: ErrorKind,
    /// The STS error code, when STS answered.
    pub code: Option<String>,
    /// What happened, and for some kinds what to check.
    pub message: String,
}

impl AssumeError {
    /// True when STS refused the requested duration as too long.
    pub fn is_duration_too_long(&self) -> bool {
        self.kind == ErrorKind::Validation && self.message.contains("DurationSeconds exceeds")
    }

    fn new(kind: ErrorKind, code: Option<String>, message: String) -> AssumeError {
        AssumeError {
            kind,
            code,
            message,
        }
    }

    /// Classifies an SDK error; `arn` is the role being assumed, named in hints.
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>, arn: &str) -> AssumeError
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        if let SdkError::ServiceError(service) = err {
            let error = service.err();
            let Some(code) = error.code() else {
                let status = service.raw().status().as_u16();
                return AssumeError::new(
                    ErrorKind::Other,
                    None,
                    format!("STS answered HTTP {status} without an error code"),
                );
            };
            let kind = ErrorKind::from_code(code);
            // STS's words go to logs and /status: they must not start a line of their own.
            let code = one_line(code);
            let mut message = format!(
                "{code}: {}",
                one_line(error.message().unwrap_or("(no message)"))
            );
            if kind == ErrorKind::AccessDenied {
                message.push_str(&format!(
                    " (check that the trust policy of {arn} trusts this sidecar's principal, with the right ExternalId, \
                     and that the principal's own policy allows sts:AssumeRole on it)"
                ));
            }
            return AssumeError::new(kind, Some(code), message);
        }
        if let SdkError::ResponseError(_) = err {
            // The reply's content is not quoted: a truncated AssumeRole reply holds a secret.
            return AssumeError::new(
                ErrorKind::Other,
                None,
                "STS sent a reply that could not be read (malformed or truncated)".into(),
            );
        }
        let detail = describe(err);
        if caused_by_credentials(err) {
            return AssumeError::new(
                ErrorKind::InvalidSourceCredentials,
                None,
                format!("no usable source credentials from the default chain or source.profile: {detail}"),
            );
        }
        let kind = match err {
            SdkError::TimeoutError(_) => ErrorKind::Timeout,
            SdkError::DispatchFailure(d) if d.is_timeout() => ErrorKind::Timeout,
            SdkError::DispatchFailure(_) => ErrorKind::Network,
            _ => ErrorKind::Other,
        };
        AssumeError::new(kind, None, detail)
    }

    /// The error for a call that did not finish within `refresh.timeout`.
    pub fn timed_out(after: Duration) -> AssumeError {
        AssumeError::new(
            ErrorKind::Timeout,
            None,
            format!("STS did not answer within {}s", after.as_secs_f64()),
        )
    }
}

/// The `Display` of `err` and its causes, joined, repeats left out; never `Debug` (raw replies).
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// True when a credentials provider's error is among the causes of `err`.
fn caused_by_credentials(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<CredentialsError>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Credentials from [`Assumer::assume`], and the session duration STS granted for them.
#[derive(Debug)]
pub struct Assumed {
    /// The role's credentials.
    pub credentials: Credentials,
    /// The duration asked for in the call that succeeded.
    pub duration: Duration,
}

/// Calls STS for the roles of the configuration.
#[derive(Clone, Debug)]
pub struct Assumer {
    client: Client,
    timeout: Duration,
}

impl Assumer {
    /// Uses `client` (with the source credentials) and a time limit per call.
    pub fn new(client: Client, timeout: Duration) -> Assumer {
        Assumer { client, timeout }
    }

    /// The same client with another time limit per call.
    pub fn with_timeout(&self, timeout: Duration) -> Assumer {
        Assumer {
            client: self.client.clone(),
            timeout,
        }
    }

    /// The time limit of one STS call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Assumes `role`, asking for `duration`, through its chain if it has one.
    ///
    /// When STS refuses a duration over one hour (role chaining, or the role's maximum), the call
    /// is repeated with one hour; the result says which duration was granted, so the caller asks
    /// for that from then on (and says so once).
    pub async fn assume(
        &self,
        role: &RoleConfig,
        duration: Duration,
        now: impl Fn() -> SystemTime,
    ) -> Result<Assumed, AssumeError> {
        let mut client = self.client.clone();
        for hop in &role.chain {
            let creds = self
                .call(
                    &client,
                    hop,
                    None,
                    &role.session_name_resolved,
                    HOP_DURATION,
                    &now,
                )
                .await?;
            client = with_credentials(&self.client, &creds);
        }
        let target = |duration| {
            self.call(
                &client,
                &role.role_arn,
                Some(role),
                &role.session_name_resolved,
                duration,
                &now,
            )
        };
        let (credentials, duration) = match target(duration).await {
            Err(e) if e.is_duration_too_long() && duration > ONE_HOUR => {
                (target(ONE_HOUR).await?, ONE_HOUR)
            }
            other => (other?, duration),
        };
        Ok(Assumed {
            credentials,
            duration,
        })
    }

    /// One AssumeRole call; `options` carries the target role's session options (none for a hop).
    async fn call(
        &self,
        client: &Client,
        arn: &RoleArn,
        options: Option<&RoleConfig>,
        session_name: &str,
        duration: Duration,
        now: &impl Fn() -> SystemTime,
    ) -> Result<Credentials, AssumeError> {
        let mut request = client
            .assume_role()
            .role_arn(arn.as_str())
            .role_session_name(session_name)
            .duration_seconds(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
        if let Some(role) = options {
            request = request
                .set_external_id(role.external_id.clone())
                .set_policy(role.policy.clone())
                .set_source_identity(role.source_identity.clone());
            for policy_arn in &role.policy_arns {
                request =
                    request.policy_arns(PolicyDescriptorType::builder().arn(policy_arn).build());
            }
            for (key, value) in &role.tags {
                let tag = Tag::builder().key(key).value(value).build().map_err(|e| {
                    AssumeError::new(
                        ErrorKind::Validation,
                        None,
                        format!("session tag {key:?}: {e}"),
                    )
                })?;
                request = request.tags(tag);
            }
            for key in &role.transitive_tag_keys {
                request = request.transitive_tag_keys(key);
            }
        }
        let output = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => return Err(AssumeError::timed_out(self.timeout)),
            Ok(Err(e)) => return Err(AssumeError::from_sdk(&e, arn.as_str())),
            Ok(Ok(output)) => output,
        };
        let assumed_arn = output.assumed_role_user.map(|user| user.arn);
        credentials_from(output.credentials, assumed_arn.as_deref(), arn, now())
    }
}

/// The account of an assumed-role ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`)
/// when it is 12 digits (nothing else from a reply reaches a file), else the configured role's,
/// which STS answers for in any case.
fn account_of(assumed_arn: Option<&str>, role: &RoleArn) -> String {
    let returned = assumed_arn
        .and_then(|arn| arn.split(':').nth(4))
        .filter(|account| account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
    returned.unwrap_or(role.account()).to_string()
}

/// An answer longer than STS grants is not believed; this much is allowed for the clocks of STS
/// and this machine to differ.
const CLOCK_SLACK: Duration = Duration::from_secs(3600);

/// The credentials of an AssumeRole reply received at `issued`, checked before anything uses
/// them: complete, shaped like what AWS issues (so that no value can break out of a file it is
/// written into), and expiring after `issued` but not later than STS can grant. A reply that
/// fails is kind `other`, and its values are never quoted.
fn credentials_from(
    returned: Option<aws_sdk_sts::types::Credentials>,
    assumed_arn: Option<&str>,
    arn: &RoleArn,
    issued: SystemTime,
) -> Result<Credentials, AssumeError> {
    let refused = |message: String| AssumeError::new(ErrorKind::Other, None, message);
    let malformed = |what: &str| refused(format!("STS answered without {what}"));
    let returned = returned.ok_or_else(|| malformed("Credentials"))?;
    let expiration =
        SystemTime::try_from(returned.expiration).map_err(|_| malformed("a valid Expiration"))?;
    if returned.access_key_id.is_empty()
        || returned.secret_access_key.is_empty()
        || returned.session_token.is_empty()
    {
        return Err(malformed("a complete key, secret and session token"));
    }
    let credentials = Credentials {
        access_key_id: returned.access_key_id,
        secret_access_key: Secret::new(returned.secret_access_key),
        session_token: Secret::new(returned.session_token),
        expiration,
        issued,
        role_arn: arn.to_string(),
        account_id: account_of(assumed_arn, arn),
    };
    if let Err(part) = credentials.check_shape() {
        return Err(refused(format!(
            "STS returned {part}; refused, nothing written (a rogue or intercepted STS? check sts.endpoint_url)"
        )));
    }
    if expiration <= issued {
        return Err(refused(format!(
            "STS returned credentials that expire at {}, already past: check this machine's clock",
            crate::credentials::rfc3339(expiration)
        )));
    }
    if expiration > issued + MAX_SESSION_DURATION + CLOCK_SLACK {
        return Err(refused(format!(
            "STS returned credentials that expire at {}, later than the {} STS grants: \
             check this machine's clock, and sts.endpoint_url",
            crate::credentials::rfc3339(expiration),
            crate::config::HumanDuration(MAX_SESSION_DURATION)
        )));
    }
    Ok(credentials)
}

/// A client like `base` that signs with `creds` instead of the source credentials.
fn with_credentials(base: &Client, creds: &Credentials) -> Client {
    let provider = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        creds.secret_access_key.expose(),
        Some(creds.session_token.expose().to_string()),
        Some(creds.expiration),
        "rolerelay-chain",
    );
    Client::from_conf(
        base.config()
            .to_builder()
            .credentials_provider(provider)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_spec_kinds() {
        let cases = [
            ("AccessDenied", "access_denied"),
            ("Throttling", "throttled"),
            ("RequestLimitExceeded", "throttled"),
            ("InvalidClientTokenId", "invalid_source_credentials"),
            ("ExpiredToken", "invalid_source_credentials"),
            ("SignatureDoesNotMatch", "invalid_source_credentials"),
            ("ValidationError", "validation"),
            ("MalformedPolicyDocument", "validation"),
            ("RegionDisabledException", "validation"),
            ("InternalFailure", "other"),
        ];
        for (code, label) in cases {
            assert_eq!(ErrorKind::from_code(code).metric_label(), label, "{code}");
        }
        let every_kind = [
            ErrorKind::AccessDenied,
            ErrorKind::Throttled,
            ErrorKind::InvalidSourceCredentials,
            ErrorKind::Network,
            ErrorKind::Timeout,
            ErrorKind::Validation,
            ErrorKind::Other,
        ];
        let labels: std::collections::HashSet<_> =
            every_kind.iter().map(|k| k.metric_label()).collect();
        assert_eq!(labels.len(), 7);
    }

    /// An AssumeRole reply's credentials, expiring `lifetime` after the epoch.
    fn reply(key: &str, token: &str, lifetime: Duration) -> aws_sdk_sts::types::Credentials {
        aws_sdk_sts::types::Credentials::builder()
            .access_key_id(key)
            .secret_access_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            .session_token(token)
            .expiration(aws_sdk_sts::primitives::DateTime::from(
                SystemTime::UNIX_EPOCH + lifetime,
            ))
            .build()
            .unwrap()
    }

    #[test]
    fn the_account_comes_from_the_assumed_role_arn_when_it_is_twelve_digits() {
        let arn: RoleArn = "arn:aws:iam::111111111111:role/R".parse().unwrap();
        let cases = [
            (
                Some("arn:aws:sts::222222222222:assumed-role/R/s"),
                "222222222222",
            ),
            (
                Some("arn:aws:sts::22222\n[x]:assumed-role/R/s"),
                "111111111111",
            ),
            (Some("nonsense"), "111111111111"),
            (None, "111111111111"),
        ];
        for (assumed, account) in cases {
            assert_eq!(account_of(assumed, &arn), account, "{assumed:?}");
        }
    }

    #[test]
    fn replies_are_believed_only_when_well_formed_and_within_what_sts_grants() {
        let arn: RoleArn = "arn:aws:iam::111111111111:role/R".parse().unwrap();
        let key = "ASIAQWERTYUIOPASDFGH";
        let token = "FQoGZXIvYXdzEBYaDgoodtoken";
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let hour = Duration::from_secs(3600);
        let assumed = Some("arn:aws:sts::111111111111:assumed-role/R/s");
        let ok = credentials_from(Some(reply(key, token, hour)), assumed, &arn, at(0)).unwrap();
        assert_eq!(ok.access_key_id, key);
        assert_eq!(ok.issued, at(0));
        assert_eq!(ok.account_id, "111111111111");
        let twelve_hours = reply(key, token, 12 * hour);
        assert!(credentials_from(Some(twelve_hours), None, &arn, at(1)).is_ok());

        let refusals = [
            (None, at(0), "without Credentials"),
            (Some(reply(key, token, hour)), at(3600), "already past"),
            (
                Some(reply(key, token, 14 * hour)),
                at(0),
                "later than the 12h",
            ),
            (
                Some(reply("ASIA\nFORGED-LINE", token, hour)),
                at(0),
                "an access key id",
            ),
            (
                Some(reply(key, "FQoGZXIvYXdzEBYaD\n[default]", hour)),
                at(0),
                "a session token",
            ),
        ];
        for (returned, issued, why) in refusals {
            let e = credentials_from(returned, None, &arn, issued).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Other, "{why}");
            assert!(e.message.contains(why), "{why}: {e}");
            assert!(
                !e.message.contains("FORGED") && !e.message.contains("[default]"),
                "{e}"
            );
        }
    }

    #[test]
    fn duration_refusals_are_recognised() {
        let chained = AssumeError::new(
            ErrorKind::Validation,
            Some("ValidationError".into()),
            "ValidationError: The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into(),
        );
        assert!(chained.is_duration_too_long());
        let other = AssumeError::new(
            ErrorKind::Validation,
            None,
            "ValidationError: 1 validation error detected".into(),
        );
        assert!(!other.is_duration_too_long());
        let denied = AssumeError::new(
            ErrorKind::AccessDenied,
            None,
            "DurationSeconds exceeds".into(),
        );
        assert!(!denied.is_duration_too_long());
    }
}
