//! The container-credentials endpoint (the protocol of ECS task roles and EKS Pod Identity):
//! `GET /v1/credentials/<role>` with `Authorization: <token>`.
//!
//! An SDK pointed at it with `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` refreshes by itself before expiry.
//!
//! The token is checked before the role is looked at. With `clients`, each client's token opens
//! its own roles only (403 for any other), and every answer is logged once, for the audit.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, StatusCode};
use tracing::info;

use super::{bytes_response, json, not_found, Response, View};
use crate::access::{Access, Decision};
use crate::config::{one_line, ClientName};
use crate::metrics::{NO_CLIENT, UNKNOWN_ROLE};
use crate::state::EndpointAnswer;

/// The message of the 401 answer; `doctor` recognises the running sidecar by it.
pub const UNAUTHORIZED: &str = "missing or wrong Authorization token";

/// The message of the 403 answer: it names neither the role asked for nor the client's.
pub const FORBIDDEN: &str = "this token may not fetch this role";

/// The path of a role's credentials, before the role's name.
const CREDENTIALS_PATH: &str = "/v1/credentials/";

/// At most this much of a role name a client sent goes into the audit log.
const MAX_LOGGED_ROLE: usize = 64;

/// What the endpoint reads: the roles' state, and the tokens a request may carry.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The state, metrics and clock.
    pub view: View,
    /// The tokens, and what each opens.
    pub access: Arc<Access>,
}

/// The endpoint's answer to `request`: every request is answered, counted and (with clients)
/// logged here; anything but `GET /v1/credentials/<role>` is 404. One path needs no routing
/// framework, and SDKs ask it often: no filter chain, no copy of the headers.
pub fn answer(endpoint: &Endpoint, request: &Request<Incoming>) -> Response {
    let auth = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let role = (request.method() == Method::GET)
        .then(|| request.uri().path().strip_prefix(CREDENTIALS_PATH))
        .flatten()
        .filter(|role| !role.is_empty() && !role.contains('/'));
    answer_for(endpoint, role, auth)
}

/// The answer to a request for `role` (none: any other path or method) carrying `auth`.
fn answer_for(endpoint: &Endpoint, role: Option<&str>, auth: Option<&str>) -> Response {
    let view = &endpoint.view;
    let now = view.clock.now();
    let decision = endpoint.access.decide(auth, role.unwrap_or_default());
    let message =
        |code: StatusCode, text: &str| (code, json(code, &serde_json::json!({ "message": text })));
    let answer = role.map(|role| view.state.endpoint_answer(role, now));
    // A role a client made up is never a label.
    let configured = role.filter(|_| !matches!(answer, None | Some(EndpointAnswer::UnknownRole)));
    let label = configured.unwrap_or(UNKNOWN_ROLE);
    let mut served_key = None;
    let (code, response) = match (answer, &decision) {
        (None, _) => (StatusCode::NOT_FOUND, not_found()),
        (Some(_), Decision::Unknown) => message(StatusCode::UNAUTHORIZED, UNAUTHORIZED),
        (Some(_), Decision::Forbidden(_)) => message(StatusCode::FORBIDDEN, FORBIDDEN),
        (Some(EndpointAnswer::UnknownRole), Decision::Allowed(_)) => {
            message(StatusCode::NOT_FOUND, "no such role")
        }
        (Some(EndpointAnswer::NoValidCredentials), Decision::Allowed(_)) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid credentials for this role yet",
        ),
        (
            Some(EndpointAnswer::Ready {
                body,
                access_key_id,
            }),
            Decision::Allowed(_),
        ) => {
            served_key = Some(access_key_id);
            (
                StatusCode::OK,
                bytes_response(StatusCode::OK, body.expose()),
            )
        }
    };
    if !endpoint.access.by_client() {
        view.metrics
            .record_endpoint_request(label, None, code.as_u16());
        return response;
    }
    let client = match &decision {
        Decision::Unknown | Decision::Allowed(None) => None,
        Decision::Forbidden(client) | Decision::Allowed(Some(client)) => Some(client),
    };
    audit(client, role, code, served_key.as_deref());
    if let (Some(client), Some(role), Some(_)) = (client, configured, &served_key) {
        if let Ok(role) = role.parse() {
            view.state.record_fetch(client, &role, now);
        }
    }
    let client_label = client.map_or(NO_CLIENT, ClientName::as_str);
    view.metrics
        .record_endpoint_request(label, Some(client_label), code.as_u16());
    response
}

/// Logs one answer of the endpoint: who (`_none` without a valid token) asked for what, what it
/// got, and the access key id served, never a secret. The role is as the client sent it, on one
/// line and cut short.
fn audit(client: Option<&ClientName>, role: Option<&str>, code: StatusCode, served: Option<&str>) {
    let role: String = one_line(role.unwrap_or(UNKNOWN_ROLE))
        .chars()
        .take(MAX_LOGGED_ROLE)
        .collect();
    info!(
        client = client.map_or(NO_CLIENT, ClientName::as_str),
        role = %role,
        code = code.as_u16(),
        access_key_id = served,
        "credentials endpoint request"
    );
}
