//! Every metric of rolerelay, with its name, help text and labels, in one owned registry.
//!
//! Label values are fixed sets (result, kind, output, code) or configured role names; a role name
//! an HTTP client made up is never used as a label (it becomes [`UNKNOWN_ROLE`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::assume::ErrorKind;
use crate::clock::unix_seconds;
use crate::outputs::WriteFailure;

/// The `role` label of endpoint requests for a role that is not configured.
pub const UNKNOWN_ROLE: &str = "_unknown";

/// The `client` label of endpoint requests without a valid token (with `clients`).
pub const NO_CLIENT: &str = "_none";

/// `rolerelay_endpoint_requests_total`: its name and help, for both of its label sets.
const ENDPOINT_REQUESTS: (&str, &str) = (
    "rolerelay_endpoint_requests_total",
    "Requests to the container-credentials endpoint, per role and HTTP status code (and client, with clients).",
);

/// The `result` label values.
const SUCCESS: &str = "success";
const ERROR: &str = "error";

/// STS latency buckets, in seconds: a regional call takes tens of milliseconds; the top buckets
/// catch calls near the default 10 s timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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

/// `rolerelay_endpoint_requests_total` with the labels of the moment.
#[derive(Debug)]
struct EndpointRequests {
    counter: IntCounterVec,
    /// Whether it has the `client` label.
    by_client: bool,
}

impl EndpointRequests {
    fn new(by_client: bool) -> EndpointRequests {
        let labels: &[&str] = match by_client {
            true => &["role", "code", "client"],
            false => &["role", "code"],
        };
        let (name, help) = ENDPOINT_REQUESTS;
        EndpointRequests {
            counter: IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            by_client,
        }
    }
}

/// The metrics and their registry. Each field is named after its metric; the label values are
/// set only by the `record_*` methods below.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    refresh_total: IntCounterVec,
    refresh_errors_total: IntCounterVec,
    refresh_duration_seconds: HistogramVec,
    credentials_expiry_timestamp_seconds: GaugeVec,
    last_success_timestamp_seconds: GaugeVec,
    consecutive_failures: IntGaugeVec,
    output_write_errors_total: IntCounterVec,
    /// With a `client` label only while clients are configured: without them, the series stay
    /// as they were before clients existed.
    endpoint_requests_total: Arc<RwLock<EndpointRequests>>,
    config_reloads_total: IntCounterVec,
    build_info: IntGaugeVec,
    ready: IntGaugeVec,
}

