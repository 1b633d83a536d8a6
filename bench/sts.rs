//! A fast stand-in for STS, for the fleet-scale benchmarks (bench/run.py), where moto would be
//! the bottleneck: it answers `AssumeRole` as STS does (a fresh random key id, secret and session
//! token, an `Expiration` `DurationSeconds` ahead, the assumed-role ARN) after a set latency,
//! and above an optional token-bucket quota answers STS's own `Throttling` error, as STS does when
//! an account's request rate is exceeded. `GET /stats` returns what it counted, as JSON.
//!
//! `cargo run --release --example sts -- 127.0.0.1:PORT [--latency 5ms] [--rate 50 --burst 50]`
//!
//! It checks no signature: it stands in for STS's answers and its quota, not its authentication.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the command line sets.
struct Options {
    listen: String,
    latency: Duration,
    /// Requests per second and burst of the quota; none without `--rate`.
    quota: Option<(f64, f64)>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .ok_or("usage: sts HOST:PORT [--latency 5ms] [--rate R [--burst B]]")?;
    let (mut latency, mut rate, mut burst) = (Duration::ZERO, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--latency" => {
                latency = humantime::parse_duration(&value).map_err(|e| e.to_string())?
            }
            "--rate" => rate = Some(value.parse::<f64>().map_err(|e| e.to_string())?),
            "--burst" => burst = Some(value.parse::<f64>().map_err(|e| e.to_string())?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let quota = rate.map(|rate| (rate, burst.unwrap_or(rate)));
    Ok(Options {
        listen,
        latency,
        quota,
    })
}

/// A token bucket: `rate` tokens a second, holding at most `burst`; full at the start.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        let granted = self.tokens >= 1.0;
        if granted {
            self.tokens -= 1.0;
        }
        granted
    }
}

/// What was asked and answered, per second since the first request.
#[derive(Default)]
struct Stats {
    first: Option<Instant>,
    /// `[calls, successes, throttled]` for each second since the first request.
    per_second: Vec<[u64; 3]>,
}

impl Stats {
    fn count(&mut self, now: Instant, throttled: bool) {
        let first = *self.first.get_or_insert(now);
        let second = now.duration_since(first).as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, [0; 3]);
        }
        let slot = &mut self.per_second[second];
        slot[0] += 1;
        slot[if throttled { 2 } else { 1 }] += 1;
    }

    fn json(&self) -> String {
        let total = |i: usize| self.per_second.iter().map(|s| s[i]).sum::<u64>();
        let seconds: Vec<String> = self
            .per_second
            .iter()
            .map(|[c, s, t]| format!("[{c},{s},{t}]"))
            .collect();
        format!(
            "{{\"calls\":{},\"successes\":{},\"throttled\":{},\"per_second\":[{}]}}",
            total(0),
            total(1),
            total(2),
            seconds.join(",")
        )
    }
}

struct Server {
    latency: Duration,
    bucket: Option<Mutex<Bucket>>,
    stats: Mutex<Stats>,
}

fn main() {
    let options = options().unwrap_or_else(|e| {
        eprintln!("sts: {e}");
        std::process::exit(2)
    });
    let server = Arc::new(Server {
        latency: options.latency,
        bucket: options.quota.map(|(rate, burst)| {
            Mutex::new(Bucket {
                rate,
                burst,
                tokens: burst,
                at: Instant::now(),
            })
        }),
        stats: Mutex::new(Stats::default()),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&options.listen)
            .await
            .expect("the listen address is free");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(server.clone(), request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    server: Arc<Server>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() == Method::GET && request.uri().path() == "/stats" {
        let json = server.stats.lock().unwrap().json();
        return Ok(reply(StatusCode::OK, "application/json", json));
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = form(&String::from_utf8_lossy(&body));
    let now = Instant::now();
    let granted = server
        .bucket
        .as_ref()
        .is_none_or(|b| b.lock().unwrap().take(now));
    server.stats.lock().unwrap().count(now, !granted);
    if !server.latency.is_zero() {
        // tokio's timer ticks in whole milliseconds and rounds up: 5 ms became 6 and more. A
        // thread of the blocking pool sleeping to the deadline keeps the latency as configured.
        let deadline = now + server.latency;
        let _ = tokio::task::spawn_blocking(move || {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()))
        })
        .await;
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    Ok(match (granted, field("Action")) {
        (false, _) => error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "Throttling",
            "Rate exceeded",
        ),
        (true, Some("AssumeRole")) => match (field("RoleArn"), field("RoleSessionName")) {
            (Some(role_arn), Some(session)) => {
                let duration = field("DurationSeconds")
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(3600);
                assume_role(role_arn, session, duration)
            }
            _ => error(
                StatusCode::BAD_REQUEST,
                "Sender",
                "ValidationError",
                "RoleArn and RoleSessionName are required",
            ),
        },
        (true, Some("GetCallerIdentity")) => caller_identity(),
        (true, _) => error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "InvalidAction",
            "only AssumeRole and GetCallerIdentity",
        ),
    })
}

/// The AssumeRole reply for `role_arn` (`arn:aws:iam::<account>:role/[path/]<name>`).
fn assume_role(role_arn: &str, session: &str, duration: u64) -> Response<Full<Bytes>> {
    let Some((account, name)) = role_arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(":role/"))
        .map(|(account, path)| (account, path.rsplit('/').next().unwrap_or(path)))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "Sender",
            "ValidationError",
            "RoleArn is not a role ARN",
        );
    };
    #[allow(clippy::disallowed_methods)] // a stand-in server stamps real expirations
    let expiration = SystemTime::now() + Duration::from_secs(duration);
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n\
         <AssumeRoleResult>\n\
         <AssumedRoleUser><AssumedRoleId>AROA{role_id}:{session}</AssumedRoleId>\
         <Arn>arn:aws:sts::{account}:assumed-role/{name}/{session}</Arn></AssumedRoleUser>\n\
         <Credentials><AccessKeyId>ASIA{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
         <SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\n\
         </AssumeRoleResult>\n\
         <ResponseMetadata><RequestId>{request}</RequestId></ResponseMetadata>\n\
         </AssumeRoleResponse>\n",
        role_id = random(UPPER, 17),
        key = random(UPPER, 16),
        secret = random(BASE64, 40),
        token = random(BASE64, 356),
        expiration = humantime::format_rfc3339_seconds(expiration),
        request = request_id(),
    );
    reply(StatusCode::OK, "text/xml", body)
}

fn caller_identity() -> Response<Full<Bytes>> {
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>arn:aws:iam::222222222222:user/bench</Arn>\
         <UserId>AIDA{}</UserId><Account>222222222222</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>\n",
        random(UPPER, 17),
        request_id()
    );
    reply(StatusCode::OK, "text/xml", body)
}

/// An STS error, shaped as STS's query protocol sends one.
fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>{}</RequestId></ErrorResponse>\n",
        request_id()
    );
    reply(status, "text/xml", body)
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        content_type.parse().expect("a header value"),
    );
    response
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[fastrand::usize(..alphabet.len())] as char)
        .collect()
}

fn request_id() -> String {
    let hex = random(b"0123456789abcdef", 32);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The pairs of a form-urlencoded body, decoded.
fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
