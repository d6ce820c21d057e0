//! Turning a URL into a [`UPath`]: the seam between the core and the cloud
//! backend crates.
//!
//! The core knows `mem://` and `file://` (and plain local paths). The
//! `cloudmux` facade crate implements [`Resolver`] for every backend enabled
//! by its features (`s3://`, `gs://`, `az://`), and everything that starts
//! from a string (a mux id, the CLI) takes a resolver, so a worker needs
//! nothing but the string and its ambient credentials.

use async_trait::async_trait;

use crate::error::Result;
use crate::path::UPath;

/// Resolves a URL to a path on a backend.
#[async_trait]
pub trait Resolver: Send + Sync + std::fmt::Debug {
    /// Opens `url`.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown scheme or a malformed URL; backend
    /// errors (missing credentials, missing bucket) as they arise.
    async fn resolve(&self, url: &str) -> Result<UPath>;
}

/// The resolver of the backends built into the core: `mem://`, `file://` and
/// plain local paths.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoreResolver;

#[async_trait]
impl Resolver for CoreResolver {
    async fn resolve(&self, url: &str) -> Result<UPath> {
        UPath::parse(url)
    }
}
