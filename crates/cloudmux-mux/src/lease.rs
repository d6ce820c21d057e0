//! Leased sessions: crash-safe hand-out.
//!
//! # Specification
//! In a session created with a lease ([`SessionOptions::leased`](crate::SessionOptions::leased)):
//!
//! - **Claim.** A worker takes element `i` by creating `claims/<i>` (as in
//!   default sessions) with `state: running`, its worker id, the lease and
//!   epoch 1. The epoch is the **attempt number**, and the fencing token.
//! - **Heartbeat.** While it holds the element, a background task renews the
//!   lease by compare-and-swap on the claim, every third of the lease and
//!   never more often than the backend lets one object be rewritten
//!   ([`Capabilities::min_write_interval`](cloudmux_core::Capabilities::min_write_interval)).
//!   A renewal that finds the claim changed means the lease was lost: the
//!   [`Lease`] says so ([`Lease::is_lost`], [`Lease::watch_lost`]) and
//!   acknowledging is refused.
//! - **Acknowledge.** Finishing writes `state: done` by compare-and-swap from
//!   the worker's own last version, then creates the completion marker
//!   `done/<i>`. A worker whose lease was taken over (it stalled: SIGSTOP, a
//!   long pause) holds an old version, so its compare-and-swap fails and it
//!   cannot mark the element completed: [`Fenced`](cloudmux_core::ErrorKind::Fenced).
//! - **Fail.** A failure report adds the attempt, with its reason, to the
//!   claim's history and sets `state: released`, so another worker takes it
//!   at once; once the attempts are spent it sets `state: failed` and creates
//!   `failed/<i>` instead. **Release** (a worker stopping) gives the element
//!   back without counting a failure.
//! - **Reclaim.** A worker that finished its pass watches the elements not
//!   yet marked done or failed. An element whose claim is `released`, or
//!   `running` with an expired lease, is taken by compare-and-swap on the
//!   claim's version with the attempt number raised and the expired attempt
//!   recorded; of any number of workers racing to reclaim, one swap wins.
//! - **Expiry** trusts no single clock (as the [lock](cloudmux_core::lock)):
//!   a lease is expired for an observer that has seen the claim's version
//!   unchanged for a whole lease on its own monotonic clock, or whose wall
//!   clock says the storage last wrote the claim more than a lease plus the
//!   tolerated skew (one lease) ago. The holder's `renewed_ms` is shown to
//!   people, never used to decide.
//! - **Ending.** Every element done or failed: the first worker to see it
//!   writes `completed`. [`Multiplexer::done`](crate::Multiplexer::done) is
//!   true then. With `max_failed`, workers stop handing out new elements once
//!   that many elements have failed.
//!
//! # Cost of watching
//! A watching worker makes at most [`WATCH_READS`] claim reads per poll,
//! plus, amortised, about one listing of the markers: at most
//! `WATCH_READS + 1` requests per poll, however many elements the session
//! has. It waits 100 ms before its next poll after anything changed, and
//! twice as long each time nothing did, up to `clamp(lease / 8, 0.2 s, 2 s)`:
//! a run that ends well ends soon after its last acknowledgement, and an
//! idle watcher with a 60 s lease makes at most 2 requests per second
//! (1.13 measured by `cloudmux-bench --scenario sim --leased`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cloudmux_core::clock::{Beat, Clock, unix_millis};
use cloudmux_core::cond::{CondDoc, Versioned, Written};
use cloudmux_core::{Error, ErrorKind, Result, UPath, Version};
use tokio::sync::{Mutex, watch};

use crate::session::{AttemptOutcome, AttemptRecord, Claim, ClaimState, LeaseTerms};

/// Claim reads per poll of a watching worker.
pub const WATCH_READS: usize = 3;

/// The poll interval of a watching worker for a lease.
pub fn watch_interval(lease: Duration) -> Duration {
    (lease / 8).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// The heartbeat interval for a lease on a backend with this per-object
/// write interval.
pub fn heartbeat_interval(lease: Duration, min_write: Duration) -> Duration {
    (lease / 3).max(min_write).max(Duration::from_millis(1))
}

/// How a lease ended for its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// Still held.
    Held,
    /// Acknowledged.
    Done,
    /// Reported failed (released, or failed for good).
    Failed,
    /// Given back.
    Released,
    /// Taken over by another worker, or the claim changed under it.
    Lost,
}

