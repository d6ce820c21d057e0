//! Scenario 6: fleets simulated in virtual time.
//!
//! N workers (tokio tasks) share E = 100 N elements on the in-memory store,
//! in a tokio runtime started paused: time stands still while any task can
//! run and jumps to the next timer when all wait, so 1,024 workers with
//! 20 ms requests are measured without queueing for this machine's two
//! cores. Every request waits a latency drawn from a log-normal distribution
//! (S3-like: 20 ms median, 100 ms p99) and meets the provider's documented
//! rate limits, which answer with a throttling error (not applied, retried):
//!
//! | provider | limit | answer |
//! |---|---|---|
//! | S3 | about 3,500 writes/s per prefix (the key up to its last `/`) | 503 SlowDown |
//! | GCS | one write per object per second; about 1,000 object writes/s per bucket at first | 429 |
//! | Azure | 20,000 requests/s per account | 503 |
//!
//! The ideal rate is N / mean latency (each worker finishing one request at
//! a time), capped by what the provider accepts at all when that is lower
//! (GCS's bucket limit: no design that writes one object per element beats
//! it).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use cloudmux_core::clock::{Clock, TokioClock};
use cloudmux_core::layers::Hedge;
use cloudmux_core::{
    Capabilities, Error, ErrorKind, GetResult, InMemory, ListPage, ListRequest, ObjectMeta, Op,
    PutMode, PutResult, RetryPolicy, Store, UPath,
};
use cloudmux_mux::{Multiplexer, SessionOptions, Worker, WorkerOptions};
use serde::Serialize;

use crate::report::Table;

/// A provider's rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Provider {
    /// Amazon S3.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

impl Provider {
    /// Writes per second the provider accepts in all (for the ideal).
    fn capacity(self) -> Option<f64> {
        match self {
            Provider::S3 => None,
            Provider::Gcs => Some(1000.0),
            Provider::Azure => Some(20_000.0),
        }
    }
}

/// Where workers start their walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Start {
    /// At a random index: any fleet.
    Random,
    /// Worker w of N at w E / N ([`WorkerOptions::shard`]): a fleet that
    /// knows its size and each task's index (array jobs).
    Shard,
}

/// A token bucket: `rate` per second, holding at most one second's worth.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Duration,
}

impl Bucket {
    fn take(&mut self, now: Duration, rate: f64) -> bool {
        let dt = now.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
struct Limits {
    prefixes: HashMap<String, Bucket>,
    objects: HashMap<String, Duration>,
    bucket: Option<Bucket>,
}

/// The in-memory store behind simulated latency and provider limits.
pub(crate) struct SimStore {
    inner: Arc<InMemory>,
    provider: Provider,
    clock: Arc<TokioClock>,
    rng: Mutex<fastrand::Rng>,
    limits: Mutex<Limits>,
    /// Requests by kind: get, head, put, delete, list.
    counts: [AtomicU64; 5],
    throttled: AtomicU64,
    /// Throttled requests by cause: a prefix's rate (S3), one object's rate
    /// (GCS), the bucket's or account's rate (GCS, Azure).
    throttled_by: [AtomicU64; 3],
    latency_sum_ns: AtomicU64,
    /// When each request was sent, and its kind.
    log: Mutex<Vec<(Duration, u8)>>,
}

impl fmt::Debug for SimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimStore")
            .field("provider", &self.provider)
            .finish()
    }
}

/// Median and 99th percentile of the latency distribution.
const MEDIAN: Duration = Duration::from_millis(20);
const P99: Duration = Duration::from_millis(100);

impl SimStore {
    fn new(
        inner: Arc<InMemory>,
        provider: Provider,
        clock: Arc<TokioClock>,
        seed: u64,
    ) -> Arc<Self> {
        Arc::new(SimStore {
            inner,
            provider,
            clock,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            limits: Mutex::new(Limits::default()),
            counts: Default::default(),
            throttled: AtomicU64::new(0),
            throttled_by: Default::default(),
            latency_sum_ns: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        })
    }

