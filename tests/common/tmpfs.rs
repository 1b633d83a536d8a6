//! A small filesystem of its own for a test's output directory, to fill it or make it read-only.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// A tmpfs mounted for the test, unmounted when dropped. Needs root, as CI runs.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with `options` (`size=256k,mode=0755`) at `path`, created if missing.
    pub fn mount(path: PathBuf, options: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "mounting a tmpfs needs root (scripts/test runs as root, as CI does)"
        );
        Tmpfs(path)
    }

    /// Remounts with `options`; read-only fails while a file is open for writing (the sidecar
    /// writes every second), so it is retried.
    pub fn remount(&self, options: &str) {
        wait_for(
            &format!("a remount {options}"),
            Duration::from_secs(10),
            || {
                Command::new("mount")
                    .args(["-o", &format!("remount,{options}")])
                    .arg(&self.0)
                    .stderr(Stdio::null())
                    .status()
                    .unwrap()
                    .success()
            },
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
