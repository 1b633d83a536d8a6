//! A small HTTP proxy in front of moto that can misbehave: answer an STS error itself, delay,
//! reset the connection, or forward and then rewrite or truncate moto's reply. It reads one
//! request per connection and closes it after answering. The rule can be swapped while it runs.
//! It records the access key id that signed every request, so a test knows which credentials a
//! client really used.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::now;

/// What the proxy does with a request, decided from its body (the STS query string).
pub enum Action {
    /// Pass it to moto.
    Forward,
    /// Answer with this status and body.
    Reply(u16, String),
    /// Pass it to moto and rewrite the body of moto's reply with this function.
    Rewrite(fn(&str) -> String),
    /// Pass it to moto and send only the first half of its reply's body (the length header kept).
    Truncate,
    /// Wait this long, then pass it to moto.
    Slow(Duration),
    /// Close the connection without answering.
    Reset,
}

/// Decides per request; called on the proxy's threads.
pub type Rule = Arc<dyn Fn(&str) -> Action + Send + Sync>;

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests seen so far.
    pub requests: Arc<AtomicUsize>,
    rule: Arc<RwLock<Rule>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    arrivals: Mutex<Vec<Instant>>,
    secrets: Mutex<Vec<String>>,
    calls: Mutex<Vec<Call>>,
    signed: Mutex<Vec<Signed>>,
    issued: Mutex<Vec<String>>,
}

/// Any signed request as the proxy saw it: what the server was asked and with which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The STS action (`Action=` of the body), empty when there is none.
    pub action: String,
    /// The access key id of the `Authorization` header's `Credential=`.
    pub signed_by: String,
}

/// One AssumeRole call as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The role asked for (URL-decoded).
    pub role_arn: String,
    /// The access key id the request was signed with.
    pub signed_by: String,
}

/// The XML body of an STS error.
pub fn sts_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>"
    )
}

/// A rule that always does the same.
pub fn always(f: fn() -> Action) -> Rule {
    Arc::new(move |_: &str| f())
}

/// The rule of a well-behaved proxy: pass everything to moto.
pub fn forward() -> Rule {
    always(|| Action::Forward)
}

/// An AssumeRole reply (`body`) whose credentials expire `lifetime` from now; for `Rewrite`.
pub fn expire_in(body: &str, lifetime: Duration) -> String {
    expire_at(body, now() + lifetime)
}

