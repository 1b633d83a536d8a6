//! The YAML file as written: every key optional, unknown keys refused, each value with its line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{
    Dur, FileMode, LogFormat, LogLevel, Owner, RoleArn, RoleName, SessionTemplate,
};

/// A value with the place it was written.
pub type S<T> = Spanned<T>;

/// The file's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub sts: FileSts,
    pub source: FileSource,
    pub refresh: FileRefresh,
    pub roles: Vec<FileRole>,
    pub outputs: FileOutputs,
    pub server: FileServer,
    pub credentials_endpoint: FileEndpoint,
    pub logging: FileLogging,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSts {
    pub region: Option<S<String>>,
    pub endpoint_url: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSource {
    pub profile: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileRefresh {
    pub lifetime_fraction: Option<S<f64>>,
    pub min_remaining: Option<S<Dur>>,
    pub max_interval: Option<S<Dur>>,
    pub jitter: Option<S<f64>>,
    pub backoff_initial: Option<S<Dur>>,
    pub backoff_max: Option<S<Dur>>,
    pub timeout: Option<S<Dur>>,
    pub concurrency: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRole {
    pub name: S<RoleName>,
    pub role_arn: S<RoleArn>,
    #[serde(default)]
    pub session_name: Option<S<SessionTemplate>>,
    #[serde(default)]
    pub external_id: Option<S<String>>,
    #[serde(default)]
    pub duration: Option<S<Dur>>,
    #[serde(default)]
    pub chain: Vec<S<RoleArn>>,
    #[serde(default)]
    pub policy: Option<S<String>>,
    #[serde(default)]
    pub policy_arns: Vec<S<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, S<String>>,
    #[serde(default)]
    pub transitive_tag_keys: Vec<S<String>>,
    #[serde(default)]
    pub source_identity: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileOutputs {
    pub directory: Option<S<String>>,
    pub credentials_file: Option<S<String>>,
    pub config_file: Option<S<String>>,
    pub app_directory: Option<S<String>>,
    pub process_command: Option<S<String>>,
    pub default_role: Option<S<RoleName>>,
    pub process_json: Option<S<bool>>,
    pub env_file: Option<S<bool>>,
    pub file_mode: Option<S<FileMode>>,
    pub owner: Option<S<Owner>>,
    pub remove_on_exit: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileServer {
    pub listen: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileEndpoint {
    pub enabled: Option<S<bool>>,
    pub listen: Option<S<String>>,
    pub token_file: Option<S<String>>,
    pub allow_non_loopback: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileLogging {
    pub format: Option<S<LogFormat>>,
    pub level: Option<S<LogLevel>>,
}

/// Why the file could not be read as a configuration.
#[derive(Debug)]
pub struct FileError {
    /// The line of the offending value, when known.
    pub line: Option<u64>,
    /// The key path, like `roles[1].duration`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Parses the file's text.
pub fn parse(text: &str) -> Result<FileConfig, FileError> {
    let mut options = serde_saphyr::Options::default();
    // `file_mode: 0640` unquoted stays the text "0640" rather than becoming the number 640.
    options.leading_zero_numbers_as_strings = true;
    options.with_snippet = false;
    let mut key = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, Option<FileConfig>>(de).map_err(|e| {
            key = e.path().to_string();
            e.into_inner()
        })
    });
    parsed.map(Option::unwrap_or_default).map_err(|e| {
        let location = e.location();
        let mut message = e.without_snippet().to_string();
        if let Some(l) = &location {
            let suffix = format!(" at line {}, column {}", l.line(), l.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        let mut key = match key.trim_end_matches(".value") {
            "" | "." => "(top level)".to_string(),
            path => path.to_string(),
        };
        let message = match duplicate_key(&message) {
            Some(duplicate) => {
                // The parser names the mapping's key `?`; name the repeated key itself.
                key = match key.strip_suffix('?') {
                    Some(parent) => format!("{parent}{duplicate}"),
                    None if key == "(top level)" => duplicate.to_string(),
                    None => format!("{key}.{duplicate}"),
                };
                format!("`{duplicate}` is set twice in the same mapping: keep one")
            }
            None => what_to_write(&message),
        };
        FileError {
            line: location.map(|l| l.line()),
            key,
            message,
        }
    })
}

/// The key a "duplicate mapping key" error names.
fn duplicate_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("duplicate mapping key: ")?;
    Some(rest.split(',').next().unwrap_or(rest).trim())
}

/// The parser's words for a value of the wrong shape, turned into what to write instead.
fn what_to_write(message: &str) -> String {
    let number = |m: &str| {
        m.strip_prefix("invalid ").is_some_and(|t| {
            matches!(
                t,
                "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64"
            )
        })
    };
    let hint = match message {
        m if number(m) => "expected a positive whole number, like 16",
        "invalid floating point" => "expected a number, like 0.5",
        "invalid boolean" => "expected true or false",
        "expected sequence start" => "expected a list (lines starting with `- `, or [a, b])",
        "expected mapping start" => "expected a mapping (indented `key: value` lines)",
        "expected string scalar" => "expected a single value, not a list or a mapping",
        _ => return message.to_string(),
    };
    hint.to_string()
}
