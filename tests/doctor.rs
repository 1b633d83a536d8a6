//! Black-box tests of `rolerelay doctor`: the success path against moto, each failure (through a
//! proxy answering STS's own errors) with its hint, and no source credentials at all.

mod common;

use std::sync::Arc;

use common::proxy::{sts_error, Action, Proxy};
use common::*;

fn config(sb: &Sandbox, sts: &str, role_extra: &str) -> std::path::PathBuf {
    sb.write(
        "doctor.yaml",
        &format!(
            "sts:\n  endpoint_url: {sts}\noutputs:\n  directory: {}\nserver:\n  listen: 127.0.0.1:{}\ncredentials_endpoint:\n  listen: 127.0.0.1:{}\n\
             roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/RoleForB\n    session_name: doc\n{role_extra}",
            sb.path("out").display(),
            free_port(),
            free_port()
        ),
    )
}

fn doctor(sb: &Sandbox, config: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut c = sb.rolerelay();
    c.args(["doctor", "--config"]).arg(config);
    if json {
        c.args(["--format", "json"]);
    }
    let (status, stdout, stderr) = run(c);
    (status.code().unwrap(), stdout, stderr)
}

#[test]
fn a_working_setup_is_all_ticks() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let config = config(&sb, &moto.url, "    duration: 2h\n  - name: chained\n    role_arn: arn:aws:iam::333333333333:role/Target\n    chain: [arn:aws:iam::222222222222:role/Hop]\n");
    let (code, out, err) = doctor(&sb, &config, false);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "✓ source credentials: environment: access key AKIASOURCEEXAMPLE",
        "✓ source identity: arn:aws:sts::123456789012:user/moto (account 123456789012)",
        "✓ role a: assumed arn:aws:iam::111111111111:role/RoleForB as session doc for 119m",
        "✓ role chained hop 1 of 1: assumed arn:aws:iam::222222222222:role/Hop",
        "✓ role chained: assumed arn:aws:iam::333333333333:role/Target",
        "✓ output files: mode 0640, owner",
        "all checks passed",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in\n{out}"
        );
    }
    assert!(
        out.contains(&format!(
            "✓ output directory {}: will be created, writable",
            sb.path("out").display()
        )),
        "{out}"
    );
    assert!(out.contains("✓ server.listen 127.0.0.1:") && out.contains("free to bind"));

    let (code, json, _) = doctor(&sb, &config, true);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["checks"].as_array().unwrap().len() >= 7);
    assert!(
        !out.contains("source-secret-not-for-logs") && !json.contains("source-secret-not-for-logs")
    );
}

/// A proxy that lets GetCallerIdentity through and answers AssumeRole with `answer`.
fn refusing(moto: &Moto, answer: fn(&str) -> Option<(u16, String)>) -> Proxy {
    Proxy::start(
        moto.port,
        Arc::new(move |body: &str| match body.contains("Action=AssumeRole") {
            true => answer(body).map_or(Action::Forward, |(status, text)| {
                Action::Reply(status, text)
            }),
            false => Action::Forward,
        }),
    )
}

#[test]
fn access_denied_shows_the_trust_policy_and_the_permission_to_add() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let denied = "User: arn:aws:sts::123456789012:user/moto is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/RoleForB";
    let proxy = refusing(&moto, |_| {
        Some((403, sts_error("AccessDenied", "User: arn:aws:sts::123456789012:user/moto is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/RoleForB")))
    });
    let (code, out, _) = doctor(&sb, &config(&sb, &proxy.url, ""), false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("✗ role a: access_denied: AccessDenied: {denied}")),
        "{out}"
    );
    assert!(
        out.contains("trust policy does not trust arn:aws:sts::123456789012:user/moto"),
        "{out}"
    );
    assert!(
        out.contains("\"Principal\": {\"AWS\": \"arn:aws:sts::123456789012:user/moto\"}"),
        "{out}"
    );
    assert!(out.contains("\"Action\": \"sts:AssumeRole\", \"Resource\": \"arn:aws:iam::111111111111:role/RoleForB\""), "{out}");
    assert!(out.ends_with("some checks failed\n"));
}

