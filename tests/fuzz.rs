//! Property tests (a bounded fuzz) of the parsers a user's text reaches: the configuration file,
//! durations and session-name templates. `PROPTEST_CASES` sets the number of cases (default 256;
//! the README gives a longer run).

use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rolerelay::clock::later;
use rolerelay::config::values::sanitize_session_name;
use rolerelay::config::{
    Config, ConfigArgs, HumanDuration, RoleName, SessionTemplate, TemplateVars,
};
use rolerelay::schedule::{self, Failure, Policy};

fn load(text: &str) -> Result<Config, rolerelay::config::ConfigError> {
    let vars = TemplateVars {
        hostname: "host".into(),
        pod: "pod".into(),
    };
    Config::from_parts(
        &ConfigArgs::default(),
        Some((Path::new("c.yaml"), text)),
        &|_| None,
        &vars,
    )
}

/// What `run` does with an accepted configuration's numbers, at the edges of time: the semaphore,
/// the schedule, the backoff and the heartbeat budget. A panic here aborts the release build.
fn runs_without_a_panic(c: &Config) {
    let _ = tokio::sync::Semaphore::new(c.refresh.concurrency);
    let policy = Policy::from(&c.refresh);
    let times = [
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        later(SystemTime::UNIX_EPOCH, Duration::MAX),
    ];
    for now in times {
        for role in &c.roles {
            let expiry = later(now, role.duration.0);
            for sample in [-1.0, 0.0, 0.999] {
                let _ = schedule::next_refresh(&policy, now, expiry, sample);
            }
            let budget = schedule::call_budget(
                c.refresh.timeout.0,
                role.chain.len(),
                Duration::from_secs(30),
            );
            let _ = later(now, budget);
        }
        for failures in [0, 1, 31, 64, u32::MAX] {
            for failure in [Failure::Error, Failure::Throttled] {
                let _ = schedule::backoff(&policy, failure, failures, 0.999);
                let after = (failure, failures);
                let _ = schedule::next_retry(&policy, now, after, 0.999, Some((now, now)));
            }
        }
        if let Some(max) = c.refresh.max_interval {
            let _ = later(now, max.0);
        }
    }
}

/// Scalars that probe the edges of every value type.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e999".to_string()),
        Just("0640".to_string()),
        Just("\"0777\"".to_string()),
        Just("1h".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551615s".to_string()),
        Just("584542046090y".to_string()),
        Just("12h".to_string()),
        Just("1ns".to_string()),
        Just("0s".to_string()),
        Just("true".to_string()),
        Just("127.0.0.1:9911".to_string()),
        Just("arn:aws:iam::111111111111:role/R".to_string()),
        "[a-zA-Z0-9:/{}._ -]{0,20}",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
    ]
}

/// Documents made of the real keys (and some wrong ones) with edge-case values.
fn document() -> impl Strategy<Value = String> {
    let section_keys = prop::sample::select(vec![
        "sts.region",
        "sts.endpoint_url",
        "source.profile",
        "refresh.lifetime_fraction",
        "refresh.min_remaining",
        "refresh.max_interval",
        "refresh.jitter",
        "refresh.backoff_initial",
        "refresh.backoff_max",
        "refresh.timeout",
        "refresh.concurrency",
        "outputs.directory",
        "outputs.credentials_file",
        "outputs.config_file",
        "outputs.app_directory",
        "outputs.process_command",
        "outputs.default_role",
        "outputs.process_json",
        "outputs.env_file",
        "outputs.file_mode",
        "outputs.owner",
        "outputs.remove_on_exit",
        "server.listen",
        "credentials_endpoint.enabled",
        "credentials_endpoint.listen",
        "credentials_endpoint.token_file",
        "credentials_endpoint.allow_non_loopback",
        "logging.format",
        "logging.level",
        "refresh.bogus",
        "bogus.key",
    ]);
    let role_keys = prop::sample::select(vec![
        "session_name",
        "external_id",
        "duration",
        "chain",
        "policy",
        "policy_arns",
        "tags",
        "transitive_tag_keys",
        "source_identity",
        "role_arn",
        "name",
        "unknown",
    ]);
    let sections = prop::collection::vec((section_keys, scalar()), 0..8);
    let roles = prop::collection::vec(prop::collection::vec((role_keys, scalar()), 0..5), 0..3);
    (sections, roles).prop_map(|(sections, roles)| {
        // Keys grouped by section: a section written twice is a duplicate key, refused at once.
        let mut grouped = std::collections::BTreeMap::<&str, Vec<String>>::new();
        for (key, value) in sections {
            let (section, field) = key.split_once('.').unwrap();
            grouped
                .entry(section)
                .or_default()
                .push(format!("  {field}: {value}\n"));
        }
        let mut text = String::new();
        for (section, fields) in grouped {
            text.push_str(&format!("{section}:\n{}", fields.concat()));
        }
        text.push_str("roles:\n");
        for (i, role) in roles.iter().enumerate() {
            text.push_str(&format!(
                "  - name: r{i}\n    role_arn: arn:aws:iam::111111111111:role/R{i}\n"
            ));
            for (key, value) in role {
                text.push_str(&format!("    {key}: {value}\n"));
            }
        }
        text
    })
}

