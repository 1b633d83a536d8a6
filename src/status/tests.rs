//! Unit tests of `rolerelay status`: the durations, the tables, the escaping, the URLs.

use super::*;

/// A document at 2026-12-02T17:00:00Z: `a` ready, `b` failing and refused, `c` expired and
/// unable to write one output; one client, a refused reload.
const DOCUMENT: &str = r#"{
  "version": "0.1.0",
  "time": "2026-12-02T17:00:00Z",
  "roles": [
    {"name": "a", "role_arn": "arn:aws:iam::111111111111:role/a", "ready": true,
     "access_key_id": "ASIAEXAMPLE", "expiration": "2026-12-02T17:52:10Z",
     "last_success": "2026-12-02T16:52:10Z", "next_refresh": "2026-12-02T17:22:03Z",
     "consecutive_failures": 0, "last_error": null, "write_errors": {}},
    {"name": "account-b", "ready": false, "not_ready_reason": "no credentials yet",
     "expiration": null, "next_refresh": "2026-12-02T17:00:04Z", "consecutive_failures": 3,
     "last_error": {"kind": "access_denied", "code": "AccessDenied",
                    "message": "AccessDenied: User: x is not authorized"},
     "write_errors": {}},
    {"name": "c", "ready": false, "not_ready_reason": "the credentials output could not be written",
     "expiration": "2026-12-02T16:57:00Z", "next_refresh": "2026-12-02T16:59:00Z",
     "consecutive_failures": 0, "last_error": null,
     "write_errors": {"credentials": "cannot write /out/credentials: No space left on device"},
     "some_future_field": [1, 2]}
  ],
  "clients": [
    {"name": "billing", "directory": "/var/run/rolerelay/billing", "roles": ["a", "c"],
     "last_fetch": {"a": "2026-12-02T16:59:48Z"}},
    {"name": "reports", "directory": "/reports", "roles": ["a"], "last_fetch": {}}
  ],
  "last_reload": {"time": "2026-12-02T16:55:00Z", "result": "error",
                  "error": "config.yaml:3: roles[0].duration: no unit", "restart_needed": []}
}"#;

fn document(text: &str) -> Document {
    serde_json::from_str(text).unwrap()
}

#[test]
fn durations_show_their_two_largest_units() {
    let s = |secs| short(Duration::from_secs(secs));
    assert_eq!(s(0), "0s");
    assert_eq!(s(9), "9s");
    assert_eq!(s(60), "1m");
    assert_eq!(s(52 * 60 + 10), "52m 10s");
    assert_eq!(s(3 * 3600 + 2 * 60 + 59), "3h 2m");
    assert_eq!(s(3600 + 5), "1h");
    assert_eq!(s(2 * 86_400 + 3 * 3600), "2d 3h");
    assert_eq!(short(Duration::from_millis(999)), "0s");
}

#[test]
fn times_read_relative_to_the_sidecars_clock() {
    let now = humantime::parse_rfc3339("2026-12-02T17:00:00Z").unwrap();
    let at = |t: &str| Some(t.to_string());
    let past = at("2026-12-02T16:57:00Z");
    let future = at("2026-12-02T17:00:09Z");
    assert_eq!(relative(&future, now, expires_in), "9s");
    assert_eq!(relative(&past, now, expires_in), "expired 3m ago");
    assert_eq!(relative(&future, now, refresh_in), "in 9s");
    assert_eq!(relative(&past, now, refresh_in), "due");
    assert_eq!(relative(&past, now, ago), "3m ago");
    assert_eq!(
        relative(&at("2026-12-02T17:00:00Z"), now, refresh_in),
        "due"
    );
    assert_eq!(relative(&None, now, ago), "-");
    assert_eq!(
        relative(&at("yesterday\u{1b}[2J"), now, ago),
        "yesterday\\u{1b}[2J"
    );
}

#[test]
fn the_text_shows_each_role_its_errors_the_clients_and_the_reload() {
    let text = render_text(&document(DOCUMENT), "http://127.0.0.1:9090/status");
    let expected = "\
rolerelay 0.1.0 at http://127.0.0.1:9090/status: 1 of 3 roles ready

ROLE       STATE                                                   EXPIRES IN      NEXT REFRESH  FAILURES  LAST ERROR
a          ready                                                   52m 10s         in 22m 3s     0         -
account-b  not ready: no credentials yet                           -               in 4s         3         access_denied (AccessDenied)
c          not ready: the credentials output could not be written  expired 3m ago  due           0         -

account-b: last error: AccessDenied: User: x is not authorized
c: write error (credentials): cannot write /out/credentials: No space left on device

CLIENT   DIRECTORY                   ROLES  LAST FETCH
billing  /var/run/rolerelay/billing  a, c   a 12s ago
reports  /reports                    a      never

last reload: error 5m ago: config.yaml:3: roles[0].duration: no unit
";
    assert_eq!(text, expected, "got:\n{text}");
}

