//! Every metric of rolerelay, with its name, help text and labels, kept in one small registry of
//! its own and rendered in Prometheus's text format (version 0.0.4).
//!
//! Label values are fixed sets (result, kind, output, code) or configured names; a role name an
//! HTTP client made up is never used as a label (it becomes [`UNKNOWN_ROLE`]). A role's series
//! are one struct of plain numbers, created by [`Metrics::add_role`] and dropped by
//! [`Metrics::remove_role`]: at 10,000 roles they are ~0.2 KiB each, where a general-purpose
//! registry kept a label vector, a map entry and an `Arc` per series (~3 KiB a role).

use std::collections::BTreeMap;
use std::fmt::{Display, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::assume::ErrorKind;
use crate::clock::unix_seconds;
use crate::outputs::WriteFailure;

/// The `role` label of endpoint requests for a role that is not configured.
pub const UNKNOWN_ROLE: &str = "_unknown";

/// The `client` label of endpoint requests without a valid token (with `clients`).
pub const NO_CLIENT: &str = "_none";

/// The `result` label values.
const SUCCESS: &str = "success";
const ERROR: &str = "error";

/// STS latency buckets, in seconds: a regional call takes tens of milliseconds; the top buckets
/// catch calls near the default 10 s timeout.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The buckets' `le` labels, as the text format writes the bounds (a unit test checks them).
const DURATION_LABELS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
];

/// One metric family: its name, help text and type. The help is written as it is: no
/// backslash or line feed in it (the text format would need them escaped).
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
}

const fn family(name: &'static str, kind: &'static str, help: &'static str) -> Family {
    Family { name, help, kind }
}

const BUILD_INFO: Family = family(
    "rolerelay_build_info",
    "gauge",
    "Always 1; the version label says which build runs.",
);
const CONFIG_RELOADS: Family = family(
    "rolerelay_config_reloads_total",
    "counter",
    "Configuration reloads, by result (success or error).",
);
const CONSECUTIVE_FAILURES: Family = family(
    "rolerelay_consecutive_failures",
    "gauge",
    "Failed attempts since the role's last success.",
);
const CREDENTIALS_EXPIRY: Family = family(
    "rolerelay_credentials_expiry_timestamp_seconds",
    "gauge",
    "When the role's current credentials expire, in Unix seconds.",
);
const ENDPOINT_REQUESTS: Family = family(
    "rolerelay_endpoint_requests_total",
    "counter",
    "Requests to the container-credentials endpoint, per role and HTTP status code (and client, with clients).",
);
const LAST_SUCCESS: Family = family(
    "rolerelay_last_success_timestamp_seconds",
    "gauge",
    "When the role was last refreshed successfully, in Unix seconds.",
);
const OUTPUT_WRITE_ERRORS: Family = family(
    "rolerelay_output_write_errors_total",
    "counter",
    "Failed writes of an output file, per role and output.",
);
const READY: Family = family(
    "rolerelay_ready",
    "gauge",
    "1 when the role has valid credentials written to every output (as /readyz judges it), else 0.",
);
const REFRESH_DURATION: Family = family(
    "rolerelay_refresh_duration_seconds",
    "histogram",
    "Time taken by one AssumeRole attempt (all hops of a chain).",
);
const REFRESH_ERRORS: Family = family(
    "rolerelay_refresh_errors_total",
    "counter",
    "Failed AssumeRole attempts per role, by kind of failure.",
);
const REFRESH: Family = family(
    "rolerelay_refresh_total",
    "counter",
    "AssumeRole attempts per role, by result (success or error).",
);

/// One STS attempt for a role, as the metrics count it.
#[derive(Clone, Copy, Debug)]
pub enum Attempt {
    /// Credentials came back.
    Succeeded {
        /// When they expire.
        expiration: SystemTime,
        /// When they came.
        at: SystemTime,
    },
    /// No credentials.
    Failed {
        /// Why.
        kind: ErrorKind,
        /// Failures in a row, this one included.
        consecutive_failures: u32,
    },
}

