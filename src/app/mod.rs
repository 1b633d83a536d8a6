//! The `run` and `once` commands: build the context, start the tasks, apply reloads, and own
//! the shutdown order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::access::Access;
use crate::assume::Assumer;
use crate::clock::Clock;
use crate::config::{Config, ConfigArgs, RoleConfig, RoleName};
use crate::context::{Context, LiveSettings};
use crate::http::endpoint::{self, Endpoint};
use crate::http::{self, status, View};
use crate::metrics::Metrics;
use crate::outputs::{Outputs, Prepared, WriteFailure};
use crate::refresher::{RefreshError, RoleLoop};
use crate::schedule::{self, Failure, Policy};
use crate::source;
use crate::state::State;
use crate::systemd::{self, Notifier};

mod sidecar;

use sidecar::Sidecar;

/// How long tasks get to finish a write in progress after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Builds what the refresh loops share, with `assumer` calling STS: the state, the metrics and
/// the outputs, whose directory is prepared (stale files of an earlier run removed).
pub fn context(config: &Config, assumer: Assumer, clock: Clock) -> anyhow::Result<Context> {
    let state = State::new(&config.roles, config.refresh.min_remaining.map(|d| d.0));
    state.set_clients(&config.clients);
    let outputs = Arc::new(Outputs::new(
        &config.outputs,
        &config.sts.region,
        &config.roles,
        &config.clients,
    ));
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
    for role in &config.roles {
        metrics.add_role(role.name.as_str());
    }
    let prepared = outputs
        .blocking_prepare(&state, clock.now())
        .with_context(|| {
            format!(
                "cannot create the output directory {}",
                config.outputs.directory.display()
            )
        })?;
    report_prepared(&prepared, &metrics, config);
    let settings = LiveSettings {
        assumer,
        policy: Policy::from(&config.refresh),
    };
    let concurrency = config.refresh.concurrency;
    Ok(Context::new(
        settings,
        outputs,
        state,
        concurrency,
        metrics,
        clock,
    ))
}

/// Logs what preparing the output directory removed and left, and counts a failed write as
/// every role's of its directory, as the state records it: nothing found there stops the start.
fn report_prepared(prepared: &Prepared, metrics: &Metrics, config: &Config) {
    if prepared.removed > 0 {
        info!(
            removed = prepared.removed,
            "removed temporary and expired files left by an earlier run"
        );
    }
    for (path, error) in &prepared.left {
        warn!(path = %path.display(), error = %error, "left in place in the output directory");
    }
    for failure in &prepared.failures {
        warn!(output = %failure.output, error = %failure, "could not write an output; retried with the roles' writes");
        count_for_its_roles(metrics, config, failure);
    }
}

/// Counts a failed write of a shared file (`config`, a token) once for each role of its
/// directory (a client's, else the top level's), whose readiness it holds back.
fn count_for_its_roles(metrics: &Metrics, config: &Config, failure: &WriteFailure) {
    let dir = failure.path.parent();
    let client = config
        .clients
        .iter()
        .find(|c| Some(c.directory.as_path()) == dir);
    let roles: Vec<&RoleName> = match client {
        Some(client) => client.roles.iter().collect(),
        None => config.roles.iter().map(|r| &r.name).collect(),
    };
    for role in roles {
        metrics.record_write_failures(role.as_str(), std::slice::from_ref(failure));
    }
}

/// The context of the real sidecar: STS with the source credentials, and the wall clock.
async fn start_context(config: &Config) -> anyhow::Result<Context> {
    let client = source::sts_client(config).await;
    let assumer = Assumer::new(client, config.refresh.timeout.0);
    context(config, assumer, Clock::System)
}

