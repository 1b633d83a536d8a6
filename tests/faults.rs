//! The fault matrix: the binary against moto behind a misbehaving proxy, with a reader checking
//! every read of every output file and of the endpoint in parallel. Each test ends with a scan of
//! the sidecar's logs for every secret that went through the proxy.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::{always, expire_at, expire_in, forward, sts_error, Action, Proxy, Rule};
use common::reader::Reader;
use common::sidecar::{Sidecar, ACCOUNT};
use common::tmpfs::Tmpfs;
use common::*;

fn reply(status: u16, code: &'static str) -> Rule {
    Arc::new(move |_: &str| Action::Reply(status, sts_error(code, "injected by the test proxy")))
}

/// The gaps between successive STS calls: they must stay under `backoff_max` (plus slack), and
/// after the first few, some must exceed the early ceilings (the backoff grew), with no hot loop.
fn assert_backoff(arrivals: &[Instant], backoff_max: Duration, window: Duration) {
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 6, "too few retries in {window:?}: {gaps:?}");
    // Full jitter over 100 ms x 2^n, capped at 1 s: on average well under one call per 100 ms.
    let per_second = arrivals.len() as f64 / window.as_secs_f64();
    assert!(per_second < 10.0, "a hot loop: {per_second:.1} calls/s");
    assert!(
        gaps.iter()
            .all(|g| *g < backoff_max + Duration::from_secs(1)),
        "a gap beyond backoff_max: {gaps:?}"
    );
    assert!(
        gaps[4..].iter().any(|g| *g > Duration::from_millis(400)),
        "the backoff did not grow: {gaps:?}"
    );
}

/// No secret in what the sidecar said: its logs, `/status`, `/metrics` and the endpoint's
/// refusals hold none of the credentials STS handed out (as the proxy saw them), the endpoint
/// token or the source secret key. What no longer answers (a stopped sidecar) is skipped.
fn nothing_leaks(sidecar: &Sidecar, proxy: &Proxy) {
    let mut secrets = proxy.secrets();
    secrets.extend(std::fs::read_to_string(sidecar.out.join("token")).ok());
    let mut said = sidecar.running.logs();
    let asked = [
        (format!("{}/status", sidecar.status), vec![]),
        (format!("{}/metrics", sidecar.status), vec![]),
        (format!("{}/v1/credentials/a", sidecar.endpoint), vec![]),
        (
            format!("{}/v1/credentials/a", sidecar.endpoint),
            vec![("Authorization", "wrong")],
        ),
    ];
    for (url, headers) in asked {
        if let Ok((_, body)) = try_http_get(&url, &headers) {
            said.push_str(&body);
        }
    }
    assert_no_secrets(&said, &secrets);
}

