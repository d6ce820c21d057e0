//! Policies as store layers: wrappers around any [`Store`] that are stores
//! themselves.
//!
//! | layer | what it adds |
//! |---|---|
//! | [`Timeout`] | a deadline on every request, on the injected [`Clock`] |
//! | [`Retry`] | bounded, jittered retries of transient failures, with an honest answer for conditional writes whose outcome became unknown |
//! | [`Hedge`] | a second copy of a slow read (get, head, list), the first answer winning: the latency tail of reads cut at a chosen delay |
//! | [`Faulty`](crate::Faulty) | counted requests, injected latency and faults (for tests and benchmarks) |
//!
//! A [`UPath`](crate::UPath) is a store plus a key: it sends every request
//! through `Retry(Timeout(store))` built from its settings, so the SDKs
//! underneath are configured to make one attempt per request and retries
//! never multiply.
//!
//! # Conditional writes under retries
//! Retrying a read or an unconditional write is harmless. Retrying a
//! create-if-absent or a compare-and-swap is not: if an earlier attempt was
//! applied but its answer was lost (or it timed out and the server applies it
//! later), the retry meets that attempt's own effect and fails with
//! `AlreadyExists` or `Precondition`. [`Retry`] never reads that as a lost race
//! and never guesses from the bytes: it answers
//! [`OutcomeUnknown`](crate::ErrorKind::OutcomeUnknown). Every retry re-sends
//! the same bytes, so a caller whose body carries a nonce settles the outcome
//! by reading the object back ([`crate::cond`] does exactly that).
//!
//! ```
//! # tokio_test::block_on(async {
//! use std::sync::Arc;
//! use cloudmux_core::layers::Retry;
//! use cloudmux_core::{FaultConfig, Faulty, InMemory, PutMode, RetryPolicy, Store};
//!
//! // Every write is applied and its answer lost: the retry meets its own object.
//! let flaky = Faulty::new(InMemory::new(), FaultConfig::faults(0.0, 1.0, 7));
//! let store = Retry::new(flaky, RetryPolicy::default().no_delay());
//! let e = store.put("k", "body".into(), PutMode::Create).await.unwrap_err();
//! assert!(e.is_outcome_unknown(), "{e}");
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::clock::{self, Clock};
use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetryPolicy;
use crate::store::{
    Capabilities, GetResult, Leftovers, ListPage, ListRequest, ObjectMeta, Op, PutMode, PutResult,
    Store, Version,
};

/// A deadline on every request of the inner store.
///
/// A request that has not answered in time fails as
/// [`Transient`](ErrorKind::Transient). For a write that is an ambiguous
/// outcome: the request may still be applied later.
pub struct Timeout {
    inner: Arc<dyn Store>,
    limit: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

impl Timeout {
    /// Bounds every request of `inner` by `limit` on `clock`.
    pub fn new(inner: Arc<dyn Store>, limit: Duration, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Timeout {
            inner,
            limit,
            clock,
        })
    }

    async fn run<T>(
        &self,
        op: Op,
        key: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match clock::timeout(self.clock.as_ref(), self.limit, fut).await {
            Some(r) => r,
            None => Err(Error::new(ErrorKind::Transient, op.name())
                .with_path(key)
                .with_message(format!("no answer within {:?}", self.limit))),
        }
    }
}

#[async_trait]
impl Store for Timeout {
    fn root_url(&self) -> String {
        self.inner.root_url()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<GetResult> {
        self.run(Op::Get, key, self.inner.get(key)).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.run(Op::Head, key, self.inner.head(key)).await
    }
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        self.run(mode.op(), key, self.inner.put(key, bytes, mode.clone()))
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.run(Op::Delete, key, self.inner.delete(key)).await
    }
    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        self.run(Op::DeleteIf, key, self.inner.delete_if(key, version))
            .await
    }
    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        let key = req.prefix.clone();
        self.run(Op::List, &key, self.inner.list(req)).await
    }
    async fn leftovers(
        &self,
        prefix: &str,
        older_than: Duration,
        remove: bool,
    ) -> Result<Leftovers> {
        self.inner.leftovers(prefix, older_than, remove).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<Option<u64>> {
        self.inner.delete_prefix(prefix).await
    }
}

