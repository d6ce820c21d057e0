//! A lock on any path, built only on create-if-absent and compare-and-swap.
//!
//! # Protocol
//! The lock on path `P` is the object `P.lock`, a small JSON document:
//!
//! ```json
//! {"v":1,"state":"held","holder":"host/1234/main","nonce":"9f…","acquired_ms":…,"expires_ms":…}
//! ```
//!
//! 1. **Acquire**: create `P.lock` with `state: held` (create-if-absent).
//!    If it exists, read it with its version token:
//!    - `state: free`, or `expires_ms` in the past: take it over by a
//!      compare-and-swap on that version. Of several contenders only one
//!      swap succeeds, so two live holders never exist.
//!    - otherwise wait (jittered exponential backoff, capped) and try again
//!      until the timeout. `timeout = 0` makes exactly one attempt.
//! 2. **Release**: compare-and-swap the document to `state: free` with a fresh
//!    nonce. No delete is used, conditional or not (two emulators lack
//!    conditional delete, and an unconditional one could remove a successor's
//!    lock). A failed swap means the lock had expired and was taken over: the
//!    release reports `Precondition`.
//! 3. **Renew**: compare-and-swap a later `expires_ms`.
//!
//! Every write carries a fresh nonce, so a version token never repeats (S3's
//! ETag is the body's MD5) and an ambiguous write, whose response was lost, is
//! settled by reading the document back and comparing nonces, never by guessing.
//!
//! Expiry compares the holder's wall clock (`expires_ms`) with the
//! contender's: keep machine clocks in sync (NTP) to well within the TTL.
//!
//! # On GCS
//! GCS accepts about one write per second to one object name. A lock changes
//! hands by writing its object, so hand-offs faster than once a second are
//! throttled (429, retried as transient). Waiting contenders only read.
//! The default backoff starts at 50 ms and is capped at 1 s; on GCS prefer
//! critical sections of a second or more, or lock different paths.
//!
//! ```
//! # tokio_test::block_on(async {
//! use std::time::Duration;
//! use cloudmux_core::UPath;
//! let p = UPath::parse("mem://guide-lock/state.json")?;
//! let mut guard = p.lock(Duration::from_secs(5)).await?;
//! // A second attempt with timeout 0 fails at once and names the holder.
//! let err = p.lock(Duration::ZERO).await.unwrap_err();
//! assert_eq!(err.kind(), cloudmux_core::ErrorKind::LockTimeout);
//! assert!(err.lock_holder().is_some());
//! guard.release().await?;
//! p.lock(Duration::ZERO).await?.release().await?;
//! # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::unix_millis;
use crate::error::{Error, ErrorKind, Result};
use crate::path::UPath;
use crate::store::{PutMode, Version};
use crate::util::{default_worker_id, nonce};

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
        }
    }

    /// Sets the time-to-live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum LockState {
    Held,
    Free,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockDoc {
    v: u32,
    state: LockState,
    holder: String,
    nonce: String,
    acquired_ms: u64,
    expires_ms: u64,
}

impl LockDoc {
    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("lock document encodes"))
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

/// Reads the lock document and its version.
async fn read_doc(lp: &UPath) -> Result<Option<(LockDoc, Version)>> {
    match lp.get().await {
        Ok(g) => {
            let doc: LockDoc = serde_json::from_slice(&g.bytes).map_err(|e| {
                Error::corrupt("lock", format!("unreadable lock document: {e}"))
                    .with_path(lp.to_string())
            })?;
            Ok(Some((doc, g.version())))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

enum Attempt {
    Won(Version),
    Busy(String),
}

/// Writes `doc` with `mode`, settling a lost response by the nonce.
async fn write_doc(lp: &UPath, doc: &LockDoc, mode: PutMode) -> Result<Option<Version>> {
    let body = doc.encode();
    // Retries are ours here: one request per call, so an ambiguous outcome is
    // visible and settled below instead of turning into a false loss.
    let r = lp
        .with_retry(crate::RetryPolicy::none())
        .put(body, mode)
        .await;
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_already_exists() || e.is_precondition() => Ok(None),
        Err(e) if e.is_retryable() => {
            // The write may have happened. Read back; our nonce decides.
            match read_doc(lp).await? {
                Some((cur, v)) if cur.nonce == doc.nonce => Ok(Some(v)),
                _ => Ok(None),
            }
        }
        Err(e) => Err(e),
    }
}

async fn attempt(lp: &UPath, holder: &str, ttl: Duration) -> Result<Attempt> {
    let now = unix_millis(lp.clock().now());
    let doc = LockDoc {
        v: 1,
        state: LockState::Held,
        holder: holder.to_string(),
        nonce: nonce(),
        acquired_ms: now,
        expires_ms: now + ttl.as_millis() as u64,
    };
    if let Some(v) = write_doc(lp, &doc, PutMode::Create).await? {
        return Ok(Attempt::Won(v));
    }
    let Some((cur, version)) = read_doc(lp).await? else {
        // Gone between our create and our read (removed by rmrf): try again.
        return Ok(Attempt::Busy(String::from(
            "(nobody: the lock was just removed)",
        )));
    };
    if cur.state == LockState::Held && cur.expires_ms > now {
        return Ok(Attempt::Busy(format!(
            "{} until {}",
            cur.holder,
            crate::clock::rfc3339_micros(
                SystemTime::UNIX_EPOCH + Duration::from_millis(cur.expires_ms)
            )
        )));
    }
    match write_doc(lp, &doc, PutMode::Update(version)).await? {
        Some(v) => Ok(Attempt::Won(v)),
        None => Ok(Attempt::Busy(String::from(
            "(another contender took it over just now)",
        ))),
    }
}

pub(crate) async fn acquire(path: &UPath, opts: LockOptions) -> Result<LockGuard> {
    let lp = lock_path(path)?;
    let holder = opts.holder.clone().unwrap_or_else(default_worker_id);
    let clock = path.clock().clone();
    let start = clock.now();
    let policy = crate::RetryPolicy {
        max_attempts: usize::MAX,
        min_delay: opts.min_backoff,
        max_delay: opts.max_backoff,
    };
    let mut delays = policy.delays();
    loop {
        match attempt(&lp, &holder, opts.ttl).await? {
            Attempt::Won(version) => {
                tracing::debug!(lock = %lp, %holder, "lock acquired");
                return Ok(LockGuard {
                    lock: lp,
                    holder,
                    version: Some(version),
                    ttl: opts.ttl,
                });
            }
            Attempt::Busy(by) => {
                let waited = clock.now().duration_since(start).unwrap_or_default();
                if waited >= opts.timeout {
                    return Err(Error::new(ErrorKind::LockTimeout, "lock")
                        .with_path(path.to_string())
                        .with_message(format!("not acquired within {:?}", opts.timeout))
                        .with_holder(by));
                }
                let d = delays.next().unwrap_or(opts.max_backoff);
                clock.sleep(d.min(opts.timeout - waited)).await;
            }
        }
    }
}

/// A held lock. Release it with [`release`](LockGuard::release); dropping
/// it releases on a best-effort basis in the background.
pub struct LockGuard {
    lock: UPath,
    holder: String,
    /// `None` once released.
    version: Option<Version>,
    ttl: Duration,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.lock.to_string())
            .field("holder", &self.holder)
            .field("held", &self.version.is_some())
            .finish()
    }
}

