//! `rolerelay doctor`: walks the whole path — source credentials, who they are, each role and
//! each hop of its chain, the output directory, the listen addresses — and says for each step what
//! is wrong and how to fix it. Cross-account trust fails in many ways and AWS's errors rarely say
//! which; the hints here do.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use aws_config::provider_config::ProviderConfig;
use aws_config::Region;
use aws_credential_types::provider::{error::CredentialsError, ProvideCredentials};
use serde::Serialize;

use crate::assume::{AssumeError, Assumer, ErrorKind};
use crate::clock;
use crate::config::{Config, RoleArn, RoleConfig, ONE_HOUR};
use crate::source;

/// One step of the diagnosis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub step: String,
    /// Whether it works.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// Why it fails, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What to change, when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(step: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            step: step.into(),
            ok: true,
            detail: detail.into(),
            cause: None,
            fix: None,
        }
    }

    fn fail(step: impl Into<String>, detail: impl Into<String>, hint: Hint) -> Check {
        Check {
            step: step.into(),
            ok: false,
            detail: detail.into(),
            cause: Some(hint.cause),
            fix: Some(hint.fix),
        }
    }
}

/// The whole diagnosis.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when every check passed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// One line per check (✓/✗), with the cause and the fix under each failure.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                if c.ok { "✓" } else { "✗" },
                c.step,
                c.detail
            ));
            if let Some(cause) = &c.cause {
                out.push_str(&format!("    cause: {}\n", indent(cause)));
            }
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    fix:   {}\n", indent(fix)));
            }
        }
        out.push_str(if self.ok {
            "all checks passed\n"
        } else {
            "some checks failed\n"
        });
        out
    }
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n           ")
}

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
    /// The role being assumed.
    pub role_arn: String,
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
    let arn = &ctx.role_arn;
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
            format!("lower roles[].duration, or raise the role's MaxSessionDuration (aws iam update-role --role-name {} --max-session-duration 43200)", role_name(arn)),
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

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
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

/// Runs every check.
pub async fn run(config: &Config) -> Report {
    let mut checks = Vec::new();
    let source = source_credentials(config).await;
    let found = source.ok;
    checks.push(source);

    let client = source::sts_client(config).await;
    let mut principal = None;
    if found {
        let who = tokio::time::timeout(
            config.refresh.timeout.0,
            client.get_caller_identity().send(),
        )
        .await;
        checks.push(match who {
            Ok(Ok(out)) => {
                let arn = out.arn().unwrap_or_default().to_string();
                principal = Some(principal_of(&arn));
                Check::ok(
                    "source identity",
                    format!("{arn} (account {})", out.account().unwrap_or("?")),
                )
            }
            Ok(Err(e)) => {
                let e = AssumeError::from_sdk(&e, "");
                let ctx = HintContext {
                    region: config.sts.region.clone(),
                    ..HintContext::default()
                };
                Check::fail(
                    "source identity",
                    format!("sts:GetCallerIdentity failed: {e}"),
                    hint(&e, &ctx),
                )
            }
            Err(_) => {
                let e = AssumeError::timed_out(config.refresh.timeout.0);
                let ctx = HintContext {
                    region: config.sts.region.clone(),
                    ..HintContext::default()
                };
                Check::fail("source identity", e.to_string(), hint(&e, &ctx))
            }
        });
    }

    let assumer = Assumer::new(client, config.refresh.timeout.0);
    for role in &config.roles {
        if !found {
            let hint = Hint {
                cause: "no source credentials".into(),
                fix: "see the source credentials step".into(),
            };
            checks.push(Check::fail(
                format!("role {}", role.name),
                "not checked",
                hint,
            ));
            continue;
        }
        checks.extend(role_checks(&assumer, role, principal.clone(), config).await);
    }
    checks.extend(output_checks(config));
    let mut listens = vec![("server.listen", config.server.listen)];
    if config.credentials_endpoint.enabled {
        listens.push((
            "credentials_endpoint.listen",
            config.credentials_endpoint.listen,
        ));
    }
    for (key, addr) in listens {
        checks.push(match TcpListener::bind(addr) {
            Ok(_) => Check::ok(format!("{key} {addr}"), "free to bind"),
            // Run beside the sidecar (`kubectl exec`, ECS Exec), the ports are its own: fine.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && rolerelay_at(key, addr) => {
                Check::ok(format!("{key} {addr}"), "in use by the running rolerelay")
            }
            Err(e) => Check::fail(
                format!("{key} {addr}"),
                format!("cannot bind: {e}"),
                Hint {
                    cause: "the address is in use (another rolerelay?) or not on this host".into(),
                    fix: format!("stop what listens there, or change {key}"),
                },
            ),
        });
    }
    Report {
        ok: checks.iter().all(|c| c.ok),
        checks,
    }
}

