//! The sidecar's own credentials and the STS client that uses them.
//!
//! The credentials come from aws-config's default chain (environment, shared profile, web
//! identity / IRSA, ECS task role and EKS Pod Identity through the container provider, IMDSv2),
//! or from the named `source.profile`. The chain caches and refreshes them by itself.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use crate::config::Config;

/// Builds the STS client: the configured region's regional endpoint (or `sts.endpoint_url`).
///
/// The SDK's own retries are off: the refresher retries with its own backoff, so every attempt
/// is seen, counted and logged once.
pub async fn sts_client(config: &Config) -> aws_sdk_sts::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.sts.region.clone()))
        .http_client(https_client());
    if let Some(profile) = &config.source.profile {
        loader = loader.profile_name(profile);
    }
    let shared = loader.load().await;
    let mut sts = aws_sdk_sts::config::Builder::from(&shared).retry_config(RetryConfig::disabled());
    if let Some(url) = &config.sts.endpoint_url {
        sts = sts.endpoint_url(url);
    }
    aws_sdk_sts::Client::from_conf(sts.build())
}

/// The HTTP client of STS and of the credential providers (IMDS, container, web identity):
/// rustls with ring and the system's CA certificates (see [`use_the_ca_bundle_alone`]).
pub fn https_client() -> aws_sdk_sts::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Points the SDK's CA loader at the distribution's bundle file alone, when the environment
/// chooses nothing (no `SSL_CERT_FILE`, no `SSL_CERT_DIR`) and there is a bundle.
///
/// Left to itself, the loader reads the bundle and then every file of the certificate directory
/// (`/etc/ssl/certs`: some 150 files on a Debian host, each a copy of a certificate already in
/// the bundle): parsing each certificate twice was a third of the time to first credentials on
/// a host. Distributions build both from the same certificates (`update-ca-certificates`,
/// `update-ca-trust`); whoever keeps a CA only in a directory says so with `SSL_CERT_DIR`.
///
/// It sets `SSL_CERT_FILE` in this process's environment, which only a single-threaded process
/// may do: call it in `main` before the runtime starts. Programs the SDK starts
/// (`credential_process`) inherit it; to OpenSSL, Go and the AWS CLI it names the file they
/// read by default anyway.
pub fn use_the_ca_bundle_alone() {
    if openssl_probe::has_ssl_cert_env_vars() {
        return;
    }
    if let Some(bundle) = openssl_probe::probe().cert_file {
        std::env::set_var("SSL_CERT_FILE", bundle);
    }
}
