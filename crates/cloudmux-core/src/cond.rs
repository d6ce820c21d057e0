//! Conditional documents: the one primitive under every protocol.
//!
//! The lock, the Multiplexer's claims and session documents, and leases are
//! all small JSON documents written by create-if-absent or compare-and-swap.
//! This module is the only place that writes them and the only place that
//! decides what an ambiguous write means.
//!
//! # Specification
//!
//! **Document.** A conditional document is a JSON object holding the caller's
//! fields and three of its own ([`Stamp`]):
//!
//! ```json
//! {"nonce":"9f2c…","prev":"41aa…","epoch":3, "state":"held", …}
//! ```
//!
//! - `nonce`: 128 random bits, fresh for every logical write. No two writes
//!   ever carry the same body, so version tokens never repeat (S3's ETag is
//!   the MD5 of the body), and a write can be recognised by its nonce alone.
//! - `prev`: the nonce of the document this one replaced (absent for a
//!   create). It records one step of the history.
//! - `epoch`: a fencing token chosen by the protocol (the lock's acquisition
//!   count, a claim's attempt number). [`CondDoc::modify`] refuses to write
//!   over a document whose epoch is higher than the caller's.
//!
//! **Writing.** A write is prepared once ([`CondDoc::create_write`],
//! [`CondDoc::update_write`]): the body and its nonce are fixed then, and
//! every attempt to send it, including any later call of [`CondDoc::send`]
//! with the same [`Write`], sends exactly those bytes, and the [`Write`]
//! remembers whether any attempt was ambiguous. A request that timed
//! out may be applied by the server long after the client gave up; because
//! the bytes are the same, such a late apply is still recognised as ours.
//!
//! **Settling.** An attempt whose outcome is unknown (a lost response, a
//! timeout, or a retry that met `AlreadyExists`/`Precondition` after such an
//! attempt) is settled by reading the document back, never by comparing bytes
//! or by guessing from silence. With `N` our nonce, `P` the nonce we meant to
//! replace (none for a create) and `C` what the read finds:
//!
//! | read finds | outcome |
//! |---|---|
//! | `C.nonce == N` | [`Written::Current`]: ours, and still current |
//! | `C.prev == N` | [`Written::Superseded`]: ours was applied, then replaced |
//! | nothing, for a create | not applied (yet): the same bytes are sent again |
//! | `C.nonce == P`, for an update | not applied (yet): the same bytes are sent again |
//! | nothing, for an update | [`Written::Lost`] with no current document: whatever we wrote is gone |
//! | `C.prev == P` | [`Written::Lost`]: another write replaced the same document first (only one compare-and-swap from a version succeeds, and only one create of a key) |
//! | anything else | [`Written::Undetermined`]: the history moved on by more than one step; `C` is what is current |
//!
//! A read that itself fails leaves the outcome unknown: [`CondDoc::send`]
//! returns [`OutcomeUnknown`](crate::ErrorKind::OutcomeUnknown) and the same
//! [`Write`] can be sent again later to settle it.
//!
//! **Assumption.** Protocol documents are never deleted while in use (only
//! `destroy` removes them). A document deleted and created again resets its
//! history and epochs.
//!
//! ```
//! # tokio_test::block_on(async {
//! use serde::{Deserialize, Serialize};
//! use cloudmux_core::UPath;
//! use cloudmux_core::cond::{CondDoc, Written};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
//! struct Owner { who: String }
//!
//! let doc = CondDoc::<Owner>::new(UPath::parse("mem://guide-cond/owner.json")?);
//! let mut w = doc.create_write(&Owner { who: "a".into() }, 1)?;
//! let Written::Current(mine) = doc.send(&mut w).await? else { panic!("first create wins") };
//! // A second creator loses, and can read who won.
//! let mut w2 = doc.create_write(&Owner { who: "b".into() }, 1)?;
//! assert!(matches!(doc.send(&mut w2).await?, Written::Lost { .. }));
//! assert_eq!(doc.read().await?.unwrap().body.who, "a");
//! // Compare-and-swap from what we read; a higher epoch fences older writers.
//! let mut next = doc.update_write(&mine, &Owner { who: "c".into() }, 2)?;
//! assert!(matches!(doc.send(&mut next).await?, Written::Current(_)));
//! let e = doc.modify(Some(1), |_| Ok(Some(Owner { who: "stale".into() }))).await.unwrap_err();
//! assert_eq!(e.kind(), cloudmux_core::ErrorKind::Fenced);
//! # Ok::<_, cloudmux_core::Error>(()) }).unwrap();
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::path::UPath;
use crate::store::{PutMode, Version};
use crate::util::nonce;

