//! Scenario 1: hand-out scaling. N workers (tokio tasks) share E elements
//! on the in-memory store behind [`Faulty`] with per-request latency, doing
//! no work per element; the baseline ([`crate::baseline`]) runs beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudmux_core::clock::Stopwatch;

use anyhow::{Context, Result, bail, ensure};
use cloudmux_core::{FaultConfig, Faulty, InMemory, RequestStats, UPath};
use cloudmux_mux::{Multiplexer, Worker, WorkerOptions};
use serde::Serialize;

use crate::baseline::{self, BaselineRow};
use crate::report::{Summary, Table, rate};

/// Settings of the scenario.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// Mean injected latency per request.
    pub(crate) latency: Duration,
    /// Uniform jitter around it.
    pub(crate) jitter: Duration,
    /// The largest E.
    pub(crate) elements: usize,
    /// E = min(elements, N * per_worker).
    pub(crate) per_worker: usize,
    /// The N of the sweep.
    pub(crate) workers: Vec<usize>,
    /// Run the baseline at each N.
    pub(crate) baseline: bool,
    /// Elements the baseline hands out at each N (capped by E).
    pub(crate) baseline_elements: usize,
    /// Longest baseline run at each N.
    pub(crate) baseline_budget: Duration,
    /// Seed of latency draws and workers' choices.
    pub(crate) seed: u64,
    /// Print claims and requests every 50 ms to stderr (diagnostics).
    pub(crate) timeline: bool,
}

impl Params {
    /// The injected-latency configuration.
    pub(crate) fn faults(&self) -> FaultConfig {
        FaultConfig {
            seed: self.seed,
            ..FaultConfig::latency(self.latency, self.jitter)
        }
    }

    /// The ideal rate for N workers: each can finish one request per latency.
    fn ideal(&self, n: usize) -> f64 {
        n as f64 / self.latency.as_secs_f64().max(1e-9)
    }
}

/// Backend requests by operation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Requests {
    /// `get`.
    pub(crate) get: u64,
    /// `head`.
    pub(crate) head: u64,
    /// `put` (claims, markers, summaries).
    pub(crate) put: u64,
    /// `list` pages.
    pub(crate) list: u64,
    /// `delete`.
    pub(crate) delete: u64,
    /// All of them.
    pub(crate) total: u64,
}

impl Requests {
    /// Requests made between two snapshots.
    pub(crate) fn between(a: &RequestStats, b: &RequestStats) -> Self {
        Requests {
            get: b.get - a.get,
            head: b.head - a.head,
            put: b.put - a.put,
            list: b.list - a.list,
            delete: b.delete - a.delete,
            total: b.total() - a.total(),
        }
    }
}

/// One N of the sweep.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HandoutRow {
    /// Workers.
    pub(crate) workers: usize,
    /// Elements handed out.
    pub(crate) elements: usize,
    /// From the start of claiming (all workers open) to the last element obtained.
    pub(crate) seconds: f64,
    /// Elements per second over `seconds`.
    pub(crate) elements_per_s: f64,
    /// N / latency.
    pub(crate) ideal_per_s: f64,
    /// `elements_per_s / ideal_per_s`.
    pub(crate) share_of_ideal: f64,
    /// Requests made after opening, until every worker stopped.
    pub(crate) requests: Requests,
    /// `requests.total / elements`.
    pub(crate) requests_per_element: f64,
    /// Time of each `next()` call that returned an element.
    pub(crate) obtain: Summary,
    /// Fewest elements any worker obtained.
    pub(crate) per_worker_min: u64,
    /// Most elements any worker obtained.
    pub(crate) per_worker_max: u64,
    /// Creates lost to another worker (sum over workers).
    pub(crate) collisions: u64,
    /// Claims pages listed (sum over workers).
    pub(crate) lists: u64,
    /// Marker reads and writes (sum over workers).
    pub(crate) marker_requests: u64,
    /// Seconds spent on the last 10% of the elements.
    pub(crate) tail_seconds: f64,
    /// Seconds from the last element to the last worker stopping.
    pub(crate) drain_seconds: f64,
    /// The baseline at this N, if it ran.
    pub(crate) baseline: Option<BaselineRow>,
    /// `elements_per_s / baseline.elements_per_s`.
    pub(crate) speedup_vs_baseline: Option<f64>,
}

/// The whole sweep.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HandoutReport {
    /// Mean latency, ms.
    pub(crate) latency_ms: f64,
    /// Jitter, ± ms.
    pub(crate) jitter_ms: f64,
    /// The E rule in words.
    pub(crate) elements_rule: String,
    /// One row per N.
    pub(crate) rows: Vec<HandoutRow>,
}

/// What one worker task saw.
struct TaskResult {
    indices: Vec<usize>,
    obtain: Vec<Duration>,
    at: Vec<Duration>,
    stopped: Duration,
    progress: cloudmux_mux::WorkerProgress,
}

