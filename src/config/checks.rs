//! The limits STS and the output directory put on configured values, each written once as a
//! small named check. A check returns what to write instead; the caller adds where the value came
//! from. `resolve` validates with them; the rules themselves are in `rules`.

use std::time::Duration;

use super::rules::{
    breaks_an_ini_line, is_external_id_char, is_sts_char, unknown_placeholder,
    EXTERNAL_ID_PUNCTUATION, MAX_SESSION_DURATION, MIN_SESSION_DURATION, ONE_HOUR, STS_PUNCTUATION,
};
use super::values::HumanDuration;

/// `sts.region`: a region name, which becomes part of the STS host name.
pub fn region(region: &str) -> Result<(), String> {
    let ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(())
        .ok_or_else(|| format!("region {region:?} is not a region name like us-east-1"))
}

/// `sts.endpoint_url`: an https URL, or plain http to a loopback host (a local STS for testing)
/// unless `allow_insecure` says so: over plain http, anyone on the path reads the credentials
/// STS returns, or returns their own.
pub fn endpoint_url(url: &str, allow_insecure: bool) -> Result<(), String> {
    sendable_url(url)?;
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "endpoint URL {url:?} must start with https:// (or http:// for a local STS)"
        ));
    };
    if allow_insecure || is_loopback_host(url_host(rest)) {
        return Ok(());
    }
    Err(format!(
        "endpoint URL {url:?} is plain http to a host that is not loopback: the credentials STS returns \
         would cross the network unencrypted, for anyone on the path to read or replace; use https://, \
         or, if that path is trusted, set sts.allow_insecure_endpoint: true (--sts-allow-insecure-endpoint)"
    ))
}

/// A URL the SDK can send a request to: it parses endpoints as HTTP URIs, which are ASCII (an
/// internationalized host name is written in its `xn--` form, as DNS knows it), and would
/// otherwise fail every call with "invalid uri character" long after the configuration passed.
fn sendable_url(url: &str) -> Result<(), String> {
    if !url.is_ascii() {
        return Err(format!(
            "endpoint URL {url:?} has characters beyond ASCII: write an internationalized host \
             name in its xn-- form (bücher.example is xn--bcher-kva.example) and percent-encode \
             the rest"
        ));
    }
    match url.parse::<hyper::Uri>() {
        Ok(uri) if uri.host().is_some_and(|host| !host.is_empty()) => Ok(()),
        Ok(_) => Err(format!(
            "endpoint URL {url:?} names no host: write it like https://sts.us-east-1.amazonaws.com"
        )),
        Err(error) => Err(format!(
            "endpoint URL {url:?} is not a URL ({error}): write it like \
             https://sts.us-east-1.amazonaws.com, with any space or other special character \
             percent-encoded"
        )),
    }
}

/// The host of a URL's rest after `scheme://`: without user info, port or brackets.
fn url_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    }
}

/// `localhost`, or an address of 127.0.0.0/8 or `::1`.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `external_id`: what STS accepts as an ExternalId.
pub fn external_id(id: &str) -> Result<(), String> {
    let ok = (2..=1224).contains(&id.len()) && id.chars().all(is_external_id_char);
    ok.then_some(()).ok_or_else(|| {
        format!(
            "external_id must be 2 to 1224 characters of letters, digits and {EXTERNAL_ID_PUNCTUATION}"
        )
    })
}

/// `source_identity`: what STS accepts as a SourceIdentity.
pub fn source_identity(id: &str) -> Result<(), String> {
    let ok = (2..=64).contains(&id.len()) && id.chars().all(is_sts_char);
    ok.then_some(()).ok_or_else(|| {
        format!(
            "source_identity must be 2 to 64 characters of letters, digits and {STS_PUNCTUATION}"
        )
    })
}

/// A role's session duration: within what STS grants, and longer than `min_remaining`, or the
/// credentials would be due for refresh the moment they arrive.
pub fn session_duration(
    duration: HumanDuration,
    min_remaining: Option<HumanDuration>,
) -> Result<(), String> {
    // STS takes whole seconds (DurationSeconds), so a fraction of a second does not count.
    let seconds = MIN_SESSION_DURATION.as_secs()..=MAX_SESSION_DURATION.as_secs();
    if !seconds.contains(&duration.0.as_secs()) {
        return Err(format!(
            "session duration {duration} is outside what STS allows: use {} to {}",
            HumanDuration(MIN_SESSION_DURATION),
            HumanDuration(MAX_SESSION_DURATION)
        ));
    }
    let Some(min_remaining) = min_remaining else {
        return Ok(());
    };
    if duration.0 <= min_remaining.0 {
        return Err(format!(
            "session duration {duration} is not longer than refresh.min_remaining ({min_remaining}): \
             the credentials would never be fresh enough; raise the duration or lower min_remaining"
        ));
    }
    Ok(())
}