#[test]
fn sts_unreachable_at_start_backs_off_then_is_ready_within_backoff_max() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, always(|| Action::Reset));
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
    let reader = sidecar.reader(&["a"]);
    let window = Duration::from_secs(8);
    std::thread::sleep(window);
    assert_eq!(sidecar.get("/readyz").0, 503);
    assert_eq!(sidecar.get("/healthz").0, 200);
    assert!(
        !sidecar.out.join("a.json").exists(),
        "no files without credentials"
    );
    assert!(sidecar.errors("a", "network") >= 6.0);
    assert_backoff(&proxy.arrivals(), Duration::from_secs(1), window);

    proxy.set_rule(forward());
    let up = Instant::now();
    sidecar.wait_readyz(200, Duration::from_secs(10));
    assert!(
        up.elapsed() < Duration::from_secs(2),
        "ready {:?} after STS came up: more than backoff_max (1s) and a second",
        up.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = reader.assert_clean();
    assert!(report.served > 0, "the endpoint served once ready");
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn sts_lost_mid_life_keeps_the_last_credentials_until_min_remaining_then_recovers() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    // Credentials that live 20 s, with 10 s to be kept in hand: the refresh is due after ~10 s.
    let proxy = Proxy::start(
        moto.port,
        always(|| Action::Rewrite(|body| expire_in(body, Duration::from_secs(20)))),
    );
    let sidecar = Sidecar::start(
        &sb,
        &proxy.url,
        &["a"],
        "refresh:\n  min_remaining: 10s\n  backoff_initial: 100ms\n  backoff_max: 1s\n",
    );
    sidecar.wait_readyz(200, Duration::from_secs(10));
    let reader = sidecar.reader(&["a"]);
    proxy.set_rule(always(|| Action::Reset));
    let first_key = process_json(&sidecar.out, "a")["AccessKeyId"].clone();

    sidecar.wait_readyz(503, Duration::from_secs(20));
    let status = sidecar.status_report();
    let expiry =
        humantime::parse_rfc3339(status["roles"][0]["expiration"].as_str().unwrap()).unwrap();
    let left = expiry.duration_since(now()).unwrap_or_default();
    assert!(
        left < Duration::from_secs(11),
        "not ready while {left:?} were left (min_remaining 10s)"
    );
    assert!(left > Duration::ZERO, "the credentials are still valid");
    assert_eq!(
        sidecar.credentials("a", Some(&sidecar.token())).0,
        200,
        "the last good credentials are still served"
    );
    assert_eq!(
        process_json(&sidecar.out, "a")["AccessKeyId"],
        first_key,
        "and still in the files"
    );
    let failures = status["roles"][0]["consecutive_failures"].as_u64().unwrap();
    assert!(failures >= 1);
    sidecar.wait_for("retries to go on", Duration::from_secs(5), || {
        let status = sidecar.status_report();
        status["roles"][0]["consecutive_failures"].as_u64().unwrap() > failures
    });

    proxy.set_rule(forward());
    sidecar.wait_readyz(200, Duration::from_secs(5));
    assert_ne!(
        process_json(&sidecar.out, "a")["AccessKeyId"],
        first_key,
        "recovery rotates them"
    );
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn a_slow_sts_times_out_without_a_pile_up_of_calls() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, always(|| Action::Slow(Duration::from_secs(5))));
    let sidecar = Sidecar::start(
        &sb,
        &proxy.url,
        &["a", "b"],
        "refresh:\n  timeout: 300ms\n  backoff_initial: 100ms\n  backoff_max: 500ms\n",
    );
    let reader = sidecar.reader(&["a", "b"]);
    sidecar.wait_for("timeouts", Duration::from_secs(20), || {
        sidecar.errors("a", "timeout") >= 3.0 && sidecar.errors("b", "timeout") >= 3.0
    });
    // One call per role, and one more for the moment between a client hanging up and the proxy
    // seeing it; a pile-up (5 s replies, a call every ~300 ms) would reach ten or more.
    assert!(
        proxy.max_in_flight() <= 3,
        "calls piled up: {} in flight for 2 roles",
        proxy.max_in_flight()
    );
    let status = sidecar.status_report();
    assert_eq!(status["roles"][0]["last_error"]["kind"], "timeout");
    assert_eq!(
        sidecar.get("/healthz").0,
        200,
        "a slow STS is not a wedged loop"
    );
    proxy.set_rule(forward());
    sidecar.wait_readyz(200, Duration::from_secs(5));
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn throttling_is_classified_and_backed_off() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, reply(400, "Throttling"));
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
    let reader = sidecar.reader(&["a"]);
    let window = Duration::from_secs(8);
    std::thread::sleep(window);
    // The proxy counts a call when it arrives, the sidecar when the answer is read.
    sidecar.wait_for(
        "every call counted once, as throttled",
        Duration::from_secs(5),
        || sidecar.errors("a", "throttled") == proxy.count() as f64,
    );
    assert_backoff(&proxy.arrivals(), Duration::from_secs(1), window);
    let report = reader.assert_clean();
    assert_eq!(report.served, 0, "nothing to serve while STS throttles");
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn sts_refusals_are_classified_logged_and_retried() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/a");
    for (status, code, kind) in [
        (403, "AccessDenied", "access_denied"),
        (403, "InvalidClientTokenId", "invalid_source_credentials"),
        (400, "ExpiredToken", "invalid_source_credentials"),
        (400, "ValidationError", "validation"),
    ] {
        let proxy = Proxy::start(moto.port, reply(status, code));
        let mut sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
        let reader = sidecar.reader(&["a"]);
        sidecar.wait_for(code, Duration::from_secs(10), || {
            sidecar.errors("a", kind) >= 2.0
        });
        reader.assert_clean();
        nothing_leaks(&sidecar, &proxy);
        let status = sidecar.status_report();
        assert_eq!(status["roles"][0]["last_error"]["kind"], kind);
        assert_eq!(status["roles"][0]["last_error"]["code"], code);
        let logs = sidecar.running.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("refresh failed"))
            .unwrap_or_else(|| panic!("no failure logged: {logs}"));
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["kind"], kind);
        assert_eq!(line["code"], code);
        assert_eq!(line["role_arn"], arn);
        if code == "AccessDenied" {
            assert!(
                line["error"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("the trust policy of {arn} trusts")),
                "{line}"
            );
        }
        sidecar.running.signal("TERM");
        assert_eq!(
            sidecar.running.wait(Duration::from_secs(10)).code(),
            Some(0)
        );
    }
}

