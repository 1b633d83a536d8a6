//! The configuration flags, shared by `run`, `once`, `check` and `doctor`. They are kept as text
//! here and parsed by the resolver with the same parsers as the file's values, so a bad value gets
//! the same one-line error wherever it came from.

use std::path::PathBuf;

use clap::Args;

/// Where the configuration comes from: a YAML file, overridden by these flags (or their variables).
#[derive(Debug, Args, Default, Clone)]
pub struct ConfigArgs {
    /// The YAML configuration file.
    #[arg(long, env = "ROLERELAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Assume this one role (replaces the file's `roles`).
    #[arg(long, env = "ROLERELAY_ROLE_ARN", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The name of the --role-arn role (profile name and file stem). Default: the role's own name.
    #[arg(
        long,
        env = "ROLERELAY_ROLE_NAME",
        value_name = "NAME",
        requires = "role_arn"
    )]
    pub role_name: Option<String>,
    /// ExternalId for the --role-arn role.
    #[arg(
        long,
        env = "ROLERELAY_EXTERNAL_ID",
        value_name = "ID",
        requires = "role_arn"
    )]
    pub external_id: Option<String>,
    /// Session name template for the --role-arn role ({hostname} {role} {pod}).
    #[arg(
        long,
        env = "ROLERELAY_SESSION_NAME",
        value_name = "TEMPLATE",
        requires = "role_arn"
    )]
    pub session_name: Option<String>,
    /// Requested session duration for the --role-arn role, like 1h.
    #[arg(
        long,
        env = "ROLERELAY_DURATION",
        value_name = "DURATION",
        requires = "role_arn"
    )]
    pub duration: Option<String>,

    /// STS region (sts.region).
    #[arg(long, env = "ROLERELAY_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// STS endpoint URL (sts.endpoint_url): a VPC or FIPS endpoint, or a local STS for testing.
    #[arg(long, env = "ROLERELAY_STS_ENDPOINT_URL", value_name = "URL")]
    pub sts_endpoint_url: Option<String>,
    /// Allow a plain http:// STS endpoint on a host that is not loopback
    /// (sts.allow_insecure_endpoint). Default: false.
    #[arg(
        long,
        env = "ROLERELAY_STS_ALLOW_INSECURE_ENDPOINT",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub sts_allow_insecure_endpoint: Option<String>,
    /// Named profile for the source credentials (source.profile). Default: the default chain.
    #[arg(long, env = "ROLERELAY_SOURCE_PROFILE", value_name = "PROFILE")]
    pub source_profile: Option<String>,

    /// Hard upper bound between refreshes (refresh.max_interval), like 15m.
    #[arg(long, env = "ROLERELAY_MAX_INTERVAL", value_name = "DURATION")]
    pub max_interval: Option<String>,

    /// The shared output directory (outputs.directory).
    #[arg(long, env = "ROLERELAY_OUTPUT_DIR", value_name = "DIR")]
    pub output_dir: Option<String>,
    /// Where the application mounts the output directory (outputs.app_directory).
    #[arg(long, env = "ROLERELAY_APP_DIR", value_name = "DIR")]
    pub app_dir: Option<String>,
    /// A role also written as [default] (outputs.default_role).
    #[arg(long, env = "ROLERELAY_DEFAULT_ROLE", value_name = "NAME")]
    pub default_role: Option<String>,
    /// Mode of every written file (outputs.file_mode), like 0640.
    #[arg(long, env = "ROLERELAY_FILE_MODE", value_name = "MODE")]
    pub file_mode: Option<String>,
    /// The application's uid:gid; written files get its group (outputs.owner).
    #[arg(long, env = "ROLERELAY_OWNER", value_name = "UID:GID")]
    pub owner: Option<String>,

    /// Listen address of /healthz /readyz /servingz /metrics /status (server.listen).
    #[arg(long, env = "ROLERELAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Listen address of the container-credentials endpoint (credentials_endpoint.listen).
    #[arg(long, env = "ROLERELAY_ENDPOINT_LISTEN", value_name = "ADDR")]
    pub endpoint_listen: Option<String>,

    /// Log format: json or text (logging.format).
    #[arg(long, env = "ROLERELAY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level: error, warn, info, debug or trace (logging.level).
    #[arg(long, env = "ROLERELAY_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
}