/// Hedged reads: a get, head or list that has not answered within `after`
/// is sent once more, and the first success wins (the slower copy is
/// dropped). A request's latency is then at most about `after` plus a
/// fresh draw, instead of its own heavy tail: the trick of "The Tail at
/// Scale" (Dean and Barroso, 2013). Set `after` near the reads' 95th
/// percentile, so that about 5% of reads are sent twice. It helps only
/// where slow reads set the pace: in the fleet simulation (`cloudmux-bench
/// --scenario sim --hedge-ms`) it changed nothing measurable, because most
/// requests at the end of a session are writes.
///
/// Writes pass through untouched: a second copy of a write could be applied
/// after a later write of the same caller, and a duplicate conditional write
/// would meet its own twin.
///
/// ```
/// # tokio_test::block_on(async {
/// use std::time::Duration;
/// use cloudmux_core::layers::Hedge;
/// use cloudmux_core::{clock, InMemory, PutMode, Store};
///
/// let mem = InMemory::new();
/// mem.put("k", "v".into(), PutMode::Create).await.unwrap();
/// let store = Hedge::new(mem, Duration::from_millis(50), clock::system());
/// assert_eq!(&store.get("k").await.unwrap().bytes[..], b"v");
/// assert_eq!(store.hedged(), 0, "a fast read is sent once");
/// # });
/// ```
pub struct Hedge {
    inner: Arc<dyn Store>,
    after: Duration,
    clock: Arc<dyn Clock>,
    hedged: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Hedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("after", &self.after)
            .finish()
    }
}

