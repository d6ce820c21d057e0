//! Failure records of default sessions, written by `cloudmux work`.
//!
//! A default (not leased) session hands each element out once and records
//! nothing about how it went. So that `stat` can list the elements whose
//! command failed, `cloudmux work` writes, for such an element, the object
//!
//! ```text
//! <dataset>/sessions/<session>/failed/<name>   <name> as the claim's (layout::claim_name)
//! {"attempt":1,"worker":"host/12/main","state":"failed",
//!  "history":[{"attempt":1,"worker":"host/12/main","outcome":"failed","reason":"exit status 3"}]}
//! ```
//!
//! by create-if-absent. That is the folder and the body of a leased
//! session's failure markers, so one reader serves both; the library leaves
//! the folder alone in default sessions. The records are information only:
//! nothing is handed out again because of them (a leased session retries;
//! see `session --lease`).

use cloudmux::UPath;
use cloudmux::mux::layout::{claim_index, claim_name};
use cloudmux::mux::{AttemptOutcome, AttemptRecord, FailedElement};
use futures::StreamExt;

/// Failed elements whose records `stat` reads (and shows).
pub(crate) const MAX_LISTED: usize = 1000;

/// Records that element `index` failed.
///
/// # Errors
/// Storage errors (an existing record is not one).
pub(crate) async fn record(
    dir: &UPath,
    width: usize,
    index: usize,
    worker: &str,
    reason: &str,
) -> cloudmux::Result<()> {
    let attempt = AttemptRecord {
        attempt: 1,
        worker: worker.to_string(),
        outcome: AttemptOutcome::Failed,
        reason: Some(reason.chars().take(500).collect()),
    };
    let body = serde_json::json!({
        "attempt": 1,
        "worker": worker,
        "state": "failed",
        "history": [attempt],
    });
    match dir.join(&claim_name(index, width))?.write_json(&body).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Counts the records (or markers) below `dir` and reads up to
/// [`MAX_LISTED`] of them: one list request per 1,000 plus one read each.
///
/// # Errors
/// Storage errors of the listing; unreadable records are listed without
/// attempts.
pub(crate) async fn list(
    dir: &UPath,
    total: usize,
    width: usize,
) -> cloudmux::Result<(usize, Vec<FailedElement>)> {
    let mut indices = Vec::new();
    {
        let mut metas = dir.riterdir_meta();
        while let Some(m) = metas.next().await {
            let m = m?;
            if let Some(i) = claim_index(&m.key, width, total)
                && dir.relative(&m.key) == Some(claim_name(i, width).as_str())
            {
                indices.push(i);
            }
        }
    }
    let count = indices.len();
    let mut out = Vec::new();
    for i in indices.into_iter().take(MAX_LISTED) {
        let attempts = match dir
            .join(&claim_name(i, width))?
            .read_json::<serde_json::Value>()
            .await
        {
            Ok(v) => serde_json::from_value(v["history"].clone()).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        out.push(FailedElement { index: i, attempts });
    }
    Ok((count, out))
}