/// What a reported failure did to the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Attempts are left: the element is handed out again.
    Retried,
    /// Recorded as failed (its attempts are spent, or the failure was
    /// permanent): not handed out again, unless the session's failed
    /// elements are retried (`retry_failed`).
    Failed,
}

/// Counts kept by a worker's leases (shared by all of them).
#[derive(Debug, Default)]
pub(crate) struct LeaseCounters {
    pub(crate) completed: std::sync::atomic::AtomicU64,
    pub(crate) failed: std::sync::atomic::AtomicU64,
    pub(crate) released: std::sync::atomic::AtomicU64,
    pub(crate) lost: std::sync::atomic::AtomicU64,
}

impl LeaseCounters {
    fn bump(&self, end: LeaseEnd) {
        use std::sync::atomic::Ordering::Relaxed;
        match end {
            LeaseEnd::Done => self.completed.fetch_add(1, Relaxed),
            LeaseEnd::Failed => self.failed.fetch_add(1, Relaxed),
            LeaseEnd::Released => self.released.fetch_add(1, Relaxed),
            LeaseEnd::Lost => self.lost.fetch_add(1, Relaxed),
            LeaseEnd::Held => 0,
        };
    }
}

struct Inner {
    index: usize,
    attempt: u64,
    worker: String,
    terms: LeaseTerms,
    doc: CondDoc<Claim>,
    done_marker: UPath,
    failed_marker: UPath,
    /// The claim as we last wrote it, and a write of ours whose outcome is
    /// still unknown (it may yet be applied, late) with the end it meant;
    /// `None` once the lease ended.
    held: Mutex<Held>,
    end: watch::Sender<LeaseEnd>,
    counters: Arc<LeaseCounters>,
}

#[derive(Default)]
struct Held {
    doc: Option<Versioned<Claim>>,
    unsettled: Option<(cloudmux_core::cond::Write<Claim>, Option<LeaseEnd>)>,
}

/// A held element of a leased session: renew, acknowledge, fail or release
/// it. Clones share the one lease.
#[derive(Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("index", &self.inner.index)
            .field("attempt", &self.inner.attempt)
            .field("end", &*self.inner.end.borrow())
            .finish()
    }
}