/// Runs the sweep.
pub(crate) async fn run(p: &Params, verbose: bool) -> Result<HandoutReport> {
    let mut rows = Vec::new();
    for &n in &p.workers {
        let e = p.elements.min(n.saturating_mul(p.per_worker)).max(1);
        let mut row = run_one(p, n, e)
            .await
            .with_context(|| format!("hand-out with N={n}, E={e}"))?;
        if p.baseline {
            let be = p.baseline_elements.min(e).max(1);
            let b = baseline::run(p, n, be)
                .await
                .with_context(|| format!("baseline with N={n}"))?;
            row.speedup_vs_baseline = Some(row.elements_per_s / b.elements_per_s.max(1e-9));
            row.baseline = Some(b);
        }
        if verbose {
            eprintln!(
                "  handout N={n:>3} E={e:>5}: {:>7} el/s ({:.2} of ideal), {:.3} req/el{}",
                rate(row.elements_per_s),
                row.share_of_ideal,
                row.requests_per_element,
                row.baseline
                    .as_ref()
                    .map(|b| format!(", baseline {} el/s", rate(b.elements_per_s)))
                    .unwrap_or_default()
            );
        }
        rows.push(row);
    }
    Ok(HandoutReport {
        latency_ms: p.latency.as_secs_f64() * 1000.0,
        jitter_ms: p.jitter.as_secs_f64() * 1000.0,
        elements_rule: format!(
            "E = min({}, N * {}): N = 1 at E = 10,000 would take E * latency",
            p.elements, p.per_worker
        ),
        rows,
    })
}

