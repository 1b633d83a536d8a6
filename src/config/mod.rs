//! The effective configuration: the YAML file, overridden by flags and `ROLERELAY_*` variables,
//! over the documented defaults (README, Configuration), validated once so the rest of the program can trust it.
//!
//! Every error names the key (and the file line, or the flag it came from) and what to change.
//!
//! # Layout
//!
//! - `mod.rs` — the effective [`Config`], its sections, [`ConfigError`], and [`Config::load`].
//! - `args.rs` — [`ConfigArgs`], the configuration flags (clap), kept as text.
//! - `file.rs` — the YAML file as written, each value with its line.
//! - [`values`] — the value types, each parsed from the text a user writes.
//! - `checks.rs` — the limits of STS and of the output directory, as small named checks.
//! - `resolve/` — flag over file over default, section by section, each value checked while its
//!   origin is still known; `roles.rs` and `outputs.rs` hold the two sections with cross-field checks.
//! - [`diff`] — what a reloaded configuration changes.

mod args;
mod checks;
pub mod diff;
mod file;
mod resolve;
mod rules;
pub mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use args::ConfigArgs;
use file::FileConfig;
use resolve::Resolver;
pub use rules::{
    default_min_remaining, DEFAULT_MIN_REMAINING, MAX_SESSION_DURATION, MIN_SESSION_DURATION,
    ONE_HOUR,
};
pub use values::{
    ClientName, FileMode, HumanDuration, LogFormat, LogLevel, Owner, RoleArn, RoleName,
    SessionTemplate, TemplateVars,
};

/// `server.listen` when nothing sets it.
pub const DEFAULT_SERVER_LISTEN: &str = "0.0.0.0:9090";

/// `outputs.process_command` when nothing sets it: prints `<role>.json`, and while that does not
/// exist (the role is not ready yet, or its credentials expired) fails with a line the SDKs
/// show, instead of `cat`'s "No such file or directory". The path and the role are arguments of
/// the script, not part of it, so that `{dir}` is quoted once, for the outer split.
pub const DEFAULT_PROCESS_COMMAND: &str = "sh -c 'cat \"$1\" 2>/dev/null || ! echo \"rolerelay: \
     role $2 has no credentials yet, or $1 is not readable here (see rolerelay /status)\" >&2' \
     rolerelay {dir}/{role}.json {role}";

/// `credentials_endpoint.listen` when nothing sets it.
pub const DEFAULT_ENDPOINT_LISTEN: &str = "127.0.0.1:9911";

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
    /// The application containers that each get only their own roles; empty: every container
    /// that reads the output directory gets every role.
    pub clients: Vec<ClientConfig>,
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
    /// Allow a plain `http://` endpoint on a host that is not loopback. Default false.
    pub allow_insecure_endpoint: bool,
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
    /// ...and never later than this before expiry. Default: none, which is 20m, or a third of
    /// the credentials' lifetime when that is shorter ([`default_min_remaining`]), per role.
    pub min_remaining: Option<HumanDuration>,
    /// Optional hard upper bound between refreshes. Default: none.
    pub max_interval: Option<HumanDuration>,
    /// +/- fraction applied to each scheduled refresh. Default 0.1.
    pub jitter: f64,
    /// First retry delay after a failure (exponential, full jitter). Default 1s.
    pub backoff_initial: HumanDuration,
    /// Retry delay cap. Default 2m.
    pub backoff_max: HumanDuration,
    /// Time limit of one STS call. Default 10s.
    pub timeout: HumanDuration,
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
    pub duration: HumanDuration,
    /// How long before expiry the credentials count as due: `refresh.min_remaining`, else the
    /// default for the longest session this role gets (a chained one gets at most 1h). The
    /// refresh loop works it out again from the credentials STS actually grants.
    pub min_remaining: HumanDuration,
    /// Role ARNs assumed first, in order, each with the previous hop's credentials.
    pub chain: Vec<RoleArn>,
    /// Inline JSON policy that narrows the session's permissions. Default: none.
    pub policy: Option<String>,
    /// Managed policies that narrow the session's permissions. Default: none.
    pub policy_arns: Vec<String>,
    /// Session tags (at most 50): principal tags for ABAC conditions, recorded in CloudTrail.
    pub tags: BTreeMap<String, String>,
    /// Keys of `tags` that pass on to chained roles.
    pub transitive_tag_keys: Vec<String>,
    /// SourceIdentity: who the session acts for; STS keeps it through chains, CloudTrail records it.
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
    /// The credential_process command line ({dir} {role}). Default [`DEFAULT_PROCESS_COMMAND`].
    pub process_command: String,
    /// A role also written as `[default]`. Default: none.
    pub default_role: Option<RoleName>,
    /// Write `<role>.json`. Default true.
    pub process_json: bool,
    /// Write `<role>.env`. Default true.
    pub env_file: bool,
    /// Mode of every file written. Default 0640.
    pub file_mode: FileMode,
    /// The application's uid:gid; the files and a created directory get its group (files
    /// stay rolerelay's). Default: none (the process's own group).
    pub owner: Option<Owner>,
    /// Delete the files on SIGTERM. Default false.
    pub remove_on_exit: bool,
}

