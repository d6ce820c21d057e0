//! [`S3Client`]: one SDK client (connection pool, credentials cache) for any
//! number of buckets.

use std::sync::Arc;

use cloudmux_core::{Result, Store, UPath};

use crate::config::S3Config;
use crate::store::S3Store;
use crate::url::{parse_url, validate_bucket};

/// An S3 client built from one [`S3Config`]: stores for any number of
/// buckets share its connection pool and its credentials.
///
/// Nothing here is cached or global: each [`S3Client::new`] builds a new SDK
/// client. The client's pooled connections are served by the tokio runtime
/// that opened them and do not survive a `fork`; a program that runs several
/// runtimes one after another, or forks, keeps its clients in a registry that
/// rebuilds them (the `cloudmux` facade's `Registry`).
///
/// Cloning is cheap (the SDK client is reference-counted).
#[derive(Clone)]
pub struct S3Client {
    client: aws_sdk_s3::Client,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SDK config holds the credentials provider: never printed.
        let region = self.client.config().region().map(|r| r.to_string());
        f.debug_struct("S3Client")
            .field("region", &region)
            .finish_non_exhaustive()
    }
}

impl S3Client {
    /// Builds a client from `config` and the standard AWS chain (which may
    /// read files; credentials are resolved lazily, on the first request).
    pub async fn new(config: &S3Config) -> S3Client {
        S3Client {
            client: config.client().await,
        }
    }

    /// A store for `bucket` on this client. Nothing is sent.
    ///
    /// # Errors
    /// `InvalidInput` when the bucket name is malformed.
    pub fn store(&self, bucket: &str) -> Result<Arc<S3Store>> {
        validate_bucket(bucket)?;
        Ok(S3Store::with_client(self.client.clone(), bucket))
    }

    /// Opens `s3://bucket/optional/prefix` as a path on this client. Nothing
    /// is sent.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed URL or key.
    pub fn open_url(&self, url: &str) -> Result<UPath> {
        let (bucket, key) = parse_url(url)?;
        let store: Arc<dyn Store> = self.store(&bucket).map_err(|e| e.set_path(url))?;
        UPath::new(store, key).map_err(|e| e.set_path(url))
    }
}
