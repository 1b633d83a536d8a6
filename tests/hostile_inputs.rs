//! Black-box tests of what rolerelay accepts from outside (STS replies, configuration values,
//! command-line arguments) and of what it then writes: a value that could break out of the file it
//! is written into, forge a log line or widen who can read the credentials is refused, and the
//! files stay inert to the shells and SDKs that read them.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::proxy::{self, always, Action, Proxy, Rule};
use common::sidecar::Sidecar;
use common::*;

const ROLE: &str = "arn:aws:iam::111111111111:role/RoleForB";

/// What a rogue session token carries: a command for whoever sources `<role>.env`, and a
/// `[default]` profile for whoever reads the INI files.
const TOKEN_PAYLOAD: &str = "FQoGZXIvYXdzEBYaD\nAWS_PWN=$(touch pwned-by-sts)\n[default]\ncredential_process = touch pwned-by-sts";

/// `body` with the text of its first `<tag>` element replaced by `value`.
fn with_element(body: &str, tag: &str, value: &str) -> String {
    let open = format!("<{tag}>");
    let start = body.find(&open).expect("an AssumeRole reply") + open.len();
    let end = start + body[start..].find('<').unwrap();
    format!("{}{value}{}", &body[..start], &body[end..])
}

fn token_breaks_out(body: &str) -> String {
    with_element(body, "SessionToken", TOKEN_PAYLOAD)
}

fn key_forges_a_log_line(body: &str) -> String {
    with_element(
        body,
        "AccessKeyId",
        "ASIAQWERTYUIOPASDFGH\nFORGED-LOG-LINE level=INFO message=\"all is well\"",
    )
}

fn secret_with_a_quote(body: &str) -> String {
    with_element(
        body,
        "SecretAccessKey",
        "wJalrXUtnFEMIK7MDENG'$(touch pwned-by-sts)'bPxRfiCYEXAMPLEKEY",
    )
}

fn key_in_lower_case(body: &str) -> String {
    with_element(body, "AccessKeyId", "asiaqwertyuiopasdfgh")
}

fn token_too_short(body: &str) -> String {
    with_element(body, "SessionToken", "c2hvcnQ=")
}

fn expiration_a_century_away(body: &str) -> String {
    with_element(body, "Expiration", "2126-01-01T00:00:00Z")
}

/// Files of `out` that a refused reply must not have produced.
fn assert_nothing_written_for_a(out: &Path, case: &str) {
    for file in ["a.json", "a.env"] {
        assert!(!out.join(file).exists(), "{case}: {file} was written");
    }
    if let Ok(ini) = fs::read_to_string(out.join("credentials")) {
        assert!(!ini.contains("[a]"), "{case}: credentials has [a]: {ini}");
    }
    if let Ok(config) = fs::read_to_string(out.join("config")) {
        assert!(
            !config.contains("pwned") && !config.contains("[default]"),
            "{case}: {config}"
        );
    }
}

/// A rogue reply: what it is, how the proxy makes it from moto's, and the text of it that must
/// never be shown.
struct Rogue {
    case: &'static str,
    rewrite: fn(&str) -> String,
    never_shown: &'static [&'static str],
}

const ROGUES: [Rogue; 6] = [
    Rogue {
        case: "a session token with lines for the env and INI files",
        rewrite: token_breaks_out,
        never_shown: &["AWS_PWN", "pwned-by-sts"],
    },
    Rogue {
        case: "an access key id with a log line",
        rewrite: key_forges_a_log_line,
        never_shown: &["FORGED-LOG-LINE"],
    },
    Rogue {
        case: "a secret key with a quote",
        rewrite: secret_with_a_quote,
        never_shown: &["pwned-by-sts", "bPxRfiCYEXAMPLEKEY"],
    },
    Rogue {
        case: "an access key id in lower case",
        rewrite: key_in_lower_case,
        never_shown: &["asiaqwertyuiopasdfgh"],
    },
    Rogue {
        case: "a session token of 8 characters",
        rewrite: token_too_short,
        never_shown: &["c2hvcnQ="],
    },
    Rogue {
        case: "an expiration a century away",
        rewrite: expiration_a_century_away,
        never_shown: &[],
    },
];

