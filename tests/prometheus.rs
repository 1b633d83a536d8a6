//! A live Prometheus scrapes a running sidecar as the shipped PodMonitor and pod annotations say,
//! evaluates the shipped alerts (their `for:` in seconds instead of minutes), and runs every query
//! of the shipped Grafana dashboard. STS breaks and comes back, an output fails to write, a reload
//! removes a role, the sidecar dies: each shows in Prometheus as the alerts and panels promise.

mod common;

use std::time::Duration;

use common::prometheus::{
    dashboard, dashboard_queries, label_values_query, shipped_rules_fast, shipped_scrape,
    substitute, DashboardQueries, Prometheus, Scrape,
};
use common::proxy::{always, forward, sts_error, Action, Proxy};
use common::sidecar::{Plan, Sidecar};
use common::{Moto, Sandbox};

/// Long enough for several scrapes and rule evaluations (each every second) on a busy machine.
const LIMIT: Duration = Duration::from_secs(60);

/// The role duration asked for, in seconds.
const DURATION: f64 = 900.0;

/// Grafana's `$__rate_interval` for a one-second scrape: several scrapes wide.
const RATE_INTERVAL: &str = "10s";

/// The sidecar's configuration: roles `keep` and `gone` refreshed every second, both opened to
/// the client `app`, or only `keep` once `gone` is removed.
fn config(plan: &Plan, roles: &[&str]) -> String {
    let with_duration: Vec<(&str, &str)> =
        roles.iter().map(|r| (*r, "    duration: 15m\n")).collect();
    let clients = format!(
        "refresh:\n  max_interval: 1s\n  backoff_initial: 100ms\n  backoff_max: 1s\n\
         clients:\n  - name: app\n    roles: [{}]\n",
        roles.join(", ")
    );
    plan.config_with(&with_duration, &clients)
}

#[test]
fn prometheus_scrapes_the_sidecar_fires_the_shipped_alerts_and_runs_every_dashboard_query() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port, forward());
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &proxy.url);
    let config = sb.write("config.yaml", &config(&plan, &["keep", "gone"]));
    let token_path = plan.out().join("app/token");
    let mut sidecar = plan.start_waiting_for(&config, &[], &[], &token_path);
    sidecar.wait_readyz(200, LIMIT);
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert_eq!(sidecar.credentials("keep", Some(&token)).0, 200);

    let scrape = shipped_scrape();
    let target = sidecar.status.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(&sb, &scrape, &target, &shipped_rules_fast());

    healthy(&sidecar, &prometheus, &scrape);
    let queries = Queries::of_the_dashboard(&prometheus, &scrape);
    queries.run(&prometheus, |title| !is_error_panel(title));

    sts_breaks_and_comes_back(&sidecar, &prometheus, &proxy);
    an_output_fails_to_write(&sidecar, &prometheus);
    // Every panel, the error panels too, now has something to show.
    queries.run(&prometheus, |_| true);

    a_reload_removes_a_role(&sidecar, &prometheus, &plan);

    // The sidecar dies: only `up` tells.
    sidecar.running.signal("KILL");
    let _ = sidecar.running.wait(LIMIT);
    goes_pending_then_fires(&prometheus, "RolerelayDown", &[]);
    let (_, _, labels) = prometheus
        .alerts()
        .into_iter()
        .find(|(name, state, _)| name == "RolerelayDown" && state == "firing")
        .unwrap();
    assert_eq!(labels["job"], scrape.job.as_str());
    assert_eq!(labels["pod"], scrape.labels[1].1.as_str());
}

