//! The compatibility matrix's harness: a stage (moto behind a recording proxy, and a sidecar that
//! rotates one role's credentials every second), the clients under test and how each is found or
//! built, how each delivery is handed to a client, and what a run of a client proved.
//!
//! The evidence of which credentials a client used is what the server saw: the proxy records the
//! access key id that signed every GetCallerIdentity. A generation is one access key id; the
//! generations a client used are the distinct signers of its calls, in order.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::proxy::{expire_in, Action, Proxy};
use crate::common::sidecar::Sidecar;
use crate::common::{Moto, Sandbox};

/// The role every client uses; its files are `app.json`, `app.env`, `[app]`, `[profile app]`.
pub const ROLE: &str = "app";
/// What GetCallerIdentity answers for the role's credentials.
pub const ASSUMED: &str = "arn:aws:sts::111111111111:assumed-role/app/rr-app";

/// How long the credentials STS hands out live, once the proxy has rewritten their `Expiration`:
/// inside every tested SDK's refresh window, so that each re-fetches within the test.
/// - botocore (boto3, the AWS CLI v1, and the AWS CLI v2's copy of it): `RefreshableCredentials`
///   refreshes when less than `_DEFAULT_ADVISORY_REFRESH_TIMEOUT` (15 min) is left and blocks on
///   it under `_DEFAULT_MANDATORY_REFRESH_TIMEOUT` (10 min) (botocore/credentials.py).
/// - JavaScript v3: the default chain's `credentialsTreatedAsExpired`, under 300000 ms left
///   (@aws-sdk/credential-provider-node), and `EXPIRATION_MS` = 300_000 in @smithy/core's
///   `memoizeIdentityProvider`.
/// - Rust: the lazy identity cache reloads `DEFAULT_BUFFER_TIME` (10 s) before expiry, less up
///   to half of it as jitter (aws-smithy-runtime, client/identity/cache/lazy.rs).
/// - Go v2 (Debian's 1.17): the endpoint's `CredentialsCache` has `ExpiryWindow` 5 min
///   (config/resolve_credentials.go, `resolveHTTPCredProvider`); `credential_process` has none:
///   it runs again only once the credentials have expired (`processCredentials`, window 0), so
///   the lifetime itself must pass, several times, within the test.
///
/// With 4 s (3 s and a fraction: the rewrite keeps whole seconds) and a rotation every second, the
/// sidecar serves credentials with 2 to 3 s left: every SDK re-fetches at every call, and Go's
/// process provider every 2 to 3 s.
const LIFETIME: Duration = Duration::from_secs(4);

/// The sidecar's refresh: a rotation every second, whatever the lifetime; fast retries.
const REFRESH: &str = "refresh:\n  max_interval: 1s\n  min_remaining: 1s\n  jitter: 0\n  \
                       backoff_initial: 100ms\n  backoff_max: 1s\n";

/// How a client is handed the role's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
    Endpoint,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` + the token's value in
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`, for clients that predate the token file.
    EndpointTokenValue,
    /// `AWS_CONFIG_FILE` (its `credential_process`) + `AWS_PROFILE`.
    Process,
    /// `AWS_SHARED_CREDENTIALS_FILE` + `AWS_PROFILE`.
    CredentialsFile,
    /// `<role>.env` sourced by a shell before the client starts (`set -a; . app.env`).
    EnvFile,
}

impl Delivery {
    /// The name in results and messages.
    pub fn label(self) -> &'static str {
        match self {
            Delivery::Endpoint => "endpoint (token file)",
            Delivery::EndpointTokenValue => "endpoint (token in the environment)",
            Delivery::Process => "credential_process",
            Delivery::CredentialsFile => "credentials INI",
            Delivery::EnvFile => ".env",
        }
    }
}

/// moto behind a recording proxy that shortens every lifetime to [`LIFETIME`], and a sidecar
/// rotating the role every second through it.
pub struct Stage {
    // Dropped in this order: the sidecar, moto, then the sandbox it ran in.
    /// The running sidecar.
    pub sidecar: Sidecar,
    /// The proxy both the sidecar and the clients talk to.
    pub proxy: Proxy,
    _moto: Moto,
    /// The scratch directory: the sidecar's `out`, the clients' HOME and logs.
    pub sb: Sandbox,
}

