//! Black-box tests of signals that come while `run` is still starting.

mod common;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use common::*;

#[test]
fn sigterm_while_start_up_waits_is_kept_and_ends_the_start_with_exit_0() {
    let sb = Sandbox::new();
    // A certificate store that does not answer yet: start-up waits in reading it.
    let certs = sb.path("certs.pem");
    let fifo = std::ffi::CString::new(certs.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let mut cmd = sb.rolerelay();
    cmd.args(["run", "--role-arn", "arn:aws:iam::111111111111:role/a"])
        .args(["--sts-endpoint-url", "http://127.0.0.1:1"])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--endpoint-listen",
            "127.0.0.1:0",
        ])
        .arg("--output-dir")
        .arg(sb.path("out"))
        .env("SSL_CERT_FILE", &certs);
    let mut running = Running::start(cmd, sb.path("run.log"));
    std::thread::sleep(Duration::from_secs(1));
    running.signal("TERM");
    // Let start-up go on: the signal it got meanwhile must end it, not kill it.
    // Without blocking: a process the signal killed has no reader left on the pipe.
    let system = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    if let Ok(mut pipe) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&certs)
    {
        let _ = pipe.write_all(&system);
    }
    let status = running.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", running.logs());
}
