//! A wrapper that counts requests and injects latency and faults.
//!
//! [`Faulty`] wraps any [`Store`] and, per request, seeded and reproducibly:
//!
//! - waits a latency (`base ± jitter`) on the injected [`Clock`];
//! - fails with a [`Transient`](crate::ErrorKind::Transient) error **before**
//!   the request reaches the store (`transient_rate`);
//! - or lets a write reach the store and then **loses the response**
//!   (`lost_rate`): the write happened, the caller sees a `Transient` error.
//! - or **applies a write late** (`late_rate`): the caller sees a `Transient`
//!   error at once, as for a request that timed out on the client; the store
//!   applies the write only after the caller has made later reads (one to
//!   three of them), as a server may process a request long after its client
//!   gave up. A read-back that finds nothing does not mean nothing will be
//!   there. [`Faulty::flush_late`] applies whatever is still pending.
//!
//! Lost responses and late writes are what make exactly-once protocols hard.
//!
//! It also counts every request by operation ([`Faulty::stats`]), which the
//! benchmarks use to report requests per element handed out.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::clock::{self, Clock};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{
    Capabilities, GetResult, ListPage, ListRequest, ObjectMeta, PutMode, PutResult, Store, Version,
};

/// What to inject. The default injects nothing (a pure request counter).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Mean latency added to every request.
    pub latency: Duration,
    /// Uniform jitter: each request waits `latency ± jitter`.
    pub jitter: Duration,
    /// Probability (0..1) that a request fails before reaching the store.
    pub transient_rate: f64,
    /// Probability (0..1) that a write (put, delete) is applied but its
    /// response is lost. Reads that lose their response look transient.
    pub lost_rate: f64,
    /// Probability (0..1) that a write fails at once for the caller but is
    /// applied later, after the caller's next one to three reads.
    pub late_rate: f64,
    /// Seed of the fault and jitter generator.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            transient_rate: 0.0,
            lost_rate: 0.0,
            late_rate: 0.0,
            seed: 0x5eed,
        }
    }
}

impl FaultConfig {
    /// Only latency: `latency ± jitter` per request.
    pub fn latency(latency: Duration, jitter: Duration) -> Self {
        FaultConfig {
            latency,
            jitter,
            ..Self::default()
        }
    }

    /// Only faults: `transient` and `lost` rates, with a seed.
    pub fn faults(transient: f64, lost: f64, seed: u64) -> Self {
        FaultConfig {
            transient_rate: transient,
            lost_rate: lost,
            seed,
            ..Self::default()
        }
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the rate of writes applied late.
    pub fn with_late(mut self, late: f64) -> Self {
        self.late_rate = late;
        self
    }
}

/// Request counts of a [`Faulty`] store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// `get` requests.
    pub get: u64,
    /// `head` requests.
    pub head: u64,
    /// `put` requests of every mode.
    pub put: u64,
    /// `delete` and `delete_if` requests.
    pub delete: u64,
    /// `list` requests (pages).
    pub list: u64,
    /// Requests failed before reaching the store.
    pub injected_transient: u64,
    /// Writes applied whose response was then lost.
    pub injected_lost: u64,
    /// Writes held back to be applied late.
    pub injected_late: u64,
    /// Late writes since applied (some may have failed there, as a create
    /// meeting an existing key does).
    pub late_applied: u64,
    /// Requests started but not yet answered, at the time of the snapshot.
    pub in_flight: u64,
}

impl RequestStats {
    fn with_in_flight(mut self, done: u64) -> Self {
        self.in_flight = self.total().saturating_sub(done);
        self
    }

    /// All requests sent, failed ones included.
    pub fn total(&self) -> u64 {
        self.get + self.head + self.put + self.delete + self.list
    }
}

#[derive(Default)]
struct Counters {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    list: AtomicU64,
    transient: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    late_applied: AtomicU64,
    done: AtomicU64,
}

/// A write held back by the `late` fate.
struct LateWrite {
    key: String,
    what: LateOp,
    /// Reads still to complete before it is applied.
    reads_left: u32,
}

enum LateOp {
    Put(Bytes, PutMode),
    Delete,
}

/// A [`Store`] wrapper that counts requests and injects latency and faults.
pub struct Faulty {
    inner: Arc<dyn Store>,
    config: FaultConfig,
    rng: Mutex<fastrand::Rng>,
    clock: Arc<dyn Clock>,
    counters: Counters,
    late: Mutex<Vec<LateWrite>>,
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

#[derive(PartialEq)]
enum Fate {
    Ok,
    FailBefore,
    LoseResponse,
    ApplyLate(u32),
}

impl Faulty {
    /// Wraps `inner` with the given config, sleeping on the system clock.
    pub fn new(inner: Arc<dyn Store>, config: FaultConfig) -> Arc<Self> {
        Self::with_clock(inner, config, clock::system())
    }

