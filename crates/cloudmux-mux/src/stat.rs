//! Session statistics for the coordinator.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use cloudmux_core::clock::{rfc3339_micros, unix_millis};
use cloudmux_core::cond::CondDoc;
use cloudmux_core::{Error, ErrorKind, Result, UPath};

use std::time::Duration;

use crate::layout::{SessionLayout, claim_index, claim_width};
use crate::session::{Claim, ClaimState, LeaseTerms};
use crate::worker::WorkerProgress;

/// One worker's line in a [`SessionStat`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerStat {
    /// The worker id.
    pub worker: String,
    /// Elements it obtained.
    pub claimed: u64,
    /// True once it saw the session exhausted (leased: done).
    pub finished: bool,
    /// Leased sessions: elements it acknowledged.
    #[serde(default)]
    pub completed: u64,
    /// Leased sessions: failed attempts it reported.
    #[serde(default)]
    pub failed: u64,
}

/// An element recorded as failed, with every attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailedElement {
    /// Its index.
    pub index: usize,
    /// Every attempt: who held it, how it ended, why.
    pub attempts: Vec<crate::session::AttemptRecord>,
}

/// The leased part of a [`SessionStat`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LeasedStat {
    /// The lease, in milliseconds.
    pub lease_ms: u64,
    /// The attempt budget.
    pub max_attempts: u32,
    /// Elements completed (acknowledged).
    pub completed: usize,
    /// Elements recorded as failed.
    pub failed: usize,
    /// Claimed elements held under a live lease.
    pub in_progress: usize,
    /// Claimed elements whose lease ran out (by this machine's clock
    /// against the storage's timestamp), waiting to be taken over.
    pub expired: usize,
    /// Elements given back, waiting to be taken again.
    pub released: usize,
    /// Hand-outs so far: first claims plus take-overs.
    pub attempts: u64,
    /// The failed elements with their attempts (up to 1,000).
    pub failed_elements: Vec<FailedElement>,
    /// Completed elements per second, from the first claim until the last
    /// worker summary.
    pub rate_per_s: Option<f64>,
    /// True once every element is completed or failed.
    pub done: bool,
    /// Why workers stopped handing out elements early (`max_failed`).
    pub stopped: Option<String>,
}

/// Progress of one session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionStat {
    /// The session id.
    pub session: String,
    /// Elements in the dataset.
    pub total: usize,
    /// Elements handed out so far (exact: one claim object each).
    pub claimed: usize,
    /// True when every element was handed out.
    pub done: bool,
    /// Per-worker counts, by worker id.
    pub workers: Vec<WorkerStat>,
    /// True when `workers` was computed from every claim (exact) rather than
    /// from the workers' summaries (refreshed every few seconds).
    pub exact: bool,
    /// Time of the first claim, RFC 3339, if any.
    pub first_claim: Option<String>,
    /// Time of the last claim, RFC 3339, if any.
    pub last_claim: Option<String>,
    /// Seconds between the first and the last claim.
    pub elapsed_s: Option<f64>,
    /// Leased sessions: completion, failures, leases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased: Option<LeasedStat>,
    /// Temporary files of killed writers older than an hour below the
    /// session (the local backend only).
    #[serde(default)]
    pub stale_temporaries: u64,
}

/// Reads the session document's presence, mapping absence to `NotFound`.
async fn require_session(op: &'static str, session: &SessionLayout) -> Result<()> {
    if !session.doc()?.is_file().await? {
        return Err(Error::new(ErrorKind::NotFound, op)
            .with_path(session.dir().to_string())
            .with_message("no such session"));
    }
    Ok(())
}

/// Streams the claims of a session: (index, metadata) of every key that is a
/// claim name; stray names (`+5`, nested files, temporaries) are skipped.
fn claims_of<'a>(
    claims: &'a UPath,
    total: usize,
) -> impl futures::Stream<Item = Result<(usize, cloudmux_core::ObjectMeta)>> + 'a {
    let width = claim_width(total);
    claims.riterdir_meta().try_filter_map(move |m| async move {
        Ok(claim_index(&m.key, width, total)
            .filter(|&i| {
                claims.relative(&m.key) == Some(crate::layout::claim_name(i, width).as_str())
            })
            .map(|i| (i, m)))
    })
}

