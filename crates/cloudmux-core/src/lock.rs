//! A lock on any path, built only on create-if-absent and compare-and-swap,
//! with fencing tokens and expiry that trusts no single machine's clock.
//!
//! # Protocol
//! The lock on path `P` is the object `P.lock`, a [conditional
//! document](crate::cond):
//!
//! ```json
//! {"nonce":"9f…","prev":"41…","epoch":3,"v":2,"state":"held","holder":"host/1234/main",
//!  "acquired_ms":…,"renewed_ms":…,"ttl_ms":60000}
//! ```
//!
//! - **Acquire.** Read the document. Absent: create it `held` with epoch 1.
//!   `free`, or expired (below): compare-and-swap it to `held` with epoch
//!   `previous + 1`. Of several contenders only one create and one swap from
//!   a version can succeed, so two live holders never exist. Otherwise wait
//!   (jittered exponential backoff) and look again, until the timeout;
//!   `timeout = 0` makes exactly one attempt.
//! - **Fencing token.** The epoch of the acquisition
//!   ([`LockGuard::fencing_token`]). It grows by one with every acquisition,
//!   and the document is never deleted (release writes `free` and keeps the
//!   epoch), so a holder that stalled past its TTL and comes back holds a
//!   smaller token than its successor: whatever it writes to can refuse it
//!   ([`CondDoc::modify`](crate::cond::CondDoc::modify) does). If the lock
//!   object is removed (`rmrf`), epochs start again at 1.
//! - **Renew.** Compare-and-swap a fresh `renewed_ms`, same epoch, same
//!   `acquired_ms`. A renewal that finds the document changed means the lock
//!   was taken over: [`Fenced`](crate::ErrorKind::Fenced).
//! - **Release.** Compare-and-swap to `free`, same epoch. No delete is ever
//!   used (two emulators lack conditional delete, and an unconditional one
//!   could remove a successor's lock).
//!
//! # Expiry without trusting a clock
//! A held lock counts as expired for a contender when either:
//!
//! 1. the contender has seen **the same version unchanged for a whole TTL on
//!    its own monotonic clock** ([`crate::clock::Clock::elapsed`]). A live holder renews
//!    well within its TTL, which changes the version. This uses no wall
//!    clock at all and tolerates any skew; it makes a contender that arrives
//!    after a holder died wait one TTL; or
//! 2. the **storage's own timestamp** of the last write is older than
//!    `ttl + max_skew` by the contender's wall clock. This takes a long-dead
//!    holder's lock at once, and tolerates a skew of up to `max_skew`
//!    (default: one TTL) between the contender's clock and the storage's;
//!    [`LockOptions::max_skew`] `None` turns it off.
//!
//! The holder's own `renewed_ms` is shown to people (who holds it, until
//! when) but never decides expiry.
//!
//! # On GCS
//! GCS accepts about one write per second to one object name
//! ([`Capabilities::min_write_interval`](crate::Capabilities::min_write_interval)).
//! Renewals in the background ([`LockGuard::keep_renewed`]) are never more
//! frequent than that, and waiting contenders only read.
//!
//! ```
//! # tokio_test::block_on(async {
//! use std::time::Duration;
//! use cloudmux_core::UPath;
//! let p = UPath::parse("mem://guide-lock/state.json")?;
//! let guard = p.lock(Duration::from_secs(5)).await?;
//! let first = guard.fencing_token();
//! // A second attempt with timeout 0 fails at once and says who holds it.
//! let err = p.lock(Duration::ZERO).await.unwrap_err();
//! assert_eq!(err.kind(), cloudmux_core::ErrorKind::LockTimeout);
//! assert_eq!(err.lock_info().unwrap().token, first);
//! guard.release().await?;
//! let next = p.lock(Duration::ZERO).await?;
//! assert!(next.fencing_token() > first);
//! next.release().await?;
//! # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::clock::{Beat, Clock, unix_millis};
use crate::cond::{CondDoc, Versioned, Written};
use crate::error::{Error, ErrorKind, LockInfo, Result};
use crate::path::UPath;
use crate::store::Version;
use crate::util::default_worker_id;