impl Lease {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        claims: &UPath,
        done: &UPath,
        failed: &UPath,
        name: &str,
        held: Versioned<Claim>,
        index: usize,
        terms: LeaseTerms,
        counters: Arc<LeaseCounters>,
    ) -> Result<Lease> {
        let (end, _) = watch::channel(LeaseEnd::Held);
        Ok(Lease {
            inner: Arc::new(Inner {
                index,
                attempt: held.stamp.epoch,
                worker: held.body.worker.clone(),
                terms,
                doc: CondDoc::new(claims.join(name)?),
                done_marker: done.join(name)?,
                failed_marker: failed.join(name)?,
                held: Mutex::new(Held {
                    doc: Some(held),
                    unsettled: None,
                }),
                end,
                counters,
            }),
        })
    }

    /// The element's index.
    pub fn index(&self) -> usize {
        self.inner.index
    }

    /// The attempt number: the fencing token of this holder.
    pub fn attempt(&self) -> u64 {
        self.inner.attempt
    }

    /// How the lease stands.
    pub fn end(&self) -> LeaseEnd {
        *self.inner.end.borrow()
    }

    /// True once a renewal found the element taken over: stop working on it,
    /// or discard the result.
    pub fn is_lost(&self) -> bool {
        self.end() == LeaseEnd::Lost
    }

    /// A receiver that changes when the lease ends (lost, done, failed, released).
    pub fn watch_lost(&self) -> watch::Receiver<LeaseEnd> {
        self.inner.end.subscribe()
    }

    fn lost(&self) -> Error {
        Error::new(ErrorKind::Fenced, "ack")
            .with_path(self.inner.doc.path().to_string())
            .with_message(format!(
                "element {} was taken over: attempt {} no longer holds it; discard its result",
                self.inner.index, self.inner.attempt
            ))
    }

    /// Compare-and-swap from our version to `next`; the lease ends with
    /// `end` on success and `Lost` otherwise.
    async fn swap(
        &self,
        op: &'static str,
        end: Option<LeaseEnd>,
        next: impl FnOnce(&Claim) -> Claim,
    ) -> Result<Versioned<Claim>> {
        let mut held = self.inner.held.lock().await;
        // A write of ours whose outcome was unknown is settled first, by
        // sending it again: never by writing anew from the old version,
        // which would read our own late write as somebody else's.
        if let Some((mut w, meant)) = held.unsettled.take() {
            match self.inner.doc.send(&mut w).await {
                Ok(Written::Superseded { current: v }) if meant.is_some() => {
                    // Our final write landed; something came after it.
                    let e = meant.expect("checked");
                    held.doc = None;
                    self.inner.end.send_replace(e);
                    self.inner.counters.bump(e);
                    if Some(e) == end {
                        return Ok(v);
                    }
                }
                Ok(Written::Current(v)) => {
                    if let Some(e) = meant {
                        held.doc = None;
                        self.inner.end.send_replace(e);
                        self.inner.counters.bump(e);
                        if Some(e) == end {
                            return Ok(v);
                        }
                    } else {
                        held.doc = Some(v);
                    }
                }
                Ok(_) => {
                    held.doc = None;
                    self.inner.end.send_replace(LeaseEnd::Lost);
                    self.inner.counters.bump(LeaseEnd::Lost);
                    return Err(self.lost());
                }
                Err(e) => {
                    held.unsettled = Some((w, meant));
                    return Err(e);
                }
            }
        }
        let Some(cur) = held.doc.clone() else {
            return Err(match self.end() {
                LeaseEnd::Lost => self.lost(),
                e => Error::invalid(op, format!("the lease already ended ({e:?})"))
                    .with_path(self.inner.doc.path().to_string()),
            });
        };
        let body = next(&cur.body);
        let mut w = self
            .inner
            .doc
            .update_write(&cur, &body, self.inner.attempt)?;
        match self.inner.doc.send(&mut w).await {
            Ok(Written::Current(v)) => {
                match end {
                    Some(e) => {
                        held.doc = None;
                        self.inner.end.send_replace(e);
                        self.inner.counters.bump(e);
                    }
                    None => held.doc = Some(v.clone()),
                }
                Ok(v)
            }
            Ok(_) => {
                held.doc = None;
                self.inner.end.send_replace(LeaseEnd::Lost);
                self.inner.counters.bump(LeaseEnd::Lost);
                Err(self.lost())
            }
            Err(e) => {
                if w.is_ambiguous() || e.is_outcome_unknown() || e.may_have_applied() {
                    held.unsettled = Some((w, end));
                }
                Err(e)
            }
        }
    }

    fn now_ms(&self) -> u64 {
        unix_millis(self.inner.doc.path().clock().now())
    }

    /// Renews the lease now.
    ///
    /// # Errors
    /// `Fenced` when it was taken over; storage errors (renew again).
    pub async fn renew(&self) -> Result<()> {
        let now = self.now_ms();
        self.swap("renew", None, |c| Claim {
            renewed_ms: Some(now),
            ..c.clone()
        })
        .await
        .map(|_| ())
    }

    /// Acknowledges the element: it is completed.
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over (the element is another
    /// attempt's now: discard the result); storage errors.
    pub async fn ack(&self) -> Result<()> {
        let marker = self.ack_claim().await?;
        marker.await;
        Ok(())
    }

    /// The acknowledgement's compare-and-swap; returns the completion
    /// marker's write, to be run (it may go out with the next claim).
    pub(crate) async fn ack_claim(&self) -> Result<impl std::future::Future<Output = ()> + use<>> {
        let now = self.now_ms();
        let v = self
            .swap("ack", Some(LeaseEnd::Done), |c| Claim {
                renewed_ms: Some(now),
                state: Some(ClaimState::Done),
                ..c.clone()
            })
            .await?;
        let marker = self.inner.done_marker.clone();
        Ok(async move { write_marker(&marker, &v).await })
    }

    /// Reports a failed attempt with its reason. The element is handed out
    /// again, unless its attempts are spent: then it is recorded as failed.
    /// The answer says which.
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over; storage errors.
    pub async fn fail(&self, reason: &str) -> Result<FailOutcome> {
        self.fail_with(reason, false).await
    }

    /// Reports a failed attempt that can never succeed: the element is
    /// recorded as failed at once, whatever attempts are left.
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over; storage errors.
    pub async fn fail_permanently(&self, reason: &str) -> Result<FailOutcome> {
        self.fail_with(reason, true).await
    }

    async fn fail_with(&self, reason: &str, permanent: bool) -> Result<FailOutcome> {
        let record = AttemptRecord {
            attempt: self.inner.attempt,
            worker: self.inner.worker.clone(),
            outcome: AttemptOutcome::Failed,
            reason: Some(reason.chars().take(500).collect()),
        };
        let max = self.inner.terms.max_attempts;
        let now = self.now_ms();
        let v = self
            .swap("fail", Some(LeaseEnd::Failed), |c| {
                let mut next = c.clone();
                next.history.push(record);
                next.renewed_ms = Some(now);
                next.state = Some(if permanent || next.failures() >= max {
                    ClaimState::Failed
                } else {
                    ClaimState::Released
                });
                next
            })
            .await?;
        if v.body.state == Some(ClaimState::Failed) {
            write_marker(&self.inner.failed_marker, &v).await;
            Ok(FailOutcome::Failed)
        } else {
            Ok(FailOutcome::Retried)
        }
    }

    /// Gives the element back at once, without counting a failure (a worker
    /// that is stopping).
    ///
    /// # Errors
    /// `Fenced` when the lease was taken over; storage errors.
    pub async fn release(&self) -> Result<()> {
        let record = AttemptRecord {
            attempt: self.inner.attempt,
            worker: self.inner.worker.clone(),
            outcome: AttemptOutcome::Released,
            reason: None,
        };
        let now = self.now_ms();
        self.swap("release", Some(LeaseEnd::Released), |c| {
            let mut next = c.clone();
            next.history.push(record);
            next.renewed_ms = Some(now);
            next.state = Some(ClaimState::Released);
            next
        })
        .await
        .map(|_| ())
    }

    /// Starts the heartbeat on the current tokio runtime; it stops when the
    /// lease ends or every handle is dropped.
    pub(crate) fn keep_renewed(&self, min_write: Duration) {
        let every = heartbeat_interval(self.inner.terms.lease(), min_write);
        let weak = Arc::downgrade(&self.inner);
        let clock = self.inner.doc.path().clock().clone();
        let mut end = self.watch_lost();
        let stop = async move {
            let _ = end.wait_for(|e| *e != LeaseEnd::Held).await;
        };
        cloudmux_core::clock::heartbeat(clock, every, stop, move || {
            let l = weak.upgrade().map(|inner| Lease { inner });
            async move {
                let Some(l) = l else { return Beat::Stop };
                match l.renew().await {
                    Ok(()) => Beat::Again,
                    Err(e) if e.kind() == ErrorKind::Fenced => {
                        tracing::warn!(
                            index = l.index(),
                            attempt = l.attempt(),
                            "lease lost: the element was taken over"
                        );
                        Beat::Stop
                    }
                    Err(e) if e.kind() == ErrorKind::InvalidInput => Beat::Stop,
                    Err(e) => {
                        tracing::warn!(index = l.index(), error = %e, "lease renewal failed; retrying");
                        Beat::Again
                    }
                }
            }
        });
    }
}

