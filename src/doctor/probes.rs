//! The probes of `rolerelay doctor`: the steps that touch the outside — the source credentials,
//! STS, the output directory, the listen addresses — each turned into a finding.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::Client;

use super::{hint, principal_of, Finding, Hint, HintContext};
use crate::assume::{self, AssumeError, Assumer, HOP_DURATION};
use crate::config::{Config, RoleArn, RoleConfig, ONE_HOUR};
use crate::credentials::{self, Credentials};
use crate::{clock, healthcheck, source};

/// How long one source of the chain may take: IMDS and the container endpoint can hang where
/// they do not exist, and the doctor should answer anyway.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// A source of credentials as the report names it, and its provider.
type Source = (&'static str, Box<dyn ProvideCredentials>);

/// Tries each source of the default chain, in its order, and reports the first that works — or
/// why each failed.
pub(super) async fn source_credentials(config: &Config) -> Finding {
    const STEP: &str = "source credentials";
    let mut reasons = Vec::new();
    for (name, provider) in credential_sources(config) {
        match tokio::time::timeout(SOURCE_TIMEOUT, provider.provide_credentials()).await {
            Ok(Ok(found)) => {
                let expiry = found
                    .expiry()
                    .map(|at| format!(", expiring {}", credentials::rfc3339(at)))
                    .unwrap_or_default();
                let detail = format!("{name}: access key {}{expiry}", found.access_key_id());
                return Finding::ok(STEP, detail);
            }
            Ok(Err(err)) => reasons.push(format!("{name}: {}", assume::describe(&err))),
            Err(_) => reasons.push(format!(
                "{name}: no answer within {}s",
                SOURCE_TIMEOUT.as_secs()
            )),
        }
    }
    Finding::fail(STEP, "none found", no_source_hint(&reasons))
}

/// The sources to try: the profile `source.profile` names, or else aws-config's default chain,
/// one provider at a time so that each can say why it has nothing.
fn credential_sources(config: &Config) -> Vec<Source> {
    let conf = ProviderConfig::default()
        .with_region(Some(Region::new(config.sts.region.clone())))
        .with_http_client(source::https_client());
    if let Some(profile) = &config.source.profile {
        let named = ProfileFileCredentialsProvider::builder()
            .configure(&conf)
            .profile_name(profile)
            .build();
        return vec![source_named("profile (source.profile)", named)];
    }
    vec![
        source_named("environment", EnvironmentVariableCredentialsProvider::new()),
        source_named(
            "profile",
            ProfileFileCredentialsProvider::builder()
                .configure(&conf)
                .build(),
        ),
        source_named(
            "web identity (IRSA)",
            WebIdentityTokenCredentialsProvider::builder()
                .configure(&conf)
                .build(),
        ),
        source_named(
            "container (ECS task role, EKS Pod Identity)",
            EcsCredentialsProvider::builder().configure(&conf).build(),
        ),
        source_named(
            "IMDSv2 (EC2 instance profile)",
            ImdsCredentialsProvider::builder().configure(&conf).build(),
        ),
    ]
}

/// Boxes a provider under its name; the providers are of different types.
fn source_named(name: &'static str, provider: impl ProvideCredentials + 'static) -> Source {
    (name, Box::new(provider))
}

/// The hint when no source has credentials: each one's reason, and the ways to give an identity.
fn no_source_hint(reasons: &[String]) -> Hint {
    // IMDS comes last; failing without being switched off, it is most often the hop limit.
    let imds_blocked = reasons
        .last()
        .is_some_and(|reason| reason.starts_with("IMDS") && !reason.contains("disabled"));
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
    Hint::new(reasons.join("\n"), fix)
}

/// Who the source credentials are (sts:GetCallerIdentity), and the principal a trust policy must
/// name for them; no principal when the call fails.
pub(super) async fn caller_identity(client: &Client, config: &Config) -> (Finding, Option<String>) {
    const STEP: &str = "source identity";
    let timeout = config.refresh.timeout.0;
    let context = HintContext {
        region: config.sts.region.clone(),
        ..HintContext::default()
    };
    match tokio::time::timeout(timeout, client.get_caller_identity().send()).await {
        Ok(Ok(identity)) => {
            let arn = identity.arn().unwrap_or_default();
            let account = identity.account().unwrap_or("?");
            let finding = Finding::ok(STEP, format!("{arn} (account {account})"));
            (finding, Some(principal_of(arn)))
        }
        Ok(Err(err)) => {
            let err = AssumeError::from_sdk(&err, "");
            let detail = format!("sts:GetCallerIdentity failed: {err}");
            (Finding::fail(STEP, detail, hint(&err, &context)), None)
        }
        Err(_) => {
            let err = AssumeError::timed_out(timeout);
            (
                Finding::fail(STEP, err.to_string(), hint(&err, &context)),
                None,
            )
        }
    }
}

/// Assumes each hop of a role's chain and then the role itself, one finding each, and stops at
/// the first failure: the hops after it cannot be tried. `principal` makes the first call.
pub(super) async fn role_chain(
    assumer: &Assumer,
    role: &RoleConfig,
    principal: Option<String>,
    config: &Config,
) -> Vec<Finding> {
    let hop_count = role.chain.len();
    let mut caller = principal;
    let mut findings = Vec::new();
    // Index `hop_count` is the role itself, after every hop of its chain.
    for index in 0..=hop_count {
        let is_target = index == hop_count;
        let arn = role.chain.get(index).unwrap_or(&role.role_arn);
        let step = if is_target {
            format!("role {}", role.name)
        } else {
            format!("role {} hop {} of {hop_count}", role.name, index + 1)
        };
        let requested = if is_target {
            role.duration.0
        } else {
            HOP_DURATION
        };
        // `assume` asks again for one hour when STS refuses more, as in a refresh.
        match assumer
            .assume(&hop_probe(role, index), requested, clock::now)
            .await
        {
            Ok(granted) => {
                let detail = assumed(role, arn, &granted.credentials, requested, granted.duration);
                findings.push(Finding::ok(step, detail));
                caller = Some(arn.to_string());
            }
            Err(err) => {
                let caller_is_role = caller.as_deref().is_some_and(|p| p.contains(":role/"));
                let context = HintContext {
                    role_arn: Some(arn.clone()),
                    principal: caller,
                    external_id_set: is_target && role.external_id.is_some(),
                    tags_set: is_target && !role.tags.is_empty(),
                    chained: index > 0 || (caller_is_role && requested > ONE_HOUR),
                    region: config.sts.region.clone(),
                };
                findings.push(Finding::fail(step, err.to_string(), hint(&err, &context)));
                break;
            }
        }
    }
    findings
}

/// The role to assume to check hop `index` on its own: the chain before it, then the hop. A hop
/// on the way carries none of the role's session options, as in a refresh.
fn hop_probe(role: &RoleConfig, index: usize) -> RoleConfig {
    let mut probe = role.clone();
    probe.chain = role.chain[..index].to_vec();
    if let Some(hop) = role.chain.get(index) {
        probe.role_arn = hop.clone();
        probe.external_id = None;
        probe.tags.clear();
        probe.transitive_tag_keys.clear();
        probe.policy = None;
        probe.policy_arns.clear();
        probe.source_identity = None;
    }
    probe
}

/// The detail of an assumed hop: its session, the minutes it lasts, and whether STS cut the
/// requested duration to one hour.
fn assumed(
    role: &RoleConfig,
    arn: &RoleArn,
    issued: &Credentials,
    requested: Duration,
    granted: Duration,
) -> String {
    let left = issued
        .expiration
        .duration_since(clock::now())
        .unwrap_or_default();
    let capped = if granted < requested {
        format!("; STS refused {}s, so 1h is used", requested.as_secs())
    } else {
        String::new()
    };
    format!(
        "assumed {arn} as session {} for {}m{capped}",
        role.session_name_resolved,
        left.as_secs() / 60
    )
}

/// A socket rolerelay listens on; each answers the doctor's request in its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listener {
    /// Health, metrics and `/status`.
    StatusServer,
    /// The container-credentials endpoint.
    CredentialsEndpoint,
}

