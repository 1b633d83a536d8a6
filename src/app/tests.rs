//! The app's reloads and `once` against an in-memory STS, on tokio's paused clock.

use std::fs;
use std::path::Path;

use super::sidecar::ReloadCause;
use super::*;
use crate::testing::{self, FakeSts, Reply};

const MINUTE: Duration = Duration::from_secs(60);

/// A sidecar with its loops started on the configuration written in `dir`.
fn sidecar(dir: &Path, roles: &[(&str, &str)]) -> (Sidecar, FakeSts) {
    let args = testing::write_config(dir, roles);
    let config = testing::load(&args);
    let clock = testing::paused_clock();
    let sts = FakeSts::new(clock.clone());
    let ctx = context(&config, sts.assumer(), clock).unwrap();
    let mut sidecar = Sidecar::new(config, args, ctx, Arc::new(Access::new()));
    sidecar.start_all();
    (sidecar, sts)
}

fn metric(sidecar: &Sidecar, series: &str) -> f64 {
    testing::metric(&sidecar.ctx.metrics.render(), series)
}

fn names(sidecar: &Sidecar) -> Vec<String> {
    let mut names: Vec<String> = sidecar.loops.keys().map(|n| n.to_string()).collect();
    names.sort();
    names
}

#[tokio::test(start_paused = true)]
async fn a_reload_starts_added_roles_restarts_changed_ones_and_stops_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (mut sidecar, sts) = sidecar(dir.path(), &[("a", ""), ("b", ""), ("c", "")]);
    tokio::time::sleep(MINUTE).await;
    let key_a = testing::key_in(&out.join("a.json"));
    let key_c = testing::key_in(&out.join("c.json"));

    testing::write_config(
        dir.path(),
        &[("a", ""), ("c", "    external_id: new-id\n"), ("d", "")],
    );
    sidecar.reload(ReloadCause::FileChanged).await;
    tokio::time::sleep(MINUTE).await;

    assert_eq!(names(&sidecar), ["a", "c", "d"]);
    assert_eq!(
        testing::key_in(&out.join("a.json")),
        key_a,
        "a kept: not assumed again"
    );
    assert_ne!(
        testing::key_in(&out.join("c.json")),
        key_c,
        "c changed: assumed again"
    );
    assert!(out.join("d.json").exists() && !out.join("b.json").exists());
    let credentials = fs::read_to_string(out.join("credentials")).unwrap();
    assert!(credentials.contains("[d]") && !credentials.contains("[b]"));
    let state: Vec<String> = sidecar
        .ctx
        .state
        .read_roles(|roles| roles.keys().map(|n| n.to_string()).collect());
    assert_eq!(state, ["a", "c", "d"]);
    let metrics = sidecar.ctx.metrics.render();
    assert!(!metrics.contains("role=\"b\"") && metrics.contains("role=\"d\""));
    let applied = "rolerelay_config_reloads_total{result=\"success\"}";
    assert_eq!(metric(&sidecar, applied), 1.0);
    assert_eq!(sidecar.ctx.state.reload().unwrap().error, None);
    let calls_for_a = sts
        .calls()
        .iter()
        .filter(|c| c.role_arn.ends_with("%2Fa"))
        .count();
    assert_eq!(calls_for_a, 1);
    sidecar.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn an_invalid_reload_keeps_the_running_configuration_and_counts_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sidecar, _sts) = sidecar(dir.path(), &[("a", "")]);
    tokio::time::sleep(MINUTE).await;
    fs::write(
        dir.path().join("config.yaml"),
        "roles:\n  - name: a\n    colour: blue\n",
    )
    .unwrap();
    sidecar.reload(ReloadCause::FileChanged).await;
    let refused = sidecar.ctx.state.reload().unwrap().error.unwrap();
    assert!(refused.contains("colour"), "{refused}");
    assert_eq!(names(&sidecar), ["a"]);
    let series = "rolerelay_config_reloads_total{result=\"error\"}";
    assert_eq!(metric(&sidecar, series), 1.0);
    assert!(dir.path().join("out/a.json").exists());
    sidecar.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn a_file_that_changes_nothing_is_not_a_reload_but_sighup_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sidecar, sts) = sidecar(dir.path(), &[("a", "")]);
    tokio::time::sleep(MINUTE).await;
    let applied = "rolerelay_config_reloads_total{result=\"success\"}";
    sidecar.reload(ReloadCause::FileChanged).await;
    assert_eq!(sidecar.ctx.state.reload(), None);
    assert_eq!(metric(&sidecar, applied), 0.0);
    sidecar.reload(ReloadCause::Hangup).await;
    assert_eq!(sidecar.ctx.state.reload().unwrap().error, None);
    assert_eq!(metric(&sidecar, applied), 1.0);
    assert_eq!(
        sts.calls().len(),
        1,
        "nothing changed: nothing assumed again"
    );
    sidecar.stop_all().await;
}

