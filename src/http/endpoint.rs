//! The container-credentials endpoint (the protocol of ECS task roles and EKS Pod Identity):
//! `GET /v1/credentials/<role>` with `Authorization: <token>`.
//!
//! An SDK pointed at it with `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` refreshes by itself before expiry.

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{bytes_response, json, not_found, View};
use crate::credentials::Secret;
use crate::metrics::UNKNOWN_ROLE;
use crate::state::EndpointAnswer;

/// The message of the 401 answer; `doctor` recognises the running sidecar by it.
pub const UNAUTHORIZED: &str = "missing or wrong Authorization token";

/// What the endpoint reads: the roles' state, and the token a request must carry.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The state, metrics and clock.
    pub view: View,
    /// The token a request must carry.
    pub token: Arc<Secret>,
}

/// A new random token: 32 bytes from the operating system's generator, hex encoded (256 bits).
pub fn new_token() -> Secret {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Whether a request carries the token, compared by [`Secret::matches`] in time that does not
/// depend on where they differ, so the token cannot be guessed byte by byte.
pub fn token_matches(expected: &Secret, given: Option<&str>) -> bool {
    given.is_some_and(|given| expected.matches(given.as_bytes()).into())
}

/// The endpoint's routes; anything else is 404.
pub fn routes(
    endpoint: Endpoint,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let metrics = endpoint.view.metrics.clone();
    let endpoint = warp::any().map(move || endpoint.clone());
    warp::get()
        .and(warp::path!("v1" / "credentials" / String))
        .and(warp::header::optional::<String>("authorization"))
        .and(endpoint)
        .map(|role: String, auth: Option<String>, endpoint: Endpoint| {
            credentials(&endpoint, &role, auth.as_deref())
        })
        .recover(move |_| {
            // Any other path or method: counted too, as a request for no role.
            metrics.record_endpoint_request(UNKNOWN_ROLE, StatusCode::NOT_FOUND.as_u16());
            async { Ok::<_, Infallible>(not_found()) }
        })
        .unify()
}

fn credentials(endpoint: &Endpoint, role: &str, auth: Option<&str>) -> Response {
    let view = &endpoint.view;
    let answer = view.state.endpoint_answer(role, view.clock.now());
    // A role a client made up is never a label.
    let label = match answer {
        EndpointAnswer::UnknownRole => UNKNOWN_ROLE,
        _ => role,
    };
    let message =
        |code: StatusCode, text: &str| (code, json(code, &serde_json::json!({ "message": text })));
    let (code, response) = if !token_matches(&endpoint.token, auth) {
        message(StatusCode::UNAUTHORIZED, UNAUTHORIZED)
    } else {
        match answer {
            EndpointAnswer::UnknownRole => message(StatusCode::NOT_FOUND, "no such role"),
            EndpointAnswer::NoValidCredentials => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "no valid credentials for this role yet",
            ),
            EndpointAnswer::Ready(body) => (
                StatusCode::OK,
                bytes_response(StatusCode::OK, body.expose()),
            ),
        }
    };
    view.metrics.record_endpoint_request(label, code.as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = Secret::new("abcdef");
        assert!(token_matches(&t, Some("abcdef")));
        for wrong in [
            None,
            Some(""),
            Some("abcdeF"),
            Some("abcde"),
            Some("abcdefg"),
            Some("abcdef\n"),
        ] {
            assert!(!token_matches(&t, wrong), "{wrong:?}");
        }
    }
}
