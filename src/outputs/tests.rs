use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{FileMode, RoleArn};
use crate::credentials::{Credentials, Secret};

/// 2026-11-28T11:00:00Z
pub(super) const EXPIRY: u64 = 1_795_863_600;

pub(super) fn creds(letter: char) -> Credentials {
    let l = letter.to_ascii_lowercase();
    // Role B is in another account, so that each section's account is its own.
    let account = if letter == 'B' {
        "222222222222"
    } else {
        "111111111111"
    };
    Credentials {
        access_key_id: format!("ASIA{}", letter.to_string().repeat(16)),
        secret_access_key: Secret::new(format!("secret-{l}/+=")),
        session_token: Secret::new(format!("token-{l}/+=")),
        expiration: SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY),
        issued: SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 3600),
        role_arn: format!("arn:aws:iam::{account}:role/Role{letter}"),
        account_id: account.into(),
    }
}

pub(super) fn name(s: &str) -> RoleName {
    s.parse().unwrap()
}

fn golden(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(file),
    )
    .unwrap()
}

#[test]
fn credentials_ini_matches_golden() {
    let (a, b) = (creds('A'), creds('B'));
    let all = [(&name("account-a"), &a), (&name("account-b"), &b)];
    let text = ini::render_credentials(&all, Some(&name("account-b")));
    assert_eq!(text, golden("credentials.ini"));
    // Sized once, exactly: the section's fixed length in `section_size` matches the format.
    assert_eq!(text.capacity(), text.len());
}

#[test]
fn config_ini_matches_golden() {
    let roles = [name("account-a"), name("account-b")];
    let text = ini::render_config(
        &roles,
        "cat {dir}/{role}.json",
        Path::new("/app/creds"),
        "eu-west-1",
        Some(&name("account-b")),
    );
    assert_eq!(text, golden("config.ini"));
}

#[test]
fn config_ini_keeps_a_directory_with_spaces_or_quotes_one_word() {
    let roles = [name("a")];
    let render = |command: &str, dir: &str| {
        ini::render_config(&roles, command, Path::new(dir), "eu-west-1", None)
    };
    let text = render("cat {dir}/{role}.json", "/mnt/my creds");
    assert!(
        text.contains("credential_process = cat '/mnt/my creds'/a.json\n"),
        "{text}"
    );
    let text = render("cat \"{dir}/{role}.json\"", "/mnt/it's");
    assert!(
        text.contains("credential_process = cat \"\"'/mnt/it'\"'\"'s'\"/a.json\"\n"),
        "{text}"
    );
}

#[test]
fn process_json_and_env_match_golden() {
    assert_eq!(process_json::render(&creds('A')), golden("account-a.json"));
    assert_eq!(env::render(&creds('A')), golden("account-a.env"));
}

#[test]
fn the_env_file_is_inert_to_a_shell_whatever_a_value_holds() {
    let tmp = tempfile::tempdir().unwrap();
    // Values that STS replies are refused for, in case one ever slipped through.
    let hostile = Credentials {
        secret_access_key: Secret::new("x'$(touch pwned)'`touch pwned` \"$HOME\"\\"),
        session_token: Secret::new("t\nAWS_PWN=$(touch pwned)\n[default]\n"),
        ..creds('A')
    };
    let text = env::render(&hostile);
    std::fs::write(tmp.path().join("a.env"), &text).unwrap();
    let script = r#"set -a; . ./a.env; printf '%s\0' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" "$AWS_CREDENTIAL_EXPIRATION" "${AWS_PWN-unset}""#;
    let out = std::process::Command::new("env")
        .args(["-i", "sh", "-c", script])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{text}");
    assert!(!tmp.path().join("pwned").exists(), "{text}");
    let vars = String::from_utf8(out.stdout).unwrap();
    let values: Vec<&str> = vars.split_terminator('\0').collect();
    assert_eq!(
        values,
        [
            hostile.access_key_id.as_str(),
            hostile.secret_access_key.expose(),
            hostile.session_token.expose(),
            "2026-11-28T11:00:00Z",
            "unset",
        ],
        "every value round-trips exactly, and nothing else is set: {text}"
    );
}

pub(super) fn config(dir: &Path) -> OutputsConfig {
    OutputsConfig {
        directory: dir.to_path_buf(),
        credentials_file: Some("credentials".into()),
        config_file: Some("config".into()),
        app_directory: None,
        process_command: "cat {dir}/{role}.json".into(),
        default_role: None,
        process_json: true,
        env_file: true,
        file_mode: FileMode(0o600),
        owner: None,
        remove_on_exit: false,
    }
}

