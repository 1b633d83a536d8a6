//! Black-box tests of the core: the built binary against a real moto STS, read by the real AWS CLI.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::sidecar::Sidecar;
use common::*;

const ROLE_A: &str = "arn:aws:iam::111111111111:role/RoleForB";
const ROLE_C: &str = "arn:aws:iam::333333333333:role/Reader";

fn two_roles(moto: &Moto, dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
sts:
  endpoint_url: {url}
roles:
  - name: account-a
    role_arn: {ROLE_A}
    session_name: "rr-{{role}}"
    external_id: ext-a-123
  - name: account-c
    role_arn: {ROLE_C}
    session_name: "rr-{{role}}"
    duration: 2h
    tags: {{team: payments}}
    transitive_tag_keys: [team]
    policy_arns: [arn:aws:iam::aws:policy/ReadOnlyAccess]
    source_identity: rolerelay-test
outputs:
  directory: {dir}
  default_role: account-c
{extra}"#,
        url = moto.url,
        dir = dir.display()
    )
}

#[test]
fn once_writes_every_format_and_the_aws_cli_uses_each() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let out = sb.path("out");
    let config = sb.write("config.yaml", &two_roles(&moto, &out, ""));
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["once", "--config"]).arg(&config);
        c
    });
    assert!(status.success(), "once failed: {stderr}");

    for file in [
        "credentials",
        "config",
        "account-a.json",
        "account-a.env",
        "account-c.json",
        "account-c.env",
    ] {
        let mode = fs::metadata(out.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{file}");
    }
    let a_arn = "arn:aws:sts::111111111111:assumed-role/RoleForB/rr-account-a";
    let c_arn = "arn:aws:sts::333333333333:assumed-role/Reader/rr-account-c";
    let creds_file = out.join("credentials");
    let creds_env = [("AWS_SHARED_CREDENTIALS_FILE", creds_file.to_str().unwrap())];
    assert_eq!(
        sb.caller_arn(&moto, &["--profile", "account-a"], &creds_env),
        a_arn
    );
    assert_eq!(
        sb.caller_arn(&moto, &["--profile", "account-c"], &creds_env),
        c_arn
    );
    assert_eq!(
        sb.caller_arn(&moto, &[], &creds_env),
        c_arn,
        "[default] is default_role"
    );

    let config_file = out.join("config");
    let config_file = config_file.to_str().unwrap();
    let via_process = [
        ("AWS_CONFIG_FILE", config_file),
        ("AWS_PROFILE", "account-a"),
    ];
    assert_eq!(
        sb.caller_arn(&moto, &[], &via_process),
        a_arn,
        "credential_process profile"
    );
    assert_eq!(
        sb.caller_arn(&moto, &[], &[("AWS_CONFIG_FILE", config_file)]),
        c_arn,
        "credential_process [default]"
    );

    let env_text = fs::read_to_string(out.join("account-a.env")).unwrap();
    let env: Vec<(&str, &str)> = env_text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(env.len(), 5);
    assert!(env.contains(&("AWS_ACCOUNT_ID", "111111111111")), "{env:?}");
    assert_eq!(sb.caller_arn(&moto, &[], &env), a_arn, "env file");

    let json = process_json(&out, "account-c");
    assert_eq!(json["Version"], 1);
    // Each delivery carries the role's own account, from the assumed-role ARN STS returned.
    assert_eq!(json["AccountId"], "333333333333");
    let ini = fs::read_to_string(out.join("credentials")).unwrap();
    assert!(
        ini.contains("aws_account_id = 111111111111\n")
            && ini.contains("aws_account_id = 333333333333\n"),
        "{ini}"
    );
    let expiration = humantime::parse_rfc3339(json["Expiration"].as_str().unwrap()).unwrap();
    let lifetime = expiration.duration_since(now()).unwrap();
    assert!(
        lifetime > Duration::from_secs(3600),
        "the 2h duration was requested: {lifetime:?}"
    );

    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON log lines"))
        .collect();
    let assumed: Vec<_> = logs
        .iter()
        .filter(|l| l["message"] == "assumed role")
        .collect();
    assert_eq!(assumed.len(), 2, "{stderr}");
    for line in assumed {
        assert!(line["access_key_id"].as_str().unwrap().starts_with("ASIA"));
        assert!(line["expiration"].as_str().unwrap().ends_with('Z'));
    }
    assert_no_secrets(&stderr, &secrets_in(&out));
}

