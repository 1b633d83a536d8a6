//! Test support for the refresh loop and the app: an STS that answers AssumeRole from memory,
//! through the SDK's real client, request signing and reply parsing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;

use crate::assume::Assumer;
use crate::clock::Clock;
use crate::config::Config;
use crate::config::ConfigArgs;
use crate::credentials::rfc3339;

/// A clock that starts at 2027-01-15T08:00:00Z and moves with tokio's paused time.
pub fn paused_clock() -> Clock {
    Clock::follows_tokio(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// Writes `dir/config.yaml` with outputs in `dir/out` and `roles` (name, extra YAML lines of the
/// role; role `r` is `arn:aws:iam::111111111111:role/r`), and returns the flags naming it.
pub fn write_config(dir: &Path, roles: &[(&str, &str)]) -> ConfigArgs {
    let mut text = format!(
        "sts:\n  region: us-east-1\noutputs:\n  directory: {}\nroles:\n",
        dir.join("out").display()
    );
    for (name, extra) in roles {
        text.push_str(&format!(
            "  - name: {name}\n    role_arn: arn:aws:iam::111111111111:role/{name}\n{extra}"
        ));
    }
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    ConfigArgs {
        config: Some(path),
        ..ConfigArgs::default()
    }
}

/// The configuration `args` name.
pub fn load(args: &ConfigArgs) -> Config {
    Config::load(args).expect("a valid test configuration")
}

/// The roles of a configuration file's `roles:` entries, one per name; role `r` is
/// `arn:aws:iam::111111111111:role/r`.
pub fn roles(names: &[&str]) -> Vec<crate::config::RoleConfig> {
    let mut text = "roles:\n".to_string();
    for name in names {
        text.push_str(&format!(
            "  - name: {name}\n    role_arn: arn:aws:iam::111111111111:role/{name}\n"
        ));
    }
    let vars = crate::config::TemplateVars {
        hostname: "host".into(),
        pod: "pod".into(),
    };
    let file = Some((Path::new("test.yaml"), text.as_str()));
    Config::from_parts(&ConfigArgs::default(), file, &|_| None, &vars)
        .expect("a valid test configuration")
        .roles
}

/// The access key id in a credential_process file.
pub fn key_in(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["AccessKeyId"].as_str().unwrap().to_string()
}

/// One sample of the Prometheus text `metrics`, 0 if absent.
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// How the fake STS answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Credentials for the duration asked.
    Credentials,
    /// Credentials, unless the duration asked is longer than this (then a ValidationError).
    AtMost(Duration),
    /// An error reply with this code.
    Error(&'static str),
    /// An error reply with this code for the role of this name, credentials for the others.
    ErrorFor(&'static str, &'static str),
}

/// One AssumeRole call the fake STS received.
#[derive(Clone, Debug)]
pub struct Call {
    /// The role asked for (URL-encoded, as sent).
    pub role_arn: String,
    /// The duration asked for.
    pub duration: Duration,
    /// When, by the test's clock.
    pub at: SystemTime,
}

/// An STS answering from memory; clones share the script and the log of calls.
#[derive(Clone, Debug)]
pub struct FakeSts {
    clock: Clock,
    reply: Arc<Mutex<Reply>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeSts {
    /// An STS that hands out credentials, expiring by `clock`.
    pub fn new(clock: Clock) -> FakeSts {
        FakeSts {
            clock,
            reply: Arc::new(Mutex::new(Reply::Credentials)),
            calls: Arc::default(),
        }
    }

    /// Answers the next calls this way.
    pub fn set_reply(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// An assumer calling this STS, with a 10 s limit per call.
    pub fn assumer(&self) -> Assumer {
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDSOURCE", "source", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .http_client(self.clone())
            .build();
        Assumer::new(
            aws_sdk_sts::Client::from_conf(config),
            Duration::from_secs(10),
        )
    }

    fn answer(&self, request: &HttpRequest) -> HttpResponse {
        let body = String::from_utf8_lossy(request.body().bytes().unwrap_or_default()).to_string();
        let param = |name: &str| {
            body.split('&')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_default()
                .to_string()
        };
        let duration = Duration::from_secs(param("DurationSeconds").parse().unwrap_or(3600));
        let now = self.clock.now();
        let number = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                role_arn: param("RoleArn"),
                duration,
                at: now,
            });
            calls.len()
        };
        let reply = self.reply.lock().unwrap().clone();
        match reply {
            Reply::Error(code) => error(400, code, "refused by the fake STS"),
            Reply::ErrorFor(role, code) if param("RoleArn").ends_with(&format!("%2F{role}")) => {
                error(400, code, "refused by the fake STS")
            }
            Reply::AtMost(max) if duration > max => error(
                400,
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ),
            _ => credentials(number, now + duration),
        }
    }
}

fn credentials(number: usize, expiration: SystemTime) -> HttpResponse {
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>ASIAFAKE{number:012}</AccessKeyId><SecretAccessKey>fakeSecretKey{number:012}</SecretAccessKey>\
         <SessionToken>fakeSessionToken{number:012}</SessionToken><Expiration>{}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROAFAKE:s</AssumedRoleId><Arn>arn:aws:sts::111111111111:assumed-role/R/s</Arn></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>",
        rfc3339(expiration)
    );
    HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body))
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

impl HttpConnector for FakeSts {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(Ok(self.answer(&request)))
    }
}

impl HttpClient for FakeSts {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}
