//! # rolerelay
//!
//! A sidecar that assumes cross-account AWS IAM roles on a schedule and delivers always-fresh
//! credentials to the application next to it.
//!
//! # Layout
//!
//! - [`cli`] — the command line (clap; every flag has a `ROLERELAY_*` variable).
//! - [`config`] — the configuration flags, the YAML file and the defaults merged into one
//!   validated [`config::Config`].
//! - [`credentials`] — temporary credentials and the redacting [`credentials::Secret`].
//! - [`source`] — the sidecar's own credentials (aws-config's default chain) and the STS client.
//! - [`assume`] — one AssumeRole call, role chains, and the classification of STS errors.
//! - [`schedule`] — when to refresh and when to retry: pure functions of time.
//! - [`state`] — what every role has now, shared by the refreshers and the readers.
//! - [`outputs`] — the files of the shared volume, each written atomically.
//! - [`refresher`] — the per-role loop: assume, publish, sleep until the next refresh.
//! - [`metrics`] — every Prometheus metric, in an owned registry.
//! - [`http`] — `/healthz`, `/readyz`, `/metrics`, `/status`.
//! - [`endpoint`] — the container-credentials endpoint and its token.
//! - [`healthcheck`] — the `healthcheck` command's tiny HTTP client.
//! - [`reload`] — watching the configuration file (ConfigMap symlink swaps included).
//! - [`doctor`] — `rolerelay doctor`: each step of the path checked, with causes and fixes.
//! - [`app`] — the `run` and `once` commands: start the tasks, own the shutdown order.
//! - [`logging`] — JSON or text logs.
//! - [`clock`] — the one place that reads the wall clock.

pub mod app;
pub mod assume;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod endpoint;
pub mod healthcheck;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod outputs;
pub mod refresher;
pub mod reload;
pub mod schedule;
pub mod source;
pub mod state;
