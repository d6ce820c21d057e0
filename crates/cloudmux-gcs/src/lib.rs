//! # cloudmux-gcs
//!
//! The Google Cloud Storage backend of cloudmux: [`GcsStore`] implements
//! [`cloudmux_core::Store`] over the GCS **JSON API** (through the
//! `gcloud-storage` crate), and [`open_url`] turns `gs://bucket/prefix` into a
//! [`UPath`]. With the `cloudmux` facade crate (feature `gcs`) every
//! `gs://` URL resolves here.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | `store` | [`GcsStore`]: get, head, put (create / compare-and-swap / overwrite), delete, list |
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
//! [`GcsOptions::from_env`], which [`open_url`] uses, picks:
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
//! are set with [`GcsOptions`] and [`GcsStore::connect`].
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
//! let dir = cloudmux_gcs::open_url("gs://my-bucket/runs").await?;
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

use std::sync::Arc;

use cloudmux_core::{Result, UPath};
use gcloud_storage::client::Client;
use tokio::sync::OnceCell;

pub use config::{Credentials, DEFAULT_ENDPOINT, EMULATOR_ENV, GcsOptions};
pub use store::{GcsStore, MAX_LIST_PAGE, MIN_WRITE_INTERVAL};
pub use url::GsUrl;

#[doc(no_inline)]
pub use cloudmux_core::Capabilities;

/// The process-wide client of [`open_url`], built on first use from the
/// environment. A failed build is not cached: the next call tries again.
static SHARED: OnceCell<(Client, GcsOptions)> = OnceCell::const_new();

/// Opens `gs://bucket` or `gs://bucket/prefix` as a path.
///
/// The first call builds one client from the environment
/// ([`GcsOptions::from_env`]); later calls, for any bucket, share it and its
/// connection pool. The bucket is not checked here.
///
/// # Errors
/// `InvalidInput` for a malformed URL or key; `PermissionDenied` when no
/// credentials are found (see the [crate docs](crate#authentication)).
pub async fn open_url(url: &str) -> Result<UPath> {
    let u = GsUrl::parse(url)?;
    // Reject a bad key before touching credentials.
    cloudmux_core::key::validate_key(&u.prefix, true).map_err(|e| e.set_path(url))?;
    let (client, options) = SHARED
        .get_or_try_init(|| async {
            let options = GcsOptions::from_env();
            let client = options.build().await?;
            Ok::<_, cloudmux_core::Error>((client, options))
        })
        .await?;
    let store = Arc::new(GcsStore::with_client(client.clone(), &u.bucket, options));
    UPath::new(store, u.prefix).map_err(|e| e.set_path(url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux_core::ErrorKind;

    #[tokio::test]
    async fn open_url_rejects_bad_urls_before_connecting() {
        for url in ["gs://", "gs://Bad_Bucket", "s3://b/x", "gs://bucket/a/../b"] {
            let e = open_url(url).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}: {e}");
        }
    }
}
