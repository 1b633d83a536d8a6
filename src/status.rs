//! `rolerelay status`: asks a running sidecar for its `/status` and shows it to a person (a
//! table) or a script (JSON), with an exit code that says whether every role is ready. Plain HTTP
//! over std ([`healthcheck::get`]), so it runs in the scratch image with no runtime.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer};

use crate::config::one_line;
use crate::healthcheck::{self, HealthcheckError};

/// The path of the status document on `server.listen`.
pub const PATH: &str = "/status";

/// Exit code when every role is ready.
pub const EXIT_READY: u8 = 0;
/// Exit code when a role is not ready, or there is none.
pub const EXIT_NOT_READY: u8 = 1;
/// Exit code when no rolerelay `/status` answered (and for a configuration error).
pub const EXIT_UNREACHABLE: u8 = 2;

/// The most of an answer read: far more than `/status` of hundreds of roles.
const BODY_LIMIT: u64 = 16 << 20;

/// The `/status` document, as far as this command shows it. Unknown fields are ignored and
/// most fields may be missing, so that an older or newer sidecar is still shown; `time` and
/// `roles` are required, since without them the answer is not a status document at all (a
/// `/healthz` answer, say).
#[derive(Debug, Deserialize)]
pub struct Document {
    /// The sidecar's version.
    #[serde(default)]
    pub version: String,
    /// The sidecar's clock when it answered: every time shown is relative to it.
    #[serde(deserialize_with = "rfc3339")]
    pub time: SystemTime,
    /// Every role.
    pub roles: Vec<Role>,
    /// Every client (none without `clients:`).
    #[serde(default)]
    pub clients: Vec<Client>,
    /// The last configuration reload, if there was one.
    #[serde(default)]
    pub last_reload: Option<Reload>,
}

/// One role of the document. Times are kept as sent and read when shown.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// The role's ARN.
    pub role_arn: String,
    /// Whether it is ready.
    pub ready: bool,
    /// Why not, when it is not.
    pub not_ready_reason: Option<String>,
    /// When the credentials held expire.
    pub expiration: Option<String>,
    /// When a refresh last succeeded.
    pub last_success: Option<String>,
    /// When the next refresh is due.
    pub next_refresh: Option<String>,
    /// Refreshes failed in a row.
    pub consecutive_failures: u32,
    /// The last failed refresh.
    pub last_error: Option<LastError>,
    /// Outputs that could not be written, with why.
    pub write_errors: BTreeMap<String, String>,
}

/// The last failed refresh of a role.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LastError {
    /// The error's kind, as in the metrics: `access_denied`, `network`...
    pub kind: String,
    /// STS's error code, when STS answered.
    pub code: Option<String>,
    /// The message.
    pub message: String,
}

/// One client of the document.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Client {
    /// The client's name.
    pub name: String,
    /// Its directory.
    pub directory: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// When it last fetched each role from the endpoint.
    pub last_fetch: BTreeMap<String, String>,
}

/// The last configuration reload.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reload {
    /// When it happened.
    pub time: Option<String>,
    /// Why the new file was refused, if it was.
    pub error: Option<String>,
    /// Changed keys that take effect only after a restart.
    pub restart_needed: Vec<String>,
}

/// Why no status document could be read. Each message names the URL and what to check.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The URL is not `http://host:port[/path]`.
    #[error(
        "{0:?} is not an http:// URL like http://127.0.0.1:9090 (--url or ROLERELAY_STATUS_URL)"
    )]
    BadUrl(String),
    /// Nothing answered: no sidecar there, or it did not answer in time.
    #[error("{url}: {source}; is rolerelay running, and is server.listen {}? (--url to ask elsewhere)", authority(.url))]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Something accepted the connection but did not answer in time.
    #[error("{url}: no answer within {}; is the sidecar wedged, or is server.listen {} something else? (--timeout to wait longer)", humantime::format_duration(*.timeout), authority(.url))]
    NoAnswer {
        /// The URL asked.
        url: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// Something answered, but not with 200.
    #[error("{url}: HTTP {status}; is server.listen {} rolerelay's, and the path /status? (--url to ask elsewhere)", authority(.url))]
    Status {
        /// The URL asked.
        url: String,
        /// The status code (or the first line of an answer that is not HTTP), escaped.
        status: String,
    },
    /// Something answered 200, but not with a rolerelay status document.
    #[error("{url}: the answer is not a rolerelay /status document ({why}); is server.listen {} rolerelay's, and the path /status? (--url to ask elsewhere)", authority(.url))]
    NotStatus {
        /// The URL asked.
        url: String,
        /// What is wrong with the answer, escaped.
        why: String,
    },
}

