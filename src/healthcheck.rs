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
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).map_err(io)? {
            0 => break,
            n => read += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..read]).to_string();
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or(line.trim())
        .to_string();
    if status == "200" {
        Ok(())
    } else {
        Err(HealthcheckError::Status {
            url: url.to_string(),
            status,
        })
    }
}
