//! Black-box tests of live reconfiguration: a ConfigMap-style symlink swap, in-place edits,
//! editor renames, invalid files, settings that need a restart, and SIGHUP.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::proxy::{Action, Proxy};
use common::*;

/// STS calls per role name, seen by the proxy.
type Calls = Arc<Mutex<HashMap<String, usize>>>;

struct Setup {
    sb: Sandbox,
    _moto: Moto,
    proxy: Proxy,
    calls: Calls,
    status: String,
    endpoint: String,
    out: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let moto = Moto::start();
        let calls: Calls = Arc::default();
        let seen = calls.clone();
        let proxy = Proxy::start(
            moto.port,
            Arc::new(move |body: &str| {
                if let Some(role) = body.split('&').find_map(|p| p.strip_prefix("RoleArn=")) {
                    let name = role.rsplit("%2F").next().unwrap_or(role).to_string();
                    *seen.lock().unwrap().entry(name).or_default() += 1;
                }
                Action::Forward
            }),
        );
        let sb = Sandbox::new();
        let out = sb.path("out");
        Setup {
            sb,
            _moto: moto,
            proxy,
            calls,
            status: format!("http://127.0.0.1:{}", free_port()),
            endpoint: format!("http://127.0.0.1:{}", free_port()),
            out,
        }
    }

    /// A configuration with these roles (name, extra YAML lines) and extra top-level YAML.
    fn config(&self, roles: &[(&str, &str)], top: &str) -> String {
        let mut text = format!(
            "sts:\n  endpoint_url: {}\nserver:\n  listen: {}\ncredentials_endpoint:\n  listen: {}\noutputs:\n  directory: {}\n{top}roles:\n",
            self.proxy.url,
            self.status.trim_start_matches("http://"),
            self.endpoint.trim_start_matches("http://"),
            self.out.display()
        );
        for (name, extra) in roles {
            text.push_str(&format!(
                "  - name: {name}\n    role_arn: arn:aws:iam::111111111111:role/{name}\n{extra}"
            ));
        }
        text
    }

    fn start(&self, config_path: &Path) -> Running {
        let mut cmd = self.sb.rolerelay();
        cmd.args(["run", "--config"]).arg(config_path);
        let running = Running::start(cmd, self.sb.path("run.log"));
        running.wait_for("the status server", Duration::from_secs(20), || {
            try_http_get(&format!("{}/healthz", self.status), &[]).is_ok()
        });
        running
    }

    fn calls(&self, role: &str) -> usize {
        self.calls.lock().unwrap().get(role).copied().unwrap_or(0)
    }

    fn key_id(&self, role: &str) -> String {
        process_json(&self.out, role)["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The endpoint's status code for a role.
    fn served(&self, role: &str) -> u16 {
        let token = std::fs::read_to_string(self.out.join("token")).unwrap();
        http_get(
            &format!("{}/v1/credentials/{role}", self.endpoint),
            &[("Authorization", &token)],
        )
        .0
    }

    fn metrics(&self) -> String {
        http_get(&format!("{}/metrics", self.status), &[]).1
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&http_get(&format!("{}/status", self.status), &[]).1).unwrap()
    }

    fn reloads(&self, result: &str) -> f64 {
        metric(
            &self.metrics(),
            &format!("rolerelay_config_reloads_total{{result=\"{result}\"}}"),
        )
        .unwrap()
    }

    /// Starts rolerelay with `link`, made a symbolic link to `target`; then `change` adds RoleB
    /// behind the link, and RoleB's credentials must appear: the change was seen. Returns the
    /// running rolerelay.
    fn reloads_through(
        &self,
        link: &str,
        target: &Path,
        what: &str,
        change: impl FnOnce(),
    ) -> Running {
        let link = self.sb.path(link);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(target, &link).unwrap();
        let running = self.start(&link);
        self.wait_ready();
        change();
        wait_for(
            &format!("RoleB after {what}"),
            Duration::from_secs(10),
            || self.out.join("RoleB.json").exists(),
        );
        running
    }

    fn wait_ready(&self) {
        wait_for("readiness", Duration::from_secs(20), || {
            http_get(&format!("{}/readyz", self.status), &[]).0 == 200
        });
    }
}

/// A directory laid out the way the kubelet mounts a ConfigMap.
struct ConfigMapDir {
    dir: PathBuf,
    generation: u32,
}

impl ConfigMapDir {
    fn new(dir: PathBuf, text: &str) -> ConfigMapDir {
        std::fs::create_dir_all(&dir).unwrap();
        let mut cm = ConfigMapDir { dir, generation: 0 };
        cm.update(text);
        symlink("..data/config.yaml", cm.dir.join("config.yaml")).unwrap();
        cm
    }

