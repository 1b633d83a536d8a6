use std::path::Path;
use std::time::Duration;

use super::*;

const SPEC_EXAMPLE: &str = r#"
sts:
  region: us-east-1
  endpoint_url: null
source:
  profile: null
refresh:
  lifetime_fraction: 0.5
  min_remaining: 20m
  max_interval: null
  jitter: 0.1
  backoff_initial: 1s
  backoff_max: 2m
  timeout: 10s
  concurrency: 16
roles:
  - name: account-a
    role_arn: arn:aws:iam::111111111111:role/RoleForB
    session_name: rolerelay-{hostname}
    external_id: null
    duration: 1h
    chain: []
    policy: null
    policy_arns: []
    tags: {}
    transitive_tag_keys: []
    source_identity: null
outputs:
  directory: /var/run/rolerelay
  credentials_file: credentials
  config_file: config
  app_directory: null
  process_command: "cat {dir}/{role}.json"
  default_role: null
  process_json: true
  env_file: true
  file_mode: "0640"
  owner: null
  remove_on_exit: false
clients:
  - name: billing
    roles: [account-a]
    directory: billing
    app_directory: null
server:
  listen: 0.0.0.0:9090
credentials_endpoint:
  enabled: true
  listen: 127.0.0.1:9911
  token_file: token
logging:
  format: json
  level: info
"#;

const MINIMAL: &str =
    "roles:\n  - name: account-a\n    role_arn: arn:aws:iam::111111111111:role/RoleForB\n";

fn vars() -> TemplateVars {
    TemplateVars {
        hostname: "host-1".into(),
        pod: "pod-1".into(),
    }
}

fn load_with(
    args: &ConfigArgs,
    text: Option<&str>,
    env: &[(&str, &str)],
) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Config::from_parts(
        args,
        text.map(|t| (Path::new("c.yaml"), t)),
        &lookup,
        &vars(),
    )
}

fn load(text: &str) -> Result<Config, ConfigError> {
    load_with(&ConfigArgs::default(), Some(text), &[])
}

fn error(text: &str) -> String {
    load(text)
        .expect_err("the configuration should be refused")
        .to_string()
}

#[test]
fn the_spec_example_is_the_defaults() {
    let mut full = load(SPEC_EXAMPLE).unwrap();
    let minimal = load(MINIMAL).unwrap();
    // One deliberate difference: the default command says why it fails while a role has no
    // credentials yet, where the SPEC's `cat` names only a missing file.
    assert_eq!(full.outputs.process_command, "cat {dir}/{role}.json");
    assert_eq!(minimal.outputs.process_command, DEFAULT_PROCESS_COMMAND);
    full.outputs.process_command = DEFAULT_PROCESS_COMMAND.into();
    // The example writes out the 20m that a 1h role gets when min_remaining is not set.
    assert_eq!(
        full.refresh.min_remaining,
        Some(HumanDuration(Duration::from_secs(1200)))
    );
    assert_eq!(full.roles[0].min_remaining, minimal.roles[0].min_remaining);
    full.refresh.min_remaining = None;
    // The example's one client, which a configuration has only when it asks for one.
    let billing = full.clients.remove(0);
    assert_eq!(billing.name.as_str(), "billing");
    assert_eq!(billing.directory, Path::new("/var/run/rolerelay/billing"));
    assert_eq!(billing.app_dir(), billing.directory);
    assert_eq!(billing.roles, [full.roles[0].name.clone()]);
    assert_eq!(full, minimal);
    assert_eq!(minimal.refresh.min_remaining, None);
    assert_eq!(minimal.roles[0].min_remaining.0, Duration::from_secs(1200));
    assert_eq!(minimal.refresh.backoff_max.0, Duration::from_secs(120));
    assert_eq!(minimal.refresh.concurrency, 16);
    assert_eq!(minimal.outputs.file_mode.0, 0o640);
    assert_eq!(minimal.outputs.directory, Path::new("/var/run/rolerelay"));
    assert_eq!(minimal.server.listen.to_string(), "0.0.0.0:9090");
    assert_eq!(
        minimal.credentials_endpoint.listen.to_string(),
        "127.0.0.1:9911"
    );
    assert_eq!(minimal.roles[0].session_name_resolved, "rolerelay-host-1");
    assert_eq!(minimal.roles[0].duration.0, Duration::from_secs(3600));
    assert_eq!(minimal.logging.format, LogFormat::Json);
}

