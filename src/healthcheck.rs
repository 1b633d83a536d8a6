//! `rolerelay healthcheck`: GET a URL and report whether it answered 200, for container health
//! checks in an image without curl. Plain HTTP over std, so it needs no runtime.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The path a health check that may restart or unroute the sidecar asks: it fails for a wedged
/// loop or expired credentials, never merely because STS fails while valid ones are held.
pub const DEFAULT_PATH: &str = "/servingz";

/// Where this host reaches a server listening on `listen`: a wildcard address on loopback.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// The URL `healthcheck` asks by default for a status server on `listen`.
pub fn default_url(listen: SocketAddr) -> String {
    format!("http://{}{DEFAULT_PATH}", reachable(listen))
}

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
    let mut chunk = [0u8; 4096];
    while (response.len() as u64) < limit && !complete(&response) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            // A server that keeps the connection open after a short answer: what came is it.
            Err(_) if !response.is_empty() => break,
            Err(e) => return Err(io(e)),
        }
    }
    response.truncate(limit as usize);
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

/// Whether `response` holds its head and as much body as its `content-length` says.
fn complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    length.is_some_and(|n| response.len() >= end + 4 + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server answering each connection with `answer`, then holding it open for a while.
    fn server(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = stream.read(&mut [0u8; 1024]);
                    let _ = stream.write_all(answer);
                    std::thread::sleep(Duration::from_secs(5));
                });
            }
        });
        url
    }

    #[test]
    fn the_default_url_reaches_a_wildcard_listen_address_on_loopback() {
        let url = |listen: &str| default_url(listen.parse().unwrap());
        assert_eq!(url("0.0.0.0:9090"), "http://127.0.0.1:9090/servingz");
        assert_eq!(url("[::]:9090"), "http://[::1]:9090/servingz");
        assert_eq!(url("10.0.0.5:8080"), "http://10.0.0.5:8080/servingz");
    }

    #[test]
    fn a_short_answer_on_a_connection_left_open_is_read_without_waiting() {
        // The connection outlives the timeout: reading to its end would fail.
        let url = server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert!(check(&url, Duration::from_secs(2)).is_ok());
        assert_eq!(
            get(&url, Duration::from_secs(2), 1 << 20).unwrap(),
            ("200".to_string(), "ok".to_string())
        );
    }

    #[test]
    fn other_codes_and_non_http_answers_fail() {
        let url = server(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        assert!(matches!(
            check(&url, Duration::from_secs(2)),
            Err(HealthcheckError::Status { status, .. }) if status == "503"
        ));
        let url = server(b"SSH-2.0-OpenSSH\r\n");
        assert!(check(&url, Duration::from_secs(1)).is_err());
        assert!(matches!(
            check("https://127.0.0.1/readyz", Duration::from_secs(1)),
            Err(HealthcheckError::BadUrl(_))
        ));
    }
}
