//! # cloudmux
//!
//! The crate users depend on. It re-exports [`cloudmux_core`] and, behind the
//! features `s3`, `gcs` and `azure`, the cloud backends, and it resolves any
//! supported URL to a path with [`path()`] (or the [`Resolver`] it implements).
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `/abs/dir`, `rel/dir`, `file:///abs/dir` | local filesystem | always |
//! | `mem://NAME/key` | in-memory (one process) | always |
//! | `s3://bucket/prefix` | Amazon S3 and compatibles | `s3` |
//! | `gs://bucket/prefix` | Google Cloud Storage | `gcs` |
//! | `az://account/container/prefix` | Azure Blob Storage | `azure` |
//!
//! ```
//! # tokio_test::block_on(async {
//! let p = cloudmux::path("mem://facade-doc/a.txt").await?;
//! p.write_text("hello").await?;
//! assert_eq!(p.read_text().await?, "hello");
//! # Ok::<_, cloudmux::Error>(()) }).unwrap();
//! ```

pub use cloudmux_core::*;

/// The S3 backend (feature `s3`): [`S3Store`](s3::S3Store), [`S3Config`](s3::S3Config).
#[cfg(feature = "s3")]
pub use cloudmux_s3 as s3;

use async_trait::async_trait;

/// Resolves every URL scheme compiled into this build.
#[derive(Debug, Default, Clone, Copy)]
pub struct AnyResolver;

#[async_trait]
impl Resolver for AnyResolver {
    async fn resolve(&self, url: &str) -> Result<UPath> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        match scheme {
            None | Some("file") | Some("mem") => UPath::parse(url),
            #[cfg(feature = "s3")]
            Some("s3") => cloudmux_s3::open_url(url).await,
            Some(other) => Err(Error::invalid(
                "resolve",
                format!(
                    "the scheme '{other}' is not supported by this build \
                     (enable the cloudmux features s3, gcs or azure)"
                ),
            )
            .with_path(url)),
        }
    }
}

/// Opens a path from any supported URL.
///
/// # Errors
/// `InvalidInput` for an unknown scheme or a malformed URL; backend errors
/// (missing credentials, missing bucket) as they arise.
pub async fn path(url: &str) -> Result<UPath> {
    AnyResolver.resolve(url).await
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
    }
}