/// The fields every conditional document carries (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Fresh for every logical write.
    pub nonce: String,
    /// The nonce of the document this one replaced; `None` for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// The fencing token of the writer.
    #[serde(default)]
    pub epoch: u64,
}

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    #[serde(flatten)]
    stamp: &'a Stamp,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(flatten)]
    stamp: Stamp,
    #[serde(flatten)]
    body: T,
}

/// A document as read: its body, stamp, version and storage timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The caller's fields.
    pub body: T,
    /// The document's own fields.
    pub stamp: Stamp,
    /// The version token, for a compare-and-swap.
    pub version: Version,
    /// When the storage last wrote it, by the storage's clock (the
    /// local backend: this machine's clock).
    pub modified: SystemTime,
}

/// Encodes a document.
///
/// # Errors
/// `InvalidInput` when the body does not encode as a JSON object.
pub fn encode<T: Serialize>(stamp: &Stamp, body: &T) -> Result<Bytes> {
    serde_json::to_vec(&EnvelopeRef { stamp, body })
        .map(Bytes::from)
        .map_err(|e| Error::invalid("encode", format!("document does not encode: {e}")))
}

/// Decodes a document's body and stamp.
///
/// # Errors
/// `Corrupt` naming what is wrong.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(Stamp, T)> {
    let e: Envelope<T> = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt("decode", format!("unreadable document: {e}")))?;
    Ok((e.stamp, e.body))
}

/// A prepared write: its bytes and nonce are fixed, so sending it again
/// (after an unknown outcome) sends the same body.
#[derive(Debug, Clone)]
pub struct Write<T> {
    body: T,
    stamp: Stamp,
    bytes: Bytes,
    mode: PutMode,
    /// Some attempt so far may have been applied: a later conflict must be
    /// settled by reading back, not taken as a loss.
    ambiguous: bool,
}

impl<T> Write<T> {
    /// The body being written.
    pub fn body(&self) -> &T {
        &self.body
    }
    /// The stamp being written (its nonce identifies this write).
    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }
    /// True for a create-if-absent, false for a compare-and-swap.
    pub fn is_create(&self) -> bool {
        self.mode == PutMode::Create
    }
    /// True once an attempt to send it had an unknown outcome.
    pub fn is_ambiguous(&self) -> bool {
        self.ambiguous
    }
}

/// The settled outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Written<T> {
    /// Our write is the current document.
    Current(Versioned<T>),
    /// Our write was applied and has since been replaced by `current`.
    Superseded {
        /// The document now.
        current: Versioned<T>,
    },
    /// Another write won. `current` is the document now when the
    /// settlement read it (`None` after a definite loss, which costs no
    /// read, and when the document is gone).
    Lost {
        /// The document now, when known.
        current: Option<Versioned<T>>,
    },
    /// Whether our write was ever applied cannot be told (the history moved
    /// on by more than one step); `current` is the document now, and it is
    /// not ours.
    Undetermined {
        /// The document now.
        current: Versioned<T>,
    },
}

impl<T> Written<T> {
    /// The document as it is now, whoever wrote it.
    pub fn current(&self) -> Option<&Versioned<T>> {
        match self {
            Written::Current(c) => Some(c),
            Written::Superseded { current } | Written::Undetermined { current } => Some(current),
            Written::Lost { current } => current.as_ref(),
        }
    }

    /// True when our write is the current document.
    pub fn is_current(&self) -> bool {
        matches!(self, Written::Current(_))
    }
}