#[test]
fn without_clients_or_reloads_their_parts_are_left_out() {
    let text = render_text(
        &document(r#"{"time": "2026-12-02T17:00:00Z", "roles": [{"name": "a", "ready": true}]}"#),
        "http://h:1/status",
    );
    assert_eq!(
        text,
        "rolerelay  at http://h:1/status: 1 of 1 role ready\n\n\
         ROLE  STATE  EXPIRES IN  NEXT REFRESH  FAILURES  LAST ERROR\n\
         a     ready  -           -             0         -\n"
    );
    let reload = r#"{"time": "2026-12-02T17:00:00Z", "roles": [],
        "last_reload": {"time": "2026-12-02T16:00:00Z", "error": null, "restart_needed": ["sts.region"]}}"#;
    assert!(render_text(&document(reload), "u")
        .ends_with("last reload: success 1h ago; restart needed for sts.region\n"));
}

#[test]
fn every_role_ready_exits_0_any_not_ready_or_none_exits_1() {
    assert_eq!(exit_code(&document(DOCUMENT)), EXIT_NOT_READY);
    let ready = r#"{"time": "2026-12-02T17:00:00Z", "roles": [{"name": "a", "ready": true}]}"#;
    assert_eq!(exit_code(&document(ready)), EXIT_READY);
    let none = r#"{"time": "2026-12-02T17:00:00Z", "roles": []}"#;
    assert_eq!(exit_code(&document(none)), EXIT_NOT_READY);
}

#[test]
fn control_characters_and_bidi_overrides_from_the_server_are_escaped_everywhere() {
    assert_eq!(one_line("plain: ✓ ä"), "plain: ✓ ä");
    assert_eq!(
        one_line("a\u{1b}[31mred\nb\r\t"),
        "a\\u{1b}[31mred\\nb\\r\\t"
    );
    assert_eq!(one_line("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
    let hostile = DOCUMENT
        .replace("User: x", "User: \\u001b]0;owned\\u0007x")
        .replace("/reports", "/rep\\norts")
        .replace("\"a\", \"c\"]", "\"a\\u001b[2J\", \"c\"]");
    let text = render_text(&document(&hostile), "http://h:1/status");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("User: \\u{1b}]0;owned\\u{7}x"), "{text}");
    assert!(text.contains("/rep\\norts"), "{text}");
}

#[test]
fn a_url_without_a_path_asks_status_and_one_with_a_path_is_kept() {
    assert_eq!(status_url("http://h:1"), "http://h:1/status");
    assert_eq!(status_url("http://h:1/"), "http://h:1/status");
    assert_eq!(status_url("http://h:1/status"), "http://h:1/status");
    assert_eq!(
        status_url("http://h:1/rolerelay/status"),
        "http://h:1/rolerelay/status"
    );
    assert_eq!(status_url("https://h:1"), "https://h:1");
    assert_eq!(
        default_url("0.0.0.0:9090".parse().unwrap()),
        "http://127.0.0.1:9090/status"
    );
    assert_eq!(
        default_url("[::1]:8080".parse().unwrap()),
        "http://[::1]:8080/status"
    );
}

#[test]
fn answers_that_are_not_a_status_document_are_refused() {
    for body in [
        r#"{"status":"ok"}"#,
        "<html>moto</html>",
        r#"{"time": "soon", "roles": []}"#,
        r#"{"time": "2026-12-02T17:00:00Z", "roles": {"a": 1}}"#,
    ] {
        assert!(serde_json::from_str::<Document>(body).is_err(), "{body}");
    }
}

#[test]
fn the_json_format_is_the_document_pretty_printed() {
    let json = render_json(r#"{"roles":[{"name":"a"}],"time":"t"}"#);
    assert_eq!(
        json,
        "{\n  \"roles\": [\n    {\n      \"name\": \"a\"\n    }\n  ],\n  \"time\": \"t\"\n}\n"
    );
}

#[test]
fn the_errors_name_the_url_and_what_to_check() {
    let refused = StatusError::Unreachable {
        url: "http://127.0.0.1:1/status".into(),
        source: std::io::ErrorKind::ConnectionRefused.into(),
    };
    let text = refused.to_string();
    assert!(text.starts_with("http://127.0.0.1:1/status: "), "{text}");
    assert!(text.contains("is server.listen 127.0.0.1:1?"), "{text}");
    assert!(text.contains("--url"), "{text}");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/status", silent.local_addr().unwrap());
    let waited = fetch(&url, Duration::from_millis(200)).unwrap_err();
    assert!(matches!(waited, StatusError::NoAnswer { .. }), "{waited}");
    assert!(
        waited.to_string().contains("no answer within 200ms"),
        "{waited}"
    );
    let bad = fetch("https://127.0.0.1:1", Duration::from_secs(1)).unwrap_err();
    assert!(matches!(bad, StatusError::BadUrl(_)), "{bad}");
}
