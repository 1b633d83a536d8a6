//! The YAML file as written: every key optional, unknown keys refused, each value with its line.
//! The field names are the keys; what they mean is documented on the effective types in `mod.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{
    ClientName, FileMode, HumanDuration, LogFormat, LogLevel, Owner, RoleArn, RoleName,
    SessionTemplate,
};

/// The file's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub sts: FileSts,
    pub source: FileSource,
    pub refresh: FileRefresh,
    pub roles: Vec<FileRole>,
    pub outputs: FileOutputs,
    pub clients: Vec<FileClient>,
    pub server: FileServer,
    pub credentials_endpoint: FileEndpoint,
    pub logging: FileLogging,
}

/// `sts:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSts {
    pub region: Option<Spanned<String>>,
    pub endpoint_url: Option<Spanned<String>>,
    pub allow_insecure_endpoint: Option<Spanned<bool>>,
}

/// `source:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSource {
    pub profile: Option<Spanned<String>>,
}

/// `refresh:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileRefresh {
    pub lifetime_fraction: Option<Spanned<f64>>,
    pub min_remaining: Option<Spanned<HumanDuration>>,
    pub max_interval: Option<Spanned<HumanDuration>>,
    pub jitter: Option<Spanned<f64>>,
    pub backoff_initial: Option<Spanned<HumanDuration>>,
    pub backoff_max: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub concurrency: Option<Spanned<u64>>,
}

/// One entry of `roles:` as written: `name` and `role_arn` are required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRole {
    pub name: Spanned<RoleName>,
    pub role_arn: Spanned<RoleArn>,
    #[serde(default)]
    pub session_name: Option<Spanned<SessionTemplate>>,
    #[serde(default)]
    pub external_id: Option<Spanned<String>>,
    #[serde(default)]
    pub duration: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub chain: Vec<Spanned<RoleArn>>,
    #[serde(default)]
    pub policy: Option<Spanned<String>>,
    #[serde(default)]
    pub policy_arns: Vec<Spanned<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub transitive_tag_keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub source_identity: Option<Spanned<String>>,
}

/// `outputs:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileOutputs {
    pub directory: Option<Spanned<String>>,
    pub credentials_file: Option<Spanned<String>>,
    pub config_file: Option<Spanned<String>>,
    pub app_directory: Option<Spanned<String>>,
    pub process_command: Option<Spanned<String>>,
    pub default_role: Option<Spanned<RoleName>>,
    pub process_json: Option<Spanned<bool>>,
    pub env_file: Option<Spanned<bool>>,
    pub file_mode: Option<Spanned<FileMode>>,
    pub owner: Option<Spanned<Owner>>,
    pub remove_on_exit: Option<Spanned<bool>>,
}

/// One entry of `clients:` as written: `name` and `roles` are required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileClient {
    pub name: Spanned<ClientName>,
    pub roles: Vec<Spanned<RoleName>>,
    #[serde(default)]
    pub directory: Option<Spanned<String>>,
    #[serde(default)]
    pub app_directory: Option<Spanned<String>>,
}

/// `server:` as written; `listen` stays text so that a bad address gets the resolver's message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileServer {
    pub listen: Option<Spanned<String>>,
}

/// `credentials_endpoint:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileEndpoint {
    pub enabled: Option<Spanned<bool>>,
    pub listen: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub allow_non_loopback: Option<Spanned<bool>>,
}

/// `logging:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileLogging {
    pub format: Option<Spanned<LogFormat>>,
    pub level: Option<Spanned<LogLevel>>,
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
        serde_path_to_error::deserialize::<_, Option<FileConfig>>(de).map_err(|error| {
            key = error.path().to_string();
            error.into_inner()
        })
    });
    parsed.map(Option::unwrap_or_default).map_err(|error| {
        let location = error.location();
        let mut message = error.without_snippet().to_string();
        if let Some(at) = &location {
            let suffix = format!(" at line {}, column {}", at.line(), at.column());
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
            line: location.map(|at| at.line()),
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
