//! Black-box tests of what a new user meets first: the two listen addresses set by flags and
//! variables (hostnames too), `healthcheck` finding the server from the same configuration, the
//! error of a start with no configuration, and the `config` profile before the first credentials.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::proxy::{always, sts_error, Action, Proxy};
use common::*;

const ROLE: &str = "arn:aws:iam::111111111111:role/a";

/// `rolerelay healthcheck` with these arguments and variables: its exit code.
fn healthcheck(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> i32 {
    let mut c = sb.rolerelay();
    c.arg("healthcheck").args(args).envs(env.iter().copied());
    c.status().unwrap().code().unwrap()
}

#[test]
fn flags_and_variables_move_both_servers_hostnames_included_and_healthcheck_follows() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let (status_port, endpoint_port) = (free_port(), free_port());
    let listen = format!("localhost:{status_port}");
    let mut cmd = sb.rolerelay();
    cmd.args(["run", "--role-arn", ROLE, "--role-name", "a"])
        .args(["--sts-endpoint-url", &moto.url, "--listen", &listen])
        .arg("--output-dir")
        .arg(sb.path("out"))
        .env(
            "ROLERELAY_ENDPOINT_LISTEN",
            format!("localhost:{endpoint_port}"),
        );
    let running = Running::start(cmd, sb.path("run.log"));
    let status = format!("http://127.0.0.1:{status_port}");
    running.wait_for(
        "/readyz 200 on the --listen port",
        Duration::from_secs(20),
        || try_http_get(&format!("{status}/readyz"), &[]).is_ok_and(|(code, _)| code == 200),
    );
    let token = std::fs::read_to_string(sb.path("out/token")).unwrap();
    let (code, body) = http_get(
        &format!("http://127.0.0.1:{endpoint_port}/v1/credentials/a"),
        &[("Authorization", &token)],
    );
    assert_eq!(
        code, 200,
        "the endpoint on ROLERELAY_ENDPOINT_LISTEN's port: {body}"
    );
    assert!(
        running
            .logs()
            .contains(&format!("\"listen\":\"127.0.0.1:{status_port}\"")),
        "the log names the address bound for localhost:\n{}",
        running.logs()
    );

    // No --url: the server's address comes from the same flags, variables or file.
    assert_eq!(healthcheck(&sb, &["--listen", &listen], &[]), 0);
    assert_eq!(healthcheck(&sb, &[], &[("ROLERELAY_LISTEN", &listen)]), 0);
    let config = sb.write("config.yaml", &format!("server:\n  listen: {listen}\n"));
    assert_eq!(
        healthcheck(&sb, &["--config", config.to_str().unwrap()], &[]),
        0
    );
    // ...and a server that is not there fails it.
    let elsewhere = format!("127.0.0.1:{}", free_port());
    assert_eq!(healthcheck(&sb, &["--listen", &elsewhere], &[]), 1);
    assert_eq!(
        healthcheck(
            &sb,
            &["--config", config.to_str().unwrap()],
            &[("ROLERELAY_LISTEN", &elsewhere)]
        ),
        1,
        "the variable outranks the file"
    );
}

#[test]
fn a_bad_listen_address_names_its_flag_and_the_default_of_that_server() {
    let sb = Sandbox::new();
    let cases = [
        (["--listen", "9090"], "--listen (or ROLERELAY_LISTEN): \"9090\" is not an address:port or host:port like 0.0.0.0:9090"),
        (["--endpoint-listen", "127.0.0.1"], "--endpoint-listen (or ROLERELAY_ENDPOINT_LISTEN): \"127.0.0.1\" is not an address:port or host:port like 127.0.0.1:9911"),
        (["--listen", "no-such-host.invalid:9090"], "the host \"no-such-host.invalid\" does not resolve"),
    ];
    for (flags, want) in cases {
        let mut c = sb.rolerelay();
        c.args(["check", "--role-arn", ROLE]).args(flags);
        let (status, _, stderr) = run(c);
        assert_eq!(status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{flags:?}: want {want:?} in {stderr}"
        );
    }
}

