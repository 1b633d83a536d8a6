//! The command line: the subcommands and their own arguments. Every flag has an environment
//! variable `ROLERELAY_<FLAG>`. The configuration flags are [`ConfigArgs`], which `config` owns
//! because it is the one that parses and validates them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ConfigArgs;

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
    Once(OnceArgs),
    /// Validate the configuration and print the effective configuration; exit 0, or 2 if invalid.
    Check(ConfigArgs),
    /// Diagnose the whole path (source credentials, each role, the outputs) and say how to fix it.
    Doctor(DoctorArgs),
    /// GET a URL (default: /servingz on the configuration's server.listen); exit 0 on HTTP 200,
    /// 1 otherwise. For health checks that restart or unroute: it fails for a wedged loop or
    /// expired credentials, not merely because STS fails while valid ones are held.
    Healthcheck(HealthcheckArgs),
    /// Show a running sidecar's /status as a table: each role ready or why not, when its
    /// credentials expire and refresh, its last error; exit 0 if every role is ready, 1 if not,
    /// 2 if no sidecar answered.
    Status(StatusArgs),
    /// Print a role's current credentials in credential_process JSON; exit 1 if missing or expired.
    CredentialProcess(CredentialProcessArgs),
}

/// Arguments of `once`.
#[derive(Debug, Args)]
pub struct OnceArgs {
    /// The configuration, as for `run`.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Keep retrying the roles that failed (with the configured backoff) for this long: an init
    /// container or Job then waits out a transient STS error or a trust policy still
    /// propagating. 0 fails at the first error.
    #[arg(
        long,
        env = "ROLERELAY_RETRY_FOR",
        value_name = "DURATION",
        default_value = "1m",
        value_parser = parse_duration
    )]
    pub retry_for: std::time::Duration,
}

/// Arguments of `credential-process`.
#[derive(Debug, Args)]
pub struct CredentialProcessArgs {
    /// The role's name ([A-Za-z0-9_-], as in the configuration).
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
    /// The URL to check. Default: /servingz on server.listen of the configuration these flags
    /// name (--config, --listen or their variables), else http://127.0.0.1:9090/servingz.
    #[arg(long, env = "ROLERELAY_HEALTHCHECK_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The configuration the sidecar runs with, for its server.listen.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// How long to wait for the answer, like 2s.
    #[arg(long, env = "ROLERELAY_HEALTHCHECK_TIMEOUT", value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The sidecar's status server, like http://127.0.0.1:9090 (/status is added when the URL
    /// has no path). Default: /status on server.listen of the configuration these flags name
    /// (--config, --listen or their variables), else http://127.0.0.1:9090/status.
    #[arg(long, env = "ROLERELAY_STATUS_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The configuration the sidecar runs with, for its server.listen.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format: text (tables for a person) or json (the document, pretty-printed).
    #[arg(long, env = "ROLERELAY_STATUS_FORMAT", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// How long to wait for the answer, like 2s.
    #[arg(long, env = "ROLERELAY_STATUS_TIMEOUT", value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<crate::config::HumanDuration>().map(|d| d.0)
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
