//! Black-box tests of `rolerelay status`: the binary asks a sidecar running against moto (behind
//! a proxy that refuses one role) and prints its `/status`; nothing answering, or something
//! that is not rolerelay's `/status`, is exit 2.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::proxy::{sts_error, Action, Proxy};
use common::sidecar::Sidecar;
use common::{assert_no_secrets, free_port, run, secrets_in, Moto, Sandbox};

const READY: Duration = Duration::from_secs(30);

/// What STS says to the refused role, as it says it to a role whose trust policy does not trust
/// the caller.
const DENIED: &str = "User: arn:aws:sts::222222222222:assumed-role/AppRole/i-0abc is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/denied";

/// `rolerelay status` with `args`: its exit code, standard output and standard error.
fn status(sb: &Sandbox, args: &[&str]) -> (i32, String, String) {
    let mut cmd = sb.rolerelay();
    cmd.arg("status").args(args);
    let (exit, stdout, stderr) = run(cmd);
    (exit.code().expect("an exit code"), stdout, stderr)
}

/// The cells of the table row that starts with `first`. Cells are two or more spaces apart; a
/// cell itself holds single spaces at most (`52m 10s`).
fn row(text: &str, first: &str) -> Vec<String> {
    let cells = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .map(str::to_string)
            .collect()
    };
    text.lines()
        .map(cells)
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row for {first:?} in\n{text}"))
}

/// Whether `cell` is a duration as the table writes one: `59m 58s`, `1h`, `9s`.
fn is_duration(cell: &str) -> bool {
    !cell.is_empty()
        && cell.split(' ').all(|part| {
            let digits = part.trim_end_matches(['d', 'h', 'm', 's']);
            part.len() == digits.len() + 1
                && !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit())
        })
}

/// Every secret the sidecar wrote into `dirs` (each a directory of `<role>.json`), and the
/// endpoint token of each that has one.
fn secrets(dirs: &[&Path]) -> Vec<String> {
    let mut secrets = Vec::new();
    for dir in dirs {
        secrets.extend(secrets_in(dir));
        secrets.extend(std::fs::read_to_string(dir.join("token")).ok());
    }
    secrets
}

#[test]
fn every_role_ready_is_exit_0_with_each_role_its_expiry_and_next_refresh() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = Sidecar::start(&sb, &moto.url, &["a", "b"], "");
    sidecar.wait_readyz(200, READY);

    let (code, out, err) = status(&sb, &["--url", &sidecar.status]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "rolerelay {} at {}/status: 2 of 2 roles ready\n",
            env!("CARGO_PKG_VERSION"),
            sidecar.status
        )),
        "{out}"
    );
    for role in ["a", "b"] {
        let cells = row(&out, role);
        assert_eq!(cells[1], "ready", "{out}");
        assert!(
            is_duration(&cells[2]),
            "expires in: {:?} in\n{out}",
            cells[2]
        );
        let next = cells[3].strip_prefix("in ").unwrap_or_default();
        assert!(is_duration(next), "next refresh: {:?} in\n{out}", cells[3]);
        assert_eq!(cells[4..], ["0", "-"], "no failures, no error: {out}");
    }
    let all = secrets(&[&sidecar.out]);
    assert_no_secrets(&format!("{out}{err}"), &all);

    let (code, json, err) = status(&sb, &["--url", &sidecar.status, "--format", "json"]);
    assert_eq!(code, 0, "{json}{err}");
    let document: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        document["roles"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );
    assert_no_secrets(&format!("{json}{err}"), &all);

    // No --url: /status on server.listen of the same configuration the sidecar runs with.
    let mut cmd = sb.rolerelay();
    cmd.args(["status", "--config"]).arg(&sidecar.config);
    let (exit, out, err) = run(cmd);
    assert_eq!(exit.code(), Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("at {}/status:", sidecar.status)),
        "{out}"
    );
    assert_no_secrets(&format!("{out}{err}"), &all);
}