/// A chained role's duration: STS cuts it to [`ONE_HOUR`], which must still outlast `min_remaining`.
pub fn chained_session_duration(
    duration: HumanDuration,
    min_remaining: Option<HumanDuration>,
) -> Result<(), String> {
    let Some(min_remaining) = min_remaining else {
        return Ok(());
    };
    if duration.0.min(ONE_HOUR) <= min_remaining.0 {
        let one_hour = HumanDuration(ONE_HOUR);
        return Err(format!(
            "a role assumed through a chain gets at most {one_hour} from STS, which is not longer than \
             refresh.min_remaining ({min_remaining}): lower min_remaining below {one_hour}"
        ));
    }
    Ok(())
}

/// `policy`: STS wants the inline policy as a JSON document.
pub fn policy_json(policy: &str) -> Result<(), String> {
    serde_json::from_str::<serde_json::Value>(policy)
        .map(drop)
        .map_err(|error| {
            format!("the session policy is not valid JSON ({error}): write it as a JSON string")
        })
}

/// `policy_arns[]`: the ARN of a managed policy.
pub fn managed_policy_arn(arn: &str) -> Result<(), String> {
    (arn.starts_with("arn:") && arn.contains(":policy/"))
        .then_some(())
        .ok_or_else(|| {
            format!(
                "{arn:?} is not a managed policy ARN like arn:aws:iam::aws:policy/ReadOnlyAccess"
            )
        })
}

/// One session tag: STS's limits on key and value length.
pub fn session_tag(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > 128 {
        Err("a tag key must be 1 to 128 characters".into())
    } else if value.chars().count() > 256 {
        Err("a tag value must be at most 256 characters".into())
    } else {
        Ok(())
    }
}

/// `outputs.process_command`: not blank, one line of `config` with no `[` or `]`, every quote
/// closed (so that the filled-in values stay one word each), and only the placeholders the INI
/// writer fills in.
pub fn process_command(command: &str) -> Result<(), String> {
    if let Some(unknown) = unknown_placeholder(command, &["dir", "role"]) {
        return Err(format!(
            "process_command uses {{{}}}: the placeholders are {{dir}} and {{role}}",
            unknown.name
        ));
    }
    if command.chars().any(breaks_an_ini_line) {
        return Err(
            "process_command has a control character, a line break or '[' or ']', which would \
             change the `config` file around it: write one command line without them"
                .into(),
        );
    }
    if let Some(quote) = crate::shell::unclosed_quote(command) {
        return Err(format!(
            "process_command leaves a {quote} quote open: close it (rolerelay quotes {{dir}} itself)"
        ));
    }
    (!command.trim().is_empty())
        .then_some(())
        .ok_or_else(|| "process_command is empty".to_string())
}

/// A directory that becomes `{dir}` in the `credential_process` lines of `config` (`key` names
/// it): spaces and shell characters are quoted there, but a line break or `[`/`]` would change
/// the file around the line.
pub fn directory_in_config(directory: &str, key: &str) -> Result<(), String> {
    if directory.chars().any(breaks_an_ini_line) {
        return Err(format!(
            "{key} has a control character, a line break or '[' or ']', which would change the \
             `config` file it is written into: use a path without them"
        ));
    }
    Ok(())
}

/// A fixed file of the output directory: a plain name in it, and not one of the `.rolerelay-*`
/// names that atomic writes use for their temporary files.
pub fn plain_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.contains('/')
        && name != "."
        && name != ".."
        && !name.starts_with(".rolerelay-");
    ok.then_some(()).ok_or_else(|| {
        format!("{name:?} must be a plain file name in the output directory, without '/'")
    })
}

/// A fraction in a range, for `lifetime_fraction` (`low_open`: 0 excluded) and `jitter` (0 allowed).
pub fn check_fraction(value: f64, low_open: bool, what: &str) -> Result<f64, String> {
    let ok = value.is_finite() && value < 1.0 && if low_open { value > 0.0 } else { value >= 0.0 };
    if ok {
        Ok(value)
    } else if low_open {
        Err(format!(
            "{what} {value} is outside 0..1: use a value above 0 and below 1, like 0.5"
        ))
    } else {
        Err(format!(
            "{what} {value} is outside 0..1: use a value from 0 up to below 1, like 0.1"
        ))
    }
}

