//! The effective configuration: the YAML file, overridden by flags and `ROLERELAY_*` variables,
//! over the documented defaults (README, Configuration), validated once so the rest of the program can trust it.
//!
//! Every error names the key (and the file line, or the flag it came from) and what to change.

mod args;
pub mod diff;
mod file;
pub mod values;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde_saphyr::Spanned;

pub use args::ConfigArgs;
use file::FileConfig;
pub use values::{
    Dur, FileMode, LogFormat, LogLevel, Owner, RoleArn, RoleName, SessionTemplate, TemplateVars,
};

/// A configuration that cannot be used: where the bad value came from and what to do about it.
///
/// It prints on one line: control characters a file may carry into a key or value are escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", one_line(.at), one_line(.message))]
pub struct ConfigError {
    /// `file:line: key`, or the flag and its environment variable.
    pub at: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// The whole effective configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// STS client settings.
    pub sts: StsConfig,
    /// Where the sidecar's own credentials come from.
    pub source: SourceConfig,
    /// When to refresh and how to retry.
    pub refresh: RefreshConfig,
    /// The roles to assume, in file order.
    pub roles: Vec<RoleConfig>,
    /// What is written to the shared volume.
    pub outputs: OutputsConfig,
    /// The health, metrics and status server.
    pub server: ServerConfig,
    /// The container-credentials endpoint.
    pub credentials_endpoint: EndpointConfig,
    /// Log format and level.
    pub logging: LoggingConfig,
}

/// `sts:` — the STS client.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StsConfig {
    /// Region whose regional endpoint is called. Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.
    pub region: String,
    /// Endpoint override (VPC endpoint, FIPS, or a local STS). Default: none.
    pub endpoint_url: Option<String>,
}

/// `source:` — the sidecar's own credentials.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceConfig {
    /// A named profile of the shared config; default: none, the default credential chain.
    pub profile: Option<String>,
}

/// `refresh:` — the schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefreshConfig {
    /// Refresh once this fraction of the lifetime has passed. Default 0.5.
    pub lifetime_fraction: f64,
    /// ...and never later than this before expiry. Default 20m.
    pub min_remaining: Dur,
    /// Optional hard upper bound between refreshes. Default: none.
    pub max_interval: Option<Dur>,
    /// +/- fraction applied to each scheduled refresh. Default 0.1.
    pub jitter: f64,
    /// First retry delay after a failure (exponential, full jitter). Default 1s.
    pub backoff_initial: Dur,
    /// Retry delay cap. Default 2m.
    pub backoff_max: Dur,
    /// Time limit of one STS call. Default 10s.
    pub timeout: Dur,
    /// STS calls in flight at once, across all roles. Default 16.
    pub concurrency: usize,
}

/// One entry of `roles:`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoleConfig {
    /// Profile name, file stem and endpoint path.
    pub name: RoleName,
    /// The role to assume.
    pub role_arn: RoleArn,
    /// The session name template. Default `rolerelay-{hostname}`.
    pub session_name: SessionTemplate,
    /// The session name sent to STS: the template expanded and sanitized.
    pub session_name_resolved: String,
    /// ExternalId required by the role's trust policy. Default: none.
    pub external_id: Option<String>,
    /// Requested session duration. Default 1h.
    pub duration: Dur,
    /// Role ARNs assumed first, in order, each with the previous hop's credentials.
    pub chain: Vec<RoleArn>,
    /// Inline session policy (JSON).
    pub policy: Option<String>,
    /// Managed session policy ARNs.
    pub policy_arns: Vec<String>,
    /// Session tags.
    pub tags: BTreeMap<String, String>,
    /// Session tags that pass on to chained roles.
    pub transitive_tag_keys: Vec<String>,
    /// SourceIdentity.
    pub source_identity: Option<String>,
}

