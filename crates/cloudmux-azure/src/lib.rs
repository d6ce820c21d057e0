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
//! | [`store`] | [`AzureClient`] (one pool and credential for many containers) and [`AzureStore`], the [`Store`](cloudmux_core::Store) |
//!
//! ## Provider quirks handled
//!
//! - A create that finds the blob: Azurite answers 409 `BlobAlreadyExists`,
//!   Azure 412: both are `AlreadyExists`.
//! - `If-Match` on a missing blob answers 404: `Precondition` for an update.
//! - Listings give ETags bare, headers quoted: listings are normalized to
//!   the quoted form so versions compare equal.
//! - There is no start-after: it is emulated (`list_start_after: false`).

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
pub use store::{AzureClient, AzureStore};

/// Opens an Azure blob URL as a path on a new client:
/// `az://<account>/<container>/<path>`,
/// `https://<account>.blob.core.windows.net/<container>/<path>` or
/// `http://127.0.0.1:10000/devstoreaccount1/<container>/<path>`.
///
/// Credentials come from the environment (see [`config`]). Every call builds
/// its own client and nothing is kept: to open many paths on one client,
/// build an [`AzureClient`]. Nothing is sent: a missing container shows up as
/// `NotFound` on first use.
///
/// # Errors
/// `InvalidInput` for a malformed URL or connection string.
pub async fn open_url(url: &str) -> Result<UPath> {
    let loc = location::parse(url)?;
    let config = AzureConfig::from_env(&loc)?;
    AzureClient::new(&config)?.open_url(url)
}
