//! # cloudmux-mux
//!
//! The Multiplexer: hand out every element of a dataset exactly once to a
//! fleet of workers, through object storage alone. It depends only on the
//! storage core (`cloudmux-core`): its [`Store`](cloudmux_core::Store) trait,
//! its paths and its [conditional documents](cloudmux_core::cond).
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`layout`] | every key name of a dataset and its sessions |
//! | [`planner`] | the pure claim planner: given what a worker knows, the next action |
//! | [`worker`] | the worker: drives the planner, one request per action |
//! | [`session`] | the session document, the session mode, the claim body |
//! | [`codec`] | the dataset file: one MessagePack array, decoded one element at a time |
//! | [`id`] | the mux id `cmx1:<session>@<dataset-url>` |
//! | [`stat`] | progress for the coordinator |
//!
//! ## Using it
//!
//! ```
//! # tokio_test::block_on(async {
//! use cloudmux_core::{UPath, CoreResolver};
//! use cloudmux_mux::{Multiplexer, Worker, WorkerOptions};
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
//! ## Protocol (session format 2)
//!
//! A dataset is a folder below the coordinator's path, named
//! `<UTC time to the microsecond>-<8 random hex>[-<tag>]` so that folders
//! sort by creation time and two coordinators never collide. Its files are
//! listed in [`layout`].
//!
//! **Creating.** `new` writes the data file, then the manifest (a
//! conditional document): a folder with a manifest is complete.
//!
//! **Claiming.** A worker owns element `i` when its create-if-absent of
//! `claims/<i>` succeeds. The claim is a [conditional
//! document](cloudmux_core::cond) recording the worker id and the time; its
//! nonce settles every ambiguous create (see below). There is no shared
//! counter: N workers write N different objects, so throughput grows with N.
//! Which index to try next is the [planner]'s business: a random start, or
//! with a shard hint ([`WorkerOptions::shard`], or `CLOUDMUX_SHARD` in the
//! environment; `cloudmux work` also reads array jobs' task index) worker `I`
//! of `K` walks `I E / K .. (I+1) E / K` first. Hints change only where workers look, never what a claim means:
//! any mix of hints gives each element to exactly one worker.
//!
//! **Unknown outcomes.** A create whose response was lost, or that timed out
//! (and may still be applied by the server later), is settled by reading the
//! claim back: our nonce means ours. A read-back that finds nothing does not
//! free the index: the worker sends the *same* claim again, so a late apply
//! of the first attempt is still recognised as ours, and it claims nothing
//! else until that claim is settled. Only a real "already exists" from the
//! store is a lost race; any other error stops the worker.
//!
//! **Ending.** A worker whose listing (or own walk) shows a block of 1,000
//! indices fully claimed creates `full/<k>` (create-only; losing that race is
//! fine). A worker in the tail lists `full/` before listing claims again, so
//! it skips blocks others have seen full instead of scanning every claim,
//! and its next listing covers the rest of one unmarked block, which proves
//! that block full or shows its last free indices. The first
//! worker that knows every element claimed publishes the missing block
//! markers and creates `exhausted`, which [`Multiplexer::done`] reads.
//!
//! **Destroying.** [`Multiplexer::destroy`] takes the lock on
//! `destroying` (the object `destroying.lock`), which workers check at least
//! every [`DESTROY_CHECK_INTERVAL`](worker::DESTROY_CHECK_INTERVAL): a worker
//! that sees it held stops claiming with an error. When sessions are still running
//! it refuses unless forced, and when forced it waits longer than that
//! interval before deleting anything, so no live worker re-creates a claim it
//! deletes. It deletes everything but the manifest and the lock, then the
//! manifest, then the lock: an interrupted destroy can be run again, and
//! finishes the job.

pub mod codec;
pub mod id;
pub mod layout;
pub mod lease;
pub mod planner;
pub mod session;
pub mod stat;
pub mod worker;

pub use codec::{Elements, ElementsWriter, encode_elements};
pub use id::{MUX_ID_PREFIX, MuxId};
pub use lease::{FailOutcome, Lease, LeaseEnd};
pub use session::{
    AttemptOutcome, AttemptRecord, Claim, ClaimState, LeaseTerms, SESSION_FORMAT, SessionDoc,
    SessionMode, SessionOptions,
};
pub use stat::{FailedElement, LeasedStat, SessionStat, WorkerStat};
pub use worker::{BlockingWorker, Task, Worker, WorkerOptions, WorkerProgress};

