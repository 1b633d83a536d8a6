//! The error → hint mapping of `rolerelay doctor`: pure functions of an STS error and what is
//! known about the call, kept apart from the probes that touch the network and the disk.

use crate::assume::{AssumeError, ErrorKind};
use crate::config::RoleArn;

/// Why a step fails and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The cause, as precisely as the error allows.
    pub cause: String,
    /// What to change.
    pub fix: String,
}

impl Hint {
    /// A hint from its cause and fix.
    pub(super) fn new(cause: impl Into<String>, fix: impl Into<String>) -> Hint {
        Hint {
            cause: cause.into(),
            fix: fix.into(),
        }
    }

    /// The hint for a step that needs source credentials when there are none.
    pub(super) fn no_source_credentials() -> Hint {
        NO_SOURCE.into()
    }
}

impl From<(&str, &str)> for Hint {
    fn from((cause, fix): (&str, &str)) -> Hint {
        Hint::new(cause, fix)
    }
}

/// What the hint for a failed STS call needs to know besides the error.
#[derive(Clone, Debug, Default)]
pub struct HintContext {
    /// The role being assumed; none for sts:GetCallerIdentity, which names no role.
    pub role_arn: Option<RoleArn>,
    /// The IAM principal making the call, if known (from GetCallerIdentity, or the previous hop).
    pub principal: Option<String>,
    /// Whether an ExternalId is sent: then a mismatch is suspected rather than a missing one.
    pub external_id_set: bool,
    /// Whether session tags are sent, which needs sts:TagSession besides sts:AssumeRole.
    pub tags_set: bool,
    /// Whether this call is role chaining (the caller is itself a role session).
    pub chained: bool,
    /// The region STS is called in, named when STS there cannot be reached or is not activated.
    pub region: String,
}

impl HintContext {
    /// The role's ARN as text; empty when there is no role.
    fn arn(&self) -> &str {
        self.role_arn.as_ref().map_or("", RoleArn::as_str)
    }

    /// The principal to name in policies, or a placeholder for the reader to fill in.
    fn principal(&self) -> &str {
        self.principal
            .as_deref()
            .unwrap_or("<the sidecar's principal>")
    }
}

/// The hint for a failed STS call. The arms are tried in order, so the more precise come first;
/// the texts that need no context are the constants below.
pub fn hint(err: &AssumeError, context: &HintContext) -> Hint {
    let code = err.code.as_deref().unwrap_or_default();
    let says = |text: &str| err.message.contains(text);
    match err.kind {
        ErrorKind::AccessDenied
            if says("sts:TagSession") || (context.tags_set && !says("sts:AssumeRole")) =>
        {
            tag_session_refused(context)
        }
        ErrorKind::AccessDenied => assume_role_refused(context),
        ErrorKind::Validation if says("role chaining") => CHAIN_OVER_AN_HOUR.into(),
        ErrorKind::Validation if says("MaxSessionDuration") || says("DurationSeconds") => {
            over_max_session(context)
        }
        ErrorKind::Validation if code == "RegionDisabledException" => region_disabled(context),
        ErrorKind::Validation
            if matches!(code, "MalformedPolicyDocument" | "PackedPolicyTooLarge") =>
        {
            SESSION_POLICY_REFUSED.into()
        }
        ErrorKind::InvalidSourceCredentials
            if says("Signature expired") || code == "RequestExpired" =>
        {
            CLOCK_OFF.into()
        }
        ErrorKind::InvalidSourceCredentials
            if matches!(code, "ExpiredToken" | "ExpiredTokenException") =>
        {
            SOURCE_EXPIRED.into()
        }
        ErrorKind::InvalidSourceCredentials if code == "SignatureDoesNotMatch" => {
            WRONG_SECRET.into()
        }
        ErrorKind::InvalidSourceCredentials if err.code.is_some() => UNKNOWN_ACCESS_KEY.into(),
        ErrorKind::InvalidSourceCredentials => NO_SOURCE.into(),
        ErrorKind::Throttled => THROTTLED.into(),
        ErrorKind::Network | ErrorKind::Timeout => sts_unreachable(err, context),
        _ if context.chained && says("DurationSeconds") => CHAIN_LIMIT.into(),
        _ => Hint::new(err.message.clone(), "see the STS error above"),
    }
}