pub(super) fn role(n: &str) -> RoleConfig {
    RoleConfig {
        name: name(n),
        role_arn: "arn:aws:iam::111111111111:role/R"
            .parse::<RoleArn>()
            .unwrap(),
        session_name: "s-{role}".parse().unwrap(),
        session_name_resolved: format!("s-{n}"),
        external_id: None,
        duration: crate::config::HumanDuration(Duration::from_secs(3600)),
        min_remaining: crate::config::HumanDuration(Duration::from_secs(1200)),
        chain: vec![],
        policy: None,
        policy_arns: vec![],
        tags: BTreeMap::new(),
        transitive_tag_keys: vec![],
        source_identity: None,
    }
}

#[test]
fn publish_writes_every_format_and_withdraw_removes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/dir");
    let roles = [role("a"), role("b")];
    let state = State::new(&roles, None);
    let outputs = Outputs::new(&config(&dir), "us-east-1", &roles, &[]);
    outputs
        .blocking_prepare(&state, SystemTime::UNIX_EPOCH)
        .unwrap();
    assert!(std::fs::read_to_string(dir.join("config"))
        .unwrap()
        .contains("[profile b]"));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "nothing for other users: {mode:o}");

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    for file in ["a.json", "a.env", "credentials", "config"] {
        let meta = std::fs::metadata(dir.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
    }
    assert!(
        !dir.join("b.json").exists(),
        "a role without credentials has no file"
    );
    let ini = std::fs::read_to_string(dir.join("credentials")).unwrap();
    assert!(ini.contains("[a]") && !ini.contains("[b]"));

    // Expired credentials are never written.
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY + 1);
    state.update(&name("b"), |s| s.credentials = Some(Arc::new(creds('B'))));
    assert!(outputs
        .blocking_publish(&state, &name("b"), later)
        .is_empty());
    assert!(!dir.join("b.json").exists());

    assert!(outputs
        .blocking_withdraw(&state, &name("a"), later)
        .is_empty());
    assert!(!dir.join("a.json").exists() && !dir.join("a.env").exists());
    assert!(!std::fs::read_to_string(dir.join("credentials"))
        .unwrap()
        .contains("[a]"));
}

#[test]
fn a_failed_write_is_reported_and_remembered() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a")];
    let state = State::new(&roles, None);
    let outputs = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    outputs
        .blocking_prepare(&state, SystemTime::UNIX_EPOCH)
        .unwrap();
    std::fs::create_dir(tmp.path().join("a.env")).unwrap();
    std::fs::write(tmp.path().join("a.env/x"), "").unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    let failures = outputs.blocking_publish(&state, &name("a"), now);
    assert_eq!(
        failures.iter().map(|f| f.output).collect::<Vec<_>>(),
        vec![Output::EnvFile]
    );
    assert_eq!(failures[0].error.kind(), std::io::ErrorKind::IsADirectory);
    assert!(state
        .get(&name("a"))
        .unwrap()
        .write_errors
        .contains_key(Output::EnvFile.label()));
    assert!(
        !failures[0].to_string().contains("secret-a"),
        "errors never carry the secret"
    );
    std::fs::remove_dir_all(tmp.path().join("a.env")).unwrap();
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    assert!(state.get(&name("a")).unwrap().write_errors.is_empty());
}

#[test]
fn prepare_removes_expired_files_of_an_earlier_run_and_keeps_valid_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a"), role("b")];
    let state = State::new(&roles, None);
    let before = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    let earlier = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    earlier.blocking_prepare(&state, before).unwrap();
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    assert!(earlier
        .blocking_publish(&state, &name("a"), before)
        .is_empty());
    std::fs::write(tmp.path().join("b.json"), "torn").unwrap();
    std::fs::write(tmp.path().join("unrelated.json"), "{}").unwrap();

    let restarted = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    assert_eq!(
        restarted
            .blocking_prepare(&State::new(&roles, None), before)
            .unwrap()
            .removed,
        1,
        "the unreadable b.json"
    );
    assert!(tmp.path().join("a.json").exists(), "still valid: kept");
    let after = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY + 1);
    assert_eq!(
        restarted
            .blocking_prepare(&State::new(&roles, None), after)
            .unwrap()
            .removed,
        1
    );
    assert!(
        !tmp.path().join("a.json").exists() && !tmp.path().join("a.env").exists(),
        "expired: removed"
    );
    assert!(
        tmp.path().join("unrelated.json").exists(),
        "files of no configured role are left alone"
    );
}

