//! `rolerelay doctor`: walks the whole path — source credentials, who they are, each role and
//! each hop of its chain, the output directory, the listen addresses — and says for each step what
//! is wrong and how to fix it. Cross-account trust fails in many ways and AWS's errors rarely say
//! which; the hints here do.

use serde::Serialize;

use crate::assume::Assumer;
use crate::config::Config;
use crate::source;

mod files;
mod hints;
mod probes;

pub use hints::{hint, principal_of, Hint, HintContext};

/// What the doctor found at one step of the path: that it works, or why not and what to change.
/// A finding rather than a "check": it is the outcome, not the act. Serialized as one element of
/// the report's `checks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The step, as the user reads it: `source credentials`, `role a hop 1 of 2`...
    pub step: String,
    /// Whether this step works.
    pub ok: bool,
    /// What was seen: the identity, the session and its lifetime, the error...
    pub detail: String,
    /// Why it fails, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What to change, when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A step that works.
    fn ok(step: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            step: step.into(),
            ok: true,
            detail: detail.into(),
            cause: None,
            fix: None,
        }
    }

    /// A step that fails, with the hint's cause and fix.
    fn fail(step: impl Into<String>, detail: impl Into<String>, hint: Hint) -> Finding {
        Finding {
            step: step.into(),
            ok: false,
            detail: detail.into(),
            cause: Some(hint.cause),
            fix: Some(hint.fix),
        }
    }
}

/// The whole diagnosis, as `rolerelay doctor` prints it (text) or serializes it (`--format json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when every step works; the command's exit status.
    pub ok: bool,
    /// What each step found, in the order checked.
    pub checks: Vec<Finding>,
}

impl Report {
    /// The report of these findings; it is ok when all of them are.
    fn new(checks: Vec<Finding>) -> Report {
        Report {
            ok: checks.iter().all(|finding| finding.ok),
            checks,
        }
    }

    /// One line per check (✓/✗), with the cause and the fix under each failure.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for finding in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                if finding.ok { "✓" } else { "✗" },
                finding.step,
                finding.detail
            ));
            if let Some(cause) = &finding.cause {
                out.push_str(&format!("    cause: {}\n", indent(cause)));
            }
            if let Some(fix) = &finding.fix {
                out.push_str(&format!("    fix:   {}\n", indent(fix)));
            }
        }
        out.push_str(if self.ok {
            "all checks passed\n"
        } else {
            "some checks failed\n"
        });
        out
    }
}

/// Continuation lines of a cause or fix line up under its first line's text.
fn indent(text: &str) -> String {
    text.replace('\n', "\n           ")
}

/// Checks every step of the path, from the source credentials to the listen addresses.
pub async fn run(config: &Config) -> Report {
    let mut checks = Vec::new();
    let source_step = probes::source_credentials(config).await;
    let have_source = source_step.ok;
    checks.push(source_step);

    let client = source::sts_client(config).await;
    let mut principal = None;
    if have_source {
        let (identity, caller) = probes::caller_identity(&client, config).await;
        checks.push(identity);
        principal = caller;
    }
    let assumer = Assumer::new(client, config.refresh.timeout.0);
    for role in &config.roles {
        if have_source {
            checks.extend(probes::role_chain(&assumer, role, principal.clone(), config).await);
        } else {
            // Every call would fail for the same reason, which the source step already gives.
            let step = format!("role {}", role.name);
            checks.push(Finding::fail(
                step,
                "not checked",
                Hint::no_source_credentials(),
            ));
        }
    }
    checks.push(files::output_directory(config));
    checks.push(files::output_files(config));
    checks.extend(files::clients(config));
    checks.extend(probes::listen_addresses(config));
    Report::new(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_has_a_line_per_check_and_hints_under_failures() {
        let report = Report::new(vec![
            Finding::ok("source credentials", "environment: access key AKIA"),
            Finding::fail(
                "role a",
                "access_denied: AccessDenied: no",
                Hint {
                    cause: "one\ntwo".into(),
                    fix: "do this".into(),
                },
            ),
        ]);
        let text = report.text();
        assert!(text.starts_with(
            "✓ source credentials: environment: access key AKIA\n✗ role a: access_denied"
        ));
        assert!(
            text.contains("    cause: one\n           two\n    fix:   do this\n"),
            "{text}"
        );
        assert!(text.ends_with("some checks failed\n"));
    }
}