    fn path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    /// A new timestamped directory, then an atomic swap of `..data`, then the old one removed.
    fn update(&mut self, text: &str) {
        self.generation += 1;
        let name = format!(
            "..2026_11_28_10_00_{:02}.{}",
            self.generation,
            100 + self.generation
        );
        std::fs::create_dir(self.dir.join(&name)).unwrap();
        std::fs::write(self.dir.join(&name).join("config.yaml"), text).unwrap();
        let tmp = self.dir.join("..data_tmp");
        symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.generation > 1 {
            let old = format!(
                "..2026_11_28_10_00_{:02}.{}",
                self.generation - 1,
                99 + self.generation
            );
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

#[test]
fn a_configmap_update_adds_and_removes_roles_and_an_invalid_one_changes_nothing() {
    let s = Setup::new();
    let mut cm = ConfigMapDir::new(s.sb.path("configmap"), &s.config(&[("RoleA", "")], ""));
    let running = s.start(&cm.path());
    s.wait_ready();
    let a_key = s.key_id("RoleA");
    assert_eq!(s.calls("RoleA"), 1);

    // Add a role.
    cm.update(&s.config(&[("RoleA", ""), ("RoleB", "")], ""));
    wait_for("RoleB's credentials", Duration::from_secs(10), || {
        s.out.join("RoleB.json").exists()
    });
    s.wait_ready();
    let config_file = s.out.join("config");
    let env = [
        ("AWS_CONFIG_FILE", config_file.to_str().unwrap()),
        ("AWS_PROFILE", "RoleB"),
    ];
    let arn = s.sb.caller_arn(&s._moto, &[], &env);
    assert!(
        arn.starts_with("arn:aws:sts::111111111111:assumed-role/RoleB/"),
        "{arn}"
    );
    assert_eq!(
        s.key_id("RoleA"),
        a_key,
        "an unchanged role keeps its credentials"
    );
    assert_eq!(s.calls("RoleA"), 1, "and is not assumed again");
    assert_eq!(s.served("RoleB"), 200, "the endpoint serves the new role");
    assert!(
        s.metrics().contains("rolerelay_ready{role=\"RoleB\"} 1"),
        "and /metrics shows it"
    );
    let status = s.status();
    assert!(status["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "RoleB"));
    wait_for("the reload to be counted", Duration::from_secs(10), || {
        s.reloads("success") == 1.0
    });

    // An invalid update changes nothing.
    cm.update(&s.config(&[("RoleA", ""), ("RoleB", "    duraton: 1h\n")], ""));
    wait_for("the refused reload", Duration::from_secs(10), || {
        s.reloads("error") >= 1.0
    });
    let status = s.status();
    let error = status["last_reload"]["error"].as_str().unwrap();
    assert!(
        error.contains("roles[1].duraton") && error.contains("config.yaml:"),
        "{error}"
    );
    assert_eq!(status["roles"].as_array().unwrap().len(), 2);
    assert_eq!(http_get(&format!("{}/readyz", s.status), &[]).0, 200);
    assert!(running.logs().contains("configuration reload refused"));

    // Remove a role: its files go, and so do its sections and metrics.
    cm.update(&s.config(&[("RoleB", "")], ""));
    wait_for("RoleA's files to go", Duration::from_secs(10), || {
        !s.out.join("RoleA.json").exists()
    });
    assert!(!s.out.join("RoleA.env").exists());
    let ini = std::fs::read_to_string(s.out.join("credentials")).unwrap();
    assert!(!ini.contains("[RoleA]") && ini.contains("[RoleB]"), "{ini}");
    assert!(!std::fs::read_to_string(&config_file)
        .unwrap()
        .contains("RoleA"));
    assert!(!s.metrics().contains("role=\"RoleA\""));
    assert_eq!(s.served("RoleA"), 404, "the endpoint no longer knows it");
    assert_eq!(s.status()["roles"][0]["name"], "RoleB");
    wait_for("the reload to finish", Duration::from_secs(10), || {
        s.status()["last_reload"]["result"] == "success"
    });
    assert_no_secrets(&running.logs(), &secrets_in(&s.out));
}

#[test]
fn in_place_edits_and_editor_renames_reload_and_a_changed_role_is_assumed_again() {
    let s = Setup::new();
    let path =
        s.sb.write("plain/config.yaml", &s.config(&[("RoleA", "")], ""));
    let _running = s.start(&path);
    s.wait_ready();
    let a_key = s.key_id("RoleA");

    // In place: truncate and write.
    std::fs::write(&path, s.config(&[("RoleA", ""), ("RoleB", "")], "")).unwrap();
    wait_for(
        "RoleB after an in-place edit",
        Duration::from_secs(10),
        || s.out.join("RoleB.json").exists(),
    );

    // An editor's save: a new file renamed over the old one. RoleA's external id changes.
    let swap = s.sb.write(
        "plain/.config.yaml.swp",
        &s.config(
            &[("RoleA", "    external_id: new-id-1\n"), ("RoleB", "")],
            "",
        ),
    );
    std::fs::rename(swap, &path).unwrap();
    wait_for("RoleA to be assumed again", Duration::from_secs(10), || {
        s.calls("RoleA") == 2
    });
    wait_for("RoleA's new credentials", Duration::from_secs(10), || {
        s.out.join("RoleA.json").exists() && s.key_id("RoleA") != a_key
    });
    assert_eq!(s.calls("RoleB"), 1, "RoleB did not change");
    s.wait_ready();
}

#[test]
fn a_change_behind_a_linked_configuration_file_reloads() {
    let one = |s: &Setup| s.config(&[("RoleA", "")], "");
    let two = |s: &Setup| s.config(&[("RoleA", ""), ("RoleB", "")], "");

    // etc/config.yaml -> a file in another directory, edited in place.
    let s = Setup::new();
    let real = s.sb.write("elsewhere/config.yaml", &one(&s));
    s.reloads_through(
        "etc/config.yaml",
        &real,
        "an edit of the link's target",
        || std::fs::write(&real, two(&s)).unwrap(),
    );

    // etc/config.yaml -> etc/config.v3.yaml, a sibling.
    let s = Setup::new();
    let real = s.sb.write("etc/config.v3.yaml", &one(&s));
    s.reloads_through("etc/config.yaml", &real, "an edit of the sibling", || {
        std::fs::write(&real, two(&s)).unwrap()
    });

    // etc/rolerelay.yaml -> a ConfigMap mount's config.yaml, updated by the kubelet.
    let s = Setup::new();
    let mut cm = ConfigMapDir::new(s.sb.path("configmap"), &one(&s));
    let target = cm.path();
    s.reloads_through("etc/rolerelay.yaml", &target, "a ConfigMap update", || {
        cm.update(&two(&s))
    });

    // The link re-pointed to a file elsewhere: that file's later edits reload too.
    let s = Setup::new();
    let first = s.sb.write("v1/config.yaml", &one(&s));
    let second = s.sb.write("v2/config.yaml", &two(&s));
    let _running = s.reloads_through("etc/config.yaml", &first, "the link re-pointed", || {
        let next = s.sb.path("etc/.config.yaml.next");
        symlink(&second, &next).unwrap();
        std::fs::rename(&next, s.sb.path("etc/config.yaml")).unwrap();
    });
    let three = s.config(&[("RoleA", ""), ("RoleB", ""), ("RoleC", "")], "");
    std::fs::write(&second, three).unwrap();
    wait_for(
        "RoleC after an edit of the new target",
        Duration::from_secs(10),
        || s.out.join("RoleC.json").exists(),
    );
}

#[test]
fn settings_that_need_a_restart_are_reported_and_sighup_reloads() {
    let s = Setup::new();
    let path = s.sb.write("c.yaml", &s.config(&[("RoleA", "")], ""));
    let running = s.start(&path);
    s.wait_ready();

    running.signal("HUP");
    wait_for("the SIGHUP reload", Duration::from_secs(10), || {
        s.reloads("success") == 1.0
    });
    assert_eq!(s.calls("RoleA"), 1, "nothing changed, nothing assumed");

    // A new listen address and output directory need a restart; the new role applies now.
    let text = s
        .config(&[("RoleA", ""), ("RoleB", "")], "")
        .replace(&s.status[7..], "127.0.0.1:1")
        .replace(
            &format!("directory: {}", s.out.display()),
            &format!("directory: {}", s.sb.path("elsewhere").display()),
        );
    std::fs::write(&path, text).unwrap();
    wait_for("RoleB", Duration::from_secs(10), || {
        s.out.join("RoleB.json").exists()
    });
    let status = s.status();
    let restart: Vec<&str> = status["last_reload"]["restart_needed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(restart, ["server.listen", "outputs.directory"]);
    assert!(!s.sb.path("elsewhere").exists());
    assert!(running.logs().contains("apply only after a restart"));
}

#[test]
fn an_sts_change_re_assumes_every_role_without_dropping_what_they_serve() {
    let s = Setup::new();
    let path = s.sb.write("c.yaml", &s.config(&[("RoleA", "")], ""));
    let _running = s.start(&path);
    s.wait_ready();
    let key = s.key_id("RoleA");
    let moved = s
        .config(&[("RoleA", "")], "")
        .replacen("sts:\n", "sts:\n  region: eu-west-1\n", 1);
    std::fs::write(&path, moved).unwrap();
    // Until the new credentials arrive, the old ones stay in place: the file never goes away.
    let start = std::time::Instant::now();
    while s.calls("RoleA") < 2 || !s.out.join("RoleA.json").exists() || s.key_id("RoleA") == key {
        assert!(
            s.out.join("RoleA.json").exists(),
            "RoleA.json went away during the reload"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "RoleA was not assumed again"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.status()["last_reload"]["result"], "success");
    assert!(std::fs::read_to_string(s.out.join("config"))
        .unwrap()
        .contains("region = eu-west-1"));
}
