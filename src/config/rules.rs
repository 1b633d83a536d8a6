//! The rules of the values themselves, with no configuration around them: the limits and
//! character sets of STS, and template placeholders. `values` (parsing) and `checks`
//! (validation) both use them.

use std::time::Duration;

/// `refresh.min_remaining` when it is not set: this much before expiry, or a third of the
/// credentials' lifetime when that is shorter, so that every duration STS grants (15m too) works.
pub const DEFAULT_MIN_REMAINING: Duration = Duration::from_secs(20 * 60);

/// The margin for credentials that live `lifetime` when `refresh.min_remaining` is not set.
pub fn default_min_remaining(lifetime: Duration) -> Duration {
    DEFAULT_MIN_REMAINING.min(lifetime / 3)
}

/// The longest session STS grants a chained role, the shortest maximum a role can have, and the
/// default session duration.
pub const ONE_HOUR: Duration = Duration::from_secs(3600);
/// The shortest session STS grants.
pub const MIN_SESSION_DURATION: Duration = Duration::from_secs(900);
/// The longest session STS grants, whatever a role's MaxSessionDuration.
pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(43_200);
/// The most session tags one AssumeRole call may carry.
pub const MAX_SESSION_TAGS: usize = 50;

/// The punctuation STS accepts, beside ASCII letters and digits, in role names, session names and
/// SourceIdentity.
pub const STS_PUNCTUATION: &str = "+=,.@_-";
/// The punctuation STS accepts in an ExternalId: [`STS_PUNCTUATION`] and `:` and `/`.
pub const EXTERNAL_ID_PUNCTUATION: &str = "+=,.@:/_-";

/// Whether STS accepts `character` in a role name, a session name or a SourceIdentity.
pub fn is_sts_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || STS_PUNCTUATION.contains(character)
}

/// Whether STS accepts `character` in an ExternalId.
pub fn is_external_id_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || EXTERNAL_ID_PUNCTUATION.contains(character)
}

/// Whether `character` may not go into a line of the `config` INI file: a control character
/// (a line break above all) or a Unicode line separator would end the line, and `[` or `]` could
/// be read as a section header.
pub fn breaks_an_ini_line(character: char) -> bool {
    character.is_control() || matches!(character, '\u{2028}' | '\u{2029}' | '[' | ']')
}

/// A `{...}` of a template that is not one of its placeholders.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownPlaceholder<'t> {
    /// The text after the `{`: up to its `}`, or to the end when there is none.
    pub name: &'t str,
    /// Whether the `{` has its `}`.
    pub closed: bool,
}

/// The first `{name}` of `template` whose name is not in `allowed`, or the first unclosed `{`.
pub fn unknown_placeholder<'t>(
    template: &'t str,
    allowed: &[&str],
) -> Option<UnknownPlaceholder<'t>> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Some(UnknownPlaceholder {
                name: after,
                closed: false,
            });
        };
        let name = &after[..close];
        if !allowed.contains(&name) {
            return Some(UnknownPlaceholder { name, closed: true });
        }
        rest = &after[close + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_the_allowed_names_and_closed() {
        let allowed = ["dir", "role"];
        assert_eq!(unknown_placeholder("cat {dir}/{role}.json", &allowed), None);
        assert_eq!(unknown_placeholder("no braces", &allowed), None);
        assert_eq!(
            unknown_placeholder("cat {directory}/{role}", &allowed),
            Some(UnknownPlaceholder {
                name: "directory",
                closed: true
            })
        );
        assert_eq!(
            unknown_placeholder("{role}{dir", &allowed),
            Some(UnknownPlaceholder {
                name: "dir",
                closed: false
            })
        );
        assert_eq!(
            unknown_placeholder("a {} b", &allowed),
            Some(UnknownPlaceholder {
                name: "",
                closed: true
            })
        );
    }

    #[test]
    fn the_sts_character_sets_differ_only_by_colon_and_slash() {
        for both in "aZ09+=,.@_-".chars() {
            assert!(is_sts_char(both) && is_external_id_char(both), "{both}");
        }
        for external_id_only in [':', '/'] {
            assert!(!is_sts_char(external_id_only) && is_external_id_char(external_id_only));
        }
        for neither in [' ', '*', 'é', '{'] {
            assert!(
                !is_sts_char(neither) && !is_external_id_char(neither),
                "{neither}"
            );
        }
    }
}