#[test]
fn without_any_configuration_the_error_says_where_one_is_read_and_shows_the_one_line_form() {
    let sb = Sandbox::new();
    for command in ["run", "once", "check"] {
        let mut c = sb.rolerelay();
        c.arg(command);
        let (status, _, stderr) = run(c);
        assert_eq!(status.code(), Some(2), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: one line: {stderr}");
        for part in [
            "--config",
            "ROLERELAY_CONFIG",
            "rolerelay run --role-arn arn:aws:iam::",
        ] {
            assert!(
                stderr.contains(part),
                "{command}: want {part:?} in {stderr}"
            );
        }
    }
}

#[test]
fn before_the_first_credentials_the_config_profile_says_the_role_is_not_ready_then_works() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(
        moto.port,
        always(|| Action::Reply(403, sts_error("AccessDenied", "not yet"))),
    );
    let (status_port, endpoint_port) = (free_port(), free_port());
    let mut cmd = sb.rolerelay();
    cmd.args(["run", "--role-arn", ROLE, "--role-name", "a"])
        .args(["--sts-endpoint-url", &proxy.url])
        .args(["--listen", &format!("127.0.0.1:{status_port}")])
        .args(["--endpoint-listen", &format!("127.0.0.1:{endpoint_port}")])
        .arg("--output-dir")
        .arg(sb.path("out"))
        .args(["--app-dir", "/no/such/app dir"]);
    let running = Running::start(cmd, sb.path("run.log"));
    running.wait_for("an AccessDenied", Duration::from_secs(20), || {
        proxy.count() > 0 && sb.path("out/config").exists()
    });
    // The profile as the application's container sees it: the app directory is elsewhere (and
    // has a space, quoted once); here it is the output directory again, by rewriting that path.
    let config = std::fs::read_to_string(sb.path("out/config")).unwrap();
    assert!(config.contains("'/no/such/app dir'/a.json"), "{config}");
    let out = sb.path("out");
    let local = sb.write(
        "app-config",
        &config.replace("'/no/such/app dir'", &format!("'{}'", out.display())),
    );
    let profile = [
        ("AWS_CONFIG_FILE", local.to_str().unwrap()),
        ("AWS_PROFILE", "a"),
    ];
    let answer = sb.aws(&moto, &["sts", "get-caller-identity"], &profile);
    let stderr = String::from_utf8_lossy(&answer.stderr);
    assert!(!answer.status.success());
    assert!(
        stderr.contains("rolerelay: role a has no credentials yet")
            && stderr.contains("(see rolerelay /status)")
            && !stderr.contains("No such file"),
        "{stderr}"
    );

    // STS lets the role in: the same profile, unchanged, now works.
    proxy.set_rule(Arc::new(|_: &str| Action::Forward));
    running.wait_for("a.json", Duration::from_secs(30), || {
        out.join("a.json").exists()
    });
    let arn = sb.caller_arn(&moto, &[], &profile);
    assert!(
        arn.starts_with("arn:aws:sts::111111111111:assumed-role/a/"),
        "{arn}"
    );
}

#[test]
fn every_duration_sts_grants_works_without_a_refresh_section() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = common::sidecar::Sidecar::plan(&sb, &moto.url);
    // Role name, duration, and the margin each gets: 20m, or a third of a shorter session.
    let roles = [
        ("d15", "15m", "5m", 300),
        ("d16", "16m", "5m20s", 320),
        ("h1", "1h", "20m", 1200),
        ("h12", "12h", "20m", 1200),
    ];
    let mut text = format!(
        "sts:\n  endpoint_url: {}\noutputs:\n  directory: {}\n{}roles:\n",
        moto.url,
        plan.out().display(),
        plan.listen_yaml()
    );
    for (name, duration, _, _) in roles {
        text.push_str(&format!(
            "  - name: {name}\n    role_arn: arn:aws:iam::111111111111:role/{name}\n    duration: {duration}\n"
        ));
    }
    let config = sb.write("config.yaml", &text);

    let (status, stdout, stderr) = run({
        let mut c = sb.rolerelay();
        c.args(["check", "--config"]).arg(&config);
        c
    });
    assert!(status.success(), "{stderr}");
    let effective: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for (i, (name, _, margin, _)) in roles.iter().enumerate() {
        assert_eq!(effective["roles"][i]["min_remaining"], *margin, "{name}");
    }

    let sidecar = plan.start(&config);
    sidecar.wait_readyz(200, Duration::from_secs(30));
    let report = sidecar.status_report();
    for (name, duration, _, margin) in roles {
        let role = report["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        let time = |key: &str| humantime::parse_rfc3339(role[key].as_str().unwrap()).unwrap();
        let (expiration, next) = (time("expiration"), time("next_refresh"));
        let lifetime = expiration.duration_since(time("last_success")).unwrap();
        let requested = humantime::parse_duration(duration).unwrap();
        assert!(
            lifetime + Duration::from_secs(5) >= requested,
            "{name}: STS granted {lifetime:?}"
        );
        assert!(
            next + Duration::from_secs(margin) <= expiration,
            "{name}: the refresh at {next:?} is within {margin}s of the expiry {expiration:?}"
        );
    }
}