/// Outputs for one role `a` in a new directory, prepared a minute before its credentials expire.
fn one_role() -> (tempfile::TempDir, State, Outputs, SystemTime) {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a")];
    let state = State::new(&roles, None);
    let outputs = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    outputs.blocking_prepare(&state, now).unwrap();
    (tmp, state, outputs, now)
}

/// Writes the top level's token, `t0ken`; the first failure, if any.
fn write_token(outputs: &Outputs, state: &State) -> Option<WriteFailure> {
    let tokens = vec![(None, Secret::new("t0ken"))];
    outputs
        .blocking_write_tokens(state, "token", &tokens)
        .into_iter()
        .next()
}

#[test]
fn nothing_is_written_after_remove_all() {
    let (tmp, state, outputs, now) = one_role();
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    assert!(write_token(&outputs, &state).is_none());
    assert_eq!(
        std::fs::read(tmp.path().join("token")).unwrap(),
        b"t0ken",
        "no trailing newline"
    );
    outputs.blocking_remove_all().unwrap();
    // A refresh that was already writing when SIGTERM came finishes after the removal.
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn turning_an_output_off_forgets_its_last_error() {
    let (tmp, state, outputs, now) = one_role();
    state.update(&name("a"), |s| {
        s.credentials = Some(Arc::new(creds('A')));
        s.write_errors
            .insert(Output::EnvFile.label().into(), "disk full".into());
    });
    let off = OutputsConfig {
        env_file: false,
        ..config(tmp.path())
    };
    assert!(outputs
        .blocking_reconfigure(&off, "us-east-1", &state, now)
        .is_empty());
    assert!(state.get(&name("a")).unwrap().write_errors.is_empty());
}

#[test]
fn a_token_file_that_cannot_be_written_is_every_roles_error_until_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a"), role("b")];
    let state = State::new(&roles, None);
    let outputs = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    assert!(write_token(&outputs, &state).is_none());
    let token_error = |role: &str| {
        state
            .get(&name(role))
            .unwrap()
            .write_errors
            .contains_key(Output::Token.label())
    };
    // Someone puts a directory where the token goes: rewriting it (a reload) fails.
    std::fs::remove_file(tmp.path().join("token")).unwrap();
    std::fs::create_dir_all(tmp.path().join("token/blocker")).unwrap();
    let failures = outputs.blocking_reconfigure(&config(tmp.path()), "us-east-1", &state, now);
    assert!(failures.iter().any(|f| f.output == Output::Token));
    assert!(
        token_error("a") && token_error("b"),
        "the endpoint needs it for both"
    );

    // Gone again: the next publication, of either role, restores it for both.
    std::fs::remove_dir_all(tmp.path().join("token")).unwrap();
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    assert_eq!(std::fs::read(tmp.path().join("token")).unwrap(), b"t0ken");
    assert!(!token_error("a") && !token_error("b"));
}

#[test]
fn prepare_removes_what_is_planted_at_a_roles_json_and_reports_what_it_cannot() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a"), role("b"), role("c")];
    let fifo = std::ffi::CString::new(tmp.path().join("a.json").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", tmp.path().join("b.json")).unwrap();
    std::fs::create_dir_all(tmp.path().join("c.json/inner")).unwrap();
    let state = State::new(&roles, None);
    let outputs = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    let prepared = outputs
        .blocking_prepare(&state, SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(prepared.removed, 2, "the FIFO and the link");
    assert!(
        !tmp.path().join("a.json").exists()
            && tmp.path().join("b.json").symlink_metadata().is_err()
    );
    let left: Vec<_> = prepared.left.iter().map(|(path, _)| path.clone()).collect();
    assert_eq!(
        left,
        [tmp.path().join("c.json")],
        "a directory cannot be removed"
    );
    assert!(prepared.failures.is_empty());
}

#[test]
fn a_config_that_cannot_be_written_at_start_is_every_roles_error_retried_with_their_writes() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("config/inner")).unwrap();
    let roles = [role("a"), role("b")];
    let state = State::new(&roles, None);
    let outputs = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    let prepared = outputs
        .blocking_prepare(&state, SystemTime::UNIX_EPOCH)
        .unwrap();
    let failed: Vec<_> = prepared.failures.iter().map(|f| f.output).collect();
    assert_eq!(failed, [Output::Config]);
    let config_error = |role: &str| {
        state
            .get(&name(role))
            .unwrap()
            .write_errors
            .contains_key(Output::Config.label())
    };
    assert!(config_error("a") && config_error("b"));

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    let failed: Vec<_> = outputs
        .blocking_publish(&state, &name("a"), now)
        .iter()
        .map(|f| f.output)
        .collect();
    assert_eq!(failed, [Output::Config], "tried again, though it exists");
    std::fs::remove_dir_all(tmp.path().join("config")).unwrap();
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    assert!(std::fs::read_to_string(tmp.path().join("config"))
        .unwrap()
        .contains("[profile b]"));
    assert!(!config_error("a") && !config_error("b"));
}