#[test]
fn malformed_or_truncated_replies_are_classified_and_nothing_is_written() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, always(|| Action::Truncate));
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
    let reader = sidecar.reader(&["a"]);
    sidecar.wait_for("truncated replies", Duration::from_secs(10), || {
        sidecar.errors("a", "other") >= 2.0
    });
    proxy.set_rule(always(|| {
        Action::Reply(
            200,
            "<AssumeRoleResponse><AssumeRoleResult><Credentials>".into(),
        )
    }));
    let before = sidecar.errors("a", "other");
    sidecar.wait_for("malformed replies", Duration::from_secs(10), || {
        sidecar.errors("a", "other") >= before + 2.0
    });
    assert!(!sidecar.out.join("a.json").exists() && !sidecar.out.join("a.env").exists());
    assert_eq!(sidecar.get("/readyz").0, 503);
    reader.assert_clean();
    // The truncated replies held secrets: none of them may appear in an error or a log line.
    assert!(!proxy.secrets().is_empty());
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn a_full_or_read_only_disk_is_counted_keeps_the_old_files_and_recovers() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let disk = Tmpfs::mount(sb.path("out"), "size=256k,mode=0755");
    let proxy = Proxy::start(moto.port, forward());
    let sidecar = Sidecar::start(
        &sb,
        &proxy.url,
        &["a"],
        "refresh:\n  max_interval: 1s\n  backoff_initial: 100ms\n  backoff_max: 1s\n",
    );
    sidecar.wait_readyz(200, Duration::from_secs(10));
    let reader = sidecar.reader(&["a"]);
    let write_errors = || {
        sidecar.metric("rolerelay_output_write_errors_total{output=\"process_json\",role=\"a\"}")
    };

    // Fill the disk, and keep it full: a rename in flight can free a page after the filler
    // stopped.
    let filler = sidecar.out.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let mut fill = || while std::io::Write::write_all(&mut file, &[0u8; 4096]).is_ok() {};
    sidecar.wait_for(
        "failed writes on a full disk",
        Duration::from_secs(10),
        || {
            fill();
            write_errors() >= 1.0
        },
    );
    sidecar.wait_for("/readyz to say why", Duration::from_secs(10), || {
        fill();
        let (code, body) = sidecar.get("/readyz");
        code == 503 && body.contains("could not be written")
    });
    drop(file);
    assert_eq!(sidecar.get("/healthz").0, 200);
    assert!(
        process_json(&sidecar.out, "a")["AccessKeyId"].is_string(),
        "the old file is intact"
    );
    std::fs::remove_file(&filler).unwrap();
    sidecar.wait_readyz(200, Duration::from_secs(10));

    // A read-only output directory.
    disk.remount("ro");
    let before = write_errors();
    sidecar.wait_for(
        "failed writes on a read-only disk",
        Duration::from_secs(10),
        || write_errors() > before,
    );
    assert_eq!(sidecar.get("/readyz").0, 503);
    disk.remount("rw");
    sidecar.wait_readyz(200, Duration::from_secs(10));
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn deleted_or_replaced_output_files_are_rewritten() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, forward());
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "refresh:\n  max_interval: 1s\n");
    sidecar.wait_readyz(200, Duration::from_secs(10));
    let out = &sidecar.out;
    let token = sidecar.token();
    let replaced = sb.write("garbage", "garbage");
    // The reader starts once they are rewritten: the garbage is the test's own.
    for name in ["a.json", "credentials", "config", "token"] {
        std::fs::remove_file(out.join(name)).unwrap();
    }
    std::fs::rename(&replaced, out.join("a.env")).unwrap();
    sidecar.wait_for("the files to be rewritten", Duration::from_secs(10), || {
        ["a.json", "credentials", "config", "token"]
            .iter()
            .all(|name| out.join(name).exists())
            && std::fs::read_to_string(out.join("a.env"))
                .unwrap()
                .starts_with("AWS_ACCESS_KEY_ID=")
    });
    assert_eq!(sidecar.token(), token, "the same token comes back");
    let reader = sidecar.reader(&["a"]);
    std::thread::sleep(Duration::from_millis(1500));
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