    /// The mean of the log-normal latency (median 20 ms, p99 100 ms).
    fn mean_latency() -> Duration {
        let sigma = (P99.as_secs_f64() / MEDIAN.as_secs_f64()).ln() / 2.326_348;
        Duration::from_secs_f64(MEDIAN.as_secs_f64() * (sigma * sigma / 2.0).exp())
    }

    fn draw(&self) -> Duration {
        let mut rng = self.rng.lock().unwrap();
        // Box-Muller: one standard normal draw.
        let (u1, u2) = (rng.f64().max(1e-12), rng.f64());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let sigma = (P99.as_secs_f64() / MEDIAN.as_secs_f64()).ln() / 2.326_348;
        let s = MEDIAN.as_secs_f64() * (sigma * z).exp();
        Duration::from_secs_f64(s.min(2.0))
    }

    /// Applies the provider's limits to a request arriving now.
    fn admit(&self, op: Op, key: &str) -> Result<(), Error> {
        let now = self.clock.elapsed();
        let mut l = self.limits.lock().unwrap();
        let write = op.is_write();
        // The cause of a refusal: 0 a prefix's rate, 1 one object's, 2 the
        // bucket's or account's.
        let refused: Option<usize> = match self.provider {
            Provider::S3 => {
                if write {
                    let prefix = key.rsplit_once('/').map_or("", |(p, _)| p).to_string();
                    let ok = l
                        .prefixes
                        .entry(prefix)
                        .or_insert(Bucket {
                            tokens: 3500.0,
                            at: now,
                        })
                        .take(now, 3500.0);
                    (!ok).then_some(0)
                } else {
                    None
                }
            }
            Provider::Gcs => {
                if write {
                    // One write per object name per second: a create that
                    // meets an existing object is answered 412 (nothing is
                    // written, so it does not count), a rewrite too soon 429.
                    let exists = l.objects.contains_key(key);
                    let last = l.objects.get(key).copied();
                    let object_ok = op == Op::Create && exists
                        || last.is_none_or(|t| now.saturating_sub(t) >= Duration::from_secs(1));
                    if !object_ok {
                        Some(1)
                    } else if !l
                        .bucket
                        .get_or_insert(Bucket {
                            tokens: 1000.0,
                            at: now,
                        })
                        .take(now, 1000.0)
                    {
                        Some(2)
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
            Provider::Azure => {
                let ok = l
                    .bucket
                    .get_or_insert(Bucket {
                        tokens: 20_000.0,
                        at: now,
                    })
                    .take(now, 20_000.0);
                (!ok).then_some(2)
            }
        };
        let ok = refused.is_none();
        if let Some(c) = refused {
            self.throttled_by[c].fetch_add(1, Ordering::Relaxed);
        }
        if ok {
            return Ok(());
        }
        self.throttled.fetch_add(1, Ordering::Relaxed);
        Err(Error::new(ErrorKind::Transient, op.name())
            .with_path(key)
            .with_message("throttled (simulated provider limit)")
            .not_applied())
    }

    async fn run<T>(
        &self,
        kind: usize,
        op: Op,
        key: &str,
        f: impl std::future::Future<Output = cloudmux_core::Result<T>>,
    ) -> cloudmux_core::Result<T> {
        self.counts[kind].fetch_add(1, Ordering::Relaxed);
        self.log
            .lock()
            .unwrap()
            .push((self.clock.elapsed(), kind as u8));
        let lat = self.draw();
        self.latency_sum_ns
            .fetch_add(lat.as_nanos() as u64, Ordering::Relaxed);
        self.clock.sleep(lat / 2).await;
        let admitted = self.admit(op, key);
        let out = match admitted {
            Ok(()) => f.await,
            Err(e) => Err(e),
        };
        if op.is_write() && out.is_ok() {
            let now = self.clock.elapsed();
            self.limits
                .lock()
                .unwrap()
                .objects
                .insert(key.to_string(), now);
        }
        self.clock.sleep(lat - lat / 2).await;
        out
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[async_trait]
impl Store for SimStore {
    fn root_url(&self) -> String {
        self.inner.root_url()
    }
    fn capabilities(&self) -> Capabilities {
        let c = Capabilities::default();
        match self.provider {
            Provider::S3 => c,
            Provider::Gcs => c.with_min_write_interval(Duration::from_secs(1)),
            Provider::Azure => c.with_list_start_after(false).with_max_list_page(5000),
        }
    }
    async fn get(&self, key: &str) -> cloudmux_core::Result<GetResult> {
        self.run(0, Op::Get, key, self.inner.get(key)).await
    }
    async fn head(&self, key: &str) -> cloudmux_core::Result<ObjectMeta> {
        self.run(1, Op::Head, key, self.inner.head(key)).await
    }
    async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        mode: PutMode,
    ) -> cloudmux_core::Result<PutResult> {
        self.run(2, mode.op(), key, self.inner.put(key, bytes, mode.clone()))
            .await
    }
    async fn delete(&self, key: &str) -> cloudmux_core::Result<()> {
        self.run(3, Op::Delete, key, self.inner.delete(key)).await
    }
    async fn list(&self, req: ListRequest) -> cloudmux_core::Result<ListPage> {
        let key = req.prefix.clone();
        self.run(4, Op::List, &key, self.inner.list(req)).await
    }
}

/// One simulated fleet.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SimRow {
    /// The provider's limits.
    pub(crate) provider: Provider,
    /// Leased session (else a default one).
    pub(crate) leased: bool,
    /// Where the workers started.
    pub(crate) start: Start,
    /// Reads still unanswered after this many ms were sent again.
    pub(crate) hedge_ms: Option<f64>,
    /// N.
    pub(crate) workers: usize,
    /// E.
    pub(crate) elements: usize,
    /// Virtual seconds from the first request to the last worker's exit.
    pub(crate) seconds: f64,
    /// Elements per virtual second.
    pub(crate) elements_per_s: f64,
    /// The ideal rate: min(N / mean latency, what the provider accepts).
    pub(crate) ideal_per_s: f64,
    /// Rate over ideal.
    pub(crate) share_of_ideal: f64,
    /// Requests (after opening) per element.
    pub(crate) requests_per_element: f64,
    /// From the last element handed out until every worker exited, in mean
    /// round trips.
    pub(crate) tail_round_trips: f64,
    /// The floor of that tail under this latency: the mean, over many
    /// draws, of the slowest of N single requests (every worker needing
    /// just one more request after the last hand-out), in mean round trips.
    pub(crate) tail_floor_round_trips: f64,
    /// Requests the provider's limits refused.
    pub(crate) throttled: u64,
    /// Of them: a prefix pushed past its rate, one object rewritten too
    /// often (both would be this design's doing), the bucket's or account's
    /// total rate (the workload's: every element needs a write).
    pub(crate) throttled_prefix: u64,
    /// See `throttled_prefix`.
    pub(crate) throttled_object: u64,
    /// See `throttled_prefix`.
    pub(crate) throttled_total_rate: u64,
    /// Requests after opening, by kind: get, head, put, delete, list.
    pub(crate) by_kind: [u64; 5],
    /// Summed over the workers: creates that lost a race, claim listings,
    /// block-marker requests.
    pub(crate) collisions: u64,
    /// Claim listings.
    pub(crate) lists: u64,
    /// Of them: after a lost create, after the end of a free run, in the
    /// tail (the last listing showed nothing free).
    pub(crate) lists_by_reason: [u64; 3],
    /// Block-marker reads and writes.
    pub(crate) marker_requests: u64,
    /// Requests sent after the last hand-out, by kind (get, head, put,
    /// delete, list): what the tail costs.
    pub(crate) tail_by_kind: [u64; 5],
    /// Real seconds the simulation took on this machine.
    pub(crate) real_seconds: f64,
}

/// The scenario's report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SimReport {
    /// Mean latency of the distribution, ms.
    pub(crate) mean_latency_ms: f64,
    /// One row per (provider, N).
    pub(crate) rows: Vec<SimRow>,
    /// Leased sessions: requests per second of one idle watching worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) idle_watch_requests_per_s: Option<f64>,
    /// With several seeds: each row's figures over all of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) spread: Vec<SimSpread>,
}

/// A mean and a sample standard deviation.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct MeanSd {
    pub(crate) mean: f64,
    pub(crate) sd: f64,
}

impl MeanSd {
    fn of(xs: &[f64]) -> MeanSd {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n.max(1.0);
        let var = if xs.len() > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        MeanSd {
            mean,
            sd: var.sqrt(),
        }
    }
}

/// One fleet's figures over several seeds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SimSpread {
    pub(crate) provider: Provider,
    pub(crate) start: Start,
    pub(crate) workers: usize,
    pub(crate) seeds: usize,
    pub(crate) share_of_ideal: MeanSd,
    pub(crate) requests_per_element: MeanSd,
    pub(crate) tail_round_trips: MeanSd,
}

