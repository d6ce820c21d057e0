//! Where the client connects and how it authenticates.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cloudmux_core::{Error, ErrorKind, Op, Result};
use gcloud_storage::client::google_cloud_auth::credentials::CredentialsFile;
use gcloud_storage::client::{Client, ClientConfig};

use crate::error::{self, Cause};

/// The public GCS endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// The variable other Google clients read to talk to an emulator.
pub const EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";

/// How requests authenticate.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Credentials {
    /// Application Default Credentials, in Google's order: the key file named
    /// by `GOOGLE_APPLICATION_CREDENTIALS` (or the JSON text in
    /// `GOOGLE_APPLICATION_CREDENTIALS_JSON`), then gcloud's user file
    /// (`gcloud auth application-default login`), then the metadata server
    /// of a Google Cloud machine.
    #[default]
    ApplicationDefault,
    /// A service-account key file (the JSON downloaded from the console).
    ServiceAccountKeyFile(PathBuf),
    /// A service-account key given as its JSON text.
    ServiceAccountKeyJson(String),
    /// No credentials at all: for emulators and public buckets.
    Anonymous,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApplicationDefault => f.write_str("ApplicationDefault"),
            Credentials::ServiceAccountKeyFile(p) => {
                f.debug_tuple("ServiceAccountKeyFile").field(p).finish()
            }
            // The key itself never appears in logs.
            Credentials::ServiceAccountKeyJson(_) => {
                f.write_str("ServiceAccountKeyJson(<redacted>)")
            }
            Credentials::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Settings of a GCS client.
///
/// ```
/// use cloudmux_gcs::{Credentials, GcsOptions};
/// let opts = GcsOptions::new()
///     .endpoint("http://127.0.0.1:4443")
///     .credentials(Credentials::Anonymous);
/// assert_eq!(opts.endpoint_url(), "http://127.0.0.1:4443");
/// ```
///
/// Equal options (`==`, `Hash`) build interchangeable clients: a registry
/// keeps one client per value. `Debug` never shows a key given as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcsOptions {
    /// Base URL of the JSON API, without `/storage/v1`.
    endpoint: String,
    /// How to authenticate.
    credentials: Credentials,
    /// Bound on establishing a connection, so a dead endpoint fails fast.
    connect_timeout: Duration,
    /// Bound on waiting for each read of a response, so a stalled
    /// connection becomes a retryable error instead of a hang.
    read_timeout: Duration,
}

impl Default for GcsOptions {
    fn default() -> Self {
        GcsOptions {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            credentials: Credentials::ApplicationDefault,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl GcsOptions {
    /// The public endpoint with Application Default Credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`new`](Self::new), but honours `STORAGE_EMULATOR_HOST` as other
    /// Google clients do: when it is set, requests go to that host over plain
    /// HTTP (unless the value names a scheme) without credentials.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the environment given as a function.
    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        match var(EMULATOR_ENV).as_deref().and_then(emulator_endpoint) {
            Some(endpoint) => Self::new()
                .endpoint(endpoint)
                .credentials(Credentials::Anonymous),
            None => Self::new(),
        }
    }

    /// Sends requests to this base URL (scheme, host, optional port).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into().trim_end_matches('/').to_string();
        self
    }

    /// Authenticates this way.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Bounds connection setup (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Bounds each wait for response data (default 60 s).
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }

    /// The base URL requests go to.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// The configured credentials.
    pub fn credentials_kind(&self) -> &Credentials {
        &self.credentials
    }

