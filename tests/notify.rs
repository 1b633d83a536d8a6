//! Black-box tests of the systemd notifications (`Type=notify`): the test owns the datagram
//! socket `NOTIFY_SOCKET` names, as systemd would, and reads what the sidecar sends.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::{always, forward, sts_error, Action, Proxy};
use common::sidecar::{Plan, Sidecar};
use common::{Moto, Sandbox};

/// One notification: when it came, its lines, and whether the role's files existed then.
#[derive(Clone, Debug)]
struct Note {
    at: Instant,
    lines: Vec<String>,
    files_written: bool,
}

/// The socket systemd would own, and every notification received on it.
struct Systemd {
    path: PathBuf,
    notes: Arc<Mutex<Vec<Note>>>,
}

impl Systemd {
    /// Listens at `path`; each notification is stamped with whether `files` exist at arrival.
    fn listen(path: PathBuf, files: Vec<PathBuf>) -> Systemd {
        let socket = UnixDatagram::bind(&path).unwrap();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let shared = notes.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                let files_written = files.iter().all(|f| f.exists());
                shared.lock().unwrap().push(Note {
                    at: Instant::now(),
                    lines: text.lines().map(str::to_string).collect(),
                    files_written,
                });
            }
        });
        Systemd { path, notes }
    }

    fn notes(&self) -> Vec<Note> {
        self.notes.lock().unwrap().clone()
    }

    /// The notifications with a line starting with `prefix`.
    fn with(&self, prefix: &str) -> Vec<Note> {
        self.notes()
            .into_iter()
            .filter(|n| n.lines.iter().any(|l| l.starts_with(prefix)))
            .collect()
    }

    fn wait_for(&self, prefix: &str, limit: Duration) -> Note {
        common::wait_for(prefix, limit, || !self.with(prefix).is_empty());
        self.with(prefix).remove(0)
    }

    /// Waits until `count` keep-alives arrived from now on, at most 6 s (three watchdog intervals
    /// of 1 s, with room).
    fn wait_keep_alives(&self, what: &str, count: usize) {
        let since = Instant::now();
        common::wait_for(what, Duration::from_secs(6), || {
            self.with("WATCHDOG=1")
                .iter()
                .filter(|n| n.at >= since)
                .count()
                >= count
        });
    }

    /// The environment of a sidecar under a `Type=notify` unit with `WatchdogSec=2`.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NOTIFY_SOCKET", self.path.display().to_string()),
            ("WATCHDOG_USEC", "2000000".to_string()),
        ]
    }
}

/// Starts the sidecar of `plan` on role `a` with `env` (and the notify socket's).
fn start(sb: &Sandbox, plan: &Plan, systemd: &Systemd, env: &[(&str, String)]) -> Sidecar {
    let config = sb.write("config.yaml", &plan.config(&["a"], ""));
    let mut all = systemd.env();
    all.extend(env.iter().map(|(k, v)| (*k, v.clone())));
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    plan.start_with_env(&config, &[], &all)
}

fn files(out: &Path) -> Vec<PathBuf> {
    ["a.json", "a.env", "credentials", "config", "token"]
        .iter()
        .map(|f| out.join(f))
        .collect()
}