/// Ten roles rewritten every second: plenty of writes in flight to interrupt.
const TEN: [&str; 10] = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"];

#[test]
fn kill_9_during_rewrites_leaves_only_complete_files_and_no_temporaries_after_restart() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, forward());
    let reader = Reader::start(sb.path("out"), &TEN, None);
    let extra = "refresh:\n  max_interval: 1s\n  jitter: 0.5\n";
    // Temporary names are random: what is there once a killed sidecar is gone is its own, and
    // must be gone after the restart; the running one may have some in flight.
    let temporaries = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".rolerelay-tmp-"))
            .collect()
    };
    let mut killed: Vec<String> = Vec::new();
    for round in 0..5 {
        let mut sidecar = Sidecar::start(&sb, &proxy.url, &TEN, extra);
        sidecar.wait_readyz(200, Duration::from_secs(20));
        let left: Vec<String> = temporaries(&sidecar.out)
            .into_iter()
            .filter(|name| killed.contains(name))
            .collect();
        assert!(
            left.is_empty(),
            "round {round}: temporary files survived a restart: {left:?}"
        );
        // The endpoint too, while this one lives; the files' reader goes on through the kill.
        let endpoint = sidecar.reader(&TEN);
        std::thread::sleep(Duration::from_millis(500 + fastrand::u64(0..1500)));
        endpoint.assert_clean();
        nothing_leaks(&sidecar, &proxy);
        sidecar.running.signal("KILL");
        sidecar.running.wait(Duration::from_secs(10));
        killed.extend(temporaries(&sidecar.out));
    }
    let report = reader.assert_clean();
    assert!(report.reads > 100);
}

#[test]
fn sigterm_during_rewrites_exits_0_with_complete_files() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, forward());
    let reader = Reader::start(sb.path("out"), &TEN, None);
    for _ in 0..3 {
        let mut sidecar = Sidecar::start(
            &sb,
            &proxy.url,
            &TEN,
            "refresh:\n  max_interval: 1s\n  jitter: 0.5\n",
        );
        sidecar.wait_readyz(200, Duration::from_secs(20));
        let endpoint = sidecar.reader(&TEN);
        std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..1200)));
        endpoint.assert_clean();
        sidecar.running.signal("TERM");
        let stopping = Instant::now();
        assert_eq!(
            sidecar.running.wait(Duration::from_secs(10)).code(),
            Some(0)
        );
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "took {:?} to stop",
            stopping.elapsed()
        );
        nothing_leaks(&sidecar, &proxy);
    }
    reader.assert_clean();
}

