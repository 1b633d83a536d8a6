//! Black-box tests of where rolerelay's own access comes from: its source credentials (the
//! default chain's providers and named profiles) and the CA certificates its HTTPS client trusts.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

const ROLE_A: &str = "arn:aws:iam::111111111111:role/RoleForB";

#[test]
fn source_credentials_come_from_the_default_chain_or_a_profile() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let once = |extra: &[&str], env: &[(&str, String)], out: &str| {
        let mut c = sb.once_one(ROLE_A, &moto.url, &sb.path(out));
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        run(c)
    };
    // The container provider (ECS task role, EKS Pod Identity), served here by moto's metadata path.
    let uri = format!(
        "{}/latest/meta-data/iam/security-credentials/default-role",
        moto.url
    );
    let (status, _, stderr) = once(
        &[],
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)],
        "container",
    );
    assert!(status.success(), "container provider: {stderr}");

    // A named profile, with static keys and with a credential_process.
    let process_output = sb.write(
        "home/source.json",
        r#"{"Version":1,"AccessKeyId":"AKIAPROCESS","SecretAccessKey":"process-secret-xyz"}"#,
    );
    let config = sb.write(
        "home/profiles",
        &format!(
            "[profile keys]\naws_access_key_id = AKIAPROFILEEXAMPLE\naws_secret_access_key = profile-secret-xyz\n\n\
             [profile process]\ncredential_process = cat {}\n",
            process_output.display()
        ),
    );
    for profile in ["keys", "process"] {
        let env = [("AWS_CONFIG_FILE", config.display().to_string())];
        let (status, _, stderr) = once(&["--source-profile", profile], &env, profile);
        assert!(status.success(), "profile {profile}: {stderr}");
        assert!(!stderr.contains("profile-secret-xyz") && !stderr.contains("process-secret-xyz"));
    }

    // An EC2 instance profile through IMDSv2: the scenario rolerelay grew from.
    let imds = common::imds::Imds::start();
    let mut c = sb.once_one(ROLE_A, &moto.url, &sb.path("imds"));
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url);
    let (status, _, stderr) = run(c);
    assert!(status.success(), "IMDSv2: {stderr}");
    assert!(!stderr.contains("instance-profile-secret"));
    let mut c = sb.rolerelay();
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url)
        .args(["doctor", "--role-arn", ROLE_A, "--sts-endpoint-url", &moto.url, "--output-dir"])
        .arg(sb.path("imds"))
        .args(["--config", sb.write("listen.yaml", &format!("server:\n  listen: 127.0.0.1:{}\ncredentials_endpoint:\n  listen: 127.0.0.1:{}\n", free_port(), free_port())).to_str().unwrap()]);
    let (status, out, _) = run(c);
    assert!(status.success(), "{out}");
    let found = format!(
        "✓ source credentials: IMDSv2 (EC2 instance profile): access key {}",
        common::imds::ACCESS_KEY_ID
    );
    assert!(out.contains(&found), "{out}");
    assert!(!out.contains("instance-profile-secret") && !out.contains("instance-profile-token"));

    // No source at all: a clear, classified failure and exit 1.
    let (status, _, stderr) = once(&[], &[], "none");
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("invalid_source_credentials"), "{stderr}");
    assert!(
        stderr.contains("rolerelay: 1 role(s) failed: a ("),
        "{stderr}"
    );
}

const OWN_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBojCCAUmgAwIBAgIUMDLeiJmDOPkUI8nM6at9+1UuZnAwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTcm9sZXJlbGF5IHRlc3Qgcm9vdDAgFw0yNjEyMDcxODU2MTla
GA8yMTI2MTExMzE4NTYxOVowHjEcMBoGA1UEAwwTcm9sZXJlbGF5IHRlc3Qgcm9v
dDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABLmgeC0kbClHFS++ydfOGq1CFF2y
3yMHaWZsLEMhXvrtTDoIwV5rKpXdWPALe3pMczJqOhUJTxbHOPsWsyz9hmejYzBh
MB0GA1UdDgQWBBS732ayAyR7JpdVbL5QF2UfL9SANDAfBgNVHSMEGDAWgBS732ay
AyR7JpdVbL5QF2UfL9SANDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIC
BDAKBggqhkjOPQQDAgNHADBEAiB00xBelZI6ZVYEB8pZVeDNtEHEE5ZdXUeSFxl4
KU37owIgHJN95ll3X4fmeytPZfRzU4nGlspqX6q9weXG5Eh67SM=
-----END CERTIFICATE-----\n";

/// Without `SSL_CERT_FILE` or `SSL_CERT_DIR`, the SDK is pointed at the distribution's CA bundle
/// alone (instead of the bundle and every file of `/etc/ssl/certs`); with either, nothing
/// changes. Seen from a `credential_process` program, which inherits the environment.
#[test]
fn the_ca_bundle_alone_is_read_unless_the_environment_names_the_certificates() {
    let moto = Moto::start();
    let sb = Sandbox::new();
    let seen = sb.path("seen");
    let program = sb.write(
        "home/process.sh",
        &format!(
            "#!/bin/sh\nprintf '%s %s' \"${{SSL_CERT_FILE-unset}}\" \"${{SSL_CERT_DIR-unset}}\" > {}\n\
             echo '{{\"Version\":1,\"AccessKeyId\":\"AKIAPROCESS\",\"SecretAccessKey\":\"x\"}}'\n",
            seen.display()
        ),
    );
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let config = sb.write(
        "home/profiles",
        &format!(
            "[profile process]\ncredential_process = {}\n",
            program.display()
        ),
    );
    // A self-signed CA certificate made for this test (the SDK refuses a file with none).
    let own_file = sb.write("certs/own.pem", OWN_CA);
    let once = |env: &[(&str, &str)]| {
        let mut c = sb.once_one(ROLE_A, &moto.url, &sb.path("out"));
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONFIG_FILE", &config)
            .args(["--source-profile", "process"])
            .envs(env.iter().copied());
        let (status, _, stderr) = run(c);
        assert!(status.success(), "{stderr}");
        fs::read_to_string(&seen).unwrap()
    };

    // The first places openssl-probe looks (Debian, then RHEL).
    let bundles = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ];
    let bundle = bundles.iter().find(|b| std::path::Path::new(b).exists());
    let expected = format!("{} unset", bundle.unwrap_or(&"unset"));
    assert_eq!(once(&[]), expected, "no SSL_CERT_*: the bundle alone");
    let dir = sb.path("certs").display().to_string();
    assert_eq!(once(&[("SSL_CERT_DIR", &dir)]), format!("unset {dir}"));
    let file = own_file.display().to_string();
    assert_eq!(once(&[("SSL_CERT_FILE", &file)]), format!("{file} unset"));
}
