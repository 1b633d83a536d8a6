//! Value types of the configuration: each parses from the text a user writes (a YAML scalar, a
//! flag or an environment variable) and says what to write instead when it cannot.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::rules::{is_sts_char, unknown_placeholder};

/// Implements `Deserialize` through `FromStr`, so the file, flags and environment share one parser.
macro_rules! deserialize_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

/// A duration written like `90s`, `15m`, `1h` or `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(HumanDuration(Duration::ZERO));
        }
        if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "duration {text:?} has no unit: write it like {text}s, 15m or 1h"
            ));
        }
        humantime::parse_duration(text)
            .map(HumanDuration)
            .map_err(|_| format!("invalid duration {text:?}: write it like 90s, 15m or 1h"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // humantime writes "1h 30m"; without spaces it reads back as the same value.
        let text = humantime::format_duration(self.0).to_string();
        f.write_str(&text.replace(' ', ""))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The ARN of an IAM role: `arn:<partition>:iam::<12-digit account>:role/[path/]name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RoleArn(String);

impl RoleArn {
    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The role's name: the last segment of its path.
    pub fn role_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// The 12-digit account the role is in.
    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

impl FromStr for RoleArn {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let hint = "write it as arn:aws:iam::<12-digit account id>:role/<role name>";
        let arn = RoleArn(text.to_string());
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let ok = match parts.as_slice() {
            ["arn", partition, "iam", "", account, resource] => {
                let name = arn.role_name();
                !partition.is_empty()
                    && account.len() == 12
                    && account.chars().all(|c| c.is_ascii_digit())
                    && resource.starts_with("role/")
                    && !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(is_sts_char)
            }
            _ => false,
        };
        if ok {
            Ok(arn)
        } else {
            Err(format!("{text:?} is not an IAM role ARN: {hint}"))
        }
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role's name in rolerelay: the profile name, the file stem and the endpoint path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RoleName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        plain_name(text, "role name", "it names files and profiles").map(RoleName)
    }
}

/// `text` if it is 1 to 64 of `A-Za-z0-9_-`: a name that is safe as a file name, a profile name,
/// a path segment and a metric label; else what to write, naming `what` and `why`.
fn plain_name(text: &str, what: &str, why: &str) -> Result<String, String> {
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match plain {
        true => Ok(text.to_string()),
        false => Err(format!(
            "{what} {text:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-' ({why})"
        )),
    }
}

impl std::borrow::Borrow<str> for RoleName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's name: one application container, shown in logs, `/status` and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ClientName(String);

impl ClientName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        plain_name(
            text,
            "client name",
            "it names a directory and a metric label",
        )
        .map(ClientName)
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Unix file mode written in octal, like `"0640"`: readable by the owner, writable by no one
/// else, nothing for other users (the files hold credentials).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FromStr for FileMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        let mode = match u32::from_str_radix(digits, 8) {
            Ok(mode) if (3..=4).contains(&digits.len()) && mode <= 0o777 => mode,
            _ => {
                return Err(format!(
                    "file mode {text:?} is not an octal mode: write it quoted, like \"0640\""
                ))
            }
        };
        if mode & 0o400 == 0 {
            return Err(format!(
                "file mode {text:?} leaves the files unreadable by their owner: use e.g. \"0640\""
            ));
        }
        if mode & 0o007 != 0 {
            return Err(format!(
                "file mode {text:?} gives every user of the machine access to the credentials: \
                 leave the last digit 0, like \"0640\" (the group reads) or \"0600\""
            ));
        }
        if mode & 0o020 != 0 {
            return Err(format!(
                "file mode {text:?} lets the group overwrite the credentials: \
                 use \"0640\" (the group reads) or \"0600\""
            ));
        }
        Ok(FileMode(mode))
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The numeric `uid:gid` of the application: written files and the directory rolerelay creates
/// get its group, and stay rolerelay's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl FromStr for Owner {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let parsed = text.split_once(':').and_then(|(uid, gid)| {
            Some(Owner {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            })
        });
        parsed.ok_or_else(|| {
            format!("owner {text:?} must be numeric \"uid:gid\", like \"1000:1000\"")
        })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A session name template: text with `{hostname}`, `{role}` and `{pod}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SessionTemplate(String);

/// What the placeholders of a [`SessionTemplate`] stand for.
#[derive(Clone, Debug, Default)]
pub struct TemplateVars {
    /// `{hostname}`: the host (in Kubernetes, the pod) name.
    pub hostname: String,
    /// `{pod}`: the environment variable `POD_NAME`, else the host name.
    pub pod: String,
}

impl SessionTemplate {
    /// Expands the placeholders and makes the result a valid STS `RoleSessionName`.
    pub fn render(&self, role: &RoleName, vars: &TemplateVars) -> String {
        let text = self
            .0
            .replace("{hostname}", &vars.hostname)
            .replace("{role}", role.as_str())
            .replace("{pod}", &vars.pod);
        sanitize_session_name(&text)
    }
}

impl FromStr for SessionTemplate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match unknown_placeholder(text, &["hostname", "role", "pod"]) {
            Some(unknown) if !unknown.closed => {
                return Err(format!("session name {text:?} has an unclosed '{{'"));
            }
            Some(unknown) => {
                return Err(format!(
                    "session name {text:?} uses {{{}}}: the placeholders are {{hostname}}, {{role}} and {{pod}}",
                    unknown.name
                ));
            }
            None => {}
        }
        if text.is_empty() {
            return Err("session name is empty: use e.g. \"rolerelay-{hostname}\"".into());
        }
        Ok(SessionTemplate(text.to_string()))
    }
}