/// Options of [`UPath::lock_with`].
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// How long to keep trying. Zero means one attempt.
    pub timeout: Duration,
    /// How long a holder keeps the lock without renewing; after that a
    /// contender may take it over. Default 60 s.
    pub ttl: Duration,
    /// The holder's name, recorded in the lock (default: host/pid/thread).
    pub holder: Option<String>,
    /// First wait between attempts (default 50 ms), doubling with jitter.
    pub min_backoff: Duration,
    /// Longest wait between attempts (default 1 s).
    pub max_backoff: Duration,
    /// The clock skew tolerated between a contender and the storage when
    /// judging expiry by the storage's timestamps (default: one TTL);
    /// `None` judges expiry only by watching the lock for a whole TTL.
    pub max_skew: Option<Duration>,
}

impl LockOptions {
    /// Default options with this timeout.
    pub fn new(timeout: Duration) -> Self {
        LockOptions {
            timeout,
            ttl: Duration::from_secs(60),
            holder: None,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            max_skew: Some(Duration::from_secs(60)),
        }
    }

    /// Sets the time-to-live (and the default skew tolerance with it).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        if self.max_skew == Some(self.ttl) {
            self.max_skew = Some(ttl);
        }
        self.ttl = ttl;
        self
    }

    /// Sets the holder name.
    pub fn holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = Some(holder.into());
        self
    }

    /// Sets the backoff bounds.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// Sets the skew tolerance of the storage-timestamp expiry rule.
    pub fn max_skew(mut self, skew: Option<Duration>) -> Self {
        self.max_skew = skew;
        self
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum LockState {
    Held,
    Free,
}

/// The lock document's own fields (the [`crate::cond::Stamp`] adds nonce,
/// prev and epoch).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LockBody {
    v: u32,
    state: LockState,
    holder: String,
    acquired_ms: u64,
    renewed_ms: u64,
    ttl_ms: u64,
}

/// The format version of lock documents.
const LOCK_FORMAT: u32 = 2;

fn ms_time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn info_of(doc: &Versioned<LockBody>) -> LockInfo {
    LockInfo {
        holder: doc.body.holder.clone(),
        acquired: ms_time(doc.body.acquired_ms),
        expires: ms_time(doc.body.renewed_ms.saturating_add(doc.body.ttl_ms)),
        token: doc.stamp.epoch,
    }
}

/// The lock object's path for `path`.
pub(crate) fn lock_path(path: &UPath) -> Result<UPath> {
    if path.is_root() {
        return Err(
            Error::invalid("lock", "cannot lock the root of a store").with_path(path.to_string())
        );
    }
    path.with_name(&format!("{}.lock", path.name()))
}

fn lock_doc(path: &UPath) -> Result<CondDoc<LockBody>> {
    Ok(CondDoc::new(lock_path(path)?))
}

/// What a contender has seen of the current holder: judges expiry by a
/// version unchanged for a whole TTL on the contender's monotonic clock.
#[derive(Debug, Default)]
struct Observer {
    seen: Option<(Version, Duration)>,
}

impl Observer {
    fn expired(
        &mut self,
        doc: &Versioned<LockBody>,
        clock: &dyn Clock,
        max_skew: Option<Duration>,
    ) -> bool {
        let ttl = Duration::from_millis(doc.body.ttl_ms);
        let now = clock.elapsed();
        let watched = match &self.seen {
            Some((v, since)) if *v == doc.version => now.saturating_sub(*since) >= ttl,
            _ => {
                self.seen = Some((doc.version.clone(), now));
                false
            }
        };
        let by_storage = max_skew.is_some_and(|skew| {
            clock
                .now()
                .duration_since(doc.modified)
                .is_ok_and(|age| age > ttl + skew)
        });
        watched || by_storage
    }
}

enum Attempt {
    Won(Versioned<LockBody>),
    Busy(Option<LockInfo>),
}

