//! The `run` and `once` commands: build the shared parts, start the tasks, apply reloads, and own
//! the shutdown order.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, info, warn};

use crate::assume::Assumer;
use crate::clock;
use crate::config::diff::{diff, running_after_reload, Diff};
use crate::config::{Config, ConfigArgs, RoleConfig, RoleName};
use crate::endpoint::{self, EndpointContext};
use crate::http;
use crate::metrics::Metrics;
use crate::outputs::Outputs;
use crate::refresher::{self, Live, RefreshError, Shared};
use crate::reload;
use crate::schedule::Policy;
use crate::source;
use crate::state::{ReloadStatus, State};

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
        metrics.add_role(role.name.as_str());
    }
    let removed = outputs.prepare(&state, clock::now()).with_context(|| {
        format!(
            "cannot prepare the output directory {}",
            config.outputs.directory.display()
        )
    })?;
    if removed > 0 {
        info!(
            removed,
            "removed temporary and expired files left by an earlier run"
        );
    }
    let client = source::sts_client(config).await;
    let live = Live {
        assumer: Assumer::new(client, config.refresh.timeout.0),
        policy: Policy::from(&config.refresh),
    };
    Ok(Shared {
        live: Arc::new(RwLock::new(live)),
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

/// `rolerelay run`: refreshes every role and serves HTTP until `shutdown` completes, applying
/// changes of the configuration file (watched, or on SIGHUP) as they come; then stops the loops
/// and servers, lets a write in progress finish, and removes the files if `remove_on_exit` is set.
pub async fn run(
    config: Config,
    args: ConfigArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let shared = shared(&config).await?;
    let status_listener = bind(config.server.listen, "server.listen").await?;
    let endpoint = config.credentials_endpoint.clone();
    let endpoint_listener = match endpoint.enabled {
        true => Some(bind(endpoint.listen, "credentials_endpoint.listen").await?),
        false => None,
    };

    let (stop_servers, servers_stopped) = watch::channel(false);
    let stop_signal = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut servers = JoinSet::new();
    info!(listen = %config.server.listen, "serving /healthz /readyz /metrics /status");
    servers.spawn(http::serve(
        status_listener,
        http::status_routes(shared.clone()),
        stop_signal(servers_stopped.clone()),
    ));
    if let Some(listener) = endpoint_listener {
        // A new token at every start: written before the endpoint answers anything.
        let token = Arc::new(endpoint::new_token());
        let (outputs, t, name) = (
            shared.outputs.clone(),
            token.clone(),
            endpoint.token_file.clone(),
        );
        tokio::task::spawn_blocking(move || outputs.write_token(&name, &t))
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
            stop_signal(servers_stopped),
        ));
    }

    let (trigger, mut triggered) = mpsc::channel(1);
    // Held for as long as it should watch; replaced after each reload.
    let mut _watcher = watch_config(&args, &trigger);
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;

    let mut sidecar = Sidecar {
        config,
        args,
        shared,
        loops: HashMap::new(),
    };
    for role in sidecar.config.roles.clone() {
        sidecar.start(role);
    }
    info!(roles = sidecar.config.roles.len(), directory = %sidecar.config.outputs.directory.display(), "rolerelay started");

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = triggered.recv() => {
                reload::debounce(&mut triggered).await;
                sidecar.reload(false).await;
                // A link may point elsewhere now: watch what it points to (new before old goes).
                _watcher = watch_config(&sidecar.args, &trigger);
            }
            Some(()) = hangup.recv() => {
                sidecar.reload(true).await;
                _watcher = watch_config(&sidecar.args, &trigger);
            }
            Some(ended) = servers.join_next() => anyhow::bail!("an HTTP server ended unexpectedly: {ended:?}"),
        }
    }
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
        let outputs = sidecar.shared.outputs.clone();
        tokio::task::spawn_blocking(move || outputs.remove_all())
            .await?
            .context("cannot remove the output files")?;
        info!("removed the output files");
    }
    Ok(())
}

/// Watches the configuration file, if there is one, for reloads; without a watch, SIGHUP still
/// reloads.
fn watch_config(
    args: &ConfigArgs,
    trigger: &mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    let path = args
        .config
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())?;
    match reload::watch(path, trigger.clone()) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot watch the configuration file; reload with SIGHUP");
            None
        }
    }
}

/// The running roles and the configuration they came from.
struct Sidecar {
    config: Config,
    args: ConfigArgs,
    shared: Shared,
    loops: HashMap<RoleName, Loop>,
}

/// One role's refresh loop and the switch that stops it.
struct Loop {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sidecar {
    fn start(&mut self, role: RoleConfig) {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(refresher::run(self.shared.clone(), role.clone(), stopped));
        self.loops.insert(role.name, Loop { stop, task });
    }