#[test]
fn sts_replies_that_could_break_out_of_a_file_or_a_log_line_are_refused_as_other() {
    let moto = Moto::start();
    for rogue in ROGUES {
        let case = rogue.case;
        let sb = Sandbox::new();
        let out = sb.path("out");
        let proxy = Proxy::start(moto.port, always_rewrite(rogue.rewrite));
        let mut once = sb.once_one(ROLE, &proxy.url, &out);
        // Text logs: a newline in a logged value would start a line of its own there.
        once.env("ROLERELAY_LOG_FORMAT", "text");
        let (status, stdout, stderr) = run(once);
        assert_eq!(status.code(), Some(1), "{case}: {stderr}");
        assert!(
            stderr.contains("failed: a (other: "),
            "{case}: refused as other: {stderr}"
        );
        for text in rogue.never_shown {
            assert!(
                !stderr.contains(text) && !stdout.contains(text),
                "{case}: {text} is shown: {stderr}"
            );
        }
        assert_nothing_written_for_a(&out, case);
        assert_no_secrets(&stderr, &proxy.secrets());
    }
}

/// A rule rewriting every reply with `f`.
fn always_rewrite(f: fn(&str) -> String) -> Rule {
    std::sync::Arc::new(move |_: &str| Action::Rewrite(f))
}

#[test]
fn a_rogue_token_is_counted_as_other_never_shown_and_the_next_good_reply_is_written_inert() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, always(|| Action::Rewrite(token_breaks_out)));
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
    wait_for("two refusals", Duration::from_secs(20), || {
        sidecar.errors("a", "other") >= 2.0
    });
    assert_eq!(sidecar.get("/readyz").0, 503);
    let status = sidecar.get("/status").1;
    assert!(status.contains("\"other\""), "{status}");
    assert!(!status.contains("AWS_PWN"), "{status}");
    assert_nothing_written_for_a(&sidecar.out, "rogue token");

    proxy.set_rule(always(|| Action::Forward));
    sidecar.wait_readyz(200, Duration::from_secs(10));
    let sourcing = sb
        .command("sh")
        .args(["-c", "set -a; . ./a.env"])
        .current_dir(&sidecar.out)
        .output()
        .unwrap();
    assert!(sourcing.status.success());
    assert!(!sidecar.out.join("pwned-by-sts").exists());
    let logs = sidecar.running.logs();
    assert!(!logs.contains("AWS_PWN") && !logs.contains("pwned-by-sts"));
    assert_no_secrets(&logs, &proxy.secrets());
}

#[test]
fn an_sts_error_message_cannot_start_a_log_line_of_its_own() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(
        moto.port,
        always(|| {
            Action::Reply(
                403,
                proxy::sts_error(
                    "AccessDenied",
                    "denied\nFORGED-LOG-LINE level=INFO message=\"all is well\"",
                ),
            )
        }),
    );
    let mut once = sb.once_one(ROLE, &proxy.url, &sb.path("out"));
    once.env("ROLERELAY_LOG_FORMAT", "text");
    let (status, _, stderr) = run(once);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("access_denied"), "{stderr}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("FORGED")),
        "a line of its own: {stderr}"
    );
}