use std::time::Duration;

use cloudmux_core::clock::{compact_micros, rfc3339_micros, unix_millis};
use cloudmux_core::cond::{CondDoc, Written};
use cloudmux_core::util::nonce;
use cloudmux_core::{Error, ErrorKind, LockOptions, Resolver, Result, UPath};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use layout::{DatasetLayout, claim_width};

/// The `format` field of every manifest.
pub const DATASET_FORMAT: &str = "cloudmux-dataset";
/// The dataset format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

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

/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 100;

/// Makes a tag safe as part of a folder name.
fn clean_tag(tag: &str) -> Result<String> {
    let chars = tag.chars().count();
    if chars == 0 || chars > MAX_TAG_CHARS {
        return Err(Error::invalid(
            "new",
            format!("the tag must have 1 to {MAX_TAG_CHARS} characters (it has {chars})"),
        ));
    }
    Ok(tag
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect())
}

/// Options of [`Multiplexer::destroy_with`].
#[derive(Debug, Clone, Default)]
pub struct DestroyOptions {
    /// Destroy even when sessions are still running: their workers stop
    /// with an error.
    pub force: bool,
    /// How long to wait, once the destroy lock is held, before deleting
    /// anything while sessions are running (default: twice the workers'
    /// destroy-check interval plus a margin).
    pub grace: Option<Duration>,
}

/// What [`Multiplexer::destroy_with`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Destroyed {
    /// Objects deleted (the manifest included; the destroy lock, which is
    /// bookkeeping, not).
    pub objects: usize,
    /// Sessions that were still running.
    pub running: usize,
}

/// The coordinator's handle on a dataset.
#[derive(Debug, Clone)]
pub struct Multiplexer {
    layout: DatasetLayout,
    manifest: Manifest,
}

