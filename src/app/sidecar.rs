//! The running sidecar: every role's loop, and the reloads (the watched file, SIGHUP) applied
//! to them without a restart.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, info, warn};

use super::SHUTDOWN_GRACE;
use crate::access::Access;
use crate::assume::Assumer;
use crate::config::diff::{diff, running_after_reload, Diff};
use crate::config::{Config, ConfigArgs, RoleName};
use crate::context::{Context, LiveSettings};
use crate::memory::FirstRound;
use crate::outputs::Layout;
use crate::refresher::RoleLoop;
use crate::reload;
use crate::schedule::Policy;
use crate::source;
use crate::state::ReloadStatus;

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

/// Why the configuration is read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReloadCause {
    /// The watched file changed: a file that changes nothing is not worth a word.
    FileChanged,
    /// SIGHUP: reloaded and reported even when nothing changed, so the request is seen.
    Hangup,
}

/// The running roles and the configuration they came from.
pub(super) struct Sidecar {
    pub(super) config: Config,
    args: ConfigArgs,
    pub(super) ctx: Context,
    /// The endpoint's tokens: reissued at a reload, for the clients it leaves.
    access: Arc<Access>,
    pub(super) loops: HashMap<RoleName, RoleTask>,
}

/// One role's running loop and the switch that stops it.
pub(super) struct RoleTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sidecar {
    pub(super) fn new(
        config: Config,
        args: ConfigArgs,
        ctx: Context,
        access: Arc<Access>,
    ) -> Sidecar {
        Sidecar {
            config,
            args,
            ctx,
            access,
            loops: HashMap::new(),
        }
    }

