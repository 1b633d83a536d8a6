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

/// What the hint for a failed AssumeRole needs to know besides the error.
#[derive(Clone, Debug, Default)]
pub struct HintContext {
    /// The role being assumed; none for sts:GetCallerIdentity, which names no role.
    pub role_arn: Option<RoleArn>,
    /// The IAM principal making the call, if known (from GetCallerIdentity, or the previous hop).
    pub principal: Option<String>,
    /// Whether an ExternalId is sent.
    pub external_id_set: bool,
    /// Whether session tags are sent.
    pub tags_set: bool,
    /// Whether this call is role chaining (the caller is itself a role session).
    pub chained: bool,
    /// The STS region.
    pub region: String,
}

/// The hint for a failed AssumeRole.
pub fn hint(e: &AssumeError, ctx: &HintContext) -> Hint {
    let code = e.code.as_deref().unwrap_or_default();
    let principal = ctx
        .principal
        .clone()
        .unwrap_or_else(|| "<the sidecar's principal>".into());
    let arn = ctx.role_arn.as_ref().map_or("", RoleArn::as_str);
    let role_name = ctx.role_arn.as_ref().map_or("", RoleArn::role_name);
    let h = |cause: String, fix: String| Hint { cause, fix };
    match e.kind {
        ErrorKind::AccessDenied if e.message.contains("sts:TagSession") || (ctx.tags_set && !e.message.contains("sts:AssumeRole")) => h(
            format!("session tags are set, and sts:TagSession is not allowed for {principal} on {arn}"),
            format!(
                "allow \"sts:TagSession\" next to \"sts:AssumeRole\" in {arn}'s trust policy (for {principal}) and in {principal}'s policy, or remove the role's tags"
            ),
        ),
        ErrorKind::AccessDenied => {
            let external = if ctx.external_id_set {
                "\n- the ExternalId sent does not match the trust policy's sts:ExternalId condition".to_string()
            } else {
                "\n- the trust policy requires an sts:ExternalId and none is sent (set roles[].external_id)".to_string()
            };
            let tags = if ctx.tags_set { "\n- session tags are set and sts:TagSession is not allowed" } else { "" };
            let condition = if ctx.external_id_set {
                ", \"Condition\": {\"StringEquals\": {\"sts:ExternalId\": \"<roles[].external_id>\"}}"
            } else {
                ""
            };
            h(
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
        ErrorKind::Validation if e.message.contains("role chaining") => h(
            "the caller is itself a role session, and STS gives a role chain at most 1 hour".into(),
            "set roles[].duration to 1h or less (rolerelay lowers it to 1h by itself, and says so once)".into(),
        ),
        ErrorKind::Validation if e.message.contains("MaxSessionDuration") || e.message.contains("DurationSeconds") => h(
            format!("the requested duration is longer than {arn}'s maximum session duration"),
            format!("lower roles[].duration, or raise the role's MaxSessionDuration (aws iam update-role --role-name {role_name} --max-session-duration 43200)"),
        ),
        ErrorKind::Validation if code == "RegionDisabledException" => h(
            format!("STS is not activated in {} for the role's account", ctx.region),
            "activate the region for STS in the account's IAM settings (Account settings → Security Token Service), or set sts.region to an active region".into(),
        ),
        ErrorKind::Validation if code == "MalformedPolicyDocument" || code == "PackedPolicyTooLarge" => h(
            "the session policy (roles[].policy, policy_arns) or the tags are refused".into(),
            "check roles[].policy is a valid IAM policy JSON, and shorten the policy or the tags".into(),
        ),
        ErrorKind::InvalidSourceCredentials if e.message.contains("Signature expired") || code == "RequestExpired" => h(
            "the machine's clock is off: the request's signature is outside STS's 5-minute window".into(),
            "synchronise the clock (chrony, systemd-timesyncd, or the Amazon Time Sync Service at 169.254.169.123)".into(),
        ),
        ErrorKind::InvalidSourceCredentials if code == "ExpiredToken" || code == "ExpiredTokenException" => h(
            "the source credentials expired".into(),
            "check that the source refreshes them: the IRSA token file is mounted and rotated, the instance profile is attached, the environment's keys are current".into(),
        ),
        ErrorKind::InvalidSourceCredentials if code == "SignatureDoesNotMatch" => h(
            "the source secret key does not match its access key id".into(),
            "check the source credentials (a truncated or stale AWS_SECRET_ACCESS_KEY is the usual cause)".into(),
        ),
        ErrorKind::InvalidSourceCredentials if e.code.is_some() => h(
            "STS does not know the source access key (\"The security token included in the request is invalid\"): deleted, from another account's partition, or a session token is missing".into(),
            "check which source credentials are used (see the first steps) and that AWS_SESSION_TOKEN accompanies temporary keys".into(),
        ),
        ErrorKind::InvalidSourceCredentials => h(
            "no source credentials".into(),
            "see the source credentials step".into(),
        ),
        ErrorKind::Throttled => h(
            "STS throttled the calls (too many AssumeRole calls for the account or region)".into(),
            "lower refresh.concurrency, raise refresh.lifetime_fraction's interval, or spread sidecars over time (refresh.jitter)".into(),
        ),
        ErrorKind::Network | ErrorKind::Timeout => h(
            format!("STS in {} could not be reached: {}", ctx.region, e.message),
            "check egress to sts.<region>.amazonaws.com (security groups, NACLs, a proxy), or the VPC endpoint in sts.endpoint_url, and the region".into(),
        ),
        _ if ctx.chained && e.message.contains("DurationSeconds") => h(
            "a role chain is limited to 1 hour".into(),
            "set roles[].duration to 1h".into(),
        ),
        _ => h(e.message.clone(), "see the STS error above".into()),
    }
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

    fn err(kind: ErrorKind, code: &str, message: &str) -> AssumeError {
        AssumeError {
            kind,
            code: Some(code.into()),
            message: format!("{code}: {message}"),
        }
    }

    fn ctx() -> HintContext {
        HintContext {
            role_arn: "arn:aws:iam::111111111111:role/RoleForB".parse().ok(),
            principal: Some("arn:aws:iam::222222222222:role/AssumeRoleInA".into()),
            region: "us-east-1".into(),
            ..HintContext::default()
        }
    }

    const DENIED: &str = "User: arn:aws:sts::222222222222:assumed-role/AssumeRoleInA/i-1 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/RoleForB";

    #[test]
    fn access_denied_shows_the_principal_to_trust_and_the_statement_to_add() {
        let h = hint(
            &err(ErrorKind::AccessDenied, "AccessDenied", DENIED),
            &ctx(),
        );
        assert!(
            h.cause.contains(
                "trust policy does not trust arn:aws:iam::222222222222:role/AssumeRoleInA"
            ),
            "{}",
            h.cause
        );
        assert!(h.cause.contains("own policy does not allow sts:AssumeRole"));
        assert!(h
            .cause
            .contains("requires an sts:ExternalId and none is sent"));
        assert!(
            h.fix.contains(
                "\"Principal\": {\"AWS\": \"arn:aws:iam::222222222222:role/AssumeRoleInA\"}"
            ),
            "{}",
            h.fix
        );
        assert!(h
            .fix
            .contains("\"Resource\": \"arn:aws:iam::111111111111:role/RoleForB\""));
        assert!(!h.fix.contains("sts:ExternalId"));
        let with_id = hint(
            &err(ErrorKind::AccessDenied, "AccessDenied", DENIED),
            &HintContext {
                external_id_set: true,
                ..ctx()
            },
        );
        assert!(with_id.cause.contains("ExternalId sent does not match"));
        assert!(with_id.fix.contains("\"sts:ExternalId\""));
    }

    #[test]
    fn tag_session_denials_name_the_missing_permission() {
        let message = "User: x is not authorized to perform: sts:TagSession on resource: arn:aws:iam::111111111111:role/RoleForB";
        let h = hint(
            &err(ErrorKind::AccessDenied, "AccessDenied", message),
            &HintContext {
                tags_set: true,
                ..ctx()
            },
        );
        assert!(
            h.cause.contains("sts:TagSession is not allowed"),
            "{}",
            h.cause
        );
        assert!(h.fix.contains("\"sts:TagSession\""));
    }

    #[test]
    fn each_error_gets_its_own_hint() {
        let cases = [
            (err(ErrorKind::Validation, "ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."), "role chain"),
            (err(ErrorKind::Validation, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."), "maximum session duration"),
            (err(ErrorKind::Validation, "RegionDisabledException", "STS is not activated in this region"), "not activated in us-east-1"),
            (err(ErrorKind::InvalidSourceCredentials, "SignatureDoesNotMatch", "Signature expired: 20261128T000000Z is now earlier than"), "clock is off"),
            (err(ErrorKind::InvalidSourceCredentials, "ExpiredToken", "The security token included in the request is expired"), "source credentials expired"),
            (err(ErrorKind::InvalidSourceCredentials, "InvalidClientTokenId", "The security token included in the request is invalid."), "does not know the source access key"),
            (err(ErrorKind::Throttled, "Throttling", "Rate exceeded"), "throttled"),
            (AssumeError { kind: ErrorKind::Network, code: None, message: "dispatch failure: io error".into() }, "could not be reached"),
        ];
        for (e, expected) in cases {
            let h = hint(&e, &ctx());
            assert!(h.cause.contains(expected), "{}: {}", e.message, h.cause);
            assert!(!h.fix.is_empty());
        }
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