// (cause, fix) of the hints that need no context.
const CHAIN_OVER_AN_HOUR: (&str, &str) = (
    "the caller is itself a role session, and STS gives a role chain at most 1 hour",
    "set roles[].duration to 1h or less (rolerelay lowers it to 1h by itself, and says so once)",
);
const CHAIN_LIMIT: (&str, &str) = (
    "a role chain is limited to 1 hour",
    "set roles[].duration to 1h",
);
const SESSION_POLICY_REFUSED: (&str, &str) = (
    "the session policy (roles[].policy, policy_arns) or the tags are refused",
    "check roles[].policy is a valid IAM policy JSON, and shorten the policy or the tags",
);
const CLOCK_OFF: (&str, &str) = (
    "the machine's clock is off: the request's signature is outside STS's 5-minute window",
    "synchronise the clock (chrony, systemd-timesyncd, or the Amazon Time Sync Service at 169.254.169.123)",
);
const SOURCE_EXPIRED: (&str, &str) = (
    "the source credentials expired",
    "check that the source refreshes them: the IRSA token file is mounted and rotated, the instance profile is attached, the environment's keys are current",
);
const WRONG_SECRET: (&str, &str) = (
    "the source secret key does not match its access key id",
    "check the source credentials (a truncated or stale AWS_SECRET_ACCESS_KEY is the usual cause)",
);
const UNKNOWN_ACCESS_KEY: (&str, &str) = (
    "STS does not know the source access key (\"The security token included in the request is invalid\"): deleted, from another account's partition, or a session token is missing",
    "check which source credentials are used (see the first steps) and that AWS_SESSION_TOKEN accompanies temporary keys",
);
const NO_SOURCE: (&str, &str) = ("no source credentials", "see the source credentials step");
const THROTTLED: (&str, &str) = (
    "STS throttled the calls (too many AssumeRole calls for the account or region)",
    "lower refresh.concurrency, raise refresh.lifetime_fraction's interval, or spread sidecars over time (refresh.jitter)",
);

/// Session tags need sts:TagSession in both policies, which AccessDenied does not say.
fn tag_session_refused(context: &HintContext) -> Hint {
    let (principal, arn) = (context.principal(), context.arn());
    Hint::new(
        format!("session tags are set, and sts:TagSession is not allowed for {principal} on {arn}"),
        format!(
            "allow \"sts:TagSession\" next to \"sts:AssumeRole\" in {arn}'s trust policy (for {principal}) and in {principal}'s policy, or remove the role's tags"
        ),
    )
}

/// AccessDenied does not say which side refused: the causes it can be, and both statements to add.
fn assume_role_refused(context: &HintContext) -> Hint {
    let (principal, arn) = (context.principal(), context.arn());
    let external = if context.external_id_set {
        "\n- the ExternalId sent does not match the trust policy's sts:ExternalId condition"
    } else {
        "\n- the trust policy requires an sts:ExternalId and none is sent (set roles[].external_id)"
    };
    let tags = if context.tags_set {
        "\n- session tags are set and sts:TagSession is not allowed"
    } else {
        ""
    };
    let condition = if context.external_id_set {
        ", \"Condition\": {\"StringEquals\": {\"sts:ExternalId\": \"<roles[].external_id>\"}}"
    } else {
        ""
    };
    Hint::new(
        format!(
            "STS refused {principal} on {arn}; one of:\n- {arn}'s trust policy does not trust {principal}\n\
             - {principal}'s own policy does not allow sts:AssumeRole on {arn}{external}{tags}"
        ),
        format!(
            "in the role's account, trust the principal: {{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Effect\": \"Allow\", \
             \"Principal\": {{\"AWS\": \"{principal}\"}}, \"Action\": \"sts:AssumeRole\"{condition}}}]}}\n\
             in the principal's account, allow the call: {{\"Effect\": \"Allow\", \"Action\": \"sts:AssumeRole\", \"Resource\": \"{arn}\"}}\n\
             (deploy/iam/ has both as files)"
        ),
    )
}

