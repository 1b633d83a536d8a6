//! The running sidecar: `rolerelay run` with its two HTTP servers on free loopback ports, and
//! helpers to read it and to wait on it. A `Plan` fixes the ports and the output directory before
//! the start, so a test can write its configuration where it wants (behind a link, in a
//! ConfigMap mount) and rewrite it while the sidecar runs; `Sidecar::start` is the plan for the
//! usual case: roles named after their IAM roles in account 111111111111.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::reader::Reader;
use super::{free_port, http_get, metric, process_json, try_http_get, Running, Sandbox};

/// The account of every test role.
pub const ACCOUNT: &str = "111111111111";

/// A sidecar not started yet: its sandbox, its STS, a free port for each server and its output
/// directory (the sandbox's `out`).
pub struct Plan<'a> {
    sb: &'a Sandbox,
    sts_url: String,
    status_port: u16,
    endpoint_port: u16,
}

impl Plan<'_> {
    /// The listen lines of both servers, on this plan's ports: part of every configuration a
    /// sidecar runs with, so that no test binds the default ports.
    pub fn listen_yaml(&self) -> String {
        format!(
            "server:\n  listen: 127.0.0.1:{}\ncredentials_endpoint:\n  listen: 127.0.0.1:{}\n",
            self.status_port, self.endpoint_port
        )
    }

    /// The output directory.
    pub fn out(&self) -> PathBuf {
        self.sb.path("out")
    }

    /// The configuration: `roles` (role `r` is `arn:aws:iam::111111111111:role/r`, session
    /// `rr-r`), fast retries, then `extra` top-level YAML (which may replace `refresh`).
    pub fn config(&self, roles: &[&str], extra: &str) -> String {
        let roles: Vec<(&str, &str)> = roles.iter().map(|r| (*r, "")).collect();
        self.config_with(&roles, extra)
    }

    /// As `config`, with YAML lines of each role's own (`"    external_id: x\n"`) after its
    /// session name.
    pub fn config_with(&self, roles: &[(&str, &str)], extra: &str) -> String {
        let refresh = if extra.contains("refresh:") {
            ""
        } else {
            "refresh:\n  backoff_initial: 100ms\n  backoff_max: 1s\n"
        };
        let mut text = format!(
            "sts:\n  endpoint_url: {}\n{refresh}{extra}outputs:\n  directory: {}\n{}roles:\n",
            self.sts_url,
            self.out().display(),
            self.listen_yaml(),
        );
        for (r, lines) in roles {
            text.push_str(&format!(
                "  - name: {r}\n    role_arn: arn:aws:iam::{ACCOUNT}:role/{r}\n    session_name: rr-{r}\n{lines}"
            ));
        }
        text
    }

    /// Starts `run --config <config>` (which may be a link) and waits until it has started: its
    /// status server answers and its endpoint token is written. The configuration keeps the
    /// endpoint on, with its token file in the output directory, as every test's does.
    pub fn start(&self, config: &Path) -> Sidecar {
        self.start_with(config, &[])
    }

    /// As `start`, with `flags` after the configuration's.
    pub fn start_with(&self, config: &Path, flags: &[&str]) -> Sidecar {
        self.start_with_env(config, flags, &[])
    }

    /// As `start_with`, with these environment variables too.
    pub fn start_with_env(&self, config: &Path, flags: &[&str], env: &[(&str, &str)]) -> Sidecar {
        self.start_waiting_for(config, flags, env, &self.out().join("token"))
    }

    /// As `start_with_env`, waiting for a new token at `token` (with `clients`, a client's).
    pub fn start_waiting_for(
        &self,
        config: &Path,
        flags: &[&str],
        env: &[(&str, &str)],
        token: &Path,
    ) -> Sidecar {
        // A log per start: a test may start several sidecars in one sandbox.
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        // The status server answers before the token is written, and a sidecar started in the
        // same sandbox before this one left its own token: until the new one replaces it, a
        // test would send the old one and be refused.
        let token = token.to_path_buf();
        let old_token = std::fs::read_to_string(&token).ok();
        let mut cmd = self.sb.rolerelay();
        cmd.args(["run", "--config"]).arg(config).args(flags);
        cmd.envs(env.iter().copied());
        let log = self.sb.path(&format!(
            "run-{}.log",
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let sidecar = Sidecar {
            running: Running::start(cmd, log),
            status: format!("http://127.0.0.1:{}", self.status_port),
            endpoint: format!("http://127.0.0.1:{}", self.endpoint_port),
            out: self.out(),
            config: config.to_path_buf(),
        };
        sidecar.wait_for(
            "the status server and a new endpoint token",
            Duration::from_secs(20),
            || {
                try_http_get(&format!("{}/healthz", sidecar.status), &[]).is_ok()
                    && std::fs::read_to_string(&token)
                        .ok()
                        .is_some_and(|t| Some(t) != old_token)
            },
        );
        sidecar
    }
}

/// A running sidecar, killed when dropped.
pub struct Sidecar {
    /// The process.
    pub running: Running,
    /// `http://127.0.0.1:<server.listen port>`.
    pub status: String,
    /// `http://127.0.0.1:<credentials_endpoint port>`.
    pub endpoint: String,
    /// The output directory.
    pub out: PathBuf,
    /// The configuration file, as given to `--config`.
    pub config: PathBuf,
}

impl Sidecar {
    /// A sidecar to start in `sb` against the STS at `sts_url`, on free ports.
    pub fn plan<'a>(sb: &'a Sandbox, sts_url: &str) -> Plan<'a> {
        Plan {
            sb,
            sts_url: sts_url.to_string(),
            status_port: free_port(),
            endpoint_port: free_port(),
        }
    }

    /// Starts `run` with `Plan::config(roles, extra)` in the sandbox's `config.yaml`, and waits
    /// until it has started (`Plan::start`).
    pub fn start(sb: &Sandbox, sts_url: &str, roles: &[&str], extra: &str) -> Sidecar {
        let plan = Sidecar::plan(sb, sts_url);
        let config = sb.write("config.yaml", &plan.config(roles, extra));
        plan.start(&config)
    }

    /// Polls `f` until it is true; after `limit`, panics naming `what`, with the end of the
    /// sidecar's log.
    pub fn wait_for(&self, what: &str, limit: Duration, f: impl FnMut() -> bool) {
        self.running.wait_for(what, limit, f);
    }

    /// GET a path of the status server.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.status), &[])
    }

    /// `/status`, parsed.
    pub fn status_report(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").1).unwrap()
    }

    /// One sample of `/metrics`, 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.get("/metrics").1, series).unwrap_or(0.0)
    }

    /// `rolerelay_refresh_errors_total` of a role and kind.
    pub fn errors(&self, role: &str, kind: &str) -> f64 {
        self.metric(&format!(
            "rolerelay_refresh_errors_total{{kind=\"{kind}\",role=\"{role}\"}}"
        ))
    }

    /// `rolerelay_config_reloads_total` of a result; a panic if it is absent, as it is exported
    /// from the start.
    pub fn reloads(&self, result: &str) -> f64 {
        let series = format!("rolerelay_config_reloads_total{{result=\"{result}\"}}");
        metric(&self.get("/metrics").1, &series).unwrap_or_else(|| panic!("no {series}"))
    }

    /// The access key id in a role's `<role>.json`.
    pub fn key_id(&self, role: &str) -> String {
        process_json(&self.out, role)["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The endpoint token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.out.join("token")).unwrap()
    }

    /// GET the endpoint for `role` with `token`.
    pub fn credentials(&self, role: &str, token: Option<&str>) -> (u16, String) {
        let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
        http_get(
            &format!("{}/v1/credentials/{role}", self.endpoint),
            &headers,
        )
    }

    /// `rolerelay healthcheck` against a path of the status server: its exit code.
    pub fn healthcheck(&self, sb: &Sandbox, path: &str) -> i32 {
        let mut c = sb.rolerelay();
        c.args(["healthcheck", "--url", &format!("{}{path}", self.status)]);
        c.status().unwrap().code().unwrap()
    }

    /// Waits until `/readyz` answers `code`.
    pub fn wait_readyz(&self, code: u16, limit: Duration) {
        self.wait_for(&format!("/readyz {code}"), limit, || {
            self.get("/readyz").0 == code
        });
    }

    /// A reader of every output of `roles` and of the endpoint.
    pub fn reader(&self, roles: &[&str]) -> Reader {
        Reader::start(self.out.clone(), roles, Some(self.endpoint.clone()))
    }
}
