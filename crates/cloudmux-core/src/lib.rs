//! # cloudmux-core
//!
//! Share out a list of work items among many workers on many machines, with
//! cloud object storage as the only shared thing: no queue server, no
//! database. This crate holds everything that does not depend on a cloud SDK.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`store`] | the backend trait [`Store`]: get, head, put with a [`PutMode`] (overwrite, create-if-absent, compare-and-swap), delete, list |
//! | [`error`] | one error type whose [`ErrorKind`] says what to do next |
//! | [`key`] | the key rules every backend shares (no `..`, no NUL, ...) |
//! | [`memory`] | [`InMemory`]: exact semantics, for fast protocol tests |
//! | [`local`] | [`LocalFs`]: a directory, atomic across processes |
//! | [`faults`] | [`Faulty`]: counts requests, injects latency, errors and lost responses |
//! | [`mux`] | the [`Multiplexer`](mux::Multiplexer): exactly-once hand-out of elements |
//! | [`path`] | [`UPath`]: pathlib-style paths over any store |
//! | [`lock`] | a lock on any path, from create-if-absent and compare-and-swap only |
//! | [`resolve`] | URL to path: the seam where cloud backends plug in |
//! | [`retry`] | bounded jittered retries of transient failures |
//! | [`clock`] | injected time, so lease tests are deterministic |
//! | [`mux`] | the [`Multiplexer`](mux::Multiplexer): exactly-once hand-out of elements |
//! | `testkit` | the conformance suite every backend runs (feature `testkit`) |
//!
//! ## A path and a lock
//!
//! ```
//! # tokio_test::block_on(async {
//! use std::time::Duration;
//! use cloudmux_core::UPath;
//!
//! let dir = UPath::parse("mem://guide")?;
//! let counter = dir.join("counter.json")?;
//! counter.write_json(&0u32).await?;            // create-only by default
//!
//! let mut guard = counter.lock(Duration::from_secs(10)).await?;
//! let n: u32 = counter.read_json().await?;
//! counter.overwrite_json(&(n + 1)).await?;
//! guard.release().await?;
//!
//! assert_eq!(counter.read_json::<u32>().await?, 1);
//! # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
//! ```
//!
//! The same code runs on a local directory (`UPath::parse("/data/x")`) and, with
//! the `cloudmux` facade crate, on `s3://`, `gs://` and `az://` URLs.

pub mod clock;
pub mod error;
pub mod faults;
pub mod key;
pub mod local;
pub mod lock;
pub mod memory;
pub mod mux;
pub mod path;
pub mod resolve;
pub mod retry;
pub mod store;
pub mod util;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, ErrorKind, Result};
pub use faults::{FaultConfig, Faulty, RequestStats};
pub use local::LocalFs;
pub use lock::{LockGuard, LockOptions};
pub use memory::InMemory;
pub use path::UPath;
pub use resolve::{CoreResolver, Resolver};
pub use retry::RetryPolicy;
pub use store::{
    Capabilities, GetResult, ListPage, ListRequest, ObjectMeta, PutMode, PutResult, Store,
    StoreExt, Version,
};