impl Multiplexer {
    /// Stores `data` as a new dataset in a new, time-named folder below `path`.
    ///
    /// # Errors
    /// `InvalidInput` for an empty dataset, a bad tag or an element that
    /// cannot be encoded, naming its position (nothing is written then);
    /// storage errors.
    pub async fn new<T, I>(data: I, path: &UPath, tag: Option<&str>) -> Result<Self>
    where
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        let tag_name = tag.map(clean_tag).transpose()?;
        let (bytes, count) = encode_elements(data)?;
        Self::create(bytes, count, path, tag, tag_name).await
    }

    /// Stores an already encoded dataset file (from an
    /// [`ElementsWriter`]) as a new dataset.
    ///
    /// # Errors
    /// As [`new`](Self::new); `Corrupt` when the bytes are not a dataset file.
    pub async fn from_encoded(
        bytes: Vec<u8>,
        count: usize,
        path: &UPath,
        tag: Option<&str>,
    ) -> Result<Self> {
        let tag_name = tag.map(clean_tag).transpose()?;
        Self::create(bytes, count, path, tag, tag_name).await
    }

    async fn create(
        bytes: Vec<u8>,
        count: usize,
        path: &UPath,
        tag: Option<&str>,
        tag_name: Option<String>,
    ) -> Result<Self> {
        if count == 0 {
            return Err(
                Error::invalid("new", "the dataset is empty: nothing to hand out")
                    .with_path(path.to_string()),
            );
        }
        let now = path.clock().now();
        let mut name = format!("{}-{}", compact_micros(now), &nonce()[..8]);
        if let Some(t) = tag_name {
            name.push('-');
            name.push_str(&t);
        }
        let layout = DatasetLayout::new(path.join(&name)?);
        let manifest = Manifest {
            format: DATASET_FORMAT.into(),
            version: FORMAT_VERSION,
            count,
            created: rfc3339_micros(now),
            created_ms: unix_millis(now),
            tag: tag.map(str::to_string),
            data: layout::DATA.into(),
            data_size: bytes.len() as u64,
        };
        // Data first, manifest last: a folder with a manifest is complete.
        // The folder's name is new, so nobody else writes here: the data
        // file is written unconditionally (a retry is then harmless).
        layout.data(&manifest.data)?.overwrite_bytes(bytes).await?;
        let doc = CondDoc::<Manifest>::new(layout.manifest()?);
        let mut w = doc.create_write(&manifest, 1)?;
        match doc.send(&mut w).await? {
            Written::Current(_) => {}
            _ => {
                return Err(Error::new(ErrorKind::AlreadyExists, "new")
                    .with_path(layout.root().to_string())
                    .with_message("another manifest appeared in a new dataset folder"));
            }
        }
        tracing::info!(dataset = %layout.root(), count, "dataset created");
        Ok(Multiplexer { layout, manifest })
    }

    /// Opens an existing dataset folder.
    ///
    /// # Errors
    /// `NotFound` when there is no manifest; `Corrupt` when it cannot be read;
    /// `InvalidInput` for an unknown format or version.
    pub async fn open(root: &UPath) -> Result<Self> {
        let layout = DatasetLayout::new(root.clone());
        let manifest = CondDoc::<Manifest>::new(layout.manifest()?)
            .read()
            .await?
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "open")
                    .with_path(root.to_string())
                    .with_message("no cloudmux dataset here (manifest.json is missing)")
            })?
            .body;
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
        Ok(Multiplexer { layout, manifest })
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
        self.layout.root()
    }

    /// The dataset's layout (every key name).
    pub fn layout(&self) -> &DatasetLayout {
        &self.layout
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Starts a new, independent read session and returns its mux id. Each
    /// element is handed out exactly once.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn create_read_session(&self) -> Result<MuxId> {
        self.create_read_session_with(SessionOptions::default())
            .await
    }

    /// Starts a new read session with options: with a lease, a crash-safe
    /// leased session (see [`lease`]).
    ///
    /// # Errors
    /// `InvalidInput` for a lease under 100 ms or zero attempts; storage errors.
    pub async fn create_read_session_with(&self, opts: SessionOptions) -> Result<MuxId> {
        let mode = match opts.lease {
            None => {
                if opts.max_attempts.is_some() || opts.max_failed.is_some() {
                    return Err(Error::invalid(
                        "session",
                        "max_attempts and max_failed need a leased session (a lease)",
                    ));
                }
                SessionMode::Once
            }
            Some(lease) => {
                if lease < Duration::from_millis(100) || lease > Duration::from_secs(7 * 86_400) {
                    return Err(Error::invalid(
                        "session",
                        format!("the lease must be between 100 ms and 7 days (not {lease:?})"),
                    ));
                }
                let max_attempts = opts.max_attempts.unwrap_or(3);
                if max_attempts == 0 {
                    return Err(Error::invalid("session", "max_attempts must be at least 1"));
                }
                if opts.max_failed == Some(0) {
                    return Err(Error::invalid("session", "max_failed must be at least 1"));
                }
                SessionMode::Leased(LeaseTerms {
                    lease_ms: lease.as_millis() as u64,
                    max_attempts,
                    max_failed: opts.max_failed,
                })
            }
        };
        let now = self.path().clock().now();
        let session = format!("{}-{}", compact_micros(now), &nonce()[..6]);
        let doc = SessionDoc {
            version: SESSION_FORMAT,
            session: session.clone(),
            count: self.manifest.count,
            width: claim_width(self.manifest.count),
            data: self.manifest.data.clone(),
            mode,
            created: rfc3339_micros(now),
        };
        let cd = CondDoc::<SessionDoc>::new(self.layout.session(&session)?.doc()?);
        let mut w = cd.create_write(&doc, 1)?;
        match cd.send(&mut w).await? {
            Written::Current(_) => MuxId::new(session, self.path().url()),
            _ => Err(Error::new(ErrorKind::AlreadyExists, "session")
                .with_path(self.path().to_string())
                .with_message("a session with this id already exists")),
        }
    }

    fn check_id(&self, op: &'static str, id: &MuxId) -> Result<layout::SessionLayout> {
        if !id::same_dataset(id.dataset_url(), &self.path().url()) {
            return Err(Error::invalid(
                op,
                format!(
                    "the mux id belongs to another dataset ({})",
                    id.dataset_url()
                ),
            ));
        }
        self.layout.session(id.session())
    }

    /// The sessions of this dataset, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn sessions(&self) -> Result<Vec<MuxId>> {
        let dirs = self.layout.sessions()?.ls().await?;
        dirs.into_iter()
            .filter(|d| id::valid_session_id(d.name()))
            .map(|d| MuxId::new(d.name(), self.path().url()))
            .collect()
    }

    /// Reports progress of a session: claimed count, per-worker counts,
    /// first and last claim times. Per-worker counts come from the workers'
    /// summaries, refreshed every few seconds while they run and at their
    /// end.
    ///
    /// # Errors
    /// `NotFound` for an unknown session; storage errors.
    pub async fn stat(&self, id: &MuxId) -> Result<SessionStat> {
        let (s, doc) = self.session_of("stat", id).await?;
        stat::stat(&s, self.manifest.count, false, doc.mode.lease()).await
    }

    async fn session_of(
        &self,
        op: &'static str,
        id: &MuxId,
    ) -> Result<(layout::SessionLayout, SessionDoc)> {
        let s = self.check_id(op, id)?;
        let doc = read_session(&self.layout, id.session())
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    Error::new(ErrorKind::NotFound, op)
                        .with_path(s.dir().to_string())
                        .with_message("no such session")
                } else {
                    e
                }
            })?;
        Ok((s, doc))
    }

    /// [`stat`](Self::stat) reading every claim for exact per-worker counts.
    ///
    /// # Errors
    /// As [`stat`](Self::stat); `Corrupt` naming an unreadable claim.
    pub async fn stat_exact(&self, id: &MuxId) -> Result<SessionStat> {
        let (s, doc) = self.session_of("stat", id).await?;
        stat::stat(&s, self.manifest.count, true, doc.mode.lease()).await
    }

    /// True when every element of the session has been handed out; in a
    /// leased session, when every element is completed or failed.
    ///
    /// # Errors
    /// `NotFound` for an unknown session; storage errors.
    pub async fn done(&self, id: &MuxId) -> Result<bool> {
        let (s, doc) = self.session_of("done", id).await?;
        stat::done(&s, self.manifest.count, doc.mode.lease().is_some()).await
    }

    /// Makes a leased session's failed elements available again, each with a
    /// new attempt budget (its earlier attempts are kept for the record);
    /// returns how many. Workers still watching pick them up; otherwise run
    /// workers again.
    ///
    /// # Errors
    /// `InvalidInput` for a default session; storage errors.
    pub async fn retry_failed(&self, id: &MuxId) -> Result<usize> {
        let (s, doc) = self.session_of("retry-failed", id).await?;
        if doc.mode.lease().is_none() {
            return Err(Error::invalid(
                "retry-failed",
                "this session is not leased: each element is handed out once and for \
                 all (failures recorded by `cloudmux work` are listed by `stat`, not \
                 retried); run them again in a new session, or use leased sessions \
                 (`--lease`) for retries",
            ));
        }
        let width = doc.width;
        let failed = s.failed()?;
        let mut n = 0;
        let keys: Vec<String> = {
            use futures::TryStreamExt;
            failed
                .riterdir_meta()
                .map_ok(|m| m.key)
                .try_collect()
                .await?
        };
        for key in keys {
            let Some(i) = layout::claim_index(&key, width, doc.count) else {
                continue;
            };
            let claim = CondDoc::<Claim>::new(s.claims()?.join(&layout::claim_name(i, width))?);
            let done = claim
                .modify(None, |c| {
                    let Some(c) = c else { return Ok(None) };
                    if c.state != Some(ClaimState::Failed) {
                        return Ok(None);
                    }
                    let mut next = c.clone();
                    next.earlier.append(&mut next.history);
                    next.state = Some(ClaimState::Released);
                    Ok(Some(next))
                })
                .await?;
            if done.is_some_and(|d| d.body.state == Some(ClaimState::Released)) {
                failed.with_key(&key)?.remove_file().await?;
                n += 1;
            }
        }
        if n > 0 {
            s.completed()?.remove_file().await?;
        }
        Ok(n)
    }

    /// Removes the dataset and all its sessions; returns the objects removed.
    /// Refuses while a session is still running (see
    /// [`destroy_with`](Self::destroy_with)).
    ///
    /// # Errors
    /// `Precondition` when sessions are running; storage errors.
    pub async fn destroy(&self) -> Result<usize> {
        Ok(self.destroy_with(DestroyOptions::default()).await?.objects)
    }

    /// Removes the dataset and all its sessions, as a protocol step (see the
    /// [crate docs](crate#protocol-session-format-2)).
    ///
    /// # Errors
    /// `Precondition` when sessions are running and `force` is off;
    /// `LockTimeout` when another destroy is running; storage errors.
    pub async fn destroy_with(&self, opts: DestroyOptions) -> Result<Destroyed> {
        destroy(&self.layout, Some(self), opts).await
    }

    /// Finishes an interrupted destroy of the folder `root`, whose manifest
    /// may already be gone (but whose destroy lock is still there).
    ///
    /// # Errors
    /// `NotFound` when `root` is neither a dataset nor a dataset being destroyed.
    pub async fn resume_destroy(root: &UPath, opts: DestroyOptions) -> Result<Destroyed> {
        let layout = DatasetLayout::new(root.clone());
        match Multiplexer::open(root).await {
            Ok(mux) => destroy(&layout, Some(&mux), opts).await,
            Err(e) if e.is_not_found() => {
                if cloudmux_core::lock::info(&layout.destroying()?)
                    .await?
                    .is_none()
                {
                    return Err(e);
                }
                destroy(&layout, None, opts).await
            }
            Err(e) => Err(e),
        }
    }
}

