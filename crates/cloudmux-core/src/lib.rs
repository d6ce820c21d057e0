//! # cloudmux-core
//!
//! Object-storage paths with conditional writes, the conditional-document
//! primitive, and a lock: the storage core of cloudmux, which shares out a
//! list of work items among many workers through object storage alone. This
//! crate holds everything that depends neither on a cloud SDK nor on the
//! Multiplexer (crate `cloudmux-mux`).
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`store`] | the backend trait [`Store`]: get, head, put with a [`PutMode`] (overwrite, create-if-absent, compare-and-swap), delete, list; the [`Op`] taxonomy |
//! | [`error`] | one error type whose [`ErrorKind`] says what to do next |
//! | [`http`] | the HTTP status classification every HTTP backend shares |
//! | [`cond`] | conditional documents: nonce, epoch and settlement of ambiguous writes, under every protocol |
//! | [`layers`] | policies as store wrappers: [`Timeout`](layers::Timeout), [`Retry`](layers::Retry), [`Hedge`](layers::Hedge) |
//! | [`key`] | the key rules every backend shares (no `..`, no NUL, ...) |
//! | [`memory`] | [`InMemory`]: exact semantics, for fast protocol tests |
//! | [`local`] | [`LocalFs`]: a directory, atomic across processes |
//! | [`faults`] | [`Faulty`]: counts requests, injects latency, errors, lost responses and late writes |
//! | [`path`] | [`UPath`]: pathlib-style paths over any store |
//! | [`lock`] | a lock on any path with fencing tokens, from create-if-absent and compare-and-swap only |
//! | [`resolve`] | URL to path: the seam where cloud backends plug in |
//! | [`retry`] | bounded jittered retries of transient failures |
//! | [`clock`] | injected time (wall, monotonic, waiting), so lease tests run in virtual time |
//! | [`util`] | nonces and the default worker name |
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
//! let guard = counter.lock(Duration::from_secs(10)).await?;
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
pub mod cond;
pub mod error;
pub mod faults;
pub mod http;
pub mod key;
pub mod layers;
pub mod local;
pub mod lock;
pub mod memory;
pub mod path;
pub mod resolve;
pub mod retry;
pub mod store;
pub mod util;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, ErrorKind, LockInfo, Missing, Result};
pub use faults::{FaultConfig, Faulty, RequestStats};
pub use local::LocalFs;
pub use lock::{LockGuard, LockOptions};
pub use memory::InMemory;
pub use path::{ListQuery, UPath};
pub use resolve::{CoreResolver, Resolver};
pub use retry::RetryPolicy;
pub use store::{
    Capabilities, GetResult, Leftovers, ListPage, ListRequest, ObjectMeta, Op, PutMode, PutResult,
    Store, StoreExt, Version,
};