/// Whether rolerelay itself answers at `listen`: its status server's `/status` (a JSON object
/// with its roles, whether they are ready or not), or its endpoint's 401 to a request without
/// a token.
/// Anything else listening there is a conflict.
fn rolerelay_at(key: &str, listen: SocketAddr) -> bool {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let status_server = key == "server.listen";
    // Asked without a token, only the endpoint answers 401.
    let path = if status_server {
        "/status"
    } else {
        "/v1/credentials/doctor"
    };
    let url = format!("http://{addr}{path}");
    let Ok((code, body)) = crate::healthcheck::get(&url, Duration::from_secs(2), 1 << 20) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match status_server {
        true => code == "200" && v["roles"].is_array(),
        false => code == "401" && v["message"] == "missing or wrong Authorization token",
    }
}

/// Tries each source of the default chain, in its order, and reports the first that works — or
/// why each failed.
async fn source_credentials(config: &Config) -> Check {
    let conf = ProviderConfig::default()
        .with_region(Some(Region::new(config.sts.region.clone())))
        .with_http_client(source::https_client());
    let step = "source credentials";
    let mut tried: Vec<(&str, Box<dyn ProvideCredentials>)> = Vec::new();
    if let Some(profile) = &config.source.profile {
        let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .configure(&conf)
            .profile_name(profile)
            .build();
        tried.push(("profile (source.profile)", Box::new(provider)));
    } else {
        tried.push((
            "environment",
            Box::new(aws_config::environment::EnvironmentVariableCredentialsProvider::new()),
        ));
        tried.push((
            "profile",
            Box::new(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            ),
        ));
        tried.push((
            "web identity (IRSA)",
            Box::new(
                aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            ),
        ));
        tried.push((
            "container (ECS task role, EKS Pod Identity)",
            Box::new(
                aws_config::ecs::EcsCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            ),
        ));
        tried.push((
            "IMDSv2 (EC2 instance profile)",
            Box::new(
                aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            ),
        ));
    }
    let mut reasons = Vec::new();
    for (name, provider) in tried {
        match tokio::time::timeout(Duration::from_secs(5), provider.provide_credentials()).await {
            Ok(Ok(creds)) => {
                let expiry = creds
                    .expiry()
                    .map(|e| format!(", expiring {}", crate::credentials::rfc3339(e)))
                    .unwrap_or_default();
                return Check::ok(
                    step,
                    format!("{name}: access key {}{expiry}", creds.access_key_id()),
                );
            }
            Ok(Err(e)) => reasons.push(format!("{name}: {}", credentials_error(&e))),
            Err(_) => reasons.push(format!("{name}: no answer within 5s")),
        }
    }
    let imds_blocked = reasons
        .last()
        .is_some_and(|r| r.starts_with("IMDS") && !r.contains("disabled"));
    let mut fix = "give the sidecar an identity: on EKS an IRSA annotation or a Pod Identity association on its \
                   service account; on ECS a task role; on EC2 an instance profile; or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        .to_string();
    if imds_blocked {
        fix.push_str(
            "\non EC2, if the instance has a profile and rolerelay runs in a container: IMDSv2's default hop limit of 1 \
             stops the token's reply at the container's hop; raise it (aws ec2 modify-instance-metadata-options \
             --http-put-response-hop-limit 2) or use the host network",
        );
    }
    Check::fail(
        step,
        "none found",
        Hint {
            cause: reasons.join("\n"),
            fix,
        },
    )
}