    /// Builds an SDK client. Fetches a first token (except when anonymous),
    /// so missing or broken credentials fail here, not on the first request.
    ///
    /// The client makes one attempt per request: `gcloud-storage` retries
    /// nothing itself and no retry middleware is added, and reqwest's own
    /// retries (of HTTP/2 protocol refusals) are switched off too. Every
    /// request of a [`UPath`](cloudmux_core::UPath) goes through the core's
    /// [`Retry`](cloudmux_core::layers::Retry) layer instead.
    pub(crate) async fn build(&self) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Other, Op::Connect.name())
                    .with_message(format!("cannot build the HTTP client: {}", e.without_url()))
            })?;
        let config = ClientConfig {
            http: Some(reqwest_middleware::ClientBuilder::new(http).build()),
            storage_endpoint: self.endpoint.clone(),
            ..ClientConfig::default()
        };
        let auth_failed = |e: gcloud_storage::client::google_cloud_auth::error::Error| {
            let cause = Cause::of(&gcloud_storage::http::Error::TokenSource(Box::new(e)));
            error::to_error(Op::Connect, &cause, "", "").set_path(self.endpoint.clone())
        };
        let config = match &self.credentials {
            Credentials::Anonymous => config.anonymous(),
            Credentials::ApplicationDefault => config.with_auth().await.map_err(auth_failed)?,
            Credentials::ServiceAccountKeyFile(path) => {
                let file = CredentialsFile::new_from_file(path.to_string_lossy().into_owned())
                    .await
                    .map_err(auth_failed)?;
                config.with_credentials(file).await.map_err(auth_failed)?
            }
            Credentials::ServiceAccountKeyJson(json) => {
                let file = CredentialsFile::new_from_str(json)
                    .await
                    .map_err(auth_failed)?;
                config.with_credentials(file).await.map_err(auth_failed)?
            }
        };
        Ok(Client::new(config))
    }
}

/// The endpoint an emulator host value names: `host:port` means plain HTTP,
/// a value with a scheme is taken as is; empty means unset.
fn emulator_endpoint(value: &str) -> Option<String> {
    let v = value.trim().trim_end_matches('/');
    if v.is_empty() {
        None
    } else if v.contains("://") {
        Some(v.to_string())
    } else {
        Some(format!("http://{v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_host_forms() {
        assert_eq!(
            emulator_endpoint("http://127.0.0.1:4443/").as_deref(),
            Some("http://127.0.0.1:4443")
        );
        assert_eq!(
            emulator_endpoint("localhost:4443").as_deref(),
            Some("http://localhost:4443")
        );
        assert_eq!(
            emulator_endpoint("https://gcs.test").as_deref(),
            Some("https://gcs.test")
        );
        assert_eq!(emulator_endpoint("  "), None);
    }

    #[test]
    fn env_selects_emulator_and_anonymous() {
        let o = GcsOptions::from_lookup(|n| (n == EMULATOR_ENV).then(|| "127.0.0.1:4443".into()));
        assert_eq!(o.endpoint_url(), "http://127.0.0.1:4443");
        assert!(matches!(o.credentials_kind(), Credentials::Anonymous));
        let o = GcsOptions::from_lookup(|_| None);
        assert_eq!(o.endpoint_url(), DEFAULT_ENDPOINT);
        assert!(matches!(
            o.credentials_kind(),
            Credentials::ApplicationDefault
        ));
        let o = GcsOptions::from_lookup(|_| Some(String::new()));
        assert_eq!(o.endpoint_url(), DEFAULT_ENDPOINT);
    }

    #[test]
    fn key_json_is_redacted_in_debug() {
        let c = Credentials::ServiceAccountKeyJson("{\"private_key\":\"SECRET\"}".into());
        let s = format!("{:?}", GcsOptions::new().credentials(c));
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("<redacted>"));
    }

    #[tokio::test]
    async fn broken_key_json_fails_at_connect_without_echoing_it() {
        let o = GcsOptions::new().credentials(Credentials::ServiceAccountKeyJson(
            "{\"type\":\"service_account\",\"private_key\":\"SECRET\"".into(),
        ));
        let Err(e) = o.build().await else {
            panic!("a truncated key must not build a client")
        };
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert_eq!(e.op(), "connect");
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }
}