/// Every series, behind one lock: each update is a few additions.
#[derive(Debug)]
pub struct Metrics {
    version: String,
    store: Mutex<Store>,
}

/// The numbers behind every series.
#[derive(Debug, Default)]
struct Store {
    /// The configured roles' series, by role name.
    roles: BTreeMap<Box<str>, RoleSeries>,
    /// `rolerelay_endpoint_requests_total`, by role label (a configured role or [`UNKNOWN_ROLE`]).
    requests: BTreeMap<Box<str>, Vec<Requests>>,
    /// Whether the requests carry a `client` label: only while clients are configured, so that
    /// without them the series stay as they were before clients existed.
    by_client: bool,
    reloads_applied: u64,
    reloads_refused: u64,
}

/// One role's series. Those of its first error, first write error and first attempt appear when
/// that happens; eleven more series per role at zero would cost more memory than they tell.
#[derive(Debug, Default)]
struct RoleSeries {
    succeeded: u64,
    failed: u64,
    /// By kind label, sorted.
    errors: Vec<(&'static str, u64)>,
    durations: Option<Box<Histogram>>,
    expiry: Option<f64>,
    last_success: Option<f64>,
    consecutive_failures: u32,
    ready: bool,
    /// By output label, sorted.
    write_errors: Vec<(&'static str, u64)>,
}

// A role's series stay this small (its map entry and name aside).
const _: () = assert!(std::mem::size_of::<RoleSeries>() <= 128);
const _: () = assert!(std::mem::size_of::<Histogram>() <= 128);

/// `rolerelay_refresh_duration_seconds` of one role.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); those above the last bound count only in
    /// `count`.
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The requests of one role label with one status code (and client).
#[derive(Debug)]
struct Requests {
    client: Option<Box<str>>,
    code: u16,
    count: u64,
}

impl Metrics {
    /// No role yet; `rolerelay_build_info` names `version`.
    pub fn new(version: &str) -> Metrics {
        Metrics {
            version: version.to_owned(),
            store: Mutex::new(Store::default()),
        }
    }

    /// The store, even after a panic while it was held: at most that one update is lost.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a role's main series at zero, so dashboards and alerts see them before the first
    /// event; a role that is already there (restarted by a reload) keeps its counts.
    pub fn add_role(&self, role: &str) {
        let mut store = self.store();
        match store.roles.get_mut(role) {
            Some(existing) => {
                existing.consecutive_failures = 0;
                existing.ready = false;
            }
            None => {
                store.roles.insert(role.into(), RoleSeries::default());
            }
        }
    }

    /// Drops every series of a role that is no longer configured; what it records afterwards
    /// is not counted.
    pub fn remove_role(&self, role: &str) {
        let mut store = self.store();
        store.roles.remove(role);
        store.requests.remove(role);
    }

    /// Applies `update` to a configured role's series.
    fn role(&self, role: &str, update: impl FnOnce(&mut RoleSeries)) {
        if let Some(series) = self.store().roles.get_mut(role) {
            update(series);
        }
    }

    /// Counts one STS attempt for `role` that took `took`.
    pub fn record_refresh(&self, role: &str, attempt: Attempt, took: Duration) {
        self.role(role, |series| {
            series
                .durations
                .get_or_insert_with(Box::default)
                .observe(took.as_secs_f64());
            match attempt {
                Attempt::Succeeded { expiration, at } => {
                    series.succeeded += 1;
                    series.consecutive_failures = 0;
                    series.expiry = Some(unix_seconds(expiration));
                    series.last_success = Some(unix_seconds(at));
                }
                Attempt::Failed {
                    kind,
                    consecutive_failures,
                } => {
                    series.failed += 1;
                    series.consecutive_failures = consecutive_failures;
                    count(&mut series.errors, kind.metric_label());
                }
            }
        });
    }

    /// Counts each failed write of one of `role`'s outputs.
    pub fn record_write_failures(&self, role: &str, failures: &[WriteFailure]) {
        self.role(role, |series| {
            for failure in failures {
                count(&mut series.write_errors, failure.output.label());
            }
        });
    }

    /// Sets `rolerelay_ready` of `role`.
    pub fn set_ready(&self, role: &str, ready: bool) {
        self.role(role, |series| series.ready = ready);
    }

    /// Counts one endpoint request: `role` is a configured role or [`UNKNOWN_ROLE`]; `client` a
    /// configured client or [`NO_CLIENT`] when there are clients, else none.
    pub fn record_endpoint_request(&self, role: &str, client: Option<&str>, code: u16) {
        let mut store = self.store();
        let client = match store.by_client {
            true => Some(client.unwrap_or(NO_CLIENT)),
            false => None,
        };
        // A request that was answered as a role was being removed counts for nobody.
        if !store.requests.contains_key(role) {
            if role != UNKNOWN_ROLE && !store.roles.contains_key(role) {
                return;
            }
            store.requests.insert(role.into(), Vec::new());
        }
        // Looked up again rather than kept from an `entry`, which would allocate the key for
        // every request.
        let requests = store.requests.get_mut(role).expect("inserted above");
        match requests.binary_search_by(|r| (r.client.as_deref(), r.code).cmp(&(client, code))) {
            Ok(found) => requests[found].count += 1,
            Err(at) => requests.insert(
                at,
                Requests {
                    client: client.map(Into::into),
                    code,
                    count: 1,
                },
            ),
        }
    }

    /// Gives `rolerelay_endpoint_requests_total` its `client` label, or takes it away, when
    /// clients are configured or no longer are (at start, after a reload). The counts start
    /// again from zero then, which Prometheus reads as a counter reset.
    pub fn set_client_label(&self, by_client: bool) {
        let mut store = self.store();
        if store.by_client != by_client {
            store.by_client = by_client;
            store.requests.clear();
        }
    }

    /// Drops the endpoint series of a client that is no longer configured.
    pub fn remove_client(&self, client: &str) {
        for requests in self.store().requests.values_mut() {
            requests.retain(|r| r.client.as_deref() != Some(client));
        }
    }

    /// Counts a configuration reload that was applied.
    pub fn record_reload_applied(&self) {
        self.store().reloads_applied += 1;
    }

    /// Counts a configuration reload that was refused (the running configuration stayed).
    pub fn record_reload_refused(&self) {
        self.store().reloads_refused += 1;
    }

    /// The Prometheus text exposition of every metric: families sorted by name, each family's
    /// series grouped by role (the `prometheus` crate sorted them by label values, so by
    /// `result` or `kind` first; the order within a family means nothing to a scraper), each
    /// series' labels by name.
    pub fn render(&self) -> String {
        let store = self.store();
        // About 1 KiB per role with a histogram; one allocation for most scrapes.
        let mut text = Exposition(String::with_capacity(4096 + store.roles.len() * 1024));
        let roles = &store.roles;
        text.family(&BUILD_INFO)
            .sample("", &[("version", &self.version)], 1);
        let mut reloads = text.family(&CONFIG_RELOADS);
        reloads.sample("", &[("result", ERROR)], store.reloads_refused);
        reloads.sample("", &[("result", SUCCESS)], store.reloads_applied);
        text.each_role(&CONSECUTIVE_FAILURES, roles, |s| {
            Some(s.consecutive_failures)
        });
        text.each_role(&CREDENTIALS_EXPIRY, roles, |s| s.expiry);
        text.requests(&store.requests);
        text.each_role(&LAST_SUCCESS, roles, |s| s.last_success);
        text.counts_by_role_and(&OUTPUT_WRITE_ERRORS, "output", roles, |s| &s.write_errors);
        text.each_role(&READY, roles, |s| Some(u8::from(s.ready)));
        text.durations(roles);
        text.counts_by_role_and(&REFRESH_ERRORS, "kind", roles, |s| &s.errors);
        let mut refreshes = text.family(&REFRESH);
        for (role, s) in roles {
            refreshes.sample("", &[("result", ERROR), ("role", role)], s.failed);
            refreshes.sample("", &[("result", SUCCESS), ("role", role)], s.succeeded);
        }
        text.0
    }
}

/// Adds one to the count of `label` in a list sorted by label.
fn count(counts: &mut Vec<(&'static str, u64)>, label: &'static str) {
    match counts.binary_search_by(|(l, _)| l.cmp(&label)) {
        Ok(found) => counts[found].1 += 1,
        Err(at) => counts.insert(at, (label, 1)),
    }
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(bucket) = DURATION_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[bucket] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The text being rendered.
struct Exposition(String);

/// The samples of one family; its `# HELP` and `# TYPE` lines come before the first, and a
/// family without samples is left out, as Prometheus's own clients do.
struct Samples<'a> {
    text: &'a mut String,
    family: &'static Family,
    started: bool,
}

impl Exposition {
    fn family(&mut self, family: &'static Family) -> Samples<'_> {
        Samples {
            text: &mut self.0,
            family,
            started: false,
        }
    }

    /// A family with one series per role that has a value.
    fn each_role<V: Display>(
        &mut self,
        family: &'static Family,
        roles: &BTreeMap<Box<str>, RoleSeries>,
        value: impl Fn(&RoleSeries) -> Option<V>,
    ) {
        let mut samples = self.family(family);
        for (role, series) in roles {
            if let Some(value) = value(series) {
                samples.sample("", &[("role", role)], value);
            }
        }
    }

    /// A counter family by role and one more label (which sorts before `role`).
    fn counts_by_role_and(
        &mut self,
        family: &'static Family,
        label: &'static str,
        roles: &BTreeMap<Box<str>, RoleSeries>,
        counts: impl Fn(&RoleSeries) -> &Vec<(&'static str, u64)>,
    ) {
        let mut samples = self.family(family);
        for (role, series) in roles {
            for (value, count) in counts(series) {
                samples.sample("", &[(label, value), ("role", role)], count);
            }
        }
    }

    fn requests(&mut self, by_role: &BTreeMap<Box<str>, Vec<Requests>>) {
        let mut samples = self.family(&ENDPOINT_REQUESTS);
        for (role, requests) in by_role {
            for r in requests {
                let code = r.code.to_string();
                match &r.client {
                    Some(client) => samples.sample(
                        "",
                        &[("client", client), ("code", &code), ("role", role)],
                        r.count,
                    ),
                    None => samples.sample("", &[("code", &code), ("role", role)], r.count),
                }
            }
        }
    }

    fn durations(&mut self, roles: &BTreeMap<Box<str>, RoleSeries>) {
        let mut samples = self.family(&REFRESH_DURATION);
        for (role, series) in roles {
            let Some(histogram) = &series.durations else {
                continue;
            };
            let role: &str = role;
            let mut cumulative = 0;
            for (le, count) in DURATION_LABELS.iter().zip(histogram.buckets) {
                cumulative += count;
                samples.sample("_bucket", &[("role", role), ("le", le)], cumulative);
            }
            samples.sample(
                "_bucket",
                &[("role", role), ("le", "+Inf")],
                histogram.count,
            );
            samples.sample("_sum", &[("role", role)], histogram.sum);
            samples.sample("_count", &[("role", role)], histogram.count);
        }
    }
}

impl Samples<'_> {
    /// One line: `name{label="value",...} value`; labels come in the order given (by name, but
    /// a histogram's `le` last, as Prometheus's own clients write it).
    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl Display) {
        let Family { name, help, kind } = self.family;
        if !self.started {
            self.started = true;
            let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        }
        self.text.push_str(name);
        self.text.push_str(suffix);
        for (i, (label, value)) in labels.iter().enumerate() {
            self.text.push(if i == 0 { '{' } else { ',' });
            self.text.push_str(label);
            self.text.push_str("=\"");
            escape_label_value(self.text, value);
            self.text.push('"');
        }
        if !labels.is_empty() {
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the text format quotes it: backslash, double quote and line feed escaped.
fn escape_label_value(text: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            '"' => text.push_str("\\\""),
            '\n' => text.push_str("\\n"),
            c => text.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
