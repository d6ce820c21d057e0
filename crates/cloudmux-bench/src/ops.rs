//! Scenario 7: what the coordinator's operations cost on the local disk:
//! `stat`, `done`, `stat --exact` and `destroy` of a session with E claims,
//! and one worker's claiming rate.

use std::time::Duration;

use anyhow::{Context, Result};
use cloudmux_core::UPath;
use cloudmux_core::clock::Stopwatch;
use cloudmux_mux::{DestroyOptions, Multiplexer, Worker, WorkerOptions};
use serde::Serialize;

use crate::report::Table;

/// One session size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OpsRow {
    /// Claims in the session.
    pub(crate) claims: usize,
    /// One worker (this process) claiming all of them, elements per second.
    pub(crate) claims_per_s: f64,
    /// `stat` (from worker summaries), ms.
    pub(crate) stat_ms: f64,
    /// `done`, ms.
    pub(crate) done_ms: f64,
    /// `stat --exact` (reads every claim, 32 at a time), ms.
    pub(crate) stat_exact_ms: f64,
    /// `destroy` of the dataset, ms.
    pub(crate) destroy_ms: f64,
}

/// The scenario's report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OpsReport {
    /// Where the data was (a temporary folder below this).
    pub(crate) dir: String,
    /// One row per size.
    pub(crate) rows: Vec<OpsRow>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the scenario for each size.
pub(crate) async fn run(sizes: &[usize]) -> Result<OpsReport> {
    let tmp = tempfile::Builder::new()
        .prefix("cloudmux-bench-ops-")
        .tempdir()
        .context("a temporary folder")?;
    let mut rows = Vec::new();
    for &n in sizes {
        let root = UPath::parse(tmp.path().to_str().context("a UTF-8 path")?)?;
        let mux = Multiplexer::new(0..n as u64, &root, Some("ops")).await?;
        let id = mux.create_read_session().await?;
        let mut w =
            Worker::<u64>::open_path(mux.path(), id.clone(), WorkerOptions::default()).await?;
        let t = Stopwatch::system();
        let mut got = 0;
        while let Some(r) = w.next().await {
            r?;
            got += 1;
        }
        let claiming = t.elapsed();
        anyhow::ensure!(got == n, "claimed {got} of {n}");
        drop(w);
        let t = Stopwatch::system();
        let st = mux.stat(&id).await?;
        let stat = t.elapsed();
        anyhow::ensure!(st.claimed == n, "stat saw {} of {n}", st.claimed);
        let t = Stopwatch::system();
        anyhow::ensure!(mux.done(&id).await?, "done");
        let done = t.elapsed();
        let t = Stopwatch::system();
        let exact = mux.stat_exact(&id).await?;
        let stat_exact = t.elapsed();
        anyhow::ensure!(exact.claimed == n);
        let t = Stopwatch::system();
        mux.destroy_with(DestroyOptions::default()).await?;
        let destroy = t.elapsed();
        rows.push(OpsRow {
            claims: n,
            claims_per_s: n as f64 / claiming.as_secs_f64().max(1e-9),
            stat_ms: ms(stat),
            done_ms: ms(done),
            stat_exact_ms: ms(stat_exact),
            destroy_ms: ms(destroy),
        });
    }
    Ok(OpsReport {
        dir: std::env::temp_dir().display().to_string(),
        rows,
    })
}

impl OpsReport {
    /// The table.
    pub(crate) fn render(&self) -> String {
        let mut t = Table::new(&[
            "claims",
            "one worker claims/s",
            "stat ms",
            "done ms",
            "stat --exact ms",
            "destroy ms",
        ]);
        for r in &self.rows {
            t.row(vec![
                r.claims.to_string(),
                format!("{:.0}", r.claims_per_s),
                format!("{:.1}", r.stat_ms),
                format!("{:.1}", r.done_ms),
                format!("{:.0}", r.stat_exact_ms),
                format!("{:.0}", r.destroy_ms),
            ]);
        }
        format!(
            "Coordinator operations on the local disk (below {})\n{}",
            self.dir,
            t.render()
        )
    }
}