impl LockGuard {
    /// The lock object's path.
    pub fn lock_path(&self) -> &UPath {
        &self.lock
    }

    /// The holder name recorded in the lock.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// True until released.
    pub fn is_held(&self) -> bool {
        self.version.is_some()
    }

    /// Extends the lease by the TTL from now.
    ///
    /// # Errors
    /// `Precondition` when the lock expired and was taken over (it is then
    /// no longer held); `InvalidInput` after release.
    pub async fn renew(&mut self) -> Result<()> {
        let Some(v) = self.version.clone() else {
            return Err(
                Error::invalid("renew", "the lock was released").with_path(self.lock.to_string())
            );
        };
        let now = unix_millis(self.lock.clock().now());
        let doc = LockDoc {
            v: 1,
            state: LockState::Held,
            holder: self.holder.clone(),
            nonce: nonce(),
            acquired_ms: now,
            expires_ms: now + self.ttl.as_millis() as u64,
        };
        match write_with_retries(&self.lock, &doc, PutMode::Update(v)).await? {
            Some(nv) => {
                self.version = Some(nv);
                Ok(())
            }
            None => {
                self.version = None;
                Err(Error::new(ErrorKind::Precondition, "renew")
                    .with_path(self.lock.to_string())
                    .with_message("the lock expired and was taken over"))
            }
        }
    }

    /// Releases the lock. Releasing twice is a no-op.
    ///
    /// # Errors
    /// `Precondition` when the lock had expired and was taken over by another
    /// holder (whose lock is left alone); transient failures after retries.
    pub async fn release(&mut self) -> Result<()> {
        let Some(v) = self.version.take() else {
            return Ok(());
        };
        let now = unix_millis(self.lock.clock().now());
        let doc = LockDoc {
            v: 1,
            state: LockState::Free,
            holder: self.holder.clone(),
            nonce: nonce(),
            acquired_ms: now,
            expires_ms: now,
        };
        match write_with_retries(&self.lock, &doc, PutMode::Update(v.clone())).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::new(ErrorKind::Precondition, "release")
                .with_path(self.lock.to_string())
                .with_message("the lock expired and was taken over before release")),
            Err(e) => {
                // Still ours as far as we know: allow another release attempt.
                self.version = Some(v);
                Err(e)
            }
        }
    }
}

/// `write_doc` with transient retries, each settled by the nonce.
async fn write_with_retries(lp: &UPath, doc: &LockDoc, mode: PutMode) -> Result<Option<Version>> {
    let policy = lp.retry_policy();
    let mut delays = policy.delays();
    loop {
        match write_doc(lp, doc, mode.clone()).await {
            Err(e) if e.is_retryable() => match delays.next() {
                Some(d) => lp.clock().sleep(d).await,
                None => return Err(e),
            },
            other => return other,
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.version.is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(lock = %self.lock, "lock dropped outside a runtime: it expires after its TTL");
            return;
        };
        let mut g = LockGuard {
            lock: self.lock.clone(),
            holder: self.holder.clone(),
            version: self.version.take(),
            ttl: self.ttl,
        };
        handle.spawn(async move {
            if let Err(e) = g.release().await {
                tracing::warn!(error = %e, "best-effort lock release failed");
            }
        });
    }
}

/// Reads who holds the lock on `path`, if anybody (for diagnostics).
///
/// # Errors
/// Backend failures; `Corrupt` for an unreadable lock document.
pub async fn lock_holder(path: &UPath) -> Result<Option<String>> {
    let lp = lock_path(path)?;
    let now = unix_millis(path.clock().now());
    Ok(read_doc(&lp)
        .await?
        .filter(|(d, _)| d.state == LockState::Held && d.expires_ms > now)
        .map(|(d, _)| d.holder))
}