#[tokio::test(start_paused = true)]
async fn once_writes_the_roles_that_succeed_and_names_those_that_fail() {
    let dir = tempfile::tempdir().unwrap();
    let args = testing::write_config(dir.path(), &[("a", ""), ("b", "")]);
    let config = testing::load(&args);
    let clock = testing::paused_clock();
    let sts = FakeSts::new(clock.clone());
    sts.set_reply(Reply::ErrorFor("b", "AccessDenied"));
    let ctx = context(&config, sts.assumer(), clock).unwrap();
    let failed = refresh_each_once(&ctx, &config.roles).await.unwrap();
    let failed: Vec<(String, String)> = failed
        .iter()
        .map(|(name, e)| (name.to_string(), e.to_string()))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "b");
    assert!(
        failed[0].1.starts_with("access_denied: AccessDenied"),
        "{}",
        failed[0].1
    );
    assert!(dir.path().join("out/a.json").exists());
    assert!(!dir.path().join("out/b.json").exists());
}

#[tokio::test(start_paused = true)]
async fn once_retries_the_failed_roles_until_sts_answers_within_retry_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = testing::load(&testing::write_config(dir.path(), &[("a", ""), ("b", "")]));
    let clock = testing::paused_clock();
    let sts = FakeSts::new(clock.clone());
    sts.set_reply(Reply::Error("Throttling"));
    let ctx = context(&config, sts.assumer(), clock).unwrap();
    let recovery = {
        let sts = sts.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            sts.set_reply(Reply::Credentials);
        })
    };
    let failed = once_retrying(&ctx, &config.roles, 2 * MINUTE)
        .await
        .unwrap();
    recovery.await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(dir.path().join("out/a.json").exists() && dir.path().join("out/b.json").exists());
    assert!(
        sts.calls().len() > 4,
        "retried: {} calls",
        sts.calls().len()
    );
}

#[tokio::test(start_paused = true)]
async fn once_gives_up_after_retry_for_and_names_the_roles_that_still_fail() {
    let dir = tempfile::tempdir().unwrap();
    let config = testing::load(&testing::write_config(dir.path(), &[("a", ""), ("b", "")]));
    let clock = testing::paused_clock();
    let sts = FakeSts::new(clock.clone());
    sts.set_reply(Reply::ErrorFor("b", "AccessDenied"));
    let ctx = context(&config, sts.assumer(), clock).unwrap();
    let started = tokio::time::Instant::now();
    let failed = once_retrying(&ctx, &config.roles, MINUTE).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= MINUTE && waited < MINUTE + Duration::from_secs(5),
        "{waited:?}"
    );
    let names: Vec<String> = failed.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(names, ["b"]);
    let calls_for_a = sts
        .calls()
        .iter()
        .filter(|c| c.role_arn.ends_with("%2Fa"))
        .count();
    assert_eq!(calls_for_a, 1, "a role that succeeded is not assumed again");
}

#[tokio::test(start_paused = true)]
async fn a_refused_reload_shows_where_in_status_but_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sidecar, _sts) = sidecar(dir.path(), &[("a", "")]);
    let private =
        "roles:\n  - name: a\n    role_arn: arn:aws:iam::111111111111:role/Private Thing\n";
    fs::write(dir.path().join("config.yaml"), private).unwrap();
    sidecar.reload(ReloadCause::FileChanged).await;
    let shown = sidecar.ctx.state.reload().unwrap().error.unwrap();
    assert!(
        shown.contains("config.yaml:3: roles[0].role_arn"),
        "{shown}"
    );
    assert!(!shown.contains("Private"), "{shown}");
    sidecar.stop_all().await;
}
