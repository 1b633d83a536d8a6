//! Black-box tests of live reconfiguration: a ConfigMap-style symlink swap, in-place edits,
//! editor renames, invalid files, settings that need a restart, and SIGHUP.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::proxy::{forward, Proxy};
use common::sidecar::{Plan, Sidecar};
use common::*;

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

/// Starts a sidecar with the link `link`, made a symbolic link to `target`; then `change` adds
/// RoleB behind the link, and RoleB's credentials must appear: the change was seen.
fn reloads_through(
    plan: &Plan,
    sb: &Sandbox,
    link: &str,
    target: &Path,
    what: &str,
    change: impl FnOnce(),
) -> Sidecar {
    let link = sb.path(link);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(target, &link).unwrap();
    let s = plan.start(&link);
    s.wait_readyz(200, Duration::from_secs(20));
    change();
    s.wait_for(
        &format!("RoleB after {what}"),
        Duration::from_secs(10),
        || s.out.join("RoleB.json").exists(),
    );
    s
}

#[test]
fn a_configmap_update_adds_and_removes_roles_and_an_invalid_one_changes_nothing() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port, forward());
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &proxy.url);
    let mut cm = ConfigMapDir::new(sb.path("configmap"), &plan.config(&["RoleA"], ""));
    let s = plan.start(&cm.path());
    s.wait_readyz(200, Duration::from_secs(20));
    let a_key = s.key_id("RoleA");
    assert_eq!(proxy.calls_of("RoleA"), 1);

    // Add a role.
    cm.update(&plan.config(&["RoleA", "RoleB"], ""));
    s.wait_for("RoleB's credentials", Duration::from_secs(10), || {
        s.out.join("RoleB.json").exists()
    });
    s.wait_readyz(200, Duration::from_secs(20));
    let config_file = s.out.join("config");
    let env = [
        ("AWS_CONFIG_FILE", config_file.to_str().unwrap()),
        ("AWS_PROFILE", "RoleB"),
    ];
    let arn = sb.caller_arn(&moto, &[], &env);
    assert!(
        arn.starts_with("arn:aws:sts::111111111111:assumed-role/RoleB/"),
        "{arn}"
    );
    assert_eq!(
        s.key_id("RoleA"),
        a_key,
        "an unchanged role keeps its credentials"
    );
    assert_eq!(proxy.calls_of("RoleA"), 1, "and is not assumed again");
    assert_eq!(
        s.credentials("RoleB", Some(&s.token())).0,
        200,
        "the endpoint serves the new role"
    );
    assert!(
        s.get("/metrics")
            .1
            .contains("rolerelay_ready{role=\"RoleB\"} 1"),
        "and /metrics shows it"
    );
    let status = s.status_report();
    assert!(status["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "RoleB"));
    s.wait_for("the reload to be counted", Duration::from_secs(10), || {
        s.reloads("success") == 1.0
    });

    // An invalid update changes nothing.
    cm.update(&plan.config_with(&[("RoleA", ""), ("RoleB", "    duraton: 1h\n")], ""));
    s.wait_for("the refused reload", Duration::from_secs(10), || {
        s.reloads("error") >= 1.0
    });
    let status = s.status_report();
    let error = status["last_reload"]["error"].as_str().unwrap();
    assert!(
        error.contains("roles[1].duraton") && error.contains("config.yaml:"),
        "{error}"
    );
    assert_eq!(status["roles"].as_array().unwrap().len(), 2);
    assert_eq!(s.get("/readyz").0, 200);
    assert!(s.running.logs().contains("configuration reload refused"));

    // Remove a role: its files go, and so do its sections and metrics.
    cm.update(&plan.config(&["RoleB"], ""));
    s.wait_for("RoleA's files to go", Duration::from_secs(10), || {
        !s.out.join("RoleA.json").exists()
    });
    assert!(!s.out.join("RoleA.env").exists());
    let ini = std::fs::read_to_string(s.out.join("credentials")).unwrap();
    assert!(!ini.contains("[RoleA]") && ini.contains("[RoleB]"), "{ini}");
    assert!(!std::fs::read_to_string(&config_file)
        .unwrap()
        .contains("RoleA"));
    assert!(!s.get("/metrics").1.contains("role=\"RoleA\""));
    assert_eq!(
        s.credentials("RoleA", Some(&s.token())).0,
        404,
        "the endpoint no longer knows it"
    );
    assert_eq!(s.status_report()["roles"][0]["name"], "RoleB");
    s.wait_for("the reload to finish", Duration::from_secs(10), || {
        s.status_report()["last_reload"]["result"] == "success"
    });
    assert_no_secrets(&s.running.logs(), &secrets_in(&s.out));
}

#[test]
fn in_place_edits_and_editor_renames_reload_and_a_changed_role_is_assumed_again() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port, forward());
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &proxy.url);
    let path = sb.write("plain/config.yaml", &plan.config(&["RoleA"], ""));
    let s = plan.start(&path);
    s.wait_readyz(200, Duration::from_secs(20));
    let a_key = s.key_id("RoleA");

    // In place: truncate and write.
    std::fs::write(&path, plan.config(&["RoleA", "RoleB"], "")).unwrap();
    s.wait_for(
        "RoleB after an in-place edit",
        Duration::from_secs(10),
        || s.out.join("RoleB.json").exists(),
    );

    // An editor's save: a new file renamed over the old one. RoleA's external id changes.
    let swap = sb.write(
        "plain/.config.yaml.swp",
        &plan.config_with(
            &[("RoleA", "    external_id: new-id-1\n"), ("RoleB", "")],
            "",
        ),
    );
    std::fs::rename(swap, &path).unwrap();
    s.wait_for("RoleA to be assumed again", Duration::from_secs(10), || {
        proxy.calls_of("RoleA") == 2
    });
    s.wait_for("RoleA's new credentials", Duration::from_secs(10), || {
        s.out.join("RoleA.json").exists() && s.key_id("RoleA") != a_key
    });
    assert_eq!(proxy.calls_of("RoleB"), 1, "RoleB did not change");
    s.wait_readyz(200, Duration::from_secs(20));
}

