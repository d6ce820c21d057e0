//! # cloudmux
//!
//! The crate users depend on. It re-exports [`cloudmux_core`] and, behind the
//! features `s3`, `gcs` and `azure`, the cloud backends, and it resolves any
//! supported URL to a path with [`path()`] (or [`AnyResolver`], the
//! [`Resolver`] it implements). Both use [`Registry::global`], which keeps one
//! client per backend configuration and rebuilds it after a `fork` or when
//! the tokio runtime that built it has shut down ([`registry`]).
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `/abs/dir`, `rel/dir`, `file:///abs/dir` | local filesystem | always |
//! | `mem://NAME/key` | in-memory (one process) | always |
//! | `s3://bucket/prefix` | Amazon S3 and compatibles | `s3` |
//! | `gs://bucket/prefix` | Google Cloud Storage | `gcs` |
//! | `az://account/container/prefix` | Azure Blob Storage | `azure` |
//! | `https://account.blob.core.windows.net/container/prefix` | Azure Blob Storage | `azure` |
//! | `http://127.0.0.1:10000/devstoreaccount1/container/prefix` | Azurite (emulator) | `azure` |
//!
//! ```
//! # tokio_test::block_on(async {
//! let p = cloudmux::path("mem://facade-doc/a.txt").await?;
//! p.write_text("hello").await?;
//! assert_eq!(p.read_text().await?, "hello");
//! # Ok::<_, cloudmux::Error>(()) }).unwrap();
//! ```

pub use cloudmux_core::*;
/// The Multiplexer (crate `cloudmux-mux`): datasets, sessions, workers.
pub use cloudmux_mux as mux;

/// The Azure Blob Storage backend (feature `azure`).
#[cfg(feature = "azure")]
pub use cloudmux_azure as azure;
/// The Google Cloud Storage backend (feature `gcs`).
#[cfg(feature = "gcs")]
pub use cloudmux_gcs as gcs;
/// The S3 backend (feature `s3`): [`S3Store`](s3::S3Store), [`S3Config`](s3::S3Config).
#[cfg(feature = "s3")]
pub use cloudmux_s3 as s3;

pub mod registry;
pub use registry::Registry;

use async_trait::async_trait;

/// Resolves every URL scheme compiled into this build through
/// [`Registry::global`].
#[derive(Debug, Default, Clone, Copy)]
pub struct AnyResolver;

#[async_trait]
impl Resolver for AnyResolver {
    async fn resolve(&self, url: &str) -> Result<UPath> {
        Registry::global().resolve(url).await
    }
}

/// Opens a path from any supported URL, with the clients of
/// [`Registry::global`].
///
/// # Errors
/// `InvalidInput` for an unknown scheme or a malformed URL; backend errors
/// (missing credentials, missing bucket) as they arise.
pub async fn path(url: &str) -> Result<UPath> {
    Registry::global().resolve(url).await
}

/// Joins a session from its mux id, resolving the dataset URL with every
/// backend compiled into this build (the worker side of the Multiplexer).
///
/// # Errors
/// As [`mux::Worker::open`].
pub async fn worker<T: serde::de::DeserializeOwned>(
    mux_id: &str,
    opts: mux::WorkerOptions,
) -> Result<mux::Worker<T>> {
    mux::Worker::open(&AnyResolver, mux_id, opts).await
}

/// Opens an existing dataset folder from its URL (the coordinator side).
///
/// # Errors
/// As [`mux::Multiplexer::open`].
pub async fn dataset(url: &str) -> Result<mux::Multiplexer> {
    mux::Multiplexer::open_url(&AnyResolver, url).await
}

#[cfg(all(test, feature = "gcs"))]
mod gcs_tests {
    #[tokio::test]
    async fn gs_urls_reach_the_gcs_backend() {
        // The GCS parser, not the unknown-scheme arm, rejects a bad bucket.
        let e = crate::path("gs://Not_A_Bucket/x").await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("bad bucket name"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn s3_urls_resolve_only_with_the_feature() {
        let r = path("s3://some-bucket/runs/1").await;
        if cfg!(feature = "s3") {
            let p = r.unwrap();
            assert_eq!(p.to_string(), "s3://some-bucket/runs/1");
            assert_eq!(p.store().root_url(), "s3://some-bucket");
            let e = path("s3://").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains("'s3'"), "{e}");
        }
    }

    #[tokio::test]
    async fn unknown_schemes_are_invalid_input() {
        let e = path("ftp://host/x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        // Plain web URLs are never taken for a blob store.
        let e = path("https://example.com/a/b").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[cfg(feature = "azure")]
    #[tokio::test]
    async fn azure_urls_resolve_without_network() {
        let p = path("az://devstoreaccount1/ctr/a/b.txt").await.unwrap();
        assert_eq!(p.to_string(), "az://devstoreaccount1/ctr/a/b.txt");
        let p = path("http://127.0.0.1:10000/devstoreaccount1/ctr/a%20b")
            .await
            .unwrap();
        assert_eq!(p.to_string(), "az://devstoreaccount1/ctr/a b");
        let e = path("az://devstoreaccount1/Bad_Container")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