/// Documents with an extreme number or duration in one `refresh` key, or in a role's duration:
/// one at a time, so that the rest of the document stays valid and the value reaches `run`.
fn refresh_document() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "refresh.lifetime_fraction",
        "refresh.min_remaining",
        "refresh.max_interval",
        "refresh.jitter",
        "refresh.backoff_initial",
        "refresh.backoff_max",
        "refresh.timeout",
        "refresh.concurrency",
        "role.duration",
    ]);
    let value = prop_oneof![
        Just("18446744073709551615".to_string()),
        Just("18446744073709551615s".to_string()),
        Just("584542046090y".to_string()),
        Just("4294967296".to_string()),
        Just("12h".to_string()),
        Just("1ns".to_string()),
        Just("0.999999".to_string()),
        Just("1e-300".to_string()),
        "[0-9]{1,20}",
        "[0-9]{1,20}(ns|ms|s|m|h|d|y)",
    ];
    (key, value).prop_map(|(key, value)| {
        // min_remaining 1s lets short role durations through to the schedule.
        let mut refresh = std::collections::BTreeMap::from([("min_remaining", "1s".to_string())]);
        let mut duration = "1h".to_string();
        match key.strip_prefix("refresh.") {
            Some(field) => {
                refresh.insert(field, value);
            }
            None => duration = value,
        }
        let fields: String = refresh.iter().map(|(k, v)| format!("  {k}: {v}\n")).collect();
        format!(
            "refresh:\n{fields}roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/R\n    duration: {duration}\n"
        )
    })
}

proptest! {
    #[test]
    fn extreme_refresh_settings_are_refused_or_run_without_a_panic(text in refresh_document()) {
        match load(&text) {
            Ok(c) => runs_without_a_panic(&c),
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "one line: {e}"),
        }
    }

    #[test]
    fn any_text_is_refused_or_accepted_without_a_panic(text in "\\PC{0,300}") {
        if let Err(e) = load(&text) {
            prop_assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn real_keys_with_edge_values_are_refused_on_one_line_or_give_a_sane_config(text in document()) {
        match load(&text) {
            Err(e) => {
                let line = e.to_string();
                prop_assert!(!line.contains('\n'), "one line: {line}");
                prop_assert!(line.starts_with("c.yaml") || line.starts_with("roles") || line.contains('.'), "names where: {line}");
            }
            Ok(c) => {
                runs_without_a_panic(&c);
                prop_assert!(c.refresh.lifetime_fraction > 0.0 && c.refresh.lifetime_fraction < 1.0);
                prop_assert!(c.refresh.jitter >= 0.0 && c.refresh.jitter < 1.0);
                prop_assert!(c.refresh.concurrency >= 1);
                prop_assert!(c.refresh.backoff_max >= c.refresh.backoff_initial);
                prop_assert!(c.outputs.file_mode.0 & 0o027 == 0, "nothing for others, no group write");
                prop_assert!(!c.roles.is_empty());
                for r in &c.roles {
                    prop_assert!(r.duration.0 > r.min_remaining.0);
                    let n = &r.session_name_resolved;
                    prop_assert!((2..=64).contains(&n.len()));
                }
            }
        }
    }

    #[test]
    fn durations_parse_without_a_panic_and_round_trip(text in "\\PC{0,24}", secs in 0u64..100_000_000) {
        let _ = text.parse::<HumanDuration>();
        let d = HumanDuration(std::time::Duration::from_secs(secs));
        prop_assert_eq!(d.to_string().parse::<HumanDuration>().map(|p| p.0), Ok(d.0));
    }

    #[test]
    fn session_names_always_meet_sts_rules(template in "[a-z{}.@ -]{0,80}", host in "\\PC{0,100}", pod in "\\PC{0,40}") {
        let role: RoleName = "role-1".parse().unwrap();
        if let Ok(t) = template.parse::<SessionTemplate>() {
            let name = t.render(&role, &TemplateVars { hostname: host, pod });
            prop_assert!((2..=64).contains(&name.len()), "{name:?}");
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)), "{name:?}");
        }
        let direct = sanitize_session_name(&template);
        prop_assert!((2..=64).contains(&direct.len()));
    }
}