/// The URL to ask: `url` as given when it has a path, else with `/status` as its path.
pub fn status_url(url: &str) -> String {
    let path = url
        .strip_prefix("http://")
        .map(|rest| rest.find('/').map(|i| &rest[i..]));
    match path {
        Some(None) => format!("{url}{PATH}"),
        Some(Some("/")) => format!("{}{PATH}", url.trim_end_matches('/')),
        _ => url.to_string(),
    }
}

/// The URL asked by default for a status server on `listen` (a wildcard address on loopback).
pub fn default_url(listen: SocketAddr) -> String {
    format!("http://{}{PATH}", healthcheck::reachable(listen))
}

/// GETs the status document at `url` within `timeout` (for each of connect, send and receive):
/// the document and the body as it came, for `--format json`.
pub fn fetch(url: &str, timeout: Duration) -> Result<(Document, String), StatusError> {
    let (status, body) = healthcheck::get(url, timeout, BODY_LIMIT).map_err(|e| match e {
        HealthcheckError::BadUrl(url) => StatusError::BadUrl(url),
        // A read that timed out says "Resource temporarily unavailable": say what happened.
        HealthcheckError::Io { url, source } if source.kind() == ErrorKind::WouldBlock => {
            StatusError::NoAnswer { url, timeout }
        }
        HealthcheckError::Io { url, source } => StatusError::Unreachable { url, source },
        HealthcheckError::Status { url, status } => StatusError::Status { url, status },
    })?;
    if status != "200" {
        return Err(StatusError::Status {
            url: url.to_string(),
            status: one_line(&status),
        });
    }
    let document = serde_json::from_str(&body).map_err(|e| StatusError::NotStatus {
        url: url.to_string(),
        why: one_line(&e.to_string()),
    })?;
    Ok((document, body))
}

/// The exit code for `document`: [`EXIT_READY`] when it has roles and every one is ready.
pub fn exit_code(document: &Document) -> u8 {
    if !document.roles.is_empty() && document.roles.iter().all(|r| r.ready) {
        EXIT_READY
    } else {
        EXIT_NOT_READY
    }
}

/// `--format json`: the body pretty-printed, with a final newline.
pub fn render_json(body: &str) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(body)
        .and_then(|value| serde_json::to_string_pretty(&value));
    format!(
        "{}\n",
        pretty.unwrap_or_else(|_| body.trim_end().to_string())
    )
}

/// `--format text`: a summary line, the roles' table with their errors below it, the clients'
/// table and the last reload. Every time is relative to the document's own `time`, so a clock
/// that differs on this side does not matter; every string from the server is escaped by [`one_line`].
pub fn render_text(document: &Document, url: &str) -> String {
    let now = document.time;
    let ready = document.roles.iter().filter(|r| r.ready).count();
    let summary = match document.roles.len() {
        0 => "no roles".to_string(),
        1 => format!("{ready} of 1 role ready"),
        n => format!("{ready} of {n} roles ready"),
    };
    let mut text = format!(
        "rolerelay {} at {}: {summary}\n",
        one_line(&document.version),
        one_line(url)
    );
    if !document.roles.is_empty() {
        text.push('\n');
        text.push_str(&roles_table(&document.roles, now));
        let details = role_details(&document.roles);
        if !details.is_empty() {
            text.push('\n');
            text.push_str(&details);
        }
    }
    if !document.clients.is_empty() {
        text.push('\n');
        text.push_str(&clients_table(&document.clients, now));
    }
    if let Some(reload) = &document.last_reload {
        text.push('\n');
        text.push_str(&reload_line(reload, now));
    }
    text
}

fn roles_table(roles: &[Role], now: SystemTime) -> String {
    let header = [
        "ROLE",
        "STATE",
        "EXPIRES IN",
        "NEXT REFRESH",
        "FAILURES",
        "LAST ERROR",
    ];
    let rows = roles.iter().map(|role| {
        let state = match (&role.not_ready_reason, role.ready) {
            (_, true) => "ready".to_string(),
            (Some(reason), false) => format!("not ready: {}", one_line(reason)),
            (None, false) => "not ready".to_string(),
        };
        let last_error = role
            .last_error
            .as_ref()
            .map_or("-".to_string(), |e| match &e.code {
                Some(code) => format!("{} ({})", one_line(&e.kind), one_line(code)),
                None => one_line(&e.kind),
            });
        vec![
            one_line(&role.name),
            state,
            relative(&role.expiration, now, expires_in),
            relative(&role.next_refresh, now, refresh_in),
            role.consecutive_failures.to_string(),
            last_error,
        ]
    });
    table(&header, rows)
}

