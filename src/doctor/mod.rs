//! `rolerelay doctor`: walks the whole path — source credentials, who they are, each role and
//! each hop of its chain, the output directory, the listen addresses — and says for each step what
//! is wrong and how to fix it. Cross-account trust fails in many ways and AWS's errors rarely say
//! which; the hints here do.

use std::net::TcpListener;

use serde::Serialize;

use crate::assume::{AssumeError, Assumer};
use crate::config::Config;
use crate::source;

mod hints;
mod probes;

use probes::{output_checks, role_checks, rolerelay_at, source_credentials};

pub use hints::{hint, principal_of, Hint, HintContext};

/// What the doctor found at one step of the path: that it works, or why not and what to change.
/// A finding rather than a "check": it is the outcome, not the act. Serialized as one element of
/// the report's `checks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The step, as the user reads it: `source credentials`, `role a hop 1 of 2`, `server.listen ...`.
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

/// The whole diagnosis.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// True when every check passed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Finding>,
}

impl Report {
    /// One line per check (✓/✗), with the cause and the fix under each failure.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                if c.ok { "✓" } else { "✗" },
                c.step,
                c.detail
            ));
            if let Some(cause) = &c.cause {
                out.push_str(&format!("    cause: {}\n", indent(cause)));
            }
            if let Some(fix) = &c.fix {
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

fn indent(text: &str) -> String {
    text.replace('\n', "\n           ")
}

/// Runs every check.
pub async fn run(config: &Config) -> Report {
    let mut checks = Vec::new();
    let source = source_credentials(config).await;
    let found = source.ok;
    checks.push(source);

    let client = source::sts_client(config).await;
    let mut principal = None;
    if found {
        let who = tokio::time::timeout(
            config.refresh.timeout.0,
            client.get_caller_identity().send(),
        )
        .await;
        checks.push(match who {
            Ok(Ok(out)) => {
                let arn = out.arn().unwrap_or_default().to_string();
                principal = Some(principal_of(&arn));
                Finding::ok(
                    "source identity",
                    format!("{arn} (account {})", out.account().unwrap_or("?")),
                )
            }
            Ok(Err(e)) => {
                let e = AssumeError::from_sdk(&e, "");
                let ctx = HintContext {
                    region: config.sts.region.clone(),
                    ..HintContext::default()
                };
                Finding::fail(
                    "source identity",
                    format!("sts:GetCallerIdentity failed: {e}"),
                    hint(&e, &ctx),
                )
            }
            Err(_) => {
                let e = AssumeError::timed_out(config.refresh.timeout.0);
                let ctx = HintContext {
                    region: config.sts.region.clone(),
                    ..HintContext::default()
                };
                Finding::fail("source identity", e.to_string(), hint(&e, &ctx))
            }
        });
    }

    let assumer = Assumer::new(client, config.refresh.timeout.0);
    for role in &config.roles {
        if !found {
            checks.push(Finding::fail(
                format!("role {}", role.name),
                "not checked",
                Hint::no_source_credentials(),
            ));
            continue;
        }
        checks.extend(role_checks(&assumer, role, principal.clone(), config).await);
    }
    checks.extend(output_checks(config));
    let mut listens = vec![("server.listen", config.server.listen)];
    if config.credentials_endpoint.enabled {
        listens.push((
            "credentials_endpoint.listen",
            config.credentials_endpoint.listen,
        ));
    }
    for (key, addr) in listens {
        checks.push(match TcpListener::bind(addr) {
            Ok(_) => Finding::ok(format!("{key} {addr}"), "free to bind"),
            // Run beside the sidecar (`kubectl exec`, ECS Exec), the ports are its own: fine.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && rolerelay_at(key, addr) => {
                Finding::ok(format!("{key} {addr}"), "in use by the running rolerelay")
            }
            Err(e) => Finding::fail(
                format!("{key} {addr}"),
                format!("cannot bind: {e}"),
                Hint {
                    cause: "the address is in use (another rolerelay?) or not on this host".into(),
                    fix: format!("stop what listens there, or change {key}"),
                },
            ),
        });
    }
    Report {
        ok: checks.iter().all(|c| c.ok),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_has_a_line_per_check_and_hints_under_failures() {
        let report = Report {
            ok: false,
            checks: vec![
                Finding::ok("source credentials", "environment: access key AKIA"),
                Finding::fail(
                    "role a",
                    "access_denied: AccessDenied: no",
                    Hint {
                        cause: "one\ntwo".into(),
                        fix: "do this".into(),
                    },
                ),
            ],
        };
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
