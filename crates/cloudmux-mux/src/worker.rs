//! The worker side: open a mux id, claim elements, hand them out.
//!
//! The [`Worker`] is a thin driver around the pure [`Planner`]: it asks the
//! planner what to do, does the one request that takes, and tells the planner
//! what it found.

use std::marker::PhantomData;
use std::time::Duration;

use cloudmux_core::clock::unix_millis;
use cloudmux_core::cond::{CondDoc, Write, Written};
use cloudmux_core::util::{default_worker_id, nonce};
use cloudmux_core::{Error, ErrorKind, ListQuery, Resolver, Result, UPath};
use futures::stream::{self, BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::layout::{DatasetLayout, SessionLayout, claim_index, claim_name};
use crate::planner::{Action, ListMode, Planner};
use crate::session::{Claim, SessionDoc};
use crate::{Elements, MuxId, read_session};

/// Options of [`Worker::open`].
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// The worker's id, recorded in its claims. Default:
    /// [`default_worker_id`] (host/pid/thread, plus the batch task index).
    pub worker_id: Option<String>,
    /// A timeout on each storage request (slow requests fail as transient
    /// and are retried).
    pub timeout: Option<Duration>,
    /// Seed for the worker's random choices (default: random). Tests use it
    /// for reproducible runs.
    pub seed: Option<u64>,
    /// Progress summary interval (default 5 s, never below the backend's
    /// per-object write interval).
    pub summary_interval: Option<Duration>,
    /// How often the worker checks that its dataset is not being destroyed
    /// (default 5 s).
    pub destroy_check_interval: Option<Duration>,
}

impl WorkerOptions {
    /// Sets the worker id.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }
    /// Sets the per-request timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Sets the random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// The default interval of destroy checks.
pub const DESTROY_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What a worker has done so far (also written as its summary object).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerProgress {
    /// The worker id.
    pub worker: String,
    /// Elements this worker obtained.
    pub claimed: u64,
    /// Creates that lost to another worker.
    pub collisions: u64,
    /// Claims list pages read.
    pub lists: u64,
    /// Block-marker requests (reads and writes).
    pub marker_checks: u64,
    /// Claims whose outcome was unknown at first and settled later.
    #[serde(default)]
    pub settled: u64,
    /// First claim time (ms since the epoch), if any.
    pub first_ms: Option<u64>,
    /// Last claim time (ms since the epoch), if any.
    pub last_ms: Option<u64>,
    /// True once the worker saw the session exhausted.
    pub finished: bool,
}

/// A worker's handle on a session. Iterate with [`next`](Worker::next), as a
/// `Stream` with [`into_stream`](Worker::into_stream), or block with
/// [`BlockingWorker`].
pub struct Worker<T> {
    dataset: DatasetLayout,
    session: SessionLayout,
    claims: UPath,
    id: MuxId,
    worker_id: String,
    doc: SessionDoc,
    elements: Option<Elements>,
    planner: Planner,
    /// A claim whose create had an unknown outcome: settle it first, by
    /// sending the very same write again.
    pending: Option<(usize, Write<Claim>)>,
    progress: WorkerProgress,
    summary: UPath,
    summary_interval: Duration,
    last_summary: Option<Duration>,
    summary_dirty: bool,
    destroy_every: Duration,
    last_destroy_check: Option<Duration>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id.to_string())
            .field("worker_id", &self.worker_id)
            .field("progress", &self.progress)
            .finish()
    }
}

impl<T: DeserializeOwned> Worker<T> {
    /// Joins the session named by `mux_id`, resolving its URL with `resolver`.
    /// Reads the session document and fetches the dataset once.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed mux id; `NotFound` for a missing dataset
    /// or session; `Corrupt` for a bad data file; storage errors.
    pub async fn open(resolver: &dyn Resolver, mux_id: &str, opts: WorkerOptions) -> Result<Self> {
        let id: MuxId = mux_id.parse()?;
        let dataset = resolver.resolve(id.dataset_url()).await?;
        Self::open_path(&dataset, id, opts).await
    }

