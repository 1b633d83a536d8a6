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

/// Events closer together than this are one change (the kubelet and editors write in bursts).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches the directory of `path` and sends on `tx` whenever the file (or a ConfigMap's
/// `..data` link) may have changed. If `path` is a link to a file elsewhere, that file's
/// directory is watched too, so an edit of the target reloads. The watch lasts as long as the
/// returned watcher.
pub fn watch(path: &Path, tx: mpsc::Sender<()>) -> notify::Result<RecommendedWatcher> {
    let (dir, name) = split(path);
    // The link's target, unless it lies in a kubelet's `..<timestamp>` directory, which `..data`
    // already stands for (and which is deleted at the next update).
    let target = std::fs::canonicalize(path)
        .ok()
        .map(|real| split(&real))
        .filter(|(target_dir, _)| {
            let kubelet = target_dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".."));
            !kubelet && std::fs::canonicalize(&dir).ok().as_ref() != Some(target_dir)
        });
    let watched_target = target.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            let file = p.file_name();
            file.is_some_and(|n| n == name.as_os_str() || n == "..data")
                || watched_target
                    .as_ref()
                    .is_some_and(|(d, n)| file == Some(n.as_os_str()) && p.parent() == Some(d))
        });
        if relevant {
            // A full channel already holds a pending reload: nothing is lost by dropping this.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    if let Some((target_dir, _)) = &target {
        watcher.watch(target_dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
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
