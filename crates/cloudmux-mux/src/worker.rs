//! The worker side: open a mux id, claim elements, hand them out.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Claim, Elements, MuxId, SessionDoc, now_ms, parse_claim, read_session};
use crate::clock::unix_millis;
use crate::error::{Error, ErrorKind, Result};
use crate::path::UPath;
use crate::resolve::Resolver;
use crate::store::PutMode;
use crate::util::{default_worker_id, nonce};

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
    /// Progress summary interval (default 5 s; GCS allows one write per second per object).
    pub summary_interval: Option<Duration>,
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
    /// Checks of the exhausted marker.
    pub marker_checks: u64,
    /// First claim time (ms since the epoch), if any.
    pub first_ms: Option<u64>,
    /// Last claim time (ms since the epoch), if any.
    pub last_ms: Option<u64>,
    /// True once the worker saw the session exhausted.
    pub finished: bool,
}

/// A fixed-size bitset of indices known to be claimed.
#[derive(Debug)]
struct Known {
    words: Vec<u64>,
    len: usize,
    count: usize,
}

impl Known {
    fn new(len: usize) -> Self {
        Known {
            words: vec![0; len.div_ceil(64)],
            len,
            count: 0,
        }
    }
    fn get(&self, i: usize) -> bool {
        self.words[i / 64] >> (i % 64) & 1 == 1
    }
    fn set(&mut self, i: usize) {
        let w = &mut self.words[i / 64];
        let bit = 1u64 << (i % 64);
        if *w & bit == 0 {
            *w |= bit;
            self.count += 1;
        }
    }
    fn full(&self) -> bool {
        self.count == self.len
    }
    /// The first known index at or after `from` (no wrapping).
    fn next_known(&self, from: usize) -> Option<usize> {
        let mut wi = from / 64;
        let mut w = *self.words.get(wi)? & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                let j = wi * 64 + w.trailing_zeros() as usize;
                return (j < self.len).then_some(j);
            }
            wi += 1;
            w = *self.words.get(wi)?;
        }
    }

    /// The first unknown index at or after `from`, wrapping around.
    fn next_unknown(&self, from: usize) -> Option<usize> {
        if self.full() {
            return None;
        }
        let n = self.len;
        let mut i = from % n;
        for _ in 0..=self.words.len() * 64 {
            let wi = i / 64;
            let mask = !self.words[wi] & (u64::MAX << (i % 64));
            if mask != 0 {
                let j = wi * 64 + mask.trailing_zeros() as usize;
                if j < n {
                    return Some(j);
                }
            }
            i = (wi + 1) * 64;
            if i >= n {
                i = 0;
            }
        }
        None
    }
}

/// The index of a claim key: the key ends with `/` and exactly `width`
/// digits. Done on bytes: workers in the tail parse thousands of keys per
/// listing.
fn claim_index(key: &str, width: usize) -> Option<usize> {
    let k = key.as_bytes();
    if k.len() <= width || k[k.len() - width - 1] != b'/' {
        return None;
    }
    let digits = &k[k.len() - width..];
    digits.iter().try_fold(0usize, |acc, d| {
        d.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(usize::from(d - b'0')))
            .flatten()
    })
}

/// Claims per block marker (`full/<k>` covers indices `k*BLOCK..(k+1)*BLOCK`).
pub(crate) const BLOCK: usize = 1000;

/// The smallest claims page a worker asks for.
const MIN_PAGE: usize = 32;

/// The run a worker is walking: try `next`, stop before `end`.
#[derive(Debug, Clone, Copy)]
struct Run {
    next: usize,
    end: usize,
}