    /// Wraps `inner`, sleeping on `clock`.
    pub fn with_clock(
        inner: Arc<dyn Store>,
        config: FaultConfig,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Faulty {
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            inner,
            config,
            clock,
            counters: Counters::default(),
            late: Mutex::new(Vec::new()),
        })
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Request counts so far.
    pub fn stats(&self) -> RequestStats {
        let c = &self.counters;
        RequestStats {
            get: c.get.load(Ordering::Relaxed),
            head: c.head.load(Ordering::Relaxed),
            put: c.put.load(Ordering::Relaxed),
            delete: c.delete.load(Ordering::Relaxed),
            list: c.list.load(Ordering::Relaxed),
            injected_transient: c.transient.load(Ordering::Relaxed),
            injected_lost: c.lost.load(Ordering::Relaxed),
            injected_late: c.late.load(Ordering::Relaxed),
            late_applied: c.late_applied.load(Ordering::Relaxed),
            in_flight: 0,
        }
        .with_in_flight(c.done.load(Ordering::Relaxed))
    }

    /// Draws this request's latency and fate.
    fn draw(&self, write: bool) -> (Duration, Fate) {
        let mut rng = self.rng.lock().unwrap();
        let cfg = &self.config;
        let lat = if cfg.jitter.is_zero() {
            cfg.latency
        } else {
            let j = cfg.jitter.as_nanos() as i128;
            let off = rng.i128(-j..=j);
            let base = cfg.latency.as_nanos() as i128;
            Duration::from_nanos((base + off).max(0) as u64)
        };
        let x = rng.f64();
        let fate = if x < cfg.transient_rate {
            Fate::FailBefore
        } else if write && x < cfg.transient_rate + cfg.lost_rate {
            Fate::LoseResponse
        } else if write && x < cfg.transient_rate + cfg.lost_rate + cfg.late_rate {
            Fate::ApplyLate(rng.u32(1..=3))
        } else {
            Fate::Ok
        };
        (lat, fate)
    }

    /// Writes held back and not yet applied.
    pub fn pending_late(&self) -> usize {
        self.late.lock().unwrap().len()
    }

    /// Applies every write still held back, now (as a server eventually
    /// processes every request it received).
    pub async fn flush_late(&self) {
        let due: Vec<LateWrite> = std::mem::take(&mut *self.late.lock().unwrap());
        for w in due {
            self.apply_late(w).await;
        }
    }

    async fn apply_late(&self, w: LateWrite) {
        self.counters.late_applied.fetch_add(1, Ordering::Relaxed);
        let r = match w.what {
            LateOp::Put(bytes, mode) => self.inner.put(&w.key, bytes, mode).await.map(|_| ()),
            LateOp::Delete => self.inner.delete(&w.key).await,
        };
        if let Err(e) = r {
            tracing::debug!(key = %w.key, error = %e, "a late write failed when applied");
        }
    }

    /// Counts a completed read against every held-back write and applies
    /// those that are due.
    async fn after_read(&self) {
        let due: Vec<LateWrite> = {
            let mut late = self.late.lock().unwrap();
            if late.is_empty() {
                return;
            }
            for w in late.iter_mut() {
                w.reads_left = w.reads_left.saturating_sub(1);
            }
            let (due, keep) = std::mem::take(&mut *late)
                .into_iter()
                .partition(|w| w.reads_left == 0);
            *late = keep;
            due
        };
        for w in due {
            self.apply_late(w).await;
        }
    }