/// One line per role's last error and per output it could not write: too long for the table.
fn role_details(roles: &[Role]) -> String {
    let mut text = String::new();
    for role in roles {
        let name = one_line(&role.name);
        // The message starts with STS's code when there is one: `AccessDenied: User: …`.
        if let Some(e) = &role.last_error {
            text.push_str(&format!("{name}: last error: {}\n", one_line(&e.message)));
        }
        for (output, message) in &role.write_errors {
            let line = format!(
                "{name}: write error ({}): {}\n",
                one_line(output),
                one_line(message)
            );
            text.push_str(&line);
        }
    }
    text
}

fn clients_table(clients: &[Client], now: SystemTime) -> String {
    let header = ["CLIENT", "DIRECTORY", "ROLES", "LAST FETCH"];
    let rows = clients.iter().map(|client| {
        let fetches: Vec<String> = client
            .last_fetch
            .iter()
            .map(|(role, at)| format!("{} {}", one_line(role), relative_to(at, now, ago)))
            .collect();
        vec![
            one_line(&client.name),
            one_line(&client.directory),
            one_line(&client.roles.join(", ")),
            if fetches.is_empty() {
                "never".to_string()
            } else {
                fetches.join(", ")
            },
        ]
    });
    table(&header, rows)
}

fn reload_line(reload: &Reload, now: SystemTime) -> String {
    let when = relative(&reload.time, now, ago);
    let mut line = match &reload.error {
        Some(error) => format!("last reload: error {when}: {}", one_line(error)),
        None => format!("last reload: success {when}"),
    };
    if !reload.restart_needed.is_empty() {
        let keys = one_line(&reload.restart_needed.join(", "));
        line.push_str(&format!("; restart needed for {keys}"));
    }
    line.push('\n');
    line
}

/// Rows under a header, each column as wide as its widest cell (in characters), two spaces
/// apart; no trailing blanks.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut rows: Vec<Vec<String>> = rows.collect();
    rows.insert(0, header.iter().map(|h| h.to_string()).collect());
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let pad = width - cell.chars().count();
            line.push_str(&format!("{cell}{:pad$}  ", ""));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A time relative to `now`: how far before it, or after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    Past(Duration),
    Future(Duration),
}

fn when(at: SystemTime, now: SystemTime) -> When {
    match at.duration_since(now) {
        Ok(ahead) if !ahead.is_zero() => When::Future(ahead),
        _ => When::Past(now.duration_since(at).unwrap_or_default()),
    }
}

fn expires_in(when: When) -> String {
    match when {
        When::Future(d) => short(d),
        When::Past(d) => format!("expired {} ago", short(d)),
    }
}

fn refresh_in(when: When) -> String {
    match when {
        When::Future(d) => format!("in {}", short(d)),
        When::Past(_) => "due".to_string(),
    }
}

fn ago(when: When) -> String {
    match when {
        When::Past(d) => format!("{} ago", short(d)),
        When::Future(d) => format!("in {}", short(d)),
    }
}

/// An optional RFC 3339 time from the server, shown by `show` relative to `now`; `-` if absent.
fn relative(at: &Option<String>, now: SystemTime, show: fn(When) -> String) -> String {
    at.as_deref()
        .map_or("-".to_string(), |at| relative_to(at, now, show))
}

/// An RFC 3339 time from the server, shown by `show` relative to `now`; as sent if unreadable.
fn relative_to(at: &str, now: SystemTime, show: fn(When) -> String) -> String {
    match humantime::parse_rfc3339(at) {
        Ok(at) => show(when(at, now)),
        Err(_) => one_line(at),
    }
}

/// A duration for a person at a glance: its two largest units, `52m 10s`, `3h 2m`, `9s`, `2d`.
pub fn short(d: Duration) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let secs = d.as_secs();
    let Some(i) = UNITS.iter().position(|(size, _)| secs >= *size) else {
        return "0s".to_string();
    };
    let (size, unit) = UNITS[i];
    let mut text = format!("{}{unit}", secs / size);
    if let Some((smaller, smaller_unit)) = UNITS.get(i + 1) {
        let rest = secs % size / smaller;
        if rest > 0 {
            text.push_str(&format!(" {rest}{smaller_unit}"));
        }
    }
    text
}

/// `host:port` of an `http://` URL, for the messages.
fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// Reads an RFC 3339 time, as the sidecar writes them.
fn rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_rfc3339(&text)
        .map_err(|e| serde::de::Error::custom(format!("time {text:?}: {e}")))
}

#[cfg(test)]
mod tests;