/// A credentials provider's error, in one line, without the nesting of its debug form.
fn credentials_error(e: &CredentialsError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Assumes each hop of a role's chain and then the role itself, one check each.
async fn role_checks(
    assumer: &Assumer,
    role: &RoleConfig,
    principal: Option<String>,
    config: &Config,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut principal = principal;
    let hops: Vec<RoleArn> = role
        .chain
        .iter()
        .cloned()
        .chain(std::iter::once(role.role_arn.clone()))
        .collect();
    let last = hops.len() - 1;
    let mut via = Vec::new();
    for (i, hop) in hops.iter().enumerate() {
        // Each hop is checked as its own role: the chain so far, then this hop alone.
        let mut probe = role.clone();
        probe.chain = via.clone();
        probe.role_arn = hop.clone();
        if i != last {
            probe.external_id = None;
            probe.tags.clear();
            probe.transitive_tag_keys.clear();
            probe.policy = None;
            probe.policy_arns.clear();
            probe.source_identity = None;
        }
        let step = if i == last {
            format!("role {}", role.name)
        } else {
            format!("role {} hop {} of {}", role.name, i + 1, last)
        };
        let requested = if i == last {
            role.duration.0
        } else {
            Duration::from_secs(900)
        };
        let mut duration = requested;
        match assumer.assume(&probe, &mut duration, clock::now).await {
            Ok(c) => {
                let left = c
                    .expiration
                    .duration_since(clock::now())
                    .unwrap_or_default();
                let capped = if duration < requested {
                    format!("; STS refused {}s, so 1h is used", requested.as_secs())
                } else {
                    String::new()
                };
                checks.push(Check::ok(
                    step,
                    format!(
                        "assumed {hop} as session {} for {}m{capped}",
                        role.session_name_resolved,
                        left.as_secs() / 60
                    ),
                ));
                principal = Some(hop.to_string());
            }
            Err(e) => {
                let ctx = HintContext {
                    role_arn: hop.to_string(),
                    principal: principal.clone(),
                    external_id_set: i == last && role.external_id.is_some(),
                    tags_set: i == last && !role.tags.is_empty(),
                    chained: i > 0
                        || principal.as_deref().is_some_and(|p| p.contains(":role/"))
                            && duration > ONE_HOUR,
                    region: config.sts.region.clone(),
                };
                checks.push(Check::fail(step, e.to_string(), hint(&e, &ctx)));
                break;
            }
        }
        via.push(hop.clone());
    }
    checks
}

/// The output directory: there (or creatable), writable, space, and who can read the files.
fn output_checks(config: &Config) -> Vec<Check> {
    let o = &config.outputs;
    let dir = &o.directory;
    let step = format!("output directory {}", dir.display());
    let mut checks = Vec::new();
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let probe_dir = if dir.is_dir() {
        dir.as_path()
    } else {
        existing
    };
    let probe = probe_dir.join(format!(
        "{}doctor-{}",
        crate::outputs::atomic::TEMP_PREFIX,
        std::process::id()
    ));
    let writable = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
    let there = if dir.is_dir() {
        "exists"
    } else {
        "will be created"
    };
    checks.push(match writable {
        Ok(()) => Check::ok(&step, format!("{there}, writable, {} free", free_space(probe_dir))),
        Err(e) => Check::fail(
            &step,
            format!("{there}, not writable: {e}"),
            Hint {
                cause: format!("this process (uid {}) cannot write in {}", sys::uid(), probe_dir.display()),
                fix: "mount a writable volume there (an emptyDir in Kubernetes, a task volume in ECS), or change outputs.directory".into(),
            },
        ),
    });
    let (uid, gid) = o
        .owner
        .map(|w| (w.uid, w.gid))
        .unwrap_or((sys::uid(), sys::gid()));
    let mode = o.file_mode.0;
    let readers = if mode & 0o004 != 0 {
        "any user can read them".to_string()
    } else if mode & 0o040 != 0 {
        format!(
            "an application running as another user reads them only as uid {uid} or in group {gid}"
        )
    } else {
        format!("only uid {uid} can read them: an application running as another user cannot")
    };
    checks.push(Check::ok(
        "output files",
        format!("mode {:04o}, owner {uid}:{gid}; {readers}", mode),
    ));
    checks
}

fn free_space(path: &Path) -> String {
    match sys::available_bytes(path) {
        Some(bytes) if bytes >= 1 << 20 => format!("{} MiB", bytes >> 20),
        Some(bytes) => format!("{} KiB", bytes >> 10),
        None => "unknown space".into(),
    }
}

/// The few libc calls the doctor needs.
mod sys {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Bytes available to unprivileged users on the file system of `path`.
    pub fn available_bytes(path: &Path) -> Option<u64> {
        let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is valid for writes;
        // statvfs fully initialises it when it returns 0.
        let stat = unsafe {
            if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
                return None;
            }
            stat.assume_init()
        };
        Some(stat.f_bavail as u64 * stat.f_frsize as u64)
    }

    /// This process's user id.
    pub fn uid() -> u32 {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }

    /// This process's group id.
    pub fn gid() -> u32 {
        // SAFETY: getgid has no preconditions and cannot fail.
        unsafe { libc::getgid() }
    }
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
            role_arn: "arn:aws:iam::111111111111:role/RoleForB".into(),
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

    #[test]
    fn the_text_report_has_a_line_per_check_and_hints_under_failures() {
        let report = Report {
            ok: false,
            checks: vec![
                Check::ok("source credentials", "environment: access key AKIA"),
                Check::fail(
                    "role a",
                    "access_denied: AccessDenied: no",
                    Hint {
                        cause: "one\ntwo".into(),
                        fix: "do this".into(),
                    },
                ),
            ],
        };
        let text = report.text();
        assert!(text.starts_with(
            "✓ source credentials: environment: access key AKIA\n✗ role a: access_denied"
        ));
        assert!(
            text.contains("    cause: one\n           two\n    fix:   do this\n"),
            "{text}"
        );
        assert!(text.ends_with("some checks failed\n"));
    }
}
