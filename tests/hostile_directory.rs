//! Black-box tests of a hostile output directory. The shared volume is writable by whatever else
//! mounts it, and an emptyDir outlives container restarts, so what is planted there stays: FIFOs
//! and device links where rolerelay reads, directories where it writes, links where `doctor`
//! probes, guessed temporary names, and a full disk. None of it may hang, crash or stop the
//! sidecar, or turn its writes against a file elsewhere.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::sidecar::Sidecar;
use common::*;

/// The memory a process may take: plenty for rolerelay, far less than reading a device would
/// take; a read without a bound stops at it (a failed allocation) rather than at the machine's.
const MEMORY_LIMIT: u64 = 256 << 20;

/// The most memory a sidecar with one role ever needs (it idles near 8 MiB).
const MODEST: u64 = 64 << 20;

/// Caps the data segment of `cmd`'s process, so reading without a bound ends in a failed
/// allocation instead of eating the machine's memory.
fn limit_memory(cmd: &mut Command) {
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            match libc::setrlimit(libc::RLIMIT_DATA, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
}

/// The peak resident memory of process `pid` so far (VmHWM), in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib << 10
}

/// Polls `f` every 50 ms; after `limit`, panics with `what` and the sidecar's log.
fn until(sidecar: &Sidecar, what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; log:\n{}",
            sidecar.running.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rolerelay run` for role `a` writing to `sb`'s `out`, with its memory capped; returns once
/// its status server answers (and panics with its log if it never does).
fn start(sb: &Sandbox, sts: &str, extra: &str) -> Sidecar {
    let (status, endpoint) = (free_port(), free_port());
    let config = sb.write(
        "config.yaml",
        &Sidecar::config_text(sb, sts, &["a"], extra, status, endpoint),
    );
    let mut cmd = sb.rolerelay();
    cmd.args(["run", "--config"]).arg(&config);
    limit_memory(&mut cmd);
    let sidecar = Sidecar {
        running: Running::start(cmd, sb.path("run.log")),
        status: format!("http://127.0.0.1:{status}"),
        endpoint: format!("http://127.0.0.1:{endpoint}"),
        out: sb.path("out"),
        config,
    };
    until(
        &sidecar,
        "the status server to answer",
        Duration::from_secs(20),
        || try_http_get(&format!("{}/healthz", sidecar.status), &[]).is_ok(),
    );
    sidecar
}

/// Waits until `/readyz` answers 200.
fn until_ready(sidecar: &Sidecar) {
    until(sidecar, "/readyz 200", Duration::from_secs(20), || {
        sidecar.get("/readyz").0 == 200
    });
}

/// Whether `path` is a regular file (not following a link).
fn is_regular_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// The output directory `out` of a new sandbox, created empty.
fn sandbox_with_out() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    let out = sb.path("out");
    fs::create_dir(&out).unwrap();
    (sb, out)
}

#[test]
fn a_fifo_planted_at_a_roles_json_neither_blocks_the_start_nor_stays() {
    let moto = Moto::start();
    let (sb, out) = sandbox_with_out();
    mkfifo(&out.join("a.json"));
    let sidecar = start(&sb, &moto.url, "");
    until_ready(&sidecar);
    assert!(is_regular_file(&out.join("a.json")));
    assert!(process_json(&out, "a")["AccessKeyId"].is_string());
}

#[test]
fn a_roles_json_linked_to_dev_zero_is_never_read() {
    let moto = Moto::start();
    let (sb, out) = sandbox_with_out();
    symlink("/dev/zero", out.join("a.json")).unwrap();
    let sidecar = start(&sb, &moto.url, "");
    until_ready(&sidecar);
    assert!(
        is_regular_file(&out.join("a.json")),
        "the link is replaced by the file"
    );
    let peak = peak_memory(sidecar.running.id());
    assert!(
        peak < MODEST,
        "{} MiB at its peak: the device was read",
        peak >> 20
    );
}

#[test]
fn credential_process_refuses_a_fifo_or_a_device_link_without_blocking_or_reading_it() {
    let (sb, out) = sandbox_with_out();
    let credential_process = |log: &str| {
        let mut cmd = sb.rolerelay();
        cmd.args(["credential-process", "--role", "a", "--dir"])
            .arg(&out);
        limit_memory(&mut cmd);
        let mut running = Running::start(cmd, sb.path(log));
        let status = running.wait(Duration::from_secs(10));
        (status.code(), running.logs())
    };

    mkfifo(&out.join("a.json"));
    let (code, said) = credential_process("fifo.log");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not a regular file"), "{said}");

    fs::remove_file(out.join("a.json")).unwrap();
    symlink("/dev/zero", out.join("a.json")).unwrap();
    let (code, said) = credential_process("link.log");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("symbolic link"), "{said}");
}
