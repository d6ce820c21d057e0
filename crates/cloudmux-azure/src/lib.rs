//! # cloudmux-azure
//!
//! The Azure Blob Storage backend of cloudmux, on the official
//! `azure_storage_blob` SDK. Tested against Azurite.
//!
//! ```no_run
//! # async fn demo() -> cloudmux_core::Result<()> {
//! // With AZURE_STORAGE_CONNECTION_STRING set (Azurite's development string
//! // works as it is), or a SAS token, or an Entra ID login:
//! let dir = cloudmux_azure::open_url("az://devstoreaccount1/jobs/runs/1").await?;
//! dir.join("claim")?.write_text("mine").await?; // create-if-absent
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`location`] | the three URL forms (`az://`, `https://<account>.blob.core.windows.net`, the emulator's `http://127.0.0.1:10000/<account>`) |
//! | [`config`] | [`AzureConfig`]: endpoint and [`Credential`], resolved from the environment |
//! | `sas` | account SAS minting from an account key, the signing policy, [`Secret`] |
//! | `entra` | Entra ID credentials (client secret, workload identity, managed identity, Azure CLI) |
//! | `error` | Azure status and error codes onto [`ErrorKind`](cloudmux_core::ErrorKind), quirk by quirk |
//! | `list` | List Blobs with a delimiter (the SDK lacks it) and start-after emulation |
//! | [`store`] | [`AzureStore`], the [`Store`](cloudmux_core::Store) |
//!
//! ## Provider quirks handled
//!
//! - A create that finds the blob: Azurite answers 409 `BlobAlreadyExists`,
//!   Azure 412: both are `AlreadyExists`.
//! - `If-Match` on a missing blob answers 404: `Precondition` for an update.
//! - Listings give ETags bare, headers quoted: listings are normalized to
//!   the quoted form so versions compare equal.
//! - There is no start-after: it is emulated (`list_start_after: false`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cloudmux_core::{Result, UPath};

pub mod config;
mod entra;
mod error;
mod list;
pub mod location;
mod sas;
pub mod store;

pub use config::{AzureConfig, Credential};
pub use location::{Location, is_azure_url};
pub use sas::Secret;
pub use store::AzureStore;

/// The clients of this process, keyed by (endpoint, container).
type Cache = Mutex<HashMap<(String, String), Arc<AzureStore>>>;

/// The clients of this process, one per (endpoint, container).
fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The store for a configuration: built once per (endpoint, container) per
/// process and shared afterwards.
///
/// # Errors
/// As [`AzureStore::new`].
pub fn store_for(config: AzureConfig) -> Result<Arc<AzureStore>> {
    let k = (config.endpoint.to_string(), config.container.clone());
    let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = c.get(&k) {
        return Ok(s.clone());
    }
    let s = Arc::new(AzureStore::new(config)?);
    c.insert(k, s.clone());
    Ok(s)
}

/// Opens an Azure blob URL as a path: `az://<account>/<container>/<path>`,
/// `https://<account>.blob.core.windows.net/<container>/<path>` or
/// `http://127.0.0.1:10000/devstoreaccount1/<container>/<path>`.
///
/// Credentials come from the environment (see [`config`]). Nothing is sent:
/// a missing container shows up as `NotFound` on first use.
///
/// # Errors
/// `InvalidInput` for a malformed URL or connection string.
pub async fn open_url(url: &str) -> Result<UPath> {
    let loc = location::parse(url)?;
    let config = AzureConfig::from_env(&loc)?;
    let store = store_for(config)?;
    UPath::new(store, &loc.key)
}