    /// Joins a session on an already opened dataset path.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_path(dataset: &UPath, id: MuxId, opts: WorkerOptions) -> Result<Self> {
        let dataset = dataset.with_timeout(opts.timeout.or(dataset.timeout()));
        let layout = DatasetLayout::new(dataset.clone());
        let doc = read_session(&layout, id.session()).await?;
        let data = layout.data(&doc.data)?.read_bytes().await.map_err(|e| {
            if e.is_not_found() && !e.is_bucket_missing() {
                Error::new(ErrorKind::NotFound, "open")
                    .with_path(dataset.to_string())
                    .with_message("the dataset's data file is missing (was it destroyed?)")
            } else {
                e
            }
        })?;
        let elements =
            Elements::parse(data, Some(doc.count)).map_err(|e| e.set_path(dataset.to_string()))?;
        let worker_id = opts.worker_id.unwrap_or_else(default_worker_id);
        let session = layout.session(id.session())?;
        let claims = session.claims()?;
        let summary = session.worker_summary(&worker_id, &nonce()[..8])?;
        let caps = dataset.store().capabilities();
        let mode = if caps.list_start_after {
            ListMode::StartAfter
        } else {
            ListMode::DigitPrefix
        };
        let seed = opts.seed.unwrap_or_else(|| fastrand::u64(..));
        let planner = Planner::new(doc.count, doc.width, caps.max_list_page, mode, seed);
        let summary_interval = opts
            .summary_interval
            .unwrap_or(Duration::from_secs(5))
            .max(caps.min_write_interval);
        Ok(Worker {
            dataset: layout,
            session,
            claims,
            id,
            progress: WorkerProgress {
                worker: worker_id.clone(),
                ..Default::default()
            },
            worker_id,
            doc,
            elements: Some(elements),
            planner,
            pending: None,
            summary,
            summary_interval,
            last_summary: None,
            summary_dirty: false,
            destroy_every: opts
                .destroy_check_interval
                .unwrap_or(DESTROY_CHECK_INTERVAL),
            last_destroy_check: None,
            _t: PhantomData,
        })
    }

    /// The mux id this worker joined.
    pub fn mux_id(&self) -> &MuxId {
        &self.id
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The number of elements in the session.
    pub fn len(&self) -> usize {
        self.doc.count
    }

    /// Never true (sessions are not empty).
    pub fn is_empty(&self) -> bool {
        self.doc.count == 0
    }

    /// Counters of this worker so far.
    pub fn progress(&self) -> &WorkerProgress {
        &self.progress
    }

    fn decode(&self, i: usize) -> Result<T> {
        match &self.elements {
            Some(el) => el.get(i),
            None => {
                Err(Error::new(ErrorKind::Other, "next").with_message("worker already finished"))
            }
        }
    }

    /// Obtains the next element and its index, or `None` when every element
    /// of the session has been handed out (to this worker or others).
    ///
    /// # Errors
    /// Storage errors that outlasted the retries, and `OutcomeUnknown` for a
    /// claim that could not be settled yet. The worker stays usable: calling
    /// `next` again settles that claim, by sending the same claim again,
    /// before claiming anything else. `NotFound` when the dataset is being
    /// destroyed: stop then.
    pub async fn next(&mut self) -> Option<Result<(usize, T)>> {
        match self.step().await {
            Ok(Some(i)) => {
                self.maybe_summary(false).await;
                Some(self.decode(i).map(|v| (i, v)))
            }
            Ok(None) => {
                self.maybe_summary(true).await;
                // Nothing more will be handed out: free the dataset's memory.
                self.elements = None;
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    fn claim_doc(&self, i: usize) -> Result<CondDoc<Claim>> {
        Ok(CondDoc::new(
            self.claims.join(&claim_name(i, self.doc.width))?,
        ))
    }

    /// Claims the next index.
    async fn step(&mut self) -> Result<Option<usize>> {
        self.check_destroy().await?;
        if let Some((i, mut w)) = self.pending.take() {
            // The last create of claim i ended with an unknown outcome.
            match self.claim_doc(i)?.send(&mut w).await {
                Ok(Written::Current(_)) => {
                    self.progress.settled += 1;
                    self.won(i);
                    return Ok(Some(i));
                }
                Ok(_) => {
                    self.progress.settled += 1;
                    self.progress.collisions += 1;
                    self.planner.taken(i);
                }
                Err(e) => {
                    self.pending = Some((i, w));
                    return Err(e);
                }
            }
        }
        if self.progress.finished {
            return Ok(None);
        }
        loop {
            match self.planner.next_action() {
                Action::Claim(i) => {
                    if self.try_claim(i).await? {
                        self.won(i);
                        return Ok(Some(i));
                    }
                    self.progress.collisions += 1;
                    self.planner.taken(i);
                }
                Action::List {
                    from,
                    limit,
                    digits,
                } => self.list(from, limit, digits).await?,
                Action::ReadMarkers => self.read_markers().await?,
                Action::Done => {
                    self.finish().await;
                    return Ok(None);
                }
            }
        }
    }

    fn won(&mut self, i: usize) {
        self.planner.claimed(i);
        let now = unix_millis(self.claims.clock().now());
        self.progress.claimed += 1;
        self.progress.first_ms.get_or_insert(now);
        self.progress.last_ms = Some(now);
        self.summary_dirty = true;
    }

    /// Creates claim `i`. Ok(true): ours; Ok(false): somebody else's.
    /// Only a real "already exists" from the store is a lost race; any other
    /// failure is an error.
    async fn try_claim(&mut self, i: usize) -> Result<bool> {
        let claim = Claim {
            v: crate::session::SESSION_FORMAT,
            worker: self.worker_id.clone(),
            t_ms: unix_millis(self.claims.clock().now()),
        };
        let doc = self.claim_doc(i)?;
        let mut w = doc.create_write(&claim, 1)?;
        match doc.send(&mut w).await {
            Ok(Written::Current(_)) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if e.is_outcome_unknown() || e.may_have_applied() => {
                self.pending = Some((i, w));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Lists one page of claims and tells the planner.
    async fn list(&mut self, from: usize, limit: usize, digits: Option<usize>) -> Result<()> {
        let n = self.doc.count;
        let width = self.doc.width;
        let q = match digits {
            None => ListQuery {
                start_after: (from > 0).then(|| claim_name(from - 1, width)),
                limit: Some(limit),
                ..ListQuery::default()
            },
            Some(d) => ListQuery {
                prefix: claim_name(from, width)[..d].to_string(),
                limit: Some(limit),
                ..ListQuery::default()
            },
        };
        let page = self.claims.list_page(&q).await?;
        self.progress.lists += 1;
        let found: Vec<usize> = page
            .objects
            .iter()
            .filter_map(|o| claim_index(&o.key, width, n))
            .collect();
        // Indices in [from, hi) not listed are free (as of this listing).
        let range_end = match digits {
            None => n,
            Some(d) => (from + 10usize.pow((width - d) as u32)).min(n),
        };
        let hi = match (&page.next, found.last()) {
            (Some(_), Some(&l)) => l + 1,
            (Some(_), None) => from,
            _ => range_end,
        };
        self.planner.listed(from, &found, hi);
        self.publish_blocks().await;
        Ok(())
    }

    /// Learns which blocks others found fully claimed.
    async fn read_markers(&mut self) -> Result<()> {
        let dir = self.session.full()?;
        let mut token = None;
        let mut blocks = Vec::new();
        loop {
            let q = ListQuery {
                token,
                ..ListQuery::default()
            };
            let page = dir.list_page(&q).await?;
            self.progress.marker_checks += 1;
            blocks.extend(
                page.objects
                    .iter()
                    .filter_map(|o| o.key.rsplit('/').next()?.parse::<usize>().ok()),
            );
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        self.planner.markers(&blocks);
        Ok(())
    }

    /// Publishes `full/<k>` for blocks the planner found fully claimed, so
    /// that others skip scanning them. Markers are hints: losing their create
    /// race, or failing to write them, is fine.
    async fn publish_blocks(&mut self) {
        let blocks = self.planner.take_full_blocks();
        self.write_markers(blocks).await;
    }

    async fn write_markers(&mut self, blocks: Vec<usize>) {
        let mut writes = Vec::new();
        for k in blocks {
            let Ok(p) = self.session.full_block(k) else {
                continue;
            };
            self.progress.marker_checks += 1;
            writes.push(async move {
                if let Err(e) = p.write_bytes(bytes::Bytes::from_static(b"{}")).await
                    && !e.is_already_exists()
                {
                    tracing::debug!(error = %e, "could not write a block marker");
                }
            });
        }
        // One listing can complete two blocks: write their markers at once.
        futures::future::join_all(writes).await;
    }

    /// Checks, at most once per interval, that the dataset is not being
    /// destroyed; a destroy waits longer than this interval before deleting.
    async fn check_destroy(&mut self) -> Result<()> {
        let now = self.claims.clock().elapsed();
        if let Some(last) = self.last_destroy_check
            && now.saturating_sub(last) < self.destroy_every
        {
            return Ok(());
        }
        self.last_destroy_check = Some(now);
        let marker = cloudmux_core::lock::info(&self.dataset.destroying()?).await?;
        if marker.is_some_and(|m| m.held) {
            return Err(Error::new(ErrorKind::NotFound, "next")
                .with_path(self.dataset.root().to_string())
                .with_message("the dataset is being destroyed: this worker stops claiming"));
        }
        Ok(())
    }

    /// Marks the session exhausted (create-only; losing that race is fine),
    /// after publishing every block marker still missing.
    async fn finish(&mut self) {
        self.progress.finished = true;
        self.summary_dirty = true;
        let blocks = self.planner.all_unmarked_full_blocks();
        self.write_markers(blocks).await;
        if let Ok(p) = self.session.exhausted() {
            let body = format!(
                "{{\"by\":{:?},\"t_ms\":{}}}",
                self.worker_id,
                unix_millis(self.claims.clock().now())
            );
            if let Err(e) = p.write_bytes(body).await
                && !e.is_already_exists()
            {
                tracing::debug!(error = %e, "could not write the exhausted marker");
            }
        }
    }

    /// Writes the progress summary at most once per interval, and at the end.
    async fn maybe_summary(&mut self, last: bool) {
        if !self.summary_dirty {
            return;
        }
        let now = self.claims.clock().elapsed();
        if !last
            && let Some(prev) = self.last_summary
            && now.saturating_sub(prev) < self.summary_interval
        {
            return;
        }
        if !last && self.last_summary.is_none() {
            // The first summary waits one interval: short runs write one.
            self.last_summary = Some(now);
            return;
        }
        self.last_summary = Some(now);
        self.summary_dirty = false;
        if let Err(e) = self.summary.overwrite_json(&self.progress).await {
            tracing::debug!(error = %e, "could not write the worker summary");
        }
    }

    /// The worker as a `Stream` of `(index, element)`.
    pub fn into_stream(self) -> BoxStream<'static, Result<(usize, T)>>
    where
        T: Send + 'static,
    {
        stream::unfold(self, |mut w| async move { w.next().await.map(|r| (r, w)) }).boxed()
    }

    /// The worker as a `Stream` of elements only (the original API).
    pub fn into_elements(self) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
    {
        self.into_stream().map(|r| r.map(|(_, v)| v)).boxed()
    }
}

/// A worker for programs without an async runtime: a plain `Iterator`.
///
/// ```
/// use cloudmux_core::{UPath, CoreResolver};
/// use cloudmux_mux::{BlockingWorker, Multiplexer, WorkerOptions};
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let id = rt.block_on(async {
///     let root = UPath::parse("mem://guide-blocking")?;
///     let mux = Multiplexer::new(["a", "b", "c"], &root, None).await?;
///     mux.create_read_session().await
/// })?;
/// drop(rt);
///
/// let worker = BlockingWorker::<String>::open(&CoreResolver, &id.to_string(), WorkerOptions::default())?;
/// let mut got: Vec<String> = worker.map(|r| r.unwrap()).collect();
/// got.sort();
/// assert_eq!(got, ["a", "b", "c"]);
/// # Ok::<_, cloudmux_core::Error>(())
/// ```
pub struct BlockingWorker<T> {
    rt: tokio::runtime::Runtime,
    inner: Worker<T>,
}

impl<T> std::fmt::Debug for BlockingWorker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: DeserializeOwned> BlockingWorker<T> {
    /// Opens a session with a private single-threaded runtime.
    ///
    /// # Errors
    /// As [`Worker::open`]; `Other` if no runtime can be built. Must not be
    /// called from inside an async runtime.
    pub fn open(resolver: &dyn Resolver, mux_id: &str, opts: WorkerOptions) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, "open").with_message(e.to_string()))?;
        let inner = rt.block_on(Worker::open(resolver, mux_id, opts))?;
        Ok(BlockingWorker { rt, inner })
    }

    /// The async worker inside.
    pub fn inner(&self) -> &Worker<T> {
        &self.inner
    }

    /// Next element with its index (blocking).
    pub fn next_indexed(&mut self) -> Option<Result<(usize, T)>> {
        self.rt.block_on(self.inner.next())
    }
}

impl<T: DeserializeOwned> Iterator for BlockingWorker<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_indexed().map(|r| r.map(|(_, v)| v))
    }
}
