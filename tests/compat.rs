//! The compatibility matrix (issue 14): real AWS clients against the real `rolerelay run`, each
//! through every delivery it supports, while the sidecar rotates the credentials every second.
//!
//! - A long-running SDK client (one process, one client object, GetCallerIdentity in a loop)
//!   must use at least three generations of access keys with no error, through the endpoint
//!   and `credential_process`; through the credentials INI and the `.env` file it must keep the
//!   key it read first (it reads once, by design), while the sidecar rotates at least three
//!   times.
//! - A one-shot client (the AWS CLI) is run once per generation and must use each.
//! - The SDKs that read an account id report the role's (the `account_id_` tests).
//!
//! The evidence is what STS saw: the proxy in front of moto records the key that signed every
//! call (`matrix.rs`). `docs/compatibility.md` is the table these tests back; each run writes
//! the versions it tested to `target/tmp/compat/results/`.

#[path = "compat/clients.rs"]
mod clients;
mod common;
#[path = "compat/matrix.rs"]
mod matrix;

use std::time::Duration;

use clients::{Cli, Sdk};
use common::sidecar::ACCOUNT;
use matrix::{generations, record, Delivery, Stage, ASSUMED};

/// How long a client that refreshes runs: a dozen rotations, and four or more lifetimes of Go's
/// `credential_process` credentials (`matrix::LIFETIME`).
const REFRESHING_SECONDS: f64 = 15.0;
/// How long a client that reads once runs: enough for three rotations, with room for a slow
/// machine.
const READ_ONCE_SECONDS: f64 = 8.0;
/// The generations a refreshing client must use.
const GENERATIONS: usize = 3;

/// `sdk` through `delivery` uses at least [`GENERATIONS`] generations, in order, with no error.
fn refreshes(name: &str, sdk: Sdk, delivery: Delivery) {
    let stage = Stage::start();
    let run = sdk.run(&stage, delivery, REFRESHING_SECONDS);
    let who = format!("{} via {}", sdk.label(), delivery.label());
    assert!(
        run.errors.is_empty() && run.status.success(),
        "{who}: {} of {} calls failed ({}): {:?}\nstderr:\n{}",
        run.errors.len(),
        run.errors.len() + run.calls.len(),
        run.status,
        run.errors,
        run.stderr
    );
    assert!(
        run.calls.len() >= 10,
        "{who}: only {} calls",
        run.calls.len()
    );
    for (arn, _) in &run.calls {
        assert_eq!(arn, ASSUMED, "{who}: a call as someone else");
    }
    let signers = stage.signers();
    let issued = stage.issued();
    let used = generations(&who, &signers, &issued);
    assert!(
        used.len() >= GENERATIONS,
        "{who}: {} generations in {} calls while the sidecar was handed {} keys: {used:?}",
        used.len(),
        signers.len(),
        issued.len()
    );
    record(
        name,
        sdk.label(),
        &run.version,
        delivery.label(),
        &format!(
            "refreshes: {} generations in {} calls, no error",
            used.len(),
            run.calls.len()
        ),
    );
}

/// `sdk` through `delivery` signs every call with the key it read first, while the sidecar
/// rotates at least three times: it reads once.
fn reads_once(name: &str, sdk: Sdk, delivery: Delivery) {
    let stage = Stage::start();
    let run = sdk.run(&stage, delivery, READ_ONCE_SECONDS);
    let who = format!("{} via {}", sdk.label(), delivery.label());
    let signers = stage.signers();
    assert!(
        !run.calls.is_empty() && !signers.is_empty(),
        "{who}: no call succeeded: {run:?}"
    );
    let issued = stage.issued();
    let used = generations(&who, &signers, &issued);
    assert_eq!(
        used.len(),
        1,
        "{who}: expected the credentials read at the start and no other: {used:?}"
    );
    let at = issued.iter().position(|k| *k == used[0]).unwrap();
    let rotations = issued.len() - at - 1;
    assert!(
        rotations >= 3,
        "{who}: the sidecar rotated only {rotations} times while the client ran: this proves nothing"
    );
    // Errors are reported, not asserted: moto accepts expired keys, where AWS would answer
    // ExpiredToken; botocore gives up by itself once AWS_CREDENTIAL_EXPIRATION has passed.
    let errors = match run.errors.first() {
        None => String::new(),
        Some(first) => format!("; {} calls failed, first: {first}", run.errors.len()),
    };
    record(
        name,
        sdk.label(),
        &run.version,
        delivery.label(),
        &format!(
            "reads once: {} calls signed by the first key while the sidecar rotated {rotations} times{errors}",
            signers.len()
        ),
    );
}