#[test]
fn an_invalid_reload_keeps_the_old_configuration_serving() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, forward());
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "refresh:\n  max_interval: 1s\n");
    sidecar.wait_readyz(200, Duration::from_secs(10));
    let reader = sidecar.reader(&["a"]);
    let good = std::fs::read_to_string(&sidecar.config).unwrap();
    std::fs::write(
        &sidecar.config,
        good.replace("max_interval: 1s", "max_interval: soon"),
    )
    .unwrap();
    sidecar.wait_for("the refused reload", Duration::from_secs(10), || {
        sidecar.metric("rolerelay_config_reloads_total{result=\"error\"}") >= 1.0
    });
    let key = process_json(&sidecar.out, "a")["AccessKeyId"].clone();
    sidecar.wait_for(
        "a refresh under the old configuration",
        Duration::from_secs(10),
        || process_json(&sidecar.out, "a")["AccessKeyId"] != key,
    );
    assert_eq!(sidecar.get("/readyz").0, 200);
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn the_endpoint_under_load_while_refreshing_never_errs_expires_or_mixes() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, forward());
    let sidecar = Sidecar::start(
        &sb,
        &proxy.url,
        &["a", "b"],
        "refresh:\n  max_interval: 1s\n",
    );
    sidecar.wait_readyz(200, Duration::from_secs(10));
    let reader = Reader::start(sidecar.out.clone(), &["a", "b"], None);
    let script = sb.write(
        "check.lua",
        LOAD_SCRIPT.replace("TOKEN", &sidecar.token()).as_str(),
    );
    let out = Command::new("wrk")
        .args(["-t2", "-c16", "-d5s", "--timeout", "2s", "-s"])
        .arg(&script)
        .arg(format!("{}/v1/credentials/a", sidecar.endpoint))
        .env("TZ", "UTC")
        .output()
        .expect("wrk must be on PATH (Debian package wrk; scripts/test-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "wrk: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("checked "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let numbers: Vec<u64> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [checked, bad_status, mixed, expired, generations] = numbers[..] else {
        panic!("{summary}")
    };
    assert!(checked > 1000, "{summary}");
    assert_eq!((bad_status, mixed, expired), (0, 0, 0), "{summary}");
    assert!(
        generations >= 3,
        "refreshes happened during the load: {summary}"
    );
    assert!(!text.contains("Socket errors"), "{text}");
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

/// wrk's script: send the token, and check each response's status, that a key id always comes
/// with the same secret, and that nothing served is expired.
const LOAD_SCRIPT: &str = r#"
wrk.headers["Authorization"] = "TOKEN"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) checked, bad, mixed, expired, seen, generations = 0, 0, 0, 0, {}, 0 end
function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 then bad = bad + 1 return end
  local key = body:match('"AccessKeyId":"([^"]+)"')
  local secret = body:match('"SecretAccessKey":"([^"]+)"')
  local y, mo, d, h, mi, s = body:match('"Expiration":"(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z"')
  if not key or not secret or not y then bad = bad + 1 return end
  if seen[key] == nil then seen[key] = secret generations = generations + 1
  elseif seen[key] ~= secret then mixed = mixed + 1 end
  if os.time({year=y, month=mo, day=d, hour=h, min=mi, sec=s}) <= os.time() then expired = expired + 1 end
end
function done(summary, latency, requests)
  local c, b, m, e, g = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("checked") b = b + t:get("bad") m = m + t:get("mixed")
    e = e + t:get("expired") g = g + t:get("generations")
  end
  print(string.format("checked %d bad_status %d mixed %d expired %d generations %d", c, b, m, e, g))
end
"#;

#[test]
fn expired_credentials_are_withdrawn_and_never_served() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    // The first reply expires in 3 s; after it STS fails.
    let first = Arc::new(AtomicBool::new(true));
    let proxy = Proxy::start(
        moto.port,
        Arc::new(move |_: &str| {
            if first.swap(false, Ordering::SeqCst) {
                Action::Rewrite(|body| expire_in(body, Duration::from_secs(3)))
            } else {
                Action::Reply(503, sts_error("ServiceUnavailable", "down for the test"))
            }
        }),
    );
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
    let reader = sidecar.reader(&["a"]);
    let out = &sidecar.out;
    sidecar.wait_for(
        "the short-lived credentials",
        Duration::from_secs(20),
        || out.join("a.json").exists(),
    );
    sidecar.wait_for("the files to be withdrawn", Duration::from_secs(20), || {
        !out.join("a.json").exists()
    });
    assert!(!out.join("a.env").exists());
    let ini = std::fs::read_to_string(out.join("credentials")).unwrap();
    assert!(!ini.contains("[a]"), "{ini}");
    let (code, body) = sidecar.get("/readyz");
    assert_eq!(code, 503);
    assert!(body.contains("expired"), "{body}");
    assert_eq!(
        sidecar.credentials("a", Some(&sidecar.token())).0,
        503,
        "expired credentials are never served"
    );
    let logs = sidecar.running.logs();
    assert_eq!(
        logs.matches("credentials expired before a refresh succeeded")
            .count(),
        1,
        "withdrawn once: {logs}"
    );
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn credentials_already_expired_when_sts_hands_them_out_are_never_written() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    // A clock an hour apart from STS's: every answer is already past.
    let proxy = Proxy::start(
        moto.port,
        always(|| Action::Rewrite(|body| expire_at(body, now() - Duration::from_secs(3600)))),
    );
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
    let reader = sidecar.reader(&["a"]);
    sidecar.wait_for("refused answers", Duration::from_secs(10), || {
        sidecar.errors("a", "other") >= 2.0
    });
    assert!(!sidecar.out.join("a.json").exists(), "nothing written");
    assert!(!sidecar.out.join("a.env").exists());
    assert_eq!(
        sidecar.credentials("a", Some(&sidecar.token())).0,
        503,
        "nothing served"
    );
    assert_eq!(sidecar.get("/readyz").0, 503);
    let status = sidecar.status_report();
    let message = status["roles"][0]["last_error"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("already past"), "{message}");
    reader.assert_clean();
    nothing_leaks(&sidecar, &proxy);
}

