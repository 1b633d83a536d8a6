//! Black-box tests of the HTTP side: health, readiness, metrics, status, the container-credentials
//! endpoint read by the real AWS CLI and boto3, and `rolerelay healthcheck`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::sidecar::Sidecar;
use common::*;

const ROLE: &str = "arn:aws:iam::111111111111:role/app";
const ASSUMED: &str = "arn:aws:sts::111111111111:assumed-role/app/rr-app";

#[test]
fn unreachable_sts_is_alive_not_ready_then_ready_when_sts_comes_up() {
    let sb = Sandbox::new();
    let sts_port = free_port();
    let sidecar = Sidecar::start(&sb, &format!("http://127.0.0.1:{sts_port}"), &["app"], "");
    let network_errors = || {
        let (_, text) = sidecar.get("/metrics");
        metric(
            &text,
            "rolerelay_refresh_errors_total{kind=\"network\",role=\"app\"}",
        )
        // The series appears with the first failure, which may not have come yet.
        .unwrap_or(0.0)
    };
    // The series appears with the first error, which may come after the start.
    sidecar.wait_for("two failed attempts", Duration::from_secs(20), || {
        sidecar.errors("app", "network") >= 2.0
    });

    assert_eq!(sidecar.get("/healthz").0, 200);
    let (code, body) = sidecar.get("/readyz");
    assert_eq!(code, 503);
    let why: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reason = why["roles"]["app"].as_str().unwrap();
    assert!(
        reason.contains("no credentials yet") && reason.contains("network"),
        "{body}"
    );
    assert_eq!(sidecar.healthcheck(&sb, "/readyz"), 1);
    assert_eq!(sidecar.healthcheck(&sb, "/healthz"), 0);
    assert_eq!(sidecar.credentials("app", Some(&sidecar.token())).0, 503);
    assert!(!sidecar.out.join("app.json").exists());
    let status = sidecar.status_report();
    assert_eq!(status["roles"][0]["last_error"]["kind"], "network");
    assert!(status["roles"][0]["consecutive_failures"].as_u64().unwrap() >= 2);
    let before = network_errors();
    sidecar.wait_for("the error counter to grow", Duration::from_secs(10), || {
        network_errors() > before
    });

    let _moto = Moto::start_on(sts_port);
    // backoff_max is 1s: ready within that and a little.
    sidecar.wait_readyz(200, Duration::from_secs(10));
    assert_eq!(sidecar.healthcheck(&sb, "/readyz"), 0);
    let (code, body) = sidecar.credentials("app", Some(&sidecar.token()));
    assert_eq!(code, 200, "{body}");
}

#[test]
fn the_aws_cli_and_boto3_use_the_endpoint() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = Sidecar::start(&sb, &moto.url, &["app"], "");
    sidecar.wait_readyz(200, Duration::from_secs(20));
    let token = sidecar.token();
    assert!(
        !token.ends_with('\n') && token.len() >= 32,
        "the token file is sent verbatim: {token:?}"
    );
    let uri = format!("{}/v1/credentials/app", sidecar.endpoint);
    let token_file = sidecar.out.join("token");
    let env = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.to_str().unwrap(),
        ),
    ];
    assert_eq!(sb.caller_arn(&moto, &[], &env), ASSUMED, "AWS CLI");

    let script = r#"
import boto3, os, sys
session = boto3.Session(region_name="us-east-1")
creds = session.get_credentials()
print(creds.method)
print(session.client("sts", endpoint_url=sys.argv[1]).get_caller_identity()["Arn"])
"#;
    let mut python = sb.command("python3");
    python.args(["-c", script, &moto.url]);
    for (k, v) in env {
        python.env(k, v);
    }
    let (status, stdout, stderr) = run(python);
    assert!(status.success(), "boto3: {stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["container-role", ASSUMED]
    );

    let (code, body) = sidecar.credentials("app", Some(&token));
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
        "RoleArn",
        "AccountId",
    ] {
        assert!(v[key].is_string(), "{key} in {body}");
    }
    assert_eq!(v["RoleArn"], ROLE);
    assert_eq!(v["AccountId"], ROLE.split(':').nth(4).unwrap());
}