/// A conditional document at a path.
pub struct CondDoc<T> {
    path: UPath,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for CondDoc<T> {
    fn clone(&self) -> Self {
        CondDoc {
            path: self.path.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for CondDoc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CondDoc({})", self.path)
    }
}

/// How many times [`CondDoc::send`] re-sends a write whose read-back showed
/// it not applied yet before it gives the question back to its caller.
const CREATE_RESENDS: usize = 3;

impl<T: Serialize + DeserializeOwned + Clone> CondDoc<T> {
    /// The document at `path`.
    pub fn new(path: UPath) -> Self {
        CondDoc {
            path,
            _t: PhantomData,
        }
    }

    /// Its path.
    pub fn path(&self) -> &UPath {
        &self.path
    }

    /// Reads the document.
    ///
    /// # Errors
    /// `Corrupt` for an unreadable document; storage errors. A missing
    /// document is `Ok(None)`.
    pub async fn read(&self) -> Result<Option<Versioned<T>>> {
        match self.path.get().await {
            Ok(g) => {
                let (stamp, body) =
                    decode::<T>(&g.bytes).map_err(|e| e.set_path(self.path.url()))?;
                Ok(Some(Versioned {
                    body,
                    stamp,
                    version: g.version(),
                    modified: g.meta.last_modified,
                }))
            }
            Err(e) if e.is_not_found() && !e.is_bucket_missing() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Prepares a create-if-absent of `body` with fencing token `epoch`.
    ///
    /// # Errors
    /// `InvalidInput` when the body does not encode.
    pub fn create_write(&self, body: &T, epoch: u64) -> Result<Write<T>> {
        self.prepare(body, epoch, None, PutMode::Create)
    }

    /// Prepares a compare-and-swap of `base` (as read) to `body`.
    ///
    /// # Errors
    /// `InvalidInput` when the body does not encode.
    pub fn update_write(&self, base: &Versioned<T>, body: &T, epoch: u64) -> Result<Write<T>> {
        self.prepare(
            body,
            epoch,
            Some(base.stamp.nonce.clone()),
            PutMode::Update(base.version.clone()),
        )
    }

    fn prepare(
        &self,
        body: &T,
        epoch: u64,
        prev: Option<String>,
        mode: PutMode,
    ) -> Result<Write<T>> {
        let stamp = Stamp {
            nonce: nonce(),
            prev,
            epoch,
        };
        let bytes = encode(&stamp, body).map_err(|e| e.set_path(self.path.url()))?;
        Ok(Write {
            body: body.clone(),
            stamp,
            bytes,
            mode,
            ambiguous: false,
        })
    }

    /// Sends a prepared write and settles its outcome (see the [module
    /// docs](self)). Safe to call again with the same `w` after an error:
    /// it re-sends the same bytes and settles by the same nonce.
    ///
    /// # Errors
    /// `OutcomeUnknown` when the outcome could not be settled (the read-back
    /// failed, or a create kept finding nothing); `Transient` when nothing
    /// can have been applied; other storage errors.
    pub async fn send(&self, w: &mut Write<T>) -> Result<Written<T>> {
        let mut resends = 0;
        loop {
            let e = match self.path.put(w.bytes.clone(), w.mode.clone()).await {
                Ok(version) => {
                    return Ok(Written::Current(Versioned {
                        body: w.body.clone(),
                        stamp: w.stamp.clone(),
                        version,
                        modified: self.path.clock().now(),
                    }));
                }
                // A definite answer, when no attempt of this write before
                // was ambiguous: nothing of ours was applied. (The winner's
                // document is not read: callers that need it read it.)
                Err(e) if (e.is_already_exists() || e.is_precondition()) && !w.ambiguous => {
                    return Ok(Written::Lost { current: None });
                }
                Err(e) if e.is_already_exists() || e.is_precondition() || e.may_have_applied() => {
                    w.ambiguous = true;
                    e
                }
                // An earlier attempt of this write may still be applied:
                // whatever failed now, the outcome stays open.
                Err(e) if w.ambiguous => {
                    return Err(Error::new(ErrorKind::OutcomeUnknown, w.mode.op().name())
                        .with_path(self.path.url())
                        .with_message(format!(
                            "an earlier attempt may still be applied, and sending it again failed: {e}"
                        )));
                }
                Err(e) => return Err(e),
            };
            let cur = match self.read().await {
                Ok(c) => c,
                Err(read) => {
                    return Err(Error::new(ErrorKind::OutcomeUnknown, w.mode.op().name())
                        .with_path(self.path.url())
                        .with_message(format!(
                            "the write may have been applied ({}), and reading it back failed: {read}",
                            e.message().unwrap_or("no answer")
                        )));
                }
            };
            match settle(w, cur) {
                Some(outcome) => return Ok(outcome),
                None if resends < CREATE_RESENDS => {
                    // Not applied (yet): a write that timed out may still be
                    // applied late, so send the same bytes again, never a
                    // new body.
                    resends += 1;
                }
                None => {
                    return Err(Error::new(ErrorKind::OutcomeUnknown, w.mode.op().name())
                        .with_path(self.path.url())
                        .with_message(
                            "the write may still be applied later; send the same write again to settle it",
                        ));
                }
            }
        }
    }

    /// Read-modify-write with fencing: reads the document, refuses with
    /// [`Fenced`](ErrorKind::Fenced) when its epoch is higher than `token`,
    /// calls `f` with the current body (`None` when absent), and writes what
    /// `f` returns (nothing when it returns `None`) with epoch `token` (or the
    /// current epoch when `token` is `None`). Retries when another writer
    /// got in between. Returns the document as written, or as read when `f`
    /// wrote nothing.
    ///
    /// # Errors
    /// `Fenced`; whatever `f` returns; `OutcomeUnknown` and storage errors
    /// from [`send`](Self::send).
    pub async fn modify<F>(&self, token: Option<u64>, mut f: F) -> Result<Option<Versioned<T>>>
    where
        F: FnMut(Option<&T>) -> Result<Option<T>>,
    {
        loop {
            let cur = self.read().await?;
            if let (Some(t), Some(c)) = (token, &cur)
                && c.stamp.epoch > t
            {
                return Err(Error::new(ErrorKind::Fenced, "modify")
                    .with_path(self.path.url())
                    .with_message(format!(
                        "fencing token {t} is older than the document's {}",
                        c.stamp.epoch
                    )));
            }
            let Some(next) = f(cur.as_ref().map(|c| &c.body))? else {
                return Ok(cur);
            };
            let epoch = token.unwrap_or_else(|| cur.as_ref().map_or(0, |c| c.stamp.epoch));
            let mut w = match &cur {
                None => self.create_write(&next, epoch)?,
                Some(c) => self.update_write(c, &next, epoch)?,
            };
            match self.send(&mut w).await? {
                Written::Current(v) => return Ok(Some(v)),
                // Ours was applied; somebody has written since.
                Written::Superseded { current } => return Ok(Some(current)),
                // Someone got in between: read again and decide again.
                Written::Lost { .. } => continue,
                Written::Undetermined { .. } => {
                    return Err(Error::new(ErrorKind::OutcomeUnknown, "modify")
                        .with_path(self.path.url())
                        .with_message(
                            "the write may have been applied; the document has changed twice since",
                        ));
                }
            }
        }
    }
}

/// Decides an ambiguous write from what the read-back found; `None` when the
/// write is not applied yet (a create found nothing, an update found its base
/// unchanged): send the same bytes again.
fn settle<T>(w: &Write<T>, cur: Option<Versioned<T>>) -> Option<Written<T>> {
    let Some(c) = cur else {
        return if w.is_create() {
            None
        } else {
            Some(Written::Lost { current: None })
        };
    };
    if w.stamp.prev.as_deref() == Some(c.stamp.nonce.as_str()) {
        return None;
    }
    Some(if c.stamp.nonce == w.stamp.nonce {
        Written::Current(c)
    } else if c.stamp.prev.as_deref() == Some(w.stamp.nonce.as_str()) {
        Written::Superseded { current: c }
    } else if c.stamp.prev == w.stamp.prev {
        Written::Lost { current: Some(c) }
    } else {
        Written::Undetermined { current: c }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{FaultConfig, Faulty};
    use crate::memory::InMemory;
    use crate::retry::RetryPolicy;
    use std::sync::Arc;

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct Body {
        n: u64,
    }

    fn doc_on<B: Serialize + DeserializeOwned + Clone>(store: Arc<dyn crate::Store>) -> CondDoc<B> {
        let p = UPath::new(store, "d.json")
            .unwrap()
            .with_retry(RetryPolicy::default().no_delay());
        CondDoc::new(p)
    }

    #[tokio::test]
    async fn two_writers_of_identical_bodies_with_lost_responses_have_one_winner() {
        // Every write is applied and its answer lost: both writers retry and
        // meet an existing object. Comparing bytes would crown both.
        for seed in 0..10 {
            let mem = InMemory::new();
            let f = Faulty::new(mem.clone(), FaultConfig::faults(0.0, 1.0, seed));
            let d = doc_on(f);
            let mut a = d.create_write(&Body { n: 1 }, 1).unwrap();
            let mut b = d.create_write(&Body { n: 1 }, 1).unwrap();
            let (ra, rb) = futures::join!(d.send(&mut a), d.send(&mut b));
            let wins = [ra.unwrap(), rb.unwrap()]
                .iter()
                .filter(|w| w.is_current())
                .count();
            assert_eq!(wins, 1, "seed {seed}");
        }
    }

    #[tokio::test]
    async fn a_create_applied_late_is_still_recognised() {
        // Every attempt times out and is applied only after later reads:
        // the read-back finds nothing, which does not make the key free.
        let mem = InMemory::new();
        let f = Faulty::new(mem.clone(), FaultConfig::default().with_late(1.0));
        let d = doc_on(f.clone());
        let mut w = d.create_write(&Body { n: 7 }, 1).unwrap();
        match d.send(&mut w).await {
            // Settled: one of the re-sends, or a late apply, is ours.
            Ok(Written::Current(v)) => assert_eq!(v.stamp.nonce, w.stamp().nonce),
            Err(e) => assert!(e.is_outcome_unknown(), "{e}"),
            Ok(other) => panic!("a late apply of our own create read as {other:?}"),
        }
        f.flush_late().await;
        assert!(w.is_ambiguous());
        // Sent again (the same bytes, now without faults): ours.
        let d2 = doc_on(mem.clone());
        match d2.send(&mut w).await.unwrap() {
            Written::Current(v) => assert_eq!(v.stamp.nonce, w.stamp().nonce),
            other => panic!("{other:?}"),
        }
        // A different writer that meets it loses, definitively.
        let mut other = d2.create_write(&Body { n: 8 }, 1).unwrap();
        assert!(matches!(
            d2.send(&mut other).await.unwrap(),
            Written::Lost { .. }
        ));
    }

    #[tokio::test]
    async fn settlement_table() {
        let mem = InMemory::new();
        let d = doc_on(mem.clone());
        let mut w1 = d.create_write(&Body { n: 1 }, 1).unwrap();
        let Written::Current(v1) = d.send(&mut w1).await.unwrap() else {
            panic!()
        };
        let mut w2 = d.update_write(&v1, &Body { n: 2 }, 1).unwrap();
        let rival = d.update_write(&v1, &Body { n: 3 }, 1).unwrap();
        let Written::Current(v2) = d.send(&mut w2).await.unwrap() else {
            panic!()
        };
        // The rival from the same base lost, definitively.
        assert!(matches!(
            settle(&rival, Some(v2.clone())),
            Some(Written::Lost { .. })
        ));
        // w1 was applied and then replaced by w2.
        assert!(matches!(
            settle(&w1, Some(v2.clone())),
            Some(Written::Superseded { .. })
        ));
        let mut w3 = d.update_write(&v2, &Body { n: 4 }, 1).unwrap();
        let Written::Current(v3) = d.send(&mut w3).await.unwrap() else {
            panic!()
        };
        // Two steps on: whether w1 was applied cannot be told from v3.
        assert!(matches!(
            settle(&w1, Some(v3.clone())),
            Some(Written::Undetermined { .. })
        ));
        // An update whose document is gone; a create that found nothing.
        assert!(matches!(
            settle(&w3, None),
            Some(Written::Lost { current: None })
        ));
        assert!(settle(&w1, None).is_none());
        // An update whose base is still current: not applied yet.
        assert!(settle(&w3, Some(v2.clone())).is_none());
    }

    #[tokio::test]
    async fn modify_fences_lower_tokens() {
        let d = doc_on::<Body>(InMemory::new());
        d.modify(Some(5), |_| Ok(Some(Body { n: 1 })))
            .await
            .unwrap();
        let e = d
            .modify(Some(4), |_| Ok(Some(Body { n: 2 })))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Fenced);
        let v = d
            .modify(Some(6), |b| {
                Ok(Some(Body {
                    n: b.unwrap().n + 1,
                }))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((v.body.n, v.stamp.epoch), (2, 6));
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    struct Tally {
        done: Vec<String>,
    }

    #[tokio::test]
    async fn concurrent_modify_counts_exactly_under_faults() {
        // 8 tasks add 20 tags each under transient errors, lost responses
        // and late writes. An unknown outcome is settled by the tag itself.
        let mem = InMemory::new();
        let f = Faulty::new(
            mem.clone(),
            FaultConfig::faults(0.1, 0.1, 11).with_late(0.05),
        );
        let d = doc_on::<Tally>(f.clone());
        let mut tasks = Vec::new();
        for t in 0..8 {
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    let tag = format!("{t}-{i}");
                    loop {
                        let r = d
                            .modify(None, |b| {
                                let mut b = b.cloned().unwrap_or_default();
                                if b.done.contains(&tag) {
                                    return Ok(None);
                                }
                                b.done.push(tag.clone());
                                Ok(Some(b))
                            })
                            .await;
                        match r {
                            Ok(_) => break,
                            Err(e) if e.is_retryable() || e.is_outcome_unknown() => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        f.flush_late().await;
        let v = doc_on::<Tally>(mem).read().await.unwrap().unwrap();
        let mut done = v.body.done.clone();
        done.sort();
        done.dedup();
        assert_eq!(done.len(), 160, "every tag once");
        assert_eq!(v.body.done.len(), 160, "no tag twice");
        assert!(f.stats().injected_lost > 0 && f.stats().injected_late > 0);
    }
}