/// Settings.
#[derive(Debug, Clone)]
pub(crate) struct SimParams {
    pub(crate) workers: Vec<usize>,
    pub(crate) per_worker: usize,
    pub(crate) providers: Vec<Provider>,
    pub(crate) starts: Vec<Start>,
    pub(crate) leased: bool,
    pub(crate) seed: u64,
    /// Seeds to run (from `seed` on); above 1, `spread` summarises them.
    pub(crate) seeds: u64,
    /// Hedge reads still unanswered after this long ([`Hedge`]).
    pub(crate) hedge: Option<Duration>,
}

/// Runs `task` to its end in a tokio runtime of its own, started paused, on
/// a thread of its own: virtual time that nothing else in the process moves.
fn in_virtual_time<T, F, Fut>(task: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    std::thread::spawn(move || -> Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .context("runtime")?;
        rt.block_on(task())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the simulation thread panicked"))?
}

/// One fleet of `p`'s kind: `n` workers on `provider`'s limits, seeded `seed`.
fn run_fleet(
    p: &SimParams,
    provider: Provider,
    start: Start,
    n: usize,
    seed: u64,
) -> Result<SimRow> {
    let (per, leased, hedge) = (p.per_worker, p.leased, p.hedge);
    in_virtual_time(move || fleet(provider, start, n, n * per, leased, seed, hedge))
}

/// Runs the scenario (each fleet in its own paused runtime on its own thread).
pub(crate) fn run(p: &SimParams, progress: bool) -> Result<SimReport> {
    let mut rows = Vec::new();
    let cases = p
        .providers
        .iter()
        .flat_map(|&pr| p.starts.iter().map(move |&st| (pr, st)));
    for (provider, start) in cases {
        for &n in &p.workers {
            let row = run_fleet(p, provider, start, n, p.seed)?;
            if progress {
                eprintln!(
                    "    get {} head {} put {} delete {} list {}; collisions {} lists {} (after a collision {}, a run's end {}, in the tail {}) marker requests {}; after the last hand-out: put {} list {}",
                    row.by_kind[0],
                    row.by_kind[1],
                    row.by_kind[2],
                    row.by_kind[3],
                    row.by_kind[4],
                    row.collisions,
                    row.lists,
                    row.lists_by_reason[0],
                    row.lists_by_reason[1],
                    row.lists_by_reason[2],
                    row.marker_requests,
                    row.tail_by_kind[2],
                    row.tail_by_kind[4]
                );
                eprintln!(
                    "sim {:?} {:?} N={} E={}: {:.2} of ideal, {:.3} req/el, tail {:.1} RTT (floor {:.1}), {} throttled ({:.1} s real)",
                    row.provider,
                    row.start,
                    row.workers,
                    row.elements,
                    row.share_of_ideal,
                    row.requests_per_element,
                    row.tail_round_trips,
                    row.tail_floor_round_trips,
                    row.throttled,
                    row.real_seconds
                );
            }
            rows.push(row);
        }
    }
    let mut spread = Vec::new();
    if p.seeds > 1 {
        for r in &rows {
            let mut samples = vec![(r.share_of_ideal, r.requests_per_element, r.tail_round_trips)];
            for k in 1..p.seeds {
                let x = run_fleet(p, r.provider, r.start, r.workers, p.seed.wrapping_add(k))?;
                samples.push((x.share_of_ideal, x.requests_per_element, x.tail_round_trips));
            }
            let col = |f: fn(&(f64, f64, f64)) -> f64| {
                MeanSd::of(&samples.iter().map(f).collect::<Vec<_>>())
            };
            spread.push(SimSpread {
                provider: r.provider,
                start: r.start,
                workers: r.workers,
                seeds: samples.len(),
                share_of_ideal: col(|s| s.0),
                requests_per_element: col(|s| s.1),
                tail_round_trips: col(|s| s.2),
            });
        }
    }
    let idle = if p.leased {
        let seed = p.seed;
        Some(in_virtual_time(move || idle_watch_cost(seed))?)
    } else {
        None
    };
    Ok(SimReport {
        mean_latency_ms: SimStore::mean_latency().as_secs_f64() * 1000.0,
        rows,
        idle_watch_requests_per_s: idle,
        spread,
    })
}

/// The mean over many draws of the slowest of `n` single requests, in mean
/// latencies: no protocol that needs even one request per worker after the
/// last hand-out ends its tail sooner.
fn tail_floor(n: usize, seed: u64) -> f64 {
    let store = SimStore::new(
        InMemory::new(),
        Provider::S3,
        TokioClock::fixed(),
        seed ^ 0x7a11,
    );
    let rounds = 400;
    let total: f64 = (0..rounds)
        .map(|_| {
            (0..n)
                .map(|_| store.draw().as_secs_f64())
                .fold(0.0, f64::max)
        })
        .sum();
    total / rounds as f64 / SimStore::mean_latency().as_secs_f64()
}

async fn fleet(
    provider: Provider,
    start: Start,
    n: usize,
    e: usize,
    leased: bool,
    seed: u64,
    hedge: Option<Duration>,
) -> Result<SimRow> {
    let real = cloudmux_core::clock::Stopwatch::system();
    let clock = TokioClock::fixed();
    let mem = InMemory::with_clock(clock.clone());
    let root = UPath::new(mem.clone(), "sim")?.with_clock(clock.clone());
    let mux = Multiplexer::new(0..e as u64, &root, None).await?;
    let opts = if leased {
        SessionOptions::leased(Duration::from_secs(60))
    } else {
        SessionOptions::default()
    };
    let id = mux.create_read_session_with(opts).await?;
    let store = SimStore::new(mem, provider, clock.clone(), seed);
    let below: Arc<dyn Store> = match hedge {
        Some(after) => Hedge::new(store.clone(), after, clock.clone()),
        None => store.clone(),
    };
    let path = UPath::new(below, mux.path().key())?
        .with_clock(clock.clone())
        .with_retry(RetryPolicy {
            max_attempts: 20,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        });
    // Open every worker first (opening reads the session and the data).
    let mut workers = Vec::with_capacity(n);
    for w in 0..n {
        let opts = WorkerOptions::default()
            .worker_id(format!("sim-{w}"))
            .seed(seed.wrapping_mul(7919).wrapping_add(w as u64));
        let opts = match start {
            Start::Random => opts,
            Start::Shard => opts.shard(w as u64, n as u64),
        };
        workers.push(Worker::<u64>::open_path(&path, id.clone(), opts).await?);
    }
    let opened = store.total();
    let opened_by: Vec<u64> = store
        .counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let last_handout = Arc::new(AtomicU64::new(0));
    let t0 = clock.elapsed();
    let mut tasks = Vec::with_capacity(n);
    for mut w in workers {
        let clock = clock.clone();
        let last = last_handout.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0usize;
            let mut failures = 0;
            while let Some(r) = w.next().await {
                match r {
                    Ok(_) => failures = 0,
                    // As `cloudmux work`: a storage error that outlasted the
                    // retries is reported and the worker goes on.
                    Err(e) if (e.is_retryable() || e.is_outcome_unknown()) && failures < 100 => {
                        failures += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                got += 1;
                last.fetch_max(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            Ok::<_, cloudmux_core::Error>((got, clock.elapsed(), w.progress()))
        }));
    }
    let mut total = 0;
    let mut end = t0;
    let (mut collisions, mut lists, mut marker_requests) = (0, 0, 0);
    let mut lists_by_reason = [0u64; 3];
    for t in tasks {
        let (got, at, prog) = t.await??;
        total += got;
        end = end.max(at);
        collisions += prog.collisions;
        lists += prog.lists;
        marker_requests += prog.marker_checks;
        lists_by_reason[0] += prog.list_reasons.after_collision;
        lists_by_reason[1] += prog.list_reasons.after_run_end;
        lists_by_reason[2] += prog.list_reasons.in_tail;
    }
    let mut by_kind = [0u64; 5];
    for (k, c) in store.counts.iter().enumerate() {
        by_kind[k] = c.load(Ordering::Relaxed) - opened_by[k];
    }
    anyhow::ensure!(total == e, "handed out {total} of {e}");
    let seconds = end.saturating_sub(t0).as_secs_f64();
    let rate = e as f64 / seconds.max(1e-9);
    let mean = SimStore::mean_latency().as_secs_f64();
    let mut ideal = n as f64 / mean;
    if let Some(cap) = provider.capacity() {
        ideal = ideal.min(cap);
    }
    let last = Duration::from_nanos(last_handout.load(Ordering::Relaxed));
    let requests = store.total() - opened;
    let mut tail_by_kind = [0u64; 5];
    for (t, k) in store.log.lock().unwrap().iter() {
        if *t > last {
            tail_by_kind[*k as usize] += 1;
        }
    }
    Ok(SimRow {
        provider,
        leased,
        start,
        hedge_ms: hedge.map(|h| h.as_secs_f64() * 1000.0),
        workers: n,
        elements: e,
        seconds,
        elements_per_s: rate,
        ideal_per_s: ideal,
        share_of_ideal: rate / ideal,
        requests_per_element: requests as f64 / e as f64,
        tail_round_trips: end.saturating_sub(last).as_secs_f64() / mean,
        tail_floor_round_trips: tail_floor(n, seed),
        throttled: store.throttled.load(Ordering::Relaxed),
        throttled_prefix: store.throttled_by[0].load(Ordering::Relaxed),
        throttled_object: store.throttled_by[1].load(Ordering::Relaxed),
        throttled_total_rate: store.throttled_by[2].load(Ordering::Relaxed),
        by_kind,
        collisions,
        lists,
        lists_by_reason,
        marker_requests,
        tail_by_kind,
        real_seconds: real.elapsed().as_secs_f64(),
    })
}

/// Leased sessions: 8 workers, one holding the last element for ten
/// minutes (renewing it); the other seven watch. Requests per second of one
/// watcher.
async fn idle_watch_cost(seed: u64) -> Result<f64> {
    let clock = TokioClock::fixed();
    let mem = InMemory::with_clock(clock.clone());
    let root = UPath::new(mem.clone(), "idle")?.with_clock(clock.clone());
    let e = 800u64;
    let mux = Multiplexer::new(0..e, &root, None).await?;
    let id = mux
        .create_read_session_with(SessionOptions::leased(Duration::from_secs(60)))
        .await?;
    let store = SimStore::new(mem, Provider::S3, clock.clone(), seed);
    let path = UPath::new(store.clone(), mux.path().key())?.with_clock(clock.clone());
    let mut holder = Worker::<u64>::open_path(
        &path,
        id.clone(),
        WorkerOptions::default().worker_id("holder").manual_ack(),
    )
    .await?;
    let held = holder.next_task().await.context("an element")??;
    let mut watchers = Vec::new();
    for w in 0..7 {
        let mut wk = Worker::<u64>::open_path(
            &path,
            id.clone(),
            WorkerOptions::default().worker_id(format!("watcher-{w}")),
        )
        .await?;
        watchers.push(tokio::spawn(async move {
            while let Some(r) = wk.next().await {
                r?;
            }
            Ok::<_, cloudmux_core::Error>(())
        }));
    }
    // Let the watchers finish their pass and settle into watching.
    clock.sleep(Duration::from_secs(60)).await;
    let before = store.total();
    let window = Duration::from_secs(600);
    clock.sleep(window).await;
    let during = store.total() - before;
    held.ack().await?;
    for w in watchers {
        w.await??;
    }
    // The holder's heartbeats are in the count: a 60 s lease renews every 20 s.
    let heartbeats = window.as_secs_f64() / 20.0;
    Ok((during as f64 - heartbeats) / 7.0 / window.as_secs_f64())
}

impl SimReport {
    /// The table.
    pub(crate) fn render(&self) -> String {
        let mut t = Table::new(&[
            "provider",
            "mode",
            "start",
            "N",
            "E",
            "virtual s",
            "el/s",
            "ideal/s",
            "of ideal",
            "req/el",
            "tail RTT",
            "floor RTT",
            "throttled: prefix",
            "object",
            "bucket/account",
            "real s",
        ]);
        for r in &self.rows {
            t.row(vec![
                format!("{:?}", r.provider).to_lowercase(),
                if r.leased { "leased" } else { "once" }.into(),
                format!("{:?}", r.start).to_lowercase(),
                r.workers.to_string(),
                r.elements.to_string(),
                format!("{:.2}", r.seconds),
                format!("{:.0}", r.elements_per_s),
                format!("{:.0}", r.ideal_per_s),
                format!("{:.2}", r.share_of_ideal),
                format!("{:.3}", r.requests_per_element),
                format!("{:.1}", r.tail_round_trips),
                format!("{:.1}", r.tail_floor_round_trips),
                r.throttled_prefix.to_string(),
                r.throttled_object.to_string(),
                r.throttled_total_rate.to_string(),
                format!("{:.1}", r.real_seconds),
            ]);
        }
        let mut s = format!(
            "Fleets in virtual time (latency log-normal, 20 ms median, 100 ms p99, mean {:.1} ms)\n{}",
            self.mean_latency_ms,
            t.render()
        );
        if !self.spread.is_empty() {
            let mut t = Table::new(&[
                "provider", "start", "N", "seeds", "of ideal", "req/el", "tail RTT",
            ]);
            let pm = |m: MeanSd, d: usize| format!("{:.d$} ± {:.d$}", m.mean, m.sd);
            for r in &self.spread {
                t.row(vec![
                    format!("{:?}", r.provider).to_lowercase(),
                    format!("{:?}", r.start).to_lowercase(),
                    r.workers.to_string(),
                    r.seeds.to_string(),
                    pm(r.share_of_ideal, 2),
                    pm(r.requests_per_element, 3),
                    pm(r.tail_round_trips, 1),
                ]);
            }
            s.push_str(&format!(
                "\nThe same fleets over {} seeds (mean ± sample sd)\n{}",
                self.spread[0].seeds,
                t.render()
            ));
        }
        if let Some(i) = self.idle_watch_requests_per_s {
            s.push_str(&format!(
                "\nidle watching worker (leased, 60 s lease): {i:.2} requests/s\n"
            ));
        }
        s
    }
}
