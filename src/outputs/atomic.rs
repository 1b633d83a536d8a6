//! Atomic file replacement: a reader sees the old file or the new one, never a torn, empty or
//! more permissive one.
//!
//! The new content goes to a temporary file in the same directory, created with the final mode
//! (and group), written and fsynced, then renamed over the old name; the directory is fsynced so
//! the rename survives a crash. Anyone who mounts the directory can plant names in it, so the
//! temporary name is random and a taken one is passed over.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Temporary files start with this; any left behind by a crash are removed at start.
pub const TEMP_PREFIX: &str = ".rolerelay-tmp-";

/// Names tried for one temporary file. Each has 64 random bits, so a name is taken only when
/// someone planted it, and a planted name costs a retry, never the write.
const NAME_TRIES: usize = 8;

/// Replaces `dir/name` with `contents`, with exactly `mode` and, if given, the group `group`.
/// The file stays this process's: one owned by the application would be the application's to
/// rewrite or loosen.
pub fn write(
    dir: &Path,
    name: &str,
    contents: &[u8],
    mode: u32,
    group: Option<u32>,
) -> io::Result<()> {
    write_each(dir, &[(name, contents)], mode, group)
        .pop()
        .expect("one result for one file")
}

/// Replaces each `dir/name` with its contents as [`write`] does, in order, with one fsync of
/// the directory for all of them (a role's two files cost three fsyncs, not four). One result
/// per file; a failed fsync of the directory is the failure of every file renamed before it.
pub fn write_each(
    dir: &Path,
    files: &[(&str, &[u8])],
    mode: u32,
    group: Option<u32>,
) -> Vec<io::Result<()>> {
    let mut results: Vec<io::Result<()>> = files
        .iter()
        .map(|(name, contents)| replace(dir, name, contents, mode, group))
        .collect();
    if results.iter().any(Result::is_ok) {
        if let Err(e) = File::open(dir).and_then(|dir| dir.sync_all()) {
            for result in results.iter_mut().filter(|r| r.is_ok()) {
                *result = Err(io::Error::new(e.kind(), e.to_string()));
            }
        }
    }
    results
}

