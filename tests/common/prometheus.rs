//! A real Prometheus server (Debian's `prometheus`) on a free loopback port, set up from the
//! shipped files: it scrapes a sidecar as the PodMonitor and the pod's `prometheus.io/*`
//! annotations say, and evaluates the PrometheusRule's alerts, each `for:` cut from minutes to
//! seconds so that a test sees them go pending and fire.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{free_port, try_http_get, Running, Sandbox};

/// The repository's root, for the shipped files.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A shipped YAML file, parsed.
fn shipped_yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The shipped Grafana dashboard, parsed.
pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/grafana/rolerelay.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What Prometheus puts on the sidecar's series when it scrapes the shipped pod: the job the
/// Prometheus Operator names after the PodMonitor (`<namespace>/<name>`), the path and port both
/// the PodMonitor and the annotations give, and the target labels the Operator adds.
pub struct Scrape {
    /// The `job` label.
    pub job: String,
    /// The metrics path.
    pub path: String,
    /// The `namespace`, `pod`, `container` and `endpoint` labels.
    pub labels: Vec<(String, String)>,
}

/// The scrape of the shipped pod. Panics if the PodMonitor and the annotations disagree on the
/// path or the port: a plain Prometheus and the Operator would then scrape different things.
pub fn shipped_scrape() -> Scrape {
    let monitor = shipped_yaml("deploy/kubernetes/monitoring/podmonitor.yaml");
    let deployment = shipped_yaml("deploy/kubernetes/deployment.yaml");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    let (port_name, path) = (str_at(endpoint, "port"), str_at(endpoint, "path"));
    let template = &deployment["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(str_at(annotations, "prometheus.io/scrape"), "true");
    assert_eq!(
        str_at(annotations, "prometheus.io/path"),
        path,
        "the pod's annotations and the PodMonitor scrape different paths"
    );
    let spec = &template["spec"];
    let containers = [&spec["initContainers"], &spec["containers"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten();
    let (container, port) = containers
        .flat_map(|c| {
            let ports = c["ports"].as_array().cloned().unwrap_or_default();
            ports.into_iter().map(move |p| (c.clone(), p))
        })
        .find(|(_, p)| p["name"] == port_name)
        .unwrap_or_else(|| panic!("no container port named {port_name}"));
    assert_eq!(
        str_at(annotations, "prometheus.io/port"),
        port["containerPort"].to_string(),
        "the pod's annotations and the PodMonitor scrape different ports"
    );
    let namespace = str_at(&monitor["metadata"], "namespace");
    Scrape {
        job: format!("{namespace}/{}", str_at(&monitor["metadata"], "name")),
        path: path.to_string(),
        labels: vec![
            ("namespace".into(), namespace.to_string()),
            ("pod".into(), "example-app-7d9f8b6c5-x2x4q".into()),
            ("container".into(), str_at(&container, "name").to_string()),
            ("endpoint".into(), port_name.to_string()),
        ],
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

/// The shipped PrometheusRule's groups as a Prometheus rule file (JSON is YAML), every `for:`
/// of minutes made as many seconds.
pub fn shipped_rules_fast() -> String {
    let rule = shipped_yaml("deploy/kubernetes/monitoring/prometheusrule.yaml");
    let mut groups = rule["spec"]["groups"].clone();
    for group in groups.as_array_mut().unwrap() {
        for rule in group["rules"].as_array_mut().unwrap() {
            if let Some(wait) = rule.get("for").and_then(Value::as_str) {
                let minutes = wait
                    .strip_suffix('m')
                    .unwrap_or_else(|| panic!("a `for:` in minutes, not {wait:?}"));
                rule["for"] = Value::from(format!("{minutes}s"));
            }
        }
    }
    serde_json::json!({ "groups": groups }).to_string()
}

/// A running Prometheus, killed when dropped.
pub struct Prometheus {
    _running: Running,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Prometheus {
    /// Starts Prometheus in `sb`, scraping `target` (`host:port`) every second as `scrape`
    /// describes and evaluating `rules` every second; waits until it is ready.
    pub fn start(sb: &Sandbox, scrape: &Scrape, target: &str, rules: &str) -> Prometheus {
        let rules_file = sb.write("prometheus/rules.json", rules);
        let labels: serde_json::Map<String, Value> = scrape
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let config = serde_json::json!({
            "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
            "rule_files": [rules_file],
            "scrape_configs": [{
                "job_name": scrape.job,
                "metrics_path": scrape.path,
                "static_configs": [{ "targets": [target], "labels": labels }],
            }],
        });
        let config_file = sb.write("prometheus/prometheus.yml", &config.to_string());
        let port = free_port();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                sb.path("prometheus/data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        assert_installed(&mut cmd);
        let running = Running::start(cmd, sb.path("prometheus/prometheus.log"));
        let url = format!("http://127.0.0.1:{port}");
        running.wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            try_http_get(&format!("{url}/-/ready"), &[]).is_ok_and(|(code, _)| code == 200)
        });
        Prometheus {
            _running: running,
            url,
        }
    }

    /// An instant query: the result vector, or Prometheus's error (a query that does not parse).
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.url, encode(promql));
        let (code, body) = try_http_get(&url, &[]).map_err(|e| e.to_string())?;
        let answer: Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {code}: {e}: {body}"))?;
        match answer["status"].as_str() {
            Some("success") => Ok(answer["data"]["result"].as_array().cloned().unwrap()),
            _ => Err(format!("{promql}: {}", answer["error"])),
        }
    }

    /// The value of the first sample an instant query returns, if any.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).unwrap();
        let value = result.first()?["value"][1].as_str()?.to_string();
        value.parse().ok()
    }

    /// The active alerts (pending or firing): `(alertname, state, labels)`.
    pub fn alerts(&self) -> Vec<(String, String, Value)> {
        let (_, body) = try_http_get(&format!("{}/api/v1/alerts", self.url), &[]).unwrap();
        let answer: Value = serde_json::from_str(&body).unwrap();
        answer["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let labels = a["labels"].clone();
                let name = labels["alertname"].as_str().unwrap_or_default().to_string();
                (name, a["state"].as_str().unwrap().to_string(), labels)
            })
            .collect()
    }

    /// When the rule groups were last evaluated: it changes at each evaluation.
    pub fn last_evaluation(&self) -> String {
        let (_, body) = try_http_get(&format!("{}/api/v1/rules", self.url), &[]).unwrap();
        let answer: Value = serde_json::from_str(&body).unwrap();
        let groups = answer["data"]["groups"].as_array().unwrap();
        groups
            .iter()
            .map(|g| g["lastEvaluation"].to_string())
            .collect()
    }

    /// The state of `alert` for `role` (every role when `None`): pending, firing, or `None`.
    pub fn alert_state(&self, alert: &str, role: Option<&str>) -> Option<String> {
        self.alerts()
            .into_iter()
            .find(|(name, _, labels)| {
                name == alert && role.is_none_or(|r| labels["role"].as_str() == Some(r))
            })
            .map(|(_, state, _)| state)
    }
}

/// Panics with how to install Prometheus when it is not on PATH.
fn assert_installed(cmd: &mut Command) {
    let probe = Command::new(cmd.get_program()).arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "prometheus must be on PATH (Debian's `prometheus` package; scripts/test-deps --system installs it)"
    );
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every query of a dashboard.
pub struct DashboardQueries {
    /// Each variable's name and query (`label_values(selector, label)`), in order.
    pub variables: Vec<(String, String)>,
    /// Each panel query's panel title and expression.
    pub panels: Vec<(String, String)>,
}

/// Every query of the dashboard `model`.
pub fn dashboard_queries(model: &Value) -> DashboardQueries {
    let variables = model["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            (
                str_at(v, "name").to_string(),
                str_at(v, "query").to_string(),
            )
        })
        .collect();
    let panels = model["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = str_at(p, "title").to_string();
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            targets
                .into_iter()
                .map(move |t| (title.clone(), str_at(&t, "expr").to_string()))
        })
        .collect();
    DashboardQueries { variables, panels }
}

/// `label_values(selector, label)` as PromQL that returns one series per value of `label`.
pub fn label_values_query(query: &str) -> (String, String) {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values() query: {query}"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    let label = label.trim().to_string();
    (format!("count by ({label}) ({selector})"), label)
}

/// `text` with each `$name` of `values` replaced, longest names first (`$pod` before `$p`), and
/// Grafana's `$__rate_interval` made `rate_interval`.
pub fn substitute(text: &str, values: &[(String, String)], rate_interval: &str) -> String {
    let mut text = text.replace("$__rate_interval", rate_interval);
    let mut values = values.to_vec();
    values.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in values {
        text = text.replace(&format!("${name}"), &value);
    }
    assert!(!text.contains('$'), "a variable left in {text}");
    text
}
