//! systemd's service notifications (`sd_notify`), for a `Type=notify` unit: `READY=1` the first
//! time every role is ready, `STATUS=` lines, `WATCHDOG=1` while every refresh loop shows
//! progress (the `/healthz` rule, so that `WatchdogSec=` restarts a wedged sidecar), and
//! `STOPPING=1` at shutdown.
//!
//! The protocol is a datagram of `KEY=value` lines sent to the socket named by `NOTIFY_SOCKET`
//! (a path, or an abstract name after `@`). Without that variable, as in a container, nothing
//! here does anything.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use crate::clock::Clock;
use crate::credentials::rfc3339;
use crate::state::{RoleState, State};

/// How often the state is looked at: `READY=1` follows readiness within this.
const TICK: Duration = Duration::from_secs(1);

/// `STATUS=` is sent again at least this often, even unchanged, as systemd shows the last one.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The socket systemd listens on, and the watchdog interval it asked for.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    /// Half of `WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd asked for through `NOTIFY_SOCKET`, if it did. A variable that names
    /// no usable socket is logged and ignored: the sidecar serves either way.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty())?;
        let path = path.to_string_lossy().into_owned();
        let address = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let socket = address.and_then(|address| Ok((UnixDatagram::unbound()?, address)));
        match socket {
            Ok((socket, address)) => Some(Notifier {
                socket,
                address,
                watchdog: watchdog_interval(
                    std::env::var("WATCHDOG_USEC").ok().as_deref(),
                    std::env::var("WATCHDOG_PID").ok().as_deref(),
                    std::process::id(),
                ),
            }),
            Err(e) => {
                warn!(notify_socket = %path, error = %e, "NOTIFY_SOCKET names no usable socket; systemd will not hear from rolerelay");
                None
            }
        }
    }

    /// Sends one notification; a failure is logged, never fatal.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
            debug!(error = %e, "a systemd notification could not be sent");
        }
    }

    /// Watches `state` until the task is dropped: `READY=1` once every role is first ready,
    /// `STATUS=` when it changes (and every [`STATUS_EVERY`]), `WATCHDOG=1` every half watchdog
    /// interval while every loop is alive.
    pub async fn watch(self, state: State, clock: Clock) {
        let mut ready_sent = false;
        let mut last_status = (String::new(), tokio::time::Instant::now());
        let mut last_watchdog: Option<tokio::time::Instant> = None;
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = clock.now();
            let summary = Summary::of(&state, now);
            let mut lines = Vec::new();
            if summary.ready == summary.roles && !ready_sent {
                lines.push("READY=1".to_string());
                ready_sent = true;
            }
            let status = summary.status();
            let at = tokio::time::Instant::now();
            if status != last_status.0 || at - last_status.1 >= STATUS_EVERY {
                lines.push(format!("STATUS={status}"));
                last_status = (status, at);
            }
            if let Some(interval) = self.watchdog {
                let due = last_watchdog.is_none_or(|last| at - last >= interval);
                if summary.alive && due {
                    lines.push("WATCHDOG=1".to_string());
                    last_watchdog = Some(at);
                }
            }
            if !lines.is_empty() {
                self.send(&lines.join("\n"));
            }
        }
    }
}

/// Half the watchdog interval systemd asked for in `WATCHDOG_USEC`, when it is for this
/// process (`WATCHDOG_PID`, when set, is `pid`): a keep-alive at half the interval survives a
/// late one.
pub fn watchdog_interval(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if for_pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(pid)) {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// What the notifications say about the roles at one moment.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// Roles configured.
    pub roles: usize,
    /// Roles ready, as `/readyz` judges them.
    pub ready: usize,
    /// Every loop shows progress, as `/healthz` judges them.
    pub alive: bool,
    /// The first role not ready, and why.
    pub waiting: Option<(String, String)>,
    /// The earliest refresh scheduled.
    pub next_refresh: Option<SystemTime>,
}

impl Summary {
    /// The summary of `state` at `now`.
    pub fn of(state: &State, now: SystemTime) -> Summary {
        let min_remaining = state.min_remaining();
        let mut summary = Summary {
            roles: 0,
            ready: 0,
            alive: true,
            waiting: None,
            next_refresh: None,
        };
        state.for_each(|name, role: &RoleState| {
            summary.roles += 1;
            summary.alive &= role.liveness(now).is_ok();
            match role.readiness(now, min_remaining) {
                Ok(()) => summary.ready += 1,
                Err(why) => {
                    summary.waiting.get_or_insert((name.to_string(), why));
                }
            }
            if let Some(next) = role.next_refresh {
                summary.next_refresh = Some(summary.next_refresh.map_or(next, |n| n.min(next)));
            }
        });
        summary
    }

    /// The `STATUS=` text: how many roles are ready, and the next refresh or what is awaited.
    pub fn status(&self) -> String {
        let ready = format!("{} of {} roles ready", self.ready, self.roles);
        match (&self.waiting, self.next_refresh) {
            (Some((role, why)), _) => format!("{ready}; waiting for {role}: {why}"),
            (None, Some(next)) => format!("{ready}; next refresh {}", rfc3339(next)),
            (None, None) => ready,
        }
    }
}

/// Sends `STOPPING=1` (SIGTERM or SIGINT came) to the socket of `NOTIFY_SOCKET`, if any.
pub fn stopping() {
    if let Some(notifier) = Notifier::from_env() {
        notifier.send("STOPPING=1");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::credentials::Credentials;
    use crate::credentials::Secret;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn the_watchdog_interval_is_half_of_what_systemd_asks_for_this_process() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), half);
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), half);
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("8"), 7),
            None,
            "another process's"
        );
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn the_summary_counts_ready_roles_and_a_wedged_loop_is_not_alive() {
        let state = State::new(&crate::testing::roles(&["a", "b"]), None);
        let summary = Summary::of(&state, at(100));
        assert_eq!((summary.roles, summary.ready, summary.alive), (2, 0, true));
        assert_eq!(
            summary.status(),
            "0 of 2 roles ready; waiting for a: no credentials yet"
        );
        for name in ["a", "b"] {
            state.update(&name.parse().unwrap(), |s| {
                s.credentials = Some(Arc::new(Credentials {
                    access_key_id: "ASIA".into(),
                    secret_access_key: Secret::new("s"),
                    session_token: Secret::new("t"),
                    expiration: at(3600),
                    issued: at(0),
                    role_arn: "arn".into(),
                    account_id: "111111111111".into(),
                }));
                s.published = Some(at(3600));
                s.next_refresh = Some(at(if name == "a" { 1800 } else { 1700 }));
                s.heartbeat_deadline = Some(at(200));
            });
        }
        let summary = Summary::of(&state, at(100));
        assert_eq!((summary.ready, summary.alive), (2, true));
        assert_eq!(
            summary.status(),
            "2 of 2 roles ready; next refresh 1970-01-01T00:28:20Z"
        );
        let wedged = Summary::of(&state, at(201));
        assert!(
            !wedged.alive,
            "past the heartbeat deadline, as /healthz judges it"
        );
    }
}
