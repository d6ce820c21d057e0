//! # cloudmux-gcs
//!
//! The Google Cloud Storage backend of cloudmux: [`GcsStore`] implements
//! [`cloudmux_core::Store`] over the GCS **JSON API** (through the
//! `gcloud-storage` crate), [`GcsClient`] is one HTTP client for any number
//! of buckets, and [`open_url`] turns `gs://bucket/prefix` into a [`UPath`].
//! With the `cloudmux` facade crate (feature `gcs`) every `gs://` URL
//! resolves here, through the facade's registry of clients: nothing in this
//! crate is global or cached.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | `store` | [`GcsStore`]: get, head, put (create / compare-and-swap / overwrite), delete, list |
//! | (this file) | [`GcsClient`], [`open_url`]: clients and URLs |
//! | `config` | [`GcsOptions`], [`Credentials`]: endpoint, emulator, authentication, timeouts |
//! | `url` | [`GsUrl`]: parsing `gs://` URLs and checking bucket names |
//! | `error` | the mapping from GCS statuses onto [`cloudmux_core::ErrorKind`] |
//!
//! ## Conditional writes
//!
//! The version token is the object's **generation**, a decimal integer that
//! changes on every write (the ETag is not used). A create is an upload with
//! `ifGenerationMatch=0`, a compare-and-swap one with
//! `ifGenerationMatch=<generation>`; GCS answers 412 when the condition fails,
//! which becomes `AlreadyExists` for a create and `Precondition` for an
//! update. Uploads are always *multipart* uploads: fake-gcs-server enforces
//! preconditions only on those.
//!
//! Conditional delete is **not** offered ([`Capabilities::conditional_delete`]
//! is false and `delete_if` answers `Unsupported` without sending anything):
//! fake-gcs-server ignores the precondition of a DELETE and deletes anyway, and
//! nothing in cloudmux needs it.
//!
//! ## One write per second per object
//!
//! GCS accepts about **one write per second to any single object name**;
//! faster rewrites of the same name are throttled with 429 (which maps to
//! `Transient` and is retried with backoff by the path layer). The backend
//! declares this as [`Capabilities::min_write_interval`] = 1 s
//! ([`MIN_WRITE_INTERVAL`]); heartbeats and lock renewals respect it. Writes
//! to *different* names are not limited this way.
//!
//! ## Authentication
//!
//! [`GcsOptions::from_env`] (what the facade uses) picks:
//!
//! - `STORAGE_EMULATOR_HOST` set (like `http://127.0.0.1:4443` or
//!   `127.0.0.1:4443`): that endpoint, plain HTTP unless a scheme is given,
//!   no credentials, as other Google clients do;
//! - otherwise Application Default Credentials: the key file named by
//!   `GOOGLE_APPLICATION_CREDENTIALS` (or the JSON in
//!   `GOOGLE_APPLICATION_CREDENTIALS_JSON`), gcloud's user credentials from
//!   `gcloud auth application-default login`, or the metadata server on a
//!   Google Cloud machine.
//!
//! An explicit service-account key, an anonymous client or another endpoint
//! are set with [`GcsOptions`], then [`GcsClient::connect`] or
//! [`GcsStore::connect`].
//!
//! ```
//! use cloudmux_gcs::{Credentials, GcsOptions, GsUrl};
//!
//! let u = GsUrl::parse("gs://my-bucket/runs/2026")?;
//! assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("my-bucket", "runs/2026"));
//!
//! let opts = GcsOptions::new()
//!     .credentials(Credentials::ServiceAccountKeyFile("key.json".into()));
//! assert_eq!(opts.endpoint_url(), "https://storage.googleapis.com");
//! # Ok::<_, cloudmux_core::Error>(())
//! ```
//!
//! ```no_run
//! # async fn demo() -> cloudmux_core::Result<()> {
//! // With STORAGE_EMULATOR_HOST or Google credentials in the environment:
//! let opts = cloudmux_gcs::GcsOptions::from_env();
//! let dir = cloudmux_gcs::open_url("gs://my-bucket/runs", &opts).await?;
//! dir.join("config.json")?.write_text("{}").await?; // create-only
//! # Ok(()) }
//! ```
//!
//! ## Reads
//!
//! A `get` costs two requests: the object's metadata (for its generation),
//! then the bytes of exactly that generation. If the object is replaced in
//! between, the download finds that generation gone and the read starts
//! over, so the bytes and the version returned always belong together.

