//! A running `rolerelay run` with roles named after their IAM roles in account 111111111111, its
//! two HTTP servers on free loopback ports, and helpers to read them.

use std::path::PathBuf;
use std::time::Duration;

use super::reader::Reader;
use super::{free_port, http_get, metric, try_http_get, Running, Sandbox};

/// The account of every test role.
pub const ACCOUNT: &str = "111111111111";

/// A running sidecar.
pub struct Sidecar {
    /// The process.
    pub running: Running,
    /// `http://127.0.0.1:<server.listen port>`.
    pub status: String,
    /// `http://127.0.0.1:<credentials_endpoint port>`.
    pub endpoint: String,
    /// The output directory.
    pub out: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
}

impl Sidecar {
    /// The configuration: `roles` (role `r` is `arn:aws:iam::111111111111:role/r`, session
    /// `rr-r`), fast retries, then `extra` top-level YAML (which may replace `refresh`).
    pub fn config_text(
        sb: &Sandbox,
        sts_url: &str,
        roles: &[&str],
        extra: &str,
        status: u16,
        endpoint: u16,
    ) -> String {
        let refresh = if extra.contains("refresh:") {
            ""
        } else {
            "refresh:\n  backoff_initial: 100ms\n  backoff_max: 1s\n"
        };
        let mut text = format!(
            "sts:\n  endpoint_url: {sts_url}\n{refresh}{extra}outputs:\n  directory: {}\nserver:\n  listen: 127.0.0.1:{status}\n\
             credentials_endpoint:\n  listen: 127.0.0.1:{endpoint}\nroles:\n",
            sb.path("out").display()
        );
        for r in roles {
            text.push_str(&format!("  - name: {r}\n    role_arn: arn:aws:iam::{ACCOUNT}:role/{r}\n    session_name: rr-{r}\n"));
        }
        text
    }

    /// Starts `run` and waits until its status server answers.
    pub fn start(sb: &Sandbox, sts_url: &str, roles: &[&str], extra: &str) -> Sidecar {
        let (status, endpoint) = (free_port(), free_port());
        let config = sb.write(
            "config.yaml",
            &Self::config_text(sb, sts_url, roles, extra, status, endpoint),
        );
        let mut cmd = sb.rolerelay();
        cmd.args(["run", "--config"]).arg(&config);
        let log = sb.path(&format!("run-{}.log", free_port()));
        let sidecar = Sidecar {
            running: Running::start(cmd, log),
            status: format!("http://127.0.0.1:{status}"),
            endpoint: format!("http://127.0.0.1:{endpoint}"),
            out: sb.path("out"),
            config,
        };
        sidecar.wait_for("the status server", Duration::from_secs(20), || {
            try_http_get(&format!("{}/healthz", sidecar.status), &[]).is_ok()
        });
        sidecar
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