    /// Starts every role's loop, then applies reloads (the watched file, SIGHUP) until
    /// `shutdown` completes. An HTTP server that ends is fatal.
    pub(super) async fn serve(
        &mut self,
        shutdown: impl Future<Output = ()>,
        servers: &mut JoinSet<()>,
    ) -> anyhow::Result<()> {
        let (trigger, mut triggered) = mpsc::channel(1);
        // Held for as long as it should watch; replaced after each reload.
        let mut _watcher = watch_config(&self.args, &trigger);
        let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        self.start_all();
        info!(roles = self.config.roles.len(), directory = %self.config.outputs.directory.display(), "rolerelay started");
        tokio::pin!(shutdown);
        loop {
            let cause = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                Some(()) = triggered.recv() => {
                    reload::debounce(&mut triggered).await;
                    ReloadCause::FileChanged
                }
                Some(()) = hangup.recv() => ReloadCause::Hangup,
                Some(ended) = servers.join_next() => anyhow::bail!("an HTTP server ended unexpectedly: {ended:?}"),
            };
            self.reload(cause).await;
            // A link may point elsewhere now: watch what it points to (new before old goes).
            _watcher = watch_config(&self.args, &trigger);
        }
    }

    pub(super) fn start_all(&mut self) {
        let round = Arc::new(FirstRound::new(self.config.roles.len()));
        for role in self.config.roles.clone() {
            let role_loop = RoleLoop::new(self.ctx.clone(), role).in_first_round(round.clone());
            self.start(role_loop);
        }
    }

    fn start(&mut self, role_loop: RoleLoop) {
        let (stop, stopped) = watch::channel(false);
        let name = role_loop.name().clone();
        let task = tokio::spawn(role_loop.run(stopped));
        self.loops.insert(name, RoleTask { stop, task });
    }

    /// Stops some loops together, letting a write in progress finish; one that does not stop
    /// within the grace period is aborted.
    async fn stop(&mut self, names: &[&RoleName]) {
        let stopping: Vec<RoleTask> = names.iter().filter_map(|n| self.loops.remove(*n)).collect();
        for role in &stopping {
            let _ = role.stop.send(true);
        }
        for role in stopping {
            let abort = role.task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, role.task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    pub(super) async fn stop_all(&mut self) {
        for role in self.loops.values() {
            let _ = role.stop.send(true);
        }
        for (_, role) in self.loops.drain() {
            let _ = role.task.await;
        }
    }

    /// Loads the configuration again and applies what changed. An invalid file changes nothing.
    pub(super) async fn reload(&mut self, cause: ReloadCause) {
        let new = match Config::load(&self.args) {
            Ok(new) => new,
            Err(e) => {
                // Status and log first, the counter last: whoever sees it grow finds the rest.
                // /status names where the file is wrong, not the value: it answers whoever
                // reaches server.listen (a DNS-rebinding page too), and a value may be private.
                self.ctx.state.set_reload(ReloadStatus {
                    time: self.ctx.clock.now(),
                    error: Some(format!("{}: refused (the log says why)", e.at)),
                    restart_needed: vec![],
                });
                error!(error = %e, "configuration reload refused; the running configuration stays");
                self.ctx.metrics.record_reload_refused();
                return;
            }
        };
        let changes = diff(&self.config, &new);
        let after_error = self.ctx.state.reload().is_some_and(|r| r.error.is_some());
        let nothing = changes.is_empty() && changes.restart_needed.is_empty();
        if nothing && cause == ReloadCause::FileChanged && !after_error {
            debug!("the configuration file changed nothing");
            return;
        }
        info!(
            added = changes.added.len(),
            removed = changes.removed.len(),
            changed = changes.changed.len(),
            kept = changes.kept.len(),
            clients = changes.clients,
            "applying the reloaded configuration"
        );
        if !changes.restart_needed.is_empty() {
            warn!(keys = ?changes.restart_needed, "these settings changed but apply only after a restart");
        }
        let restart_needed = changes.restart_needed.clone();
        self.apply(new, changes).await;
        self.ctx.state.set_reload(ReloadStatus {
            time: self.ctx.clock.now(),
            error: None,
            restart_needed,
        });
        self.ctx.metrics.record_reload_applied();
    }

    /// Applies a valid reloaded configuration: new STS client or schedule, roles stopped,
    /// restarted and started, files rewritten.
    async fn apply(&mut self, new: Config, changes: Diff) {
        let running = running_after_reload(&self.config, new);
        let ctx = self.ctx.clone();
        if changes.sts || changes.refresh {
            let assumer = match changes.sts {
                true => Assumer::new(
                    source::sts_client(&running).await,
                    running.refresh.timeout.0,
                ),
                false => ctx
                    .settings()
                    .assumer
                    .with_timeout(running.refresh.timeout.0),
            };
            ctx.set_settings(LiveSettings {
                assumer,
                policy: Policy::from(&running.refresh),
            });
        }
        // A role whose own settings changed gets new credentials from scratch (the old ones may be
        // for another role now). One changed only through `sts`/`source` keeps serving what it
        // has while its new loop assumes it again at once.
        let replaced: Vec<RoleName> = changes
            .changed
            .iter()
            .filter(|r| !self.config.roles.contains(r))
            .map(|r| r.name.clone())
            .collect();
        let stopping: Vec<&RoleName> = changes
            .removed
            .iter()
            .chain(changes.changed.iter().map(|r| &r.name))
            .collect();
        self.stop(&stopping).await;
        for name in changes.removed.iter().chain(&replaced) {
            ctx.state.remove_role(name);
        }
        for name in &changes.removed {
            ctx.metrics.remove_role(name.as_str());
        }
        let rewrite = (changes.outputs || changes.sts)
            .then(|| (running.outputs.clone(), running.sts.region.clone()));
        // A client's token stops opening what it lost before its files go.
        let tokens = self
            .config
            .credentials_endpoint
            .enabled
            .then(|| self.access.issue(&running.clients));
        ctx.metrics.set_client_label(self.access.by_client());
        for gone in self
            .config
            .clients
            .iter()
            .filter(|c| !running.clients.iter().any(|n| n.name == c.name))
        {
            ctx.metrics.remove_client(gone.name.as_str());
        }
        ctx.state.set_clients(&running.clients);
        let layout = Layout {
            roles: running.roles.clone(),
            clients: running.clients.clone(),
            tokens,
        };
        let failures = ctx
            .outputs
            .apply_reload(&ctx.state, replaced, layout, rewrite, ctx.clock.now())
            .await;
        for failure in failures {
            warn!(output = %failure.output, error = %failure, "could not update an output after the reload");
        }
        for role in changes.added.iter().chain(&changes.changed) {
            ctx.state.add_role(role);
            ctx.metrics.add_role(role.name.as_str());
            self.start(RoleLoop::new(ctx.clone(), role.clone()));
        }
        self.config = running;
    }
}