impl Metrics {
    /// All metrics, registered in a new registry; `rolerelay_build_info` names `version`.
    pub fn new(version: &str) -> Metrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let gauge = |name: &str, help: &str| {
            GaugeVec::new(Opts::new(name, help), &["role"]).expect("valid metric")
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let metrics = Metrics {
            registry: Registry::new(),
            refresh_total: counter(
                "rolerelay_refresh_total",
                "AssumeRole attempts per role, by result (success or error).",
                &["role", "result"],
            ),
            refresh_errors_total: counter(
                "rolerelay_refresh_errors_total",
                "Failed AssumeRole attempts per role, by kind of failure.",
                &["role", "kind"],
            ),
            refresh_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "rolerelay_refresh_duration_seconds",
                    "Time taken by one AssumeRole attempt (all hops of a chain).",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["role"],
            )
            .expect("valid metric"),
            credentials_expiry_timestamp_seconds: gauge(
                "rolerelay_credentials_expiry_timestamp_seconds",
                "When the role's current credentials expire, in Unix seconds.",
            ),
            last_success_timestamp_seconds: gauge(
                "rolerelay_last_success_timestamp_seconds",
                "When the role was last refreshed successfully, in Unix seconds.",
            ),
            consecutive_failures: int_gauge(
                "rolerelay_consecutive_failures",
                "Failed attempts since the role's last success.",
                &["role"],
            ),
            output_write_errors_total: counter(
                "rolerelay_output_write_errors_total",
                "Failed writes of an output file, per role and output.",
                &["role", "output"],
            ),
            endpoint_requests_total: Arc::new(RwLock::new(EndpointRequests::new(false))),
            config_reloads_total: counter(
                "rolerelay_config_reloads_total",
                "Configuration reloads, by result (success or error).",
                &["result"],
            ),
            ready: int_gauge(
                "rolerelay_ready",
                "1 when the role has valid credentials written to every output (as /readyz judges it), else 0.",
                &["role"],
            ),
            build_info: int_gauge(
                "rolerelay_build_info",
                "Always 1; the version label says which build runs.",
                &["version"],
            ),
        };
        metrics.register();
        metrics.build_info.with_label_values(&[version]).set(1);
        for result in [SUCCESS, ERROR] {
            metrics.config_reloads_total.with_label_values(&[result]);
        }
        metrics
    }

    /// Counts one STS attempt for `role` that took `took`.
    pub fn record_refresh(&self, role: &str, attempt: Attempt, took: Duration) {
        self.refresh_duration_seconds
            .with_label_values(&[role])
            .observe(took.as_secs_f64());
        match attempt {
            Attempt::Succeeded { expiration, at } => {
                self.refresh_total.with_label_values(&[role, SUCCESS]).inc();
                self.consecutive_failures.with_label_values(&[role]).set(0);
                self.credentials_expiry_timestamp_seconds
                    .with_label_values(&[role])
                    .set(unix_seconds(expiration));
                self.last_success_timestamp_seconds
                    .with_label_values(&[role])
                    .set(unix_seconds(at));
            }
            Attempt::Failed {
                kind,
                consecutive_failures,
            } => {
                self.consecutive_failures
                    .with_label_values(&[role])
                    .set(i64::from(consecutive_failures));
                self.refresh_total.with_label_values(&[role, ERROR]).inc();
                self.refresh_errors_total
                    .with_label_values(&[role, kind.metric_label()])
                    .inc();
            }
        }
    }

    /// Counts each failed write of one of `role`'s outputs.
    pub fn record_write_failures(&self, role: &str, failures: &[WriteFailure]) {
        for failure in failures {
            self.output_write_errors_total
                .with_label_values(&[role, failure.output.label()])
                .inc();
        }
    }

    /// Counts one endpoint request: `role` is a configured role or [`UNKNOWN_ROLE`]; `client` a
    /// configured client or [`NO_CLIENT`] when there are clients, else none.
    pub fn record_endpoint_request(&self, role: &str, client: Option<&str>, code: u16) {
        let requests = self.endpoint_requests();
        let code = code.to_string();
        match requests.by_client {
            true => requests
                .counter
                .with_label_values(&[role, &code, client.unwrap_or(NO_CLIENT)]),
            false => requests.counter.with_label_values(&[role, &code]),
        }
        .inc();
    }

    fn endpoint_requests(&self) -> std::sync::RwLockReadGuard<'_, EndpointRequests> {
        self.endpoint_requests_total
            .read()
            .expect("metrics lock poisoned")
    }

    /// Gives `rolerelay_endpoint_requests_total` its `client` label, or takes it away, when
    /// clients are configured or no longer are (at start, after a reload). The counts start
    /// again from zero then, which Prometheus reads as a counter reset.
    pub fn set_client_label(&self, by_client: bool) {
        let mut requests = self
            .endpoint_requests_total
            .write()
            .expect("metrics lock poisoned");
        if requests.by_client == by_client {
            return;
        }
        let next = EndpointRequests::new(by_client);
        *requests = next;
    }

    /// Drops the endpoint series of a client that is no longer configured.
    pub fn remove_client(&self, client: &str) {
        self.remove_series("client", client);
    }

    /// Counts a configuration reload that was applied.
    pub fn record_reload_applied(&self) {
        self.config_reloads_total
            .with_label_values(&[SUCCESS])
            .inc();
    }

    /// Counts a configuration reload that was refused (the running configuration stayed).
    pub fn record_reload_refused(&self) {
        self.config_reloads_total.with_label_values(&[ERROR]).inc();
    }

    /// Sets `rolerelay_ready` of `role`.
    pub fn set_ready(&self, role: &str, ready: bool) {
        self.ready.with_label_values(&[role]).set(i64::from(ready));
    }

    fn register(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.refresh_total.clone()),
            Box::new(self.refresh_errors_total.clone()),
            Box::new(self.refresh_duration_seconds.clone()),
            Box::new(self.credentials_expiry_timestamp_seconds.clone()),
            Box::new(self.last_success_timestamp_seconds.clone()),
            Box::new(self.consecutive_failures.clone()),
            Box::new(self.output_write_errors_total.clone()),
            Box::new(self.config_reloads_total.clone()),
            Box::new(self.build_info.clone()),
            Box::new(self.ready.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("each metric is registered once");
        }
    }

    /// Creates a role's main series at zero, so dashboards and alerts see them before the first
    /// event. The per-kind and per-output error counters appear at their first error: eleven
    /// more series per role would cost more memory than they tell.
    pub fn add_role(&self, role: &str) {
        for result in [SUCCESS, ERROR] {
            self.refresh_total.with_label_values(&[role, result]);
        }
        self.consecutive_failures.with_label_values(&[role]).set(0);
        self.ready.with_label_values(&[role]).set(0);
    }

    /// Drops every series of a role that is no longer configured.
    pub fn remove_role(&self, role: &str) {
        self.remove_series("role", role);
    }

    /// Drops every series whose label `name` has `value`.
    fn remove_series(&self, name: &str, value: &str) {
        // Each family's label sets are found by gathering, so nothing is missed.
        let requests = self.endpoint_requests();
        for family in self.gather() {
            for metric in family.get_metric() {
                let labels = metric.get_label();
                if !labels
                    .iter()
                    .any(|l| l.name() == name && l.value() == value)
                {
                    continue;
                }
                // Gathered labels come sorted by name: remove by name, not by position.
                let values: HashMap<&str, &str> =
                    labels.iter().map(|l| (l.name(), l.value())).collect();
                // A label set belongs to one family; removing it from the others is a no-op.
                let _ = self.refresh_total.remove(&values);
                let _ = self.refresh_errors_total.remove(&values);
                let _ = self.refresh_duration_seconds.remove(&values);
                let _ = self.credentials_expiry_timestamp_seconds.remove(&values);
                let _ = self.last_success_timestamp_seconds.remove(&values);
                let _ = self.consecutive_failures.remove(&values);
                let _ = self.output_write_errors_total.remove(&values);
                let _ = requests.counter.remove(&values);
                let _ = self.ready.remove(&values);
            }
        }
    }

    /// Every metric family, sorted by name: the registry's, and the endpoint counter, which is
    /// kept out of it because its labels change (a registry never forgets a name's labels).
    fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = self.registry.gather();
        families.extend(
            self.endpoint_requests()
                .counter
                .collect()
                .into_iter()
                .filter(|family| !family.get_metric().is_empty()),
        );
        families.sort_by(|a, b| a.name().cmp(b.name()));
        families
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.gather(), &mut buffer)
            .expect("encoding to memory does not fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_metric_is_exposed_with_help_and_type() {
        let m = Metrics::new("test");
        m.add_role("a");
        m.refresh_errors_total
            .with_label_values(&["a", "throttled"]);
        m.output_write_errors_total
            .with_label_values(&["a", "process_json"]);
        m.refresh_duration_seconds
            .with_label_values(&["a"])
            .observe(0.05);
        m.credentials_expiry_timestamp_seconds
            .with_label_values(&["a"])
            .set(1.0);
        m.last_success_timestamp_seconds
            .with_label_values(&["a"])
            .set(1.0);
        m.record_endpoint_request("a", None, 200);
        let text = m.render();
        for (name, kind) in [
            ("rolerelay_refresh_total", "counter"),
            ("rolerelay_refresh_errors_total", "counter"),
            ("rolerelay_refresh_duration_seconds", "histogram"),
            ("rolerelay_credentials_expiry_timestamp_seconds", "gauge"),
            ("rolerelay_last_success_timestamp_seconds", "gauge"),
            ("rolerelay_consecutive_failures", "gauge"),
            ("rolerelay_output_write_errors_total", "counter"),
            ("rolerelay_endpoint_requests_total", "counter"),
            ("rolerelay_config_reloads_total", "counter"),
            ("rolerelay_build_info", "gauge"),
            ("rolerelay_ready", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}\n{text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        assert!(text.contains("rolerelay_refresh_errors_total{kind=\"throttled\",role=\"a\"} 0"));
    }

    #[test]
    fn a_removed_role_leaves_no_series() {
        let m = Metrics::new("test");
        m.add_role("gone");
        m.add_role("kept");
        m.output_write_errors_total
            .with_label_values(&["gone", "env_file"])
            .inc();
        m.refresh_duration_seconds
            .with_label_values(&["gone"])
            .observe(0.05);
        m.record_endpoint_request("gone", None, 200);
        m.remove_role("gone");
        let text = m.render();
        assert!(!text.contains("role=\"gone\""), "{text}");
        assert!(text.contains("role=\"kept\""));
    }

    #[test]
    fn the_endpoint_counter_has_a_client_label_only_while_there_are_clients() {
        let m = Metrics::new("test");
        m.record_endpoint_request("a", None, 200);
        assert!(m
            .render()
            .contains("rolerelay_endpoint_requests_total{code=\"200\",role=\"a\"} 1"));
        m.set_client_label(true);
        m.record_endpoint_request("a", Some("billing"), 200);
        m.record_endpoint_request("a", None, 401);
        m.record_endpoint_request("a", Some("gone"), 200);
        m.remove_client("gone");
        let text = m.render();
        assert!(
            text.contains(
                "rolerelay_endpoint_requests_total{client=\"billing\",code=\"200\",role=\"a\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("{client=\"_none\",code=\"401\",role=\"a\"} 1"));
        assert!(!text.contains("gone") && !text.contains("{code=\"200\",role=\"a\"}"));
        assert_eq!(
            text.matches("# TYPE rolerelay_endpoint_requests_total counter")
                .count(),
            1
        );
        m.set_client_label(false);
        m.record_endpoint_request("a", Some("billing"), 200);
        let text = m.render();
        assert!(!text.contains("client="), "{text}");
        assert!(text.contains("rolerelay_endpoint_requests_total{code=\"200\",role=\"a\"} 1"));
    }
}