/// `outputs:` — the shared volume.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputsConfig {
    /// The shared directory. Default /var/run/rolerelay.
    pub directory: PathBuf,
    /// The credentials INI file name; none when disabled with "". Default `credentials`.
    pub credentials_file: Option<String>,
    /// The config INI file name; none when disabled with "". Default `config`.
    pub config_file: Option<String>,
    /// Where the application mounts the directory, if elsewhere. Default: none.
    pub app_directory: Option<PathBuf>,
    /// The credential_process command line ({dir} {role}). Default `cat {dir}/{role}.json`.
    pub process_command: String,
    /// A role also written as [default]. Default: none.
    pub default_role: Option<RoleName>,
    /// Write `<role>.json`. Default true.
    pub process_json: bool,
    /// Write `<role>.env`. Default true.
    pub env_file: bool,
    /// Mode of every file written. Default 0640.
    pub file_mode: FileMode,
    /// uid:gid to give the files. Default: none (the process's own).
    pub owner: Option<Owner>,
    /// Delete the files on SIGTERM. Default false.
    pub remove_on_exit: bool,
}

/// `server:` — health, readiness, metrics and status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerConfig {
    /// Listen address. Default 0.0.0.0:9090.
    pub listen: SocketAddr,
}

/// `credentials_endpoint:` — the ECS container-credentials protocol.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointConfig {
    /// Serve the endpoint. Default true.
    pub enabled: bool,
    /// Listen address. Default 127.0.0.1:9911.
    pub listen: SocketAddr,
    /// The token file's name in the output directory. Default `token`.
    pub token_file: String,
    /// Allow a non-loopback listen address. Default false.
    pub allow_non_loopback: bool,
}

/// `logging:`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoggingConfig {
    /// json or text. Default json.
    pub format: LogFormat,
    /// error, warn, info, debug or trace. Default info.
    pub level: LogLevel,
}

impl RoleConfig {
    /// Output file name of this role with an extension (`json`, `env`).
    pub fn file_name(&self, extension: &str) -> String {
        format!("{}.{extension}", self.name)
    }
}

impl OutputsConfig {
    /// The directory as the application sees it: `app_directory`, else `directory`.
    pub fn app_dir(&self) -> &Path {
        self.app_directory.as_deref().unwrap_or(&self.directory)
    }
}

impl Config {
    /// Loads the configuration from the flags, the file they name, and the process environment.
    pub fn load(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let path = args.config.as_deref().filter(|p| !p.as_os_str().is_empty());
        let text = match path {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| ConfigError {
                at: path.display().to_string(),
                message: format!("cannot read the configuration file: {e}"),
            })?),
            None => None,
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Config::from_parts(
            args,
            path.zip(text.as_deref()),
            &env,
            &TemplateVars::from_env(),
        )
    }

    /// Builds the configuration from flags, an optional `(path, file text)` and an environment lookup.
    pub fn from_parts(
        args: &ConfigArgs,
        file: Option<(&Path, &str)>,
        env: &dyn Fn(&str) -> Option<String>,
        vars: &TemplateVars,
    ) -> Result<Config, ConfigError> {
        let path = file
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_default();
        let parsed = match file {
            Some((_, text)) => file::parse(text).map_err(|e| ConfigError {
                at: match e.line {
                    Some(line) => format!("{path}:{line}: {}", e.key),
                    None => format!("{path}: {}", e.key),
                },
                message: e.message,
            })?,
            None => FileConfig::default(),
        };
        Resolver {
            path,
            args,
            env,
            vars,
        }
        .resolve(parsed)
    }
}

/// A value and where it came from, for error messages.
struct Src<T> {
    value: T,
    at: String,
}

impl<T> Src<T> {
    fn fail(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            at: self.at.clone(),
            message: message.into(),
        }
    }

    fn check(self, f: impl FnOnce(&T) -> Result<(), String>) -> Result<T, ConfigError> {
        match f(&self.value) {
            Ok(()) => Ok(self.value),
            Err(message) => Err(ConfigError {
                at: self.at,
                message,
            }),
        }
    }
}

struct Resolver<'a> {
    path: String,
    args: &'a ConfigArgs,
    env: &'a dyn Fn(&str) -> Option<String>,
    vars: &'a TemplateVars,
}

