//! The refresh loop against an in-memory STS, on tokio's paused clock: hours pass in
//! milliseconds, and every wait is exactly what the loop asked for.

use std::fs;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::*;
use crate::app;
use crate::testing::{self, FakeSts, Reply};

const MINUTE: Duration = Duration::from_secs(60);

/// A running loop for the first role of the configuration written in `dir`.
struct Running {
    ctx: Context,
    sts: FakeSts,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(dir: &Path, roles: &[(&str, &str)]) -> Running {
        let config = testing::load(&testing::write_config(dir, roles));
        let clock = testing::paused_clock();
        let sts = FakeSts::new(clock.clone());
        let ctx = app::context(&config, sts.assumer(), clock).unwrap();
        let (stop, stopped) = watch::channel(false);
        let role_loop = RoleLoop::new(ctx.clone(), config.roles[0].clone());
        let task = tokio::spawn(role_loop.run(stopped));
        Running {
            ctx,
            sts,
            stop,
            task,
        }
    }

    fn role(&self) -> crate::state::RoleState {
        self.ctx.state.get(&"a".parse().unwrap()).unwrap()
    }

    fn metric(&self, series: &str) -> f64 {
        testing::metric(&self.ctx.metrics.render(), series)
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_role_is_refreshed_at_half_its_lifetime_and_its_files_follow() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), &[("a", "")]);
    tokio::time::sleep(3 * 60 * MINUTE).await;
    let calls = running.sts.calls();
    // 1 h credentials refreshed at 30 min, +/- the 10 % jitter: 27 to 33 minutes apart.
    assert!((6..=7).contains(&calls.len()), "{} calls", calls.len());
    for pair in calls.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at).unwrap();
        assert!(gap >= 27 * MINUTE && gap <= 33 * MINUTE, "{gap:?}");
        assert_eq!(pair[1].duration, 60 * MINUTE);
    }
    let last = format!("ASIAFAKE{:012}", calls.len());
    assert_eq!(testing::key_in(&dir.path().join("out/a.json")), last);
    let role = running.role();
    let now = running.ctx.clock.now();
    assert_eq!(role.readiness(now, Some(20 * MINUTE)), Ok(()));
    assert_eq!(role.liveness(now), Ok(()));
    assert!(role.next_refresh.unwrap() > now);
    let successes = "rolerelay_refresh_total{result=\"success\",role=\"a\"}";
    assert_eq!(running.metric(successes), calls.len() as f64);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_sts_is_retried_within_backoff_max_and_expired_credentials_are_withdrawn() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out/a.json");
    let running = Running::start(dir.path(), &[("a", "")]);
    tokio::time::sleep(MINUTE).await;
    assert!(json.exists());
    running.sts.set_reply(Reply::Error("Throttling"));
    tokio::time::sleep(2 * 60 * MINUTE).await;

    let role = running.role();
    let now = running.ctx.clock.now();
    assert!(!json.exists(), "expired credentials are withdrawn");
    assert!(role.valid_credentials(now).is_none());
    assert!(role
        .readiness(now, Some(20 * MINUTE))
        .unwrap_err()
        .contains("expired"));
    let failures = role.consecutive_failures;
    assert!(failures > 10, "{failures}");
    let throttled = "rolerelay_refresh_errors_total{kind=\"throttled\",role=\"a\"}";
    assert_eq!(running.metric(throttled), f64::from(failures));
    // Once the backoff reached its cap, retries come at most 2 minutes apart.
    let calls = running.sts.calls();
    for pair in calls[calls.len() - 5..].windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at).unwrap();
        assert!(gap <= 2 * MINUTE, "{gap:?}");
    }

    running.sts.set_reply(Reply::Credentials);
    tokio::time::sleep(3 * MINUTE).await;
    assert!(json.exists(), "the files come back with the next success");
    let role = running.role();
    assert_eq!(role.consecutive_failures, 0);
    assert_eq!(
        role.readiness(running.ctx.clock.now(), Some(20 * MINUTE)),
        Ok(())
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_duration_sts_refuses_is_lowered_to_one_hour_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), &[("a", "    duration: 2h\n")]);
    running.sts.set_reply(Reply::AtMost(60 * MINUTE));
    tokio::time::sleep(2 * 60 * MINUTE).await;
    let asked: Vec<u64> = running
        .sts
        .calls()
        .iter()
        .map(|c| c.duration.as_secs() / 60)
        .collect();
    assert_eq!(asked[..2], [120, 60], "refused, then 1h at once");
    assert!(asked[2..].iter().all(|m| *m == 60), "{asked:?}");
    assert_eq!(running.role().consecutive_failures, 0);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_writes_are_retried_without_calling_sts_again() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("out/a.env");
    fs::create_dir_all(blocker.join("inside")).unwrap();
    let running = Running::start(dir.path(), &[("a", "")]);
    tokio::time::sleep(MINUTE).await;
    let errors = "rolerelay_output_write_errors_total{output=\"env_file\",role=\"a\"}";
    assert!(running.metric(errors) >= 2.0, "retried");
    assert!(running.role().write_errors.contains_key("env_file"));
    assert_eq!(running.sts.calls().len(), 1);

    fs::remove_dir_all(&blocker).unwrap();
    tokio::time::sleep(3 * MINUTE).await;
    assert!(blocker.is_file());
    assert!(running.role().write_errors.is_empty());
    assert_eq!(
        running.sts.calls().len(),
        1,
        "STS is not called for a write"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_set_forward_past_the_refresh_is_acted_on_within_half_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), &[("a", "")]);
    tokio::time::sleep(MINUTE).await;
    assert_eq!(running.sts.calls().len(), 1);
    // Suspended for 40 minutes: past the refresh at about 30, the credentials still valid.
    running.ctx.clock.jump(40 * MINUTE, true);
    tokio::time::sleep(WALL_CLOCK_CHECK + Duration::from_secs(1)).await;
    assert_eq!(running.sts.calls().len(), 2, "refreshed on waking");
    let role = running.role();
    let now = running.ctx.clock.now();
    assert_eq!(role.liveness(now), Ok(()));
    assert_eq!(role.readiness(now, Some(20 * MINUTE)), Ok(()));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_set_back_neither_refreshes_early_nor_stalls_the_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), &[("a", "")]);
    tokio::time::sleep(MINUTE).await;
    running.ctx.clock.jump(40 * MINUTE, false);
    tokio::time::sleep(10 * MINUTE).await;
    assert_eq!(
        running.sts.calls().len(),
        1,
        "the refresh is still ahead by the wall clock"
    );
    assert_eq!(running.role().liveness(running.ctx.clock.now()), Ok(()));
    // The schedule follows the wall clock: the refresh comes 30 minutes (±10 %) of it after the
    // first, 40 minutes later by the monotonic clock.
    tokio::time::sleep(65 * MINUTE).await;
    let calls = running.sts.calls();
    assert!(calls.len() >= 2, "{}", calls.len());
    let gap = calls[1].at.duration_since(calls[0].at).unwrap();
    assert!(gap >= 27 * MINUTE && gap <= 34 * MINUTE, "{gap:?}");
    running.stop().await;
}
