//! `server.listen`: `/healthz`, `/readyz`, `/servingz`, `/metrics` and `/status`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;

use super::{json, not_found, respond, Response, View};
use crate::config::{ClientName, RoleName};
use crate::credentials::rfc3339;
use crate::state::{ClientState, ReloadStatus, RoleState};

/// The content type of the Prometheus text exposition.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The status server's answer to `request`: `GET` of one of its paths (a query is ignored);
/// anything else is 404.
pub fn answer(view: &View, request: &Request<Incoming>) -> Response {
    match request.method() {
        &Method::GET => route(view, request.uri().path()),
        _ => not_found(),
    }
}

/// The answer to `GET path`. The roles' state is read in place: copying it at every probe cost
/// more than the probes' own work with thousands of roles.
fn route(view: &View, path: &str) -> Response {
    let (now, state) = (view.clock.now(), &view.state);
    match path {
        "/healthz" => state.read_roles(|roles| healthz(roles, now)),
        "/readyz" => {
            let min_remaining = state.min_remaining();
            state.read_roles(|roles| readyz(roles, now, min_remaining))
        }
        "/servingz" => state.read_roles(|roles| servingz(roles, now)),
        "/metrics" => {
            // Readiness depends on the time: brought up to date at each scrape.
            let min_remaining = state.min_remaining();
            state.for_each(|name, role| {
                let ready = role.readiness(now, min_remaining).is_ok();
                view.metrics.set_ready(name.as_str(), ready);
            });
            respond(StatusCode::OK, PROMETHEUS_TEXT, view.metrics.render())
        }
        "/status" => {
            let (clients, reload) = (state.clients(), state.reload());
            let min_remaining = state.min_remaining();
            let document = state.read_roles(|roles| {
                serde_json::to_vec(&status(
                    roles,
                    &clients,
                    reload.as_ref(),
                    min_remaining,
                    now,
                ))
            });
            respond(
                StatusCode::OK,
                "application/json",
                document.expect("plain values serialize"),
            )
        }
        _ => not_found(),
    }
}

/// The body of `/healthz` and `/readyz`.
#[derive(Serialize)]
struct Verdict<'a> {
    status: &'a str,
    /// The roles that fail the check, with why.
    #[serde(skip_serializing_if = "Failing::is_empty")]
    roles: Failing<'a>,
}

/// The failing roles in name order, as a JSON object. Borrowed from the state: a probe of
/// thousands of roles that are not ready yet copies no name and builds no map.
struct Failing<'a>(Vec<(&'a str, String)>);

impl Failing<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Failing<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, why)| (*name, why)))
    }
}

/// 200 while every role's loop shows progress; 503 naming the loops that do not.
pub fn healthz(roles: &BTreeMap<RoleName, RoleState>, now: SystemTime) -> Response {
    verdict(roles, |s| s.liveness(now), "ok", "unhealthy")
}

/// 200 while every role serves unexpired credentials from a live loop, even while refreshing
/// them fails; 503 naming each role that does not (before its first credentials, or once they
/// expired).
pub fn servingz(roles: &BTreeMap<RoleName, RoleState>, now: SystemTime) -> Response {
    verdict(roles, |s| s.serving(now), "serving", "not serving")
}

/// 200 when every role is ready; 503 naming each role that is not, and why.
pub fn readyz(
    roles: &BTreeMap<RoleName, RoleState>,
    now: SystemTime,
    min_remaining: Option<Duration>,
) -> Response {
    verdict(
        roles,
        |s| s.readiness(now, min_remaining),
        "ready",
        "not ready",
    )
}

fn verdict(
    roles: &BTreeMap<RoleName, RoleState>,
    check: impl Fn(&RoleState) -> Result<(), String>,
    good: &str,
    bad: &str,
) -> Response {
    let failing = Failing(
        roles
            .iter()
            .filter_map(|(name, s)| check(s).err().map(|why| (name.as_str(), why)))
            .collect(),
    );
    let (code, status) = match failing.is_empty() {
        true => (StatusCode::OK, good),
        false => (StatusCode::SERVICE_UNAVAILABLE, bad),
    };
    json(
        code,
        &Verdict {
            status,
            roles: failing,
        },
    )
}

/// One role in `/status`. Never a secret: the access key id is the only part of a credential.
#[derive(Serialize)]
struct RoleStatus {
    name: String,
    role_arn: String,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_ready_reason: Option<String>,
    access_key_id: Option<String>,
    expiration: Option<String>,
    last_success: Option<String>,
    next_refresh: Option<String>,
    consecutive_failures: u32,
    last_error: Option<ErrorStatus>,
    write_errors: BTreeMap<String, String>,
}

/// The last failed refresh of a role in `/status`.
#[derive(Serialize)]
struct ErrorStatus {
    kind: &'static str,
    code: Option<String>,
    message: String,
}

impl RoleStatus {
    fn new(
        name: &RoleName,
        role: &RoleState,
        now: SystemTime,
        min_remaining: Option<Duration>,
    ) -> Self {
        let readiness = role.readiness(now, min_remaining);
        RoleStatus {
            name: name.to_string(),
            role_arn: role.role_arn.clone(),
            ready: readiness.is_ok(),
            not_ready_reason: readiness.err(),
            access_key_id: role.credentials.as_ref().map(|c| c.access_key_id.clone()),
            expiration: role.credentials.as_ref().map(|c| rfc3339(c.expiration)),
            last_success: role.last_success.map(rfc3339),
            next_refresh: role.next_refresh.map(rfc3339),
            consecutive_failures: role.consecutive_failures,
            last_error: role.last_error.as_ref().map(|e| ErrorStatus {
                kind: e.kind.metric_label(),
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            write_errors: role.write_errors.clone(),
        }
    }
}

/// One client in `/status`: its directory, its roles, and when it last fetched each.
#[derive(Serialize)]
struct ClientStatus {
    name: String,
    directory: String,
    roles: Vec<String>,
    last_fetch: BTreeMap<String, String>,
}

impl ClientStatus {
    fn new(name: &ClientName, client: &ClientState) -> Self {
        ClientStatus {
            name: name.to_string(),
            directory: client.directory.display().to_string(),
            roles: client.roles.iter().map(RoleName::to_string).collect(),
            last_fetch: client
                .last_fetch
                .iter()
                .map(|(role, at)| (role.to_string(), rfc3339(*at)))
                .collect(),
        }
    }
}

/// The `/status` document.
pub fn status(
    roles: &BTreeMap<RoleName, RoleState>,
    clients: &BTreeMap<ClientName, ClientState>,
    reload: Option<&ReloadStatus>,
    min_remaining: Option<Duration>,
    now: SystemTime,
) -> serde_json::Value {
    let roles: Vec<RoleStatus> = roles
        .iter()
        .map(|(name, role)| RoleStatus::new(name, role, now, min_remaining))
        .collect();
    let last_reload = reload.map(|r| {
        serde_json::json!({
            "time": rfc3339(r.time),
            "result": if r.error.is_some() { "error" } else { "success" },
            "error": r.error,
            "restart_needed": r.restart_needed,
        })
    });
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "time": rfc3339(now),
        "roles": roles,
        "clients": clients
            .iter()
            .map(|(name, client)| ClientStatus::new(name, client))
            .collect::<Vec<_>>(),
        "last_reload": last_reload,
    })
}