async fn attempt(
    doc: &CondDoc<LockBody>,
    holder: &str,
    opts: &LockOptions,
    observer: &mut Observer,
) -> Result<Attempt> {
    let clock = doc.path().clock().clone();
    let now = unix_millis(clock.now());
    let body = LockBody {
        v: LOCK_FORMAT,
        state: LockState::Held,
        holder: holder.to_string(),
        acquired_ms: now,
        renewed_ms: now,
        ttl_ms: opts.ttl.as_millis() as u64,
    };
    let mut w = match doc.read().await? {
        None => doc.create_write(&body, 1)?,
        Some(cur) => {
            let takeable = cur.body.state == LockState::Free
                || observer.expired(&cur, clock.as_ref(), opts.max_skew);
            if !takeable {
                return Ok(Attempt::Busy(Some(info_of(&cur))));
            }
            doc.update_write(&cur, &body, cur.stamp.epoch + 1)?
        }
    };
    Ok(match doc.send(&mut w).await? {
        Written::Current(v) => Attempt::Won(v),
        other => {
            // Another contender got it first: say who, if it can be read.
            let cur = match other.current() {
                Some(c) => Some(c.clone()),
                None => doc.read().await.ok().flatten(),
            };
            Attempt::Busy(
                cur.filter(|c| c.body.state == LockState::Held)
                    .map(|c| info_of(&c)),
            )
        }
    })
}

pub(crate) async fn acquire(path: &UPath, opts: LockOptions) -> Result<LockGuard> {
    let doc = lock_doc(path)?;
    let holder = opts.holder.clone().unwrap_or_else(default_worker_id);
    let clock = path.clock().clone();
    let start = clock.elapsed();
    let policy = crate::RetryPolicy {
        max_attempts: usize::MAX,
        min_delay: opts.min_backoff,
        max_delay: opts.max_backoff,
    };
    let mut delays = policy.delays();
    let mut observer = Observer::default();
    loop {
        match attempt(&doc, &holder, &opts, &mut observer).await? {
            Attempt::Won(held) => {
                tracing::debug!(lock = %doc.path(), %holder, token = held.stamp.epoch, "lock acquired");
                let (lost, _) = watch::channel(false);
                return Ok(LockGuard {
                    inner: Arc::new(Inner {
                        doc,
                        holder,
                        ttl: opts.ttl,
                        token: held.stamp.epoch,
                        acquired_ms: held.body.acquired_ms,
                        held: Mutex::new(Some(held)),
                        lost,
                    }),
                });
            }
            Attempt::Busy(info) => {
                let waited = clock.elapsed().saturating_sub(start);
                if waited >= opts.timeout {
                    let mut e = Error::new(ErrorKind::LockTimeout, "lock")
                        .with_path(path.to_string())
                        .with_message(format!(
                            "not acquired within {:?}; `cloudmux lock-info {path}` shows the holder, \
                             `cloudmux force-unlock {path} --token N` frees a stale lock",
                            opts.timeout
                        ));
                    if let Some(i) = info {
                        e = e.with_lock_info(i);
                    }
                    return Err(e);
                }
                let d = delays.next().unwrap_or(opts.max_backoff);
                clock.sleep(d.min(opts.timeout - waited)).await;
            }
        }
    }
}

struct Inner {
    doc: CondDoc<LockBody>,
    holder: String,
    ttl: Duration,
    token: u64,
    acquired_ms: u64,
    /// The document as we last wrote it; `None` once released or lost.
    held: Mutex<Option<Versioned<LockBody>>>,
    /// Becomes true when the lock is found taken over (or released).
    lost: watch::Sender<bool>,
}

/// A held lock. Release it with [`release`](LockGuard::release); dropping
/// it releases on a best-effort basis in the background. Clones share the
/// one acquisition.
#[derive(Clone)]
pub struct LockGuard {
    inner: Arc<Inner>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.inner.doc.path().to_string())
            .field("holder", &self.inner.holder)
            .field("token", &self.inner.token)
            .field("lost", &*self.inner.lost.borrow())
            .finish()
    }
}

impl LockGuard {
    /// The lock object's path.
    pub fn lock_path(&self) -> &UPath {
        self.inner.doc.path()
    }

    /// The holder name recorded in the lock.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The fencing token of this acquisition: larger than every earlier
    /// acquisition's. Pass it to whatever you write under the lock, so that
    /// writes of a holder that lost the lock can be refused.
    pub fn fencing_token(&self) -> u64 {
        self.inner.token
    }

    /// When the lock was acquired (by this machine's clock); renewals keep it.
    pub fn acquired(&self) -> SystemTime {
        ms_time(self.inner.acquired_ms)
    }