/// The destroy protocol.
async fn destroy(
    layout: &DatasetLayout,
    mux: Option<&Multiplexer>,
    opts: DestroyOptions,
) -> Result<Destroyed> {
    let root = layout.root();
    // One destroy at a time; the lock also tells workers to stop.
    let guard = layout
        .destroying()?
        .lock_with(
            LockOptions::new(Duration::from_secs(30))
                .ttl(Duration::from_secs(30))
                .holder(cloudmux_core::util::default_worker_id()),
        )
        .await?;
    guard.keep_renewed();
    let mut running = 0;
    if let Some(mux) = mux {
        for id in mux.sessions().await? {
            if !mux.done(&id).await.unwrap_or(false) {
                running += 1;
            }
        }
    }
    if running > 0 {
        if !opts.force {
            guard.release().await?;
            return Err(Error::new(ErrorKind::Precondition, "destroy")
                .with_path(root.to_string())
                .with_message(format!(
                    "{running} session(s) still running; destroy with force to stop their workers"
                )));
        }
        // Live workers check the lock at least every interval: wait until
        // each has seen it and stopped, so none re-creates what is deleted.
        let grace = opts
            .grace
            .unwrap_or(worker::DESTROY_CHECK_INTERVAL * 2 + Duration::from_secs(2));
        tracing::info!(dataset = %root, running, ?grace, "waiting for workers to stop");
        root.clock().sleep(grace).await;
    }
    // Everything but the manifest and the lock.
    let mut objects = 0;
    for entry in root.ls().await? {
        let name = entry.name();
        if name == layout::MANIFEST || entry == *guard.lock_path() {
            continue;
        }
        objects += entry.rmrf().await?;
    }
    let manifest = layout.manifest()?;
    if manifest.is_file().await? {
        manifest.remove_file().await?;
        objects += 1;
    }
    // The lock last, still held: it is what marks an unfinished destroy.
    guard.lock_path().remove_file().await?;
    guard.disarm();
    // Whatever the backend itself left (temporary files of killed writers).
    if let Err(e) = root.rmrf().await {
        tracing::debug!(error = %e, "cleaning leftovers after destroy");
    }
    Ok(Destroyed { objects, running })
}

