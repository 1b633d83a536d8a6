//! Black-box tests of STS failures: a proxy in front of moto answers with STS's own errors.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::proxy::{sts_error, Action, Proxy};
use common::sidecar::Sidecar;
use common::*;

const ROLE: &str = "arn:aws:iam::111111111111:role/RoleForB";

#[test]
fn each_sts_error_is_classified_and_explained() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let cases = [
        ("AccessDenied", 403, "access_denied"),
        ("Throttling", 400, "throttled"),
        ("InvalidClientTokenId", 403, "invalid_source_credentials"),
        ("ExpiredToken", 400, "invalid_source_credentials"),
        ("MalformedPolicyDocument", 400, "validation"),
        ("InternalFailure", 500, "other"),
    ];
    for (code, status, kind) in cases {
        let proxy = Proxy::start(
            moto.port,
            Arc::new(move |_: &str| Action::Reply(status, sts_error(code, "said the proxy"))),
        );
        let (exit, _, stderr) = run(sb.once_one(ROLE, &proxy.url, &sb.path(code)));
        assert_eq!(exit.code(), Some(1), "{code}: {stderr}");
        let expected = format!("a ({kind}: {code}: said the proxy");
        assert!(
            stderr.contains(&expected),
            "{code}: want {expected:?} in\n{stderr}"
        );
        assert_eq!(
            proxy.count(),
            1,
            "{code}: one attempt, no SDK retries behind our back"
        );
        assert!(!sb.path(code).join("a.json").exists());
        if code == "AccessDenied" {
            assert!(
                stderr.contains(&format!("check that the trust policy of {ROLE} trusts")),
                "{stderr}"
            );
        }
    }
    let proxy = Proxy::start(
        moto.port,
        Arc::new(|_: &str| Action::Reply(200, "<AssumeRoleResponse><Cred".into())),
    );
    let (exit, _, stderr) = run(sb.once_one(ROLE, &proxy.url, &sb.path("malformed")));
    assert_eq!(exit.code(), Some(1));
    assert!(stderr.contains("a (other: "), "{stderr}");
}

#[test]
fn a_refused_long_duration_is_capped_to_one_hour_and_logged_once() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let refused = Arc::new(AtomicUsize::new(0));
    let seen = refused.clone();
    let proxy = Proxy::start(
        moto.port,
        Arc::new(move |body: &str| {
            if body.contains("DurationSeconds=7200") {
                seen.fetch_add(1, Ordering::SeqCst);
                let message = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.";
                Action::Reply(400, sts_error("ValidationError", message))
            } else {
                Action::Forward
            }
        }),
    );
    // Everything from flags but the listen addresses, which have no flags.
    let plan = Sidecar::plan(&sb, &proxy.url);
    let out = plan.out();
    let listen = sb.write("listen.yaml", &plan.listen_yaml());
    let mut sidecar = plan.start_with(
        &listen,
        &[
            "--role-arn",
            ROLE,
            "--role-name",
            "a",
            "--duration",
            "2h",
            "--max-interval",
            "1s",
            "--sts-endpoint-url",
            &proxy.url,
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    sidecar.wait_for("three refreshes", Duration::from_secs(30), || {
        sidecar.running.logs().matches("\"assumed role\"").count() >= 3
    });
    sidecar.running.signal("TERM");
    assert_eq!(
        sidecar.running.wait(Duration::from_secs(10)).code(),
        Some(0)
    );

    let logs = sidecar.running.logs();
    assert_eq!(
        refused.load(Ordering::SeqCst),
        1,
        "2h is asked once, then 1h"
    );
    assert_eq!(
        logs.matches("STS refused the requested session duration")
            .count(),
        1,
        "{logs}"
    );
    assert!(
        !logs.contains("refresh failed"),
        "the capped call succeeds in the same attempt: {logs}"
    );
    let json = process_json(&out, "a");
    let expiry = humantime::parse_rfc3339(json["Expiration"].as_str().unwrap()).unwrap();
    assert!(expiry.duration_since(now()).unwrap() <= Duration::from_secs(3600));
    assert_no_secrets(&logs, &secrets_in(&out));
}

#[test]
fn once_retries_a_transient_error_by_default_and_fails_at_once_with_retry_for_zero() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let throttle_first_two = || {
        let seen = Arc::new(AtomicUsize::new(0));
        Proxy::start(
            moto.port,
            Arc::new(move |_: &str| {
                if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                    Action::Reply(400, sts_error("Throttling", "Rate exceeded"))
                } else {
                    Action::Forward
                }
            }),
        )
    };

    // No --retry-for: the default minute covers two throttled attempts and their backoff.
    let proxy = throttle_first_two();
    let out = sb.path("default");
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["once", "--role-arn", ROLE, "--role-name", "a"])
            .args(["--sts-endpoint-url", &proxy.url, "--output-dir"])
            .arg(&out);
        c
    });
    assert!(status.success(), "{stderr}");
    assert_eq!(
        proxy.count(),
        3,
        "two throttled calls, then one that succeeds"
    );
    assert!(
        stderr.contains("retrying the roles that failed"),
        "{stderr}"
    );
    assert!(out.join("a.json").exists());

    // ROLERELAY_RETRY_FOR=0: one attempt, exit 1.
    let proxy = throttle_first_two();
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["once", "--role-arn", ROLE, "--role-name", "a"])
            .args(["--sts-endpoint-url", &proxy.url, "--output-dir"])
            .arg(sb.path("zero"))
            .env("ROLERELAY_RETRY_FOR", "0");
        c
    });
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(proxy.count(), 1);
    assert!(
        stderr.contains("a (throttled: Throttling: Rate exceeded"),
        "{stderr}"
    );
}