#[test]
fn a_failed_write_is_retried_without_calling_sts_again() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let proxy = Proxy::start(moto.port, forward());
    // A directory where a.env should go makes that one write fail.
    std::fs::create_dir_all(sb.path("out/a.env/blocker")).unwrap();
    let sidecar = Sidecar::start(&sb, &proxy.url, &["a"], "");
    let env_errors =
        || sidecar.metric("rolerelay_output_write_errors_total{output=\"env_file\",role=\"a\"}");
    sidecar.wait_for("failed writes", Duration::from_secs(20), || {
        env_errors() >= 3.0
    });
    let (code, body) = sidecar.get("/readyz");
    assert_eq!(code, 503);
    assert!(
        body.contains("the env_file output could not be written"),
        "{body}"
    );
    assert!(
        sidecar.out.join("a.json").exists(),
        "the other outputs are written"
    );
    assert_eq!(proxy.count(), 1, "retrying a write does not call STS");

    std::fs::remove_dir_all(sb.path("out/a.env")).unwrap();
    sidecar.wait_readyz(200, Duration::from_secs(10));
    assert!(std::fs::read_to_string(sb.path("out/a.env"))
        .unwrap()
        .starts_with("AWS_ACCESS_KEY_ID="));
    assert_eq!(proxy.count(), 1);
    nothing_leaks(&sidecar, &proxy);
}
