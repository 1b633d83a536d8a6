//! The clients of the compatibility matrix: where each comes from, how it is prepared once per
//! test process (found, built), and how it is run against a [`Stage`].
//!
//! Nothing is skipped: a client that is missing fails its tests with how to install it, since
//! `.ci/run` installs every one (`scripts/test-deps --system`).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::matrix::{root, work_dir, Delivery, Stage};

/// A long-running application: one process, one SDK client, GetCallerIdentity in a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sdk {
    /// boto3/botocore from PyPI, on the Python of PATH (the test venv): tests/compat/client.py.
    Boto3,
    /// The AWS SDK for JavaScript v3 from npm, on the machine's Node.js: tests/compat/client.mjs.
    Js,
    /// aws-config and aws-sdk-sts of Cargo.lock: the example `compat-client`.
    Rust,
    /// The AWS SDK for Go v2 of Debian (golang-github-aws-aws-sdk-go-v2-dev), built offline.
    Go,
}

/// A client ready to run: the command line before its own arguments, and the versions that are
/// not the client's own to print (a lockfile's, a Debian package's).
struct Prepared {
    program: PathBuf,
    args: Vec<String>,
    about: String,
}

/// What one run of an SDK client printed.
#[derive(Debug)]
pub struct Run {
    /// The versions it runs: its own first line, and what the preparation found.
    pub version: String,
    /// Its successful calls, in order: (the ARN STS answered, the account id its credentials
    /// carried).
    pub calls: Vec<(String, Option<String>)>,
    /// Its failed calls' messages, and any line it printed that is not a call.
    pub errors: Vec<String>,
    /// How it exited.
    pub status: ExitStatus,
    /// What it said on stderr.
    pub stderr: String,
}

impl Sdk {
    /// The client's name in results and messages.
    pub fn label(self) -> &'static str {
        match self {
            Sdk::Boto3 => "boto3",
            Sdk::Js => "AWS SDK for JavaScript v3",
            Sdk::Rust => "AWS SDK for Rust",
            Sdk::Go => "AWS SDK for Go v2",
        }
    }

    fn prepared(self) -> &'static Prepared {
        static BOTO3: OnceLock<Result<Prepared, String>> = OnceLock::new();
        static JS: OnceLock<Result<Prepared, String>> = OnceLock::new();
        static RUST: OnceLock<Result<Prepared, String>> = OnceLock::new();
        static GO: OnceLock<Result<Prepared, String>> = OnceLock::new();
        let (cell, prepare): (_, fn() -> Result<Prepared, String>) = match self {
            Sdk::Boto3 => (&BOTO3, prepare_boto3),
            Sdk::Js => (&JS, prepare_js),
            Sdk::Rust => (&RUST, prepare_rust),
            Sdk::Go => (&GO, prepare_go),
        };
        match cell.get_or_init(prepare) {
            Ok(prepared) => prepared,
            Err(why) => panic!("{why}"),
        }
    }

    /// Runs the client with `delivery` for `seconds` (one call when 0), against the stage's STS
    /// through its proxy, and returns what it printed. Panics if it runs a minute longer.
    pub fn run(self, stage: &Stage, delivery: Delivery, seconds: f64) -> Run {
        let prepared = self.prepared();
        let mut args: Vec<&str> = prepared.args.iter().map(String::as_str).collect();
        let seconds_arg = seconds.to_string();
        args.extend([seconds_arg.as_str(), stage.proxy.url.as_str()]);
        let cmd = stage.command(delivery, &prepared.program, &args);
        let who = format!("{} via {}", self.label(), delivery.label());
        let limit = Duration::from_secs_f64(seconds) + Duration::from_secs(60);
        let (status, stdout, stderr) = run_within(cmd, stage, &who, limit);
        let mut lines = stdout.lines();
        let first: serde_json::Value = lines
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                panic!("{who}: no version line; stdout:\n{stdout}\nstderr:\n{stderr}")
            });
        let mut run = Run {
            version: format!("{}{}", first["version"].as_str().unwrap(), prepared.about),
            calls: Vec::new(),
            errors: Vec::new(),
            status,
            stderr,
        };
        for line in lines {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) if v["ok"] == true => run.calls.push((
                    v["arn"].as_str().unwrap_or_default().to_string(),
                    v["account_id"].as_str().map(str::to_string),
                )),
                Ok(v) => run
                    .errors
                    .push(v["error"].as_str().unwrap_or(line).to_string()),
                Err(_) => run.errors.push(line.to_string()),
            }
        }
        run
    }
}

/// Runs `cmd` with its output in files of the stage's sandbox; kills it and panics after
/// `limit`. Returns (status, stdout, stderr).
fn run_within(
    mut cmd: Command,
    stage: &Stage,
    who: &str,
    limit: Duration,
) -> (ExitStatus, String, String) {
    let (out, err) = (stage.log("client.out"), stage.log("client.err"));
    cmd.stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{who}: cannot start {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{who}: still running after {limit:?}; stdout:\n{}\nstderr:\n{}",
                fs::read_to_string(&out).unwrap_or_default(),
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        fs::read_to_string(&out).unwrap(),
        fs::read_to_string(&err).unwrap(),
    )
}

