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

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::layout::{DatasetLayout, SessionLayout, claim_index, claim_name};
use crate::lease::{
    Lease, LeaseCounters, Observer, Verdict, WATCH_READS, judge, watch_interval, write_marker,
};
use crate::planner::{Action, Known, ListMode, Planner};
use crate::session::{Claim, ClaimState, LeaseTerms, SessionDoc};
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
    /// (default 5 s), and, in leased sessions with `max_failed`, how many
    /// elements have failed.
    pub destroy_check_interval: Option<Duration>,
    /// Leased sessions: acknowledge the previous element when the next one
    /// is asked for (default true). Turn it off to acknowledge each
    /// [`Task`] yourself (several elements in flight at once).
    pub manual_ack: bool,
    /// Leased sessions: how long a worker that finished its pass keeps
    /// watching for expired leases (default: until the session is done).
    pub watch_for: Option<Duration>,
    /// This worker's place in a fleet of known size, `(index, count)`:
    /// the worker starts its walk at `index * E / count` instead of a
    /// random index. See [`WorkerOptions::shard`]. Default: `CLOUDMUX_SHARD`
    /// from the environment ([`cloudmux_core::util::explicit_shard_from_env`]),
    /// else a random start. A platform's task index is not read here: one
    /// task may run several workers, which would all start at one place
    /// (the `cloudmux` command, one worker per process, reads it).
    pub shard: Option<(u64, u64)>,
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
    /// Acknowledges leased elements explicitly ([`Task::ack`]) instead of
    /// when the next element is asked for.
    pub fn manual_ack(mut self) -> Self {
        self.manual_ack = true;
        self
    }
    /// Tells the worker it is number `index` of `count` (for example an
    /// array job's task index and size), so it starts its walk at
    /// `index * E / count`. Workers spread this way meet each other only at
    /// the ends of their slices: fewer lost races and listings than random
    /// starts give. It is a hint: any mix of indices, wrong counts, and
    /// workers without a shard still gives each element to exactly one
    /// worker. `count == 0` is ignored.
    pub fn shard(mut self, index: u64, count: u64) -> Self {
        self.shard = (count > 0).then_some((index % count, count));
        self
    }
    /// Stops watching for expired leases after this long.
    pub fn watch_for(mut self, d: Duration) -> Self {
        self.watch_for = Some(d);
        self
    }
}

/// An element handed out: its index, its value and, in a leased session,
/// the lease to acknowledge, fail or release.
#[derive(Debug)]
pub struct Task<T> {
    /// The element's index in the dataset.
    pub index: usize,
    /// The element.
    pub value: T,
    lease: Option<Lease>,
}

impl<T> Task<T> {
    /// The attempt number (always 1 in a default session).
    pub fn attempt(&self) -> u64 {
        self.lease.as_ref().map_or(1, Lease::attempt)
    }

    /// The lease, in a leased session.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// Acknowledges the element (a no-op in a default session).
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over: discard the result.
    pub async fn ack(&self) -> Result<()> {
        match &self.lease {
            Some(l) => l.ack().await,
            None => Ok(()),
        }
    }

    /// Reports a failed attempt (a default session has none: `Unsupported`);
    /// the answer says whether the element will be handed out again.
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over; `Unsupported` in a default session.
    pub async fn fail(&self, reason: &str) -> Result<crate::FailOutcome> {
        match &self.lease {
            Some(l) => l.fail(reason).await,
            None => Err(Error::new(ErrorKind::Unsupported, "fail")
                .with_message("failures are recorded only in leased sessions")),
        }
    }

    /// Reports a failure that can never succeed: the element is recorded as
    /// failed at once (leased sessions; a default session has none).
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over; `Unsupported` in a default session.
    pub async fn fail_permanently(&self, reason: &str) -> Result<crate::FailOutcome> {
        match &self.lease {
            Some(l) => l.fail_permanently(reason).await,
            None => Err(Error::new(ErrorKind::Unsupported, "fail")
                .with_message("failures are recorded only in leased sessions")),
        }
    }

