//! The resolver: each setting from its flag (or variable), else the file, else the default, one
//! method per section. A value is checked while it still carries its origin, so that the error
//! names the file line or the flag to change.
//!
//! The sections are methods of [`Resolver`]; `roles` and `outputs`, the two with cross-field
//! checks, have a file each.

mod clients;
mod outputs;
mod roles;

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::checks;
use super::file::{
    FileConfig, FileEndpoint, FileLogging, FileRefresh, FileServer, FileSource, FileSts,
};
use super::rules::MAX_SESSION_DURATION;
use super::{
    Config, ConfigArgs, ConfigError, EndpointConfig, HumanDuration, LogFormat, LogLevel,
    LoggingConfig, RefreshConfig, ServerConfig, SourceConfig, StsConfig, TemplateVars,
};

/// A value and where it came from: `file:line: key`, a flag and its variable, an environment
/// variable, or the key of a default. Errors about the value name that origin.
struct Sourced<T> {
    value: T,
    origin: String,
}

impl<T> Sourced<T> {
    /// A value with its origin.
    fn new(value: T, origin: impl Into<String>) -> Self {
        Sourced {
            value,
            origin: origin.into(),
        }
    }

    /// An error about this value.
    fn fail(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            at: self.origin.clone(),
            message: message.into(),
        }
    }

    /// The value, if `check` accepts it.
    fn check(self, check: impl FnOnce(&T) -> Result<(), String>) -> Result<T, ConfigError> {
        match check(&self.value) {
            Ok(()) => Ok(self.value),
            Err(message) => Err(ConfigError {
                at: self.origin,
                message,
            }),
        }
    }
}

/// Merges flags, the parsed file, the environment and the defaults into a [`Config`].
pub(super) struct Resolver<'a> {
    /// The file's path as errors show it; empty without a file.
    pub(super) path: String,
    pub(super) args: &'a ConfigArgs,
    /// Looks up an environment variable; injected so that tests control it.
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) vars: &'a TemplateVars,
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

/// A default duration in whole seconds.
fn seconds(secs: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(secs))
}