#[test]
fn a_change_behind_a_linked_configuration_file_reloads() {
    let moto = Moto::start();
    let one = |plan: &Plan| plan.config(&["RoleA"], "");
    let two = |plan: &Plan| plan.config(&["RoleA", "RoleB"], "");

    // etc/config.yaml -> a file in another directory, edited in place.
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let real = sb.write("elsewhere/config.yaml", &one(&plan));
    reloads_through(
        &plan,
        &sb,
        "etc/config.yaml",
        &real,
        "an edit of the link's target",
        || std::fs::write(&real, two(&plan)).unwrap(),
    );

    // etc/config.yaml -> etc/config.v3.yaml, a sibling.
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let real = sb.write("etc/config.v3.yaml", &one(&plan));
    reloads_through(
        &plan,
        &sb,
        "etc/config.yaml",
        &real,
        "an edit of the sibling",
        || std::fs::write(&real, two(&plan)).unwrap(),
    );

    // etc/rolerelay.yaml -> a ConfigMap mount's config.yaml, updated by the kubelet.
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let mut cm = ConfigMapDir::new(sb.path("configmap"), &one(&plan));
    let target = cm.path();
    reloads_through(
        &plan,
        &sb,
        "etc/rolerelay.yaml",
        &target,
        "a ConfigMap update",
        || cm.update(&two(&plan)),
    );

    // The link re-pointed to a file elsewhere: that file's later edits reload too.
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &moto.url);
    let first = sb.write("v1/config.yaml", &one(&plan));
    let second = sb.write("v2/config.yaml", &two(&plan));
    let s = reloads_through(
        &plan,
        &sb,
        "etc/config.yaml",
        &first,
        "the link re-pointed",
        || {
            let next = sb.path("etc/.config.yaml.next");
            symlink(&second, &next).unwrap();
            std::fs::rename(&next, sb.path("etc/config.yaml")).unwrap();
        },
    );
    let three = plan.config(&["RoleA", "RoleB", "RoleC"], "");
    std::fs::write(&second, three).unwrap();
    s.wait_for(
        "RoleC after an edit of the new target",
        Duration::from_secs(10),
        || s.out.join("RoleC.json").exists(),
    );
}

#[test]
fn settings_that_need_a_restart_are_reported_and_sighup_reloads() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port, forward());
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &proxy.url);
    let path = sb.write("c.yaml", &plan.config(&["RoleA"], ""));
    let s = plan.start(&path);
    s.wait_readyz(200, Duration::from_secs(20));

    s.running.signal("HUP");
    s.wait_for("the SIGHUP reload", Duration::from_secs(10), || {
        s.reloads("success") == 1.0
    });
    assert_eq!(
        proxy.calls_of("RoleA"),
        1,
        "nothing changed, nothing assumed"
    );

    // A new listen address and output directory need a restart; the new role applies now.
    let text = plan
        .config(&["RoleA", "RoleB"], "")
        .replace(s.status.trim_start_matches("http://"), "127.0.0.1:1")
        .replace(
            &format!("directory: {}", s.out.display()),
            &format!("directory: {}", sb.path("elsewhere").display()),
        );
    std::fs::write(&path, text).unwrap();
    s.wait_for("RoleB", Duration::from_secs(10), || {
        s.out.join("RoleB.json").exists()
    });
    let status = s.status_report();
    let restart: Vec<&str> = status["last_reload"]["restart_needed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(restart, ["server.listen", "outputs.directory"]);
    assert!(!sb.path("elsewhere").exists());
    assert!(s.running.logs().contains("apply only after a restart"));
}

#[test]
fn an_sts_change_re_assumes_every_role_without_dropping_what_they_serve() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port, forward());
    let sb = Sandbox::new();
    let plan = Sidecar::plan(&sb, &proxy.url);
    let path = sb.write("c.yaml", &plan.config(&["RoleA"], ""));
    let s = plan.start(&path);
    s.wait_readyz(200, Duration::from_secs(20));
    let key = s.key_id("RoleA");
    let moved = plan
        .config(&["RoleA"], "")
        .replacen("sts:\n", "sts:\n  region: eu-west-1\n", 1);
    std::fs::write(&path, moved).unwrap();
    // Until the new credentials arrive, the old ones stay in place: the file never goes away.
    // Checked every millisecond, finer than a wait's polls, to catch a short gap.
    let start = std::time::Instant::now();
    while proxy.calls_of("RoleA") < 2
        || !s.out.join("RoleA.json").exists()
        || s.key_id("RoleA") == key
    {
        assert!(
            s.out.join("RoleA.json").exists(),
            "RoleA.json went away during the reload; {}",
            s.running.log_tail()
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "RoleA was not assumed again; {}",
            s.running.log_tail()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.status_report()["last_reload"]["result"], "success");
    assert!(std::fs::read_to_string(s.out.join("config"))
        .unwrap()
        .contains("region = eu-west-1"));
}