impl Stage {
    /// Starts moto, the proxy and the sidecar, and waits until the sidecar is ready.
    pub fn start() -> Stage {
        let moto = Moto::start();
        let sb = Sandbox::new();
        let proxy = Proxy::start(
            moto.port,
            Arc::new(|body: &str| {
                if body.contains("Action=AssumeRole&") {
                    Action::Rewrite(|reply| expire_in(reply, LIFETIME))
                } else {
                    Action::Forward
                }
            }),
        );
        let sidecar = Sidecar::start(&sb, &proxy.url, &[ROLE], REFRESH);
        sidecar.wait_readyz(200, Duration::from_secs(20));
        Stage {
            sidecar,
            proxy,
            _moto: moto,
            sb,
        }
    }

    /// `program args` as the application would run it with `delivery`: in a clean environment
    /// (no AWS configuration but what the delivery sets).
    pub fn command(&self, delivery: Delivery, program: &Path, args: &[&str]) -> Command {
        let out = &self.sidecar.out;
        let mut cmd = if delivery == Delivery::EnvFile {
            let mut sh = self.sb.command("sh");
            sh.args(["-c", "set -a; . \"$0\"; set +a; exec \"$@\""])
                .arg(out.join(format!("{ROLE}.env")))
                .arg(program);
            sh
        } else {
            self.sb.command(program.to_str().unwrap())
        };
        cmd.args(args);
        let uri = format!("{}/v1/credentials/{ROLE}", self.sidecar.endpoint);
        match delivery {
            Delivery::Endpoint => cmd
                .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
                .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", out.join("token")),
            Delivery::EndpointTokenValue => cmd
                .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
                .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", self.sidecar.token()),
            Delivery::Process => cmd
                .env("AWS_CONFIG_FILE", out.join("config"))
                .env("AWS_PROFILE", ROLE),
            Delivery::CredentialsFile => cmd
                .env("AWS_SHARED_CREDENTIALS_FILE", out.join("credentials"))
                .env("AWS_PROFILE", ROLE),
            Delivery::EnvFile => &mut cmd,
        };
        cmd
    }

    /// The access key id in the file `delivery` reads: `<role>.env`, `credentials`, or
    /// `<role>.json` for the endpoint and `credential_process` (both serve the sidecar's current
    /// generation, which `<role>.json` is written from first). None while a file is missing.
    pub fn published_key(&self, delivery: Delivery) -> Option<String> {
        let out = &self.sidecar.out;
        let (file, prefix) = match delivery {
            Delivery::EnvFile => (format!("{ROLE}.env"), "AWS_ACCESS_KEY_ID="),
            Delivery::CredentialsFile => ("credentials".to_string(), "aws_access_key_id = "),
            _ => return Some(self.sidecar.key_id(ROLE)),
        };
        let text = std::fs::read_to_string(out.join(file)).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::to_string)
    }

    /// The access key ids the sidecar has been handed so far, oldest first.
    pub fn issued(&self) -> Vec<String> {
        self.proxy.issued()
    }

    /// The access key ids that signed the clients' GetCallerIdentity calls, in order.
    pub fn signers(&self) -> Vec<String> {
        self.proxy.signers_of("GetCallerIdentity")
    }

    /// A file in the sandbox for a client's output.
    pub fn log(&self, name: &str) -> PathBuf {
        self.sb.path(name)
    }
}

/// The generations in `signers`: its distinct keys in order. Panics, naming `who`, if a key is
/// not one the sidecar was handed (`issued`), or if a call went back to an older key than an
/// earlier call used.
pub fn generations(who: &str, signers: &[String], issued: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut last = 0;
    for key in signers {
        let at = issued.iter().position(|k| k == key).unwrap_or_else(|| {
            panic!("{who}: a call signed by {key}, a key the sidecar never got")
        });
        assert!(
            at >= last,
            "{who}: a call signed by {key} (generation {at}) after one by generation {last}: \
             it went back to older credentials"
        );
        if seen.last() != Some(key) {
            seen.push(key.clone());
        }
        last = at;
    }
    seen
}

/// Where this test binary keeps what it builds and what it found, under cargo's target directory.
pub fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Writes this test's line of the run's record of what was tested, `<work_dir>/results/<name>.tsv`:
/// client, version, deliveries, what was seen. `scripts/test` prints them after the tests.
pub fn record(name: &str, client: &str, version: &str, deliveries: &str, seen: &str) {
    let dir = work_dir().join("results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.tsv")),
        format!("{client}\t{version}\t{deliveries}\t{seen}\n"),
    )
    .unwrap();
}
