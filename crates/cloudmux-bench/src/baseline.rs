//! Scenario 2: the original design, for comparison. One state object holds a
//! `next` counter; a worker takes the path lock ([`UPath::lock_with`]), reads
//! the counter, writes it back incremented and releases the lock, once per
//! element. It lives here only: the library does not offer it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudmux_core::clock::Stopwatch;

use anyhow::{Result, bail};
use cloudmux_core::{Faulty, InMemory, LockOptions, UPath};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::handout::{Params, Requests};

/// The state object of the baseline.
#[derive(Debug, Serialize, Deserialize)]
struct Counter {
    next: usize,
    count: usize,
}

/// The baseline at one N.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BaselineRow {
    /// Elements handed out (fewer than asked if the time budget ran out).
    pub(crate) elements: usize,
    /// Elements it was asked to hand out.
    pub(crate) target_elements: usize,
    /// From the start to the last element obtained.
    pub(crate) seconds: f64,
    /// Elements per second.
    pub(crate) elements_per_s: f64,
    /// Requests until the last element, per element.
    pub(crate) requests_per_element: f64,
    /// True when the time budget stopped the run before all elements were out.
    pub(crate) budget_expired: bool,
}

/// Runs N baseline workers until `e` elements are out or the budget expires.
pub(crate) async fn run(p: &Params, n: usize, e: usize) -> Result<BaselineRow> {
    let mem = InMemory::new();
    let faulty = Faulty::new(mem.clone(), p.faults());
    let state = UPath::new(faulty.clone(), "baseline/state.json")?;
    // Written without latency: setting up is not part of the measurement.
    UPath::new(mem.clone(), "baseline/state.json")?
        .write_json(&Counter { next: 0, count: e })
        .await?;

    let got: Arc<Mutex<Vec<(usize, Duration)>>> = Arc::new(Mutex::new(Vec::with_capacity(e)));
    let all_out = Arc::new(Notify::new());
    let before = faulty.stats();
    let t0 = Stopwatch::system();
    let tasks: Vec<_> = (0..n)
        .map(|w| {
            let state = state.clone();
            let got = got.clone();
            let all_out = all_out.clone();
            tokio::spawn(async move {
                let opts = LockOptions::new(Duration::from_secs(3600)).holder(format!("b{w:03}"));
                loop {
                    let guard = state.lock_with(opts.clone()).await?;
                    let c: Counter = state.read_json().await?;
                    if c.next >= c.count {
                        guard.release().await?;
                        return Ok::<_, cloudmux_core::Error>(());
                    }
                    state
                        .overwrite_json(&Counter {
                            next: c.next + 1,
                            count: c.count,
                        })
                        .await?;
                    guard.release().await?;
                    let mut g = got.lock().unwrap();
                    g.push((c.next, t0.elapsed()));
                    if g.len() == e {
                        all_out.notify_one();
                    }
                }
            })
        })
        .collect();
    let clock = cloudmux_core::clock::system();
    let budget_expired = tokio::select! {
        _ = all_out.notified() => false,
        _ = clock.sleep(p.baseline_budget) => true,
    };
    let after = faulty.stats();
    // The rest are waiting for the lock only to learn that nothing is left.
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        match t.await {
            Ok(Err(err)) => bail!("a baseline worker failed: {err}"),
            Err(j) if j.is_panic() => bail!("a baseline worker panicked"),
            _ => {}
        }
    }
    let got = got.lock().unwrap().clone();
    let mut seen = vec![false; e];
    for (i, _) in &got {
        if std::mem::replace(&mut seen[*i], true) {
            bail!("the baseline handed out element {i} twice");
        }
    }
    let last = got.iter().map(|x| x.1).max().unwrap_or(p.baseline_budget);
    let seconds = last.as_secs_f64().max(1e-9);
    let requests = Requests::between(&before, &after);
    Ok(BaselineRow {
        elements: got.len(),
        target_elements: e,
        seconds,
        elements_per_s: got.len() as f64 / seconds,
        requests_per_element: requests.total as f64 / got.len().max(1) as f64,
        budget_expired,
    })
}