#[test]
fn run_rotates_the_files_and_exits_0_on_sigterm() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let out = plan.out();
    let extra = format!(
        "  remove_on_exit: true\nrefresh:\n  max_interval: 1s\n  jitter: 0\n{}",
        plan.listen_yaml()
    );
    let config = sb.write("config.yaml", &two_roles(&moto, &out, &extra));
    let mut sidecar = plan.start(&config);

    sidecar.wait_for("the first credentials", Duration::from_secs(20), || {
        out.join("account-a.json").exists()
    });
    let first = process_json(&out, "account-a")["AccessKeyId"].clone();
    let mut seen = vec![first.clone()];
    sidecar.wait_for("a rotation", Duration::from_secs(20), || {
        // The file is replaced atomically: every read parses.
        let now = process_json(&out, "account-a")["AccessKeyId"].clone();
        if !seen.contains(&now) {
            seen.push(now);
        }
        seen.len() >= 3
    });
    let creds_file = out.join("credentials");
    let arn = sb.caller_arn(
        &moto,
        &["--profile", "account-a"],
        &[("AWS_SHARED_CREDENTIALS_FILE", creds_file.to_str().unwrap())],
    );
    assert_eq!(
        arn,
        "arn:aws:sts::111111111111:assumed-role/RoleForB/rr-account-a"
    );
    let secrets = secrets_in(&out);

    sidecar.running.signal("TERM");
    let status = sidecar.running.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", sidecar.running.logs());
    assert!(
        !out.join("account-a.json").exists() && !out.join("credentials").exists(),
        "remove_on_exit"
    );
    assert_no_secrets(&sidecar.running.logs(), &secrets);
}

#[test]
fn a_bad_configuration_exits_2_naming_the_key() {
    let sb = Sandbox::new();
    // `run` must refuse it before it binds anything; free ports in case it ever does not.
    let config = sb.write(
        "bad.yaml",
        &format!(
            "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    duration: 90 minutes-ish\n\
             server:\n  listen: 127.0.0.1:{}\ncredentials_endpoint:\n  listen: 127.0.0.1:{}\n",
            free_port(),
            free_port()
        ),
    );
    for command in ["run", "once", "check"] {
        let (status, stdout, stderr) = run({
            let mut c = sb.rolerelay();
            c.args([command, "--config"]).arg(&config);
            c
        });
        assert_eq!(status.code(), Some(2), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: one line: {stderr}");
        assert!(
            stderr.contains("bad.yaml:4: roles[0].duration: invalid duration"),
            "{command}: {stderr}"
        );
        assert!(stdout.is_empty());
    }
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args([
            "check",
            "--role-arn",
            "arn:aws:iam::111111111111:role/A",
            "--file-mode",
            "0777",
        ]);
        c
    });
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("--file-mode (or ROLERELAY_FILE_MODE)"),
        "{stderr}"
    );
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["check", "--config"]).arg(sb.path("missing.yaml"));
        c
    });
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("missing.yaml: cannot read the configuration file"),
        "{stderr}"
    );
}

