//! A reader that hammers every output file and the endpoint while a test injects faults, and
//! checks every read: complete, parseable, never more permissive than the mode, never expired,
//! and never a key id paired with a secret or token of another generation.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::{now, try_http_get};

/// What the reader saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Reads that found something to check.
    pub reads: usize,
    /// 200 answers of the endpoint.
    pub served: usize,
    /// Everything that was wrong, at most 20.
    pub errors: Vec<String>,
}

/// A running reader; `stop` ends it and returns what it saw.
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Report>,
}

/// Expired-at-read tolerance for files: a file can outlive its credentials by the moment it
/// takes the sidecar to notice and withdraw it (a wake-up and a few fsyncs, which a loaded disk
/// can stretch to seconds). The endpoint gets none.
const FILE_GRACE: Duration = Duration::from_secs(5);

impl Reader {
    /// Reads `dir`'s outputs for `roles` and, if given, the endpoint (base URL) with the token
    /// file of `dir`, until stopped.
    pub fn start(dir: PathBuf, roles: &[&str], endpoint: Option<String>) -> Reader {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut r = Check::default();
            while !flag.load(Ordering::Relaxed) {
                for role in &roles {
                    r.json(&dir, role);
                    r.env(&dir, role);
                    if let Some(url) = &endpoint {
                        r.endpoint(&dir, url, role);
                    }
                }
                r.ini(&dir);
                std::thread::sleep(Duration::from_millis(2));
            }
            r.report
        });
        Reader { stop, thread }
    }

    /// Stops and returns the report.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the reader does not panic")
    }

    /// Stops and panics if anything was wrong (or nothing was read at all).
    pub fn assert_clean(self) -> Report {
        let report = self.stop();
        assert!(
            report.errors.is_empty(),
            "the reader saw: {:#?}",
            report.errors
        );
        assert!(report.reads > 0, "the reader read nothing");
        report
    }
}

#[derive(Default)]
struct Check {
    report: Report,
    /// Every key id seen, with its secret and token.
    generations: HashMap<String, (String, String)>,
}

impl Check {
    fn error(&mut self, what: String) {
        if self.report.errors.len() < 20 {
            self.report.errors.push(what);
        }
    }

    fn read(&mut self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let text = std::fs::read_to_string(path).ok()?;
        self.report.reads += 1;
        if meta.permissions().mode() & 0o777 & !0o640 != 0 {
            self.error(format!(
                "{} has mode {:o}",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        Some(text)
    }

    fn generation(&mut self, source: &str, key: &str, secret: &str, token: &str) {
        if key.is_empty() || secret.is_empty() || token.is_empty() {
            self.error(format!("{source}: an empty field"));
            return;
        }
        let seen = self
            .generations
            .entry(key.to_string())
            .or_insert_with(|| (secret.to_string(), token.to_string()));
        if seen.0 != secret || seen.1 != token {
            self.error(format!(
                "{source}: key id {key} with a secret or token of another generation"
            ));
        }
    }

    /// Checks that credentials read from `source` were still valid `grace` before the read
    /// began at `asked` (the answer may arrive after they expired; that is no fault).
    fn expiration(&mut self, source: &str, text: &str, asked: SystemTime, grace: Duration) {
        match humantime::parse_rfc3339(text) {
            Ok(t) if t + grace > asked => {}
            Ok(_) => self.error(format!("{source}: expired credentials ({text})")),
            Err(_) => self.error(format!("{source}: unreadable Expiration {text:?}")),
        }
    }

    fn json(&mut self, dir: &Path, role: &str) {
        let asked = now();
        let Some(text) = self.read(&dir.join(format!("{role}.json"))) else {
            return;
        };
        let v: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => {
                return self.error(format!(
                    "{role}.json: torn or invalid: {} bytes",
                    text.len()
                ))
            }
        };
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        if v["Version"] != 1 {
            self.error(format!("{role}.json: Version {}", v["Version"]));
        }
        self.generation(
            &format!("{role}.json"),
            &s("AccessKeyId"),
            &s("SecretAccessKey"),
            &s("SessionToken"),
        );
        self.expiration(&format!("{role}.json"), &s("Expiration"), asked, FILE_GRACE);
    }

    fn env(&mut self, dir: &Path, role: &str) {
        let asked = now();
        let Some(text) = self.read(&dir.join(format!("{role}.env"))) else {
            return;
        };
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| vars.get(k).copied().unwrap_or_default().to_string();
        // Key, secret, token, expiration and account: a complete file has all five.
        if vars.len() != 5 || !text.ends_with('\n') {
            return self.error(format!("{role}.env: torn: {} lines", vars.len()));
        }
        self.generation(
            &format!("{role}.env"),
            &get("AWS_ACCESS_KEY_ID"),
            &get("AWS_SECRET_ACCESS_KEY"),
            &get("AWS_SESSION_TOKEN"),
        );
        self.expiration(
            &format!("{role}.env"),
            &get("AWS_CREDENTIAL_EXPIRATION"),
            asked,
            FILE_GRACE,
        );
    }

    fn ini(&mut self, dir: &Path) {
        let Some(text) = self.read(&dir.join("credentials")) else {
            return;
        };
        let mut section: Option<(String, HashMap<String, String>)> = None;
        let mut sections = Vec::new();
        for line in text.lines().chain(std::iter::once("[end]")) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.extend(section.take());
                section = Some((name.to_string(), HashMap::new()));
            } else if let (Some((_, keys)), Some((k, v))) =
                (section.as_mut(), line.split_once(" = "))
            {
                keys.insert(k.to_string(), v.to_string());
            }
        }
        for (name, keys) in sections {
            let get = |k: &str| keys.get(k).cloned().unwrap_or_default();
            self.generation(
                &format!("credentials [{name}]"),
                &get("aws_access_key_id"),
                &get("aws_secret_access_key"),
                &get("aws_session_token"),
            );
        }
    }

    fn endpoint(&mut self, dir: &Path, url: &str, role: &str) {
        let Ok(token) = std::fs::read_to_string(dir.join("token")) else {
            return;
        };
        let asked = now();
        let (code, body) = match try_http_get(
            &format!("{url}/v1/credentials/{role}"),
            &[("Authorization", &token)],
        ) {
            Ok(answer) => answer,
            Err(e) => return self.error(format!("endpoint: {e}")),
        };
        self.report.reads += 1;
        match code {
            200 => {
                self.report.served += 1;
                let v: serde_json::Value = match serde_json::from_str(&body) {
                    Ok(v) => v,
                    Err(_) => {
                        return self.error(format!("endpoint: invalid JSON: {} bytes", body.len()))
                    }
                };
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                self.generation(
                    "endpoint",
                    &s("AccessKeyId"),
                    &s("SecretAccessKey"),
                    &s("Token"),
                );
                self.expiration("endpoint", &s("Expiration"), asked, Duration::ZERO);
            }
            503 => {}
            other => self.error(format!("endpoint: HTTP {other}")),
        }
    }
}
