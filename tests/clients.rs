//! Black-box tests of `clients:`: each application container gets a directory, a token and
//! roles of its own. The sidecar runs against moto; the consumers are the AWS CLI and the
//! endpoint as an SDK calls it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sidecar::{Plan, Sidecar};
use common::{assert_no_secrets, http_get, run, secrets_in, Moto, Sandbox};

const READY: Duration = Duration::from_secs(30);

/// Roles a, b and c; client `billing` (a) in the sub-directory `billing`, client `reports`
/// (a, c) in an absolute directory outside the output directory.
fn two_clients(sb: &Sandbox) -> String {
    format!(
        "clients:\n  - name: billing\n    roles: [a]\n  - name: reports\n    roles: [a, c]\n    directory: {}\n",
        sb.path("reports-volume").display()
    )
}

/// Starts the sidecar on `clients` (top-level YAML), waiting for the token of the client whose
/// directory is `first`.
fn start(sb: &Sandbox, plan: &Plan, roles: &[&str], clients: &str, first: &Path) -> Sidecar {
    let config = sb.write("config.yaml", &plan.config(roles, clients));
    let sidecar = plan.start_waiting_for(&config, &[], &[], &first.join("token"));
    sidecar.wait_readyz(200, READY);
    sidecar
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("token")).unwrap()
}

/// GET the endpoint for `role` with `token`: the code and the body.
fn fetch(sidecar: &Sidecar, role: &str, token: &str) -> (u16, String) {
    sidecar.credentials(role, Some(token))
}

#[test]
fn each_client_directory_holds_its_own_token_and_only_its_roles_files() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let billing = plan.out().join("billing");
    let reports = sb.path("reports-volume");
    let _sidecar = start(&sb, &plan, &["a", "b", "c"], &two_clients(&sb), &billing);

    let top = names(&plan.out());
    assert!(
        !top.contains(&"token".to_string()),
        "no top-level token with clients: {top:?}"
    );
    for file in [
        "credentials",
        "config",
        "a.json",
        "b.json",
        "c.json",
        "a.env",
        "b.env",
        "c.env",
    ] {
        assert!(
            top.contains(&file.to_string()),
            "the top level keeps {file}: {top:?}"
        );
    }
    assert_eq!(
        names(&billing),
        ["a.env", "a.json", "config", "credentials", "token"]
    );
    assert_eq!(
        names(&reports),
        [
            "a.env",
            "a.json",
            "c.env",
            "c.json",
            "config",
            "credentials",
            "token"
        ]
    );
    assert_ne!(token(&billing), token(&reports));
    for dir in [&billing, &reports] {
        let token = token(dir);
        assert_eq!(token.len(), 64, "256 bits in hex, no newline");
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(dir), 0o750, "{}", dir.display());
        for name in names(dir) {
            assert_eq!(mode(&dir.join(&name)), 0o640, "{name}");
        }
    }
    // Each client's shared files name its roles only, and its config points into its directory.
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let credentials = read(billing.join("credentials"));
    assert!(
        credentials.contains("[a]") && !credentials.contains("[b]") && !credentials.contains("[c]")
    );
    let config = read(billing.join("config"));
    assert!(
        config.contains("[profile a]") && !config.contains("[profile c]"),
        "{config}"
    );
    assert!(
        config.contains(&format!("{}/a.json", billing.display())),
        "{config}"
    );
    let config = read(reports.join("config"));
    assert!(config.contains("[profile a]") && config.contains("[profile c]"));
    assert!(!config.contains("[profile b]"), "{config}");
    // The same credentials as the top level: one refresh loop per role.
    assert_eq!(
        common::process_json(&billing, "a")["AccessKeyId"],
        common::process_json(&plan.out(), "a")["AccessKeyId"]
    );
}

#[test]
fn the_aws_cli_gets_a_clients_role_from_its_config_and_from_the_endpoint() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let billing = plan.out().join("billing");
    let sidecar = start(&sb, &plan, &["a", "b", "c"], &two_clients(&sb), &billing);
    let expected = format!(
        "arn:aws:sts::{}:assumed-role/a/rr-a",
        common::sidecar::ACCOUNT
    );

    let config = billing.join("config");
    let from_files = sb.caller_arn(
        &moto,
        &[],
        &[
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_PROFILE", "a"),
        ],
    );
    assert_eq!(from_files, expected);

    let token_file = billing.join("token");
    let endpoint = |role: &str| {
        vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{}/v1/credentials/{role}", sidecar.endpoint),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token(&billing)),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.display().to_string(),
            ),
        ]
    };
    let env_of = |vars: &[(&'static str, String)]| -> Vec<(&'static str, String)> { vars.to_vec() };
    let own = env_of(&endpoint("a"));
    let own: Vec<(&str, &str)> = own.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(sb.caller_arn(&moto, &[], &own), expected);

    let other = env_of(&endpoint("c"));
    let other: Vec<(&str, &str)> = other.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = sb.aws(&moto, &["sts", "get-caller-identity"], &other);
    assert!(
        !refused.status.success(),
        "billing's token must not open role c"
    );
}

