use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::outputs::Output;

fn succeeded(at_secs: u64, took_ms: u64) -> (Attempt, Duration) {
    let at = UNIX_EPOCH + Duration::from_secs(at_secs);
    let expiration = at + Duration::from_secs(3600);
    (
        Attempt::Succeeded { expiration, at },
        Duration::from_millis(took_ms),
    )
}

fn failed(kind: ErrorKind, consecutive_failures: u32) -> Attempt {
    Attempt::Failed {
        kind,
        consecutive_failures,
    }
}

fn write_failure(output: Output) -> WriteFailure {
    WriteFailure {
        output,
        path: "/out/x".into(),
        removing: false,
        error: std::io::Error::other("disk full"),
    }
}

/// Asserts that each of `lines` is a whole line of `text`.
fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "{line}\n{text}");
    }
}

#[test]
fn one_role_after_one_success_renders_exactly_as_the_text_format_says() {
    let m = Metrics::new("1.2.3");
    m.add_role("a");
    let (attempt, took) = succeeded(1_700_000_000, 50);
    m.record_refresh("a", attempt, took);
    m.set_ready("a", true);
    let mut expected = String::from(
        "# HELP rolerelay_build_info Always 1; the version label says which build runs.
# TYPE rolerelay_build_info gauge
rolerelay_build_info{version=\"1.2.3\"} 1
# HELP rolerelay_config_reloads_total Configuration reloads, by result (success or error).
# TYPE rolerelay_config_reloads_total counter
rolerelay_config_reloads_total{result=\"error\"} 0
rolerelay_config_reloads_total{result=\"success\"} 0
# HELP rolerelay_consecutive_failures Failed attempts since the role's last success.
# TYPE rolerelay_consecutive_failures gauge
rolerelay_consecutive_failures{role=\"a\"} 0
# HELP rolerelay_credentials_expiry_timestamp_seconds When the role's current credentials expire, in Unix seconds.
# TYPE rolerelay_credentials_expiry_timestamp_seconds gauge
rolerelay_credentials_expiry_timestamp_seconds{role=\"a\"} 1700003600
# HELP rolerelay_last_success_timestamp_seconds When the role was last refreshed successfully, in Unix seconds.
# TYPE rolerelay_last_success_timestamp_seconds gauge
rolerelay_last_success_timestamp_seconds{role=\"a\"} 1700000000
# HELP rolerelay_ready 1 when the role has valid credentials written to every output (as /readyz judges it), else 0.
# TYPE rolerelay_ready gauge
rolerelay_ready{role=\"a\"} 1
# HELP rolerelay_refresh_duration_seconds Time taken by one AssumeRole attempt (all hops of a chain).
# TYPE rolerelay_refresh_duration_seconds histogram
",
    );
    for (le, count) in [
        ("0.005", 0),
        ("0.01", 0),
        ("0.025", 0),
        ("0.05", 1),
        ("0.1", 1),
        ("0.25", 1),
        ("0.5", 1),
        ("1", 1),
        ("2.5", 1),
        ("5", 1),
        ("10", 1),
        ("30", 1),
        ("+Inf", 1),
    ] {
        expected.push_str(&format!(
            "rolerelay_refresh_duration_seconds_bucket{{role=\"a\",le=\"{le}\"}} {count}\n"
        ));
    }
    expected.push_str(
        "rolerelay_refresh_duration_seconds_sum{role=\"a\"} 0.05
rolerelay_refresh_duration_seconds_count{role=\"a\"} 1
# HELP rolerelay_refresh_total AssumeRole attempts per role, by result (success or error).
# TYPE rolerelay_refresh_total counter
rolerelay_refresh_total{result=\"error\",role=\"a\"} 0
rolerelay_refresh_total{result=\"success\",role=\"a\"} 1
",
    );
    assert_eq!(m.render(), expected);
}

#[test]
fn every_spec_metric_is_exposed_with_help_and_type_once_it_has_a_series() {
    let m = Metrics::new("test");
    m.add_role("a");
    m.record_refresh(
        "a",
        failed(ErrorKind::Throttled, 1),
        Duration::from_secs(40),
    );
    m.record_write_failures("a", &[write_failure(Output::ProcessJson)]);
    let (attempt, took) = succeeded(1_700_000_000, 3);
    m.record_refresh("a", attempt, took);
    m.record_endpoint_request("a", None, 200);
    m.record_reload_refused();
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
        assert_eq!(
            text.matches(&format!("# TYPE {name} {kind}\n")).count(),
            1,
            "{name}\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    assert_lines(
        &text,
        &[
            "rolerelay_refresh_errors_total{kind=\"throttled\",role=\"a\"} 1",
            "rolerelay_refresh_total{result=\"error\",role=\"a\"} 1",
            "rolerelay_output_write_errors_total{output=\"process_json\",role=\"a\"} 1",
            "rolerelay_endpoint_requests_total{code=\"200\",role=\"a\"} 1",
            "rolerelay_config_reloads_total{result=\"error\"} 1",
            // The 40 s attempt is above every bucket: it counts only in +Inf.
            "rolerelay_refresh_duration_seconds_bucket{role=\"a\",le=\"30\"} 1",
            "rolerelay_refresh_duration_seconds_bucket{role=\"a\",le=\"+Inf\"} 2",
            "rolerelay_refresh_duration_seconds_sum{role=\"a\"} 40.003",
            "rolerelay_consecutive_failures{role=\"a\"} 0",
        ],
    );
}

#[test]
fn a_role_without_events_has_its_main_series_at_zero_and_no_others() {
    let m = Metrics::new("test");
    m.add_role("a");
    let text = m.render();
    assert_lines(
        &text,
        &[
            "rolerelay_refresh_total{result=\"success\",role=\"a\"} 0",
            "rolerelay_consecutive_failures{role=\"a\"} 0",
            "rolerelay_ready{role=\"a\"} 0",
        ],
    );
    for absent in [
        "rolerelay_refresh_errors_total",
        "rolerelay_refresh_duration_seconds",
        "rolerelay_credentials_expiry_timestamp_seconds",
        "rolerelay_last_success_timestamp_seconds",
        "rolerelay_output_write_errors_total",
        "rolerelay_endpoint_requests_total",
    ] {
        assert!(!text.contains(absent), "{absent}\n{text}");
    }
}

#[test]
fn a_removed_role_leaves_no_series_and_records_nothing_afterwards() {
    let m = Metrics::new("test");
    m.add_role("gone");
    m.add_role("kept");
    m.record_write_failures("gone", &[write_failure(Output::EnvFile)]);
    m.record_refresh("gone", failed(ErrorKind::Network, 1), Duration::ZERO);
    m.record_endpoint_request("gone", None, 200);
    m.remove_role("gone");
    m.record_refresh("gone", failed(ErrorKind::Network, 2), Duration::ZERO);
    m.set_ready("gone", true);
    let text = m.render();
    assert!(!text.contains("role=\"gone\""), "{text}");
    assert!(text.contains("role=\"kept\""));
}

#[test]
fn a_role_added_again_keeps_its_counts_and_starts_not_ready_without_failures() {
    let m = Metrics::new("test");
    m.add_role("a");
    m.record_refresh("a", failed(ErrorKind::Network, 3), Duration::ZERO);
    m.set_ready("a", true);
    m.add_role("a");
    let text = m.render();
    assert_lines(
        &text,
        &[
            "rolerelay_refresh_total{result=\"error\",role=\"a\"} 1",
            "rolerelay_consecutive_failures{role=\"a\"} 0",
            "rolerelay_ready{role=\"a\"} 0",
        ],
    );
}

#[test]
fn the_endpoint_counter_has_a_client_label_only_while_there_are_clients() {
    let m = Metrics::new("test");
    m.add_role("a");
    m.record_endpoint_request("a", None, 200);
    assert!(m
        .render()
        .contains("rolerelay_endpoint_requests_total{code=\"200\",role=\"a\"} 1"));
    m.set_client_label(true);
    m.record_endpoint_request("a", Some("billing"), 200);
    m.record_endpoint_request("a", None, 401);
    m.record_endpoint_request("a", Some("gone"), 200);
    m.record_endpoint_request(UNKNOWN_ROLE, None, 404);
    m.remove_client("gone");
    let text = m.render();
    assert!(
        text.contains(
            "rolerelay_endpoint_requests_total{client=\"billing\",code=\"200\",role=\"a\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("{client=\"_none\",code=\"401\",role=\"a\"} 1"));
    assert!(text.contains("{client=\"_none\",code=\"404\",role=\"_unknown\"} 1"));
    assert!(!text.contains("gone") && !text.contains("{code=\"200\",role=\"a\"}"));
    m.set_client_label(false);
    m.record_endpoint_request("a", Some("billing"), 200);
    m.record_endpoint_request("a", Some("billing"), 200);
    let text = m.render();
    assert!(!text.contains("client="), "{text}");
    assert!(text.contains("rolerelay_endpoint_requests_total{code=\"200\",role=\"a\"} 2"));
}

#[test]
fn label_values_are_escaped_as_the_text_format_requires() {
    let mut text = String::new();
    escape_label_value(&mut text, "a\\b\"c\nd");
    assert_eq!(text, "a\\\\b\\\"c\\nd");
}

#[test]
fn a_histogram_counts_a_value_on_a_bound_in_that_bucket() {
    let mut h = Histogram::default();
    for seconds in [0.005, 0.0051, 30.0, 30.1] {
        h.observe(seconds);
    }
    assert_eq!(h.buckets[0], 1);
    assert_eq!(h.buckets[1], 1);
    assert_eq!(h.buckets[DURATION_BUCKETS.len() - 1], 1);
    assert_eq!((h.count, h.buckets.iter().sum::<u64>()), (4, 3));
}

#[test]
fn the_bucket_labels_are_the_bounds_as_the_text_format_writes_them() {
    let written: Vec<String> = DURATION_BUCKETS.iter().map(f64::to_string).collect();
    assert_eq!(written, DURATION_LABELS);
}

#[test]
fn a_label_value_is_escaped_in_the_exposition() {
    let m = Metrics::new("1\\2\"3");
    assert!(
        m.render()
            .contains("rolerelay_build_info{version=\"1\\\\2\\\"3\"} 1\n"),
        "{}",
        m.render()
    );
}

#[test]
fn each_family_lists_its_series_by_role() {
    let m = Metrics::new("test");
    for role in ["b", "a"] {
        m.add_role(role);
        m.record_refresh(role, failed(ErrorKind::Network, 1), Duration::ZERO);
    }
    let text = m.render();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("rolerelay_refresh_total{"))
        .collect();
    assert_eq!(
        lines,
        [
            "rolerelay_refresh_total{result=\"error\",role=\"a\"} 1",
            "rolerelay_refresh_total{result=\"success\",role=\"a\"} 0",
            "rolerelay_refresh_total{result=\"error\",role=\"b\"} 1",
            "rolerelay_refresh_total{result=\"success\",role=\"b\"} 0",
        ]
    );
}

#[test]
fn a_request_for_a_removed_role_counts_for_nobody() {
    let m = Metrics::new("test");
    m.add_role("gone");
    m.remove_role("gone");
    m.record_endpoint_request("gone", None, 200);
    m.record_endpoint_request(UNKNOWN_ROLE, None, 404);
    let text = m.render();
    assert!(!text.contains("gone"), "{text}");
    assert!(text.contains("rolerelay_endpoint_requests_total{code=\"404\",role=\"_unknown\"} 1"));
}
