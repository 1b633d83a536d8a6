//! A minimal EC2 instance metadata service (IMDSv2) on loopback, serving an instance profile's
//! credentials: what an EC2 instance in account B gives rolerelay. moto serves the credential
//! paths too, but its token reply lacks the TTL header the AWS SDKs require.

use std::io::{Read, Write};
use std::net::TcpListener;

use super::now;

/// The instance profile's role name.
pub const PROFILE: &str = "AssumeRoleInA";
/// The instance profile's access key id.
pub const ACCESS_KEY_ID: &str = "ASIAINSTANCEPROFILE1";

/// A running IMDS; its thread lives as long as the test process.
pub struct Imds {
    /// `http://127.0.0.1:<port>`, for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub url: String,
}

impl Imds {
    /// Starts the service.
    pub fn start() -> Imds {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = request.lines().next().unwrap_or_default().to_string();
                let token_ok = request
                    .to_ascii_lowercase()
                    .contains("x-aws-ec2-metadata-token: imds-token");
                let (status, headers, body) = if line.starts_with("PUT /latest/api/token") {
                    (
                        200,
                        "x-aws-ec2-metadata-token-ttl-seconds: 21600\r\n",
                        "imds-token".to_string(),
                    )
                } else if !token_ok {
                    (401, "", String::new())
                } else if line.starts_with("GET /latest/meta-data/iam/security-credentials/ ") {
                    (200, "", PROFILE.to_string())
                } else if line.starts_with(&format!(
                    "GET /latest/meta-data/iam/security-credentials/{PROFILE} "
                )) {
                    let expiration = humantime::format_rfc3339_seconds(
                        now() + std::time::Duration::from_secs(6 * 3600),
                    );
                    let body = format!(
                        "{{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"{ACCESS_KEY_ID}\",\
                         \"SecretAccessKey\":\"instance-profile-secret\",\"Token\":\"instance-profile-token\",\
                         \"Expiration\":\"{expiration}\",\"LastUpdated\":\"{expiration}\"}}"
                    );
                    (200, "", body)
                } else {
                    (404, "", String::new())
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Imds { url }
    }
}