    /// True until released, or until a renewal found the lock taken over.
    pub fn is_held(&self) -> bool {
        !*self.inner.lost.borrow()
    }

    /// A receiver that turns `true` when the lock is lost or released.
    pub fn watch_lost(&self) -> watch::Receiver<bool> {
        self.inner.lost.subscribe()
    }

    /// Extends the lease by the TTL from now. The acquisition time and the
    /// fencing token stay.
    ///
    /// # Errors
    /// `Fenced` when the lock was taken over (it is then no longer held);
    /// `InvalidInput` after release; storage errors (still held, as far as
    /// is known: renew again).
    pub async fn renew(&self) -> Result<()> {
        let mut held = self.inner.held.lock().await;
        let Some(cur) = held.clone() else {
            return Err(Error::invalid("renew", "the lock is no longer held")
                .with_path(self.lock_path().to_string()));
        };
        let body = LockBody {
            renewed_ms: unix_millis(self.lock_path().clock().now()),
            ..cur.body.clone()
        };
        let mut w = self.inner.doc.update_write(&cur, &body, self.inner.token)?;
        match self.inner.doc.send(&mut w).await? {
            Written::Current(v) => {
                *held = Some(v);
                Ok(())
            }
            _ => {
                *held = None;
                self.inner.lost.send_replace(true);
                Err(Error::new(ErrorKind::Fenced, "renew")
                    .with_path(self.lock_path().to_string())
                    .with_message("the lock expired and was taken over"))
            }
        }
    }

    /// Releases the lock. Releasing twice is a no-op.
    ///
    /// # Errors
    /// `Fenced` when the lock had expired and was taken over by another
    /// holder (whose lock is left alone); storage errors (still held as far
    /// as is known: release again, or let it expire).
    pub async fn release(&self) -> Result<()> {
        let mut held = self.inner.held.lock().await;
        let Some(cur) = held.clone() else {
            return Ok(());
        };
        let now = unix_millis(self.lock_path().clock().now());
        let body = LockBody {
            state: LockState::Free,
            renewed_ms: now,
            ..cur.body.clone()
        };
        let mut w = self.inner.doc.update_write(&cur, &body, self.inner.token)?;
        let r = self.inner.doc.send(&mut w).await?;
        *held = None;
        self.inner.lost.send_replace(true);
        match r {
            Written::Current(_) | Written::Superseded { .. } => Ok(()),
            _ => Err(Error::new(ErrorKind::Fenced, "release")
                .with_path(self.lock_path().to_string())
                .with_message("the lock expired and was taken over before release")),
        }
    }

    /// Forgets the lock without writing anything: for a holder that has
    /// just deleted the lock object itself (the last step of a protocol that
    /// removes everything). It is then no longer held.
    pub fn disarm(&self) {
        if let Ok(mut held) = self.inner.held.try_lock() {
            *held = None;
        }
        self.inner.lost.send_replace(true);
    }

    /// Renews the lock in the background on the current tokio runtime until
    /// it is released, dropped, or found lost ([`watch_lost`](Self::watch_lost)
    /// tells). Renewals come every third of the TTL, never more often than
    /// the backend allows one object to be rewritten.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn keep_renewed(&self) {
        let min = self.lock_path().store().capabilities().min_write_interval;
        let every = (self.inner.ttl / 3).max(min).max(Duration::from_millis(10));
        let weak = Arc::downgrade(&self.inner);
        let clock = self.lock_path().clock().clone();
        let mut lost = self.watch_lost();
        let stop = async move {
            let _ = lost.wait_for(|l| *l).await;
        };
        crate::clock::heartbeat(clock, every, stop, move || {
            let g = weak.upgrade().map(|inner| LockGuard { inner });
            async move {
                let Some(g) = g else { return Beat::Stop };
                match g.renew().await {
                    Ok(()) => Beat::Again,
                    Err(e) if e.kind() == ErrorKind::Fenced => {
                        tracing::warn!(lock = %g.lock_path(), "lock lost: taken over by another holder");
                        Beat::Stop
                    }
                    Err(e) if e.kind() == ErrorKind::InvalidInput => Beat::Stop,
                    Err(e) => {
                        tracing::warn!(lock = %g.lock_path(), error = %e, "lock renewal failed; retrying");
                        Beat::Again
                    }
                }
            }
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(held) = self.held.get_mut().take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(lock = %self.doc.path(), "lock dropped outside a runtime: it expires after its TTL");
            return;
        };
        let doc = self.doc.clone();
        let token = self.token;
        handle.spawn(async move {
            let body = LockBody {
                state: LockState::Free,
                ..held.body.clone()
            };
            let r = match doc.update_write(&held, &body, token) {
                Ok(mut w) => doc.send(&mut w).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "best-effort lock release failed");
            }
        });
    }
}

