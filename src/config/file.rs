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
    let parsed = serde_saphyr::from_str_with_options::<Option<FileConfig>>(text, options);
    parsed.map(Option::unwrap_or_default).map_err(|error| {
        let location = error.location();
        let mut message = error.without_snippet().to_string();
        if let Some(at) = &location {
            let suffix = format!(" at line {}, column {}", at.line(), at.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        let duplicate = duplicate_key(&message).map(str::to_string);
        let place = if duplicate.is_some() || message.starts_with("unknown field") {
            Place::Key
        } else if message.starts_with("missing field") {
            Place::Mapping
        } else {
            Place::Node
        };
        // An error without a place (rare: serde-saphyr places nearly all) names the top level.
        let key = location.map_or_else(String::new, |at| {
            key_path_at(text, at.line(), at.column(), place)
        });
        FileError {
            line: location.map(|at| at.line()),
            key: if key.is_empty() {
                "(top level)".to_string()
            } else {
                key
            },
            message: match duplicate {
                Some(key) => format!("`{key}` is set twice in the same mapping: keep one"),
                None => what_to_write(&message),
            },
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

/// One open mapping or sequence, on the way to a node.
enum Level {
    /// A mapping: its current key, and whether the next node is a key (or that key's value).
    Mapping {
        key: Option<String>,
        next_is_key: bool,
    },
    /// A sequence: the index of its current item.
    Sequence { index: Option<usize> },
}

/// What a parser error's place is: a mapping's key (an unknown or repeated one), a mapping that
/// lacks a key, or any other node.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Place {
    Key,
    Mapping,
    Node,
}

/// The key path (`roles[1].duration`) of what the parser's error reports at `line`:`column`
/// (1-based); empty for the top level. serde-saphyr's errors carry a place, not a path: this
/// walks the text's YAML events to the first node there or after it (for [`Place::Key`], the
/// first key), or else to the mapping or sequence that ends after it. Where a block list or
/// mapping ends, the parser puts its end at the next key, so an end only counts after the place.
/// A mapping lacking a key is reported at its last key (`{` when it has none), and a block
/// mapping starts where its first key does.
pub(super) fn key_path_at(text: &str, line: u64, column: u64, place: Place) -> String {
    use granit_parser::{Event, Parser};
    let mut levels: Vec<Level> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let start = (span.start.line() as u64, span.start.col() as u64 + 1);
        let reached = start >= (line, column);
        let in_key = matches!(
            levels.last(),
            Some(Level::Mapping {
                next_is_key: true,
                ..
            })
        );
        match event {
            Event::Scalar(..)
            | Event::Alias(..)
            | Event::SequenceStart(..)
            | Event::MappingStart(..) => {
                match levels.last_mut() {
                    Some(Level::Mapping {
                        key,
                        next_is_key: true,
                    }) => {
                        *key = Some(match &event {
                            Event::Scalar(text, ..) => text.to_string(),
                            _ => "?".to_string(),
                        });
                    }
                    Some(Level::Sequence { index }) => *index = Some(index.map_or(0, |i| i + 1)),
                    _ => {}
                }
                let scalar = matches!(event, Event::Scalar(..) | Event::Alias(..));
                if reached && (place != Place::Key || (in_key && scalar)) {
                    let up = usize::from(place == Place::Mapping && in_key);
                    return path_of(&levels[..levels.len() - up]);
                }
                match event {
                    Event::SequenceStart(..) => levels.push(Level::Sequence { index: None }),
                    Event::MappingStart(..) => levels.push(Level::Mapping {
                        key: None,
                        next_is_key: true,
                    }),
                    _ => flip(&mut levels),
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                levels.pop();
                if start > (line, column) && place == Place::Node {
                    return path_of(&levels);
                }
                flip(&mut levels);
            }
            _ => {}
        }
    }
    path_of(&levels)
}

/// A node is complete: in a mapping, a key's value comes next, or a value's next key.
fn flip(levels: &mut [Level]) {
    if let Some(Level::Mapping { next_is_key, .. }) = levels.last_mut() {
        *next_is_key = !*next_is_key;
    }
}

/// `roles[1].duration` for the levels open on the way to it.
fn path_of(levels: &[Level]) -> String {
    let mut path = String::new();
    for level in levels {
        match level {
            Level::Mapping { key: Some(key), .. } if path.is_empty() => path.push_str(key),
            Level::Mapping { key: Some(key), .. } => path.push_str(&format!(".{key}")),
            Level::Sequence { index: Some(i) } => path.push_str(&format!("[{i}]")),
            _ => {}
        }
    }
    path
}
