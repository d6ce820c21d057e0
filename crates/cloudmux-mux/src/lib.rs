//! The Multiplexer: hand out every element of a dataset exactly once to a
//! fleet of workers, through object storage alone.
//!
//! # Using it
//!
//! ```
//! # tokio_test::block_on(async {
//! use cloudmux_core::{UPath, CoreResolver};
//! use cloudmux_core::mux::{Multiplexer, Worker, WorkerOptions};
//! use futures::StreamExt;
//!
//! // Coordinator: store the elements and start a session.
//! let root = UPath::parse("mem://guide-mux/jobs")?;
//! let mux = Multiplexer::new((0..10).map(|i| i * i), &root, Some("squares")).await?;
//! assert_eq!(mux.len(), 10);
//! let id = mux.create_read_session().await?;   // a string anyone can use
//!
//! // Workers, anywhere: open the id and iterate. Two workers share the work.
//! let opts = |w: &str| WorkerOptions::default().worker_id(w);
//! let mut a = Worker::<i64>::open(&CoreResolver, &id.to_string(), opts("a")).await?;
//! let mut b = Worker::<i64>::open(&CoreResolver, &id.to_string(), opts("b")).await?;
//! let mut got = vec![];
//! for _ in 0..4 {
//!     got.push(a.next().await.unwrap()?.1);        // (index, element)
//! }
//! let rest: Vec<i64> = b.into_elements().map(|r| r.unwrap()).collect().await;
//! got.extend(rest);
//! got.sort();
//! assert_eq!(got, (0..10).map(|i| i * i).collect::<Vec<i64>>());
//! assert!(mux.done(&id).await?);
//! mux.destroy().await?;
//! # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
//! ```
//!
//! # Protocol (format version 1)
//!
//! A dataset is a folder below the coordinator's path, named
//! `<UTC time to the microsecond>-<8 random hex>[-<tag>]` so that folders
//! sort by creation time and two coordinators never collide:
//!
//! ```text
//! <path>/20261124T231539.120533Z-4f2a9c01-grid/
//!     manifest.json            {"format":"cloudmux-dataset","version":1,"count":E,...}
//!     data.msgpack             one MessagePack array of the E elements
//!     sessions/<session-id>/
//!         session.json         {"version":1,"count":E,"width":W,...}
//!         claims/<i>           one object per handed-out element, i zero-padded to W digits
//!         full/<k>             block k (indices k*1000 .. k*1000+999) seen fully claimed
//!         exhausted            written once a worker knew every element claimed
//!         workers/<w>.json     each worker's own progress summary (for stat)
//! ```
//!
//! **Claiming.** A worker owns element `i` when its create-if-absent of
//! `claims/<i>` succeeds. The claim body records the worker id, a fresh
//! nonce and the time (see [`Claim`]). There is no shared counter: N workers
//! write N different objects, so throughput grows with N.
//!
//! **Avoiding the herd.** Each worker starts at a random index and walks
//! forward while its creates succeed; the indices form a circle, so a walk
//! that passes the last index goes on at index 0. On a collision it lists
//! one page of claims from a random not-yet-known index, learns which
//! indices are taken, and jumps to the middle of the largest free run in
//! that page (a random index for short runs). The listing also tells it
//! where that run ends, so it does not probe the claimed index after it. A
//! local bitmap of known claims means no index is ever probed twice.
//!
//! **Ending.** A worker whose listing shows a block of 1,000 indices fully
//! claimed creates `full/<k>` (create-only; losing that race is fine). A
//! worker whose last page had no free index lists `full/` before listing
//! claims again, so it skips the blocks others have seen full instead of
//! scanning every claim. It stops when it knows every element claimed, and
//! then creates `exhausted`, which [`Multiplexer::done`] reads.
//!
//! **Lost responses.** A create whose response was lost is retried; if the
//! retry meets `AlreadyExists`, the claim is read back and the nonce decides.
//! If retries run out, the outcome is settled by reading the claim back
//! before the worker claims anything else. An element is never claimed and
//! left unprocessed by a live worker.
//!
//! **Room to grow.** Claims and session documents carry a version and ignore
//! unknown fields, and [`Claim`] reserves optional lease fields, so leased
//! sessions (expiry renewed by compare-and-swap, completion markers, reclaim)
//! can be added without rewriting existing sessions.

mod codec;
mod id;
mod stat;
mod worker;

pub use codec::{Elements, encode_elements};
pub use id::{MUX_ID_PREFIX, MuxId};
pub use stat::{SessionStat, WorkerStat};
pub use worker::{BlockingWorker, Worker, WorkerOptions, WorkerProgress};

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::{compact_micros, rfc3339_micros, unix_millis};
use crate::error::{Error, ErrorKind, Result};
use crate::path::UPath;
use crate::resolve::Resolver;
use crate::util::nonce;