/// Makes `text` a valid STS session name: characters outside `[A-Za-z0-9+=,.@_-]` become `-`,
/// the result is cut to 64 characters, and one shorter than 2 is padded.
pub fn sanitize_session_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if is_sts_char(c) { c } else { '-' })
        .take(64)
        .collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

/// The log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object a line.
    Json,
    /// Human-readable text.
    Text,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(format!("log format {text:?} is not json or text")),
        }
    }
}

/// The log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default: one line per refresh.
    Info,
    /// Details of each step.
    Debug,
    /// rolerelay's own traces too (the AWS SDK stays at debug: its traces hold whole replies).
    Trace,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "log level {text:?} is not one of error, warn, info, debug, trace"
            )),
        }
    }
}

deserialize_from_str!(
    HumanDuration,
    RoleArn,
    RoleName,
    ClientName,
    FileMode,
    Owner,
    SessionTemplate,
    LogFormat,
    LogLevel
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(
            "90s".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(90)
        );
        assert_eq!(
            "1h30m".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(5400)
        );
        assert!("3600"
            .parse::<HumanDuration>()
            .unwrap_err()
            .contains("no unit"));
        assert!("5x"
            .parse::<HumanDuration>()
            .unwrap_err()
            .contains("invalid duration"));
        assert_eq!(
            HumanDuration(Duration::from_secs(5400)).to_string(),
            "1h30m"
        );
        assert_eq!(
            HumanDuration(Duration::from_secs(5400))
                .to_string()
                .parse::<HumanDuration>()
                .unwrap()
                .0
                .as_secs(),
            5400
        );
    }

    #[test]
    fn role_arns_are_checked() {
        let arn: RoleArn = "arn:aws:iam::111111111111:role/path/RoleForB"
            .parse()
            .unwrap();
        assert_eq!(arn.role_name(), "RoleForB");
        assert!("arn:aws-cn:iam::111111111111:role/R"
            .parse::<RoleArn>()
            .is_ok());
        for bad in [
            "RoleForB",
            "arn:aws:iam::11111111111:role/R",
            "arn:aws:iam::111111111111:user/R",
            "arn:aws:sts::111111111111:role/R",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:iam:us-east-1:111111111111:role/R",
            "arn:aws:iam::111111111111:role/R x",
        ] {
            let err = bad.parse::<RoleArn>().unwrap_err();
            assert!(
                err.contains("arn:aws:iam::<12-digit account id>"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn file_modes_are_octal_and_safe() {
        assert_eq!("0640".parse::<FileMode>().unwrap().0, 0o640);
        assert_eq!("600".parse::<FileMode>().unwrap().0, 0o600);
        assert!("0o640".parse::<FileMode>().is_ok());
        assert!("0980".parse::<FileMode>().unwrap_err().contains("octal"));
        assert!("0440".parse::<FileMode>().is_ok());
        assert!("04640".parse::<FileMode>().is_err());
        assert!("0240"
            .parse::<FileMode>()
            .unwrap_err()
            .contains("unreadable"));
        for open_to_everyone in ["0666", "0644", "0604", "0641", "0642"] {
            let err = open_to_everyone.parse::<FileMode>().unwrap_err();
            assert!(
                err.contains("every user") && err.contains("\"0640\""),
                "{err}"
            );
        }
        for group_writes in ["0660", "0620", "0670"] {
            let err = group_writes.parse::<FileMode>().unwrap_err();
            assert!(err.contains("the group overwrite"), "{err}");
        }
        for fine in ["0640", "0600", "0400", "0750", "0700"] {
            assert!(fine.parse::<FileMode>().is_ok(), "{fine}");
        }
        assert_eq!(FileMode(0o640).to_string(), "0640");
    }

    #[test]
    fn owners_are_numeric() {
        assert_eq!(
            "1000:2000".parse::<Owner>().unwrap(),
            Owner {
                uid: 1000,
                gid: 2000
            }
        );
        assert!("app:app".parse::<Owner>().is_err());
        assert!("1000".parse::<Owner>().is_err());
    }

    #[test]
    fn session_templates_render_and_sanitize() {
        let template: SessionTemplate = "rr-{hostname}-{role}-{pod}".parse().unwrap();
        let vars = TemplateVars {
            hostname: "ip-10-0-0-1.ec2.internal".into(),
            pod: "web 7/x".into(),
        };
        let role: RoleName = "account-a".parse().unwrap();
        assert_eq!(
            template.render(&role, &vars),
            "rr-ip-10-0-0-1.ec2.internal-account-a-web-7-x"
        );
        assert!("x-{host}"
            .parse::<SessionTemplate>()
            .unwrap_err()
            .contains("{host}"));
        assert!("x-{role"
            .parse::<SessionTemplate>()
            .unwrap_err()
            .contains("unclosed"));
    }

    #[test]
    fn session_names_meet_sts_rules() {
        assert_eq!(sanitize_session_name("a"), "a-");
        assert_eq!(sanitize_session_name("é:b c"), "--b-c");
        assert_eq!(sanitize_session_name(&"x".repeat(100)).len(), 64);
        assert_eq!(sanitize_session_name("a+=,.@_-Z9"), "a+=,.@_-Z9");
    }

    #[test]
    fn role_names_are_file_safe() {
        assert!("account-a_1".parse::<RoleName>().is_ok());
        for bad in ["", "a/b", "a.b", "../x", "a b"] {
            assert!(bad.parse::<RoleName>().is_err(), "{bad}");
        }
    }
}
