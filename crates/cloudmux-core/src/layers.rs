//! Policies as store layers: wrappers around any [`Store`] that are stores
//! themselves.
//!
//! | layer | what it adds |
//! |---|---|
//! | [`Timeout`] | a deadline on every request, on the injected [`Clock`] |
//! | [`Retry`] | bounded, jittered retries of transient failures, with an honest answer for conditional writes whose outcome became unknown |
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
