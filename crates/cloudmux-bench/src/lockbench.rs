//! Scenario 4: the path lock. Uncontended acquire+release latency on the
//! in-memory store with injected latency and on the local filesystem, and
//! hand-offs per second between contenders that take and release it in a loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cloudmux_core::clock::Stopwatch;

use anyhow::{Result, bail};
use cloudmux_core::{FaultConfig, Faulty, InMemory, LocalFs, LockOptions, UPath};
use serde::Serialize;

use crate::handout::Requests;
use crate::report::{Summary, Table, rate};

/// Settings of the scenario.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// Mean injected latency per request.
    pub(crate) latency: Duration,
    /// Uniform jitter around it.
    pub(crate) jitter: Duration,
    /// Uncontended rounds on memory with latency.
    pub(crate) rounds: usize,
    /// Uncontended rounds on the local filesystem.
    pub(crate) local_rounds: usize,
    /// Contenders of the hand-off measurement.
    pub(crate) contenders: usize,
    /// Length of the hand-off measurement.
    pub(crate) duration: Duration,
    /// Seed of latency draws.
    pub(crate) seed: u64,
}

/// Uncontended acquire+release on one backend.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Uncontended {
    /// The backend.
    pub(crate) backend: String,
    /// The first round, which creates the lock object.
    pub(crate) first_ms: f64,
    /// Later rounds (the lock object exists and is free).
    pub(crate) steady: Summary,
    /// Requests per later round (counted on memory only).
    pub(crate) requests_per_round: Option<f64>,
}

/// Hand-offs between contenders.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Contended {
    /// Contenders.
    pub(crate) contenders: usize,
    /// Seconds measured.
    pub(crate) seconds: f64,
    /// Acquisitions in that time.
    pub(crate) acquisitions: u64,
    /// Acquisitions per second.
    pub(crate) handoffs_per_s: f64,
    /// Fewest acquisitions of one contender.
    pub(crate) per_contender_min: u64,
    /// Most acquisitions of one contender.
    pub(crate) per_contender_max: u64,
    /// Requests per acquisition (waiting contenders poll).
    pub(crate) requests_per_acquisition: f64,
}

/// The scenario's results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LockReport {
    /// Mean latency, ms.
    pub(crate) latency_ms: f64,
    /// Uncontended, per backend.
    pub(crate) uncontended: Vec<Uncontended>,
    /// Contended, on memory with latency.
    pub(crate) contended: Contended,
}

/// Runs the scenario.
pub(crate) async fn run(p: &Params) -> Result<LockReport> {
    let cfg = FaultConfig {
        seed: p.seed,
        ..FaultConfig::latency(p.latency, p.jitter)
    };
    let faulty = Faulty::new(InMemory::new(), cfg.clone());
    let mem = UPath::new(faulty.clone(), "locks/uncontended")?;
    let mut rows = vec![
        uncontended(
            &format!("memory, {:.0} ms latency", p.latency.as_secs_f64() * 1000.0),
            &mem,
            p.rounds,
            Some(&faulty),
        )
        .await?,
    ];
    let dir = tempfile::tempdir()?;
    let local = UPath::new(LocalFs::new(dir.path())?, "locks/uncontended")?;
    rows.push(uncontended("local filesystem", &local, p.local_rounds, None).await?);

    let faulty = Faulty::new(InMemory::new(), cfg);
    let contended = contended(&faulty, p.contenders, p.duration).await?;
    Ok(LockReport {
        latency_ms: p.latency.as_secs_f64() * 1000.0,
        uncontended: rows,
        contended,
    })
}