impl Hedge {
    /// Sends a second copy of any read of `inner` still unanswered after
    /// `after` on `clock`.
    pub fn new(inner: Arc<dyn Store>, after: Duration, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Hedge {
            inner,
            after,
            clock,
            hedged: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many reads were sent a second time.
    pub fn hedged(&self) -> u64 {
        self.hedged.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn read<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        use futures::future::{Either, select};
        let first = std::pin::pin!(f());
        let first = match select(first, self.clock.sleep(self.after)).await {
            Either::Left((r, _)) => return r,
            Either::Right(((), first)) => first,
        };
        self.hedged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let second = std::pin::pin!(f());
        match select(first, second).await {
            // The first answer, unless it is a failure and the other copy
            // may still succeed.
            Either::Left((Ok(v), _)) | Either::Right((Ok(v), _)) => Ok(v),
            Either::Left((Err(_), other)) => other.await,
            Either::Right((Err(_), other)) => other.await,
        }
    }
}

#[async_trait]
impl Store for Hedge {
    fn root_url(&self) -> String {
        self.inner.root_url()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<GetResult> {
        self.read(|| self.inner.get(key)).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.read(|| self.inner.head(key)).await
    }
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        self.inner.put(key, bytes, mode).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        self.inner.delete_if(key, version).await
    }
    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        self.read(|| self.inner.list(req.clone())).await
    }
    async fn leftovers(
        &self,
        prefix: &str,
        older_than: Duration,
        remove: bool,
    ) -> Result<Leftovers> {
        self.inner.leftovers(prefix, older_than, remove).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<Option<u64>> {
        self.inner.delete_prefix(prefix).await
    }
}

/// Bounded, jittered retries of transient failures of the inner store.
///
/// Reads, unconditional writes and deletes are retried until they succeed,
/// fail for good, or the attempts run out. Conditional writes are retried
/// with the same bytes; see the [module docs](self) for what an ambiguous
/// attempt turns into.
pub struct Retry {
    inner: Arc<dyn Store>,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Retry {
    /// Retries `inner`'s transient failures by `policy`, waiting on the system clock.
    pub fn new(inner: Arc<dyn Store>, policy: RetryPolicy) -> Arc<Self> {
        Self::with_clock(inner, policy, clock::system())
    }

    /// Retries `inner`'s transient failures by `policy`, waiting on `clock`.
    pub fn with_clock(
        inner: Arc<dyn Store>,
        policy: RetryPolicy,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Retry {
            inner,
            policy,
            clock,
        })
    }

    /// A conditional request (create, compare-and-swap, conditional delete),
    /// retried without ever turning an ambiguous attempt into a lost race.
    async fn conditional<T, F, Fut>(&self, op: Op, key: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut delays = self.policy.delays();
        let mut ambiguous: Option<Error> = None;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => {
                    let e = if e.may_have_applied() {
                        tracing::debug!(%op, key, "conditional write: outcome unknown, resending");
                        if ambiguous.is_none() {
                            ambiguous = Some(e);
                            None
                        } else {
                            Some(e)
                        }
                    } else {
                        Some(e)
                    };
                    match delays.next() {
                        Some(d) => self.clock.sleep(d).await,
                        None => {
                            return Err(match (ambiguous, e) {
                                (Some(first), _) => unknown(op, key, &first, "the retries ran out"),
                                (None, Some(e)) => e,
                                (None, None) => unreachable!("one of them is set"),
                            });
                        }
                    }
                }
                Err(e) if e.is_already_exists() || e.is_precondition() => {
                    return Err(match ambiguous {
                        Some(first) => unknown(
                            op,
                            key,
                            &first,
                            &format!(
                                "a retry met '{}', which may be the earlier attempt's own effect",
                                e.kind()
                            ),
                        ),
                        None => e,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn unknown(op: Op, key: &str, first: &Error, then: &str) -> Error {
    let why = first.message().unwrap_or("no answer");
    Error::new(ErrorKind::OutcomeUnknown, op.name())
        .with_path(first.path().unwrap_or(key).to_string())
        .with_message(format!(
            "an attempt may have been applied ({why}) and {then}: read the object back to settle it"
        ))
}

#[async_trait]
impl Store for Retry {
    fn root_url(&self) -> String {
        self.inner.root_url()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<GetResult> {
        self.policy
            .run(self.clock.as_ref(), || self.inner.get(key))
            .await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.policy
            .run(self.clock.as_ref(), || self.inner.head(key))
            .await
    }
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
        let op = mode.op();
        if op.is_conditional() {
            self.conditional(op, key, || self.inner.put(key, bytes.clone(), mode.clone()))
                .await
        } else {
            self.policy
                .run(self.clock.as_ref(), || {
                    self.inner.put(key, bytes.clone(), mode.clone())
                })
                .await
        }
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.policy
            .run(self.clock.as_ref(), || self.inner.delete(key))
            .await
    }
    async fn delete_if(&self, key: &str, version: &Version) -> Result<()> {
        self.conditional(Op::DeleteIf, key, || self.inner.delete_if(key, version))
            .await
    }
    async fn list(&self, req: ListRequest) -> Result<ListPage> {
        self.policy
            .run(self.clock.as_ref(), || self.inner.list(req.clone()))
            .await
    }
    async fn leftovers(
        &self,
        prefix: &str,
        older_than: Duration,
        remove: bool,
    ) -> Result<Leftovers> {
        self.inner.leftovers(prefix, older_than, remove).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<Option<u64>> {
        self.inner.delete_prefix(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::faults::{FaultConfig, Faulty};
    use crate::memory::InMemory;

    fn quick() -> RetryPolicy {
        RetryPolicy::default().no_delay()
    }

    /// Reads and writes that wait `delays[n]` (the n-th request, in order
    /// sent; then no wait), or fail after it when the delay is odd in ms.
    struct Scripted {
        inner: Arc<InMemory>,
        clock: Arc<dyn Clock>,
        delays: Vec<Duration>,
        sent: std::sync::atomic::AtomicUsize,
    }

    impl fmt::Debug for Scripted {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Scripted")
        }
    }

    impl Scripted {
        async fn wait(&self, op: Op) -> Result<()> {
            let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let d = self.delays.get(n).copied().unwrap_or_default();
            self.clock.sleep(d).await;
            if d.as_millis() % 2 == 1 {
                return Err(Error::new(ErrorKind::Transient, op.name()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Store for Scripted {
        fn root_url(&self) -> String {
            self.inner.root_url()
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn get(&self, key: &str) -> Result<GetResult> {
            self.wait(Op::Get).await?;
            self.inner.get(key).await
        }
        async fn head(&self, key: &str) -> Result<ObjectMeta> {
            self.wait(Op::Head).await?;
            self.inner.head(key).await
        }
        async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutResult> {
            self.wait(mode.op()).await?;
            self.inner.put(key, bytes, mode).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.wait(Op::Delete).await?;
            self.inner.delete(key).await
        }
        async fn list(&self, req: ListRequest) -> Result<ListPage> {
            self.wait(Op::List).await?;
            self.inner.list(req).await
        }
    }

    fn scripted(ms: &[u64]) -> (Arc<Scripted>, Arc<dyn Clock>) {
        let clock: Arc<dyn Clock> = TokioClock::fixed();
        let s = Arc::new(Scripted {
            inner: InMemory::new(),
            clock: clock.clone(),
            delays: ms.iter().map(|&m| Duration::from_millis(m)).collect(),
            sent: Default::default(),
        });
        (s, clock)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_read_is_hedged_and_the_first_success_wins() {
        // Request 0 (the put) is quick; the get's first copy takes 10 s, its
        // second copy 20 ms.
        let (s, clock) = scripted(&[0, 10_000, 20]);
        s.put("k", "v".into(), PutMode::Create).await.unwrap();
        let h = Hedge::new(s.clone(), Duration::from_millis(100), clock.clone());
        let t0 = clock.elapsed();
        let got = h.get("k").await.unwrap();
        assert_eq!(&got.bytes[..], b"v");
        assert_eq!(clock.elapsed() - t0, Duration::from_millis(120));
        assert_eq!(h.hedged(), 1);
        // A read quicker than the delay is sent once.
        let t0 = clock.elapsed();
        h.head("k").await.unwrap();
        assert_eq!(clock.elapsed(), t0);
        assert_eq!(h.hedged(), 1);
        assert_eq!(s.sent.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_copy_waits_for_the_other_and_writes_are_never_doubled() {
        // The list's first copy fails after 301 ms (odd: a failure), after
        // its twin was sent at 100 ms; the twin answers at 100 + 500 ms.
        let (s, clock) = scripted(&[301, 500, 10_000, 10_000]);
        let h = Hedge::new(s.clone(), Duration::from_millis(100), clock.clone());
        let t0 = clock.elapsed();
        let page = h.list(ListRequest::default()).await.unwrap();
        assert!(page.objects.is_empty());
        assert_eq!(clock.elapsed() - t0, Duration::from_millis(600));
        // Both copies failing: the failure comes back.
        let (s2, clock2) = scripted(&[301, 101]);
        let h2 = Hedge::new(s2, Duration::from_millis(100), clock2);
        let e = h2.get("nothing").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient);
        // A slow write is waited for, never sent twice.
        let t0 = clock.elapsed();
        h.put("w", "1".into(), PutMode::Create).await.unwrap();
        assert_eq!(clock.elapsed() - t0, Duration::from_secs(10));
        assert_eq!(s.sent.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(h.hedged(), 1);
    }

    #[tokio::test]
    async fn a_refused_attempt_is_retried_and_a_real_race_loss_stays_one() {
        let mem = InMemory::new();
        mem.put("taken", "theirs".into(), PutMode::Create)
            .await
            .unwrap();
        // Every request fails once before reaching the store (not applied).
        let f = Faulty::new(mem.clone(), FaultConfig::faults(0.5, 0.0, 3));
        let r = Retry::new(f.clone(), quick());
        for i in 0..20 {
            r.put(&format!("k{i}"), "mine".into(), PutMode::Create)
                .await
                .unwrap();
        }
        assert!(f.stats().injected_transient > 0);
        for _ in 0..20 {
            let e = r
                .put("taken", "mine".into(), PutMode::Create)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        }
    }

    #[tokio::test]
    async fn an_ambiguous_attempt_never_becomes_a_success_or_a_loss() {
        let mem = InMemory::new();
        // All responses lost: the first attempt applies, the retry meets it.
        let f = Faulty::new(mem.clone(), FaultConfig::faults(0.0, 1.0, 3));
        let r = Retry::new(f, quick());
        let e = r.put("a", "x".into(), PutMode::Create).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
        assert_eq!(&mem.get("a").await.unwrap().bytes[..], b"x");
        // Two writers of identical bytes: neither is told it won.
        let e2 = r.put("a", "x".into(), PutMode::Create).await.unwrap_err();
        assert_eq!(e2.kind(), ErrorKind::OutcomeUnknown);
        // A compare-and-swap likewise.
        let v = mem.head("a").await.unwrap().version.unwrap();
        let e = r
            .put("a", "y".into(), PutMode::Update(v))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_run_on_the_injected_clock() {
        let clock = TokioClock::fixed();
        let slow = Faulty::with_clock(
            InMemory::new(),
            FaultConfig::latency(Duration::from_secs(30), Duration::ZERO),
            clock.clone(),
        );
        let t = Timeout::new(slow, Duration::from_secs(5), clock.clone());
        let e = t.get("x").await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("no answer within 5s"), "{e}");
        assert_eq!(clock.elapsed(), Duration::from_secs(5), "virtual time only");
    }
}