/// Reads a session document, mapping absence to a clear error.
pub(crate) async fn read_session(dataset: &DatasetLayout, session: &str) -> Result<SessionDoc> {
    let p = dataset.session(session)?.doc()?;
    let doc = CondDoc::<SessionDoc>::new(p.clone())
        .read()
        .await
        .map_err(|e| e.set_path(p.to_string()))?
        .ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "open")
                .with_path(dataset.root().to_string())
                .with_message(format!("no session '{session}' in this dataset"))
        })?
        .body;
    if doc.version != SESSION_FORMAT {
        return Err(Error::invalid(
            "open",
            format!(
                "unsupported session format {} (this build reads {SESSION_FORMAT})",
                doc.version
            ),
        )
        .with_path(p.to_string()));
    }
    if doc.count == 0 || doc.width != claim_width(doc.count) {
        return Err(Error::corrupt(
            "open",
            format!(
                "session document is inconsistent (count {}, width {})",
                doc.count, doc.width
            ),
        )
        .with_path(p.to_string()));
    }
    Ok(doc)
}

/// Convenience: decode every element of a dataset (for tests and small data).
///
/// # Errors
/// Storage errors; `Corrupt` for a bad data file.
pub async fn read_all<T: DeserializeOwned>(mux: &Multiplexer) -> Result<Vec<T>> {
    let bytes = mux.layout.data(&mux.manifest.data)?.read_bytes().await?;
    let el = Elements::parse(bytes, Some(mux.manifest.count))?;
    (0..el.len()).map(|i| el.get(i)).collect()
}