#[test]
fn flags_beat_environment_beats_file_beats_default() {
    let sb = Sandbox::new();
    let config = sb.write(
        "c.yaml",
        "sts:\n  region: us-west-2\nroles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n",
    );
    let region = |env: Option<&str>, flag: Option<&str>| {
        let mut c = sb.rolerelay();
        c.args(["check", "--config"])
            .arg(&config)
            .env("AWS_REGION", "sa-east-1");
        if let Some(e) = env {
            c.env("ROLERELAY_REGION", e);
        }
        if let Some(f) = flag {
            c.args(["--region", f]);
        }
        let (status, stdout, stderr) = run(c);
        assert!(status.success(), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        v["sts"]["region"].as_str().unwrap().to_string()
    };
    assert_eq!(region(None, None), "us-west-2", "file over AWS_REGION");
    assert_eq!(
        region(Some("eu-west-1"), None),
        "eu-west-1",
        "environment over file"
    );
    assert_eq!(
        region(Some("eu-west-1"), Some("ap-south-1")),
        "ap-south-1",
        "flag over environment"
    );

    let (status, stdout, _) = run({
        let mut c = sb.rolerelay();
        c.args(["check", "--role-arn", "arn:aws:iam::111111111111:role/A"]);
        c
    });
    assert!(status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["outputs"]["directory"], "/var/run/rolerelay", "default");
    assert_eq!(v["roles"][0]["name"], "A");

    // `rolerelay check | head -1`: the reader is gone before the output is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = sb.rolerelay();
    c.args(["check", "--role-arn", "arn:aws:iam::111111111111:role/A"])
        .stdout(writer);
    let output = c.output().unwrap();
    assert!(
        output.status.success(),
        "a closed pipe is no crash: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn credential_process_prints_current_credentials_only() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let out = sb.path("out");
    let (status, _, stderr) = run(sb.once_one(ROLE_A, &moto.url, &out));
    assert!(status.success(), "{stderr}");
    let (status, stdout, _) = run({
        let mut c = sb.rolerelay();
        c.args(["credential-process", "--role", "a", "--dir"])
            .arg(&out);
        c
    });
    assert!(status.success());
    assert_eq!(stdout, fs::read_to_string(out.join("a.json")).unwrap());

    // An expired file is refused without printing its content.
    let mut json = process_json(&out, "a");
    json["Expiration"] = "2020-01-01T00:00:00Z".into();
    fs::write(out.join("old.json"), json.to_string()).unwrap();
    for role in ["old", "missing"] {
        let (status, stdout, stderr) = run({
            let mut c = sb.rolerelay();
            c.args(["credential-process", "--role", role, "--dir"])
                .arg(&out);
            c
        });
        assert_eq!(status.code(), Some(1), "{role}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(&format!("{role}.json")), "{stderr}");
        assert_no_secrets(&stderr, &secrets_in(&out));
    }
}

#[test]
fn a_chain_assumes_each_hop_with_the_previous_credentials() {
    let moto = Moto::start();
    // moto does not check who signs a call: the proxy records it.
    let proxy = common::proxy::Proxy::start(moto.port, common::proxy::forward());
    let sb = Sandbox::new();
    let out = sb.path("out");
    let config = sb.write(
        "c.yaml",
        &format!(
            "sts:\n  endpoint_url: {}\nroles:\n  - name: target\n    role_arn: {ROLE_C}\n    session_name: chained\n    duration: 3h\n    chain:\n      - arn:aws:iam::222222222222:role/Hop\noutputs:\n  directory: {}\n",
            proxy.url,
            out.display()
        ),
    );
    let (status, _, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["once", "--config"]).arg(&config);
        c
    });
    assert!(status.success(), "{stderr}");
    let calls = proxy.calls();
    let issued = proxy.issued();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].role_arn, "arn:aws:iam::222222222222:role/Hop");
    assert!(
        calls[0].signed_by.starts_with("AKIA"),
        "the first hop with the source credentials: {calls:?}"
    );
    assert_eq!(calls[1].role_arn, ROLE_C);
    assert_eq!(
        calls[1].signed_by, issued[0],
        "the target with the hop's credentials"
    );
    assert!(
        stderr.contains("a role assumed through a chain gets at most 1h"),
        "{stderr}"
    );
    let json = process_json(&out, "target");
    let env = [
        ("AWS_ACCESS_KEY_ID", json["AccessKeyId"].as_str().unwrap()),
        (
            "AWS_SECRET_ACCESS_KEY",
            json["SecretAccessKey"].as_str().unwrap(),
        ),
        ("AWS_SESSION_TOKEN", json["SessionToken"].as_str().unwrap()),
    ];
    assert_eq!(
        sb.caller_arn(&moto, &[], &env),
        "arn:aws:sts::333333333333:assumed-role/Reader/chained"
    );
}

#[test]
fn an_unreachable_sts_fails_once_with_a_network_error() {
    let sb = Sandbox::new();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (status, _, stderr) = run(sb.once_one(ROLE_A, &closed, &sb.path("out")));
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("\"kind\":\"network\"") || stderr.contains("a (network:"),
        "{stderr}"
    );
    assert!(!sb.path("out/a.json").exists());
}