pub(crate) async fn stat(
    session: &SessionLayout,
    total: usize,
    exact: bool,
    terms: Option<&LeaseTerms>,
) -> Result<SessionStat> {
    require_session("stat", session).await?;
    let claims = session.claims()?;
    let mut claimed = 0usize;
    let mut first: Option<SystemTime> = None;
    let mut last: Option<SystemTime> = None;
    let mut keys = Vec::new();
    {
        let mut list = std::pin::pin!(claims_of(&claims, total));
        while let Some(r) = list.next().await {
            let (_, m) = r?;
            claimed += 1;
            first = Some(first.map_or(m.last_modified, |f| f.min(m.last_modified)));
            last = Some(last.map_or(m.last_modified, |l| l.max(m.last_modified)));
            if exact {
                keys.push(m.key);
            }
        }
    }
    let mut per: BTreeMap<String, WorkerStat> = BTreeMap::new();
    if exact {
        let store = claims.clone();
        let bodies: Vec<(String, Claim)> = futures::stream::iter(keys)
            .map(|k| {
                let p = store.with_key(&k);
                async move {
                    let p = p?;
                    let c = CondDoc::<Claim>::new(p.clone())
                        .read()
                        .await
                        .map_err(|e| e.set_path(p.to_string()))?;
                    Ok::<_, Error>((p.to_string(), c))
                }
            })
            .buffer_unordered(32)
            .try_filter_map(|(k, c)| async move { Ok(c.map(|c| (k, c.body))) })
            .try_collect()
            .await?;
        for (_, c) in bodies {
            let e = per.entry(c.worker.clone()).or_insert_with(|| WorkerStat {
                worker: c.worker,
                claimed: 0,
                finished: false,
                completed: 0,
                failed: 0,
            });
            e.claimed = e.claimed.saturating_add(1);
        }
    }
    // Summaries: per-worker counts (when not exact) and finished flags.
    let summaries = session.workers()?;
    let mut reclaimed = 0u64;
    let mut stopped = None;
    let mut last_summary: Option<u64> = None;
    let mut list = summaries.riterdir();
    while let Some(p) = list.next().await {
        let p = p?;
        let Ok(w) = p.read_json::<WorkerProgress>().await else {
            continue;
        };
        let e = per.entry(w.worker.clone()).or_insert_with(|| WorkerStat {
            worker: w.worker.clone(),
            claimed: 0,
            finished: false,
            completed: 0,
            failed: 0,
        });
        if !exact {
            e.claimed = e.claimed.saturating_add(w.claimed);
        }
        e.finished |= w.finished;
        e.completed = e.completed.saturating_add(w.completed);
        e.failed = e.failed.saturating_add(w.failed);
        reclaimed = reclaimed.saturating_add(w.reclaimed);
        if w.stopped.is_some() {
            stopped = w.stopped.clone();
        }
        last_summary = last_summary.max(w.last_ms);
    }
    let leased = match terms {
        None => None,
        Some(t) => Some(
            leased_stat(
                session,
                total,
                t,
                claimed,
                reclaimed,
                stopped,
                first,
                last_summary,
            )
            .await?,
        ),
    };
    let stale_temporaries = session
        .dir()
        .io()
        .leftovers(
            &format!("{}/", session.dir().key()),
            Duration::from_secs(3600),
            false,
        )
        .await
        .map(|l| l.files)
        .unwrap_or(0);
    let to_s = |t: SystemTime| rfc3339_micros(t);
    Ok(SessionStat {
        session: session.id().to_string(),
        total,
        claimed,
        done: claimed == total,
        workers: per.into_values().collect(),
        exact,
        first_claim: first.map(to_s),
        last_claim: last.map(to_s),
        elapsed_s: match (first, last) {
            (Some(f), Some(l)) => {
                Some(unix_millis(l).saturating_sub(unix_millis(f)) as f64 / 1000.0)
            }
            _ => None,
        },
        leased,
        stale_temporaries,
    })
}

