//! Session statistics for the coordinator.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::worker::WorkerProgress;
use super::{claim_width, parse_claim};
use crate::clock::{rfc3339_micros, unix_millis};
use crate::error::{Error, ErrorKind, Result};
use crate::path::UPath;

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
    /// from the workers' summaries (refreshed about once a second).
    pub exact: bool,
    /// Time of the first claim, RFC 3339, if any.
    pub first_claim: Option<String>,
    /// Time of the last claim, RFC 3339, if any.
    pub last_claim: Option<String>,
    /// Seconds between the first and the last claim.
    pub elapsed_s: Option<f64>,
}

pub(crate) async fn stat(session: &UPath, total: usize, exact: bool) -> Result<SessionStat> {
    let doc_path = session.join("session.json")?;
    if !doc_path.is_file().await? {
        return Err(Error::new(ErrorKind::NotFound, "stat")
            .with_path(session.to_string())
            .with_message("no such session"));
    }
    let claims = session.join("claims")?;
    let width = claim_width(total);
    let mut claimed = 0usize;
    let mut first: Option<SystemTime> = None;
    let mut last: Option<SystemTime> = None;
    let mut keys = Vec::new();
    let mut list = claims.riterdir_meta();
    while let Some(m) = list.next().await {
        let m = m?;
        let name = m.key.rsplit('/').next().unwrap_or("");
        if name.len() != width || name.parse::<usize>().map(|i| i >= total).unwrap_or(true) {
            continue;
        }
        claimed += 1;
        first = Some(first.map_or(m.last_modified, |f| f.min(m.last_modified)));
        last = Some(last.map_or(m.last_modified, |l| l.max(m.last_modified)));
        if exact {
            keys.push(m.key);
        }
    }
    drop(list);
    let mut per: BTreeMap<String, WorkerStat> = BTreeMap::new();
    if exact {
        let store = claims.clone();
        let bodies: Vec<_> = futures::stream::iter(keys)
            .map(|k| {
                let p = UPath::new(store.store().clone(), k)
                    .map(|p| p.with_retry(store.retry_policy()));
                async move { p?.read_bytes().await }
            })
            .buffer_unordered(32)
            .try_collect()
            .await?;
        for b in bodies {
            let c = parse_claim(&b)?;
            per.entry(c.worker.clone())
                .or_insert_with(|| WorkerStat {
                    worker: c.worker,
                    claimed: 0,
                    finished: false,
                })
                .claimed += 1;
        }
    }
    // Summaries: per-worker counts (when not exact) and finished flags.
    let summaries = session.join("workers")?;
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
            e.claimed += w.claimed;
        }
        e.finished |= w.finished;
    }
    let to_s = |t: SystemTime| rfc3339_micros(t);
    Ok(SessionStat {
        session: session.name().to_string(),
        total,
        claimed,
        done: claimed == total,
        workers: per.into_values().collect(),
        exact,
        first_claim: first.map(to_s),
        last_claim: last.map(to_s),
        elapsed_s: match (first, last) {
            (Some(f), Some(l)) => Some((unix_millis(l) - unix_millis(f)) as f64 / 1000.0),
            _ => None,
        },
    })
}

pub(crate) async fn done(session: &UPath, total: usize) -> Result<bool> {
    if session.join("exhausted")?.is_file().await? {
        return Ok(true);
    }
    if !session.join("session.json")?.is_file().await? {
        return Err(Error::new(ErrorKind::NotFound, "done")
            .with_path(session.to_string())
            .with_message("no such session"));
    }
    let claims = session.join("claims")?;
    let width = claim_width(total);
    let mut n = 0usize;
    let mut list = claims.riterdir_meta();
    while let Some(m) = list.next().await {
        let m = m?;
        let name = m.key.rsplit('/').next().unwrap_or("");
        if name.len() == width && name.parse::<usize>().map(|i| i < total).unwrap_or(false) {
            n += 1;
        }
    }
    Ok(n == total)
}
