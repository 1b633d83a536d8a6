//! # rolerelay
//!
//! A sidecar that assumes cross-account AWS IAM roles on a schedule and delivers always-fresh
//! credentials to the application next to it.
//!
//! # Layout
//!
//! Arrows point one way: `main` → [`app`] → [`refresher`] → [`outputs`] / [`state`] ← [`http`].
//! `scripts/check-layout` fails the build on an import cycle.
//!
//! - [`cli`] — the command line (clap; every flag has a `ROLERELAY_*` variable).
//! - [`config`] — the configuration flags, the YAML file and the defaults merged into one
//!   validated [`config::Config`].
//! - [`credentials`] — temporary credentials and the redacting [`credentials::Secret`].
//! - [`source`] — the sidecar's own credentials (aws-config's default chain) and the STS client.
//! - [`assume`] — one AssumeRole call, role chains, and the classification of STS errors.
//! - [`schedule`] — when to refresh and when to retry: pure functions of time.
//! - [`state`] — what every role has now: written by the loops, read by outputs and HTTP.
//! - [`outputs`] — the files of the shared volume (one module per format), written atomically.
//! - [`shell`] — shell-style quoting of the values written into `<role>.env` and
//!   `credential_process` lines.
//! - [`access`] — the endpoint's tokens, one per client (or one for every role), and which
//!   roles each opens.
//! - [`metrics`] — every Prometheus metric, in an owned registry, recorded through intent methods.
//! - [`context`] — what the refresh loops share: state, outputs, metrics, STS, clock.
//! - [`refresher`] — one role's loop: assume, publish, sleep until the next refresh.
//! - [`http`] — the two servers: `status` (`/healthz` `/readyz` `/metrics` `/status`) and
//!   `endpoint` (the container-credentials endpoint), reading a [`http::View`].
//! - [`systemd`] — the `Type=notify` protocol of systemd units: READY, STATUS, WATCHDOG, STOPPING.
//! - [`healthcheck`] — the `healthcheck` command's tiny HTTP client.
//! - [`status`] — `rolerelay status`: a running sidecar's `/status` as tables, through that
//!   client.
//! - [`reload`] — watching the configuration file (ConfigMap symlink swaps included).
//! - [`doctor`] — `rolerelay doctor`: each step of the path probed; hints give cause and fix.
//! - [`app`] — the `run` and `once` commands: start the tasks, apply reloads, own the shutdown order.
//! - [`logging`] — JSON or text logs.
//! - [`memory`] — giving back what a start with thousands of roles freed.
//! - [`clock`] — the one place that reads the wall clock, and the [`clock::Clock`] tests pause.

pub mod access;
pub mod app;
pub mod assume;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod credentials;
pub mod doctor;
pub mod healthcheck;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod outputs;
pub mod refresher;
pub mod reload;
pub mod schedule;
pub mod shell;
pub mod source;
pub mod state;
pub mod status;
pub mod systemd;
#[cfg(test)]
mod testing;