/// Creates a completion or failure marker; they are derived state (the
/// claim says it first), so losing the create race is fine and a failure to
/// write one is repaired by whoever next reads the claim.
pub(crate) async fn write_marker(marker: &UPath, claim: &Versioned<Claim>) {
    let body = serde_json::json!({
        "attempt": claim.stamp.epoch,
        "worker": claim.body.worker,
        "state": claim.body.state,
        "history": claim.body.history,
    });
    match marker.write_json(&body).await {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => tracing::debug!(marker = %marker, error = %e, "could not write a marker"),
    }
}

/// What an observer makes of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Completed or failed for good.
    Finished(ClaimState),
    /// Held under a live lease.
    Held,
    /// Take it, recording this about the previous attempt.
    Take(Option<AttemptRecord>),
    /// Record it as failed: its attempts are spent.
    Fail(AttemptRecord),
}

/// Judges a claim, `expired` saying whether its lease has run out for this
/// observer.
pub(crate) fn judge(c: &Versioned<Claim>, expired: bool, terms: &LeaseTerms) -> Verdict {
    match c.body.state {
        Some(ClaimState::Done) => Verdict::Finished(ClaimState::Done),
        Some(ClaimState::Failed) => Verdict::Finished(ClaimState::Failed),
        Some(ClaimState::Released) => {
            if c.body.failures() >= terms.max_attempts {
                // Spent, yet released (an older writer): fail it for good.
                Verdict::Fail(AttemptRecord {
                    attempt: c.stamp.epoch,
                    worker: c.body.worker.clone(),
                    outcome: AttemptOutcome::Released,
                    reason: Some("attempts spent".into()),
                })
            } else {
                Verdict::Take(None)
            }
        }
        Some(ClaimState::Running) | None => {
            if !expired {
                return Verdict::Held;
            }
            let record = AttemptRecord {
                attempt: c.stamp.epoch,
                worker: c.body.worker.clone(),
                outcome: AttemptOutcome::Expired,
                reason: Some(format!(
                    "lease of {} ms not renewed",
                    c.body.lease_ms.unwrap_or(terms.lease_ms)
                )),
            };
            if c.body.failures() + 1 >= terms.max_attempts {
                Verdict::Fail(record)
            } else {
                Verdict::Take(Some(record))
            }
        }
    }
}