#[test]
fn the_endpoint_refuses_wrong_tokens_and_unknown_roles_and_counts_every_request() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = Sidecar::start(&sb, &moto.url, &["app"], "");
    sidecar.wait_readyz(200, Duration::from_secs(20));
    let token = sidecar.token();
    // The last character changed (to one it is not: a token ending in 0 would match itself).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    assert_eq!(sidecar.credentials("app", None).0, 401);
    assert_eq!(sidecar.credentials("app", Some(&wrong)).0, 401);
    assert_eq!(sidecar.credentials("app", Some(&token[..16])).0, 401);
    assert_eq!(sidecar.credentials("nope", Some(&token)).0, 404);
    assert_eq!(sidecar.credentials("../etc", Some(&token)).0, 404);
    assert_eq!(sidecar.credentials("app", Some(&token)).0, 200);
    assert_eq!(
        http_get(
            &format!("{}/v1/credentials/", sidecar.endpoint),
            &[("Authorization", &token)]
        )
        .0,
        404
    );
    assert_eq!(sidecar.get("/nothing-here").0, 404);
    // The status server: a query is ignored; another method, or a path with more to it, is 404.
    assert_eq!(sidecar.get("/metrics?name[]=up").0, 200);
    assert_eq!(sidecar.get("/healthz/").0, 404);
    let post = |path: &str| {
        let mut stream = TcpStream::connect(sidecar.status.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(post("/healthz"), "HTTP/1.1 404 Not Found");

    let (_, text) = sidecar.get("/metrics");
    assert_eq!(
        metric(
            &text,
            "rolerelay_endpoint_requests_total{code=\"401\",role=\"app\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            "rolerelay_endpoint_requests_total{code=\"200\",role=\"app\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "rolerelay_endpoint_requests_total{code=\"404\",role=\"_unknown\"}"
        ),
        Some(3.0),
        "an unknown role, a path that is not one, and no role at all"
    );
    assert!(
        !text.contains("role=\"nope\""),
        "a made-up role never becomes a label"
    );
}

#[test]
fn metrics_pass_promtool_and_carry_every_spec_metric_after_success_and_failure() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = Sidecar::start(
        &sb,
        &moto.url,
        &["app"],
        "refresh:\n  max_interval: 1s\n  backoff_initial: 100ms\n  backoff_max: 1s\n",
    );
    sidecar.wait_readyz(200, Duration::from_secs(20));
    sidecar.credentials("app", Some(&sidecar.token()));
    let (_, after_success) = sidecar.get("/metrics");
    drop(moto); // STS goes away: the next refreshes fail.
    sidecar.wait_for("a failure", Duration::from_secs(20), || {
        metric(
            &sidecar.get("/metrics").1,
            "rolerelay_refresh_total{result=\"error\",role=\"app\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    });
    let (_, after_failure) = sidecar.get("/metrics");

    for (i, text) in [&after_success, &after_failure].into_iter().enumerate() {
        let file = sb.write("metrics.txt", text);
        let out = Command::new("promtool")
            .arg("check")
            .arg("metrics")
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .expect("promtool must be on PATH (Debian package prometheus; scripts/test-deps installs it)");
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for series in [
            "rolerelay_refresh_total{result=\"success\",role=\"app\"}",
            "rolerelay_refresh_duration_seconds_count{role=\"app\"}",
            "rolerelay_credentials_expiry_timestamp_seconds{role=\"app\"}",
            "rolerelay_last_success_timestamp_seconds{role=\"app\"}",
            "rolerelay_consecutive_failures{role=\"app\"}",
            "rolerelay_endpoint_requests_total{code=\"200\",role=\"app\"}",
            "rolerelay_config_reloads_total{result=\"error\"}",
            "rolerelay_build_info{version=\"",
            "rolerelay_ready{role=\"app\"}",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "{series} missing from\n{text}"
            );
        }
        // The error counter by kind appears with the first error, with its label.
        let by_kind = "rolerelay_refresh_errors_total{kind=\"network\",role=\"app\"}";
        assert_eq!(
            text.lines().any(|l| l.starts_with(by_kind)),
            i == 1,
            "{text}"
        );
    }
    assert!(
        metric(
            &after_success,
            "rolerelay_refresh_total{result=\"success\",role=\"app\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        metric(
            &after_failure,
            "rolerelay_consecutive_failures{role=\"app\"}"
        )
        .unwrap()
            >= 1.0
    );
    let expiry = metric(
        &after_success,
        "rolerelay_credentials_expiry_timestamp_seconds{role=\"app\"}",
    )
    .unwrap();
    let now = now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now + 3000.0 && expiry < now + 3700.0,
        "about an hour ahead: {expiry} vs {now}"
    );
}

#[test]
fn no_secret_reaches_status_metrics_or_logs_and_sigterm_stops_both_servers() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let mut sidecar = Sidecar::start(
        &sb,
        &moto.url,
        &["app"],
        "refresh:\n  max_interval: 1s\n  backoff_initial: 100ms\n  backoff_max: 1s\n",
    );
    sidecar.wait_readyz(200, Duration::from_secs(20));
    let token = sidecar.token();
    let mut secrets = vec![token.clone()];
    let mut seen = String::new();
    // Collect the secrets of several generations while reading every page.
    for _ in 0..3 {
        let (_, body) = sidecar.credentials("app", Some(&token));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        secrets.push(v["SecretAccessKey"].as_str().unwrap().into());
        secrets.push(v["Token"].as_str().unwrap().into());
        for path in ["/status", "/metrics", "/readyz", "/healthz"] {
            seen.push_str(&sidecar.get(path).1);
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    sidecar.running.signal("TERM");
    assert_eq!(
        sidecar.running.wait(Duration::from_secs(10)).code(),
        Some(0)
    );
    assert!(
        try_http_get(&format!("{}/healthz", sidecar.status), &[]).is_err(),
        "the status server is closed"
    );
    assert!(
        try_http_get(&format!("{}/v1/credentials/app", sidecar.endpoint), &[]).is_err(),
        "the endpoint is closed"
    );
    seen.push_str(&sidecar.running.logs());
    assert!(seen.contains("assumed role") && seen.contains("rolerelay_refresh_total"));
    assert_no_secrets(&seen, &secrets);
}

#[test]
fn a_busy_port_or_a_public_endpoint_address_stops_the_start() {
    let sb = Sandbox::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let config = sb.write(
        "c.yaml",
        &format!(
            "roles:\n  - name: a\n    role_arn: {ROLE}\noutputs:\n  directory: {}\nserver:\n  listen: 127.0.0.1:{port}\n\
             credentials_endpoint:\n  listen: 127.0.0.1:{}\n",
            sb.path("out").display(),
            free_port()
        ),
    );
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["run", "--config"]).arg(&config);
        c
    });
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains(&format!("cannot listen on server.listen 127.0.0.1:{port}")),
        "{stderr}"
    );

    let config = sb.write("p.yaml", &format!("roles:\n  - name: a\n    role_arn: {ROLE}\ncredentials_endpoint:\n  listen: 0.0.0.0:9911\n"));
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["check", "--config"]).arg(&config);
        c
    });
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("credentials_endpoint.listen: 0.0.0.0:9911 is not a loopback address"),
        "{stderr}"
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected_without_blocking_others() {
    use std::io::{Read, Write};
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = Sidecar::start(&sb, &moto.url, &["app"], "");
    let address = sidecar.status.trim_start_matches("http://");
    let mut slow = std::net::TcpStream::connect(address).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(sidecar.get("/healthz").0, 200, "others are still served");

    // The server gives up on the headers after 10 s and closes the connection.
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    assert!(
        read.is_ok(),
        "the connection is closed, not left open: {read:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "no answer to half a request: {answer}"
    );
}