impl Listener {
    /// The configuration key of its address, which the step and the fix name.
    fn key(self) -> &'static str {
        match self {
            Listener::StatusServer => "server.listen",
            Listener::CredentialsEndpoint => "credentials_endpoint.listen",
        }
    }
}

/// Each address rolerelay would listen on: free to bind, or held by the running rolerelay.
pub(super) fn listen_addresses(config: &Config) -> Vec<Finding> {
    let mut listeners = vec![(Listener::StatusServer, config.server.listen)];
    if config.credentials_endpoint.enabled {
        let endpoint = config.credentials_endpoint.listen;
        listeners.push((Listener::CredentialsEndpoint, endpoint));
    }
    listeners
        .into_iter()
        .map(|(listener, addr)| bind(listener, addr))
        .collect()
}

/// Binds `addr` and lets it go at once.
fn bind(listener: Listener, addr: SocketAddr) -> Finding {
    let step = format!("{} {addr}", listener.key());
    match TcpListener::bind(addr) {
        Ok(_) => Finding::ok(step, "free to bind"),
        // Run beside the sidecar (`kubectl exec`, ECS Exec), the ports are its own: fine.
        Err(err) if err.kind() == io::ErrorKind::AddrInUse && rolerelay_at(listener, addr) => {
            Finding::ok(step, "in use by the running rolerelay")
        }
        Err(err) => Finding::fail(
            step,
            format!("cannot bind: {err}"),
            Hint::new(
                "the address is in use (another rolerelay?) or not on this host",
                format!("stop what listens there, or change {}", listener.key()),
            ),
        ),
    }
}

/// Whether rolerelay itself answers at `listen`: its status server's `/status` (a JSON object
/// with its roles, whether they are ready or not), or its endpoint's 401 to a request without
/// a token. Anything else listening there is a conflict.
fn rolerelay_at(listener: Listener, listen: SocketAddr) -> bool {
    let addr = crate::healthcheck::reachable(listen);
    // Asked without a token, only the endpoint answers 401.
    let path = match listener {
        Listener::StatusServer => "/status",
        Listener::CredentialsEndpoint => "/v1/credentials/doctor",
    };
    let url = format!("http://{addr}{path}");
    let Ok((code, body)) = healthcheck::get(&url, Duration::from_secs(2), 1 << 20) else {
        return false;
    };
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match listener {
        Listener::StatusServer => code == "200" && reply["roles"].is_array(),
        Listener::CredentialsEndpoint => {
            code == "401" && reply["message"] == crate::http::endpoint::UNAUTHORIZED
        }
    }
}