#[test]
fn the_endpoint_answers_each_token_for_its_own_roles_and_audits_every_answer() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let billing = plan.out().join("billing");
    let reports = sb.path("reports-volume");
    let sidecar = start(&sb, &plan, &["a", "b", "c"], &two_clients(&sb), &billing);
    let (billing_token, reports_token) = (token(&billing), token(&reports));

    let (code, body) = fetch(&sidecar, "a", &billing_token);
    assert_eq!(code, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        served["AccessKeyId"],
        common::process_json(&billing, "a")["AccessKeyId"]
    );
    for role in ["c", "b", "nope"] {
        let (code, body) = fetch(&sidecar, role, &billing_token);
        assert_eq!(code, 403, "billing asking for {role}: {body}");
        for name in ["a", "b", "c", "billing", "reports", "nope"] {
            assert!(
                !body.contains(&format!("\"{name}\"")) && !body.contains(&format!(" {name}")),
                "the 403 names nothing: {body}"
            );
        }
    }
    assert_eq!(fetch(&sidecar, "c", &reports_token).0, 200);
    assert_eq!(sidecar.credentials("a", None).0, 401);
    assert_eq!(fetch(&sidecar, "a", "0123456789abcdef").0, 401);
    // A client's token is not the top level's: nothing there to use.
    assert!(!plan.out().join("token").exists());

    let metric =
        |series: &str| sidecar.metric(&format!("rolerelay_endpoint_requests_total{{{series}}}"));
    assert_eq!(metric("client=\"billing\",code=\"200\",role=\"a\""), 1.0);
    assert_eq!(metric("client=\"billing\",code=\"403\",role=\"c\""), 1.0);
    assert_eq!(
        metric("client=\"billing\",code=\"403\",role=\"_unknown\""),
        1.0
    );
    assert_eq!(metric("client=\"reports\",code=\"200\",role=\"c\""), 1.0);
    assert_eq!(metric("client=\"_none\",code=\"401\",role=\"a\""), 2.0);
    let file = sb.write("metrics.txt", &sidecar.get("/metrics").1);
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect(
            "promtool must be on PATH (Debian package prometheus; scripts/test-deps installs it)",
        );
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One audit line per answer: seven requests, seven lines, with the key served on a 200.
    let logs = sidecar.running.logs();
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "credentials endpoint request")
        .collect();
    assert_eq!(audit.len(), 7, "{logs}");
    let first = &audit[0];
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["client"], "billing");
    assert_eq!(first["role"], "a");
    assert_eq!(first["code"], 200);
    assert_eq!(first["access_key_id"], served["AccessKeyId"]);
    assert!(audit
        .iter()
        .any(|l| l["client"] == "_none" && l["code"] == 401));
    assert!(audit
        .iter()
        .filter(|l| l["code"] != 200)
        .all(|l| l.get("access_key_id").is_none()));
    let mut secrets = secrets_in(&billing);
    secrets.extend([billing_token.clone(), reports_token.clone()]);
    assert_no_secrets(&logs, &secrets);

    // /status: each client, its roles, and when it last fetched each.
    let status = sidecar.status_report();
    assert_no_secrets(&status.to_string(), &secrets);
    let clients = status["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    let billing_status = clients.iter().find(|c| c["name"] == "billing").unwrap();
    assert_eq!(billing_status["roles"], serde_json::json!(["a"]));
    assert_eq!(billing_status["directory"], billing.display().to_string());
    assert!(billing_status["last_fetch"]["a"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let reports_status = clients.iter().find(|c| c["name"] == "reports").unwrap();
    assert!(
        reports_status["last_fetch"].get("a").is_none(),
        "reports never fetched a"
    );
    assert!(reports_status["last_fetch"]["c"].is_string());
}

#[test]
fn without_clients_the_endpoint_metric_and_the_log_are_as_before() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = Sidecar::start(&sb, &moto.url, &["a"], "");
    sidecar.wait_readyz(200, READY);
    assert_eq!(sidecar.credentials("a", Some(&sidecar.token())).0, 200);
    let text = sidecar.get("/metrics").1;
    assert_eq!(
        common::metric(
            &text,
            "rolerelay_endpoint_requests_total{code=\"200\",role=\"a\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("client="), "{text}");
    assert!(!sidecar
        .running
        .logs()
        .contains("credentials endpoint request"));
    assert_eq!(sidecar.status_report()["clients"], serde_json::json!([]));
}

#[test]
fn a_reload_adds_removes_and_changes_clients_and_keeps_their_tokens() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let (billing, reports, ops) = (
        plan.out().join("billing"),
        plan.out().join("reports"),
        plan.out().join("ops"),
    );
    let before = "clients:\n  - name: billing\n    roles: [a]\n  - name: reports\n    roles: [c]\n";
    let sidecar = start(&sb, &plan, &["a", "b", "c"], before, &billing);
    let (billing_token, reports_token) = (token(&billing), token(&reports));

    // billing gains b, reports goes, ops comes.
    let after = "clients:\n  - name: billing\n    roles: [a, b]\n  - name: ops\n    roles: [b]\n";
    std::fs::write(&sidecar.config, plan.config(&["a", "b", "c"], after)).unwrap();
    sidecar.wait_for("ops's token", READY, || ops.join("token").exists());
    sidecar.wait_for("billing's b files", READY, || {
        billing.join("b.json").exists()
    });
    assert_eq!(
        token(&billing),
        billing_token,
        "a kept client keeps its token"
    );
    assert_ne!(token(&ops), billing_token);
    assert_eq!(
        names(&ops),
        ["b.env", "b.json", "config", "credentials", "token"]
    );
    assert!(std::fs::read_to_string(billing.join("credentials"))
        .unwrap()
        .contains("[b]"));
    assert_eq!(fetch(&sidecar, "b", &billing_token).0, 200);
    assert_eq!(fetch(&sidecar, "b", &token(&ops)).0, 200);
    assert_eq!(
        fetch(&sidecar, "c", &reports_token).0,
        401,
        "a removed client's token is refused"
    );
    sidecar.wait_for("reports's files gone", READY, || {
        reports.is_dir() && names(&reports).is_empty()
    });
    let metrics = sidecar.get("/metrics").1;
    assert!(!metrics.contains("client=\"reports\""), "{metrics}");

    // billing loses a: its files go, its token now gets 403 for it.
    let after = "clients:\n  - name: billing\n    roles: [b]\n  - name: ops\n    roles: [b]\n";
    std::fs::write(&sidecar.config, plan.config(&["a", "b", "c"], after)).unwrap();
    sidecar.wait_for("billing's a files gone", READY, || {
        !billing.join("a.json").exists()
    });
    assert!(!billing.join("a.env").exists());
    assert!(!std::fs::read_to_string(billing.join("credentials"))
        .unwrap()
        .contains("[a]"));
    assert_eq!(fetch(&sidecar, "a", &billing_token).0, 403);
    assert_eq!(token(&billing), billing_token);
    assert_eq!(sidecar.reloads("success"), 2.0);
    sidecar.wait_readyz(200, READY);

    // No clients any more: the top level gets a token again, and the clients' files go.
    std::fs::write(&sidecar.config, plan.config(&["a", "b", "c"], "")).unwrap();
    sidecar.wait_for("a top-level token", READY, || {
        plan.out().join("token").exists()
    });
    let top_token = sidecar.token();
    assert_eq!(fetch(&sidecar, "a", &top_token).0, 200);
    assert_eq!(fetch(&sidecar, "b", &billing_token).0, 401);
    sidecar.wait_for("the clients' files gone", READY, || {
        names(&billing).is_empty() && names(&ops).is_empty()
    });
}

/// `rolerelay check` on a configuration with `clients` (YAML): its exit code and stderr.
fn check(sb: &Sandbox, clients: &str) -> (i32, String) {
    let text = format!(
        "outputs:\n  directory: {}\nroles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n  - name: c\n    role_arn: arn:aws:iam::111111111111:role/C\n{clients}",
        sb.path("out").display()
    );
    let config = sb.write("check.yaml", &text);
    let mut cmd = sb.rolerelay();
    cmd.args(["check", "--config"]).arg(&config);
    let (status, _, stderr) = run(cmd);
    (status.code().unwrap(), stderr)
}

#[test]
fn check_refuses_clients_that_could_reach_each_others_files() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "  - name: x\n    roles: [a, nope]\n".into(),
            "clients[0].roles[1]",
            "not a configured role: use one of a, c",
        ),
        (
            "  - name: x\n    roles: []\n".into(),
            "clients[0].roles",
            "has no roles",
        ),
        (
            "  - name: x\n    roles: [a, a]\n".into(),
            "clients[0].roles[1]",
            "listed twice",
        ),
        (
            "  - name: x\n    roles: [a]\n  - name: x\n    roles: [c]\n    directory: y\n".into(),
            "clients[1].name",
            "already used by clients[0]",
        ),
        (
            "  - name: x\n    roles: [a]\n  - name: y\n    roles: [c]\n    directory: x\n".into(),
            "clients[1].directory",
            "is client x's directory",
        ),
        (
            "  - name: x\n    roles: [a]\n  - name: y\n    roles: [c]\n    directory: x/inner\n"
                .into(),
            "clients[1].directory",
            "is client x's directory",
        ),
        (
            "  - name: x\n    roles: [a]\n    directory: .\n".into(),
            "clients[0].directory",
            "is outputs.directory or contains it",
        ),
        (
            format!(
                "  - name: x\n    roles: [a]\n    directory: {}\n",
                out.display()
            ),
            "clients[0].directory",
            "is outputs.directory or contains it",
        ),
        (
            format!(
                "  - name: x\n    roles: [a]\n    directory: {}\n",
                sb.path("").display()
            ),
            "clients[0].directory",
            "is outputs.directory or contains it",
        ),
        (
            "  - name: x\n    roles: [a]\n    directory: ../elsewhere\n".into(),
            "clients[0].directory",
            "without '..'",
        ),
        (
            "  - name: x\n    roles: [a]\n    directory: credentials\n".into(),
            "clients[0].directory",
            "the name of a file of outputs.directory",
        ),
        (
            "  - name: x\n    roles: [a]\n    directory: c.json/sub\n".into(),
            "clients[0].directory",
            "the name of a file of outputs.directory",
        ),
        (
            "  - name: x\n    roles: [a]\n    app_directory: relative\n".into(),
            "clients[0].app_directory",
            "must be an absolute path",
        ),
        (
            "  - name: bad/name\n    roles: [a]\n".into(),
            "clients[0].name",
            "client name",
        ),
        (
            "  - name: x\n    roles: [a]\n    colour: blue\n".into(),
            "clients[0]",
            "colour",
        ),
    ];
    for (clients, key, message) in cases {
        let (code, stderr) = check(&sb, &format!("clients:\n{clients}"));
        assert_eq!(code, 2, "{clients}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(message),
            "{clients}\nwanted {key}: {message}\ngot {stderr}"
        );
        assert!(
            stderr.contains("check.yaml:"),
            "the file and line: {stderr}"
        );
    }
    let good = format!(
        "clients:\n  - name: x\n    roles: [a]\n  - name: y\n    roles: [a, c]\n    directory: {}\n    app_directory: /var/run/y\n",
        sb.path("elsewhere").display()
    );
    let (code, stderr) = check(&sb, &good);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn doctor_reports_each_clients_directory_and_token() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let billing = plan.out().join("billing");
    let sidecar = start(&sb, &plan, &["a", "b", "c"], &two_clients(&sb), &billing);
    let mut cmd = sb.rolerelay();
    cmd.args(["doctor", "--format", "json", "--config"])
        .arg(&sidecar.config);
    let (status, stdout, stderr) = run(cmd);
    assert!(status.success(), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let client = |name: &str| {
        checks
            .iter()
            .find(|c| c["step"] == format!("client {name}"))
            .unwrap_or_else(|| panic!("no client {name} in {stdout}"))
            .clone()
    };
    let billing_check = client("billing");
    assert_eq!(billing_check["ok"], true);
    let detail = billing_check["detail"].as_str().unwrap();
    assert!(
        detail.contains(&billing.display().to_string()) && detail.contains("exists"),
        "{detail}"
    );
    assert!(
        detail.contains("token") && detail.contains("present") && detail.contains("roles a"),
        "{detail}"
    );
    assert!(!detail.contains(&token(&billing)), "never the token itself");
    assert!(client("reports")["detail"]
        .as_str()
        .unwrap()
        .contains("roles a, c"));
    // The endpoint is there, and answers nothing without a token.
    let (code, _) = http_get(&format!("{}/v1/credentials/a", sidecar.endpoint), &[]);
    assert_eq!(code, 401);
}