/// The flag and its variable, as error messages name them.
fn flag_label(flag: &str) -> String {
    let var = format!(
        "ROLERELAY_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    );
    format!("{flag} (or {var})")
}

impl Resolver<'_> {
    fn at(&self, key: &str, line: u64) -> String {
        format!("{}:{line}: {key}", self.path)
    }

    /// A value from the file, with its line.
    fn file<T: Clone>(&self, key: &str, v: &Option<Spanned<T>>) -> Option<Src<T>> {
        v.as_ref().map(|s| Src {
            value: s.value.clone(),
            at: self.at(key, s.referenced.line()),
        })
    }

    /// A value from a flag (or its variable), parsed with the same parser as the file's. An
    /// empty value counts as unset, as a variable left empty in a manifest means to.
    fn flag<T: FromStr>(
        &self,
        flag: &str,
        v: &Option<String>,
    ) -> Result<Option<Src<T>>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(text) = v.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let at = flag_label(flag);
        match text.parse() {
            Ok(value) => Ok(Some(Src { value, at })),
            Err(e) => Err(ConfigError {
                at,
                message: e.to_string(),
            }),
        }
    }

    /// Flag over file over default.
    fn pick<T: Clone + FromStr>(
        &self,
        flag: (&str, &Option<String>),
        key: &str,
        file: &Option<Spanned<T>>,
        default: T,
    ) -> Result<Src<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self
            .flag(flag.0, flag.1)?
            .or_else(|| self.file(key, file))
            .unwrap_or(Src {
                value: default,
                at: key.to_string(),
            }))
    }

    /// File over default, for keys with no flag.
    fn or_default<T: Clone>(&self, key: &str, file: &Option<Spanned<T>>, default: T) -> Src<T> {
        self.file(key, file).unwrap_or(Src {
            value: default,
            at: key.to_string(),
        })
    }

    fn resolve(&self, f: FileConfig) -> Result<Config, ConfigError> {
        let a = self.args;

        let region = self
            .flag::<String>("--region", &a.region)?
            .or_else(|| self.file("sts.region", &f.sts.region))
            .or_else(|| {
                (self.env)("AWS_REGION").map(|value| Src {
                    value,
                    at: "AWS_REGION".into(),
                })
            })
            .or_else(|| {
                (self.env)("AWS_DEFAULT_REGION").map(|value| Src {
                    value,
                    at: "AWS_DEFAULT_REGION".into(),
                })
            })
            .unwrap_or(Src {
                value: "us-east-1".into(),
                at: "sts.region".into(),
            })
            .check(|r| {
                let ok = !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                ok.then_some(())
                    .ok_or_else(|| format!("region {r:?} is not a region name like us-east-1"))
            })?;
        let endpoint_url = self
            .flag::<String>("--sts-endpoint-url", &a.sts_endpoint_url)?
            .or_else(|| self.file("sts.endpoint_url", &f.sts.endpoint_url))
            .map(|src| {
                src.check(|u| {
                    (u.starts_with("https://") || u.starts_with("http://"))
                        .then_some(())
                        .ok_or_else(|| format!("endpoint URL {u:?} must start with https:// (or http:// for a local STS)"))
                })
            })
            .transpose()?;
        let sts = StsConfig {
            region,
            endpoint_url,
        };

        let profile = self
            .flag::<String>("--source-profile", &a.source_profile)?
            .or_else(|| self.file("source.profile", &f.source.profile))
            .map(|s| s.value);
        let source = SourceConfig { profile };

        let refresh = self.refresh(&f)?;
        let roles = self.roles(&f, &refresh)?;
        let outputs = self.outputs(&f, &roles)?;

        let listen = self.or_default("server.listen", &f.server.listen, "0.0.0.0:9090".into());
        let server = ServerConfig {
            listen: parse_addr(listen)?,
        };
        let e = &f.credentials_endpoint;
        let allow_non_loopback = self
            .or_default(
                "credentials_endpoint.allow_non_loopback",
                &e.allow_non_loopback,
                false,
            )
            .value;
        let endpoint_listen = self.or_default(
            "credentials_endpoint.listen",
            &e.listen,
            "127.0.0.1:9911".into(),
        );
        let endpoint_at = endpoint_listen.at.clone();
        let endpoint_listen = parse_addr(endpoint_listen)?;
        let enabled = self
            .or_default("credentials_endpoint.enabled", &e.enabled, true)
            .value;
        if enabled && !allow_non_loopback && !endpoint_listen.ip().is_loopback() {
            return Err(ConfigError {
                at: endpoint_at,
                message: format!(
                    "{endpoint_listen} is not a loopback address: the endpoint hands out credentials to anyone who can reach it; \
                     listen on 127.0.0.1, or set credentials_endpoint.allow_non_loopback: true"
                ),
            });
        }
        let token_file = self
            .or_default(
                "credentials_endpoint.token_file",
                &e.token_file,
                "token".into(),
            )
            .check(check_file_name)?;
        let credentials_endpoint = EndpointConfig {
            enabled,
            listen: endpoint_listen,
            token_file,
            allow_non_loopback,
        };

        let format = self
            .pick(
                ("--log-format", &a.log_format),
                "logging.format",
                &f.logging.format,
                LogFormat::Json,
            )?
            .value;
        let level = self
            .pick(
                ("--log-level", &a.log_level),
                "logging.level",
                &f.logging.level,
                LogLevel::Info,
            )?
            .value;

        let config = Config {
            sts,
            source,
            refresh,
            roles,
            outputs,
            server,
            credentials_endpoint,
            logging: LoggingConfig { format, level },
        };
        self.check_file_names(&config, &f)?;
        Ok(config)
    }

    fn refresh(&self, f: &FileConfig) -> Result<RefreshConfig, ConfigError> {
        let r = &f.refresh;
        let positive = |d: &Dur| {
            (!d.0.is_zero())
                .then_some(())
                .ok_or_else(|| "must be more than 0s".to_string())
        };
        let lifetime_fraction = self
            .or_default("refresh.lifetime_fraction", &r.lifetime_fraction, 0.5)
            .check(|v| values::check_fraction(*v, true, "lifetime_fraction").map(drop))?;
        let jitter = self
            .or_default("refresh.jitter", &r.jitter, 0.1)
            .check(|v| values::check_fraction(*v, false, "jitter").map(drop))?;
        let min_remaining = self
            .or_default("refresh.min_remaining", &r.min_remaining, dur(20 * 60))
            .value;
        let max_interval = self
            .flag::<Dur>("--max-interval", &self.args.max_interval)?
            .or_else(|| self.file("refresh.max_interval", &r.max_interval))
            .map(|s| {
                s.check(|d| {
                    (d.0 >= Duration::from_secs(1))
                        .then_some(())
                        .ok_or_else(|| "must be at least 1s".to_string())
                })
            })
            .transpose()?;
        let backoff_initial = self
            .or_default("refresh.backoff_initial", &r.backoff_initial, dur(1))
            .check(positive)?;
        let backoff_max = self.or_default("refresh.backoff_max", &r.backoff_max, dur(120)).check(|d| {
            (d.0 >= backoff_initial.0)
                .then_some(())
                .ok_or_else(|| format!("{d} is less than refresh.backoff_initial ({backoff_initial}): raise it or lower backoff_initial"))
        })?;
        let timeout = self
            .or_default("refresh.timeout", &r.timeout, dur(10))
            .check(positive)?;
        let concurrency = self
            .or_default("refresh.concurrency", &r.concurrency, 16)
            .check(|n| {
                (*n >= 1)
                    .then_some(())
                    .ok_or_else(|| "must be at least 1".to_string())
            })?;
        Ok(RefreshConfig {
            lifetime_fraction,
            min_remaining,
            max_interval,
            jitter,
            backoff_initial,
            backoff_max,
            timeout,
            concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
        })
    }

    fn roles(
        &self,
        f: &FileConfig,
        refresh: &RefreshConfig,
    ) -> Result<Vec<RoleConfig>, ConfigError> {
        let a = self.args;
        let mut roles = Vec::new();
        if let Some(arn) = self.flag::<RoleArn>("--role-arn", &a.role_arn)? {
            let name = match self.flag::<RoleName>("--role-name", &a.role_name)? {
                Some(name) => name,
                None => Src {
                    value: arn
                        .value
                        .role_name()
                        .parse()
                        .map_err(|e| arn.fail(format!("{e}; pass --role-name")))?,
                    at: arn.at.clone(),
                },
            };
            let session = self.flag("--session-name", &a.session_name)?;
            let duration = self.flag("--duration", &a.duration)?;
            let external_id = self.flag("--external-id", &a.external_id)?;
            roles.push(self.role(name, arn, session, duration, external_id, None, refresh)?);
        } else {
            for (i, r) in f.roles.iter().enumerate() {
                let key = |k: &str| format!("roles[{i}].{k}");
                let name = Src {
                    value: r.name.value.clone(),
                    at: self.at(&key("name"), r.name.referenced.line()),
                };
                let arn = Src {
                    value: r.role_arn.value.clone(),
                    at: self.at(&key("role_arn"), r.role_arn.referenced.line()),
                };
                let role = self.role(
                    name,
                    arn,
                    self.file(&key("session_name"), &r.session_name),
                    self.file(&key("duration"), &r.duration),
                    self.file(&key("external_id"), &r.external_id),
                    Some((i, r)),
                    refresh,
                )?;
                if let Some(first) = roles.iter().position(|x: &RoleConfig| x.name == role.name) {
                    return Err(ConfigError {
                        at: self.at(&key("name"), r.name.referenced.line()),
                        message: format!("role name {:?} is already used by roles[{first}]: give each role its own name", role.name.as_str()),
                    });
                }
                roles.push(role);
            }
        }
        if roles.is_empty() {
            let at = if self.path.is_empty() {
                "roles".to_string()
            } else {
                format!("{}: roles", self.path)
            };
            return Err(ConfigError {
                at,
                message: "no roles configured: list them under `roles:` in the configuration file, or pass --role-arn".into(),
            });
        }
        Ok(roles)
    }

    #[allow(clippy::too_many_arguments)]
    fn role(
        &self,
        name: Src<RoleName>,
        arn: Src<RoleArn>,
        session: Option<Src<SessionTemplate>>,
        duration: Option<Src<Dur>>,
        external_id: Option<Src<String>>,
        file: Option<(usize, &file::FileRole)>,
        refresh: &RefreshConfig,
    ) -> Result<RoleConfig, ConfigError> {
        let session_name = session
            .map(|s| s.value)
            .unwrap_or_else(|| "rolerelay-{hostname}".parse().expect("valid default"));
        let default_at = match name.at.strip_suffix(".name") {
            Some(role) => format!("{role}.duration"),
            None => flag_label("--duration"),
        };
        let duration = duration.unwrap_or(Src { value: dur(3600), at: default_at }).check(|d| {
            let secs = d.0.as_secs();
            if !(900..=43_200).contains(&secs) {
                return Err(format!("session duration {d} is outside what STS allows: use 15m to 12h"));
            }
            if d.0 <= refresh.min_remaining.0 {
                return Err(format!(
                    "session duration {d} is not longer than refresh.min_remaining ({}): the credentials would never be fresh enough; \
                     raise the duration or lower min_remaining",
                    refresh.min_remaining
                ));
            }
            Ok(())
        })?;
        let external_id = external_id
            .map(|s| {
                s.check(|id| {
                    let ok = (2..=1224).contains(&id.len())
                        && id.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c));
                    ok.then_some(()).ok_or_else(|| {
                        "external_id must be 2 to 1224 characters of letters, digits and +=,.@:/_-".to_string()
                    })
                })
            })
            .transpose()?;
        let mut role = RoleConfig {
            session_name_resolved: session_name.render(&name.value, self.vars),
            name: name.value,
            role_arn: arn.value,
            session_name,
            external_id,
            duration,
            chain: Vec::new(),
            policy: None,
            policy_arns: Vec::new(),
            tags: BTreeMap::new(),
            transitive_tag_keys: Vec::new(),
            source_identity: None,
        };
        let Some((i, r)) = file else { return Ok(role) };
        let key = |k: &str| format!("roles[{i}].{k}");

        role.chain = r.chain.iter().map(|s| s.value.clone()).collect();
        if let Some(first) = r.chain.first() {
            let one_hour = Duration::from_secs(3600);
            if role.duration.0.min(one_hour) <= refresh.min_remaining.0 {
                return Err(ConfigError {
                    at: self.at(&key("chain"), first.referenced.line()),
                    message: format!(
                        "a role assumed through a chain gets at most 1h from STS, which is not longer than \
                         refresh.min_remaining ({}): lower min_remaining below 1h",
                        refresh.min_remaining
                    ),
                });
            }
        }
        role.policy = self
            .file(&key("policy"), &r.policy)
            .map(|s| {
                s.check(|p| {
                    serde_json::from_str::<serde_json::Value>(p)
                        .map(drop)
                        .map_err(|e| format!("the session policy is not valid JSON ({e}): write it as a JSON string"))
                })
            })
            .transpose()?;
        for (j, p) in r.policy_arns.iter().enumerate() {
            let src = Src {
                value: p.value.clone(),
                at: self.at(&format!("roles[{i}].policy_arns[{j}]"), p.referenced.line()),
            };
            role.policy_arns.push(src.check(|p| {
                (p.starts_with("arn:") && p.contains(":policy/"))
                    .then_some(())
                    .ok_or_else(|| format!("{p:?} is not a managed policy ARN like arn:aws:iam::aws:policy/ReadOnlyAccess"))
            })?);
        }
        if r.tags.len() > 50 {
            return Err(ConfigError {
                at: key("tags"),
                message: format!("{} session tags: STS allows at most 50", r.tags.len()),
            });
        }
        for (k, v) in &r.tags {
            let src = Src {
                value: v.value.clone(),
                at: self.at(&format!("roles[{i}].tags.{k}"), v.referenced.line()),
            };
            let value = src.check(|v| {
                if k.is_empty() || k.chars().count() > 128 {
                    Err("a tag key must be 1 to 128 characters".into())
                } else if v.chars().count() > 256 {
                    Err("a tag value must be at most 256 characters".into())
                } else {
                    Ok(())
                }
            })?;
            role.tags.insert(k.clone(), value);
        }
        for t in &r.transitive_tag_keys {
            let src = Src {
                value: t.value.clone(),
                at: self.at(&key("transitive_tag_keys"), t.referenced.line()),
            };
            role.transitive_tag_keys.push(src.check(|t| {
                r.tags
                    .contains_key(t)
                    .then_some(())
                    .ok_or_else(|| format!("{t:?} is not one of this role's tags: add it under tags, or remove it here"))
            })?);
        }
        role.source_identity = self
            .file(&key("source_identity"), &r.source_identity)
            .map(|s| {
                s.check(|id| {
                    let ok = (2..=64).contains(&id.len())
                        && id.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
                    ok.then_some(())
                        .ok_or_else(|| "source_identity must be 2 to 64 characters of letters, digits and +=,.@_-".to_string())
                })
            })
            .transpose()?;
        Ok(role)
    }

    fn outputs(&self, f: &FileConfig, roles: &[RoleConfig]) -> Result<OutputsConfig, ConfigError> {
        let a = self.args;
        let o = &f.outputs;
        let absolute = |key: &str| {
            let key = key.to_string();
            move |src: Src<String>| -> Result<PathBuf, ConfigError> {
                let path = PathBuf::from(&src.value);
                if src.value.is_empty() {
                    return Err(src.fail(format!("{key} is empty: give a directory path")));
                }
                Ok(std::path::absolute(&path).unwrap_or(path))
            }
        };
        let directory = absolute("outputs.directory")(self.pick(
            ("--output-dir", &a.output_dir),
            "outputs.directory",
            &o.directory,
            "/var/run/rolerelay".into(),
        )?)?;
        let app_directory = match self.flag::<String>("--app-dir", &a.app_dir)?.or_else(|| self.file("outputs.app_directory", &o.app_directory)) {
            Some(src) if !src.value.starts_with('/') => {
                return Err(src.fail("app_directory must be an absolute path: where the application container mounts the volume"))
            }
            Some(src) => Some(PathBuf::from(src.value)),
            None => None,
        };
        let optional_name = |key: &str,
                             v: &Option<Spanned<String>>,
                             default: &str|
         -> Result<Option<String>, ConfigError> {
            let src = self.or_default(key, v, default.into());
            if src.value.is_empty() {
                return Ok(None);
            }
            src.check(check_file_name).map(Some)
        };
        let credentials_file = optional_name(
            "outputs.credentials_file",
            &o.credentials_file,
            "credentials",
        )?;
        let config_file = optional_name("outputs.config_file", &o.config_file, "config")?;
        let process_command = self
            .or_default("outputs.process_command", &o.process_command, "cat {dir}/{role}.json".into())
            .check(|cmd| {
                let mut rest = cmd.as_str();
                while let Some(open) = rest.find('{') {
                    let after = &rest[open + 1..];
                    let name = after.split('}').next().unwrap_or_default();
                    if !matches!(name, "dir" | "role") || !after.contains('}') {
                        return Err(format!("process_command uses {{{name}}}: the placeholders are {{dir}} and {{role}}"));
                    }
                    rest = &after[name.len() + 1..];
                }
                (!cmd.trim().is_empty()).then_some(()).ok_or_else(|| "process_command is empty".to_string())
            })?;
        let default_role = match self
            .flag::<RoleName>("--default-role", &a.default_role)?
            .or_else(|| self.file("outputs.default_role", &o.default_role))
        {
            Some(src) => Some(src.check(|name| {
                roles
                    .iter()
                    .any(|r| &r.name == name)
                    .then_some(())
                    .ok_or_else(|| {
                        let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
                        format!(
                            "default_role {:?} is not a configured role: use one of {}",
                            name.as_str(),
                            names.join(", ")
                        )
                    })
            })?),
            None => None,
        };
        let file_mode = self
            .pick(
                ("--file-mode", &a.file_mode),
                "outputs.file_mode",
                &o.file_mode,
                FileMode(0o640),
            )?
            .value;
        let owner = self
            .flag::<Owner>("--owner", &a.owner)?
            .or_else(|| self.file("outputs.owner", &o.owner))
            .map(|s| s.value);
        Ok(OutputsConfig {
            directory,
            credentials_file,
            config_file,
            app_directory,
            process_command,
            default_role,
            process_json: self
                .or_default("outputs.process_json", &o.process_json, true)
                .value,
            env_file: self.or_default("outputs.env_file", &o.env_file, true).value,
            file_mode,
            owner,
            remove_on_exit: self
                .or_default("outputs.remove_on_exit", &o.remove_on_exit, false)
                .value,
        })
    }

    /// The fixed file names must not collide with each other or with a role's `<role>.json`/`.env`.
    fn check_file_names(&self, c: &Config, f: &FileConfig) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        let fixed = [
            (
                "outputs.credentials_file",
                &f.outputs.credentials_file,
                c.outputs.credentials_file.as_deref(),
            ),
            (
                "outputs.config_file",
                &f.outputs.config_file,
                c.outputs.config_file.as_deref(),
            ),
            (
                "credentials_endpoint.token_file",
                &f.credentials_endpoint.token_file,
                Some(c.credentials_endpoint.token_file.as_str()),
            ),
        ];
        for (key, in_file, name) in fixed {
            let Some(name) = name else { continue };
            let clashes_with_role = c
                .roles
                .iter()
                .any(|r| name == r.file_name("json") || name == r.file_name("env"));
            if !seen.insert(name) || clashes_with_role {
                let at = self.file(key, in_file).map_or(key.to_string(), |s| s.at);
                return Err(ConfigError {
                    at,
                    message: format!(
                        "file name {name:?} is used by another output: give it a name of its own"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `text` with its control characters (newlines above all) escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn dur(secs: u64) -> Dur {
    Dur(Duration::from_secs(secs))
}

fn parse_addr(src: Src<String>) -> Result<SocketAddr, ConfigError> {
    src.value.parse().map_err(|_| {
        src.fail(format!(
            "{:?} is not an address:port like 127.0.0.1:9911",
            src.value
        ))
    })
}

fn check_file_name(name: &String) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.contains('/')
        && name != "."
        && name != ".."
        && !name.starts_with(".rolerelay-");
    ok.then_some(()).ok_or_else(|| {
        format!("{name:?} must be a plain file name in the output directory, without '/'")
    })
}

impl TemplateVars {
    /// The host name (from the kernel, else `HOSTNAME`) and `POD_NAME` of this process.
    pub fn from_env() -> TemplateVars {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into());
        let pod = std::env::var("POD_NAME")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| hostname.clone());
        TemplateVars { hostname, pod }
    }
}

#[cfg(test)]
mod tests;
