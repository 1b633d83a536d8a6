//! Shell-style quoting of the values rolerelay writes where a shell, or a splitter that follows a
//! shell's rules, reads them: `<role>.env` (sourced by `sh`) and the `credential_process` lines of
//! `config` (split by Python's `shlex.split` in botocore and the AWS CLI, run with `sh -c` by the
//! Go, JavaScript and Rust SDKs). Both read single quotes the same way, so that is what is used.

use std::borrow::Cow;

/// Whether `c` means nothing to a shell or `shlex`: the characters Python's `shlex.quote` leaves
/// bare.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c)
}

/// `value` as one word: as it is when every character is plain, else in single quotes, with a
/// `'` inside written as `'"'"'` (close, a double-quoted quote, reopen). This is `shlex.quote`.
pub fn quote(value: &str) -> Cow<'_, str> {
    if !value.is_empty() && value.chars().all(is_plain) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(format!("'{}'", value.replace('\'', "'\"'\"'")))
}

/// Which quote a position of a command line is inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inside {
    Bare,
    Single,
    Double,
}

/// `template` with each `{name}` of `values` replaced by its value, which stays one word
/// whatever quotes the template puts around it: bare, a value is [`quote`]d; inside quotes, a
/// value that needs quoting closes them, is quoted, and reopens them.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    scan(template, values).0
}

/// The quote `template` leaves open at its end (`'` or `"`), if any.
pub fn unclosed_quote(template: &str) -> Option<char> {
    match scan(template, &[]).1 {
        Inside::Bare => None,
        Inside::Single => Some('\''),
        Inside::Double => Some('"'),
    }
}

/// Walks `template` as `sh` and `shlex` do (quotes, and a backslash escaping the next character
/// outside single quotes), filling in the placeholders; returns the text and where it ends.
fn scan(template: &str, values: &[(&str, &str)]) -> (String, Inside) {
    let mut out = String::with_capacity(template.len());
    let mut inside = Inside::Bare;
    let mut rest = template;
    'next: while let Some(c) = rest.chars().next() {
        for (name, value) in values {
            let placeholder = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_prefix(name))
                .and_then(|r| r.strip_prefix('}'));
            if let Some(after) = placeholder {
                out.push_str(&in_context(value, inside));
                rest = after;
                continue 'next;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        inside = match (inside, c) {
            (Inside::Bare, '\'') => Inside::Single,
            (Inside::Bare, '"') => Inside::Double,
            (Inside::Single, '\'') | (Inside::Double, '"') => Inside::Bare,
            (Inside::Bare | Inside::Double, '\\') => {
                if let Some(escaped) = rest.chars().next() {
                    out.push(escaped);
                    rest = &rest[escaped.len_utf8()..];
                }
                inside
            }
            _ => inside,
        };
    }
    (out, inside)
}

/// `value` written where `inside` says, so that it stays exactly itself.
fn in_context(value: &str, inside: Inside) -> String {
    let word = quote(value);
    if word == value {
        return value.to_string();
    }
    match inside {
        Inside::Bare => word.into_owned(),
        Inside::Single => format!("'{word}'"),
        Inside::Double => format!("\"{word}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh` makes of `line`: its words, one per line.
    fn sh_words(line: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("for w in {line}; do printf '%s\\n' \"$w\"; done"),
            ])
            .env_clear()
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    const AWKWARD: [&str; 7] = [
        "/mnt/my creds",
        "it's",
        "$(touch x) `y` $HOME",
        "a\"b\\c",
        "*?[x]~",
        "'",
        "",
    ];

    #[test]
    fn plain_values_stay_bare_and_others_are_single_quoted() {
        assert_eq!(quote("/var/run/rolerelay"), "/var/run/rolerelay");
        assert_eq!(quote("ASIA+/=:,.@%_-"), "ASIA+/=:,.@%_-");
        assert_eq!(quote("/mnt/my creds"), "'/mnt/my creds'");
        assert_eq!(quote("it's"), "'it'\"'\"'s'");
        assert_eq!(quote(""), "''");
        for value in AWKWARD {
            assert_eq!(sh_words(&quote(value)), [value], "{value:?}");
        }
    }

    #[test]
    fn a_filled_value_stays_one_word_bare_or_inside_quotes() {
        for value in AWKWARD.into_iter().filter(|v| !v.is_empty()) {
            for (template, expected) in [
                ("{dir}/a.json", format!("{value}/a.json")),
                ("'{dir}/a.json'", format!("{value}/a.json")),
                ("\"{dir}/a.json\"", format!("{value}/a.json")),
                ("x\\ '{dir}'\"{dir}\"", format!("x {value}{value}")),
            ] {
                let line = fill(template, &[("dir", value)]);
                assert_eq!(
                    sh_words(&line),
                    [expected],
                    "{template} with {value:?}: {line}"
                );
            }
        }
        assert_eq!(
            fill(
                "cat {dir}/{role}.json",
                &[("dir", "/app/creds"), ("role", "a")]
            ),
            "cat /app/creds/a.json"
        );
    }

    #[test]
    fn an_unclosed_quote_is_found() {
        assert_eq!(unclosed_quote("cat '{dir}/a.json'"), None);
        assert_eq!(unclosed_quote("cat \"it's\""), None);
        assert_eq!(unclosed_quote("cat \\'x"), None);
        assert_eq!(unclosed_quote("cat '{dir}/a.json"), Some('\''));
        assert_eq!(unclosed_quote("cat \"a\\\""), Some('"'));
    }
}