    async fn run<T, F>(
        &self,
        op: &'static str,
        key: &str,
        write: bool,
        late: Option<LateOp>,
        f: F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        struct Done<'a>(&'a AtomicU64);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _done = Done(&self.counters.done);
        let (lat, mut fate) = self.draw(write);
        if matches!(fate, Fate::ApplyLate(_)) && late.is_none() {
            // Not modelled for this request (a conditional delete): lose it instead.
            fate = Fate::LoseResponse;
        }
        let started = self.clock.elapsed();
        if !lat.is_zero() {
            // Half the latency on the way in, half on the way out, so a lost
            // response really was applied while the caller still waited.
            self.clock.sleep(lat / 2).await;
        }
        match fate {
            Fate::FailBefore => {
                self.counters.transient.fetch_add(1, Ordering::Relaxed);
                return Err(Error::new(ErrorKind::Transient, op)
                    .with_path(key)
                    .with_message("injected fault: request refused before reaching the store")
                    .not_applied());
            }
            Fate::ApplyLate(reads) => {
                self.counters.late.fetch_add(1, Ordering::Relaxed);
                if let Some(what) = late {
                    self.late.lock().unwrap().push(LateWrite {
                        key: key.to_string(),
                        what,
                        reads_left: reads,
                    });
                }
                if !lat.is_zero() {
                    self.clock.sleep(lat / 2).await;
                }
                return Err(Error::new(ErrorKind::Transient, op)
                    .with_path(key)
                    .with_message("injected fault: timed out (the write will be applied later)"));
            }
            Fate::Ok | Fate::LoseResponse => {}
        }
        let out = f.await;
        if !lat.is_zero() {
            // Sleep to the request's deadline, not for a fixed half: timers
            // round up to the millisecond, and two rounded halves would make
            // every request about 2 ms slower than configured.
            let spent = self.clock.elapsed().saturating_sub(started);
            let rest = lat.saturating_sub(spent).max(lat / 4);
            self.clock.sleep(rest).await;
        }
        if !write {
            self.after_read().await;
        }
        if fate == Fate::LoseResponse {
            self.counters.lost.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(ErrorKind::Transient, op)
                .with_path(key)
                .with_message("injected fault: response lost after the request was applied"));
        }
        out
    }
}

#[async_trait]
impl Store for Faulty {
    fn root_url(&self) -> String {
        self.inner.root_url()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<GetResult> {
        self.counters.get.fetch_add(1, Ordering::Relaxed);
        self.run("get", key, false, None, self.inner.get(key)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.counters.head.fetch_add(1, Ordering::Relaxed);
        self.run("head", key, false, None, self.inner.head(key))
            .await
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        self.counters.put.fetch_add(1, Ordering::Relaxed);
        let late = LateOp::Put(bytes.clone(), mode.clone());
        self.run(
            mode.op().name(),
            key,
            true,
            Some(late),
            self.inner.put(key, bytes, mode),
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.counters.delete.fetch_add(1, Ordering::Relaxed);
        self.run(
            "delete",
            key,
            true,
            Some(LateOp::Delete),
            self.inner.delete(key),
        )
        .await
    }

    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        self.counters.delete.fetch_add(1, Ordering::Relaxed);
        // A late conditional delete is not modelled: it is applied now or never.
        self.run(
            "delete_if",
            key,
            true,
            None,
            self.inner.delete_if(key, version),
        )
        .await
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        self.counters.list.fetch_add(1, Ordering::Relaxed);
        let key = req.prefix.clone();
        self.run("list", &key, false, None, self.inner.list(req))
            .await
    }

    async fn leftovers(
        &self,
        prefix: &str,
        older_than: Duration,
        remove: bool,
    ) -> Result<crate::store::Leftovers> {
        self.inner.leftovers(prefix, older_than, remove).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<Option<u64>> {
        self.inner.delete_prefix(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::memory::InMemory;

    #[tokio::test]
    async fn latency_is_measured_on_the_injected_clock() {
        // On a manual clock a request takes exactly its latency of virtual
        // time; measuring its first half on the real clock made it take 1.5x.
        let clock = ManualClock::fixed();
        let f = Faulty::with_clock(
            InMemory::new(),
            FaultConfig::latency(Duration::from_secs(10), Duration::ZERO),
            clock.clone(),
        );
        let t0 = clock.elapsed();
        let _ = f.get("nothing").await;
        assert_eq!(clock.elapsed() - t0, Duration::from_secs(10));
    }

    #[tokio::test]
    async fn late_writes_land_after_a_later_read() {
        let mem = InMemory::new();
        let f = Faulty::new(mem.clone(), FaultConfig::default().with_late(1.0));
        let e = f.put("k", "v".into(), PutMode::Create).await.unwrap_err();
        assert!(e.is_retryable() && e.may_have_applied(), "{e}");
        assert!(mem.get("k").await.is_err(), "not applied yet");
        assert_eq!(f.pending_late(), 1);
        // Reads through the wrapper: the write lands after one to three.
        for _ in 0..3 {
            let _ = f.get("k").await;
        }
        assert_eq!(&mem.get("k").await.unwrap().bytes[..], b"v");
        assert_eq!(f.stats().late_applied, 1);
    }
}