/// The `format` field of every manifest.
pub const DATASET_FORMAT: &str = "cloudmux-dataset";
/// The dataset and session format version this build writes.
pub const FORMAT_VERSION: u32 = 1;

/// The dataset's manifest (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Always [`DATASET_FORMAT`].
    pub format: String,
    /// The format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The number of elements.
    pub count: usize,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: u64,
    /// The tag given at creation, if any.
    #[serde(default)]
    pub tag: Option<String>,
    /// The data file's name within the folder.
    pub data: String,
    /// The data file's size in bytes.
    pub data_size: u64,
}

/// A session's document (`sessions/<id>/session.json`). A worker reads only
/// this and the data file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionDoc {
    /// The format version.
    pub version: u32,
    /// The session id.
    pub session: String,
    /// The number of elements (copied from the manifest).
    pub count: usize,
    /// Digits of the zero-padded claim index.
    pub width: usize,
    /// The data file's name within the dataset folder.
    pub data: String,
    /// The hand-out mode: `"once"` (leased modes may come later).
    pub mode: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
}

/// The body of a claim object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    /// Claim format version (1).
    pub v: u32,
    /// The claiming worker's id.
    pub worker: String,
    /// A fresh random nonce: settles lost responses and makes every body unique.
    pub nonce: String,
    /// Claim time, milliseconds since the epoch.
    pub t_ms: u64,
    /// Reserved for leased sessions: lease expiry, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<u64>,
    /// Reserved for leased sessions: the claim's state (`"done"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Digits needed for indices `0..count`.
pub(crate) fn claim_width(count: usize) -> usize {
    count.saturating_sub(1).max(1).to_string().len()
}

/// Makes a tag safe as part of a folder name.
fn clean_tag(tag: &str) -> Result<String> {
    let t: String = tag
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() || t.len() > 100 {
        return Err(Error::invalid(
            "new",
            format!("tag '{tag}' must have 1 to 100 characters"),
        ));
    }
    Ok(t)
}

/// The coordinator's handle on a dataset.
#[derive(Debug, Clone)]
pub struct Multiplexer {
    root: UPath,
    manifest: Manifest,
}

