//! Black-box test of a start with many roles: every role's credentials reach every file although
//! `credentials` is rewritten for many roles at a time (paced), and once every role has made its
//! first attempt the memory the start freed goes back to the system, once.

mod common;

use std::time::Duration;

use common::sidecar::Sidecar;
use common::*;

const ROLES: usize = 300;

#[test]
fn a_start_with_hundreds_of_roles_writes_every_one_and_then_gives_back_the_memory_it_freed() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let names: Vec<String> = (0..ROLES).map(|i| format!("r{i}")).collect();
    let roles: Vec<&str> = names.iter().map(String::as_str).collect();
    let sidecar = Sidecar::start(&sb, &moto.url, &roles, "");
    sidecar.wait_readyz(200, Duration::from_secs(60));

    let credentials = std::fs::read_to_string(sidecar.out.join("credentials")).unwrap();
    for name in &names {
        assert!(
            credentials.contains(&format!("\n[{name}]\n")),
            "{name} is missing from credentials"
        );
        let json = process_json(&sidecar.out, name);
        assert!(
            credentials.contains(json["AccessKeyId"].as_str().unwrap()),
            "credentials holds {name}'s current key"
        );
    }

    let logs = sidecar.running.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let message = |line: &serde_json::Value| line["message"].as_str().unwrap_or("").to_string();
    let gave_back: Vec<usize> = (0..lines.len())
        .filter(|&i| message(&lines[i]).contains("every role has made its first attempt"))
        .collect();
    assert_eq!(gave_back.len(), 1, "once:\n{logs}");
    let assumed = lines
        .iter()
        .filter(|line| message(line) == "assumed role")
        .count();
    let before = lines[..gave_back[0]]
        .iter()
        .filter(|line| message(line) == "assumed role")
        .count();
    assert_eq!(
        (before, assumed),
        (ROLES, ROLES),
        "after every role's first success"
    );
    let line = &lines[gave_back[0]];
    for field in ["rss_before_kib", "rss_after_kib"] {
        assert!(line[field].as_u64().unwrap() > 0, "{field}: {line}");
    }
}
