//! How an S3 client is configured: explicit overrides on top of the standard
//! AWS chain.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};

/// The region used when neither the configuration nor the environment names
/// one (emulators accept any region; AWS redirects a wrong one with a 301).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Settings of an S3 client. Every field left unset comes from the standard
/// AWS chain: environment variables (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...,
/// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`), the shared config and
/// credentials files, web identity, the ECS/Batch task role and IMDS.
///
/// For an endpoint that is not AWS itself (an emulator, MinIO, R2, ...),
/// path-style addressing is used and checksums are only computed and checked
/// when an operation requires them, unless overridden.
///
/// The client makes exactly **one attempt per request**: the SDK's own
/// retries are off (whatever `AWS_MAX_ATTEMPTS` or a profile says), because
/// every request of a [`UPath`](cloudmux_core::UPath) goes through the core's
/// [`Retry`](cloudmux_core::layers::Retry) layer, which retries transient
/// failures and, unlike an SDK, never mistakes a retried conditional write
/// meeting its own effect for a lost race.
///
/// ```
/// use cloudmux_s3::S3Config;
/// let cfg = S3Config::new()
///     .endpoint("http://127.0.0.1:5055")
///     .region("us-east-1");
/// assert!(cfg.is_custom_endpoint());
/// assert!(cfg.effective_path_style());
/// ```
///
/// Equal configurations (`==`, `Hash`) build interchangeable clients, which
/// is how a registry keeps one client per configuration; compare them after
/// [`S3Config::with_env_endpoint`] so that the endpoint the environment
/// names counts too. `Debug` never shows the credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct S3Config {
    /// The endpoint URL; `None` for the environment's or AWS's own.
    pub endpoint: Option<String>,
    /// The region; `None` for the environment's (then [`DEFAULT_REGION`]).
    pub region: Option<String>,
    /// Path-style (`host/bucket/key`) rather than virtual-hosted addressing;
    /// `None` chooses path-style exactly for non-AWS endpoints.
    pub force_path_style: Option<bool>,
    /// Send unsigned requests (public buckets). Emulators want dummy
    /// credentials instead: moto refuses unsigned conditional writes.
    pub anonymous: bool,
    /// The time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Static credentials (access key id, secret) instead of the chain; set
    /// with [`S3Config::static_credentials`]. Never printed.
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("anonymous", &self.anonymous)
            .field("connect_timeout", &self.connect_timeout)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "static (redacted)"),
            )
            .finish()
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: None,
            force_path_style: None,
            anonymous: false,
            connect_timeout: Duration::from_secs(10),
            credentials: None,
        }
    }
}

impl S3Config {
    /// Everything from the standard AWS chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the endpoint URL (such as `http://127.0.0.1:4566`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Forces path-style addressing on or off.
    pub fn force_path_style(mut self, yes: bool) -> Self {
        self.force_path_style = Some(yes);
        self
    }

    /// Sends unsigned requests.
    pub fn anonymous(mut self, yes: bool) -> Self {
        self.anonymous = yes;
        self
    }

    /// Uses these static credentials instead of the AWS chain (for
    /// emulators, which accept any keys, or keys kept outside the chain).
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// The endpoint that will be used: the explicit one, else
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`.
    pub fn effective_endpoint(&self) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL"))
    }

    /// This configuration with the endpoint the environment names now (see
    /// [`effective_endpoint`](Self::effective_endpoint)) written in, so that
    /// it no longer changes with the environment.
    pub fn with_env_endpoint(self) -> Self {
        match self.effective_endpoint() {
            Some(e) if self.endpoint.is_none() => self.endpoint(e),
            _ => self,
        }
    }

    /// True when the effective endpoint is set and is not AWS itself.
    pub fn is_custom_endpoint(&self) -> bool {
        self.effective_endpoint()
            .is_some_and(|e| !is_aws_endpoint(&e))
    }

    /// Whether requests use path-style addressing.
    pub fn effective_path_style(&self) -> bool {
        self.force_path_style
            .unwrap_or_else(|| self.is_custom_endpoint())
    }

    /// Builds an SDK client. Loads the AWS chain (which may read files and,
    /// lazily, ask IMDS), so build one client and share it.
    pub(crate) async fn client(&self) -> aws_sdk_s3::Client {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &self.endpoint {
            loader = loader.endpoint_url(e.clone());
        }
        if self.anonymous {
            loader = loader.no_credentials();
        } else if let Some((id, secret)) = &self.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "cloudmux-static",
            ));
        }
        let sdk = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&sdk)
            // One attempt per request: retries belong to the core's Retry layer.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .build(),
            )
            .force_path_style(self.effective_path_style());
        if sdk.region().is_none() {
            b = b.region(Region::from_static(DEFAULT_REGION));
        }
        if self.is_custom_endpoint() {
            // The 2025 default (a CRC checksum on every request and its check
            // on every response) breaks LocalStack, MinIO and R2.
            b = b
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// True for AWS's own S3 endpoints (commercial, China, GovCloud, FIPS,
/// dual-stack): their host ends with `amazonaws.com` or `amazonaws.com.cn`.
pub(crate) fn is_aws_endpoint(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host_port
        .rsplit_once('@')
        .map_or(host_port, |(_, h)| h)
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    host == "amazonaws.com"
        || host.ends_with(".amazonaws.com")
        || host.ends_with(".amazonaws.com.cn")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_endpoints_are_recognized() {
        assert!(is_aws_endpoint("https://s3.amazonaws.com"));
        assert!(is_aws_endpoint("https://s3.eu-west-1.amazonaws.com/"));
        assert!(is_aws_endpoint("https://s3.cn-north-1.amazonaws.com.cn"));
        assert!(is_aws_endpoint("https://S3.US-EAST-1.AMAZONAWS.COM:443"));
        assert!(!is_aws_endpoint("http://127.0.0.1:4566"));
        assert!(!is_aws_endpoint("http://localhost:5055/"));
        assert!(!is_aws_endpoint("https://acct.r2.cloudflarestorage.com"));
        assert!(!is_aws_endpoint("https://amazonaws.com.evil.example"));
    }

    #[test]
    fn explicit_overrides_win() {
        let c = S3Config::new().endpoint("http://127.0.0.1:1");
        assert!(c.is_custom_endpoint());
        assert!(c.effective_path_style());
        let c = c.force_path_style(false);
        assert!(!c.effective_path_style());
        let c = S3Config::new().endpoint("https://s3.us-west-2.amazonaws.com");
        assert!(!c.is_custom_endpoint());
        assert!(!c.effective_path_style());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = S3Config::new().static_credentials("AKIDEXAMPLE", "very-secret-key");
        let d = format!("{c:?}");
        assert!(
            !d.contains("very-secret-key") && !d.contains("AKIDEXAMPLE"),
            "{d}"
        );
        assert!(d.contains("redacted"), "{d}");
    }
}