#[test]
fn a_missing_external_id_is_named() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    // The role's trust policy demands an ExternalId: without one, AccessDenied.
    let proxy = refusing(&moto, |body| {
        (!body.contains("ExternalId=")).then(|| {
            (
                403,
                sts_error(
                    "AccessDenied",
                    "User: x is not authorized to perform: sts:AssumeRole on resource: y",
                ),
            )
        })
    });
    let (code, out, _) = doctor(&sb, &config(&sb, &proxy.url, ""), false);
    assert_eq!(code, 1);
    assert!(out.contains("the trust policy requires an sts:ExternalId and none is sent (set roles[].external_id)"), "{out}");
    let (code, out, _) = doctor(
        &sb,
        &config(&sb, &proxy.url, "    external_id: the-right-one\n"),
        false,
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_duration_over_the_role_maximum_is_named() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = refusing(&moto, |_| {
        Some((
            400,
            sts_error(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ),
        ))
    });
    let (code, out, _) = doctor(&sb, &config(&sb, &proxy.url, "    duration: 4h\n"), false);
    assert_eq!(code, 1);
    assert!(out.contains("✗ role a: validation: ValidationError: The requested DurationSeconds exceeds the MaxSessionDuration"), "{out}");
    assert!(
        out.contains(
            "longer than arn:aws:iam::111111111111:role/RoleForB's maximum session duration"
        ),
        "{out}"
    );
    assert!(out.contains("--max-session-duration"), "{out}");
}

#[test]
fn no_source_credentials_at_all_is_a_diagnosis_not_a_stack_of_errors() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let mut c = sb.rolerelay();
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    c.args(["doctor", "--config"])
        .arg(config(&sb, &moto.url, ""));
    let (status, out, _) = run(c);
    assert_eq!(status.code(), Some(1));
    assert!(out.contains("✗ source credentials: none found"), "{out}");
    for source in [
        "environment:",
        "profile:",
        "web identity (IRSA):",
        "container (ECS task role, EKS Pod Identity):",
        "IMDSv2 (EC2 instance profile):",
    ] {
        assert!(out.contains(source), "{source} in\n{out}");
    }
    assert!(out.contains("give the sidecar an identity"), "{out}");
    assert!(
        !out.contains("ProviderError(") && !out.contains("DispatchFailure"),
        "no debug dumps: {out}"
    );
    assert!(
        !out.contains("source identity"),
        "no identity step without credentials"
    );
    assert!(
        out.contains("✗ role a: not checked\n    cause: no source credentials"),
        "{out}"
    );
}

#[test]
fn ports_held_by_the_running_sidecar_pass_and_ports_held_by_others_fail() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = common::sidecar::Sidecar::start(&sb, &moto.url, &["a"], "");
    let (code, out, err) = doctor(&sb, &sidecar.config, false);
    assert_eq!(code, 0, "doctor beside the sidecar: {out}{err}");
    assert_eq!(
        out.matches("in use by the running rolerelay").count(),
        2,
        "{out}"
    );
    drop(sidecar);

    let config = config(&sb, &moto.url, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen: "))
        .unwrap();
    let _squatter = std::net::TcpListener::bind(listen).unwrap();
    let (code, out, _) = doctor(&sb, &config, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("✗ server.listen {listen}: cannot bind")),
        "{out}"
    );

    // Another HTTP server on the port (moto here; an application, say) is a conflict.
    let moto_as_squatter = config_with_listen(&sb, &moto.url, moto.port);
    let (code, out, _) = doctor(&sb, &moto_as_squatter, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ server.listen 127.0.0.1:"), "{out}");
}

/// The doctor configuration, with `server.listen` on `port`.
fn config_with_listen(sb: &Sandbox, sts: &str, port: u16) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config(sb, sts, "")).unwrap();
    let listen = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen: "))
        .unwrap()
        .to_string();
    sb.write(
        "squatted.yaml",
        &text.replacen(&listen, &format!("127.0.0.1:{port}"), 1),
    )
}
