//! `server.listen`: `/healthz`, `/readyz`, `/metrics` and `/status`, and the server loop both
//! HTTP listeners share.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::ErrorKind;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{debug, warn};
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::clock;
use crate::credentials::rfc3339;
use crate::refresher::Shared;
use crate::state::RoleState;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A response with a status code, a content type and a body; never cached.
pub fn respond(code: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut response = Response::new(body.into().into());
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON response.
pub fn json(code: StatusCode, value: &impl Serialize) -> Response {
    respond(
        code,
        "application/json",
        serde_json::to_vec(value).expect("plain values serialize"),
    )
}

/// A JSON response from bytes already rendered.
pub fn bytes_response(code: StatusCode, body: Bytes) -> Response {
    respond(code, "application/json", body)
}

/// The routes of `server.listen`; anything else is 404.
pub fn status_routes(
    ctx: Shared,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let ctx = warp::any().map(move || ctx.clone());
    let healthz = warp::path!("healthz")
        .and(ctx.clone())
        .map(|c: Shared| healthz(&c.state.snapshot(), clock::now()));
    let readyz = warp::path!("readyz").and(ctx.clone()).map(|c: Shared| {
        readyz(
            &c.state.snapshot(),
            clock::now(),
            c.live().policy.min_remaining,
        )
    });
    let metrics = warp::path!("metrics").and(ctx.clone()).map(|c: Shared| {
        // Readiness depends on the time: brought up to date at each scrape.
        let (now, min_remaining) = (clock::now(), c.live().policy.min_remaining);
        for (name, s) in c.state.snapshot() {
            let ready = s.readiness(now, min_remaining).is_ok();
            c.metrics
                .ready
                .with_label_values(&[name.as_str()])
                .set(i64::from(ready));
        }
        respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            c.metrics.render(),
        )
    });
    let status = warp::path!("status")
        .and(ctx)
        .map(|c: Shared| json(StatusCode::OK, &status(&c, clock::now())));
    warp::get()
        .and(
            healthz
                .or(readyz)
                .unify()
                .or(metrics)
                .unify()
                .or(status)
                .unify(),
        )
        .recover(|_| async { Ok::<_, Infallible>(not_found()) })
        .unify()
}

/// The 404 of both servers.
pub fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "message": "not found" }),
    )
}

#[derive(Serialize)]
struct Verdict<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    roles: BTreeMap<String, String>,
}

/// 200 while every role's loop shows progress; 503 naming the loops that do not.
pub fn healthz(roles: &BTreeMap<crate::config::RoleName, RoleState>, now: SystemTime) -> Response {
    verdict(roles, |s| s.liveness(now), "ok", "unhealthy")
}

/// 200 when every role is ready; 503 naming each role that is not, and why.
pub fn readyz(
    roles: &BTreeMap<crate::config::RoleName, RoleState>,
    now: SystemTime,
    min_remaining: Duration,
) -> Response {
    verdict(
        roles,
        |s| s.readiness(now, min_remaining),
        "ready",
        "not ready",
    )
}

fn verdict(
    roles: &BTreeMap<crate::config::RoleName, RoleState>,
    check: impl Fn(&RoleState) -> Result<(), String>,
    good: &str,
    bad: &str,
) -> Response {
    let failing: BTreeMap<String, String> = roles
        .iter()
        .filter_map(|(name, s)| check(s).err().map(|why| (name.to_string(), why)))
        .collect();
    if failing.is_empty() {
        json(
            StatusCode::OK,
            &Verdict {
                status: good,
                roles: failing,
            },
        )
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &Verdict {
                status: bad,
                roles: failing,
            },
        )
    }
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
    write_errors: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct ErrorStatus {
    kind: &'static str,
    code: Option<String>,
    message: String,
}

/// The `/status` document.
pub fn status(shared: &Shared, now: SystemTime) -> serde_json::Value {
    let min_remaining = shared.live().policy.min_remaining;
    let roles: Vec<RoleStatus> = shared
        .state
        .snapshot()
        .iter()
        .map(|(name, s)| {
            let readiness = s.readiness(now, min_remaining);
            RoleStatus {
                name: name.to_string(),
                role_arn: s.role_arn.clone(),
                ready: readiness.is_ok(),
                not_ready_reason: readiness.err(),
                access_key_id: s.credentials.as_ref().map(|c| c.access_key_id.clone()),
                expiration: s.credentials.as_ref().map(|c| rfc3339(c.expiration)),
                last_success: s.last_success.map(rfc3339),
                next_refresh: s.next_refresh.map(rfc3339),
                consecutive_failures: s.consecutive_failures,
                last_error: s.last_error.as_ref().map(|e| ErrorStatus {
                    kind: e.kind.metric_label(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                }),
                write_errors: s.write_errors.clone(),
            }
        })
        .collect();
    let last_reload = shared.state.reload().map(|r| {
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
        "last_reload": last_reload,
    })
}

/// Serves `routes` over HTTP/1.1 on `listener` until `shutdown` completes; then stops accepting
/// and lets the requests in flight finish.
///
/// warp's own server also speaks HTTP/2, which no credential client asks a sidecar for; serving
/// the filter with hyper's HTTP/1 connection keeps that code out of the binary, and bounds how
/// long a client may take to send its headers.
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let service = TowerToHyperService::new(warp::service(routes));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // Failed accepts since the last good one: the first of a run is worth a warning.
    let mut failing = 0u64;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    failing = 0;
                    stream
                }
                // A client or network that gave up before the accept: nothing to wait for.
                Err(e) if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionRefused
                        | ErrorKind::NetworkDown
                        | ErrorKind::NetworkUnreachable
                        | ErrorKind::HostUnreachable
                ) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: let connections close before retrying.
                    failing += 1;
                    match failing {
                        1 => warn!(error = %e, "accepting a connection failed; retrying every 100 ms"),
                        _ => debug!(error = %e, "accepting a connection failed again"),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}
