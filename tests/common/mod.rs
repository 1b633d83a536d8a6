//! Helpers of the black-box tests: a real moto server, the built binary and the real AWS CLI,
//! each in a clean environment that cannot see the machine's own AWS configuration.
#![allow(dead_code)]

pub mod imds;
pub mod prometheus;
pub mod proxy;
pub mod reader;
pub mod sidecar;
pub mod tmpfs;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A moto server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The port.
    pub port: u16,
}

/// A loopback port free when asked, and never handed out twice in this test process (tests run
/// in parallel threads, and the kernel may offer a just-released port again).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

impl Moto {
    /// Starts `moto_server` (from PATH) and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        Moto::start_on(port)
    }

    /// Starts `moto_server` on `port` and waits until it answers.
    pub fn start_on(port: u16) -> Moto {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be on PATH (pip install 'moto[server]'; .ci/run does it)");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
        };
        wait_for("moto server to listen", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        // moto loads a service's models on its first request, which takes seconds on a busy
        // machine: pay for that here, not inside a test's bounds. Straight to moto, so a test's
        // proxy counts only the sidecar's calls.
        let warm_up = format!(
            "{}/?Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::111111111111:role/warm-up&RoleSessionName=warm-up",
            moto.url
        );
        let scope = "AWS4-HMAC-SHA256 Credential=AKIDWARMUP/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0";
        wait_for("moto to answer AssumeRole", Duration::from_secs(60), || {
            try_http_get(&warm_up, &[("Authorization", scope)]).is_ok_and(|(code, _)| code == 200)
        });
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it is true; panics naming `what` after `limit`. A wait on a
/// running process is `Running::wait_for`, which says what the process logged.
pub fn wait_for(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    assert!(
        poll(limit, f),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// Polls `f` every 50 ms until it is true (then true) or `limit` has passed (then false).
fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !f() {
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A scratch directory with a HOME that has no AWS configuration.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// A new, empty sandbox.
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        Sandbox { dir }
    }

    /// A path inside the sandbox.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file in the sandbox and returns its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// A command with an empty environment but PATH and a HOME without AWS configuration.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("AWS_CONFIG_FILE", self.path("home/no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("home/no-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        cmd
    }

    /// The rolerelay binary, with static source credentials for moto in its environment.
    pub fn rolerelay(&self) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_rolerelay"));
        cmd.env("AWS_ACCESS_KEY_ID", "AKIASOURCEEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "source-secret-not-for-logs")
            .env("ROLERELAY_LOG_FORMAT", "json");
        cmd
    }

    /// `rolerelay once` for one role, named `a`, against `sts`, writing to `out`; add to it, then
    /// `run` it. It fails at the first error (`ROLERELAY_RETRY_FOR=0`, which a `--retry-for`
    /// added to it overrides) rather than retrying for the default minute, so that the tests of
    /// failures see one attempt.
    pub fn once_one(&self, role_arn: &str, sts: &str, out: &Path) -> Command {
        let mut cmd = self.rolerelay();
        cmd.env("ROLERELAY_RETRY_FOR", "0")
            .args([
                "once",
                "--role-arn",
                role_arn,
                "--role-name",
                "a",
                "--sts-endpoint-url",
                sts,
                "--output-dir",
            ])
            .arg(out);
        cmd
    }

    /// The AWS CLI, with no credentials but what `env` gives it.
    pub fn aws(&self, moto: &Moto, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command("aws");
        cmd.args(args).args([
            "--endpoint-url",
            &moto.url,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
            .expect("the AWS CLI must be on PATH (pip install awscli; .ci/run does it)")
    }

    /// `aws sts get-caller-identity` with `env`: the ARN it reports, or a panic with stderr.
    pub fn caller_arn(&self, moto: &Moto, extra: &[&str], env: &[(&str, &str)]) -> String {
        let mut args = vec!["sts", "get-caller-identity"];
        args.extend_from_slice(extra);
        let out = self.aws(moto, &args, env);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["Arn"].as_str().unwrap().to_string()
    }
}

/// A running `rolerelay run`, with its stderr going to a file; killed when dropped.
pub struct Running {
    child: Child,
    /// The file that receives the process's stderr (its logs).
    pub log: PathBuf,
}

impl Running {
    /// Starts `cmd`, sending stdout and stderr to `log`.
    pub fn start(mut cmd: Command, log: PathBuf) -> Running {
        let file = fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Running { child, log }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (TERM, INT, KILL, HUP).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "the process did not exit within {limit:?}; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `f` every 50 ms until it is true; after `limit`, panics naming `what`, with the end
    /// of the process's log: what the process said is most often why it did not happen.
    pub fn wait_for(&self, what: &str, limit: Duration, f: impl FnMut() -> bool) {
        if !poll(limit, f) {
            panic!(
                "timed out after {limit:?} waiting for {what}; {}",
                self.log_tail()
            );
        }
    }

    /// The last lines the process logged, introduced by where they come from.
    pub fn log_tail(&self) -> String {
        const LINES: usize = 40;
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LINES)..];
        format!(
            "the last {} of {} lines of {}:\n{}",
            tail.len(),
            lines.len(),
            self.log.display(),
            tail.join("\n")
        )
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        fs::File::open(&self.log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parsed `<role>.json` of `dir`.
pub fn process_json(dir: &Path, role: &str) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join(format!("{role}.json"))).unwrap()).unwrap()
}

/// The secret values found in every `<role>.json` of `dir`.
pub fn secrets_in(dir: &Path) -> Vec<String> {
    let mut secrets = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value =
                serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
            for key in ["SecretAccessKey", "SessionToken"] {
                secrets.push(v[key].as_str().unwrap().to_string());
            }
        }
    }
    secrets
}

/// Panics if any of `secrets` (or the source secret) appears in `text`.
pub fn assert_no_secrets(text: &str, secrets: &[String]) {
    assert!(!secrets.is_empty(), "no secrets to look for");
    for secret in secrets
        .iter()
        .map(String::as_str)
        .chain(["source-secret-not-for-logs"])
    {
        assert!(
            secret.len() >= 8,
            "too short to be a meaningful search: {secret:?}"
        );
        assert!(
            !text.contains(secret),
            "a secret value appears in the output:\n{text}"
        );
    }
}

/// Runs a command to completion and returns (status, stdout, stderr).
pub fn run(mut cmd: Command) -> (ExitStatus, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The wall clock, for comparing expirations.
#[allow(clippy::disallowed_methods)]
pub fn now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// A plain HTTP GET on loopback: (status code, body). Panics if nothing answers.
pub fn http_get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    try_http_get(url, headers).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A plain HTTP GET on loopback: (status code, body), or the I/O error.
pub fn try_http_get(url: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// The body of a chunked HTTP/1.1 answer (Prometheus sends its larger answers so).
fn dechunk(mut chunked: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = chunked.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&rest[..size]);
        chunked = rest[size..].trim_start_matches("\r\n");
    }
    body
}

/// The value of one sample of `/metrics` text, by its full series name with labels in order.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}