#[test]
fn ready_comes_once_after_the_files_then_status_and_watchdog_and_stopping_at_sigterm() {
    let moto = Moto::start();
    // STS refuses for the first second and a half: readiness cannot come early by luck.
    let proxy = Proxy::start(
        moto.port,
        always(|| Action::Reply(503, sts_error("ServiceUnavailable", "not yet"))),
    );
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &proxy.url);
    let systemd = Systemd::listen(sb.path("notify.sock"), files(&plan.out()));
    let mut sidecar = start(&sb, &plan, &systemd, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        systemd.with("READY=1").is_empty(),
        "not ready while STS refuses"
    );
    let waiting = systemd.wait_for("STATUS=", Duration::from_secs(5));
    assert!(
        waiting
            .lines
            .iter()
            .any(|l| l.starts_with("STATUS=0 of 1 roles ready; waiting for a:")),
        "{waiting:?}"
    );
    proxy.set_rule(forward());

    let ready = systemd.wait_for("READY=1", Duration::from_secs(20));
    assert!(
        ready.files_written,
        "READY=1 before the files were written: {ready:?}"
    );
    assert_eq!(sidecar.get("/readyz").0, 200);
    common::wait_for(
        "a status naming the next refresh",
        Duration::from_secs(5),
        || {
            systemd
                .with("STATUS=1 of 1 roles ready; next refresh 20")
                .iter()
                .any(|n| n.at >= ready.at)
        },
    );
    // WATCHDOG_USEC 2 s: a keep-alive every second while healthy.
    systemd.wait_keep_alives("three watchdog keep-alives", 3);

    sidecar.running.signal("TERM");
    assert!(sidecar.running.wait(Duration::from_secs(10)).success());
    let stopping = systemd.wait_for("STOPPING=1", Duration::from_secs(1));
    assert!(
        systemd
            .with("WATCHDOG=1")
            .iter()
            .all(|n| n.at <= stopping.at),
        "no keep-alive after STOPPING=1"
    );
    assert_eq!(systemd.with("READY=1").len(), 1, "READY=1 is sent once");
}

/// libfaketime, which moves the sidecar's wall clock (not its monotonic one) from outside.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    found.expect("libfaketime must be installed (Debian package libfaketime; scripts/test-deps --system installs it)")
}

#[test]
fn the_watchdog_stops_while_a_loop_misses_its_heartbeat_and_resumes_after() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let systemd = Systemd::listen(sb.path("notify.sock"), files(&plan.out()));
    let offset = sb.write("faketime", "+0");
    let env = [
        ("LD_PRELOAD", libfaketime().display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE", offset.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ];
    let sidecar = start(&sb, &plan, &systemd, &env);
    systemd.wait_for("READY=1", Duration::from_secs(20));
    systemd.wait_keep_alives("keep-alives", 2);

    // The wall clock jumps ten minutes: the loop, asleep on its monotonic timer, is past its
    // heartbeat deadline until it next looks at the clock (at most 30 s later), exactly as a
    // wedged loop is. Should that look come inside the window watched, jump again.
    let mut quiet = false;
    for jump in ["+10m", "+20m", "+30m"] {
        std::fs::write(&offset, jump).unwrap();
        sidecar.wait_for("/healthz 503", Duration::from_secs(5), || {
            sidecar.get("/healthz").0 == 503
        });
        // A keep-alive decided just before the jump may still arrive.
        let from = Instant::now() + Duration::from_millis(1200);
        let mut healthy_meanwhile = false;
        while Instant::now() < from + Duration::from_secs(3) {
            healthy_meanwhile |= sidecar.get("/healthz").0 != 503;
            std::thread::sleep(Duration::from_millis(100));
        }
        if healthy_meanwhile {
            continue;
        }
        let late = systemd
            .with("WATCHDOG=1")
            .into_iter()
            .filter(|n| n.at >= from)
            .count();
        assert_eq!(
            late, 0,
            "no keep-alive while /healthz says the loop is late"
        );
        quiet = true;
        break;
    }
    assert!(quiet, "the loop healed itself inside every window watched");

    std::fs::write(&offset, "+0").unwrap();
    sidecar.wait_for("/healthz 200", Duration::from_secs(5), || {
        sidecar.get("/healthz").0 == 200
    });
    systemd.wait_keep_alives("keep-alives again", 2);
}

#[test]
fn without_notify_socket_nothing_is_sent_and_a_bad_one_is_only_a_warning() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let config = sb.write("config.yaml", &plan.config(&["a"], ""));
    let missing = sb.path("no-such-dir/notify.sock");
    let sidecar = plan.start_with_env(
        &config,
        &[],
        &[
            ("NOTIFY_SOCKET", missing.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    sidecar.wait_readyz(200, Duration::from_secs(20));
    assert_eq!(
        sidecar.get("/healthz").0,
        200,
        "a socket nobody listens on changes nothing"
    );
}
