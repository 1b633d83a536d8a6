//! The ceiling of the endpoint benchmark: about the least an HTTP/1 server can do per request on
//! the same runtime as rolerelay (tokio, one thread) — a fixed body of the endpoint's size, with
//! no routing, no token check and no JSON.
//!
//! `cargo run --release --example ceiling -- 127.0.0.1:PORT`

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// About the size of the endpoint's 200 answer.
const BODY_SIZE: usize = 1200;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9912".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        let body = Bytes::from(vec![b'x'; BODY_SIZE]);
        loop {
            let (stream, _) = listener.accept().await?;
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
