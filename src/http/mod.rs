//! The two HTTP servers: [`status`] on `server.listen` (`/healthz`, `/readyz`, `/metrics`,
//! `/status`) and [`endpoint`] on `credentials_endpoint.listen`; the server loop and the
//! response helpers they share.
//!
//! Both read a [`View`] of what the refresh loops record, never the loops themselves.

pub mod endpoint;
pub mod status;

use std::convert::Infallible;
use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::state::State;

/// What the HTTP servers read.
#[derive(Clone, Debug)]
pub struct View {
    /// Every role's state, as the refresh loops record it.
    pub state: State,
    /// Rendered at `/metrics`; the endpoint counts its requests there.
    pub metrics: Arc<Metrics>,
    /// Where the time comes from.
    pub clock: Clock,
}

/// What both servers answer: a whole body, already rendered.
pub type Response = hyper::Response<Full<Bytes>>;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A response with a status code, a content type and a body; never cached.
pub fn respond(code: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut response = Response::new(Full::new(body.into()));
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

/// The 404 of both servers.
pub fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "message": "not found" }),
    )
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, each request answered at once by
/// `answer`; then stops accepting and lets the requests in flight finish. HTTP/1 only: no
/// credential client asks a sidecar for HTTP/2. A client has [`HEADER_READ_TIMEOUT`] to send
/// its headers.
pub async fn serve(
    listener: TcpListener,
    answer: impl Fn(&Request<Incoming>) -> Response + Clone + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        std::future::ready(Ok::<_, Infallible>(answer(&request)))
    });
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