/// The variables a shell gets from sourcing `dir/<file>` with `set -a`, in an empty environment,
/// each value exactly (NUL-separated, so a value may hold any line).
fn sourced(sb: &Sandbox, dir: &Path, file: &str, names: &[&str]) -> Vec<String> {
    let script = format!(
        "set -a; . ./{file}; printf '%s\\0' {}",
        names
            .iter()
            .map(|n| format!("\"${{{n}-unset}}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = sb
        .command("env")
        .args(["-i", "sh", "-c", &script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sourcing {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_terminator('\0')
        .map(str::to_string)
        .collect()
}

#[test]
fn the_env_file_round_trips_through_a_shell_exactly() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let out = sb.path("out");
    let (status, _, stderr) = run(sb.once_one(ROLE, &moto.url, &out));
    assert!(status.success(), "{stderr}");
    let json = process_json(&out, "a");
    let names = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_ACCOUNT_ID",
    ];
    let expected: Vec<&str> = [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
        "AccountId",
    ]
    .iter()
    .map(|key| json[key].as_str().unwrap())
    .collect();
    assert_eq!(sourced(&sb, &out, "a.env", &names), expected);
    let plain = sb
        .command("sh")
        .args(["-c", ". ./a.env"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(plain.status.success() && plain.stdout.is_empty() && plain.stderr.is_empty());
    // What `docker run --env-file` sees: the rest of each line, verbatim.
    let verbatim: Vec<String> = fs::read_to_string(out.join("a.env"))
        .unwrap()
        .lines()
        .map(|l| l.split_once('=').unwrap().1.to_string())
        .collect();
    assert_eq!(verbatim, expected);
}

/// `rolerelay check` with one role and `args`: (exit code, stderr).
fn check(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = sb.rolerelay();
    c.args(["check", "--role-arn", ROLE]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let (status, _, stderr) = run(c);
    (status.code(), stderr)
}

/// Asserts `check` refused with one line that contains each of `words`.
fn assert_refused(result: (Option<i32>, String), words: &[&str], case: &str) {
    let (code, stderr) = result;
    assert_eq!(code, Some(2), "{case}: refused: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{case}: one line: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "{case}: names {word}: {stderr}");
    }
}

#[test]
fn plain_http_to_sts_is_refused_unless_the_host_is_loopback_or_it_is_allowed() {
    let sb = Sandbox::new();
    for url in [
        "http://10.0.0.5:5000",
        "http://sts.example.com",
        "http://localhost@sts.example.com",
        "http://127.0.0.1.sts.example.com",
    ] {
        assert_refused(
            check(&sb, &["--sts-endpoint-url", url], &[]),
            &[
                "--sts-endpoint-url (or ROLERELAY_STS_ENDPOINT_URL)",
                "sts.allow_insecure_endpoint: true",
            ],
            url,
        );
    }
    let file = sb.write(
        "c.yaml",
        "sts:\n  endpoint_url: http://sts.example.com\nroles: []\n",
    );
    assert_refused(
        check(&sb, &["--config", file.to_str().unwrap()], &[]),
        &["c.yaml:2: sts.endpoint_url", "https://"],
        "in the file",
    );
    for url in [
        "http://127.0.0.1:5000",
        "http://127.8.9.10",
        "http://localhost:5000/",
        "http://[::1]:5000",
        "https://sts.example.com",
    ] {
        let (code, stderr) = check(&sb, &["--sts-endpoint-url", url], &[]);
        assert_eq!(code, Some(0), "{url}: {stderr}");
    }
    let remote = ["--sts-endpoint-url", "http://10.0.0.5:5000"];
    let flag = [&remote[..], &["--sts-allow-insecure-endpoint"]].concat();
    assert_eq!(check(&sb, &flag, &[]).0, Some(0), "the flag");
    let variable = [("ROLERELAY_STS_ALLOW_INSECURE_ENDPOINT", "true")];
    assert_eq!(check(&sb, &remote, &variable).0, Some(0), "the variable");
    let off = [("ROLERELAY_STS_ALLOW_INSECURE_ENDPOINT", "false")];
    assert_eq!(check(&sb, &remote, &off).0, Some(2), "the variable, false");
    let allowed = sb.write(
        "allowed.yaml",
        "sts:\n  endpoint_url: http://sts.example.com\n  allow_insecure_endpoint: true\n",
    );
    assert_eq!(
        check(&sb, &["--config", allowed.to_str().unwrap()], &[]).0,
        Some(0),
        "the key"
    );
}

#[test]
fn an_endpoint_url_the_sdk_could_not_send_to_is_refused_before_it_runs() {
    let sb = Sandbox::new();
    for (url, what) in [
        ("https://bücher.example", "xn--bcher-kva.example"),
        ("https://sts example.com", "percent-encoded"),
    ] {
        assert_refused(
            check(&sb, &["--sts-endpoint-url", url], &[]),
            &["--sts-endpoint-url (or ROLERELAY_STS_ENDPOINT_URL)", what],
            url,
        );
    }
    let file = sb.write(
        "c.yaml",
        "sts:\n  endpoint_url: https://sts.bücher.example\nroles: []\n",
    );
    assert_refused(
        check(&sb, &["--config", file.to_str().unwrap()], &[]),
        &["c.yaml:2: sts.endpoint_url", "xn--"],
        "in the file",
    );
    let punycode = ["--sts-endpoint-url", "https://xn--bcher-kva.example"];
    assert_eq!(check(&sb, &punycode, &[]).0, Some(0), "the xn-- form");
}

/// Host names are ASCII here (above), so the build leaves out Unicode's IDNA tables: the `url`
/// crate under aws-config takes them from `idna_adapter`, whose 1.0 line has none (its README's
/// way to opt out). A `cargo update` that moved it on would add ~125 KB to the binary.
#[test]
fn the_build_carries_no_unicode_host_name_tables() {
    let lock =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let adapter = lock
        .split("[[package]]")
        .find(|entry| entry.contains("name = \"idna_adapter\""))
        .expect("idna_adapter in Cargo.lock");
    assert!(adapter.contains("version = \"1.0."), "{adapter}");
    assert!(
        !lock.contains("name = \"icu_normalizer\""),
        "ICU is in Cargo.lock"
    );
}

#[test]
fn process_command_and_app_directory_with_line_breaks_or_brackets_are_refused() {
    let sb = Sandbox::new();
    let cases = [
        (
            "process_command: \"cat {dir}/{role}.json\\ncredential_process = touch /tmp/x\"",
            "outputs.process_command",
        ),
        (
            "process_command: \"cat {dir}/{role}.json\\r[default]\"",
            "outputs.process_command",
        ),
        (
            "process_command: \"cat [x]/{role}.json\"",
            "outputs.process_command",
        ),
        (
            "process_command: \"cat '{dir}/{role}.json\"",
            "outputs.process_command",
        ),
        (
            "app_directory: \"/mnt/creds\\n[profile evil]\"",
            "outputs.app_directory",
        ),
        ("app_directory: \"/mnt/[creds]\"", "outputs.app_directory"),
    ];
    for (line, key) in cases {
        let file = sb.write("c.yaml", &format!("outputs:\n  {line}\n"));
        assert_refused(
            check(&sb, &["--config", file.to_str().unwrap()], &[]),
            &[&format!("c.yaml:2: {key}")],
            line,
        );
    }
    assert_refused(
        check(&sb, &["--app-dir", "/mnt/creds\n[profile evil]"], &[]),
        &["--app-dir (or ROLERELAY_APP_DIR)"],
        "the flag",
    );
    assert_refused(
        check(&sb, &["--output-dir", "/mnt/creds\n[profile evil]"], &[]),
        &["--output-dir (or ROLERELAY_OUTPUT_DIR)", "app_directory"],
        "the directory, which is {dir} without app_directory",
    );
}

#[test]
fn an_app_directory_with_a_space_works_with_the_real_aws_cli_and_sh() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let out = sb.path("my creds");
    let mut once = sb.once_one(ROLE, &moto.url, &out);
    once.arg("--app-dir").arg(&out);
    let (status, _, stderr) = run(once);
    assert!(status.success(), "{stderr}");
    let config = out.join("config");
    // The AWS CLI (botocore) splits the line with Python's shlex.split.
    let arn = sb.caller_arn(
        &moto,
        &["--profile", "a"],
        &[("AWS_CONFIG_FILE", config.to_str().unwrap())],
    );
    assert!(
        arn.starts_with("arn:aws:sts::111111111111:assumed-role/RoleForB/"),
        "{arn}"
    );
    // The Go, JavaScript and Rust SDKs run it with `sh -c`.
    let text = fs::read_to_string(&config).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("credential_process = "))
        .unwrap();
    let printed = sb.command("sh").args(["-c", line]).output().unwrap();
    assert!(printed.status.success(), "{line}");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&printed.stdout).unwrap(),
        process_json(&out, "a")
    );
}

#[test]
fn file_modes_that_let_others_in_or_the_group_write_are_refused() {
    let sb = Sandbox::new();
    for mode in ["0644", "0604", "0660", "0641", "0620", "0601"] {
        assert_refused(
            check(&sb, &["--file-mode", mode], &[]),
            &["--file-mode (or ROLERELAY_FILE_MODE)", mode, "\"0640\""],
            mode,
        );
    }
    let file = sb.write("c.yaml", "outputs:\n  file_mode: \"0644\"\n");
    assert_refused(
        check(&sb, &["--config", file.to_str().unwrap()], &[]),
        &["c.yaml:2: outputs.file_mode", "\"0600\""],
        "in the file",
    );
    for mode in ["0640", "0600", "0440", "0400"] {
        let (code, stderr) = check(&sb, &["--file-mode", mode], &[]);
        assert_eq!(code, Some(0), "{mode}: {stderr}");
    }
}

/// The umask the sandbox's commands run with.
fn umask(sb: &Sandbox) -> u32 {
    let out = sb.command("sh").args(["-c", "umask"]).output().unwrap();
    u32::from_str_radix(String::from_utf8(out.stdout).unwrap().trim(), 8).unwrap()
}

#[test]
fn the_output_directory_is_created_without_access_for_other_users() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let out = sb.path("volume/out");
    let (status, _, stderr) = run(sb.once_one(ROLE, &moto.url, &out));
    assert!(status.success(), "{stderr}");
    // The parents it had to create hold nothing, and an application in `owner`'s group must
    // pass through them.
    for (dir, expected) in [(&out, 0o750), (&sb.path("volume"), 0o755)] {
        let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected & !umask(&sb), "{}: {mode:o}", dir.display());
    }
}

#[test]
fn credential_process_refuses_a_role_that_is_not_a_role_name() {
    let sb = Sandbox::new();
    let later = humantime::format_rfc3339_seconds(now() + Duration::from_secs(3600));
    // A file outside the directory, where `--role ../x` would point.
    sb.write(
        "x.json",
        &format!(
            "{{\"Version\":1,\"AccessKeyId\":\"ASIAQWERTYUIOPASDFGH\",\"SecretAccessKey\":\"c2VjcmV0c2VjcmV0\",\
             \"SessionToken\":\"dG9rZW50b2tlbg==\",\"Expiration\":\"{later}\"}}"
        ),
    );
    fs::create_dir(sb.path("out")).unwrap();
    fs::copy(sb.path("x.json"), sb.path("out/x.json")).unwrap();
    let credential_process = |role: &str| {
        let mut c = sb.rolerelay();
        c.args(["credential-process", "--role", role, "--dir"])
            .arg(sb.path("out"));
        run(c)
    };
    for role in ["../x", "a b", "x/../x", "", "x\n"] {
        let (status, stdout, stderr) = credential_process(role);
        assert_eq!(status.code(), Some(2), "{role:?}: {stderr}");
        assert!(stdout.is_empty(), "{role:?}: nothing printed: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{role:?}: one line: {stderr}");
        assert!(
            stderr.contains("--role (or ROLERELAY_ROLE)") && stderr.contains("role name"),
            "{role:?}: {stderr}"
        );
    }
    let (status, stdout, stderr) = credential_process("x");
    assert!(status.success(), "a role name still works: {stderr}");
    assert!(stdout.contains("ASIAQWERTYUIOPASDFGH"));
}
