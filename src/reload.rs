//! Live reconfiguration: watch the configuration file, and apply a valid change to the running
//! roles without a restart.
//!
//! A Kubernetes ConfigMap volume never writes the file: the kubelet writes a new timestamped
//! directory and swaps the `..data` symlink, so a watch on the file alone would see only a
//! delete. The watch is therefore on the file's directory, and any event naming the file or
//! `..data` triggers a reload, which reads through the symlinks. Editors that replace the file by
//! rename are covered the same way.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::warn;

/// Events closer together than this are one change (the kubelet and editors write in bursts).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches the directory of `path` and sends on `tx` whenever the file (or a ConfigMap's
/// `..data` link) may have changed. If `path` is a link, what it points to is watched too (see
/// [`link_target`]). The watch lasts as long as the returned watcher.
pub fn watch(path: &Path, tx: mpsc::Sender<()>) -> notify::Result<RecommendedWatcher> {
    let (dir, name) = split(path);
    let target = link_target(path);
    // File names only: a spurious event for a namesake in a watched directory costs a reload
    // that finds nothing changed.
    let mut names = vec![name, OsString::from("..data")];
    names.extend(target.as_ref().map(|(_, n)| n.clone()));
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let relevant = event
            .paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)));
        if relevant {
            // A full channel already holds a pending reload: nothing is lost by dropping this.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let same_dir = |d: &Path| std::fs::canonicalize(&dir).is_ok_and(|c| c == d);
    if let Some((target_dir, _)) = target.filter(|(d, _)| !same_dir(d)) {
        // The file's own directory is watched already: without this one, edits of the target
        // need SIGHUP, which is no reason to give up the rest.
        if let Err(e) = watcher.watch(&target_dir, RecursiveMode::NonRecursive) {
            warn!(directory = %target_dir.display(), error = %e,
                "cannot watch where the configuration file links to; edits there need SIGHUP");
        }
    }
    Ok(watcher)
}

/// Where a linked configuration file really lives, as the directory to watch and the file name
/// to look for there. Inside a kubelet's ConfigMap mount the file sits in a `..<timestamp>`
/// directory the next update deletes, so the mount itself is watched, for its `..data` swap.
fn link_target(path: &Path) -> Option<(PathBuf, OsString)> {
    let real = std::fs::canonicalize(path).ok()?;
    let kubelet = real.ancestors().find_map(|a| {
        let name = a.file_name()?.to_string_lossy();
        let mount = a.parent()?;
        (name.starts_with("..") && mount.join("..data").exists()).then(|| mount.to_path_buf())
    });
    Some(match kubelet {
        Some(mount) => (mount, OsString::from("..data")),
        None => split(&real),
    })
}

/// A path's directory (`.` for a bare name) and file name.
fn split(path: &Path) -> (PathBuf, OsString) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_default();
    (dir, name)
}

/// Waits out a burst: returns once no trigger arrived for [`DEBOUNCE`].
pub async fn debounce(rx: &mut mpsc::Receiver<()>) {
    while tokio::time::timeout(DEBOUNCE, rx.recv())
        .await
        .is_ok_and(|got| got.is_some())
    {}
}
