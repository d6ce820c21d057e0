//! # cloudmux-s3
//!
//! Amazon S3, and S3-compatible stores (LocalStack, moto, MinIO, R2, ...), as
//! a cloudmux [`Store`](cloudmux_core::Store).
//!
//! | module | role |
//! |---|---|
//! | [`S3Config`] | endpoint, region, path-style and anonymous overrides on top of the standard AWS chain |
//! | [`S3Store`] | the `Store` over one bucket: conditional writes with `If-None-Match` / `If-Match` on ETags |
//! | [`S3Client`] | one SDK client (connection pool, credentials) for any number of buckets |
//! | [`open_url`], [`parse_url`] | `s3://bucket/prefix` URLs |
//! | `error` (private) | S3 status and error codes onto [`ErrorKind`](cloudmux_core::ErrorKind), quirk by quirk |
//!
//! Most users go through the `cloudmux` facade crate (feature `s3`):
//! `cloudmux::path("s3://bucket/prefix")`, whose registry keeps one client
//! per configuration. Nothing in this crate is global or cached. To point at an emulator, set
//! `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) and dummy credentials, or
//! build a store explicitly:
//!
//! ```no_run
//! # async fn demo() -> cloudmux_core::Result<()> {
//! use cloudmux_core::UPath;
//! use cloudmux_s3::{S3Config, S3Store};
//!
//! let cfg = S3Config::new().endpoint("http://127.0.0.1:4566").region("us-east-1");
//! let store = S3Store::new("my-bucket", &cfg).await?;
//! let p = UPath::new(store, "runs/1/config.json")?;
//! p.write_text("{}").await?; // If-None-Match: *
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod config;
mod error;
mod store;
mod url;

pub use client::S3Client;
pub use config::{DEFAULT_REGION, S3Config};
pub use store::S3Store;
pub use url::{open_url, parse_url};