/// Prometheus sees the target up, every role ready, credentials that expire within the role's
/// duration, and no alert.
fn healthy(sidecar: &Sidecar, prometheus: &Prometheus, scrape: &Scrape) {
    let up = format!("up{{job=\"{}\"}}", scrape.job);
    sidecar.wait_for("Prometheus to scrape the sidecar", LIMIT, || {
        prometheus.value(&up) == Some(1.0)
    });
    for role in ["keep", "gone"] {
        sidecar.wait_for(
            &format!("rolerelay_ready of {role} in Prometheus"),
            LIMIT,
            || prometheus.value(&format!("rolerelay_ready{{role=\"{role}\"}}")) == Some(1.0),
        );
        let left = prometheus
            .value(&format!(
                "rolerelay_credentials_expiry_timestamp_seconds{{role=\"{role}\"}} - time()"
            ))
            .unwrap();
        assert!(
            left > 0.0 && left <= DURATION,
            "{role}'s credentials expire in {left} s, not within the {DURATION} s asked for"
        );
        // The series carry the labels the PodMonitor's target gives them.
        let series = prometheus
            .query(&format!("rolerelay_ready{{role=\"{role}\"}}"))
            .unwrap();
        for (name, value) in &scrape.labels {
            assert_eq!(series[0]["metric"][name], value.as_str(), "label {name}");
        }
    }
    assert_eq!(prometheus.alerts(), vec![], "no alert while all is well");
}

/// The panels whose series exist only once something failed.
fn is_error_panel(title: &str) -> bool {
    title.to_lowercase().contains("error")
}

/// The dashboard's queries with its variables' values: what Grafana would send with every value
/// of every variable selected.
struct Queries {
    panels: Vec<(String, String)>,
}

impl Queries {
    /// Runs each variable's query (each must find a value), then substitutes the values found.
    fn of_the_dashboard(prometheus: &Prometheus, scrape: &Scrape) -> Queries {
        let DashboardQueries { variables, panels } = dashboard_queries(&dashboard());
        assert!(
            panels.len() >= 12,
            "the dashboard has its panels: {panels:?}"
        );
        let mut values: Vec<(String, String)> = Vec::new();
        for (name, query) in variables {
            let (promql, label) = label_values_query(&substitute(&query, &values, RATE_INTERVAL));
            let found: Vec<String> = prometheus
                .query(&promql)
                .unwrap()
                .iter()
                .filter_map(|s| s["metric"][&label].as_str().map(str::to_string))
                .collect();
            assert!(
                !found.is_empty(),
                "variable {name} ({query}) found no value"
            );
            values.push((name, format!("({})", found.join("|"))));
        }
        let job = &values.iter().find(|(n, _)| n == "job").unwrap().1;
        assert_eq!(job, &format!("({})", scrape.job), "the job variable");
        let panels = panels
            .into_iter()
            .map(|(title, expr)| (title, substitute(&expr, &values, RATE_INTERVAL)))
            .collect();
        Queries { panels }
    }

    /// Runs every panel's query: each must parse, and those `with_data` picks must return data
    /// (waiting for it: a rate needs two scrapes of a series).
    fn run(&self, prometheus: &Prometheus, with_data: impl Fn(&str) -> bool) {
        for (title, expr) in &self.panels {
            let parsed = prometheus.query(expr);
            assert!(parsed.is_ok(), "panel {title:?}: {}", parsed.unwrap_err());
            if with_data(title) {
                common::wait_for(&format!("data for panel {title:?}: {expr}"), LIMIT, || {
                    !prometheus.query(expr).unwrap().is_empty()
                });
            }
        }
    }
}

/// STS answers AccessDenied: the refresh-failing alert goes pending, then fires, for each role;
/// STS comes back: it resolves.
fn sts_breaks_and_comes_back(sidecar: &Sidecar, prometheus: &Prometheus, proxy: &Proxy) {
    proxy.set_rule(always(|| {
        Action::Reply(
            403,
            sts_error("AccessDenied", "not authorized to perform sts:AssumeRole"),
        )
    }));
    goes_pending_then_fires(prometheus, "RolerelayRefreshFailing", &["keep", "gone"]);
    sidecar.wait_for("refresh errors by kind in Prometheus", LIMIT, || {
        prometheus
            .value("rolerelay_refresh_errors_total{role=\"keep\", kind=\"access_denied\"}")
            .is_some_and(|v| v > 0.0)
    });
    proxy.set_rule(forward());
    sidecar.wait_for("RolerelayRefreshFailing to resolve", LIMIT, || {
        prometheus
            .alert_state("RolerelayRefreshFailing", None)
            .is_none()
    });
}