mod config;
mod error;
mod store;
mod url;

use std::fmt;
use std::sync::Arc;

use cloudmux_core::{Result, Store, UPath};
use gcloud_storage::client::Client;

pub use config::{Credentials, DEFAULT_ENDPOINT, EMULATOR_ENV, GcsOptions};
pub use store::{GcsStore, MAX_LIST_PAGE, MIN_WRITE_INTERVAL};
pub use url::GsUrl;

#[doc(no_inline)]
pub use cloudmux_core::Capabilities;

/// A GCS client built from one [`GcsOptions`]: stores for any number of
/// buckets share its HTTP connection pool and its token source.
///
/// Each [`GcsClient::connect`] builds a new client; nothing is kept. Pooled
/// connections are served by the tokio runtime that opened them and do not
/// survive a `fork`: programs that run several runtimes in turn, or fork,
/// keep clients in a registry that rebuilds them (the `cloudmux` facade's
/// `Registry`). Cloning is cheap.
#[derive(Clone)]
pub struct GcsClient {
    client: Client,
    options: GcsOptions,
}

impl fmt::Debug for GcsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The options' Debug redacts a key given as JSON.
        f.debug_struct("GcsClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl GcsClient {
    /// Builds a client. Fetches a first token (except when anonymous), so
    /// missing or broken credentials fail here.
    ///
    /// # Errors
    /// `PermissionDenied` when no credentials are found or they are refused;
    /// `Transient` when the token endpoint cannot be reached.
    pub async fn connect(options: &GcsOptions) -> Result<GcsClient> {
        Ok(GcsClient {
            client: options.build().await?,
            options: options.clone(),
        })
    }

    /// A store for `bucket` on this client. The bucket is not checked here:
    /// operations on a missing bucket fail with `NotFound`.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed bucket name.
    pub fn store(&self, bucket: &str) -> Result<Arc<GcsStore>> {
        GsUrl::parse(&format!("gs://{bucket}"))?;
        Ok(Arc::new(GcsStore::with_client(
            self.client.clone(),
            bucket,
            &self.options,
        )))
    }

    /// Opens `gs://bucket` or `gs://bucket/prefix` as a path on this client.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed URL or key.
    pub fn open_url(&self, url: &str) -> Result<UPath> {
        let u = GsUrl::parse(url)?;
        let store: Arc<dyn Store> = self.store(&u.bucket)?;
        UPath::new(store, u.prefix).map_err(|e| e.set_path(url))
    }
}

/// Opens `gs://bucket` or `gs://bucket/prefix` as a path on a new client
/// built from `options` ([`GcsOptions::from_env`] for the environment's).
///
/// Every call builds its own client; to open many paths on one client, use
/// [`GcsClient::open_url`]. The bucket is not checked here.
///
/// # Errors
/// `InvalidInput` for a malformed URL or key (checked before any
/// credentials are looked up); `PermissionDenied` when no credentials are
/// found (see the [crate docs](crate#authentication)).
pub async fn open_url(url: &str, options: &GcsOptions) -> Result<UPath> {
    let u = GsUrl::parse(url)?;
    cloudmux_core::key::validate_key(&u.prefix, true).map_err(|e| e.set_path(url))?;
    GcsClient::connect(options).await?.open_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux_core::ErrorKind;

    #[tokio::test]
    async fn open_url_rejects_bad_urls_before_connecting() {
        for url in ["gs://", "gs://Bad_Bucket", "s3://b/x", "gs://bucket/a/../b"] {
            let e = open_url(url, &GcsOptions::new()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}: {e}");
        }
    }

    #[tokio::test]
    async fn capabilities_are_what_the_backend_does() {
        use cloudmux_core::Store;
        let opts = GcsOptions::new()
            .endpoint("http://127.0.0.1:9")
            .credentials(Credentials::Anonymous);
        let s = GcsClient::connect(&opts)
            .await
            .unwrap()
            .store("bkt")
            .unwrap();
        let caps = s.capabilities();
        // About one write per second to one object name.
        assert_eq!(caps.min_write_interval, std::time::Duration::from_secs(1));
        // fake-gcs-server ignores the precondition of a DELETE: not offered.
        assert!(!caps.conditional_delete);
        // startOffset is native (inclusive; the backend trims it).
        assert!(caps.list_start_after);
        assert_eq!(caps.max_list_page, MAX_LIST_PAGE);
    }
}
