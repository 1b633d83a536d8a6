//! `rolerelay healthcheck`: GET a URL and report whether it answered 200, for container health
//! checks in an image without curl. Plain HTTP over std, so it needs no runtime.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why the check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The URL is not `http://host:port/path`.
    #[error("{0:?} is not an http:// URL like http://127.0.0.1:9090/readyz")]
    BadUrl(String),
    /// Connecting, sending or receiving failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL checked.
        url: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered something other than 200.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL checked.
        url: String,
        /// The status line's code (or the line itself if unreadable).
        status: String,
    },
}

/// GETs `url` within `timeout` (for each of connect, send and receive); Ok on HTTP 200.
pub fn check(url: &str, timeout: Duration) -> Result<(), HealthcheckError> {
    let (status, _) = get(url, timeout, 64)?;
    if status == "200" {
        Ok(())
    } else {
        Err(HealthcheckError::Status {
            url: url.to_string(),
            status,
        })
    }
}

/// GETs `url` within `timeout` (for each of connect, send and receive), reading at most `limit`
/// bytes of the answer: its status code (or its first line if unreadable) and its body.
pub fn get(url: &str, timeout: Duration, limit: u64) -> Result<(String, String), HealthcheckError> {
    let bad = || HealthcheckError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let io = |source| HealthcheckError::Io {
        url: url.to_string(),
        source,
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: rolerelay-healthcheck\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    stream.take(limit).read_to_end(&mut response).map_err(io)?;
    let response = String::from_utf8_lossy(&response);
    let line = response.lines().next().unwrap_or_default();
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or(line.trim())
        .to_string();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