#[test]
fn every_role_option_is_read() {
    let config = load(
        r#"
roles:
  - name: a
    role_arn: arn:aws:iam::111111111111:role/A
    session_name: "{role}@{pod}"
    external_id: ext-123
    duration: 2h
    chain: [arn:aws:iam::222222222222:role/Hop]
    policy: '{"Version":"2012-10-17","Statement":[]}'
    policy_arns: [arn:aws:iam::aws:policy/ReadOnlyAccess]
    tags: {team: payments, env: prod}
    transitive_tag_keys: [team]
    source_identity: alice
outputs:
  file_mode: 0600
  owner: "1000:2000"
  default_role: a
  credentials_file: ""
"#,
    )
    .unwrap();
    let role = &config.roles[0];
    assert_eq!(role.session_name_resolved, "a@pod-1");
    assert_eq!(role.external_id.as_deref(), Some("ext-123"));
    assert_eq!(role.duration.0, Duration::from_secs(7200));
    assert_eq!(role.chain[0].as_str(), "arn:aws:iam::222222222222:role/Hop");
    assert_eq!(role.policy_arns, ["arn:aws:iam::aws:policy/ReadOnlyAccess"]);
    assert_eq!(role.tags.get("team").map(String::as_str), Some("payments"));
    assert_eq!(role.transitive_tag_keys, ["team"]);
    assert_eq!(role.source_identity.as_deref(), Some("alice"));
    assert_eq!(
        config.outputs.file_mode.0, 0o600,
        "an unquoted 0600 is read as octal text"
    );
    assert_eq!(
        config.outputs.owner,
        Some(Owner {
            uid: 1000,
            gid: 2000
        })
    );
    assert_eq!(
        config.outputs.credentials_file, None,
        "\"\" disables the file"
    );
}

#[test]
fn flags_override_the_file_and_the_file_overrides_defaults() {
    let file = "sts:\n  region: eu-west-1\nrefresh:\n  max_interval: 10m\n".to_string() + MINIMAL;
    let config = load_with(
        &ConfigArgs::default(),
        Some(&file),
        &[("AWS_REGION", "ap-south-1")],
    )
    .unwrap();
    assert_eq!(config.sts.region, "eu-west-1", "the file beats AWS_REGION");
    assert_eq!(
        config.refresh.max_interval.unwrap().0,
        Duration::from_secs(600)
    );
    let args = ConfigArgs {
        region: Some("us-west-2".into()),
        max_interval: Some("30s".into()),
        ..Default::default()
    };
    let config = load_with(&args, Some(&file), &[]).unwrap();
    assert_eq!(config.sts.region, "us-west-2", "the flag beats the file");
    assert_eq!(
        config.refresh.max_interval.unwrap().0,
        Duration::from_secs(30)
    );
    let config = load_with(
        &ConfigArgs::default(),
        Some(MINIMAL),
        &[("AWS_DEFAULT_REGION", "ca-central-1")],
    )
    .unwrap();
    assert_eq!(config.sts.region, "ca-central-1");
    let both = [
        ("AWS_REGION", "ap-south-1"),
        ("AWS_DEFAULT_REGION", "ca-central-1"),
    ];
    assert_eq!(
        load_with(&ConfigArgs::default(), Some(MINIMAL), &both)
            .unwrap()
            .sts
            .region,
        "ap-south-1"
    );
}