/// The role's own maximum caps the duration; the fix names the command with the role's name.
fn over_max_session(context: &HintContext) -> Hint {
    let role_name = context.role_arn.as_ref().map_or("", RoleArn::role_name);
    Hint::new(
        format!("the requested duration is longer than {}'s maximum session duration", context.arn()),
        format!("lower roles[].duration, or raise the role's MaxSessionDuration (aws iam update-role --role-name {role_name} --max-session-duration 43200)"),
    )
}

/// STS can be switched off per region and account; the error does not name the region.
fn region_disabled(context: &HintContext) -> Hint {
    Hint::new(
        format!("STS is not activated in {} for the role's account", context.region),
        "activate the region for STS in the account's IAM settings (Account settings → Security Token Service), or set sts.region to an active region",
    )
}

/// A network failure or a timeout: the region says which endpoint was tried.
fn sts_unreachable(err: &AssumeError, context: &HintContext) -> Hint {
    Hint::new(
        format!("STS in {} could not be reached: {}", context.region, err.message),
        "check egress to sts.<region>.amazonaws.com (security groups, NACLs, a proxy), or the VPC endpoint in sts.endpoint_url, and the region",
    )
}

/// The IAM principal a trust policy names for a caller identity ARN: an assumed-role session
/// becomes its role (without a path, which the session ARN does not carry).
pub fn principal_of(caller_arn: &str) -> String {
    let parts: Vec<&str> = caller_arn.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts.as_slice() {
        if let Some(role) = resource
            .strip_prefix("assumed-role/")
            .and_then(|r| r.split('/').next())
        {
            return format!("arn:{partition}:iam::{account}:role/{role}");
        }
    }
    caller_arn.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, code: Option<&str>, message: &str) -> AssumeError {
        AssumeError {
            kind,
            code: code.map(String::from),
            message: match code {
                Some(code) => format!("{code}: {message}"),
                None => message.into(),
            },
        }
    }

    fn context() -> HintContext {
        HintContext {
            role_arn: "arn:aws:iam::111111111111:role/RoleForB".parse().ok(),
            principal: Some("arn:aws:iam::222222222222:role/AssumeRoleInA".into()),
            region: "us-east-1".into(),
            ..HintContext::default()
        }
    }

    const DENIED: &str = "User: arn:aws:sts::222222222222:assumed-role/AssumeRoleInA/i-1 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/RoleForB";

    /// One line per arm of `hint`: the error (kind, code, message) and a piece of the cause it
    /// must give. A new hint is a new line here.
    #[rustfmt::skip]
    const CASES: &[(ErrorKind, Option<&str>, &str, &str)] = &[
        (ErrorKind::AccessDenied, Some("AccessDenied"), "User: x is not authorized to perform: sts:TagSession on resource: y", "sts:TagSession is not allowed"),
        (ErrorKind::AccessDenied, Some("AccessDenied"), DENIED, "trust policy does not trust"),
        (ErrorKind::Validation, Some("ValidationError"), "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.", "role chain"),
        (ErrorKind::Validation, Some("ValidationError"), "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", "maximum session duration"),
        (ErrorKind::Validation, Some("RegionDisabledException"), "STS is not activated in this region", "not activated in us-east-1"),
        (ErrorKind::Validation, Some("MalformedPolicyDocument"), "Syntax errors in policy.", "the session policy"),
        (ErrorKind::Validation, Some("PackedPolicyTooLarge"), "Packed policy consumes 120% of allotted space", "the session policy"),
        (ErrorKind::InvalidSourceCredentials, Some("SignatureDoesNotMatch"), "Signature expired: 20261128T000000Z is now earlier than", "clock is off"),
        (ErrorKind::InvalidSourceCredentials, Some("RequestExpired"), "Request has expired.", "clock is off"),
        (ErrorKind::InvalidSourceCredentials, Some("ExpiredToken"), "The security token included in the request is expired", "source credentials expired"),
        (ErrorKind::InvalidSourceCredentials, Some("SignatureDoesNotMatch"), "The request signature we calculated does not match", "secret key does not match"),
        (ErrorKind::InvalidSourceCredentials, Some("InvalidClientTokenId"), "The security token included in the request is invalid.", "does not know the source access key"),
        (ErrorKind::InvalidSourceCredentials, None, "no usable source credentials from the default chain", "no source credentials"),
        (ErrorKind::Throttled, Some("Throttling"), "Rate exceeded", "throttled"),
        (ErrorKind::Network, None, "dispatch failure: io error", "STS in us-east-1 could not be reached: dispatch failure"),
        (ErrorKind::Timeout, None, "STS did not answer within 5s", "could not be reached"),
        (ErrorKind::Validation, Some("InvalidParameterValue"), "Value at 'roleSessionName' failed", "Value at 'roleSessionName' failed"),
        (ErrorKind::Other, None, "STS answered HTTP 500 without an error code", "STS answered HTTP 500"),
    ];

    #[test]
    fn each_error_gets_its_own_hint() {
        for &(kind, code, message, expected) in CASES {
            let given = hint(&err(kind, code, message), &context());
            assert!(given.cause.contains(expected), "{message}: {}", given.cause);
            assert!(!given.fix.is_empty(), "{message}");
        }
    }

    #[test]
    fn access_denied_shows_the_principal_to_trust_and_the_statement_to_add() {
        let denied = err(ErrorKind::AccessDenied, Some("AccessDenied"), DENIED);
        let without_id = hint(&denied, &context());
        assert!(
            without_id.cause.contains(
                "trust policy does not trust arn:aws:iam::222222222222:role/AssumeRoleInA"
            ),
            "{}",
            without_id.cause
        );
        assert!(without_id
            .cause
            .contains("own policy does not allow sts:AssumeRole"));
        assert!(without_id
            .cause
            .contains("requires an sts:ExternalId and none is sent"));
        assert!(
            without_id.fix.contains(
                "\"Principal\": {\"AWS\": \"arn:aws:iam::222222222222:role/AssumeRoleInA\"}"
            ),
            "{}",
            without_id.fix
        );
        assert!(without_id
            .fix
            .contains("\"Resource\": \"arn:aws:iam::111111111111:role/RoleForB\""));
        assert!(!without_id.fix.contains("sts:ExternalId"));
        let with_id = hint(
            &denied,
            &HintContext {
                external_id_set: true,
                ..context()
            },
        );
        assert!(with_id.cause.contains("ExternalId sent does not match"));
        assert!(with_id.fix.contains("\"sts:ExternalId\""));
    }

    #[test]
    fn tag_session_denials_name_the_missing_permission() {
        let message = "User: x is not authorized to perform: sts:TagSession on resource: arn:aws:iam::111111111111:role/RoleForB";
        let tagged = hint(
            &err(ErrorKind::AccessDenied, Some("AccessDenied"), message),
            &HintContext {
                tags_set: true,
                ..context()
            },
        );
        assert!(
            tagged.cause.contains("sts:TagSession is not allowed"),
            "{}",
            tagged.cause
        );
        assert!(tagged.fix.contains("\"sts:TagSession\""));
    }

    #[test]
    fn a_too_long_duration_names_the_role_in_the_command_to_run() {
        let refused = err(
            ErrorKind::Validation,
            Some("ValidationError"),
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        );
        let given = hint(&refused, &context());
        assert!(given.fix.contains("--role-name RoleForB "), "{}", given.fix);
    }

    #[test]
    fn an_unclassified_duration_error_on_a_chain_is_the_one_hour_limit() {
        let refused = err(ErrorKind::Other, None, "DurationSeconds is out of range");
        let chained = HintContext {
            chained: true,
            ..context()
        };
        assert_eq!(hint(&refused, &chained).cause, CHAIN_LIMIT.0);
        assert_eq!(hint(&refused, &context()).cause, refused.message);
    }

    #[test]
    fn principals_are_the_roles_behind_sessions() {
        assert_eq!(
            principal_of("arn:aws:sts::222222222222:assumed-role/AssumeRoleInA/i-0abc"),
            "arn:aws:iam::222222222222:role/AssumeRoleInA"
        );
        assert_eq!(
            principal_of("arn:aws:iam::222222222222:user/ci"),
            "arn:aws:iam::222222222222:user/ci"
        );
        assert_eq!(
            principal_of("arn:aws-cn:sts::222222222222:assumed-role/R/s"),
            "arn:aws-cn:iam::222222222222:role/R"
        );
    }
}
