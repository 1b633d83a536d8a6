//! A small HTTP proxy in front of moto that can answer some requests itself: an STS error, a
//! delay, a broken reply. It reads one request per connection and closes it after answering.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the proxy does with a request, decided from its body (the STS query string).
pub enum Action {
    /// Pass it to moto.
    Forward,
    /// Answer with this status and body.
    Reply(u16, String),
    /// Pass it to moto and rewrite the body of moto's reply with this function.
    Rewrite(fn(&str) -> String),
}

/// Decides per request; called on the proxy's threads.
pub type Rule = Arc<dyn Fn(&str) -> Action + Send + Sync>;

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests seen so far.
    pub requests: Arc<AtomicUsize>,
}

/// The XML body of an STS error.
pub fn sts_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>"
    )
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:upstream_port` applying `rule`.
    pub fn start(upstream_port: u16, rule: Rule) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let rule = rule.clone();
                let count = count.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, upstream_port, &rule, &count);
                });
            }
        });
        Proxy { url, requests }
    }

    /// Requests seen so far.
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    rule: &Rule,
    count: &AtomicUsize,
) -> std::io::Result<()> {
    let request = read_request(&mut client)?;
    count.fetch_add(1, Ordering::SeqCst);
    let body_start = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(request.len(), |p| p + 4);
    let body = String::from_utf8_lossy(&request[body_start..]).to_string();
    match rule(&body) {
        Action::Reply(status, text) => {
            let head = format!(
                "HTTP/1.1 {status} Proxy\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            client.write_all(head.as_bytes())?;
            client.write_all(text.as_bytes())?;
        }
        Action::Forward => client.write_all(&forward(&request, upstream_port)?)?,
        Action::Rewrite(f) => {
            let reply = String::from_utf8_lossy(&forward(&request, upstream_port)?).to_string();
            let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
            let body = f(body);
            let head: Vec<&str> = head
                .lines()
                .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
                .collect();
            let reply = format!(
                "{}\r\nContent-Length: {}\r\n\r\n{body}",
                head.join("\r\n"),
                body.len()
            );
            client.write_all(reply.as_bytes())?;
        }
    }
    client.flush()
}

/// Sends `request` to moto and returns its whole reply (moto closes the connection after it).
fn forward(request: &[u8], upstream_port: u16) -> std::io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    upstream.write_all(request)?;
    let mut reply = Vec::new();
    upstream.read_to_end(&mut reply)?;
    Ok(reply)
}

/// Reads one HTTP request: the head, then `Content-Length` bytes of body.
fn read_request(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(data);
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Ok(data);
            }
        }
    }
}
