//! Property tests (a bounded fuzz) of the parsers a user's text reaches: the configuration file,
//! durations and session-name templates. `PROPTEST_CASES` sets the number of cases (default 256;
//! the README gives a longer run).

use std::path::Path;

use proptest::prelude::*;
use rolerelay::config::values::sanitize_session_name;
use rolerelay::config::{
    Config, ConfigArgs, HumanDuration, RoleName, SessionTemplate, TemplateVars,
};

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
        let mut text = String::new();
        for (key, value) in sections {
            let (section, field) = key.split_once('.').unwrap();
            text.push_str(&format!("{section}:\n  {field}: {value}\n"));
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

proptest! {
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
                prop_assert!(c.refresh.lifetime_fraction > 0.0 && c.refresh.lifetime_fraction < 1.0);
                prop_assert!(c.refresh.jitter >= 0.0 && c.refresh.jitter < 1.0);
                prop_assert!(c.refresh.concurrency >= 1);
                prop_assert!(c.refresh.backoff_max >= c.refresh.backoff_initial);
                prop_assert!(c.outputs.file_mode.0 & 0o027 == 0, "nothing for others, no group write");
                prop_assert!(!c.roles.is_empty());
                for r in &c.roles {
                    prop_assert!(r.duration.0 > c.refresh.min_remaining.0);
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