    /// Gives the element back without failing it (leased sessions).
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over; `Unsupported` in a default session.
    pub async fn release(&self) -> Result<()> {
        match &self.lease {
            Some(l) => l.release().await,
            None => Err(Error::new(ErrorKind::Unsupported, "release")
                .with_message("elements are released only in leased sessions")),
        }
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
    /// The claim listings by what led to them.
    #[serde(default)]
    pub list_reasons: crate::planner::ListReasons,
    /// Claims whose outcome was unknown at first and settled later.
    #[serde(default)]
    pub settled: u64,
    /// Leased sessions: elements this worker acknowledged.
    #[serde(default)]
    pub completed: u64,
    /// Leased sessions: failed attempts this worker reported.
    #[serde(default)]
    pub failed: u64,
    /// Leased sessions: elements this worker took over after their lease expired.
    #[serde(default)]
    pub reclaimed: u64,
    /// Leased sessions: leases this worker lost to another.
    #[serde(default)]
    pub lost: u64,
    /// Why the worker stopped before the session was done, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
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
    /// When the summary object was last written (it may not be rewritten
    /// faster than the backend allows one object to be).
    summary_written: Option<Duration>,
    summary_dirty: bool,
    destroy_every: Duration,
    last_destroy_check: Option<Duration>,
    failures_checked: u64,
    /// The exhausted marker was seen among the block markers.
    exhausted_seen: bool,
    /// Leased sessions: the terms, the lease counters, the element to
    /// acknowledge when the next is asked for, and the watch state.
    terms: Option<LeaseTerms>,
    counters: Arc<LeaseCounters>,
    current: Option<Lease>,
    manual_ack: bool,
    watch: Option<Watch>,
    watch_for: Option<Duration>,
    min_write: Duration,
    _t: PhantomData<fn() -> T>,
}

/// What a worker watching for expired leases knows.
#[derive(Debug)]
struct Watch {
    /// Elements known done or failed.
    marked: Known,
    failed: usize,
    cursor: usize,
    observer: Observer,
    polls: usize,
    refresh_every: usize,
    started: Duration,
    /// The wait before the next poll: from 100 ms, doubling up to the
    /// poll interval while nothing changes (a run that ends well ends soon
    /// after its last acknowledgement), back to 100 ms when something did.
    delay: Duration,
    /// Unmarked elements at the last poll.
    open: usize,
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
        // The pid is mixed in: a child made by `fork` inherits its parent's
        // random state, and equal seeds would start every child at the
        // same index.
        let seed = opts.seed.unwrap_or_else(|| {
            fastrand::u64(..) ^ u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let shard = opts
            .shard
            .or_else(cloudmux_core::util::explicit_shard_from_env)
            .filter(|&(i, k)| i < k);
        // Shard I of K walks I E / K .. (I + 1) E / K first (no overflow:
        // I < K, both u64).
        let slice = shard.map(|(i, k)| {
            let at = |i: u64| ((u128::from(i) * doc.count as u128) / u128::from(k)) as usize;
            at(i)..at(i + 1)
        });
        let planner =
            Planner::with_start(doc.count, doc.width, caps.max_list_page, mode, seed, slice);
        let summary_interval = opts
            .summary_interval
            .unwrap_or(Duration::from_secs(5))
            .max(caps.min_write_interval);
        let terms = doc.mode.lease().copied();
        if let Some(t) = &terms
            && t.lease() < caps.min_write_interval * 2
        {
            return Err(Error::invalid(
                "open",
                format!(
                    "the session's lease ({:?}) is too short for this backend, which allows one write per object every {:?}",
                    t.lease(),
                    caps.min_write_interval
                ),
            ));
        }
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
            summary_written: None,
            summary_dirty: false,
            destroy_every: opts
                .destroy_check_interval
                .unwrap_or(DESTROY_CHECK_INTERVAL),
            last_destroy_check: None,
            failures_checked: 0,
            exhausted_seen: false,
            terms,
            counters: Arc::default(),
            current: None,
            manual_ack: opts.manual_ack,
            watch: None,
            watch_for: opts.watch_for,
            min_write: caps.min_write_interval,
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
    pub fn progress(&self) -> WorkerProgress {
        self.snapshot()
    }

    fn snapshot(&self) -> WorkerProgress {
        let mut p = self.progress.clone();
        p.list_reasons = self.planner.list_reasons();
        p.completed = self.counters.completed.load(Ordering::Relaxed);
        p.failed = self.counters.failed.load(Ordering::Relaxed);
        p.lost = self.counters.lost.load(Ordering::Relaxed);
        p
    }

    /// The lease terms, in a leased session.
    pub fn lease_terms(&self) -> Option<&LeaseTerms> {
        self.terms.as_ref()
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
        self.next_task()
            .await
            .map(|r| r.map(|t| (t.index, t.value)))
    }

    /// Obtains the next element as a [`Task`], with its lease in a leased
    /// session. Unless [`WorkerOptions::manual_ack`], the previous element is
    /// acknowledged first.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub async fn next_task(&mut self) -> Option<Result<Task<T>>> {
        let mut marker = None;
        if let Some(prev) = self.current.take()
            && prev.end() == crate::lease::LeaseEnd::Held
        {
            match prev.ack_claim().await {
                // The completion marker goes out with the next claim.
                Ok(m) => marker = Some(m),
                Err(e) if e.kind() == ErrorKind::Fenced => {
                    tracing::warn!(index = prev.index(), "{e}");
                }
                Err(e) => {
                    // Not known to be acknowledged: try again on the next call.
                    self.current = Some(prev);
                    return Some(Err(e));
                }
            }
        }
        let step = match marker {
            Some(m) => futures::future::join(self.step(), m).await.0,
            None => self.step().await,
        };
        match step {
            Ok(Some((i, lease))) => {
                self.maybe_summary(false).await;
                if !self.manual_ack {
                    self.current.clone_from(&lease);
                }
                Some(self.decode(i).map(|value| Task {
                    index: i,
                    value,
                    lease,
                }))
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

    /// Claims the next index (with its lease in a leased session).
    async fn step(&mut self) -> Result<Option<(usize, Option<Lease>)>> {
        self.check_destroy().await?;
        if self.progress.stopped.is_some() {
            return Ok(None);
        }
        if let Some((i, mut w)) = self.pending.take() {
            // The last create of claim i ended with an unknown outcome.
            match self.claim_doc(i)?.send(&mut w).await {
                Ok(Written::Current(v)) => {
                    self.progress.settled += 1;
                    self.won(i);
                    return Ok(Some((i, self.lease_for(i, v)?)));
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
        if self.watch.is_some() {
            return self.watch_step().await;
        }
        loop {
            match self.planner.next_action() {
                Action::Claim(i) => {
                    // Blocks this worker's own walk completed: their markers
                    // go out with this claim, in the same round trip.
                    let blocks = self.planner.take_full_blocks();
                    let claimed = if blocks.is_empty() {
                        self.try_claim(i).await?
                    } else {
                        let markers = self.marker_writes(blocks);
                        let (r, ()) = tokio::join!(self.try_claim(i), markers);
                        r?
                    };
                    if let Some(v) = claimed {
                        self.won(i);
                        return Ok(Some((i, self.lease_for(i, v)?)));
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
                    if self.terms.is_some() {
                        // Every element is claimed; not every one is done.
                        self.progress.finished = false;
                        self.watch = Some(self.new_watch());
                        return self.watch_step().await;
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// A lease handle for a claim just won, with its heartbeat running.
    fn lease_for(
        &self,
        i: usize,
        v: cloudmux_core::cond::Versioned<Claim>,
    ) -> Result<Option<Lease>> {
        let Some(terms) = self.terms else {
            return Ok(None);
        };
        let l = Lease::new(
            &self.claims,
            &self.session.done()?,
            &self.session.failed()?,
            &claim_name(i, self.doc.width),
            v,
            i,
            terms,
            self.counters.clone(),
        )?;
        l.keep_renewed(self.min_write);
        Ok(Some(l))
    }

    fn new_watch(&self) -> Watch {
        Watch {
            marked: Known::new(self.doc.count),
            failed: 0,
            cursor: fastrand::usize(..self.doc.count),
            observer: Observer::default(),
            polls: usize::MAX,
            refresh_every: 1,
            started: self.claims.clock().elapsed(),
            delay: Duration::from_millis(100),
            open: usize::MAX,
        }
    }

    /// Lists a marker folder (`done/` or `failed/`) into `marked`; returns
    /// (markers, pages).
    async fn read_marker_dir(&mut self, dir: &UPath, marked: &mut Known) -> Result<(usize, usize)> {
        let (n, width) = (self.doc.count, self.doc.width);
        let mut token = None;
        let (mut count, mut pages) = (0, 0);
        loop {
            let q = ListQuery {
                token,
                ..ListQuery::default()
            };
            let page = dir.list_page(&q).await?;
            pages += 1;
            self.progress.marker_checks += 1;
            for o in &page.objects {
                if let Some(i) = claim_index(&o.key, width, n) {
                    marked.set(i);
                    count += 1;
                }
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok((count, pages)),
            }
        }
    }

    /// One round of watching for expired leases: `Some` when an element was
    /// taken over, `None` when the session is done (or the watch is over).
    async fn watch_step(&mut self) -> Result<Option<(usize, Option<Lease>)>> {
        let terms = self.terms.expect("leased");
        let clock = self.claims.clock().clone();
        let mut w = self.watch.take().expect("watching");
        let r = self.watch_loop(&terms, &clock, &mut w).await;
        self.watch = Some(w);
        r
    }

    async fn watch_loop(
        &mut self,
        terms: &LeaseTerms,
        clock: &Arc<dyn cloudmux_core::clock::Clock>,
        w: &mut Watch,
    ) -> Result<Option<(usize, Option<Lease>)>> {
        let n = self.doc.count;
        let width = self.doc.width;
        loop {
            if let Some(limit) = self.watch_for
                && clock.elapsed().saturating_sub(w.started) >= limit
            {
                self.progress.stopped = Some("stopped watching: --watch-for elapsed".into());
                return Ok(None);
            }
            self.check_destroy().await?;
            if w.polls >= w.refresh_every {
                // Amortised: about one listing per poll.
                let (_, p1) = self
                    .read_marker_dir(&self.session.done()?, &mut w.marked)
                    .await?;
                let mut failed = Known::new(n);
                let (f, p2) = self
                    .read_marker_dir(&self.session.failed()?, &mut failed)
                    .await?;
                for i in 0..n {
                    if failed.get(i) {
                        w.marked.set(i);
                    }
                }
                w.failed = f;
                w.refresh_every = p1 + p2;
                w.polls = 0;
            }
            if w.marked.full() {
                self.complete().await;
                return Ok(None);
            }
            if let Some(max) = terms.max_failed
                && w.failed as u64 >= max
            {
                self.progress.stopped =
                    Some(format!("{} elements failed (max_failed {max})", w.failed));
                return Ok(None);
            }
            for _ in 0..WATCH_READS.min(n - w.marked.count()) {
                let Some(i) = w.marked.next_unknown(w.cursor) else {
                    break;
                };
                w.cursor = i + 1;
                let doc = self.claim_doc(i)?;
                let Some(c) = doc.read().await? else {
                    continue;
                };
                let expired = w.observer.expired(i, &c, terms.lease(), clock.as_ref());
                match judge(&c, expired, terms) {
                    Verdict::Finished(state) => {
                        let marker = match state {
                            ClaimState::Failed => {
                                w.failed += 1;
                                self.session.failed()?
                            }
                            _ => self.session.done()?,
                        };
                        write_marker(&marker.join(&claim_name(i, width))?, &c).await;
                        w.marked.set(i);
                        w.observer.forget(i);
                    }
                    Verdict::Held => {}
                    Verdict::Take(record) => {
                        let now = unix_millis(clock.now());
                        let mut body = Claim {
                            v: crate::session::SESSION_FORMAT,
                            worker: self.worker_id.clone(),
                            t_ms: now,
                            lease_ms: Some(terms.lease_ms),
                            renewed_ms: Some(now),
                            state: Some(ClaimState::Running),
                            history: c.body.history.clone(),
                            earlier: c.body.earlier.clone(),
                        };
                        body.history.extend(record);
                        let mut wr = doc.update_write(&c, &body, c.stamp.epoch + 1)?;
                        w.observer.forget(i);
                        if let Written::Current(v) = doc.send(&mut wr).await? {
                            self.progress.reclaimed += 1;
                            self.won(i);
                            return Ok(Some((i, self.lease_for(i, v)?)));
                        }
                    }
                    Verdict::Fail(record) => {
                        let mut body = c.body.clone();
                        body.history.push(record);
                        body.state = Some(ClaimState::Failed);
                        let mut wr = doc.update_write(&c, &body, c.stamp.epoch)?;
                        w.observer.forget(i);
                        if let Written::Current(v) = doc.send(&mut wr).await? {
                            write_marker(&self.session.failed()?.join(&claim_name(i, width))?, &v)
                                .await;
                            w.marked.set(i);
                            w.failed += 1;
                        }
                    }
                }
            }
            if w.marked.full() {
                self.complete().await;
                return Ok(None);
            }
            w.polls += 1;
            self.maybe_summary(false).await;
            let open = n - w.marked.count();
            let cap = watch_interval(terms.lease());
            w.delay = if open < w.open {
                Duration::from_millis(100).min(cap)
            } else {
                (w.delay * 2).min(cap)
            };
            w.open = open;
            clock.sleep(w.delay).await;
        }
    }

    /// Leased sessions: every element is done or failed.
    async fn complete(&mut self) {
        self.progress.finished = true;
        self.summary_dirty = true;
        if let Ok(p) = self.session.completed() {
            let body = format!(
                "{{\"by\":{:?},\"t_ms\":{}}}",
                self.worker_id,
                unix_millis(self.claims.clock().now())
            );
            if let Err(e) = p.write_bytes(body).await
                && !e.is_already_exists()
            {
                tracing::debug!(error = %e, "could not write the completed marker");
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

    /// Creates claim `i`: `Some` when ours, `None` when somebody else's.
    /// Only a real "already exists" from the store is a lost race; any other
    /// failure is an error.
    async fn try_claim(
        &mut self,
        i: usize,
    ) -> Result<Option<cloudmux_core::cond::Versioned<Claim>>> {
        let now = unix_millis(self.claims.clock().now());
        let claim = Claim {
            v: crate::session::SESSION_FORMAT,
            worker: self.worker_id.clone(),
            t_ms: now,
            lease_ms: self.terms.map(|t| t.lease_ms),
            renewed_ms: self.terms.map(|_| now),
            state: self.terms.map(|_| ClaimState::Running),
            history: Vec::new(),
            earlier: Vec::new(),
        };
        let doc = self.claim_doc(i)?;
        let mut w = doc.create_write(&claim, 1)?;
        match doc.send(&mut w).await {
            Ok(Written::Current(v)) => Ok(Some(v)),
            Ok(_) => Ok(None),
            // Any attempt that may have been applied (or may still be,
            // late) keeps the claim pending: it is settled by sending the
            // same write again before anything else is claimed.
            Err(e) if w.is_ambiguous() || e.is_outcome_unknown() || e.may_have_applied() => {
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
                prefix: crate::layout::claim_prefix(from, width, d),
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
            for o in &page.objects {
                let name = o.key.rsplit('/').next().unwrap_or("");
                if name == crate::layout::EXHAUSTED {
                    self.exhausted_seen = true;
                } else if let Ok(k) = name.parse::<usize>() {
                    blocks.push(k);
                }
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        if self.exhausted_seen {
            // Somebody knew every element claimed: so does this worker now.
            blocks = (0..self.doc.count.div_ceil(crate::layout::BLOCK)).collect();
        }
        self.planner.markers(&blocks);
        Ok(())
    }

    /// Publishes `full/<k>` for blocks the planner found fully claimed, so
    /// that others skip scanning them. Markers are hints: losing their create
    /// race, or failing to write them, is fine.
    async fn publish_blocks(&mut self) {
        let blocks = self.planner.take_full_blocks();
        self.marker_writes(blocks).await;
    }

    /// The writes of these blocks' markers, all at once (one listing can
    /// complete two blocks), as a future that borrows nothing of the worker.
    fn marker_writes(&mut self, blocks: Vec<usize>) -> impl Future<Output = ()> + use<T> {
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
        async move {
            futures::future::join_all(writes).await;
        }
    }

    /// Checks, at most once per interval, that the dataset is not being
    /// destroyed (a destroy waits longer than this interval before
    /// deleting), and in leased sessions with `max_failed`, how many
    /// elements failed (also right after this worker reported a failure).
    async fn check_destroy(&mut self) -> Result<()> {
        let now = self.claims.clock().elapsed();
        if self.last_destroy_check.is_none() {
            // Opening just read the session: the first check comes one
            // interval later (a destroy waits more than two intervals).
            self.last_destroy_check = Some(now);
        }
        let my_failures = self.counters.failed.load(Ordering::Relaxed);
        let failed_since = my_failures > self.failures_checked;
        if let Some(last) = self.last_destroy_check
            && now.saturating_sub(last) < self.destroy_every
            && !failed_since
        {
            return Ok(());
        }
        self.failures_checked = my_failures;
        if let Some(max) = self.terms.and_then(|t| t.max_failed)
            && self.watch.is_none()
        {
            let q = ListQuery {
                limit: Some(usize::try_from(max).unwrap_or(usize::MAX).clamp(1, 1000)),
                ..ListQuery::default()
            };
            let page = self.session.failed()?.list_page(&q).await?;
            let failed = page.objects.len() as u64;
            if failed >= max || (page.next.is_some() && max > 1000) {
                self.progress.stopped =
                    Some(format!("{failed} elements failed (max_failed {max})"));
            }
        }
        if failed_since
            && self
                .last_destroy_check
                .is_some_and(|l| now.saturating_sub(l) < self.destroy_every)
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
    /// after publishing every block marker still missing; a worker that
    /// learned it from the marker writes nothing.
    async fn finish(&mut self) {
        self.progress.finished = true;
        self.summary_dirty = true;
        // The last writes of a worker go out together: one round trip.
        let mut writes: Vec<futures::future::BoxFuture<'_, ()>> = Vec::new();
        if !self.exhausted_seen {
            let blocks = self.planner.all_unmarked_full_blocks();
            writes.push(Box::pin(self.marker_writes(blocks)));
            if let Ok(p) = self.session.exhausted() {
                let body = format!(
                    "{{\"by\":{:?},\"t_ms\":{}}}",
                    self.worker_id,
                    unix_millis(self.claims.clock().now())
                );
                writes.push(Box::pin(async move {
                    if let Err(e) = p.write_bytes(body).await
                        && !e.is_already_exists()
                    {
                        tracing::debug!(error = %e, "could not write the exhausted marker");
                    }
                }));
            }
        }
        if self.terms.is_none() {
            // Nothing comes after this in a default session: the final
            // summary goes out with the markers.
            self.summary_dirty = false;
            let wait = self.summary_wait();
            let clock = self.claims.clock().clone();
            self.last_summary = Some(clock.elapsed() + wait);
            let summary = self.summary.clone();
            let progress = self.snapshot();
            writes.push(Box::pin(async move {
                if !wait.is_zero() {
                    clock.sleep(wait).await;
                }
                if let Err(e) = summary.overwrite_json(&progress).await {
                    tracing::debug!(error = %e, "could not write the worker summary");
                }
            }));
        }
        let wrote_summary = self.terms.is_none();
        futures::future::join_all(writes).await;
        if wrote_summary {
            self.summary_written = Some(self.claims.clock().elapsed());
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
        let wait = self.summary_wait();
        if !wait.is_zero() {
            self.claims.clock().sleep(wait).await;
        }
        let now = self.claims.clock().elapsed();
        self.last_summary = Some(now);
        self.summary_dirty = false;
        if let Err(e) = self.summary.overwrite_json(&self.snapshot()).await {
            tracing::debug!(error = %e, "could not write the worker summary");
        }
        // Counted from when the write was done (it may have waited on retries).
        self.summary_written = Some(self.claims.clock().elapsed());
    }

    /// How long to wait before rewriting the summary object, so that it is
    /// never rewritten faster than the backend allows (GCS: once a second).
    fn summary_wait(&self) -> Duration {
        match self.summary_written {
            Some(t) => (t + self.min_write).saturating_sub(self.claims.clock().elapsed()),
            None => Duration::ZERO,
        }
    }

    /// Writes this worker's progress summary now, if it changed since the
    /// last one (never faster than the backend allows one object to be
    /// rewritten). The iterator writes it every few seconds and when the
    /// session runs out; call this when a worker stops early (a signal, a
    /// `break` out of the loop) so that `stat` counts what it claimed
    /// without reading every claim. Claiming can go on afterwards.
    pub async fn flush(&mut self) {
        self.maybe_summary(true).await;
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
        // One worker thread of its own, so that lease heartbeats run while
        // the caller works on an element.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cloudmux-worker")
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

    /// Next element as a [`Task`] (blocking).
    pub fn next_task(&mut self) -> Option<Result<Task<T>>> {
        self.rt.block_on(self.inner.next_task())
    }

    /// Runs a future on this worker's runtime (to acknowledge a [`Task`]).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl<T: DeserializeOwned> Iterator for BlockingWorker<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_indexed().map(|r| r.map(|(_, v)| v))
    }
}