/// `rolerelay run`: refreshes every role and serves HTTP until `shutdown` completes, applying
/// changes of the configuration file (watched, or on SIGHUP) as they come; then stops the loops
/// and servers, lets a write in progress finish, and removes the files if `remove_on_exit` is set.
pub async fn run(
    config: Config,
    args: ConfigArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let (stop_servers, servers_stopped) = watch::channel(false);
    let access = Arc::new(Access::new());
    // Start-up may wait (a slow disk, a certificate store); a signal meanwhile ends it.
    let start = async {
        let ctx = start_context(&config).await?;
        let servers = start_servers(&config, &ctx, &access, servers_stopped).await?;
        anyhow::Ok((ctx, servers))
    };
    let (ctx, mut servers) = tokio::select! {
        () = &mut shutdown => {
            info!("stopped during start-up");
            return Ok(());
        }
        started = start => started?,
    };
    // Under a `Type=notify` systemd unit: ready, status and watchdog as the roles go.
    let notifier =
        Notifier::from_env().map(|n| tokio::spawn(n.watch(ctx.state.clone(), ctx.clock.clone())));
    let mut sidecar = Sidecar::new(config, args, ctx, access);
    let served = sidecar.serve(shutdown, &mut servers).await;
    if let Some(task) = notifier {
        task.abort();
        systemd::stopping();
    }
    served?;
    info!("shutting down");
    let _ = stop_servers.send(true);
    let stopped = tokio::time::timeout(SHUTDOWN_GRACE, async {
        sidecar.stop_all().await;
        while servers.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_err() {
        warn!(
            "the refresh loops and servers did not stop within {}s",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    if sidecar.config.outputs.remove_on_exit {
        sidecar
            .ctx
            .outputs
            .remove_all()
            .await
            .context("cannot remove the output files")?;
        info!("removed the output files");
    }
    Ok(())
}

/// Binds both listeners (a busy port fails the start, naming its key), issues and writes the
/// endpoint's tokens (a failed write does not), and serves until `stopped` turns true.
async fn start_servers(
    config: &Config,
    ctx: &Context,
    access: &Arc<Access>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinSet<()>> {
    let status_listener = bind(config.server.listen, "server.listen").await?;
    let endpoint = &config.credentials_endpoint;
    let endpoint_listener = match endpoint.enabled {
        true => Some(bind(endpoint.listen, "credentials_endpoint.listen").await?),
        false => None,
    };
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let view = View {
        state: ctx.state.clone(),
        metrics: ctx.metrics.clone(),
        clock: ctx.clock.clone(),
    };
    // New tokens at every start, written before either server answers: a client that sees the
    // sidecar up never reads a token of an earlier run. A write that fails (a full disk) is
    // retried with the roles' writes; meanwhile the endpoint serves whoever has the token, which
    // is no one.
    if endpoint_listener.is_some() {
        let tokens = access.issue(&config.clients);
        ctx.metrics.set_client_label(access.by_client());
        let failed = ctx
            .outputs
            .write_tokens(&ctx.state, &endpoint.token_file, tokens)
            .await;
        for failure in failed {
            warn!(output = %failure.output, error = %failure, "could not write an endpoint token file; retried with the roles' writes");
            count_for_its_roles(&ctx.metrics, config, &failure);
        }
    }
    let mut servers = JoinSet::new();
    // The bound address, which names the port chosen for `:0`.
    let bound = |listener: &TcpListener, configured: SocketAddr| {
        listener.local_addr().unwrap_or(configured)
    };
    info!(listen = %bound(&status_listener, config.server.listen), "serving /healthz /readyz /servingz /metrics /status");
    let status_view = view.clone();
    servers.spawn(http::serve(
        status_listener,
        move |request| status::answer(&status_view, request),
        until_stopped(stopped.clone()),
    ));
    if let Some(listener) = endpoint_listener {
        let token_file = match config.clients.is_empty() {
            true => config
                .outputs
                .directory
                .join(&endpoint.token_file)
                .display()
                .to_string(),
            false => format!("{} in each client's directory", endpoint.token_file),
        };
        info!(listen = %bound(&listener, endpoint.listen), token_file = %token_file,
            "serving the container-credentials endpoint at /v1/credentials/<role>");
        let served = Endpoint {
            view,
            access: access.clone(),
        };
        servers.spawn(http::serve(
            listener,
            move |request| endpoint::answer(&served, request),
            until_stopped(stopped),
        ));
    }
    Ok(servers)
}

/// Binds a listener, naming the configuration key in the error.
async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {key} {addr}"))
}

/// `rolerelay once`: assumes every role once (concurrently, within `refresh.concurrency`) and
/// writes every output; retries the roles that failed, with the configured backoff, for up to
/// `retry_for`. Returns the roles that still failed, with why.
pub async fn once(
    config: Config,
    retry_for: Duration,
) -> anyhow::Result<Vec<(RoleName, RefreshError)>> {
    let ctx = start_context(&config).await?;
    once_retrying(&ctx, &config.roles, retry_for).await
}

/// Refreshes each of `roles` once, and the failed ones again after a backoff until they succeed
/// or `retry_for` has passed.
async fn once_retrying(
    ctx: &Context,
    roles: &[RoleConfig],
    retry_for: Duration,
) -> anyhow::Result<Vec<(RoleName, RefreshError)>> {
    let deadline = tokio::time::Instant::now() + retry_for;
    let mut pending = roles.to_vec();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let failed = refresh_each_once(ctx, &pending).await?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if failed.is_empty() || left.is_zero() {
            return Ok(failed);
        }
        // Throttled roles wait for the throttle's window: a fleet of init containers restarting
        // together would otherwise keep the account's quota spent.
        let failure = match failed.iter().any(|(_, e)| e.is_throttle()) {
            true => Failure::Throttled,
            false => Failure::Error,
        };
        let wait = schedule::backoff(&ctx.settings().policy, failure, attempts, fastrand::f64());
        info!(
            roles = failed.len(),
            retry_in_ms = wait.min(left).as_millis() as u64,
            "retrying the roles that failed"
        );
        tokio::time::sleep(wait.min(left)).await;
        pending.retain(|role| failed.iter().any(|(name, _)| *name == role.name));
    }
}

/// Refreshes each of `roles` once, concurrently; returns the roles that failed, by name.
async fn refresh_each_once(
    ctx: &Context,
    roles: &[RoleConfig],
) -> anyhow::Result<Vec<(RoleName, RefreshError)>> {
    let mut tasks = JoinSet::new();
    for role in roles.iter().cloned() {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let name = role.name.clone();
            (name, RoleLoop::new(ctx, role).refresh().await)
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.context("a refresh task panicked")?;
        if let Err(e) = result {
            warn!(role = %name, error = %e, "refresh failed");
            failed.push((name, e));
        }
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(failed)
}

#[cfg(test)]
mod tests;
