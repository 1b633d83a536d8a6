//! The command line. Every flag has an environment variable `ROLERELAY_<FLAG>`; flags are kept as
//! text here and parsed by `config`, so a bad value gets the same one-line error wherever it came from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// rolerelay: assume cross-account AWS IAM roles on a schedule and deliver always-fresh
/// credentials through a shared volume and a loopback container-credentials endpoint.
#[derive(Debug, Parser)]
#[command(name = "rolerelay", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar: refresh every role on its schedule until SIGTERM or SIGINT.
    Run(ConfigArgs),
    /// Assume every role once, write every output, and exit: 0 if all succeeded, 1 if any failed.
    Once(ConfigArgs),
    /// Validate the configuration and print the effective configuration; exit 0, or 2 if invalid.
    Check(ConfigArgs),
    /// Diagnose the whole path (source credentials, each role, the outputs) and say how to fix it.
    Doctor(DoctorArgs),
    /// GET a URL (default: this sidecar's /readyz); exit 0 on HTTP 200, 1 otherwise.
    Healthcheck(HealthcheckArgs),
    /// Print a role's current credentials in credential_process JSON; exit 1 if missing or expired.
    CredentialProcess(CredentialProcessArgs),
}

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
    /// uid:gid to give every written file (outputs.owner).
    #[arg(long, env = "ROLERELAY_OWNER", value_name = "UID:GID")]
    pub owner: Option<String>,

    /// Log format: json or text (logging.format).
    #[arg(long, env = "ROLERELAY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level: error, warn, info, debug or trace (logging.level).
    #[arg(long, env = "ROLERELAY_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// Arguments of `credential-process`.
#[derive(Debug, Args)]
pub struct CredentialProcessArgs {
    /// The role's name.
    #[arg(long, env = "ROLERELAY_ROLE", value_name = "NAME")]
    pub role: String,
    /// The output directory holding `<role>.json`.
    #[arg(
        long,
        env = "ROLERELAY_OUTPUT_DIR",
        value_name = "DIR",
        default_value = "/var/run/rolerelay"
    )]
    pub dir: PathBuf,
}

/// Arguments of `healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to check.
    #[arg(
        long,
        env = "ROLERELAY_HEALTHCHECK_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:9090/readyz"
    )]
    pub url: String,
    /// How long to wait for the answer, like 2s.
    #[arg(long, env = "ROLERELAY_HEALTHCHECK_TIMEOUT", value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<crate::config::Dur>().map(|d| d.0)
}

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The configuration, as for `run`.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format: text (✓/✗ lines) or json.
    #[arg(long, env = "ROLERELAY_DOCTOR_FORMAT", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}