/// What an observer has seen of claims: judges expiry by a version unchanged
/// for a whole lease on its monotonic clock, or by the storage's timestamp.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    seen: BTreeMap<usize, (Version, Duration)>,
}

impl Observer {
    pub(crate) fn expired(
        &mut self,
        i: usize,
        c: &Versioned<Claim>,
        lease: Duration,
        clock: &dyn Clock,
    ) -> bool {
        let lease = c.body.lease_ms.map(Duration::from_millis).unwrap_or(lease);
        let now = clock.elapsed();
        let watched = match self.seen.get(&i) {
            Some((v, since)) if *v == c.version => now.saturating_sub(*since) >= lease,
            _ => {
                self.seen.insert(i, (c.version.clone(), now));
                false
            }
        };
        let by_storage = clock
            .now()
            .duration_since(c.modified)
            .is_ok_and(|age| age > lease * 2);
        watched || by_storage
    }

    pub(crate) fn forget(&mut self, i: usize) {
        self.seen.remove(&i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux_core::cond::Stamp;

    fn claim(state: Option<ClaimState>, failures: usize) -> Versioned<Claim> {
        Versioned {
            body: Claim {
                v: 2,
                worker: "w".into(),
                t_ms: 0,
                lease_ms: Some(1000),
                renewed_ms: Some(0),
                state,
                history: (0..failures)
                    .map(|a| AttemptRecord {
                        attempt: a as u64 + 1,
                        worker: "x".into(),
                        outcome: AttemptOutcome::Expired,
                        reason: None,
                    })
                    .collect(),
                earlier: Vec::new(),
            },
            stamp: Stamp {
                nonce: "n".into(),
                prev: None,
                epoch: failures as u64 + 1,
            },
            version: Version::new("1"),
            modified: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn verdicts() {
        let t = LeaseTerms {
            lease_ms: 1000,
            max_attempts: 3,
            max_failed: None,
        };
        let running = Some(ClaimState::Running);
        assert_eq!(judge(&claim(running, 0), false, &t), Verdict::Held);
        assert!(matches!(
            judge(&claim(running, 0), true, &t),
            Verdict::Take(Some(_))
        ));
        assert!(matches!(
            judge(&claim(running, 1), true, &t),
            Verdict::Take(Some(_))
        ));
        // The third attempt expiring spends the budget.
        assert!(matches!(
            judge(&claim(running, 2), true, &t),
            Verdict::Fail(_)
        ));
        assert_eq!(
            judge(&claim(Some(ClaimState::Released), 1), false, &t),
            Verdict::Take(None)
        );
        assert_eq!(
            judge(&claim(Some(ClaimState::Done), 0), true, &t),
            Verdict::Finished(ClaimState::Done)
        );
        assert_eq!(
            judge(&claim(Some(ClaimState::Failed), 3), true, &t),
            Verdict::Finished(ClaimState::Failed)
        );
    }

    #[test]
    fn heartbeats_respect_the_write_interval() {
        let s = Duration::from_secs;
        assert_eq!(heartbeat_interval(s(60), Duration::ZERO), s(20));
        assert_eq!(heartbeat_interval(s(2), s(1)), s(1));
        assert_eq!(watch_interval(s(60)), s(2));
        assert_eq!(watch_interval(s(1)), Duration::from_millis(200));
    }
}