async fn uncontended(
    backend: &str,
    path: &UPath,
    rounds: usize,
    counter: Option<&Arc<Faulty>>,
) -> Result<Uncontended> {
    let opts = LockOptions::new(Duration::from_secs(10)).holder("bench");
    let t = Stopwatch::system();
    path.lock_with(opts.clone()).await?.release().await?;
    let first_ms = t.elapsed().as_secs_f64() * 1000.0;
    let before = counter.map(|f| f.stats());
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Stopwatch::system();
        let g = path.lock_with(opts.clone()).await?;
        g.release().await?;
        samples.push(t.elapsed());
    }
    let requests_per_round = match (counter, before) {
        (Some(f), Some(b)) => {
            Some(Requests::between(&b, &f.stats()).total as f64 / rounds.max(1) as f64)
        }
        _ => None,
    };
    Ok(Uncontended {
        backend: backend.to_string(),
        first_ms,
        steady: Summary::of(&mut samples),
        requests_per_round,
    })
}

async fn contended(faulty: &Arc<Faulty>, n: usize, duration: Duration) -> Result<Contended> {
    let path = UPath::new(faulty.clone(), "locks/contended")?;
    // Create the lock object once, so every round is a hand-off.
    path.lock(Duration::from_secs(10)).await?.release().await?;
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let before = faulty.stats();
    let t0 = Stopwatch::system();
    let tasks: Vec<_> = (0..n)
        .map(|w| {
            let path = path.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                let opts = LockOptions::new(Duration::from_secs(3600)).holder(format!("c{w}"));
                loop {
                    let g = path.lock_with(opts.clone()).await?;
                    if t0.elapsed() >= duration {
                        g.release().await?;
                        return Ok::<_, cloudmux_core::Error>(());
                    }
                    counts[w].fetch_add(1, Ordering::Relaxed);
                    g.release().await?;
                }
            })
        })
        .collect();
    cloudmux_core::clock::system().sleep(duration).await;
    let after = faulty.stats();
    let seconds = t0.elapsed().as_secs_f64();
    let per: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        match t.await {
            Ok(Err(e)) => bail!("a lock contender failed: {e}"),
            Err(j) if j.is_panic() => bail!("a lock contender panicked"),
            _ => {}
        }
    }
    let acquisitions: u64 = per.iter().sum();
    Ok(Contended {
        contenders: n,
        seconds,
        acquisitions,
        handoffs_per_s: acquisitions as f64 / seconds,
        per_contender_min: per.iter().copied().min().unwrap_or(0),
        per_contender_max: per.iter().copied().max().unwrap_or(0),
        requests_per_acquisition: Requests::between(&before, &after).total as f64
            / acquisitions.max(1) as f64,
    })
}

impl LockReport {
    /// The scenario's tables.
    pub(crate) fn render(&self) -> String {
        let mut t = Table::new(&[
            "backend",
            "first ms",
            "p50 ms",
            "p99 ms",
            "mean ms",
            "rounds",
            "req/round",
        ]);
        for u in &self.uncontended {
            t.row(vec![
                u.backend.clone(),
                format!("{:.2}", u.first_ms),
                format!("{:.2}", u.steady.p50_ms),
                format!("{:.2}", u.steady.p99_ms),
                format!("{:.2}", u.steady.mean_ms),
                u.steady.n.to_string(),
                u.requests_per_round
                    .map_or("-".into(), |r| format!("{r:.1}")),
            ]);
        }
        let c = &self.contended;
        let mut h = Table::new(&[
            "contenders",
            "seconds",
            "acquisitions",
            "hand-offs/s",
            "per contender min-max",
            "req/acquisition",
        ]);
        h.row(vec![
            c.contenders.to_string(),
            format!("{:.1}", c.seconds),
            c.acquisitions.to_string(),
            rate(c.handoffs_per_s),
            format!("{}-{}", c.per_contender_min, c.per_contender_max),
            format!("{:.1}", c.requests_per_acquisition),
        ]);
        format!(
            "## Lock\n\nUncontended acquire + release (the first round creates the lock object):\n\n{}\n\
             Hand-offs: contenders take and release one lock in a loop (memory, {:.0} ms latency, default backoff 50 ms to 1 s):\n\n{}",
            t.render(),
            self.latency_ms,
            h.render()
        )
    }
}
