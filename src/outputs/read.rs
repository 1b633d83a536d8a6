//! Reading a file of the shared volume, where anything that mounts it may have put something
//! else under the name: a link to a device or to another file, a FIFO that blocks the open for
//! good, a file of any size. The read follows no link, never waits, takes only a regular file,
//! and stops at a small cap.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most bytes read from one file: far above any file rolerelay writes (a role's JSON is
/// about 1.5 KiB), far below what would hurt the process.
pub const MAX_BYTES: u64 = 64 * 1024;

/// The contents of `path`, if it is a regular file (not a link to one) of at most
/// [`MAX_BYTES`]. The error keeps its `io::ErrorKind` and never quotes the contents.
pub fn regular_file(path: &Path) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
    // O_NOCTTY: a terminal device is never made the controlling terminal.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link, which is not followed",
            ),
            _ => e,
        })?;
    // The type of what was opened, not of what the name pointed to a moment before.
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_BYTES) as usize);
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is larger than {} KiB", MAX_BYTES / 1024),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"{}\n").unwrap();
        assert_eq!(regular_file(&path).unwrap(), b"{}\n");
        let full = vec![b'x'; MAX_BYTES as usize];
        fs::write(&path, &full).unwrap();
        assert_eq!(regular_file(&path).unwrap(), full);
    }

    #[test]
    fn a_file_over_the_cap_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        // Sparse: a terabyte that takes no space, and that an uncapped read would try to hold.
        fs::File::create(&path).unwrap().set_len(1 << 40).unwrap();
        let err = regular_file(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 64 KiB"), "{err}");
    }

    #[test]
    fn a_link_is_not_followed_even_to_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("target"), b"{}").unwrap();
        for (name, to) in [
            ("to-file", dir.path().join("target")),
            ("to-zero", "/dev/zero".into()),
        ] {
            let link = dir.path().join(name);
            symlink(&to, &link).unwrap();
            let err = regular_file(&link).unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{name}: {err}");
        }
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for path in [fifo, dir.path().to_path_buf()] {
            let err = regular_file(&path).unwrap_err();
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
    }
}