#[test]
fn a_single_role_needs_no_file() {
    let args = ConfigArgs {
        role_arn: Some("arn:aws:iam::111111111111:role/path/RoleForB".into()),
        external_id: Some("X-1".into()),
        output_dir: Some("/tmp/rr".into()),
        sts_endpoint_url: Some("http://127.0.0.1:5000".into()),
        ..Default::default()
    };
    let config = load_with(&args, None, &[]).unwrap();
    assert_eq!(config.roles.len(), 1);
    assert_eq!(
        config.roles[0].name.as_str(),
        "RoleForB",
        "named after the role"
    );
    assert_eq!(config.roles[0].external_id.as_deref(), Some("X-1"));
    assert_eq!(config.outputs.directory, Path::new("/tmp/rr"));
    assert_eq!(
        config.sts.endpoint_url.as_deref(),
        Some("http://127.0.0.1:5000")
    );
    // --role-arn replaces the file's roles.
    let config = load_with(&args, Some(MINIMAL), &[]).unwrap();
    assert_eq!(
        config
            .roles
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["RoleForB"]
    );
}

#[test]
fn errors_name_the_line_the_key_and_the_fix() {
    let cases = [
        ("refresh:\n  jiter: 0.1\n", "c.yaml:2: refresh.jiter: unknown field `jiter`"),
        (
            "roles:\n  - name: a\n    role_arn: arn:aws:iam::1111:role/A\n",
            "c.yaml:3: roles[0].role_arn: \"arn:aws:iam::1111:role/A\" is not an IAM role ARN: write it as arn:aws:iam::<12-digit account id>:role/<role name>",
        ),
        ("refresh:\n  min_remaining: 20 minutes please\n", "c.yaml:2: refresh.min_remaining: invalid duration"),
        ("refresh:\n  timeout: 10\n", "c.yaml:2: refresh.timeout: duration \"10\" has no unit"),
        ("refresh:\n  lifetime_fraction: 1.5\n", "c.yaml:2: refresh.lifetime_fraction: lifetime_fraction 1.5 is outside 0..1"),
        ("refresh:\n  jitter: -0.1\n", "c.yaml:2: refresh.jitter: jitter -0.1 is outside 0..1"),
        ("outputs:\n  file_mode: \"0890\"\n", "c.yaml:2: outputs.file_mode: file mode \"0890\" is not an octal mode"),
        ("outputs:\n  owner: app\n", "c.yaml:2: outputs.owner: owner \"app\" must be numeric"),
        ("logging:\n  level: loud\n", "c.yaml:2: logging.level: log level \"loud\""),
        ("refresh:\n  backoff_initial: 5m\n  backoff_max: 1m\n", "c.yaml:3: refresh.backoff_max: 1m is less than refresh.backoff_initial"),
        ("refresh:\n  concurrency: 0\n", "c.yaml:2: refresh.concurrency: must be at least 1"),
        ("roles: {}\n", "c.yaml:1: roles: expected a list"),
        ("refresh:\n  concurrency: lots\n", "c.yaml:2: refresh.concurrency: expected a positive whole number, like 16"),
        ("refresh:\n  concurrency: -1\n", "c.yaml:2: refresh.concurrency: expected a positive whole number"),
        ("refresh:\n  jitter: some\n", "c.yaml:2: refresh.jitter: expected a number, like 0.5"),
        ("credentials_endpoint:\n  enabled: maybe\n", "c.yaml:2: credentials_endpoint.enabled: expected true or false"),
        ("sts: us-east-1\n", "c.yaml:1: sts: expected a mapping (indented `key: value` lines)"),
        ("sts:\n  region: a\n  region: b\n", "c.yaml:3: sts.region: `region` is set twice in the same mapping: keep one"),
        ("sts:\n  region: a\nsts:\n  region: b\n", "c.yaml:3: sts: `sts` is set twice"),
        ("roles: []\n", "c.yaml: roles: no roles configured"),
        // The key path is found from the error's place, in block and in flow style alike.
        ("refresh: {jiter: 1}\n", "c.yaml:1: refresh.jiter: unknown field `jiter`"),
        ("sts:\n  endpoint_url:\n    a: b\n", "c.yaml:3: sts.endpoint_url: expected a single value"),
        ("clients:\n  - {}\n", "c.yaml:2: clients[0]: missing field `name`"),
        (
            "roles: [{name: a, role_arn: arn:aws:iam::111111111111:role/A}, {name: b}]\n",
            "c.yaml:1: roles[1]: missing field `role_arn`",
        ),
        (
            "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    chain:\n      - arn:aws:iam::111111111111:role/B\n      - nope\n",
            "c.yaml:6: roles[0].chain[1]: \"nope\" is not an IAM role ARN",
        ),
        // A mapping lacking a key is reported at its last key, where the list before it ends.
        (
            "roles:\n  - name: a\n    chain:\n      - arn:aws:iam::111111111111:role/B\n    duration: 1h\n",
            "c.yaml:5: roles[0]: missing field `role_arn`",
        ),
        (
            "clients:\n  - roles:\n      - a\n    directory: x\n",
            "c.yaml:4: clients[0]: missing field `name`",
        ),
        (
            "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    tags:\n      a: x\n      a: y\n",
            "c.yaml:6: roles[0].tags.a: `a` is set twice in the same mapping",
        ),
    ];
    for (text, expected) in cases {
        let text = if text.starts_with("roles") {
            text.to_string()
        } else {
            format!("{text}{MINIMAL}")
        };
        let err = error(&text);
        assert!(
            err.starts_with(expected),
            "for {text:?}\n got: {err}\nwant: {expected}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn cross_field_errors_say_what_to_change() {
    let two = |extra: &str| {
        format!(
            "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n  - name: {extra}\n    role_arn: arn:aws:iam::222222222222:role/B\n"
        )
    };
    assert!(error(&two("a"))
        .starts_with("c.yaml:4: roles[1].name: role name \"a\" is already used by roles[0]"));
    assert!(error(&two("b/c")).contains("roles[1].name"));
    let err = error(&format!("outputs:\n  default_role: nope\n{}", two("b")));
    assert!(err.starts_with("c.yaml:2: outputs.default_role: default_role \"nope\" is not a configured role: use one of a, b"), "{err}");
    let err = error("roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    tags: {x: y}\n    transitive_tag_keys: [z]\n");
    assert!(
        err.contains("roles[0].transitive_tag_keys")
            && err.contains("\"z\" is not one of this role's tags"),
        "{err}"
    );
    let err = error(
        "refresh:\n  min_remaining: 20m\nroles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    duration: 15m\n",
    );
    assert!(err.starts_with("c.yaml:6: roles[0].duration: session duration 15m is not longer than refresh.min_remaining (20m)"), "{err}");
    let err = error(
        "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    duration: 13h\n",
    );
    assert!(err.contains("use 15m to 12h"), "{err}");
    let err = error(
        "refresh:\n  min_remaining: 2h\nroles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n",
    );
    assert!(
        err.starts_with("c.yaml:4: roles[0].duration: session duration 1h is not longer than refresh.min_remaining (2h)"),
        "the default duration is named as the role's key: {err}"
    );
    let err = error(
        "refresh:\n  min_remaining: 1h\nroles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    duration: 2h\n    chain: [arn:aws:iam::222222222222:role/H]\n",
    );
    assert!(
        err.starts_with("c.yaml:7: roles[0].chain: a role assumed through a chain gets at most 1h"),
        "{err}"
    );
    let err = error("roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    policy: '{not json'\n");
    assert!(
        err.starts_with("c.yaml:4: roles[0].policy: the session policy is not valid JSON"),
        "{err}"
    );
    let err = error(&format!(
        "credentials_endpoint:\n  listen: 0.0.0.0:9911\n{MINIMAL}"
    ));
    assert!(
        err.starts_with(
            "c.yaml:2: credentials_endpoint.listen: 0.0.0.0:9911 is not a loopback address"
        ),
        "{err}"
    );
    assert!(load(&format!(
        "credentials_endpoint:\n  listen: 0.0.0.0:9911\n  allow_non_loopback: true\n{MINIMAL}"
    ))
    .is_ok());
    let err = error(&format!(
        "outputs:\n  credentials_file: account-a.json\n{MINIMAL}"
    ));
    assert!(
        err.starts_with("c.yaml:2: outputs.credentials_file: file name \"account-a.json\" is used by another output"),
        "{err}"
    );
    let err = error(&format!(
        "outputs:\n  process_command: \"cat {{directory}}/{{role}}.json\"\n{MINIMAL}"
    ));
    assert!(err.contains("{directory}"), "{err}");
}

#[test]
fn values_written_into_config_cannot_break_its_lines() {
    let cases = [
        (r#"process_command: "cat {dir}/{role}.json\n[default]""#, "c.yaml:2: outputs.process_command: process_command has a control character"),
        (r#"process_command: "cat {dir}/{role}.json\u2028x""#, "c.yaml:2: outputs.process_command: process_command has a control character"),
        (r#"process_command: "[ -f {dir}/{role}.json ]""#, "c.yaml:2: outputs.process_command: process_command has a control character, a line break or '['"),
        (r#"process_command: "cat \"{dir}/{role}.json""#, "c.yaml:2: outputs.process_command: process_command leaves a \" quote open"),
        (r#"app_directory: "/mnt/a\tb""#, "c.yaml:2: outputs.app_directory: app_directory has a control character"),
        (r#"app_directory: "/mnt/[a]""#, "c.yaml:2: outputs.app_directory: app_directory has a control character, a line break or '['"),
        (r#"directory: "/mnt/a\rb""#, "c.yaml:2: outputs.directory: outputs.directory (the {dir} of `config`) has a control character"),
    ];
    for (line, expected) in cases {
        let err = error(&format!("outputs:\n  {line}\n{MINIMAL}"));
        assert!(
            err.starts_with(expected),
            "for {line}\n got: {err}\nwant: {expected}"
        );
        assert!(
            !err.contains('\n') && !err.contains('\r'),
            "one line: {err}"
        );
    }
    // Spaces and quotes around {dir} are fine: the INI writer quotes the value.
    for line in [
        r#"app_directory: "/mnt/my creds""#,
        r#"process_command: "cat '{dir}/{role}.json'""#,
    ] {
        assert!(
            load(&format!("outputs:\n  {line}\n{MINIMAL}")).is_ok(),
            "{line}"
        );
    }
    // A directory with brackets is fine when the application sees the volume elsewhere.
    assert!(load(&format!(
        "outputs:\n  directory: /mnt/[a]\n  app_directory: /creds\n{MINIMAL}"
    ))
    .is_ok());
}

#[test]
fn flag_errors_name_the_flag_and_its_variable() {
    let args = ConfigArgs {
        role_arn: Some("RoleForB".into()),
        ..Default::default()
    };
    let err = load_with(&args, None, &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("--role-arn (or ROLERELAY_ROLE_ARN): \"RoleForB\" is not an IAM role ARN"),
        "{err}"
    );
    let args = ConfigArgs {
        file_mode: Some("777".into()),
        ..Default::default()
    };
    let err = load_with(&args, Some(MINIMAL), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--file-mode (or ROLERELAY_FILE_MODE): "),
        "{err}"
    );
    let err = load_with(&ConfigArgs::default(), None, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no roles configured") && err.contains("--role-arn"),
        "{err}"
    );
    // A variable left empty in a manifest is unset, not an invalid value.
    let args = ConfigArgs {
        region: Some(String::new()),
        file_mode: Some(String::new()),
        ..Default::default()
    };
    let config = load_with(&args, Some(MINIMAL), &[]).expect("empty values are unset");
    assert_eq!(config.sts.region, "us-east-1");
}

#[test]
fn the_effective_configuration_prints_and_reads_back() {
    let config = load(SPEC_EXAMPLE).unwrap();
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["refresh"]["min_remaining"], "20m");
    assert_eq!(json["outputs"]["file_mode"], "0640");
    assert_eq!(
        json["roles"][0]["session_name_resolved"],
        "rolerelay-host-1"
    );
}

#[test]
fn numbers_and_durations_that_would_overflow_at_run_time_are_refused_naming_the_limit() {
    let role = "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/R\n";
    for (refresh, expected) in [
        ("concurrency: 18446744073709551615", "use at most 4096"),
        ("timeout: 18446744073709551615s", "use at most 10m"),
        ("max_interval: 18446744073709551615s", "use at most 12h"),
        ("min_remaining: 13h", "use at most 12h"),
        ("backoff_initial: 2h\n  backoff_max: 2h", "use at most 1h"),
        ("backoff_max: 3h", "use at most 1h"),
    ] {
        let message = error(&format!("refresh:\n  {refresh}\n{role}"));
        assert!(message.starts_with("c.yaml:2: refresh."), "{message}");
        assert!(message.contains(expected), "{refresh}: {message}");
    }
}

#[test]
fn the_default_process_command_prints_the_json_or_says_the_role_is_not_ready() {
    let base = tempfile::tempdir().unwrap();
    for name in ["plain", "my creds", "it's $(x) `y`"] {
        let dir = base.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let line = crate::shell::fill(
            DEFAULT_PROCESS_COMMAND,
            &[("dir", dir.to_str().unwrap()), ("role", "a")],
        );
        // As the Go, JavaScript and Rust SDKs run it; botocore's shlex split reads it the same.
        let run = || {
            std::process::Command::new("sh")
                .args(["-c", &line])
                .env_clear()
                .output()
                .unwrap()
        };
        let missing = run();
        assert_eq!(missing.status.code(), Some(1), "{line}");
        assert!(missing.stdout.is_empty());
        let expected = format!(
            "rolerelay: role a has no credentials yet, or {}/a.json is not readable here (see rolerelay /status)\n",
            dir.display()
        );
        assert_eq!(String::from_utf8_lossy(&missing.stderr), expected);
        std::fs::write(dir.join("a.json"), "{\"Version\": 1}").unwrap();
        let present = run();
        assert!(present.status.success(), "{line}");
        assert_eq!(present.stdout, b"{\"Version\": 1}");
        assert!(present.stderr.is_empty());
    }
}

#[test]
fn without_min_remaining_every_duration_sts_grants_works_with_its_own_margin() {
    let minutes = |m: u64| HumanDuration(Duration::from_secs(m * 60));
    for (duration, margin) in [
        ("15m", minutes(5)),
        ("16m", HumanDuration(Duration::from_secs(320))),
        ("1h", minutes(20)),
        ("12h", minutes(20)),
    ] {
        let config = load(&format!(
            "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    duration: {duration}\n"
        ))
        .unwrap_or_else(|e| panic!("{duration}: {e}"));
        assert_eq!(config.roles[0].min_remaining, margin, "{duration}");
    }
    // A chained role gets at most 1h, and its margin follows.
    let config = load(
        "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    duration: 12h\n    chain: [arn:aws:iam::222222222222:role/H]\n",
    )
    .unwrap();
    assert_eq!(config.roles[0].min_remaining, minutes(20));
    let config = load(
        "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/A\n    duration: 30m\n    chain: [arn:aws:iam::222222222222:role/H]\n",
    )
    .unwrap();
    assert_eq!(config.roles[0].min_remaining, minutes(10));
}
