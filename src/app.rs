//! The `run` and `once` commands: build the shared parts, start the tasks, own the shutdown order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::assume::Assumer;
use crate::config::{Config, RoleName};
use crate::endpoint::{self, EndpointContext};
use crate::http::{self, StatusContext};
use crate::metrics::Metrics;
use crate::outputs::Outputs;
use crate::refresher::{self, RefreshError, Shared};
use crate::schedule::Policy;
use crate::source;
use crate::state::State;

/// How long tasks get to finish a write in progress after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Builds what the refreshers share: the state, the metrics, the outputs (directory prepared)
/// and STS.
async fn shared(config: &Config) -> anyhow::Result<Shared> {
    let state = State::new(&config.roles);
    let outputs = Arc::new(Outputs::new(
        &config.outputs,
        &config.sts.region,
        &config.roles,
    ));
    let metrics = Arc::new(Metrics::new());
    for role in &config.roles {
        metrics.add_role(role.name.as_str(), &outputs.enabled());
    }
    let removed = outputs.prepare(&state).with_context(|| {
        format!(
            "cannot prepare the output directory {}",
            config.outputs.directory.display()
        )
    })?;
    if removed > 0 {
        info!(removed, "removed temporary files left by an earlier run");
    }
    let client = source::sts_client(config).await;
    Ok(Shared {
        assumer: Assumer::new(client, config.refresh.timeout.0),
        outputs,
        state,
        limit: Arc::new(Semaphore::new(config.refresh.concurrency)),
        metrics,
    })
}

/// Binds a listener, naming the configuration key in the error (a busy port fails the start).
async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {key} {addr}"))
}

/// `rolerelay run`: refreshes every role until `shutdown` completes, then stops the loops, lets a
/// write in progress finish, and removes the files if `remove_on_exit` is set.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let shared = shared(&config).await?;
    let status_listener = bind(config.server.listen, "server.listen").await?;
    let endpoint = &config.credentials_endpoint;
    let endpoint_listener = match endpoint.enabled {
        true => Some(bind(endpoint.listen, "credentials_endpoint.listen").await?),
        false => None,
    };

    let (stop, stopped) = watch::channel(false);
    let stop_signal = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut servers = JoinSet::new();
    let status = StatusContext {
        state: shared.state.clone(),
        metrics: shared.metrics.clone(),
        min_remaining: config.refresh.min_remaining.0,
    };
    info!(listen = %config.server.listen, "serving /healthz /readyz /metrics /status");
    servers.spawn(http::serve(
        status_listener,
        http::status_routes(status),
        stop_signal(stopped.clone()),
    ));
    if let Some(listener) = endpoint_listener {
        // A new token at every start: written before the endpoint answers anything.
        let token = Arc::new(endpoint::new_token());
        let (outputs, t, name) = (
            shared.outputs.clone(),
            token.clone(),
            endpoint.token_file.clone(),
        );
        tokio::task::spawn_blocking(move || outputs.write(&name, t.expose()))
            .await?
            .map_err(anyhow::Error::msg)
            .context("cannot write the endpoint token file")?;
        let ctx = EndpointContext {
            state: shared.state.clone(),
            metrics: shared.metrics.clone(),
            token,
        };
        info!(listen = %endpoint.listen, token_file = %config.outputs.directory.join(&endpoint.token_file).display(),
            "serving the container-credentials endpoint at /v1/credentials/<role>");
        servers.spawn(http::serve(
            listener,
            endpoint::routes(ctx),
            stop_signal(stopped.clone()),
        ));
    }

    let policy = Policy::from(&config.refresh);
    let mut tasks = JoinSet::new();
    for role in &config.roles {
        tasks.spawn(refresher::run(
            shared.clone(),
            role.clone(),
            policy.clone(),
            stopped.clone(),
        ));
    }
    info!(roles = config.roles.len(), directory = %config.outputs.directory.display(), "rolerelay started");

    tokio::select! {
        _ = shutdown => info!("shutting down"),
        Some(ended) = tasks.join_next() => anyhow::bail!("a refresh loop ended unexpectedly: {ended:?}"),
        Some(ended) = servers.join_next() => anyhow::bail!("an HTTP server ended unexpectedly: {ended:?}"),
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "the refresh loops and servers did not stop within {}s",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    if config.outputs.remove_on_exit {
        let outputs = shared.outputs.clone();
        let token_file = endpoint.enabled.then(|| endpoint.token_file.clone());
        tokio::task::spawn_blocking(move || outputs.remove_all(token_file.as_slice()))
            .await?
            .context("cannot remove the output files")?;
        info!("removed the output files");
    }
    Ok(())
}

/// `rolerelay once`: assumes every role once (concurrently, within `refresh.concurrency`) and
/// writes every output. Returns the roles that failed, with why.
pub async fn once(config: Config) -> anyhow::Result<Vec<(RoleName, RefreshError)>> {
    let shared = shared(&config).await?;
    let mut tasks = JoinSet::new();
    for role in config.roles.clone() {
        let shared = shared.clone();
        tasks.spawn(async move {
            let mut duration = refresher::initial_duration(&role);
            let result = refresher::refresh(&shared, &role, &mut duration).await;
            (role.name, result)
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