/// A directory where `keep.env` goes: its writes fail, the role is not ready, the alert goes
/// pending; the directory goes: the role is ready again.
fn an_output_fails_to_write(sidecar: &Sidecar, prometheus: &Prometheus) {
    let env_file = sidecar.out.join("app/keep.env");
    std::fs::remove_file(&env_file).unwrap();
    std::fs::create_dir_all(env_file.join("in-the-way")).unwrap();
    sidecar.wait_for("write errors in Prometheus", LIMIT, || {
        prometheus
            .value("rolerelay_output_write_errors_total{role=\"keep\", output=\"env_file\"}")
            .is_some_and(|v| v > 0.0)
    });
    sidecar.wait_for("RolerelayNotReady pending for keep", LIMIT, || {
        prometheus
            .alert_state("RolerelayNotReady", Some("keep"))
            .is_some()
    });
    std::fs::remove_dir_all(&env_file).unwrap();
    sidecar.wait_for("keep ready again in Prometheus", LIMIT, || {
        prometheus.value("rolerelay_ready{role=\"keep\"}") == Some(1.0)
    });
    sidecar.wait_for("RolerelayNotReady to resolve", LIMIT, || {
        prometheus.alert_state("RolerelayNotReady", None).is_none()
    });
}

/// A reload removes `gone`: its series go stale in Prometheus, and no alert fires for it.
fn a_reload_removes_a_role(sidecar: &Sidecar, prometheus: &Prometheus, plan: &Plan) {
    std::fs::write(&sidecar.config, config(plan, &["keep"])).unwrap();
    sidecar.wait_for("the reload", LIMIT, || sidecar.reloads("success") >= 1.0);
    sidecar.wait_for("gone's series to go from Prometheus", LIMIT, || {
        prometheus
            .query("{__name__=~\"rolerelay_.+\", role=\"gone\"}")
            .unwrap()
            .is_empty()
    });
    assert_eq!(
        prometheus.value("rolerelay_ready{role=\"keep\"}"),
        Some(1.0),
        "the kept role stays"
    );
    // Several rule evaluations later, still no alert for it (nor any other).
    let mut seen = vec![prometheus.last_evaluation()];
    common::wait_for("five more rule evaluations", LIMIT, || {
        let last = prometheus.last_evaluation();
        if !seen.contains(&last) {
            seen.push(last);
        }
        seen.len() > 5
    });
    assert_eq!(prometheus.alerts(), vec![], "no alert after the removal");
}

/// Waits until `alert` is pending for each of `roles` (for the alert as a whole when there are
/// none), then until it fires for each.
fn goes_pending_then_fires(prometheus: &Prometheus, alert: &str, roles: &[&str]) {
    let roles: Vec<Option<&str>> = match roles {
        [] => vec![None],
        roles => roles.iter().copied().map(Some).collect(),
    };
    // Pending for every role, each seen at least once: the roles may go pending together.
    let mut seen = vec![false; roles.len()];
    common::wait_for(&format!("{alert} pending for {roles:?}"), LIMIT, || {
        for (role, seen) in roles.iter().zip(seen.iter_mut()) {
            *seen |= prometheus.alert_state(alert, *role).as_deref() == Some("pending");
        }
        seen.iter().all(|s| *s)
    });
    common::wait_for(&format!("{alert} firing for {roles:?}"), LIMIT, || {
        roles
            .iter()
            .all(|role| prometheus.alert_state(alert, *role).as_deref() == Some("firing"))
    });
}