#[test]
fn a_token_that_cannot_be_written_at_start_is_kept_and_written_later() {
    let (tmp, state, outputs, now) = one_role();
    std::fs::create_dir_all(tmp.path().join("token/inner")).unwrap();
    let failure = write_token(&outputs, &state);
    assert!(tmp.path().join("token/inner").is_dir(), "left in place");
    assert_eq!(failure.map(|f| f.output), Some(Output::Token));
    assert!(state
        .get(&name("a"))
        .unwrap()
        .write_errors
        .contains_key(Output::Token.label()));

    std::fs::remove_dir_all(tmp.path().join("token")).unwrap();
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    assert_eq!(std::fs::read(tmp.path().join("token")).unwrap(), b"t0ken");
    assert!(state.get(&name("a")).unwrap().write_errors.is_empty());
}

#[test]
fn a_created_directory_stays_ours_and_gives_the_owner_only_its_group() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/dir");
    let roles = [role("a")];
    let with_owner = OutputsConfig {
        owner: Some(crate::config::Owner {
            uid: 4242,
            gid: 4343,
        }),
        ..config(&dir)
    };
    let outputs = Outputs::new(&with_owner, "us-east-1", &roles, &[]);
    let state = State::new(&roles, None);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    match outputs.blocking_prepare(&state, SystemTime::UNIX_EPOCH) {
        Ok(_) => {
            let meta = std::fs::metadata(&dir).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (me, 4343, 0o750)
            );
            let parent = std::fs::metadata(tmp.path().join("new")).unwrap();
            assert_eq!(
                parent.mode() & 0o777,
                0o755,
                "parents stay open to traverse"
            );
        }
        // Not root nor in the group: the group cannot be given.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
    }
}

#[test]
fn a_failed_write_in_a_client_directory_is_that_clients_and_ends_when_a_write_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a"), role("b")];
    let billing = ClientConfig {
        name: "billing".parse().unwrap(),
        roles: vec![name("a")],
        directory: tmp.path().join("billing"),
        app_directory: None,
    };
    let state = State::new(&roles, None);
    let outputs = Outputs::new(
        &config(tmp.path()),
        "us-east-1",
        &roles,
        std::slice::from_ref(&billing),
    );
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    outputs.blocking_prepare(&state, now).unwrap();
    // A directory where billing's a.json goes: the rename over it fails.
    std::fs::create_dir_all(billing.directory.join("a.json/inner")).unwrap();
    for r in ["a", "b"] {
        state.update(&name(r), |s| s.credentials = Some(Arc::new(creds('A'))));
    }
    let failures = outputs.blocking_publish(&state, &name("a"), now);
    assert_eq!(failures.len(), 1, "{failures:?}");
    let errors = state.get(&name("a")).unwrap().write_errors;
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["billing/process_json"]);
    assert!(outputs.blocking_publish(&state, &name("b"), now).is_empty());
    assert!(
        !billing.directory.join("b.json").exists(),
        "b is not billing's"
    );
    assert!(tmp.path().join("b.json").exists() && tmp.path().join("a.json").exists());

    std::fs::remove_dir_all(billing.directory.join("a.json")).unwrap();
    assert!(outputs.blocking_publish(&state, &name("a"), now).is_empty());
    assert!(state.get(&name("a")).unwrap().write_errors.is_empty());
    let credentials = std::fs::read_to_string(billing.directory.join("credentials")).unwrap();
    assert!(
        credentials.contains("[a]") && !credentials.contains("[b]"),
        "{credentials}"
    );
}