/// A delay that must not be zero (a zero backoff or timeout would spin).
pub fn more_than_zero(duration: &HumanDuration) -> Result<(), String> {
    (!duration.0.is_zero())
        .then_some(())
        .ok_or_else(|| "must be more than 0s".to_string())
}

/// `refresh.max_interval`: a cap below a second would make the loop spin.
pub fn at_least_one_second(interval: &HumanDuration) -> Result<(), String> {
    (interval.0 >= Duration::from_secs(1))
        .then_some(())
        .ok_or_else(|| "must be at least 1s".to_string())
}

/// `refresh.concurrency`: with no STS call allowed, nothing would ever refresh.
/// `refresh.concurrency` beyond this only meets STS's own rate limits.
pub const MAX_CONCURRENCY: u64 = 4096;
/// The longest `refresh.timeout`: one STS call.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest retry delay: a longer one only delays recovery.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A duration no longer than `limit`; `why` says where the limit comes from.
pub fn at_most(duration: &HumanDuration, limit: Duration, why: &str) -> Result<(), String> {
    let limit = HumanDuration(limit);
    (duration.0 <= limit.0)
        .then_some(())
        .ok_or_else(|| format!("{duration} is longer than {limit} ({why}): use at most {limit}"))
}

/// `refresh.concurrency`: from 1 to [`MAX_CONCURRENCY`].
pub fn concurrency(count: &u64) -> Result<(), String> {
    at_least_one(count)?;
    (*count <= MAX_CONCURRENCY).then_some(()).ok_or_else(|| {
        format!("{count} calls at once is more than STS's rate limits let through: use at most {MAX_CONCURRENCY}")
    })
}

pub fn at_least_one(count: &u64) -> Result<(), String> {
    (*count >= 1)
        .then_some(())
        .ok_or_else(|| "must be at least 1".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_only_to_loopback_unless_allowed() {
        for url in [
            "https://sts.example.com",
            "https://10.0.0.5",
            "http://127.0.0.1:5000",
            "http://127.200.0.1/",
            "http://LOCALHOST",
            "http://localhost:5000/path?x=1",
            "http://[::1]:5000",
            "http://user@127.0.0.1:5000",
        ] {
            assert_eq!(endpoint_url(url, false), Ok(()), "{url}");
        }
        for url in [
            "http://10.0.0.5:5000",
            "http://sts.example.com",
            "http://localhost@sts.example.com",
            "http://127.0.0.1.sts.example.com",
            "http://localhost.sts.example.com",
            "http://[::ffff:10.0.0.5]",
            "http://0.0.0.0:5000",
        ] {
            let err = endpoint_url(url, false).unwrap_err();
            assert!(
                err.contains("sts.allow_insecure_endpoint: true"),
                "{url}: {err}"
            );
            assert_eq!(endpoint_url(url, true), Ok(()), "{url}, allowed");
        }
        assert!(endpoint_url("ftp://x", true)
            .unwrap_err()
            .contains("https://"));
    }

    #[test]
    fn an_endpoint_the_sdk_could_not_send_to_is_refused_with_what_to_write() {
        for (url, words) in [
            ("https://bücher.example", "xn--bcher-kva.example"),
            ("http://127.0.0.1:5000/ä", "percent-encode"),
            ("https://sts example.com", "percent-encoded"),
            ("https://sts.example.com/a b", "percent-encoded"),
            ("https://", "is not a URL"),
            ("/sts", "names no host"),
        ] {
            let err = endpoint_url(url, true).unwrap_err();
            assert!(err.contains(words), "{url}: {err}");
        }
        for url in [
            "https://xn--bcher-kva.example",
            "https://sts.example.com/a%20b",
            "http://[::1]:5000/",
        ] {
            assert_eq!(endpoint_url(url, false), Ok(()), "{url}");
        }
    }

    #[test]
    fn fractions_are_bounded() {
        assert!(check_fraction(0.5, true, "f").is_ok());
        assert!(check_fraction(0.0, true, "f").is_err());
        assert!(check_fraction(0.0, false, "f").is_ok());
        assert!(check_fraction(1.0, false, "f").is_err());
        assert!(check_fraction(f64::NAN, false, "f").is_err());
    }
}