/// An AssumeRole reply (`body`) whose credentials expire at `at`; for `Rewrite`.
pub fn expire_at(body: &str, at: SystemTime) -> String {
    let at = humantime::format_rfc3339_seconds(at);
    let start = body.find("<Expiration>").unwrap() + "<Expiration>".len();
    let end = body.find("</Expiration>").unwrap();
    format!("{}{at}{}", &body[..start], &body[end..])
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:upstream_port` applying `rule`.
    pub fn start(upstream_port: u16, rule: Rule) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let rule = Arc::new(RwLock::new(rule));
        let stats = Arc::new(Stats::default());
        let (count, shared_rule, shared_stats) = (requests.clone(), rule.clone(), stats.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (rule, count, stats) =
                    (shared_rule.clone(), count.clone(), shared_stats.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, upstream_port, &rule, &count, &stats);
                });
            }
        });
        Proxy {
            url,
            requests,
            rule,
            stats,
        }
    }

    /// Requests seen so far.
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Replaces the rule for the requests to come.
    pub fn set_rule(&self, rule: Rule) {
        *self.rule.write().unwrap() = rule;
    }

    /// The most requests that were in the proxy at once.
    pub fn max_in_flight(&self) -> usize {
        self.stats.max_in_flight.load(Ordering::SeqCst)
    }

    /// When each request arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.stats.arrivals.lock().unwrap().clone()
    }

    /// The AssumeRole calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.stats.calls.lock().unwrap().clone()
    }

    /// The AssumeRole calls so far for the role named `role` (the last part of its ARN).
    pub fn calls_of(&self, role: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.role_arn.rsplit('/').next() == Some(role))
            .count()
    }

    /// The access key ids that signed the requests for `action` so far, in arrival order: what
    /// the server saw, whatever the client believes it sent.
    pub fn signers_of(&self, action: &str) -> Vec<String> {
        let signed = self.stats.signed.lock().unwrap();
        signed
            .iter()
            .filter(|s| s.action == action)
            .map(|s| s.signed_by.clone())
            .collect()
    }

    /// The access key ids moto handed out through the proxy, in order.
    pub fn issued(&self) -> Vec<String> {
        self.stats.issued.lock().unwrap().clone()
    }

    /// Every secret key and session token moto sent through the proxy (for secret scans).
    pub fn secrets(&self) -> Vec<String> {
        self.stats.secrets.lock().unwrap().clone()
    }
}

fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    rule: &RwLock<Rule>,
    count: &AtomicUsize,
    stats: &Stats,
) -> std::io::Result<()> {
    let request = read_request(&mut client)?;
    count.fetch_add(1, Ordering::SeqCst);
    stats.arrivals.lock().unwrap().push(Instant::now());
    let now_in = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.max_in_flight.fetch_max(now_in, Ordering::SeqCst);
    let result = answer(&mut client, &request, upstream_port, rule, stats);
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    result
}

fn answer(
    client: &mut TcpStream,
    request: &[u8],
    upstream_port: u16,
    rule: &RwLock<Rule>,
    stats: &Stats,
) -> std::io::Result<()> {
    let forward = |request: &[u8], port: u16| -> std::io::Result<Vec<u8>> {
        let reply = ask_moto(request, port)?;
        let text = String::from_utf8_lossy(&reply);
        let element = |tag: &str| {
            text.split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|rest| rest.split('<').next())
                .map(str::to_string)
        };
        for tag in ["SecretAccessKey", "SessionToken"] {
            stats.secrets.lock().unwrap().extend(element(tag));
        }
        stats.issued.lock().unwrap().extend(element("AccessKeyId"));
        Ok(reply)
    };
    let body_start = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(request.len(), |p| p + 4);
    let body = String::from_utf8_lossy(&request[body_start..]).to_string();
    let head = String::from_utf8_lossy(&request[..body_start]);
    let role_arn = body.split('&').find_map(|p| p.strip_prefix("RoleArn="));
    let signed_by = head
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split('/').next());
    if let Some(signed_by) = signed_by {
        let action = body.split('&').find_map(|p| p.strip_prefix("Action="));
        stats.signed.lock().unwrap().push(Signed {
            action: action.unwrap_or_default().to_string(),
            signed_by: signed_by.to_string(),
        });
    }
    if let (Some(role_arn), Some(signed_by)) = (role_arn, signed_by) {
        stats.calls.lock().unwrap().push(Call {
            role_arn: role_arn.replace("%3A", ":").replace("%2F", "/"),
            signed_by: signed_by.to_string(),
        });
    }
    let action = { rule.read().unwrap()(&body) };
    match action {
        Action::Reply(status, text) => {
            let head = format!(
                "HTTP/1.1 {status} Proxy\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            client.write_all(head.as_bytes())?;
            client.write_all(text.as_bytes())?;
        }
        Action::Forward => client.write_all(&forward(request, upstream_port)?)?,
        Action::Slow(delay) => {
            // Wait, and give up as soon as the client hangs up, so `in_flight` counts only
            // requests a client still waits for.
            let until = Instant::now() + delay;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                client.set_read_timeout(Some(left))?;
                match client.peek(&mut [0u8; 1]) {
                    Ok(0) => return Ok(()),
                    // More bytes than the request: not a hang-up; do not spin on them.
                    Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return Ok(()),
                }
            }
            client.set_read_timeout(None)?;
            client.write_all(&forward(request, upstream_port)?)?
        }
        Action::Reset => {
            client.shutdown(Shutdown::Both)?;
            return Ok(());
        }
        Action::Truncate => {
            let reply = forward(request, upstream_port)?;
            let body_at = reply
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(reply.len(), |p| p + 4);
            let cut = body_at + (reply.len() - body_at) / 2;
            client.write_all(&reply[..cut])?;
        }
        Action::Rewrite(f) => {
            let reply = String::from_utf8_lossy(&forward(request, upstream_port)?).to_string();
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
fn ask_moto(request: &[u8], upstream_port: u16) -> std::io::Result<Vec<u8>> {
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
