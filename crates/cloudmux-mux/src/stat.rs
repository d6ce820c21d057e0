//! Session statistics for the coordinator.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use cloudmux_core::clock::{rfc3339_micros, unix_millis};
use cloudmux_core::cond::CondDoc;
use cloudmux_core::{Error, ErrorKind, Result, UPath};

use crate::layout::{SessionLayout, claim_index, claim_width};
use crate::session::Claim;
use crate::worker::WorkerProgress;

/// One worker's line in a [`SessionStat`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerStat {
    /// The worker id.
    pub worker: String,
    /// Elements it obtained.
    pub claimed: u64,
    /// True once it saw the session exhausted.
    pub finished: bool,
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
            .filter(|_| claims.relative(&m.key).is_some_and(|r| !r.contains('/')))
            .map(|i| (i, m)))
    })
}

pub(crate) async fn stat(
    session: &SessionLayout,
    total: usize,
    exact: bool,
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
            });
            e.claimed = e.claimed.saturating_add(1);
        }
    }
    // Summaries: per-worker counts (when not exact) and finished flags.
    let summaries = session.workers()?;
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
        });
        if !exact {
            e.claimed = e.claimed.saturating_add(w.claimed);
        }
        e.finished |= w.finished;
    }
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
    })
}

pub(crate) async fn done(session: &SessionLayout, total: usize) -> Result<bool> {
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
