//! Black-box tests of a hostile output directory. The shared volume is writable by whatever else
//! mounts it, and an emptyDir outlives container restarts, so what is planted there stays: FIFOs
//! and device links where rolerelay reads, directories where it writes, links where `doctor`
//! probes, guessed temporary names, and a full disk. None of it may hang, crash or stop the
//! sidecar, or turn its writes against a file elsewhere.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
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

/// The process's user id, which owns what it creates.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A `rolerelay run` of role `a` (`arn:aws:iam::111111111111:role/a`) writing to its sandbox's
/// `out`, with its memory capped, a refresh every second and failures retried within a second.
/// Its own, not the shared harness's: the cap must be set before the process starts.
struct Relay {
    running: Running,
    /// `http://127.0.0.1:<server.listen port>`.
    status: String,
    /// `http://127.0.0.1:<credentials_endpoint port>`.
    endpoint: String,
    /// The output directory.
    out: PathBuf,
}

impl Relay {
    /// Starts it against `sts` and returns once its status server answers (or panics with its
    /// log if it never does).
    fn start(sb: &Sandbox, sts: &str) -> Relay {
        let (status, endpoint) = (free_port(), free_port());
        let out = sb.path("out");
        let config = sb.write(
            "config.yaml",
            &format!(
                "sts:\n  endpoint_url: {sts}\n\
                 refresh:\n  max_interval: 1s\n  backoff_initial: 100ms\n  backoff_max: 1s\n\
                 outputs:\n  directory: {}\nserver:\n  listen: 127.0.0.1:{status}\n\
                 credentials_endpoint:\n  listen: 127.0.0.1:{endpoint}\n\
                 roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/a\n",
                out.display()
            ),
        );
        let mut cmd = sb.rolerelay();
        cmd.args(["run", "--config"]).arg(&config);
        limit_memory(&mut cmd);
        let relay = Relay {
            running: Running::start(cmd, sb.path("run.log")),
            status: format!("http://127.0.0.1:{status}"),
            endpoint: format!("http://127.0.0.1:{endpoint}"),
            out,
        };
        relay.until("the status server to answer", || {
            try_http_get(&format!("{}/healthz", relay.status), &[]).is_ok()
        });
        relay
    }

    /// Polls `f` every 50 ms; after 20 s, panics with `what` and the log.
    fn until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let (start, limit) = (Instant::now(), Duration::from_secs(20));
        while !f() {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; log:\n{}",
                self.running.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `/readyz` answers 200.
    fn until_ready(&self) {
        self.until("/readyz 200", || self.get("/readyz").0 == 200);
    }

    /// GET a path of the status server.
    fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.status), &[])
    }

    /// `rolerelay_output_write_errors_total` of role `a` and `output`, 0 if absent.
    fn write_errors(&self, output: &str) -> f64 {
        let series =
            format!("rolerelay_output_write_errors_total{{output=\"{output}\",role=\"a\"}}");
        metric(&self.get("/metrics").1, &series).unwrap_or(0.0)
    }

    /// The endpoint's answer for role `a` to the token in the token file.
    fn credentials_with_the_token_file(&self) -> u16 {
        let token = fs::read_to_string(self.out.join("token")).unwrap();
        let url = format!("{}/v1/credentials/a", self.endpoint);
        http_get(&url, &[("Authorization", &token)]).0
    }
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
    let relay = Relay::start(&sb, &moto.url);
    relay.until_ready();
    assert!(is_regular_file(&out.join("a.json")));
    assert!(process_json(&out, "a")["AccessKeyId"].is_string());
}

#[test]
fn a_roles_json_linked_to_dev_zero_is_never_read() {
    let moto = Moto::start();
    let (sb, out) = sandbox_with_out();
    symlink("/dev/zero", out.join("a.json")).unwrap();
    let relay = Relay::start(&sb, &moto.url);
    relay.until_ready();
    assert!(
        is_regular_file(&out.join("a.json")),
        "the link is replaced by the file"
    );
    let peak = peak_memory(relay.running.id());
    assert!(
        peak < MODEST,
        "{} MiB at its peak: the device was read",
        peak >> 20
    );
}

