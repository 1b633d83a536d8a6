//! Black-box tests of inputs an operator controls but may get wrong: values that `check`
//! accepts must not make `run` abort (at start or after a live reload), and no log level or
//! environment variable may make the SDK print a reply body.

mod common;

use std::time::Duration;

use common::sidecar::Sidecar;
use common::*;

const ROLE: &str = "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/a\n";

#[test]
fn check_refuses_numbers_and_durations_that_would_overflow_naming_the_key() {
    let sb = Sandbox::new();
    for (refresh, key) in [
        ("concurrency: 18446744073709551615", "refresh.concurrency"),
        ("timeout: 18446744073709551615s", "refresh.timeout"),
        (
            "max_interval: 18446744073709551615s",
            "refresh.max_interval",
        ),
        ("backoff_max: 18446744073709551615s", "refresh.backoff_max"),
    ] {
        let config = sb.write("extreme.yaml", &format!("refresh:\n  {refresh}\n{ROLE}"));
        let mut cmd = sb.rolerelay();
        cmd.args(["check", "--config"]).arg(&config);
        let (status, _, stderr) = run(cmd);
        assert_eq!(status.code(), Some(2), "{refresh}: {stderr}");
        assert!(
            stderr.contains(&format!("extreme.yaml:2: {key}")) && stderr.contains("use at most"),
            "{stderr}"
        );
    }
}

#[test]
fn a_reload_with_values_that_would_overflow_is_refused_and_refreshes_go_on() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let fast = "refresh:\n  backoff_initial: 100ms\n  backoff_max: 1s\n  max_interval: 1s\n";
    let sidecar = Sidecar::start(&sb, &moto.url, &["a"], fast);
    sidecar.wait_readyz(200, Duration::from_secs(20));

    let plan_text = std::fs::read_to_string(&sidecar.config).unwrap();
    let extreme = plan_text.replace(
        "  max_interval: 1s\n",
        "  max_interval: 1s\n  timeout: 18446744073709551615s\n",
    );
    assert_ne!(extreme, plan_text);
    std::fs::write(&sidecar.config, extreme).unwrap();
    sidecar.wait_for("the reload to be refused", Duration::from_secs(20), || {
        sidecar.reloads("error") >= 1.0
    });
    // Refreshes go on under the running configuration: two more keys in a row.
    for _ in 0..2 {
        let before = sidecar.key_id("a");
        sidecar.wait_for("the next refresh", Duration::from_secs(20), || {
            sidecar.key_id("a") != before
        });
    }
    assert_eq!(sidecar.get("/healthz").0, 200);
    let status = sidecar.status_report();
    let refused = status["last_reload"]["error"].as_str().unwrap();
    assert!(refused.contains("refresh.timeout"), "{refused}");
}

#[test]
fn trace_logs_never_print_the_sdk_bodies_even_when_asked_to() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let config = sb.write("config.yaml", &plan.config(&["a"], ""));
    let sidecar = plan.start_with_env(
        &config,
        &["--log-level", "trace"],
        &[("LOG_SENSITIVE_BODIES", "true")],
    );
    sidecar.wait_readyz(200, Duration::from_secs(20));
    let logs = sidecar.running.logs();
    // The SDK's own debug events are there: the level took effect.
    assert!(logs.contains("\"target\":\"aws_smithy"), "{logs}");
    assert_no_secrets(&logs, &secrets_in(&sidecar.out));
}
