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
/// rustls with ring and the system's CA certificates.
pub fn https_client() -> aws_sdk_sts::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