#[test]
fn a_role_sts_refuses_is_exit_1_with_its_error_kind_and_message() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(
        moto.port,
        Arc::new(|body: &str| match body.contains("role%2Fdenied") {
            true => Action::Reply(403, sts_error("AccessDenied", DENIED)),
            false => Action::Forward,
        }),
    );
    let sidecar = Sidecar::start(&sb, &proxy.url, &["fine", "denied"], "");
    sidecar.wait_for("fine ready and denied refused", READY, || {
        let report = sidecar.status_report();
        let role = |name: &str| {
            report["roles"]
                .as_array()
                .and_then(|roles| roles.iter().find(|r| r["name"] == name).cloned())
                .unwrap_or_default()
        };
        role("fine")["ready"] == true && role("denied")["last_error"].is_object()
    });

    let (code, out, err) = status(&sb, &["--url", &sidecar.status]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(": 1 of 2 roles ready\n"), "{out}");
    assert_eq!(row(&out, "fine")[1], "ready", "{out}");
    let denied = row(&out, "denied");
    assert!(denied[1].starts_with("not ready: "), "{out}");
    assert!(
        denied[1].contains("access_denied"),
        "the reason names the kind: {out}"
    );
    assert_eq!(denied[2], "-", "no credentials, nothing expires: {out}");
    assert!(denied[4].parse::<u32>().unwrap() >= 1, "failures: {out}");
    assert_eq!(denied[5], "access_denied (AccessDenied)", "{out}");
    assert!(
        out.contains(&format!("denied: last error: AccessDenied: {DENIED}")),
        "{out}"
    );
    let mut all = secrets(&[&sidecar.out]);
    all.extend(proxy.secrets());
    assert_no_secrets(&format!("{out}{err}"), &all);
}

#[test]
fn nothing_listening_or_an_answer_that_is_not_status_is_exit_2_naming_the_url() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let sidecar = Sidecar::start(&sb, &moto.url, &["a"], "");
    sidecar.wait_readyz(200, READY);
    let all = secrets(&[&sidecar.out]);

    let nobody = format!("http://127.0.0.1:{}", free_port());
    let (code, out, err) = status(&sb, &["--url", &nobody]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with(&format!("rolerelay status: {nobody}/status: ")),
        "{err}"
    );
    assert!(err.contains("is rolerelay running"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    // A 200 with JSON that is not /status, a 404 from rolerelay, whatever moto says.
    let healthz = format!("{}/healthz", sidecar.status);
    let missing = format!("{}/nope", sidecar.status);
    for (url, why) in [
        (healthz.as_str(), "not a rolerelay /status document"),
        (missing.as_str(), "HTTP 404"),
        (moto.url.as_str(), ""),
    ] {
        let (code, out, err) = status(&sb, &["--url", url]);
        assert_eq!(code, 2, "{url}: {out}{err}");
        assert!(out.is_empty(), "{url}: {out}");
        assert!(
            err.starts_with("rolerelay status: http://127.0.0.1:"),
            "{err}"
        );
        assert!(err.contains(why) && err.contains("--url"), "{url}: {err}");
        assert_no_secrets(&format!("{out}{err}"), &all);
    }

    let mut cmd = sb.rolerelay();
    cmd.args(["status", "--config"])
        .arg(sb.path("missing.yaml"));
    let (exit, out, err) = run(cmd);
    assert_eq!(exit.code(), Some(2), "{out}{err}");
    assert!(
        err.starts_with("rolerelay status: configuration error: "),
        "{err}"
    );
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn the_client_table_shows_each_client_and_when_it_last_fetched() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let billing = plan.out().join("billing");
    let clients =
        "clients:\n  - name: billing\n    roles: [a]\n  - name: reports\n    roles: [b]\n";
    let config = sb.write("config.yaml", &plan.config(&["a", "b"], clients));
    let sidecar = plan.start_waiting_for(&config, &[], &[], &billing.join("token"));
    sidecar.wait_readyz(200, READY);
    let token = std::fs::read_to_string(billing.join("token")).unwrap();
    assert_eq!(sidecar.credentials("a", Some(&token)).0, 200);
    sidecar.wait_for("billing's fetch of a in /status", READY, || {
        sidecar.status_report()["clients"][0]["last_fetch"]["a"].is_string()
    });

    let (code, out, err) = status(&sb, &["--url", &sidecar.status]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        row(&out, "CLIENT"),
        ["CLIENT", "DIRECTORY", "ROLES", "LAST FETCH"]
    );
    let row_of_billing = row(&out, "billing");
    assert_eq!(
        row_of_billing[..3],
        [
            "billing".to_string(),
            billing.display().to_string(),
            "a".to_string()
        ]
    );
    let fetched = row_of_billing[3].strip_prefix("a ").unwrap_or_default();
    let ago = fetched.strip_suffix(" ago").unwrap_or_default();
    assert!(
        is_duration(ago),
        "last fetch: {:?} in\n{out}",
        row_of_billing[3]
    );
    assert_eq!(row(&out, "reports")[3], "never", "{out}");
    let reports = plan.out().join("reports");
    assert_no_secrets(
        &format!("{out}{err}"),
        &secrets(&[&sidecar.out, &billing, &reports]),
    );
}