#[test]
fn a_directory_named_like_a_temporary_file_is_left_alone_with_a_warning() {
    let moto = Moto::start();
    let (sb, out) = sandbox_with_out();
    fs::create_dir_all(out.join(".rolerelay-tmp-x/inner")).unwrap();
    let relay = Relay::start(&sb, &moto.url);
    relay.until_ready();
    assert!(out.join(".rolerelay-tmp-x/inner").is_dir());
    let logs = relay.running.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"WARN\"") && l.contains(".rolerelay-tmp-x")),
        "a warning names it:\n{logs}"
    );
}

#[test]
fn directories_at_config_and_token_are_write_errors_retried_until_they_go() {
    let moto = Moto::start();
    let (sb, out) = sandbox_with_out();
    for name in ["config", "token"] {
        fs::create_dir_all(out.join(name).join("inner")).unwrap();
    }
    let relay = Relay::start(&sb, &moto.url);
    relay.until(
        "failed writes of config and the token, counted again and again",
        || relay.write_errors("config") >= 2.0 && relay.write_errors("token") >= 2.0,
    );
    let (code, body) = relay.get("/readyz");
    assert_eq!(code, 503);
    assert!(body.contains("could not be written"), "{body}");
    assert_eq!(relay.get("/healthz").0, 200);
    assert!(is_regular_file(&out.join("a.json")), "the rest is written");

    for name in ["config", "token"] {
        fs::remove_dir_all(out.join(name)).unwrap();
    }
    relay.until_ready();
    assert!(fs::read_to_string(out.join("config"))
        .unwrap()
        .contains("[profile a]"));
    assert_eq!(
        relay.credentials_with_the_token_file(),
        200,
        "the token file holds the endpoint's token"
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

#[test]
fn doctors_write_probe_never_follows_a_planted_link() {
    let moto = Moto::start();
    let (sb, out) = sandbox_with_out();
    let victim = sb.write("victim", "precious");
    let config = sb.write(
        "doctor.yaml",
        &format!(
            "sts:\n  endpoint_url: {}\noutputs:\n  directory: {}\nserver:\n  listen: 127.0.0.1:{}\n\
             credentials_endpoint:\n  listen: 127.0.0.1:{}\nroles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/a\n",
            moto.url,
            out.display(),
            free_port(),
            free_port()
        ),
    );
    // The shell plants a link at the name its own pid gives the probe, then becomes the doctor.
    let mut cmd = sb.command("sh");
    cmd.arg("-c")
        .arg(r#"ln -s "$1" "$2/.rolerelay-tmp-doctor-$$" && exec "$0" doctor --config "$3""#)
        .arg(env!("CARGO_BIN_EXE_rolerelay"))
        .arg(&victim)
        .arg(&out)
        .arg(&config)
        .env("AWS_ACCESS_KEY_ID", "AKIASOURCEEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "source-secret-not-for-logs");
    let (_, stdout, stderr) = run(cmd);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "precious",
        "the file behind the link is untouched:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "✓ output directory {}: exists, writable",
            out.display()
        )),
        "{stdout}{stderr}"
    );
    let planted: Vec<_> = fs::read_dir(&out).unwrap().collect();
    assert_eq!(planted.len(), 1, "only the planted link is there");
}

#[test]
fn owner_reads_through_the_group_and_never_gets_the_directory() {
    assert_eq!(euid(), 0, "giving files to a group needs root, as CI runs");
    let moto = Moto::start();
    let sb = Sandbox::new();
    let out = sb.path("out/app");
    let mut cmd = sb.once_one("arn:aws:iam::111111111111:role/a", &moto.url, &out);
    cmd.args(["--owner", "4242:4343"]);
    let (status, stdout, stderr) = run(cmd);
    assert!(status.success(), "{stdout}{stderr}");

    let dir = fs::metadata(&out).unwrap();
    assert_eq!(
        (dir.uid(), dir.gid(), dir.permissions().mode() & 0o7777),
        (euid(), 4343, 0o750),
        "the directory stays rolerelay's; the group may list and read it, not write"
    );
    for file in ["a.json", "a.env", "credentials", "config"] {
        let meta = fs::metadata(out.join(file)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
            (euid(), 4343, 0o640),
            "{file}"
        );
    }
}

/// A file that takes every free block of its file system, kept open to take more as they free.
struct Filler {
    path: PathBuf,
    file: fs::File,
}

impl Filler {
    fn new(path: PathBuf) -> Filler {
        let mut filler = Filler {
            file: fs::File::create(&path).unwrap(),
            path,
        };
        filler.fill();
        filler
    }

    /// Takes what is free now (a rename can free a page after the last fill).
    fn fill(&mut self) {
        while std::io::Write::write_all(&mut self.file, &[0u8; 4096]).is_ok() {}
    }

    fn remove(self) {
        fs::remove_file(&self.path).unwrap();
    }
}

#[test]
fn a_full_disk_at_start_leaves_the_old_files_serves_and_writes_once_space_returns() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let out = sb.path("out");
    let _disk = Tmpfs::mount(out.clone(), "size=256k,mode=0755");
    let (status, stdout, stderr) =
        run(sb.once_one("arn:aws:iam::111111111111:role/a", &moto.url, &out));
    assert!(status.success(), "{stdout}{stderr}");
    let earlier = process_json(&out, "a")["AccessKeyId"].clone();
    fs::write(out.join("token"), "an-earlier-runs-token").unwrap();
    let mut filler = Filler::new(out.join("filler"));

    let relay = Relay::start(&sb, &moto.url);
    relay.until(
        "failed writes of config, the token and the new credentials, and /readyz saying so",
        || {
            filler.fill();
            let (code, body) = relay.get("/readyz");
            ["config", "token", "process_json"]
                .iter()
                .all(|output| relay.write_errors(output) >= 1.0)
                && code == 503
                && body.contains("could not be written")
        },
    );
    assert_eq!(relay.get("/healthz").0, 200);
    // The earlier run's, or a newer one written into the page the old token freed: whole.
    assert!(process_json(&out, "a")["AccessKeyId"].is_string());
    assert_ne!(
        fs::read_to_string(out.join("token")).ok().as_deref(),
        Some("an-earlier-runs-token"),
        "no token left that the endpoint refuses (gone, or the new one in the page it freed)"
    );
    let (status, body) = relay.get("/status");
    assert_eq!(status, 200);
    assert!(body.contains("\"a\""), "{body}");

    filler.remove();
    relay.until_ready();
    assert!(fs::read_to_string(out.join("config"))
        .unwrap()
        .contains("[profile a]"));
    assert_eq!(
        relay.credentials_with_the_token_file(),
        200,
        "the token file holds the endpoint's token"
    );
    assert_ne!(process_json(&out, "a")["AccessKeyId"], earlier);
}

#[test]
fn guessed_temporary_names_do_not_stop_the_writes() {
    let moto = Moto::start();
    let (sb, out) = sandbox_with_out();
    let relay = Relay::start(&sb, &moto.url);
    relay.until_ready();
    // Every name the old scheme (pid and counter) would give `a.json` for thousands of writes.
    let pid = relay.running.id();
    for n in 0..15_000 {
        fs::write(out.join(format!(".rolerelay-tmp-a.json.{pid}.{n}")), b"").unwrap();
    }
    let before = process_json(&out, "a")["AccessKeyId"].clone();
    relay.until("a.json rewritten with new credentials", || {
        process_json(&out, "a")["AccessKeyId"] != before
    });
    assert_eq!(relay.write_errors("process_json"), 0.0);
}
