//! The doctor's look at the files: the output directory, each client's directory and token,
//! and who can read what rolerelay writes.

use std::io;
use std::path::Path;

use super::{Finding, Hint};
use crate::config::Config;
use crate::outputs::atomic;

/// The output directory: there (or creatable) and writable, and the space left.
pub(super) fn output_directory(config: &Config) -> Finding {
    let dir = &config.outputs.directory;
    let step = format!("output directory {}", dir.display());
    match writable(dir) {
        Ok(detail) => Finding::ok(step, detail),
        Err((detail, hint)) => Finding::fail(step, detail, hint),
    }
}

/// Whether `dir` exists or can be created, and can be written: what was seen, or that and the
/// hint to fix it.
fn writable(dir: &Path) -> Result<String, (String, Hint)> {
    let (there, probe_dir) = if dir.is_dir() {
        ("exists", dir)
    } else {
        // It will be created in its nearest existing ancestor, so that is where to write.
        let existing = dir.ancestors().find(|p| p.exists());
        ("will be created", existing.unwrap_or(Path::new("/")))
    };
    match write_and_remove(probe_dir) {
        Ok(()) => Ok(format!("{there}, writable, {} free", free_space(probe_dir))),
        Err(err) => Err((
            format!("{there}, not writable: {err}"),
            Hint::new(
                format!("this process (uid {}) cannot write in {}", sys::uid(), probe_dir.display()),
                "mount a writable volume there (an emptyDir in Kubernetes, a task volume in ECS), or change outputs.directory",
            ),
        )),
    }
}

/// Creates an empty file in `dir` and removes it. It is made as the outputs' temporary files
/// are (a new random name, never a link or a file already there: the directory is shared, and a
/// planted link would have the probe empty whatever it points to), so one left behind by a
/// crash is removed at the sidecar's start like theirs.
fn write_and_remove(dir: &Path) -> io::Result<()> {
    let (probe, file) = atomic::create_temp(dir, "doctor", 0o600)?;
    drop(file);
    std::fs::remove_file(&probe)
}

/// Each client's directory (writable, or creatable), its token file and its roles. The token's
/// value is never shown: whether it is there, and its length.
pub(super) fn clients(config: &Config) -> Vec<Finding> {
    let endpoint = &config.credentials_endpoint;
    config
        .clients
        .iter()
        .map(|client| {
            let step = format!("client {}", client.name);
            let roles: Vec<&str> = client.roles.iter().map(|r| r.as_str()).collect();
            let token_path = client.directory.join(&endpoint.token_file);
            let token = match (endpoint.enabled, std::fs::metadata(&token_path)) {
                (false, _) => "no token (credentials_endpoint.enabled is false)".to_string(),
                (true, Ok(meta)) => format!(
                    "token {} present ({} bytes, from the running sidecar)",
                    token_path.display(),
                    meta.len()
                ),
                (true, Err(_)) => format!(
                    "token {} not there yet (rolerelay run writes it at start)",
                    token_path.display()
                ),
            };
            let directory = format!("directory {}", client.directory.display());
            match writable(&client.directory) {
                Ok(seen) => Finding::ok(
                    step,
                    format!("{directory} {seen}; {token}; roles {}", roles.join(", ")),
                ),
                Err((seen, hint)) => Finding::fail(step, format!("{directory} {seen}"), hint),
            }
        })
        .collect()
}

pub(super) fn output_files(config: &Config) -> Finding {
    const STEP: &str = "output files";
    let outputs = &config.outputs;
    let (uid, gid) = (sys::uid(), outputs.owner.map_or(sys::gid(), |o| o.gid));
    let mode = outputs.file_mode.0;
    let detail = format!("mode {mode:04o}, owner {uid}:{gid}");
    let readers = if mode & 0o004 != 0 {
        "any user can read them".to_string()
    } else if let (Some(owner), 0o040) = (outputs.owner, mode & 0o040) {
        format!(
            "the application (uid {}) reads them as a member of group {gid}",
            owner.uid
        )
    } else if mode & 0o040 != 0 {
        format!("an application running as another user reads them only in group {gid}")
    } else if let Some(owner) = outputs.owner {
        return Finding::fail(
            STEP,
            format!("{detail}; the group may not read them"),
            Hint::new(
                format!(
                    "with outputs.owner the files stay rolerelay's, and the application (uid {}) \
                     reads them through group {gid}, which file_mode {mode:04o} leaves out",
                    owner.uid
                ),
                "give the group read: outputs.file_mode \"0640\"",
            ),
        );
    } else {
        format!("only uid {uid} can read them: an application running as another user cannot")
    };
    Finding::ok(STEP, format!("{detail}; {readers}"))
}

/// The space left on `path`'s file system, for the report: MiB, or KiB below one MiB.
fn free_space(path: &Path) -> String {
    match sys::available_bytes(path) {
        Some(bytes) if bytes >= 1 << 20 => format!("{} MiB", bytes >> 20),
        Some(bytes) => format!("{} KiB", bytes >> 10),
        None => "unknown space".into(),
    }
}

/// The few libc calls the doctor needs.
mod sys {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Bytes available to unprivileged users on the file system of `path`.
    pub fn available_bytes(path: &Path) -> Option<u64> {
        let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is valid for writes;
        // statvfs fully initialises it when it returns 0.
        let stat = unsafe {
            if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
                return None;
            }
            stat.assume_init()
        };
        Some(stat.f_bavail as u64 * stat.f_frsize as u64)
    }

    /// This process's user id.
    pub fn uid() -> u32 {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }

    /// This process's group id.
    pub fn gid() -> u32 {
        // SAFETY: getgid has no preconditions and cannot fail.
        unsafe { libc::getgid() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_probe_follows_no_planted_link_and_leaves_the_directory_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // The name the probe once took: this process's id.
        let planted = format!("{}doctor-{}", atomic::TEMP_PREFIX, std::process::id());
        std::os::unix::fs::symlink(&victim, dir.path().join(&planted)).unwrap();
        write_and_remove(dir.path()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [planted, "victim".to_string()]);
    }

    #[test]
    fn with_an_owner_the_files_are_read_through_its_group_or_not_at_all() {
        use crate::config::{FileMode, Owner};
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            crate::testing::load(&crate::testing::write_config(dir.path(), &[("a", "")]));
        config.outputs.owner = Some(Owner {
            uid: 4242,
            gid: 4343,
        });
        let finding = output_files(&config);
        assert!(finding.ok, "{finding:?}");
        assert!(
            finding
                .detail
                .contains(&format!("owner {}:4343", sys::uid())),
            "{finding:?}"
        );
        assert!(finding
            .detail
            .contains("(uid 4242) reads them as a member of group 4343"));

        config.outputs.file_mode = FileMode(0o600);
        let finding = output_files(&config);
        assert!(!finding.ok, "{finding:?}");
        assert!(finding.fix.unwrap().contains("0640"));
    }
}