/// A worker's handle on a session. Iterate with [`next`](Worker::next), as a
/// `Stream` with [`into_stream`](Worker::into_stream), or block with
/// [`BlockingWorker`].
pub struct Worker<T> {
    session: UPath,
    claims: UPath,
    id: MuxId,
    worker_id: String,
    doc: SessionDoc,
    elements: Option<Elements>,
    known: Known,
    run: Option<Run>,
    /// A claim whose create had an unknown outcome: settle it first.
    pending: Option<(usize, Bytes, String)>,
    /// The last listing found nothing free: consult the block markers first.
    tail: bool,
    /// Blocks known to be fully claimed (their `full/<k>` marker exists).
    blocks_marked: Vec<bool>,
    /// Claimed share of the index range covered by the last listing.
    density: f64,
    rng: fastrand::Rng,
    progress: WorkerProgress,
    summary: UPath,
    summary_interval: Duration,
    last_summary_ms: u64,
    summary_dirty: bool,
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

fn safe_name(s: &str) -> String {
    let mut t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if t.starts_with('.') {
        t.insert(0, '_');
    }
    t
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
        let doc = read_session(&dataset, id.session()).await?;
        let data = dataset.join(&doc.data)?.read_bytes().await.map_err(|e| {
            if e.is_not_found() {
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
        let session = dataset.join("sessions")?.join(id.session())?;
        let claims = session.join("claims")?;
        let instance = &nonce()[..8];
        let summary = session
            .join("workers")?
            .join(&format!("{}-{instance}.json", safe_name(&worker_id)))?;
        let mut rng = match opts.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        let count = doc.count;
        let start = rng.usize(..count);
        Ok(Worker {
            session,
            claims,
            id,
            progress: WorkerProgress {
                worker: worker_id.clone(),
                ..Default::default()
            },
            worker_id,
            known: Known::new(count),
            run: Some(Run {
                next: start,
                end: count,
            }),
            doc,
            elements: Some(elements),
            pending: None,
            tail: false,
            blocks_marked: vec![false; count.div_ceil(BLOCK)],
            density: 0.0,
            rng,
            summary,
            summary_interval: opts.summary_interval.unwrap_or(Duration::from_secs(5)),
            last_summary_ms: 0,
            summary_dirty: false,
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

    fn claim_key(&self, i: usize) -> String {
        format!("{i:0w$}", w = self.doc.width)
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
    /// Storage errors that outlasted the retries. The worker stays usable:
    /// calling `next` again settles any claim whose outcome was unknown
    /// before claiming anything else.
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

    /// Claims the next index.
    async fn step(&mut self) -> Result<Option<usize>> {
        if let Some((i, body, mine)) = self.pending.take() {
            // The last create of claim i ended with an unknown outcome.
            match self.claims.join(&self.claim_key(i))?.get().await {
                Ok(g) => {
                    self.known.set(i);
                    if g.bytes == body
                        || parse_claim(&g.bytes)
                            .map(|c| c.nonce == mine)
                            .unwrap_or(false)
                    {
                        self.won(i);
                        return Ok(Some(i));
                    }
                }
                Err(e) if e.is_not_found() => {} // never applied: i is free again
                Err(e) => {
                    self.pending = Some((i, body, mine));
                    return Err(e);
                }
            }
        }
        loop {
            if self.progress.finished {
                return Ok(None);
            }
            let i = match self.next_in_run() {
                Some(i) => i,
                None => match self.jump().await? {
                    Some(i) => i,
                    None => {
                        self.finish().await;
                        return Ok(None);
                    }
                },
            };
            match self.try_claim(i).await? {
                true => {
                    self.won(i);
                    return Ok(Some(i));
                }
                false => {
                    self.progress.collisions += 1;
                    self.run = None;
                }
            }
        }
    }

    fn won(&mut self, i: usize) {
        self.known.set(i);
        let now = now_ms(&self.claims);
        self.progress.claimed += 1;
        self.progress.first_ms.get_or_insert(now);
        self.progress.last_ms = Some(now);
        self.summary_dirty = true;
        self.run = Some(match self.run {
            Some(r) => Run {
                next: i + 1,
                end: r.end,
            },
            None => Run {
                next: i + 1,
                end: self.doc.count,
            },
        });
    }

    fn next_in_run(&mut self) -> Option<usize> {
        let r = self.run?;
        let n = self.doc.count;
        let (mut i, mut end) = (r.next, r.end.min(n));
        if i >= n && end == n {
            // The indices form a circle: a run that reaches the last index
            // goes on at index 0, up to the first index known to be claimed.
            // Without this nobody walks towards index 0, and the run before
            // the first start is left until the very end, when every
            // worker lists its way to it at once.
            i = 0;
            end = self.known.next_known(0).unwrap_or(n);
        }
        while i < end {
            if !self.known.get(i) {
                self.run = Some(Run { next: i, end });
                return Some(i);
            }
            i += 1;
        }
        self.run = None;
        None
    }

    /// Creates claim `i`. Ok(true): ours; Ok(false): somebody else's.
    async fn try_claim(&mut self, i: usize) -> Result<bool> {
        let mine = nonce();
        let claim = Claim {
            v: 1,
            worker: self.worker_id.clone(),
            nonce: mine.clone(),
            t_ms: now_ms(&self.claims),
            lease_until_ms: None,
            state: None,
        };
        let body = Bytes::from(serde_json::to_vec(&claim).expect("claims encode"));
        let p = self.claims.join(&self.claim_key(i))?;
        // UPath::put retries transient failures and, when a retry meets
        // AlreadyExists, reads the claim back: identical bytes (our nonce)
        // mean the first attempt won with its response lost.
        match p.put(body.clone(), PutMode::Create).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_already_exists() => {
                self.known.set(i);
                Ok(false)
            }
            Err(e) if e.is_retryable() => {
                self.pending = Some((i, body, mine));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Finds a free index by listing; `None` when everything is claimed.
    async fn jump(&mut self) -> Result<Option<usize>> {
        let n = self.doc.count;
        let max_page = self
            .claims
            .store()
            .capabilities()
            .max_list_page
            .clamp(1, 5000);
        loop {
            // A page of L claims at density d covers about L(1-d)/d free
            // indices. Ask for enough to see a few dozen free ones: small
            // pages while gaps are wide (cheap to send and to parse), full
            // pages in the tail, where free indices are sparse.
            let d = self.density.min(0.999);
            let page_size =
                ((MIN_PAGE as f64 * d / (1.0 - d)).ceil() as usize).clamp(MIN_PAGE, max_page);
            if self.known.full() {
                return Ok(None);
            }
            if self.tail {
                self.read_block_markers().await?;
                if self.known.full() {
                    return Ok(None);
                }
            }
            let r = self
                .known
                .next_unknown(self.rng.usize(..n))
                .expect("not full");
            let start_after =
                (r > 0).then(|| format!("{}/{}", self.claims.key(), self.claim_key(r - 1)));
            let page = self
                .claims
                .list_page(false, start_after, None, Some(page_size))
                .await?;
            self.progress.lists += 1;
            let mut last = None;
            for o in &page.objects {
                if let Some(i) = claim_index(&o.key, self.doc.width)
                    && i < n
                {
                    self.known.set(i);
                    last = Some(i);
                }
            }
            // Indices in [r, hi) not listed are free (as of this listing).
            let hi = match (&page.next, last) {
                (Some(_), Some(l)) => l + 1,
                _ => n,
            };
            if hi > r {
                self.density = page.objects.len() as f64 / (hi - r) as f64;
            }
            let mut best: Vec<(usize, usize)> = Vec::new();
            let mut best_len = 0;
            let mut i = r;
            while i < hi {
                if self.known.get(i) {
                    i += 1;
                    continue;
                }
                let a = i;
                while i < hi && !self.known.get(i) {
                    i += 1;
                }
                let len = i - a;
                if len > best_len {
                    best_len = len;
                    best.clear();
                }
                if len == best_len {
                    best.push((a, i));
                }
            }
            self.write_block_markers(r, hi).await;
            if best.is_empty() {
                self.tail = true;
                continue;
            }
            self.tail = false;
            let (a, b) = best[self.rng.usize(..best.len())];
            let len = b - a;
            let target = if len >= 3 {
                a + len / 2
            } else {
                a + self.rng.usize(..len)
            };
            self.run = Some(Run {
                next: target,
                end: b,
            });
            return Ok(Some(target));
        }
    }

    /// Learns which blocks others found fully claimed (one listing).
    async fn read_block_markers(&mut self) -> Result<()> {
        let dir = self.session.join("full")?;
        let mut token = None;
        loop {
            let page = dir.list_page(false, None, token, None).await?;
            self.progress.marker_checks += 1;
            for o in &page.objects {
                if let Ok(k) = o.key.rsplit('/').next().unwrap_or("").parse::<usize>()
                    && k < self.blocks_marked.len()
                    && !self.blocks_marked[k]
                {
                    self.blocks_marked[k] = true;
                    let end = ((k + 1) * BLOCK).min(self.doc.count);
                    for i in k * BLOCK..end {
                        self.known.set(i);
                    }
                }
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// Publishes `full/<k>` for blocks overlapping `[lo, hi)` that this
    /// worker now knows to be fully claimed, so others skip scanning them.
    async fn write_block_markers(&mut self, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        let mut writes = Vec::new();
        for k in lo / BLOCK..=(hi - 1) / BLOCK {
            if self.blocks_marked[k] {
                continue;
            }
            let end = ((k + 1) * BLOCK).min(self.doc.count);
            if (k * BLOCK..end).all(|i| self.known.get(i)) {
                self.blocks_marked[k] = true;
                let Ok(p) = self
                    .session
                    .join("full")
                    .and_then(|d| d.join(&format!("{k:06}")))
                else {
                    continue;
                };
                self.progress.marker_checks += 1;
                writes.push(async move {
                    if let Err(e) = p.write_bytes(Bytes::from_static(b"{}")).await
                        && !e.is_already_exists()
                    {
                        tracing::debug!(error = %e, "could not write a block marker");
                    }
                });
            }
        }
        // One listing can complete two blocks: write their markers at once.
        futures::future::join_all(writes).await;
    }

    /// Marks the session exhausted (create-only; losing that race is fine).
    async fn finish(&mut self) {
        self.progress.finished = true;
        self.summary_dirty = true;
        if let Ok(p) = self.session.join("exhausted") {
            let body = format!(
                "{{\"by\":{:?},\"t_ms\":{}}}",
                self.worker_id,
                now_ms(&self.claims)
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
        let now = unix_millis(self.claims.clock().now());
        if !last
            && now.saturating_sub(self.last_summary_ms) < self.summary_interval.as_millis() as u64
        {
            return;
        }
        self.last_summary_ms = now;
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
/// use cloudmux_core::mux::{BlockingWorker, Multiplexer, WorkerOptions};
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

#[cfg(test)]
mod tests {
    use super::*;

    fn known(len: usize, set: &[usize]) -> Known {
        let mut k = Known::new(len);
        for &i in set {
            k.set(i);
        }
        k
    }

    #[test]
    fn next_known_does_not_wrap() {
        let k = known(200, &[3, 64, 130]);
        assert_eq!(k.next_known(0), Some(3));
        assert_eq!(k.next_known(3), Some(3));
        assert_eq!(k.next_known(4), Some(64));
        assert_eq!(k.next_known(65), Some(130));
        assert_eq!(k.next_known(131), None);
        assert_eq!(k.next_known(500), None);
        assert_eq!(known(70, &[]).next_known(0), None);
    }

    #[test]
    fn next_unknown_wraps() {
        let k = known(130, &(5..130).collect::<Vec<_>>());
        assert_eq!(k.next_unknown(100), Some(0));
        assert_eq!(k.next_unknown(3), Some(3));
        assert!(known(3, &[0, 1, 2]).next_unknown(0).is_none());
    }

    #[test]
    fn claim_keys_parse_by_width() {
        assert_eq!(claim_index("d/sessions/s/claims/00042", 5), Some(42));
        assert_eq!(claim_index("claims/9", 1), Some(9));
        assert_eq!(claim_index("d/claims/0042", 5), None, "too short");
        assert_eq!(claim_index("d/claims/000042", 5), None, "too long");
        assert_eq!(claim_index("d/claims/00a42", 5), None);
        assert_eq!(claim_index("00042", 5), None, "no separator");
    }
}