impl Multiplexer {
    /// Stores `data` as a new dataset in a new, time-named folder below `path`.
    ///
    /// # Errors
    /// `InvalidInput` for an empty dataset, a bad tag or an element that
    /// cannot be encoded; storage errors.
    pub async fn new<T, I>(data: I, path: &UPath, tag: Option<&str>) -> Result<Self>
    where
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        let (bytes, count) = encode_elements(data)?;
        if count == 0 {
            return Err(
                Error::invalid("new", "the dataset is empty: nothing to hand out")
                    .with_path(path.to_string()),
            );
        }
        let now = path.clock().now();
        let mut name = format!("{}-{}", compact_micros(now), &nonce()[..8]);
        if let Some(t) = tag {
            name.push('-');
            name.push_str(&clean_tag(t)?);
        }
        let root = path.join(&name)?;
        let manifest = Manifest {
            format: DATASET_FORMAT.into(),
            version: FORMAT_VERSION,
            count,
            created: rfc3339_micros(now),
            created_ms: unix_millis(now),
            tag: tag.map(str::to_string),
            data: "data.msgpack".into(),
            data_size: bytes.len() as u64,
        };
        // Data first, manifest last: a folder with a manifest is complete.
        root.join(&manifest.data)?.write_bytes(bytes).await?;
        root.join("manifest.json")?.write_json(&manifest).await?;
        tracing::info!(dataset = %root, count, "dataset created");
        Ok(Multiplexer { root, manifest })
    }

    /// Opens an existing dataset folder.
    ///
    /// # Errors
    /// `NotFound` when there is no manifest; `Corrupt` when it cannot be read;
    /// `InvalidInput` for an unknown format or version.
    pub async fn open(root: &UPath) -> Result<Self> {
        let manifest: Manifest = root.join("manifest.json")?.read_json().await.map_err(|e| {
            if e.is_not_found() {
                Error::new(ErrorKind::NotFound, "open")
                    .with_path(root.to_string())
                    .with_message("no cloudmux dataset here (manifest.json is missing)")
            } else {
                e
            }
        })?;
        if manifest.format != DATASET_FORMAT || manifest.version != FORMAT_VERSION {
            return Err(Error::invalid(
                "open",
                format!(
                    "unsupported dataset format {} version {} (this build reads {DATASET_FORMAT} {FORMAT_VERSION})",
                    manifest.format, manifest.version
                ),
            )
            .with_path(root.to_string()));
        }
        Ok(Multiplexer {
            root: root.clone(),
            manifest,
        })
    }

    /// Opens a dataset folder from its URL.
    ///
    /// # Errors
    /// As [`open`](Self::open), plus resolver errors.
    pub async fn open_url(resolver: &dyn Resolver, url: &str) -> Result<Self> {
        Self::open(&resolver.resolve(url).await?).await
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.manifest.count
    }

    /// Never true: an empty dataset cannot be created.
    pub fn is_empty(&self) -> bool {
        self.manifest.count == 0
    }

    /// The dataset folder.
    pub fn path(&self) -> &UPath {
        &self.root
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Starts a new, independent read session and returns its mux id.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn create_read_session(&self) -> Result<MuxId> {
        let now = self.root.clock().now();
        let session = format!("{}-{}", compact_micros(now), &nonce()[..6]);
        let doc = SessionDoc {
            version: FORMAT_VERSION,
            session: session.clone(),
            count: self.manifest.count,
            width: claim_width(self.manifest.count),
            data: self.manifest.data.clone(),
            mode: "once".into(),
            created: rfc3339_micros(now),
        };
        self.session_dir(&session)?
            .join("session.json")?
            .write_json(&doc)
            .await?;
        MuxId::new(session, self.root.url())
    }

    fn session_dir(&self, session: &str) -> Result<UPath> {
        self.root.join("sessions")?.join(session)
    }

    fn check_id(&self, id: &MuxId) -> Result<UPath> {
        if id.dataset_url() != self.root.url() {
            return Err(Error::invalid(
                "stat",
                format!(
                    "the mux id belongs to another dataset ({})",
                    id.dataset_url()
                ),
            ));
        }
        self.session_dir(id.session())
    }

    /// The sessions of this dataset, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn sessions(&self) -> Result<Vec<MuxId>> {
        let dirs = self.root.join("sessions")?.ls().await?;
        dirs.into_iter()
            .map(|d| MuxId::new(d.name(), self.root.url()))
            .collect()
    }

    /// Reports progress of a session: claimed count, per-worker counts,
    /// first and last claim times. Per-worker counts come from the workers'
    /// summaries, refreshed at most once a second while they run and at their
    /// end; with `exact`, every claim is read instead (one request each).
    ///
    /// # Errors
    /// `NotFound` for an unknown session; storage errors.
    pub async fn stat(&self, id: &MuxId) -> Result<SessionStat> {
        stat::stat(&self.check_id(id)?, self.manifest.count, false).await
    }

    /// [`stat`](Self::stat) reading every claim for exact per-worker counts.
    ///
    /// # Errors
    /// As [`stat`](Self::stat).
    pub async fn stat_exact(&self, id: &MuxId) -> Result<SessionStat> {
        stat::stat(&self.check_id(id)?, self.manifest.count, true).await
    }

    /// True when every element of the session has been handed out.
    ///
    /// # Errors
    /// `NotFound` for an unknown session; storage errors.
    pub async fn done(&self, id: &MuxId) -> Result<bool> {
        stat::done(&self.check_id(id)?, self.manifest.count).await
    }

    /// Removes the dataset and all its sessions; returns the objects removed.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn destroy(&self) -> Result<usize> {
        self.root.rmrf().await
    }
}

/// Reads a session document, mapping absence to a clear error.
pub(crate) async fn read_session(dataset: &UPath, session: &str) -> Result<SessionDoc> {
    let p = dataset
        .join("sessions")?
        .join(session)?
        .join("session.json")?;
    let doc: SessionDoc = p.read_json().await.map_err(|e| {
        if e.is_not_found() {
            Error::new(ErrorKind::NotFound, "open")
                .with_path(dataset.to_string())
                .with_message(format!("no session '{session}' in this dataset"))
        } else {
            e
        }
    })?;
    if doc.version != FORMAT_VERSION || doc.mode != "once" {
        return Err(Error::invalid(
            "open",
            format!(
                "unsupported session version {} mode '{}'",
                doc.version, doc.mode
            ),
        ));
    }
    if doc.count == 0 || doc.width != claim_width(doc.count) {
        return Err(
            Error::corrupt("open", "session document is inconsistent").with_path(p.to_string())
        );
    }
    Ok(doc)
}

/// Decodes a claim body.
pub(crate) fn parse_claim(bytes: &[u8]) -> Result<Claim> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt("claim", format!("unreadable claim: {e}")))
}

/// Convenience: decode every element of a dataset (for tests and small data).
///
/// # Errors
/// Storage errors; `Corrupt` for a bad data file.
pub async fn read_all<T: DeserializeOwned>(mux: &Multiplexer) -> Result<Vec<T>> {
    let bytes = mux.root.join(&mux.manifest.data)?.read_bytes().await?;
    let el = Elements::parse(bytes, Some(mux.manifest.count))?;
    (0..el.len()).map(|i| el.get(i)).collect()
}

pub(crate) fn now_ms(p: &UPath) -> u64 {
    unix_millis(p.clock().now())
}

#[allow(dead_code)]
pub(crate) fn system_time_ms(t: SystemTime) -> u64 {
    unix_millis(t)
}
