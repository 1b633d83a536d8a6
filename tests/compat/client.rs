//! The Rust client of the compatibility matrix (tests/compat.rs): one application process with one
//! `aws_config::load_defaults` configuration and one STS client, configured by nothing but its
//! environment, calling GetCallerIdentity in a loop.
//!
//! `cargo run --example compat-client -- SECONDS STS_URL`
//!
//! Prints one JSON line first (`{client, version}`), then one per call: `{ok: true, arn,
//! account_id}` or `{ok: false, error}`. Exits 1 if any call failed.
//!
//! The one departure from an application's `aws_config::load_defaults`: the HTTP client is given,
//! as rolerelay's own `source.rs` gives it, because this build of aws-config has its default
//! HTTP client (and its aws-lc C build) turned off.

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use serde_json::json;

/// Between calls: several calls per rotation, without flooding moto.
const PAUSE: Duration = Duration::from_millis(200);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seconds, url] = args.as_slice() else {
        eprintln!("usage: compat-client SECONDS STS_URL");
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    println!(
        "{}",
        json!({"client": "aws-sdk-rust", "version": format!("aws-sdk-sts {}", aws_sdk_sts::meta::PKG_VERSION)})
    );

    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .http_client(http)
        .load()
        .await;
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&shared)
            .endpoint_url(url)
            .build(),
    );
    let provider = shared.credentials_provider().expect("the default chain");

    let mut failed = false;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let line = match sts.get_caller_identity().send().await {
            Ok(out) => {
                // The chain itself, outside the client's cache: only for the account id it reads.
                let account_id = provider
                    .provide_credentials()
                    .await
                    .ok()
                    .and_then(|c| c.account_id().map(|a| a.as_str().to_string()));
                json!({"ok": true, "arn": out.arn(), "account_id": account_id})
            }
            Err(e) => {
                failed = true;
                let error = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
                json!({"ok": false, "error": error})
            }
        };
        println!("{line}");
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    std::process::exit(i32::from(failed));
}