/// The state of a lock, as [`info`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// Holder, times and token of the last acquisition.
    pub info: LockInfo,
    /// False when the lock was released (`free`).
    pub held: bool,
    /// When the storage last wrote the lock object.
    pub modified: SystemTime,
}

/// Reads the state of the lock on `path` (for `cloudmux lock-info`):
/// `None` when it was never taken.
///
/// # Errors
/// Storage errors; `Corrupt` for an unreadable lock document.
pub async fn info(path: &UPath) -> Result<Option<LockStatus>> {
    Ok(lock_doc(path)?.read().await?.map(|d| LockStatus {
        info: info_of(&d),
        held: d.body.state == LockState::Held,
        modified: d.modified,
    }))
}

/// Reads who holds the lock on `path`, if anybody (for diagnostics): the
/// holder named in a `held` document whose own expiry has not passed by this
/// machine's clock.
///
/// # Errors
/// Backend failures; `Corrupt` for an unreadable lock document.
pub async fn lock_holder(path: &UPath) -> Result<Option<String>> {
    let now = path.clock().now();
    Ok(info(path)
        .await?
        .filter(|s| s.held && s.info.expires > now)
        .map(|s| s.info.holder))
}

/// Frees the lock on `path` only if it is still held with fencing token
/// `token` (for a holder known to be dead; `cloudmux force-unlock`).
///
/// # Errors
/// `Precondition` when the lock is free or held with another token (nothing
/// is changed); storage errors.
pub async fn force_unlock(path: &UPath, token: u64) -> Result<()> {
    let doc = lock_doc(path)?;
    let cur = doc.read().await?.ok_or_else(|| {
        Error::new(ErrorKind::Precondition, "force-unlock")
            .with_path(path.to_string())
            .with_message("the lock was never taken")
    })?;
    if cur.body.state != LockState::Held || cur.stamp.epoch != token {
        return Err(Error::new(ErrorKind::Precondition, "force-unlock")
            .with_path(path.to_string())
            .with_message(format!(
                "the lock is {} with token {}, not held with token {token}: nothing changed",
                if cur.body.state == LockState::Held {
                    "held"
                } else {
                    "free"
                },
                cur.stamp.epoch
            )));
    }
    let body = LockBody {
        state: LockState::Free,
        renewed_ms: unix_millis(path.clock().now()),
        ..cur.body.clone()
    };
    let mut w = doc.update_write(&cur, &body, token)?;
    match doc.send(&mut w).await? {
        Written::Current(_) => Ok(()),
        _ => Err(Error::new(ErrorKind::Precondition, "force-unlock")
            .with_path(path.to_string())
            .with_message("the lock changed while being freed: nothing changed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, TokioClock};
    use crate::memory::InMemory;

    fn at(store: &Arc<InMemory>, clock: Arc<dyn Clock>) -> UPath {
        UPath::new(store.clone(), "res").unwrap().with_clock(clock)
    }

    #[tokio::test]
    async fn a_contender_whose_clock_runs_ahead_does_not_steal_a_live_lock() {
        // The holder and the storage agree on the time; the contender's
        // clock is 90 s ahead, more than the 60 s TTL. Judged by the holder's
        // written expiry (as before), the lock looked expired to it.
        let storage = ManualClock::fixed();
        let store = InMemory::with_clock(storage.clone());
        let holder = at(&store, storage.clone());
        let ahead = ManualClock::new(storage.now() + Duration::from_secs(90));
        let contender = at(&store, ahead.clone());
        let g = holder.lock(Duration::ZERO).await.unwrap();
        let e = contender.lock(Duration::ZERO).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LockTimeout, "{e}");
        assert!(g.is_held());
        // Nor after it watches for less than a TTL while the holder renews.
        for _ in 0..5 {
            storage.advance(Duration::from_secs(15));
            ahead.advance(Duration::from_secs(15));
            g.renew().await.unwrap();
            let e = contender.lock(Duration::ZERO).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::LockTimeout);
        }
        g.release().await.unwrap();
        contender
            .lock(Duration::ZERO)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_long_dead_holder_is_taken_over_at_once_by_storage_time() {
        let storage = ManualClock::fixed();
        let store = InMemory::with_clock(storage.clone());
        let p = at(&store, storage.clone());
        let dead = p
            .lock_with(LockOptions::new(Duration::ZERO).ttl(Duration::from_secs(30)))
            .await
            .unwrap();
        // Older than the holder's ttl + our max_skew (30 s + 30 s) by the
        // storage's timestamp.
        storage.advance(Duration::from_secs(61));
        let heir = p
            .lock_with(LockOptions::new(Duration::ZERO).max_skew(Some(Duration::from_secs(30))))
            .await
            .unwrap();
        assert_eq!(heir.fencing_token(), dead.fencing_token() + 1);
        // With the fast path off, one look is never enough.
        let e = p
            .lock_with(LockOptions::new(Duration::ZERO).max_skew(None))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LockTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_kept_renewed_in_the_background_is_not_taken_over() {
        let clock = TokioClock::fixed();
        let store = InMemory::with_clock(clock.clone());
        let p = at(&store, clock.clone());
        let opts = || {
            LockOptions::new(Duration::from_secs(300))
                .ttl(Duration::from_secs(30))
                .max_skew(None)
        };
        let g = p.lock_with(opts()).await.unwrap();
        g.keep_renewed();
        // A contender waits five TTLs in virtual time and never gets it.
        let e = p.lock_with(opts().holder("contender")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LockTimeout);
        assert!(g.is_held());
        let mut lost = g.watch_lost();
        // Stopped renewing (released), the lock goes to the next at once.
        g.release().await.unwrap();
        assert!(*lost.borrow_and_update());
        let next = p.lock_with(opts().holder("next")).await.unwrap();
        assert!(next.fencing_token() > g.fencing_token());
    }

    /// A store that allows one write per object per second (as GCS does),
    /// counting the writes it sees.
    #[derive(Debug)]
    struct OnePerSecond {
        inner: Arc<InMemory>,
        puts: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl crate::Store for OnePerSecond {
        fn root_url(&self) -> String {
            self.inner.root_url()
        }
        fn capabilities(&self) -> crate::Capabilities {
            self.inner
                .capabilities()
                .with_min_write_interval(Duration::from_secs(1))
        }
        async fn get(&self, key: &str) -> Result<crate::GetResult> {
            self.inner.get(key).await
        }
        async fn head(&self, key: &str) -> Result<crate::ObjectMeta> {
            self.inner.head(key).await
        }
        async fn put(
            &self,
            key: &str,
            bytes: bytes::Bytes,
            mode: crate::PutMode,
        ) -> Result<crate::PutResult> {
            self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.put(key, bytes, mode).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key).await
        }
        async fn list(&self, req: crate::ListRequest) -> Result<crate::ListPage> {
            self.inner.list(req).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn background_renewals_respect_the_backend_write_interval() {
        let clock = TokioClock::fixed();
        let store = Arc::new(OnePerSecond {
            inner: InMemory::with_clock(clock.clone()),
            puts: Default::default(),
        });
        let p = UPath::new(store.clone(), "res")
            .unwrap()
            .with_clock(clock.clone());
        // A TTL of 1.5 s would renew every 0.5 s: too often for this store.
        let g = p
            .lock_with(LockOptions::new(Duration::ZERO).ttl(Duration::from_millis(1500)))
            .await
            .unwrap();
        g.keep_renewed();
        clock.sleep(Duration::from_secs(20)).await;
        let puts = store.puts.load(std::sync::atomic::Ordering::SeqCst);
        assert!(g.is_held());
        // One create, then at most one renewal per second.
        assert!((10..=21).contains(&puts), "{puts} writes in 20 s");
        g.release().await.unwrap();
    }
}