/// One entry of `clients:`: an application container with a directory, a token and roles of
/// its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientConfig {
    /// Shown in logs, `/status` and the endpoint metric's `client` label.
    pub name: ClientName,
    /// The roles this client may fetch, and whose files its directory gets, in file order.
    pub roles: Vec<RoleName>,
    /// Its directory, absolute: `directory` as written, under `outputs.directory` when relative.
    /// Default: the name, under `outputs.directory`.
    pub directory: PathBuf,
    /// Where the client's container mounts its directory, if elsewhere. Default: none.
    pub app_directory: Option<PathBuf>,
}

impl ClientConfig {
    /// The directory as the client's container sees it: `app_directory`, else `directory`.
    pub fn app_dir(&self) -> &Path {
        self.app_directory.as_deref().unwrap_or(&self.directory)
    }
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
    /// The token file's name in the output directory (in each client's directory with
    /// `clients`). Default `token`.
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
        Config::load_with(args, |resolver, file| resolver.resolve(file))
    }

    /// `server.listen` alone, resolved as `load` does (flag, variable, file, default) but without
    /// asking for the rest: what `healthcheck` needs.
    pub fn server_listen(args: &ConfigArgs) -> Result<SocketAddr, ConfigError> {
        Config::load_with(args, |resolver, file| {
            Ok(resolver.server(&file.server)?.listen)
        })
    }

    /// Reads the file `args` names, if any, and resolves it with `resolve`.
    fn load_with<T>(
        args: &ConfigArgs,
        resolve: impl FnOnce(&Resolver, &FileConfig) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let path = args.config.as_deref().filter(|p| !p.as_os_str().is_empty());
        let text = match path {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|error| ConfigError {
                at: path.display().to_string(),
                message: format!("cannot read the configuration file: {error}"),
            })?),
            None => None,
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Config::resolve_parts(
            args,
            path.zip(text.as_deref()),
            &env,
            &TemplateVars::from_env(),
            resolve,
        )
    }

    /// Builds the configuration from flags, an optional `(path, file text)` and an environment lookup.
    pub fn from_parts(
        args: &ConfigArgs,
        file: Option<(&Path, &str)>,
        env: &dyn Fn(&str) -> Option<String>,
        vars: &TemplateVars,
    ) -> Result<Config, ConfigError> {
        Config::resolve_parts(args, file, env, vars, |resolver, file| {
            resolver.resolve(file)
        })
    }

    /// Parses the file text, if any, and hands it to `resolve` with a resolver of these parts.
    fn resolve_parts<T>(
        args: &ConfigArgs,
        file: Option<(&Path, &str)>,
        env: &dyn Fn(&str) -> Option<String>,
        vars: &TemplateVars,
        resolve: impl FnOnce(&Resolver, &FileConfig) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let path = file
            .map(|(path, _)| path.display().to_string())
            .unwrap_or_default();
        let parsed = match file {
            Some((_, text)) => file::parse(text).map_err(|error| ConfigError {
                at: match error.line {
                    Some(line) => format!("{path}:{line}: {}", error.key),
                    None => format!("{path}: {}", error.key),
                },
                message: error.message,
            })?,
            None => FileConfig::default(),
        };
        let resolver = Resolver {
            path,
            args,
            env,
            vars,
        };
        resolve(&resolver, &parsed)
    }
}

/// `text` with its control characters (newlines above all) and bidirectional overrides escaped,
/// so that text from outside (a file, an STS reply, a sidecar's `/status`) cannot start a line
/// of its own in an error, a log or a table, move a terminal's cursor, or read backwards.
pub fn one_line(text: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    text.chars()
        .map(|c| match unsafe_char(c) {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

impl TemplateVars {
    /// The host name (from the kernel, else `HOSTNAME`) and `POD_NAME` of this process.
    pub fn from_env() -> TemplateVars {
        let hostname = kernel_hostname()
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

/// The kernel's host name (of the UTS namespace), asked of the kernel rather than read from
/// `/proc/sys`, which a systemd unit with `ProcSubset=pid` hides.
fn kernel_hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return None;
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}