    /// Stops one loop, letting a write in progress finish.
    /// Stops some loops together, letting a write in progress finish; one that does not stop
    /// within the grace period is aborted.
    async fn stop(&mut self, names: &[&RoleName]) {
        let stopping: Vec<Loop> = names.iter().filter_map(|n| self.loops.remove(*n)).collect();
        for l in &stopping {
            let _ = l.stop.send(true);
        }
        for l in stopping {
            let abort = l.task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, l.task).await.is_err() {
                abort.abort();
            }
        }
    }

    async fn stop_all(&mut self) {
        for l in self.loops.values() {
            let _ = l.stop.send(true);
        }
        for (_, l) in self.loops.drain() {
            let _ = l.task.await;
        }
    }

    /// Loads the configuration again and applies what changed. An invalid file changes nothing.
    /// `explicit` (SIGHUP) reloads even when nothing changed, so the request is seen.
    async fn reload(&mut self, explicit: bool) {
        let metrics = self.shared.metrics.clone();
        let new = match Config::load(&self.args) {
            Ok(new) => new,
            Err(e) => {
                // Status and log first, the counter last: whoever sees it grow finds the rest.
                let status = ReloadStatus {
                    time: clock::now(),
                    error: Some(e.to_string()),
                    restart_needed: vec![],
                };
                self.shared.state.set_reload(status);
                error!(error = %e, "configuration reload refused; the running configuration stays");
                metrics
                    .config_reloads_total
                    .with_label_values(&["error"])
                    .inc();
                return;
            }
        };
        let d = diff(&self.config, &new);
        let after_error = self
            .shared
            .state
            .reload()
            .is_some_and(|r| r.error.is_some());
        if d.is_empty() && d.restart_needed.is_empty() && !explicit && !after_error {
            debug!("the configuration file changed nothing");
            return;
        }
        info!(
            added = d.added.len(),
            removed = d.removed.len(),
            changed = d.changed.len(),
            kept = d.kept.len(),
            "applying the reloaded configuration"
        );
        if !d.restart_needed.is_empty() {
            warn!(keys = ?d.restart_needed, "these settings changed but apply only after a restart");
        }
        let restart_needed = d.restart_needed.clone();
        self.apply(new, d).await;
        self.shared.state.set_reload(ReloadStatus {
            time: clock::now(),
            error: None,
            restart_needed,
        });
        metrics
            .config_reloads_total
            .with_label_values(&["success"])
            .inc();
    }

    async fn apply(&mut self, new: Config, d: Diff) {
        let running = running_after_reload(&self.config, new);
        let shared = self.shared.clone();
        if d.sts || d.refresh {
            let assumer = match d.sts {
                true => Assumer::new(
                    source::sts_client(&running).await,
                    running.refresh.timeout.0,
                ),
                false => shared
                    .live()
                    .assumer
                    .with_timeout(running.refresh.timeout.0),
            };
            shared.set_live(Live {
                assumer,
                policy: Policy::from(&running.refresh),
            });
        }
        // A role whose own settings changed gets new credentials from scratch (the old ones may be
        // for another role now). One changed only through `sts`/`source` keeps serving what it
        // has while its new loop assumes it again at once.
        let replaced: Vec<RoleName> = d
            .changed
            .iter()
            .filter(|r| !self.config.roles.contains(r))
            .map(|r| r.name.clone())
            .collect();
        let stopping: Vec<&RoleName> = d
            .removed
            .iter()
            .chain(d.changed.iter().map(|r| &r.name))
            .collect();
        self.stop(&stopping).await;
        for name in d.removed.iter().chain(&replaced) {
            shared.state.remove_role(name);
        }
        for name in &d.removed {
            shared.metrics.remove_role(name.as_str());
        }
        // Files: drop the removed and replaced roles' files, rewrite `config` and `credentials`,
        // apply new output settings.
        let (s, config) = (shared.clone(), running.clone());
        let changed = replaced;
        let rewrite = d.outputs || d.sts;
        let failures = tokio::task::spawn_blocking(move || {
            let now = clock::now();
            let mut failures = Vec::new();
            for name in &changed {
                failures.extend(s.outputs.withdraw(&s.state, name, now));
            }
            failures.extend(s.outputs.set_roles(&config.roles, &s.state, now));
            if rewrite {
                failures.extend(s.outputs.reconfigure(
                    &config.outputs,
                    &config.sts.region,
                    &s.state,
                    now,
                ));
            }
            failures
        })
        .await
        .expect("rewriting the outputs does not panic");
        for (output, e) in failures {
            warn!(output, error = %e, "could not update an output after the reload");
        }
        for role in d.added.iter().chain(&d.changed) {
            shared.state.add_role(role);
            shared.metrics.add_role(role.name.as_str());
            self.start(role.clone());
        }
        self.config = running;
    }
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