/// `cli` through `delivery`, run once per generation, uses each.
fn each_command_takes_the_current_generation(name: &str, cli: Cli, delivery: Delivery) {
    let (_, version) = cli.prepared();
    let stage = Stage::start();
    let who = format!("{} via {}", cli.label(), delivery.label());
    let mut used: Vec<String> = Vec::new();
    for _ in 0..GENERATIONS {
        let last = used.last().cloned();
        // Waits on the file the delivery reads: `<role>.json` is renamed into place before
        // `<role>.env` and `credentials`, and the shell that sources `.env` reads it at once.
        // A rotation between this check and the read leaves it on this generation or a newer one.
        stage
            .sidecar
            .wait_for("a new generation", Duration::from_secs(10), || {
                stage
                    .published_key(delivery)
                    .is_some_and(|key| Some(key) != last)
            });
        let before = stage.signers().len();
        let out = cli.call(&stage, delivery);
        assert!(
            out.status.success(),
            "{who}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["Arn"], ASSUMED, "{who}");
        let signers = stage.signers();
        assert!(signers.len() > before, "{who}: the call did not reach STS");
        used.push(signers.last().unwrap().clone());
    }
    let generations = generations(&who, &used, &stage.issued());
    assert_eq!(
        generations.len(),
        GENERATIONS,
        "{who}: each command must use the credentials current when it starts: {used:?}"
    );
    record(
        name,
        cli.label(),
        version,
        delivery.label(),
        &format!("each command reads anew: {GENERATIONS} commands, {GENERATIONS} generations"),
    );
}

/// The endpoint's token given only as a file is not sent by a client that predates the token
/// file: the endpoint refuses it (401) and the client fails, signing nothing. Recorded as `name`.
fn assert_token_file_unsupported(
    stage: &Stage,
    (name, client, version): (&str, &str, &str),
    failed: bool,
    said: &str,
) {
    assert!(failed, "{client} read the token file after all: {said}");
    assert!(
        stage.signers().is_empty(),
        "{client} signed a call without credentials?"
    );
    assert!(
        stage
            .sidecar
            .metric("rolerelay_endpoint_requests_total{code=\"401\",role=\"app\"}")
            >= 1.0,
        "{client} never asked the endpoint: {said}"
    );
    record(
        name,
        client,
        version,
        Delivery::Endpoint.label(),
        "not supported: the token file is not read; the endpoint answers 401",
    );
}

// boto3 / botocore

#[test]
fn boto3_refreshes_from_the_endpoint() {
    refreshes("boto3_endpoint", Sdk::Boto3, Delivery::Endpoint);
}

#[test]
fn boto3_refreshes_from_credential_process() {
    refreshes("boto3_process", Sdk::Boto3, Delivery::Process);
}

#[test]
fn boto3_reads_the_credentials_file_once() {
    reads_once("boto3_ini", Sdk::Boto3, Delivery::CredentialsFile);
}

#[test]
fn boto3_reads_the_env_file_once() {
    reads_once("boto3_env", Sdk::Boto3, Delivery::EnvFile);
}

// The AWS SDK for JavaScript v3

#[test]
fn js_sdk_refreshes_from_the_endpoint() {
    refreshes("js_endpoint", Sdk::Js, Delivery::Endpoint);
}

#[test]
fn js_sdk_refreshes_from_credential_process() {
    refreshes("js_process", Sdk::Js, Delivery::Process);
}

#[test]
fn js_sdk_reads_the_credentials_file_once() {
    reads_once("js_ini", Sdk::Js, Delivery::CredentialsFile);
}

#[test]
fn js_sdk_reads_the_env_file_once() {
    reads_once("js_env", Sdk::Js, Delivery::EnvFile);
}

// The AWS SDK for Rust

#[test]
fn rust_sdk_refreshes_from_the_endpoint() {
    refreshes("rust_endpoint", Sdk::Rust, Delivery::Endpoint);
}

#[test]
fn rust_sdk_refreshes_from_credential_process() {
    refreshes("rust_process", Sdk::Rust, Delivery::Process);
}

#[test]
fn rust_sdk_reads_the_credentials_file_once() {
    reads_once("rust_ini", Sdk::Rust, Delivery::CredentialsFile);
}

#[test]
fn rust_sdk_reads_the_env_file_once() {
    reads_once("rust_env", Sdk::Rust, Delivery::EnvFile);
}

// The AWS SDK for Go v2 (Debian's 1.17: no AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE yet)

#[test]
fn go_sdk_refreshes_from_the_endpoint_with_the_token_in_the_environment() {
    refreshes("go_endpoint", Sdk::Go, Delivery::EndpointTokenValue);
}

#[test]
fn go_sdk_1_17_cannot_read_the_endpoint_token_file() {
    let stage = Stage::start();
    let run = Sdk::Go.run(&stage, Delivery::Endpoint, 0.0);
    let said = format!("{:?} {}", run.errors, run.stderr);
    let recorded = (
        "go_endpoint_token_file",
        Sdk::Go.label(),
        run.version.as_str(),
    );
    assert_token_file_unsupported(&stage, recorded, !run.status.success(), &said);
}

#[test]
fn go_sdk_refreshes_from_credential_process() {
    refreshes("go_process", Sdk::Go, Delivery::Process);
}

#[test]
fn go_sdk_reads_the_credentials_file_once() {
    reads_once("go_ini", Sdk::Go, Delivery::CredentialsFile);
}

#[test]
fn go_sdk_reads_the_env_file_once() {
    reads_once("go_env", Sdk::Go, Delivery::EnvFile);
}

// The AWS CLI v1 (PyPI) and v2 (Debian's 2.9: no AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE yet)

#[test]
fn aws_cli_v1_takes_each_generation_from_the_endpoint() {
    each_command_takes_the_current_generation("cli1_endpoint", Cli::V1, Delivery::Endpoint);
}

#[test]
fn aws_cli_v1_takes_each_generation_from_credential_process() {
    each_command_takes_the_current_generation("cli1_process", Cli::V1, Delivery::Process);
}

#[test]
fn aws_cli_v1_takes_each_generation_from_the_credentials_file() {
    each_command_takes_the_current_generation("cli1_ini", Cli::V1, Delivery::CredentialsFile);
}

#[test]
fn aws_cli_v1_takes_each_generation_from_the_env_file() {
    each_command_takes_the_current_generation("cli1_env", Cli::V1, Delivery::EnvFile);
}

#[test]
fn aws_cli_v2_takes_each_generation_from_the_endpoint_with_the_token_in_the_environment() {
    each_command_takes_the_current_generation(
        "cli2_endpoint",
        Cli::V2,
        Delivery::EndpointTokenValue,
    );
}

#[test]
fn aws_cli_v2_9_cannot_read_the_endpoint_token_file() {
    let (_, version) = Cli::V2.prepared();
    let stage = Stage::start();
    let out = Cli::V2.call(&stage, Delivery::Endpoint);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    let recorded = ("cli2_endpoint_token_file", Cli::V2.label(), version);
    assert_token_file_unsupported(&stage, recorded, !out.status.success(), &said);
}

#[test]
fn aws_cli_v2_takes_each_generation_from_credential_process() {
    each_command_takes_the_current_generation("cli2_process", Cli::V2, Delivery::Process);
}

#[test]
fn aws_cli_v2_takes_each_generation_from_the_credentials_file() {
    each_command_takes_the_current_generation("cli2_ini", Cli::V2, Delivery::CredentialsFile);
}

#[test]
fn aws_cli_v2_takes_each_generation_from_the_env_file() {
    each_command_takes_the_current_generation("cli2_env", Cli::V2, Delivery::EnvFile);
}

// AccountId (issue 14). These fail until the sidecar writes the account id: `AccountId` in the
// endpoint's answer and in `<role>.json`, `aws_account_id` in the credentials INI,
// `AWS_ACCOUNT_ID` in `<role>.env`; they pass once it does.

/// `sdk` reports the role's account through each of `deliveries` (one call each).
fn reports_the_roles_account(name: &str, sdk: Sdk, deliveries: &[Delivery]) {
    let stage = Stage::start();
    let mut version = String::new();
    for &delivery in deliveries {
        let run = sdk.run(&stage, delivery, 0.0);
        version = run.version.clone();
        let who = format!("{} via {}", sdk.label(), delivery.label());
        assert!(
            run.status.success() && !run.calls.is_empty(),
            "{who}: {run:?}"
        );
        for (_, account_id) in &run.calls {
            assert_eq!(
                account_id.as_deref(),
                Some(ACCOUNT),
                "AccountId: {who} reports no account id, or another: does the sidecar write it?"
            );
        }
    }
    let labels: Vec<&str> = deliveries.iter().map(|d| d.label()).collect();
    record(
        name,
        sdk.label(),
        &version,
        &labels.join(", "),
        &format!("AccountId: reports the role's account, {ACCOUNT}"),
    );
}

#[test]
fn account_id_botocore_reports_the_roles_account_from_every_delivery() {
    // botocore/credentials.py: ContainerProvider (AccountId), ProcessProvider (AccountId),
    // SharedCredentialProvider (aws_account_id), EnvProvider (AWS_ACCOUNT_ID).
    reports_the_roles_account(
        "account_id_boto3",
        Sdk::Boto3,
        &[
            Delivery::Endpoint,
            Delivery::Process,
            Delivery::CredentialsFile,
            Delivery::EnvFile,
        ],
    );
}

#[test]
fn account_id_js_sdk_reports_the_roles_account_from_files_and_credential_process() {
    // @aws-sdk/credential-provider-process (AccountId), -ini (aws_account_id), -env
    // (AWS_ACCOUNT_ID). Not the endpoint: @aws-sdk/credential-provider-http's fromHttp, which
    // the default chain asks first, does not read AccountId.
    reports_the_roles_account(
        "account_id_js",
        Sdk::Js,
        &[
            Delivery::Process,
            Delivery::CredentialsFile,
            Delivery::EnvFile,
        ],
    );
}

#[test]
fn account_id_rust_sdk_reports_the_roles_account_from_every_delivery() {
    // aws-config: ecs.rs and credential_process.rs (AccountId), profile/credentials/repr.rs
    // (aws_account_id), environment/credentials.rs (AWS_ACCOUNT_ID).
    reports_the_roles_account(
        "account_id_rust",
        Sdk::Rust,
        &[
            Delivery::Endpoint,
            Delivery::Process,
            Delivery::CredentialsFile,
            Delivery::EnvFile,
        ],
    );
}
