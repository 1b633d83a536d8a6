//! Which probe fails when: the health checks that the shipped files wire (the image's
//! HEALTHCHECK, the ECS task's health check, the Kubernetes probes) against an STS that goes away
//! while the sidecar holds credentials near their end.

mod common;

use std::path::Path;
use std::time::Duration;

use common::proxy::{always, expire_in, Action, Proxy};
use common::sidecar::Sidecar;
use common::*;

/// The repository's own files.
fn shipped(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The arguments of `rolerelay` in each shipped health check command, by where it comes from.
fn shipped_health_checks() -> Vec<(&'static str, Vec<String>)> {
    let dockerfile = shipped("Dockerfile");
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("the Dockerfile has a HEALTHCHECK");
    let command: Vec<String> = serde_json::from_str(line.split_once("CMD ").unwrap().1).unwrap();
    let task: serde_json::Value =
        serde_json::from_str(&shipped("deploy/ecs/task-definition.json")).unwrap();
    let sidecar = task["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rolerelay")
        .unwrap();
    let ecs: Vec<String> =
        serde_json::from_value(sidecar["healthCheck"]["command"].clone()).unwrap();
    // Both run the image's binary: ["/rolerelay", args...], ECS's after its "CMD".
    assert_eq!(command[0], "/rolerelay");
    assert_eq!(ecs[..2], ["CMD", "/rolerelay"]);
    vec![
        ("Dockerfile HEALTHCHECK", command[1..].to_vec()),
        ("ECS healthCheck", ecs[2..].to_vec()),
    ]
}

/// The path of a probe of the sidecar in the shipped Deployment.
fn kubernetes_probe(probe: &str) -> String {
    let deployment = shipped("deploy/kubernetes/deployment.yaml");
    let after = deployment
        .split_once(&format!("{probe}:"))
        .unwrap_or_else(|| panic!("no {probe}"))
        .1;
    let path = after.lines().find_map(|l| l.trim().strip_prefix("path: "));
    path.expect("an httpGet path").to_string()
}

/// The exit code of `rolerelay <args>` run as the container would run it: with the sidecar's
/// configuration in the environment.
fn exit_code(sb: &Sandbox, args: &[String], config: &Path) -> i32 {
    let mut cmd = sb.rolerelay();
    cmd.args(args).env("ROLERELAY_CONFIG", config);
    let (status, _, _) = run(cmd);
    status.code().unwrap()
}

#[test]
fn an_sts_outage_near_expiry_keeps_the_shipped_health_checks_green_until_the_credentials_expire() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    // Credentials that live 30 s, with 20 s to be kept in hand.
    let proxy = Proxy::start(
        moto.port,
        always(|| Action::Rewrite(|body| expire_in(body, Duration::from_secs(30)))),
    );
    let sidecar = Sidecar::start(
        &sb,
        &proxy.url,
        &["a"],
        "refresh:\n  min_remaining: 20s\n  backoff_initial: 100ms\n  backoff_max: 1s\n",
    );
    sidecar.wait_readyz(200, Duration::from_secs(20));
    let checks = shipped_health_checks();
    let (readiness, liveness) = (
        kubernetes_probe("readinessProbe"),
        kubernetes_probe("livenessProbe"),
    );
    for (what, args) in &checks {
        assert_eq!(
            exit_code(&sb, args, &sidecar.config),
            0,
            "{what} before the outage"
        );
    }

    proxy.set_rule(always(|| Action::Reset));
    // What alerts: not ready, failures counted, while the credentials are still valid.
    sidecar.wait_readyz(503, Duration::from_secs(30));
    let status = sidecar.status_report();
    let expiration = status["roles"][0]["expiration"]
        .as_str()
        .unwrap()
        .to_string();
    let expiry = humantime::parse_rfc3339(&expiration).unwrap();
    assert!(
        expiry > now() + Duration::from_secs(3),
        "still valid: {expiration}"
    );
    assert_eq!(sidecar.metric("rolerelay_ready{role=\"a\"}"), 0.0);
    assert!(sidecar.metric("rolerelay_consecutive_failures{role=\"a\"}") >= 1.0);
    // What may restart or unroute stays green.
    for (what, args) in &checks {
        assert_eq!(
            exit_code(&sb, args, &sidecar.config),
            0,
            "{what} during the outage"
        );
    }
    assert_eq!(
        sidecar.get(&readiness).0,
        200,
        "Kubernetes readiness {readiness}"
    );
    assert_eq!(
        sidecar.get(&liveness).0,
        200,
        "Kubernetes liveness {liveness}"
    );
    assert_eq!(sidecar.credentials("a", Some(&sidecar.token())).0, 200);

    // Once the credentials really expire, every one of them fails.
    sidecar.wait_for("the credentials to expire", Duration::from_secs(40), || {
        sidecar.get(&readiness).0 == 503
    });
    assert!(now() >= expiry, "not before {expiration}");
    for (what, args) in &checks {
        assert_eq!(
            exit_code(&sb, args, &sidecar.config),
            1,
            "{what} after expiry"
        );
    }
    assert_eq!(sidecar.get(&liveness).0, 200, "the loop itself is alive");
}

#[test]
fn once_with_retry_for_waits_for_an_sts_that_comes_up_late() {
    let sb = Sandbox::new();
    let sts_port = free_port();
    let out = sb.path("out");
    let mut cmd = sb.once_one(
        "arn:aws:iam::111111111111:role/app",
        &format!("http://127.0.0.1:{sts_port}"),
        &out,
    );
    cmd.args(["--retry-for", "90s"]);
    let mut once = Running::start(cmd, sb.path("once.log"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!out.join("a.json").exists(), "STS is not up yet");
    let _moto = Moto::start_on(sts_port);
    let status = once.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", once.logs());
    assert!(out.join("a.json").exists());
}