impl Resolver<'_> {
    /// The origin of a value of the file.
    fn origin(&self, key: &str, line: u64) -> String {
        format!("{}:{line}: {key}", self.path)
    }

    /// A value of the file, its origin the key at the value's line.
    fn sourced<T: Clone>(&self, key: &str, spanned: &Spanned<T>) -> Sourced<T> {
        let origin = self.origin(key, spanned.referenced.line());
        Sourced::new(spanned.value.clone(), origin)
    }

    /// A value of the file, if set.
    fn file_value<T: Clone>(&self, key: &str, value: &Option<Spanned<T>>) -> Option<Sourced<T>> {
        value.as_ref().map(|spanned| self.sourced(key, spanned))
    }

    /// A value from a flag (or its variable), parsed with the same parser as the file's. An
    /// empty value counts as unset, as a variable left empty in a manifest means to.
    fn flag_value<T: FromStr>(
        &self,
        flag: &str,
        text: &Option<String>,
    ) -> Result<Option<Sourced<T>>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(text) = text.as_deref().filter(|text| !text.is_empty()) else {
            return Ok(None);
        };
        let origin = flag_label(flag);
        match text.parse() {
            Ok(value) => Ok(Some(Sourced { value, origin })),
            Err(error) => Err(ConfigError {
                at: origin,
                message: error.to_string(),
            }),
        }
    }

    /// An environment variable, if set.
    fn env_value(&self, name: &str) -> Option<Sourced<String>> {
        (self.env)(name).map(|value| Sourced::new(value, name))
    }

    /// Flag over file.
    fn flag_or_file<T: Clone + FromStr>(
        &self,
        (flag, text): (&str, &Option<String>),
        key: &str,
        file: &Option<Spanned<T>>,
    ) -> Result<Option<Sourced<T>>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self
            .flag_value(flag, text)?
            .or_else(|| self.file_value(key, file)))
    }

    /// Flag over file over default.
    fn flag_file_or_default<T: Clone + FromStr>(
        &self,
        flag: (&str, &Option<String>),
        key: &str,
        file: &Option<Spanned<T>>,
        default: T,
    ) -> Result<Sourced<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self
            .flag_or_file(flag, key, file)?
            .unwrap_or_else(|| Sourced::new(default, key)))
    }

    /// File over default, for keys with no flag.
    fn file_or_default<T: Clone>(
        &self,
        key: &str,
        file: &Option<Spanned<T>>,
        default: T,
    ) -> Sourced<T> {
        self.file_value(key, file)
            .unwrap_or_else(|| Sourced::new(default, key))
    }

    /// The whole configuration. The sections resolve in this order, which decides which error is
    /// reported when there are several.
    pub(super) fn resolve(&self, file: &FileConfig) -> Result<Config, ConfigError> {
        let sts = self.sts(&file.sts)?;
        let source = self.source(&file.source)?;
        let refresh = self.refresh(&file.refresh)?;
        let roles = self.roles(&file.roles, &refresh)?;
        let outputs = self.outputs(&file.outputs, &roles)?;
        let server = self.server(&file.server)?;
        let credentials_endpoint = self.endpoint(&file.credentials_endpoint)?;
        let clients = self.clients(&file.clients, &roles, &outputs, &credentials_endpoint)?;
        let logging = self.logging(&file.logging)?;
        let config = Config {
            sts,
            source,
            refresh,
            roles,
            outputs,
            clients,
            server,
            credentials_endpoint,
            logging,
        };
        self.check_file_names(&config, file)?;
        Ok(config)
    }

    /// `sts:`; without a flag or a key, the region comes from the variables the AWS SDKs read.
    fn sts(&self, sts: &FileSts) -> Result<StsConfig, ConfigError> {
        let args = self.args;
        let region = self
            .flag_or_file(("--region", &args.region), "sts.region", &sts.region)?
            .or_else(|| self.env_value("AWS_REGION"))
            .or_else(|| self.env_value("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| Sourced::new("us-east-1".to_string(), "sts.region"))
            .check(|region| checks::region(region))?;
        let allow_insecure_endpoint = self
            .flag_file_or_default(
                (
                    "--sts-allow-insecure-endpoint",
                    &args.sts_allow_insecure_endpoint,
                ),
                "sts.allow_insecure_endpoint",
                &sts.allow_insecure_endpoint,
                false,
            )?
            .value;
        let endpoint_url = self
            .flag_or_file(
                ("--sts-endpoint-url", &args.sts_endpoint_url),
                "sts.endpoint_url",
                &sts.endpoint_url,
            )?
            .map(|url| url.check(|url| checks::endpoint_url(url, allow_insecure_endpoint)))
            .transpose()?;
        Ok(StsConfig {
            region,
            endpoint_url,
            allow_insecure_endpoint,
        })
    }

    /// `source:`.
    fn source(&self, source: &FileSource) -> Result<SourceConfig, ConfigError> {
        let profile = self
            .flag_or_file(
                ("--source-profile", &self.args.source_profile),
                "source.profile",
                &source.profile,
            )?
            .map(|profile| profile.value);
        Ok(SourceConfig { profile })
    }

    /// `refresh:`.
    fn refresh(&self, refresh: &FileRefresh) -> Result<RefreshConfig, ConfigError> {
        let lifetime_fraction = self
            .file_or_default("refresh.lifetime_fraction", &refresh.lifetime_fraction, 0.5)
            .check(|value| checks::check_fraction(*value, true, "lifetime_fraction").map(drop))?;
        let jitter = self
            .file_or_default("refresh.jitter", &refresh.jitter, 0.1)
            .check(|value| checks::check_fraction(*value, false, "jitter").map(drop))?;
        let min_remaining = self
            .file_value("refresh.min_remaining", &refresh.min_remaining)
            .map(|margin| {
                margin.check(|duration| {
                    checks::at_most(
                        duration,
                        MAX_SESSION_DURATION,
                        "no STS session lasts longer",
                    )
                })
            })
            .transpose()?;
        let max_interval = self
            .flag_or_file(
                ("--max-interval", &self.args.max_interval),
                "refresh.max_interval",
                &refresh.max_interval,
            )?
            .map(|interval| {
                interval.check(|interval| {
                    checks::at_least_one_second(interval)?;
                    checks::at_most(
                        interval,
                        MAX_SESSION_DURATION,
                        "no STS session lasts longer",
                    )
                })
            })
            .transpose()?;
        let (backoff_initial, backoff_max) = self.backoff(refresh)?;
        let timeout = self
            .file_or_default("refresh.timeout", &refresh.timeout, seconds(10))
            .check(|duration| {
                checks::more_than_zero(duration)?;
                checks::at_most(
                    duration,
                    checks::MAX_CALL_TIMEOUT,
                    "the time for one STS call",
                )
            })?;
        let concurrency = self
            .file_or_default("refresh.concurrency", &refresh.concurrency, 16)
            .check(checks::concurrency)?;
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

    /// The retry delays: the first one, and the cap it grows to.
    fn backoff(
        &self,
        refresh: &FileRefresh,
    ) -> Result<(HumanDuration, HumanDuration), ConfigError> {
        let initial = self
            .file_or_default(
                "refresh.backoff_initial",
                &refresh.backoff_initial,
                seconds(1),
            )
            .check(|duration| {
                checks::more_than_zero(duration)?;
                checks::at_most(
                    duration,
                    checks::MAX_BACKOFF,
                    "a longer wait only delays recovery",
                )
            })?;
        let max = self
            .file_or_default("refresh.backoff_max", &refresh.backoff_max, seconds(120))
            .check(|max| {
                (max.0 >= initial.0).then_some(()).ok_or_else(|| {
                    format!(
                        "{max} is less than refresh.backoff_initial ({initial}): \
                         raise it or lower backoff_initial"
                    )
                })?;
                checks::at_most(
                    max,
                    checks::MAX_BACKOFF,
                    "a longer wait only delays recovery",
                )
            })?;
        Ok((initial, max))
    }

    /// `server:`.
    pub(super) fn server(&self, server: &FileServer) -> Result<ServerConfig, ConfigError> {
        let listen = self.flag_file_or_default(
            ("--listen", &self.args.listen),
            "server.listen",
            &server.listen,
            super::DEFAULT_SERVER_LISTEN.into(),
        )?;
        Ok(ServerConfig {
            listen: socket_address(listen, super::DEFAULT_SERVER_LISTEN)?,
        })
    }

    /// `credentials_endpoint:`; anything but loopback must be asked for, since whoever reaches
    /// the endpoint gets credentials.
    fn endpoint(&self, endpoint: &FileEndpoint) -> Result<EndpointConfig, ConfigError> {
        let allow_non_loopback = self
            .file_or_default(
                "credentials_endpoint.allow_non_loopback",
                &endpoint.allow_non_loopback,
                false,
            )
            .value;
        let listen = self.flag_file_or_default(
            ("--endpoint-listen", &self.args.endpoint_listen),
            "credentials_endpoint.listen",
            &endpoint.listen,
            super::DEFAULT_ENDPOINT_LISTEN.into(),
        )?;
        let listen_origin = listen.origin.clone();
        let listen = socket_address(listen, super::DEFAULT_ENDPOINT_LISTEN)?;
        let enabled = self
            .file_or_default("credentials_endpoint.enabled", &endpoint.enabled, true)
            .value;
        if enabled && !allow_non_loopback && !listen.ip().is_loopback() {
            return Err(ConfigError {
                at: listen_origin,
                message: format!(
                    "{listen} is not a loopback address: the endpoint hands out credentials to anyone who can reach it; \
                     listen on 127.0.0.1, or set credentials_endpoint.allow_non_loopback: true"
                ),
            });
        }
        let token_file = self
            .file_or_default(
                "credentials_endpoint.token_file",
                &endpoint.token_file,
                "token".into(),
            )
            .check(|name| checks::plain_file_name(name))?;
        Ok(EndpointConfig {
            enabled,
            listen,
            token_file,
            allow_non_loopback,
        })
    }

    /// `logging:`.
    fn logging(&self, logging: &FileLogging) -> Result<LoggingConfig, ConfigError> {
        let args = self.args;
        let format = self
            .flag_file_or_default(
                ("--log-format", &args.log_format),
                "logging.format",
                &logging.format,
                LogFormat::Json,
            )?
            .value;
        let level = self
            .flag_file_or_default(
                ("--log-level", &args.log_level),
                "logging.level",
                &logging.level,
                LogLevel::Info,
            )?
            .value;
        Ok(LoggingConfig { format, level })
    }
}

/// An address:port or host:port (like `localhost:9090`), resolved once, here: an IPv4 address
/// is preferred when a name has both. The file keeps it as text so that this message explains,
/// not the parser's; `example` is the key's own default.
fn socket_address(address: Sourced<String>, example: &str) -> Result<SocketAddr, ConfigError> {
    let text = address.value.trim();
    if let Ok(parsed) = text.parse() {
        return Ok(parsed);
    }
    let shape_error = || {
        address.fail(format!(
            "{:?} is not an address:port or host:port like {example}",
            address.value
        ))
    };
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(shape_error());
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(shape_error());
    }
    let resolved: Vec<SocketAddr> = match text.to_socket_addrs() {
        Ok(found) => found.collect(),
        Err(e) => {
            return Err(address.fail(format!(
                "{:?}: the host {host:?} does not resolve ({e}): use an address like {example}",
                address.value
            )))
        }
    };
    resolved
        .iter()
        .find(|found| found.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| {
            address.fail(format!(
                "{:?}: the host {host:?} has no address: use an address like {example}",
                address.value
            ))
        })
}