/// A new file in place of `dir/name`: written to a temporary one, fsynced, renamed over it.
fn replace(
    dir: &Path,
    name: &str,
    contents: &[u8],
    mode: u32,
    group: Option<u32>,
) -> io::Result<()> {
    let (tmp, file) = create_temp(dir, name, mode)?;
    let result = fill(file, contents, mode, group).and_then(|()| fs::rename(&tmp, dir.join(name)));
    if result.is_err() {
        // Created above, so ours to remove; a failed rename left it in place.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a new file `dir/.rolerelay-tmp-<name>.<random>` with `mode` (before the umask) and
/// returns its path. It is never something already there: a taken name, which only someone
/// else can have made, is neither opened, followed nor removed, but passed over for another.
pub fn create_temp(dir: &Path, name: &str, mode: u32) -> io::Result<(PathBuf, File)> {
    create_temp_with(dir, name, mode, random_suffix)
}

fn create_temp_with(
    dir: &Path,
    name: &str,
    mode: u32,
    mut suffix: impl FnMut() -> io::Result<String>,
) -> io::Result<(PathBuf, File)> {
    let mut taken = None;
    for _ in 0..NAME_TRIES {
        let path = dir.join(format!("{TEMP_PREFIX}{name}.{}", suffix()?));
        // create_new (O_EXCL) already refuses a link; O_NOFOLLOW says so again.
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        match created {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => taken = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(taken.expect("at least one name is tried"))
}

/// 64 bits from the operating system's generator, in hex: a name no one can guess.
fn random_suffix() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn fill(mut file: File, contents: &[u8], mode: u32, group: Option<u32>) -> io::Result<()> {
    // The umask can only have removed bits: setting `mode` now never makes the file looser than it.
    file.set_permissions(Permissions::from_mode(mode))?;
    if group.is_some() {
        std::os::unix::fs::fchown(&file, None, group)?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// Removes `dir/name` if it exists, and fsyncs the directory.
pub fn remove(dir: &Path, name: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => File::open(dir)?.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the temporary files a killed process left in `dir`; returns how many, and the entries
/// left in place with why: anything under a temporary name that is not a regular file (a
/// directory, a link, a FIFO, which rolerelay never makes) and a file that cannot be removed.
/// Neither may stop the start: the names rolerelay writes next are new ones.
pub fn remove_stale_temp_files(dir: &Path) -> (usize, Vec<(PathBuf, io::Error)>) {
    let (mut removed, mut left) = (0, Vec::new());
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return (0, vec![(dir.to_path_buf(), e)]),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                left.push((dir.to_path_buf(), e));
                continue;
            }
        };
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        // The entry's own type: a link is not followed.
        match entry.file_type() {
            Ok(kind) if kind.is_file() => match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => left.push((path, e)),
            },
            Ok(_) => left.push((
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file"),
            )),
            Err(e) => left.push((path, e)),
        }
    }
    (removed, left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn writes_with_exactly_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o640, 0o660] {
            write(dir.path(), "f", b"x", mode, None).unwrap();
            let meta = fs::metadata(dir.path().join("f")).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode);
        }
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"x");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_reader_never_sees_a_torn_or_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let body = |i: u32| {
            format!(
                "{{\"generation\":{i},\"pad\":\"{}\"}}",
                "x".repeat(4096 + (i as usize % 7) * 100)
            )
        };
        write(dir.path(), "f.json", body(0).as_bytes(), 0o640, None).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, done) = (dir.path().join("f.json"), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let text = fs::read_to_string(&path).unwrap();
                    let value: serde_json::Value = serde_json::from_str(&text).expect("torn read");
                    assert!(value["generation"].is_u64());
                    assert_eq!(
                        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                        0o640
                    );
                    reads += 1;
                }
                reads
            })
        };
        for i in 1..=2000 {
            write(dir.path(), "f.json", body(i).as_bytes(), 0o640, None).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 0);
        let last: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join("f.json")).unwrap()).unwrap();
        assert_eq!(last["generation"], 2000);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "f", b"old", 0o640, None).unwrap();
        // A directory in the way makes the rename fail.
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/inner"), b"").unwrap();
        assert!(write(dir.path(), "d", b"new", 0o640, None).is_err());
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn each_file_of_a_batch_has_its_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way makes the second rename fail, not the first nor the third.
        fs::create_dir(dir.path().join("b")).unwrap();
        fs::write(dir.path().join("b/inner"), b"").unwrap();
        let files: [(&str, &[u8]); 3] = [("a", b"1"), ("b", b"2"), ("c", b"3")];
        let results = write_each(dir.path(), &files, 0o600, None);
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, true, false]);
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"1");
        assert_eq!(fs::read(dir.path().join("c")).unwrap(), b"3");
        for name in ["a", "c"] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            3,
            "no temporary file left"
        );
    }

    #[test]
    fn the_group_is_set_before_the_file_appears_and_the_file_stays_ours() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        match write(dir.path(), "f", b"x", 0o640, Some(4343)) {
            Ok(()) => {
                let meta = fs::metadata(dir.path().join("f")).unwrap();
                // SAFETY: geteuid has no preconditions and cannot fail.
                assert_eq!((meta.uid(), meta.gid()), (unsafe { libc::geteuid() }, 4343));
            }
            // Not root nor in the group: chown is refused, and then nothing is written at all.
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
                assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
            }
        }
    }

    #[test]
    fn stale_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("{TEMP_PREFIX}x.json.1.1")), b"half").unwrap();
        fs::write(dir.path().join("keep"), b"").unwrap();
        let (removed, left) = remove_stale_temp_files(dir.path());
        assert_eq!((removed, left.len()), (1, 0));
        assert!(dir.path().join("keep").exists());
    }

    #[test]
    fn what_is_not_a_file_under_a_temporary_name_is_left_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let planted = dir.path().join(format!("{TEMP_PREFIX}x"));
        fs::create_dir_all(planted.join("inner")).unwrap();
        let link = dir.path().join(format!("{TEMP_PREFIX}link"));
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        fs::write(dir.path().join("elsewhere"), b"kept").unwrap();
        fs::write(dir.path().join(format!("{TEMP_PREFIX}f.1.1")), b"half").unwrap();
        let (removed, mut left) = remove_stale_temp_files(dir.path());
        left.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(removed, 1);
        let paths: Vec<_> = left.iter().map(|(path, _)| path.clone()).collect();
        assert_eq!(paths, [link.clone(), planted.clone()]);
        assert!(left[0].1.to_string().contains("not a regular file"));
        assert!(planted.join("inner").is_dir() && link.symlink_metadata().is_ok());
        assert_eq!(fs::read(dir.path().join("elsewhere")).unwrap(), b"kept");
    }

    #[test]
    fn a_taken_temporary_name_is_passed_over_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("victim"), b"precious").unwrap();
        let planted_file = dir.path().join(format!("{TEMP_PREFIX}f.planted"));
        fs::write(&planted_file, b"theirs").unwrap();
        let planted_link = dir.path().join(format!("{TEMP_PREFIX}f.linked"));
        std::os::unix::fs::symlink(dir.path().join("victim"), &planted_link).unwrap();
        let mut names = ["planted", "linked", "fresh"].into_iter();
        let (path, _) = create_temp_with(dir.path(), "f", 0o600, || {
            Ok(names.next().unwrap().to_string())
        })
        .unwrap();
        assert_eq!(path, dir.path().join(format!("{TEMP_PREFIX}f.fresh")));
        assert_eq!(fs::read(&planted_file).unwrap(), b"theirs");
        assert_eq!(fs::read(dir.path().join("victim")).unwrap(), b"precious");

        let err = create_temp_with(dir.path(), "f", 0o600, || Ok("planted".into())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            fs::read(&planted_file).unwrap(),
            b"theirs",
            "not removed either"
        );
    }

    #[test]
    fn temporary_names_are_random() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = create_temp(dir.path(), "f", 0o600).unwrap();
        let (b, _) = create_temp(dir.path(), "f", 0o600).unwrap();
        assert_ne!(a, b);
        let suffix = a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(suffix.len(), 16, "{suffix}");
    }
}