/// One N: open N workers, then time them claiming all E elements.
async fn run_one(p: &Params, n: usize, e: usize) -> Result<HandoutRow> {
    let mem = InMemory::new();
    let plain = UPath::new(mem.clone(), "bench")?;
    let mux = Multiplexer::new(0..e as u64, &plain, Some("handout")).await?;
    let id = mux.create_read_session().await?;
    let faulty = Faulty::new(mem.clone(), p.faults());
    let ds = UPath::new(faulty.clone(), mux.path().key())?;

    // Open every worker first (concurrently: each open is two requests).
    let opens = (0..n).map(|w| {
        let opts = WorkerOptions::default()
            .worker_id(format!("w{w:03}"))
            .seed(p.seed.wrapping_mul(1_000_003).wrapping_add(w as u64));
        Worker::<u64>::open_path(&ds, id.clone(), opts)
    });
    let workers = futures::future::try_join_all(opens).await?;

    let before = faulty.stats();
    let t0 = Stopwatch::system();
    let obtained = Arc::new(AtomicUsize::new(0));
    let sampler = p.timeline.then(|| {
        let (faulty, obtained) = (faulty.clone(), obtained.clone());
        tokio::spawn(async move {
            let clock = cloudmux_core::clock::system();
            let mut prev = before;
            let mut prev_got = 0;
            loop {
                clock.sleep(Duration::from_millis(50)).await;
                let s = faulty.stats();
                let got = obtained.load(Ordering::Relaxed);
                let cpu = crate::machine::cpu_seconds();
                eprintln!(
                    "    t={:>6.3}s cpu {:>5.3}s claimed {:>5} (+{:>4}) requests +{:>4} (put {:>4} list {:>3} get {:>3} head {:>3}) in flight {:>3}",
                    t0.elapsed().as_secs_f64(),
                    cpu,
                    got,
                    got - prev_got,
                    s.total() - prev.total(),
                    s.put - prev.put,
                    s.list - prev.list,
                    s.get - prev.get,
                    s.head - prev.head,
                    s.in_flight
                );
                prev = s;
                prev_got = got;
            }
        })
    });
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            let obtained = obtained.clone();
            tokio::spawn(async move {
                let mut r = TaskResult {
                    indices: Vec::new(),
                    obtain: Vec::new(),
                    at: Vec::new(),
                    stopped: Duration::ZERO,
                    progress: Default::default(),
                };
                loop {
                    let s = Stopwatch::system();
                    match w.next().await {
                        Some(Ok((i, v))) => {
                            debug_assert_eq!(v, i as u64);
                            r.obtain.push(s.elapsed());
                            r.at.push(t0.elapsed());
                            r.indices.push(i);
                            obtained.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(e)) => return Err(e),
                        None => break,
                    }
                }
                r.stopped = t0.elapsed();
                r.progress = w.progress().clone();
                Ok(r)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for t in tasks {
        results.push(t.await.context("a worker task panicked")??);
    }
    let after = faulty.stats();
    if let Some(s) = sampler {
        s.abort();
    }
    summarize(p, n, e, results, Requests::between(&before, &after))
}

fn summarize(
    p: &Params,
    n: usize,
    e: usize,
    results: Vec<TaskResult>,
    requests: Requests,
) -> Result<HandoutRow> {
    let mut seen = vec![false; e];
    let mut at: Vec<Duration> = Vec::with_capacity(e);
    let mut obtain: Vec<Duration> = Vec::with_capacity(e);
    let (mut collisions, mut lists, mut markers) = (0, 0, 0);
    let mut per_worker = Vec::with_capacity(n);
    let mut stopped = Duration::ZERO;
    for r in results {
        for &i in &r.indices {
            ensure!(i < e, "index {i} out of range");
            if std::mem::replace(&mut seen[i], true) {
                bail!("element {i} was handed out twice");
            }
        }
        per_worker.push(r.indices.len() as u64);
        at.extend(r.at);
        obtain.extend(r.obtain);
        collisions += r.progress.collisions;
        lists += r.progress.lists;
        markers += r.progress.marker_checks;
        stopped = stopped.max(r.stopped);
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        bail!("element {missing} was never handed out");
    }
    at.sort_unstable();
    let last = *at.last().expect("E > 0");
    let tail_from = at[(e * 9 / 10).min(e - 1)];
    let seconds = last.as_secs_f64().max(1e-9);
    let elements_per_s = e as f64 / seconds;
    let ideal = p.ideal(n);
    Ok(HandoutRow {
        workers: n,
        elements: e,
        seconds,
        elements_per_s,
        ideal_per_s: ideal,
        share_of_ideal: elements_per_s / ideal,
        requests_per_element: requests.total as f64 / e as f64,
        requests,
        obtain: Summary::of(&mut obtain),
        per_worker_min: per_worker.iter().copied().min().unwrap_or(0),
        per_worker_max: per_worker.iter().copied().max().unwrap_or(0),
        collisions,
        lists,
        marker_requests: markers,
        tail_seconds: (last - tail_from).as_secs_f64(),
        drain_seconds: stopped.saturating_sub(last).as_secs_f64(),
        baseline: None,
        speedup_vs_baseline: None,
    })
}

impl HandoutReport {
    /// The scenario's tables.
    pub(crate) fn render(&self) -> String {
        let mut t = Table::new(&[
            "N",
            "E",
            "elements/s",
            "ideal/s",
            "of ideal",
            "req/el",
            "p50 ms",
            "p99 ms",
            "per worker min-max",
            "tail 10% s",
            "baseline el/s",
            "x baseline",
        ]);
        for r in &self.rows {
            t.row(vec![
                r.workers.to_string(),
                r.elements.to_string(),
                rate(r.elements_per_s),
                rate(r.ideal_per_s),
                format!("{:.2}", r.share_of_ideal),
                format!("{:.3}", r.requests_per_element),
                format!("{:.1}", r.obtain.p50_ms),
                format!("{:.1}", r.obtain.p99_ms),
                format!("{}-{}", r.per_worker_min, r.per_worker_max),
                format!("{:.2}", r.tail_seconds),
                r.baseline
                    .as_ref()
                    .map_or("-".into(), |b| rate(b.elements_per_s)),
                r.speedup_vs_baseline
                    .map_or("-".into(), |x| format!("{x:.0}")),
            ]);
        }
        let mut d = Table::new(&[
            "N",
            "puts",
            "lists",
            "heads",
            "gets",
            "collisions",
            "marker req",
            "drain s",
        ]);
        for r in &self.rows {
            d.row(vec![
                r.workers.to_string(),
                r.requests.put.to_string(),
                r.requests.list.to_string(),
                r.requests.head.to_string(),
                r.requests.get.to_string(),
                r.collisions.to_string(),
                r.marker_requests.to_string(),
                format!("{:.2}", r.drain_seconds),
            ]);
        }
        let mut out = format!(
            "## Hand-out scaling (in-memory store, {:.0} ms ± {:.0} ms per request, zero work)\n\n{}\n",
            self.latency_ms,
            self.jitter_ms,
            t.render()
        );
        if self.rows.iter().any(|r| r.baseline.is_some()) {
            let mut b = Table::new(&["N", "baseline E", "baseline s", "baseline el/s", "req/el"]);
            for r in &self.rows {
                if let Some(x) = &r.baseline {
                    b.row(vec![
                        r.workers.to_string(),
                        x.elements.to_string(),
                        format!("{:.2}", x.seconds),
                        rate(x.elements_per_s),
                        format!("{:.2}", x.requests_per_element),
                    ]);
                }
            }
            out.push_str(&format!(
                "Baseline: one `next` counter read and rewritten under the path lock.\n\n{}\n",
                b.render()
            ));
        }
        out.push_str(&format!(
            "Requests after opening, by kind:\n\n{}\n{}.\nRate: from the start of claiming (all workers open) to the last element obtained; \
             requests: everything sent after opening, until every worker stopped; ideal: N / latency.\n",
            d.render(),
            self.elements_rule
        ));
        out
    }
}