/// Counts the markers below `dir` (and collects their indices).
async fn markers(dir: &UPath, total: usize) -> Result<Vec<(usize, String)>> {
    let width = claim_width(total);
    let mut out = Vec::new();
    let mut list = dir.riterdir_meta();
    while let Some(m) = list.next().await {
        let m = m?;
        if let Some(i) = claim_index(&m.key, width, total) {
            out.push((i, m.key));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn leased_stat(
    session: &SessionLayout,
    total: usize,
    terms: &LeaseTerms,
    claimed: usize,
    reclaimed: u64,
    stopped: Option<String>,
    first: Option<SystemTime>,
    last_summary_ms: Option<u64>,
) -> Result<LeasedStat> {
    let done = markers(&session.done()?, total).await?;
    let failed = markers(&session.failed()?, total).await?;
    let mut finished = vec![false; total];
    for (i, _) in done.iter().chain(failed.iter()) {
        finished[*i] = true;
    }
    // The unfinished claims: about one per running worker during a run.
    let claims = session.claims()?;
    let width = claim_width(total);
    let unfinished: Vec<usize> = {
        let mut v = Vec::new();
        let mut list = std::pin::pin!(claims_of(&claims, total));
        while let Some(r) = list.next().await {
            let (i, _) = r?;
            if !finished[i] {
                v.push(i);
            }
        }
        v
    };
    let now = claims.clock().now();
    let docs: Vec<Option<cloudmux_core::cond::Versioned<Claim>>> =
        futures::stream::iter(unfinished)
            .map(|i| {
                let p = claims.join(&crate::layout::claim_name(i, width));
                async move { CondDoc::<Claim>::new(p?).read().await }
            })
            .buffer_unordered(32)
            .try_collect()
            .await?;
    let mut st = LeasedStat {
        lease_ms: terms.lease_ms,
        max_attempts: terms.max_attempts,
        completed: done.len(),
        failed: failed.len(),
        attempts: (claimed as u64).saturating_add(reclaimed),
        stopped,
        ..LeasedStat::default()
    };
    for c in docs.into_iter().flatten() {
        match c.body.state {
            Some(ClaimState::Released) => st.released += 1,
            Some(ClaimState::Done) => st.completed += 1,
            Some(ClaimState::Failed) => st.failed += 1,
            _ => {
                let lease = Duration::from_millis(c.body.lease_ms.unwrap_or(terms.lease_ms));
                if now.duration_since(c.modified).is_ok_and(|age| age > lease) {
                    st.expired += 1;
                } else {
                    st.in_progress += 1;
                }
            }
        }
    }
    for (i, key) in failed.iter().take(1000) {
        let p = claims.with_key(key)?;
        let attempts = match p.read_json::<serde_json::Value>().await {
            Ok(v) => serde_json::from_value(v["history"].clone()).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        st.failed_elements.push(FailedElement {
            index: *i,
            attempts,
        });
    }
    st.done = st.completed + st.failed >= total;
    if let (Some(f), Some(l)) = (first, last_summary_ms) {
        let secs = l.saturating_sub(unix_millis(f)) as f64 / 1000.0;
        if secs > 0.0 {
            st.rate_per_s = Some(st.completed as f64 / secs);
        }
    }
    Ok(st)
}

pub(crate) async fn done(session: &SessionLayout, total: usize, leased: bool) -> Result<bool> {
    if leased {
        if session.completed()?.is_file().await? {
            return Ok(true);
        }
        require_session("done", session).await?;
        let mut finished = vec![false; total];
        for (i, _) in markers(&session.done()?, total)
            .await?
            .into_iter()
            .chain(markers(&session.failed()?, total).await?)
        {
            finished[i] = true;
        }
        let missing: Vec<usize> = (0..total).filter(|&i| !finished[i]).collect();
        if missing.len() > 64 {
            return Ok(false);
        }
        // A few without markers: a marker may lag its claim (written after
        // the acknowledgement); the claims say.
        let claims = session.claims()?;
        let width = claim_width(total);
        for i in missing {
            let c = CondDoc::<Claim>::new(claims.join(&crate::layout::claim_name(i, width))?)
                .read()
                .await?;
            let settled = c.is_some_and(|c| {
                matches!(
                    c.body.state,
                    Some(ClaimState::Done) | Some(ClaimState::Failed)
                )
            });
            if !settled {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if session.exhausted()?.is_file().await? {
        return Ok(true);
    }
    require_session("done", session).await?;
    let claims = session.claims()?;
    let mut n = 0usize;
    let mut list = std::pin::pin!(claims_of(&claims, total));
    while let Some(r) = list.next().await {
        r?;
        n += 1;
    }
    Ok(n == total)
}