/// `program args`, for a short command of the preparation.
fn command(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// Runs a short command of the preparation: its stdout, or why it failed.
fn capture(mut cmd: Command, what: &str) -> Result<String, String> {
    let out: Output = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn compat_file(name: &str) -> String {
    root().join("tests/compat").join(name).display().to_string()
}

fn prepare_boto3() -> Result<Prepared, String> {
    capture(command("python3", &["-c", "import boto3"]), "boto3").map_err(|e| {
        format!(
            "{e}\nboto3 is not importable by the python3 of PATH: put the test venv first \
             (PATH=\"$(scripts/test-deps):$PATH\"; .ci/run does)"
        )
    })?;
    Ok(Prepared {
        program: "python3".into(),
        args: vec![compat_file("client.py")],
        about: String::new(),
    })
}

fn prepare_js() -> Result<Prepared, String> {
    let node = capture(command("node", &["--version"]), "node --version")
        .map_err(|e| format!("{e}\nNode.js (20 or later) must be on PATH"))?;
    let installed = root().join("tests/compat/node_modules/@aws-sdk/client-sts/package.json");
    if !installed.exists() {
        return Err(format!(
            "{} is missing: run scripts/test-deps, which runs `npm ci` in tests/compat (.ci/run does)",
            installed.display()
        ));
    }
    Ok(Prepared {
        program: "node".into(),
        args: vec![compat_file("client.mjs")],
        about: format!(" (package-lock.json), Node.js {node}"),
    })
}

/// The version of `package` in Cargo.lock.
fn locked_version(package: &str) -> String {
    let lock = fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let entry = format!("name = \"{package}\"\nversion = \"");
    let at = lock.find(&entry).expect("in Cargo.lock") + entry.len();
    lock[at..].split('"').next().unwrap().to_string()
}

fn prepare_rust() -> Result<Prepared, String> {
    // `cargo test` builds every example, but `cargo test --test compat` builds none: build it
    // here (a no-op when it is fresh). Cargo holds no lock while the tests run.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_rolerelay"));
    let profile_dir = bin.parent().unwrap();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--quiet", "--locked", "--example", "compat-client"])
        .current_dir(root());
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    capture(build, "cargo build --example compat-client")?;
    Ok(Prepared {
        program: profile_dir.join("examples/compat-client"),
        args: Vec::new(),
        about: format!(", aws-config {} (Cargo.lock)", locked_version("aws-config")),
    })
}

/// Where Debian's golang-github-aws-aws-sdk-go-v2-dev puts the SDK's source.
const GO_PATH: &str = "/usr/share/gocode";

fn prepare_go() -> Result<Prepared, String> {
    let install = "install Debian's golang-go and golang-github-aws-aws-sdk-go-v2-dev \
                   (scripts/test-deps --system, as root; .ci/run does)";
    let package = capture(
        command(
            "dpkg-query",
            &["-W", "-f=${Version}", "golang-github-aws-aws-sdk-go-v2-dev"],
        ),
        "dpkg-query golang-github-aws-aws-sdk-go-v2-dev",
    )
    .map_err(|e| format!("{e}\n{install}"))?;
    let dir = work_dir();
    let program = dir.join("go-client");
    let mut build = Command::new("go");
    build
        .args(["build", "-o"])
        .arg(&program)
        .arg(compat_file("client.go"))
        .current_dir(&dir)
        // Offline, from Debian's source tree only; the build cache under target/ is reused.
        .env("GO111MODULE", "off")
        .env("GOPATH", GO_PATH)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", dir.join("go-build"));
    capture(build, "go build tests/compat/client.go").map_err(|e| format!("{e}\n{install}"))?;
    Ok(Prepared {
        program,
        args: Vec::new(),
        about: format!(", golang-github-aws-aws-sdk-go-v2-dev {package}"),
    })
}

/// The AWS CLI, one command at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    /// v1, from PyPI: the first `aws` on PATH (the test venv's).
    V1,
    /// v2, Debian's awscli package: /usr/bin/aws.
    V2,
}

impl Cli {
    /// The client's name in results and messages.
    pub fn label(self) -> &'static str {
        match self {
            Cli::V1 => "AWS CLI v1",
            Cli::V2 => "AWS CLI v2",
        }
    }

    /// The program and its `aws --version`; panics with how to install it if it is not there.
    pub fn prepared(self) -> (&'static str, &'static str) {
        static V1: OnceLock<Result<String, String>> = OnceLock::new();
        static V2: OnceLock<Result<String, String>> = OnceLock::new();
        let (cell, program, major, install) = match self {
            Cli::V1 => (
                &V1,
                "aws",
                "aws-cli/1.",
                "the first `aws` on PATH must be the test venv's AWS CLI v1 \
                 (PATH=\"$(scripts/test-deps):$PATH\"; .ci/run does)",
            ),
            Cli::V2 => (
                &V2,
                "/usr/bin/aws",
                "aws-cli/2.",
                "install Debian's awscli (scripts/test-deps --system, as root; .ci/run does)",
            ),
        };
        let version = cell.get_or_init(|| {
            let out = command(program, &["--version"])
                .output()
                .map_err(|e| format!("{program}: {e}\n{install}"))?;
            // v1 printed its version on stderr before 1.32.
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let version = text.trim().to_string();
            if version.starts_with(major) {
                Ok(version)
            } else {
                Err(format!("{program} --version says {version:?}\n{install}"))
            }
        });
        match version {
            Ok(v) => (program, v.as_str()),
            Err(why) => panic!("{why}"),
        }
    }

    /// One `aws sts get-caller-identity` with `delivery`, through the stage's proxy.
    pub fn call(self, stage: &Stage, delivery: Delivery) -> Output {
        let (program, _) = self.prepared();
        let url = stage.proxy.url.clone();
        let args = [
            "sts",
            "get-caller-identity",
            "--endpoint-url",
            &url,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ];
        let mut cmd = stage.command(delivery, program.as_ref(), &args);
        cmd.output().unwrap()
    }
}
