//! Black-box tests of failures around the outputs: writes that fail and credentials that expire.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::proxy::{sts_error, Action, Proxy};
use common::*;

const ROLE: &str = "arn:aws:iam::111111111111:role/RoleForB";

/// Starts `run` for one role; returns it with the status and endpoint base URLs.
fn start(sb: &Sandbox, sts_url: &str) -> (Running, String, String) {
    let (status, endpoint) = (free_port(), free_port());
    let config = format!(
        "server:\n  listen: 127.0.0.1:{status}\ncredentials_endpoint:\n  listen: 127.0.0.1:{endpoint}\n\
         refresh:\n  backoff_initial: 200ms\n  backoff_max: 1s\n"
    );
    let mut cmd = sb.rolerelay();
    cmd.args([
        "run",
        "--role-arn",
        ROLE,
        "--role-name",
        "a",
        "--sts-endpoint-url",
        sts_url,
        "--output-dir",
    ])
    .arg(sb.path("out"))
    .env("ROLERELAY_CONFIG", sb.write("c.yaml", &config));
    let running = Running::start(cmd, sb.path("run.log"));
    (
        running,
        format!("http://127.0.0.1:{status}"),
        format!("http://127.0.0.1:{endpoint}"),
    )
}

#[test]
fn a_failed_write_is_retried_without_calling_sts_again() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, Arc::new(|_: &str| Action::Forward));
    // A directory where a.env should go makes that one write fail.
    std::fs::create_dir_all(sb.path("out/a.env/blocker")).unwrap();
    let (running, status, _) = start(&sb, &proxy.url);
    let metrics = || http_get(&format!("{status}/metrics"), &[]).1;
    wait_for("failed writes", Duration::from_secs(20), || {
        try_http_get(&format!("{status}/metrics"), &[]).is_ok()
            && metric(
                &metrics(),
                "rolerelay_output_write_errors_total{output=\"env_file\",role=\"a\"}",
            )
            .unwrap_or(0.0)
                >= 3.0
    });
    let (code, body) = http_get(&format!("{status}/readyz"), &[]);
    assert_eq!(code, 503);
    assert!(
        body.contains("the env_file output could not be written"),
        "{body}"
    );
    assert!(
        sb.path("out/a.json").exists(),
        "the other outputs are written"
    );
    assert_eq!(proxy.count(), 1, "retrying a write does not call STS");

    std::fs::remove_dir_all(sb.path("out/a.env")).unwrap();
    wait_for("the write to succeed", Duration::from_secs(10), || {
        http_get(&format!("{status}/readyz"), &[]).0 == 200
    });
    assert!(std::fs::read_to_string(sb.path("out/a.env"))
        .unwrap()
        .starts_with("AWS_ACCESS_KEY_ID="));
    assert_eq!(proxy.count(), 1);
    assert_no_secrets(&running.logs(), &secrets_in(&sb.path("out")));
}

#[test]
fn expired_credentials_are_withdrawn_and_never_served() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    // The first reply is rewritten to expire in 3 s; after it STS fails.
    let first = Arc::new(AtomicBool::new(true));
    let proxy = Proxy::start(
        moto.port,
        Arc::new(move |_: &str| {
            if first.swap(false, Ordering::SeqCst) {
                Action::Rewrite(|body| {
                    let soon = humantime::format_rfc3339_seconds(now() + Duration::from_secs(3))
                        .to_string();
                    let start = body.find("<Expiration>").unwrap() + "<Expiration>".len();
                    let end = body.find("</Expiration>").unwrap();
                    format!("{}{soon}{}", &body[..start], &body[end..])
                })
            } else {
                Action::Reply(503, sts_error("ServiceUnavailable", "down for the test"))
            }
        }),
    );
    let (running, status, endpoint) = start(&sb, &proxy.url);
    let out = sb.path("out");
    wait_for(
        "the short-lived credentials",
        Duration::from_secs(20),
        || out.join("a.json").exists(),
    );
    let secrets = secrets_in(&out);
    wait_for("the files to be withdrawn", Duration::from_secs(20), || {
        !out.join("a.json").exists()
    });
    assert!(!out.join("a.env").exists());
    let ini = std::fs::read_to_string(out.join("credentials")).unwrap();
    assert!(!ini.contains("[a]"), "{ini}");
    let (code, body) = http_get(&format!("{status}/readyz"), &[]);
    assert_eq!(code, 503);
    assert!(body.contains("expired"), "{body}");
    let token = std::fs::read_to_string(out.join("token")).unwrap();
    let (code, _) = http_get(
        &format!("{endpoint}/v1/credentials/a"),
        &[("Authorization", &token)],
    );
    assert_eq!(code, 503, "expired credentials are never served");
    let logs = running.logs();
    assert!(
        logs.contains("credentials expired before a refresh succeeded"),
        "{logs}"
    );
    assert_eq!(
        logs.matches("credentials expired before a refresh succeeded")
            .count(),
        1,
        "withdrawn once"
    );
    assert_no_secrets(&logs, &secrets);
}