/// A proxy that answers every request with STS's `Throttling`.
fn throttling(moto: &Moto) -> Proxy {
    Proxy::start(
        moto.port,
        Arc::new(|_: &str| Action::Reply(400, sts_error("Throttling", "Rate exceeded"))),
    )
}

/// The gaps between the proxy's arrivals, in order.
fn gaps(proxy: &Proxy) -> Vec<Duration> {
    let arrivals = proxy.arrivals();
    arrivals.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn a_throttled_role_waits_at_least_a_third_of_a_window_that_grows_by_half() {
    // With backoff_initial 250ms the throttle windows are 1 s, 1.5 s, 2.25 s: a retry comes no
    // sooner than a third of each. (An error other than a throttle may retry at once.)
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = throttling(&moto);
    let refresh = "refresh:\n  backoff_initial: 250ms\n  backoff_max: 1m\n";
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], refresh);
    sidecar.wait_for("four throttled attempts", Duration::from_secs(30), || {
        proxy.count() >= 4
    });
    let least = [333, 500, 750].map(Duration::from_millis);
    for (gap, least) in gaps(&proxy).iter().zip(least) {
        assert!(
            *gap >= least,
            "a retry after {gap:?}, sooner than {least:?}"
        );
    }
    assert_eq!(sidecar.errors("a", "throttled"), proxy.count() as f64);

    // `once --retry-for` waits the same way between its rounds. (6 s: the first round counts,
    // and on a machine busy with the whole suite it once took 3 s alone.)
    let proxy = throttling(&moto);
    let plan = Sidecar::plan(&sb, &proxy.url);
    let config = sb.write("once.yaml", &plan.config(&["a"], refresh));
    let mut once = sb.rolerelay();
    once.args(["once", "--retry-for", "6s", "--config"])
        .arg(config);
    let (exit, _, stderr) = run(once);
    assert_eq!(exit.code(), Some(1), "{stderr}");
    assert!(proxy.count() >= 2, "{stderr}");
    for (gap, least) in gaps(&proxy).iter().zip(least) {
        assert!(
            *gap >= least,
            "once retried after {gap:?}, sooner than {least:?}"
        );
    }
}
