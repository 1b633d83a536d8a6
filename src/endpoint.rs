//! The container-credentials endpoint (the protocol of ECS task roles and EKS Pod Identity):
//! `GET /v1/credentials/<role>` with `Authorization: <token>`.
//!
//! An SDK pointed at it with `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` refreshes by itself before expiry.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::clock;
use crate::credentials::{rfc3339, Credentials, Secret, SecretBytes};
use crate::http::{bytes_response, json, not_found};
use crate::metrics::{Metrics, UNKNOWN_ROLE};
use crate::state::{Lookup, State};

/// What the endpoint reads.
#[derive(Clone, Debug)]
pub struct EndpointContext {
    /// Every role's state.
    pub state: State,
    /// For `rolerelay_endpoint_requests_total`.
    pub metrics: Arc<Metrics>,
    /// The token a request must carry.
    pub token: Arc<Secret>,
}

/// A new random token: 32 bytes from the operating system's generator, hex encoded (256 bits).
pub fn new_token() -> Secret {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Compares a presented token with the expected one in time that does not depend on where they
/// differ, so the token cannot be guessed byte by byte.
pub fn token_matches(expected: &Secret, given: Option<&str>) -> bool {
    let (expected, given) = (
        expected.expose().as_bytes(),
        given.unwrap_or_default().as_bytes(),
    );
    if expected.len() != given.len() {
        return false;
    }
    expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerCredentials<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
    role_arn: &'a str,
}

/// The endpoint's routes; anything else is 404.
pub fn routes(
    ctx: EndpointContext,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let metrics = ctx.metrics.clone();
    let ctx = warp::any().map(move || ctx.clone());
    warp::get()
        .and(warp::path!("v1" / "credentials" / String))
        .and(warp::header::optional::<String>("authorization"))
        .and(ctx)
        .map(|role: String, auth: Option<String>, ctx: EndpointContext| {
            credentials(&ctx, &role, auth.as_deref())
        })
        .recover(move |_| {
            // Any other path or method: counted too, as a request for no role.
            metrics
                .endpoint_requests_total
                .with_label_values(&[UNKNOWN_ROLE, "404"])
                .inc();
            async { Ok::<_, Infallible>(not_found()) }
        })
        .unify()
}

fn credentials(ctx: &EndpointContext, role: &str, auth: Option<&str>) -> Response {
    let lookup = ctx.state.endpoint_lookup(role, clock::now());
    let label = if matches!(lookup, Lookup::Unknown) {
        UNKNOWN_ROLE
    } else {
        role
    };
    let message =
        |code: StatusCode, text: &str| (code, json(code, &serde_json::json!({ "message": text })));
    let (code, response) = if !token_matches(&ctx.token, auth) {
        message(
            StatusCode::UNAUTHORIZED,
            "missing or wrong Authorization token",
        )
    } else {
        match lookup {
            Lookup::Unknown => message(StatusCode::NOT_FOUND, "no such role"),
            Lookup::Unavailable => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "no valid credentials for this role yet",
            ),
            Lookup::Ready(body) => (
                StatusCode::OK,
                bytes_response(StatusCode::OK, body.expose()),
            ),
        }
    };
    ctx.metrics
        .endpoint_requests_total
        .with_label_values(&[label, code.as_str()])
        .inc();
    response
}

/// The endpoint's 200 answer for `creds`, rendered once per generation of credentials.
pub fn render(creds: &Credentials) -> SecretBytes {
    let body = ContainerCredentials {
        access_key_id: &creds.access_key_id,
        secret_access_key: creds.secret_access_key.expose(),
        token: creds.session_token.expose(),
        expiration: rfc3339(creds.expiration),
        role_arn: &creds.role_arn,
    };
    SecretBytes::new(serde_json::to_vec(&body).expect("plain strings serialize"))
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
