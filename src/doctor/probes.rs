//! The probes of `rolerelay doctor`: the steps that touch the outside — the source credentials,
//! STS, the output directory, the listen addresses — each turned into a finding.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use aws_config::provider_config::ProviderConfig;
use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;

use super::{hint, Finding, Hint, HintContext};
use crate::assume::{self, Assumer, HOP_DURATION, ONE_HOUR};
use crate::clock;
use crate::config::{Config, RoleArn, RoleConfig};
use crate::source;

/// Whether rolerelay itself answers at `listen`: its status server's `/status` (a JSON object
/// with its roles, whether they are ready or not), or its endpoint's 401 to a request without
/// a token.
/// Anything else listening there is a conflict.
pub(super) fn rolerelay_at(key: &str, listen: SocketAddr) -> bool {
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
pub(super) async fn source_credentials(config: &Config) -> Finding {
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
                return Finding::ok(
                    step,
                    format!("{name}: access key {}{expiry}", creds.access_key_id()),
                );
            }
            Ok(Err(e)) => reasons.push(format!("{name}: {}", assume::describe(&e))),
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
    Finding::fail(
        step,
        "none found",
        Hint {
            cause: reasons.join("\n"),
            fix,
        },
    )
}

/// Assumes each hop of a role's chain and then the role itself, one check each.
pub(super) async fn role_checks(
    assumer: &Assumer,
    role: &RoleConfig,
    principal: Option<String>,
    config: &Config,
) -> Vec<Finding> {
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
            HOP_DURATION
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
                checks.push(Finding::ok(
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
                    role_arn: Some(hop.clone()),
                    principal: principal.clone(),
                    external_id_set: i == last && role.external_id.is_some(),
                    tags_set: i == last && !role.tags.is_empty(),
                    chained: i > 0
                        || principal.as_deref().is_some_and(|p| p.contains(":role/"))
                            && duration > ONE_HOUR,
                    region: config.sts.region.clone(),
                };
                checks.push(Finding::fail(step, e.to_string(), hint(&e, &ctx)));
                break;
            }
        }
        via.push(hop.clone());
    }
    checks
}

/// The output directory: there (or creatable), writable, space, and who can read the files.
pub(super) fn output_checks(config: &Config) -> Vec<Finding> {
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
        Ok(()) => Finding::ok(&step, format!("{there}, writable, {} free", free_space(probe_dir))),
        Err(e) => Finding::fail(
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
    checks.push(Finding::ok(
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
