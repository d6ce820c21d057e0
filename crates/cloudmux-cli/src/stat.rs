//! `cloudmux stat`: a session's progress, once or live (`--watch`).
//!
//! # What a refresh of `--watch` costs
//! [`Multiplexer::stat`](cloudmux::mux::Multiplexer::stat) lists every
//! claim, reads every worker summary, and in a leased session also reads
//! every unfinished claim and up to 1,000 failed ones: fine once, too much
//! every two seconds. A refresh of `--watch` lists names only and reads just
//! the worker summaries that changed since the previous refresh:
//!
//! | requests | what |
//! |---|---|
//! | ⌈N / 1000⌉ lists | `claims/`: how many were handed out |
//! | ⌈C / 1000⌉ lists | `done/` (leased): how many were completed |
//! | ⌈F / 1000⌉ lists | `failed/`: how many failed |
//! | ⌈W / 1000⌉ lists | `workers/`: the summaries' names and versions |
//! | one read per changed summary | a worker rewrites its summary at most every 5 s |
//! | up to 64 claim reads, near the end | leased: when at most 64 elements lack a marker, their claims (a completion marker may lag its acknowledgement; each claim read once) |
//!
//! with N elements handed out, C completed, F failed and W workers: for
//! 10,000 elements and 50 workers at most 10 + 10 + 1 + 1 lists and 50
//! reads, whatever the failures; usually a handful of reads. Each JSON
//! object reports its own `requests`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use cloudmux::clock::{Stopwatch, rfc3339_micros, unix_millis};
use cloudmux::cond::CondDoc;
use cloudmux::mux::layout::{SessionLayout, claim_index, claim_name, claim_width};
use cloudmux::mux::{
    Claim, ClaimState, LeaseTerms, Multiplexer, MuxId, SessionDoc, SessionStat, WorkerProgress,
};
use cloudmux::{ErrorKind, ListQuery, UPath};
use serde::Serialize;

use crate::failures;

/// Reads the session document: its count and mode.
async fn session_doc(mux: &Multiplexer, id: &MuxId) -> Result<(SessionLayout, SessionDoc)> {
    if !cloudmux::mux::id::same_dataset(id.dataset_url(), &mux.path().url()) {
        anyhow::bail!(
            "the mux id belongs to another dataset ({})",
            id.dataset_url()
        );
    }
    let s = mux.layout().session(id.session())?;
    let doc = CondDoc::<SessionDoc>::new(s.doc()?)
        .read()
        .await?
        .ok_or_else(|| {
            cloudmux::Error::new(ErrorKind::NotFound, "stat")
                .with_path(s.dir().to_string())
                .with_message("no such session")
        })?
        .body;
    Ok((s, doc))
}

/// `stat` without `--watch`: the library's stat plus, in default sessions,
/// the failure records `work` wrote.
pub(crate) async fn once(
    mux: &Multiplexer,
    id: &MuxId,
    json: bool,
    exact: bool,
) -> Result<ExitCode> {
    let st = if exact {
        mux.stat_exact(id).await?
    } else {
        mux.stat(id).await?
    };
    let session = mux.layout().session(id.session())?;
    let (failed, failed_elements) = match &st.leased {
        Some(l) => (l.failed, l.failed_elements.clone()),
        None => failures::list(&session.failed()?, st.total, claim_width(st.total)).await?,
    };
    if json {
        let mut v = serde_json::to_value(&st)?;
        v["completed"] = st.leased.as_ref().map(|l| l.completed).into();
        v["in_progress"] = st.leased.as_ref().map(|l| l.in_progress).into();
        v["failed"] = failed.into();
        v["failed_elements"] = serde_json::to_value(&failed_elements)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_stat(&st, failed, &failed_elements);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_stat(st: &SessionStat, failed: usize, failed_elements: &[cloudmux::mux::FailedElement]) {
    println!("session   {}", st.session);
    println!(
        "claimed   {} / {}{}",
        st.claimed,
        st.total,
        if st.done { "  (done)" } else { "" }
    );
    if let Some(l) = &st.leased {
        println!(
            "completed {} / {}{}",
            l.completed,
            st.total,
            if l.done { "  (done)" } else { "" }
        );
        println!(
            "leased    {} in progress, {} expired, {} released; lease {} ms, max attempts {}",
            l.in_progress, l.expired, l.released, l.lease_ms, l.max_attempts
        );
        if let Some(r) = l.rate_per_s {
            println!("rate      {r:.1} elements/s completed");
        }
        if let Some(s) = &l.stopped {
            println!("stopped   {s}");
        }
    }
    if failed > 0 {
        println!("failed    {failed}");
        for f in failed_elements.iter().take(10) {
            let why = f
                .attempts
                .last()
                .and_then(|a| a.reason.clone())
                .unwrap_or_default();
            println!(
                "  element {:<8} {} attempt(s); last: {why}",
                f.index,
                f.attempts.len()
            );
        }
        if failed > 10 {
            println!("  ... (stat --json lists up to {})", failures::MAX_LISTED);
        }
    }
    if let Some(f) = &st.first_claim {
        println!("first     {f}");
    }
    if let Some(l) = &st.last_claim {
        println!("last      {l}");
    }
    if st.leased.is_none()
        && let Some(e) = st.elapsed_s
        && e > 0.0
    {
        println!(
            "rate      {:.1} elements/s handed out",
            st.claimed as f64 / e
        );
    }
    if !st.workers.is_empty() {
        println!();
        let w = st
            .workers
            .iter()
            .map(|w| w.worker.len())
            .max()
            .unwrap_or(6)
            .max(6);
        if st.leased.is_some() {
            println!(
                "{:<w$}  {:>8}  {:>9}  {:>6}  finished",
                "worker", "claimed", "completed", "failed"
            );
            for x in &st.workers {
                println!(
                    "{:<w$}  {:>8}  {:>9}  {:>6}  {}",
                    x.worker,
                    x.claimed,
                    x.completed,
                    x.failed,
                    if x.finished { "yes" } else { "no" }
                );
            }
        } else {
            println!("{:<w$}  {:>8}  finished", "worker", "claimed");
            for x in &st.workers {
                println!(
                    "{:<w$}  {:>8}  {}",
                    x.worker,
                    x.claimed,
                    if x.finished { "yes" } else { "no" }
                );
            }
        }
        if !st.exact {
            println!(
                "(per-worker counts from worker summaries, refreshed every few seconds; --exact reads every claim)"
            );
        }
    }
}

/// One worker's line of a refresh.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerRow {
    pub(crate) worker: String,
    pub(crate) claimed: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) finished: bool,
    pub(crate) stopped: Option<String>,
    /// Seconds since the worker last wrote its summary (storage time).
    pub(crate) seen_s_ago: f64,
}

/// One refresh of `--watch`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Snapshot {
    pub(crate) t: String,
    pub(crate) session: String,
    pub(crate) mode: &'static str,
    pub(crate) total: usize,
    pub(crate) claimed: usize,
    /// Leased sessions only (a default session records no completion).
    pub(crate) completed: Option<usize>,
    pub(crate) failed: usize,
    /// Leased sessions: claimed, neither completed nor failed.
    pub(crate) in_progress: Option<usize>,
    pub(crate) done: bool,
    /// Elements finished (leased) or handed out (default) per second.
    pub(crate) rate_per_s: Option<f64>,
    pub(crate) eta_s: Option<f64>,
    pub(crate) stopped: Option<String>,
    /// Storage requests this refresh made.
    pub(crate) requests: u64,
    pub(crate) workers: Vec<WorkerRow>,
}

/// A cached worker summary, re-read only when its listing changes.
struct Summary {
    seen: (Option<cloudmux::Version>, SystemTime, u64),
    progress: WorkerProgress,
    modified: SystemTime,
}

/// The state of `--watch` between refreshes.
pub(crate) struct Watcher {
    session: SessionLayout,
    total: usize,
    width: usize,
    terms: Option<LeaseTerms>,
    summaries: BTreeMap<String, Summary>,
    /// Leased: elements whose claim was read acknowledged, marker or not.
    acked: std::collections::BTreeSet<usize>,
    history: VecDeque<(Duration, usize)>,
    clock: Stopwatch,
}

/// Elements without a marker whose claims a refresh reads (see
/// [`Watcher::settle_lagging`]).
const LAGGING: usize = 64;

impl Watcher {
    pub(crate) async fn new(mux: &Multiplexer, id: &MuxId) -> Result<Watcher> {
        let (session, doc) = session_doc(mux, id).await?;
        Ok(Watcher {
            session,
            total: doc.count,
            width: doc.width,
            terms: doc.mode.lease().copied(),
            summaries: BTreeMap::new(),
            acked: std::collections::BTreeSet::new(),
            history: VecDeque::new(),
            clock: Stopwatch::system(),
        })
    }

    /// The elements named below `dir` (claims or markers), marked in `seen`
    /// when given; returns how many.
    async fn count(
        &self,
        dir: &UPath,
        mut seen: Option<&mut Vec<bool>>,
        requests: &mut u64,
    ) -> cloudmux::Result<usize> {
        let mut token = None;
        let mut n = 0;
        loop {
            let page = dir
                .list_page(&ListQuery {
                    token,
                    ..ListQuery::default()
                })
                .await?;
            *requests += 1;
            for o in &page.objects {
                let Some(i) = claim_index(&o.key, self.width, self.total) else {
                    continue;
                };
                if dir.relative(&o.key) != Some(claim_name(i, self.width).as_str()) {
                    continue;
                }
                n += 1;
                if let Some(s) = seen.as_deref_mut() {
                    s[i] = true;
                }
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(n),
            }
        }
    }

    /// Leased sessions near their end: a completion marker may lag its
    /// claim (it goes out with its worker's next request), so when at most
    /// [`LAGGING`] elements lack a marker, their claims say (each read once:
    /// an acknowledged claim stays so).
    async fn settle_lagging(
        &mut self,
        finished: &[bool],
        requests: &mut u64,
    ) -> cloudmux::Result<(usize, usize)> {
        let missing: Vec<usize> = (0..self.total)
            .filter(|&i| !finished[i] && !self.acked.contains(&i))
            .collect();
        let mut failed = 0;
        if missing.len() <= LAGGING {
            let claims = self.session.claims()?;
            for i in missing {
                *requests += 1;
                let c = CondDoc::<Claim>::new(claims.join(&claim_name(i, self.width))?)
                    .read()
                    .await?;
                match c.and_then(|c| c.body.state) {
                    Some(ClaimState::Done) => {
                        self.acked.insert(i);
                    }
                    Some(ClaimState::Failed) => failed += 1,
                    _ => {}
                }
            }
        }
        let acked = (0..self.total)
            .filter(|i| !finished[*i] && self.acked.contains(i))
            .count();
        Ok((acked, failed))
    }

    async fn read_summaries(&mut self, requests: &mut u64) -> cloudmux::Result<()> {
        let dir = self.session.workers()?;
        let mut token = None;
        let mut listed = BTreeMap::new();
        loop {
            let page = dir
                .list_page(&ListQuery {
                    token,
                    ..ListQuery::default()
                })
                .await?;
            *requests += 1;
            for o in page.objects {
                listed.insert(o.key.clone(), o);
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        self.summaries.retain(|k, _| listed.contains_key(k));
        for (key, meta) in listed {
            let seen = (meta.version.clone(), meta.last_modified, meta.size);
            if self.summaries.get(&key).is_some_and(|s| s.seen == seen) {
                continue;
            }
            *requests += 1;
            match dir.with_key(&key)?.read_json::<WorkerProgress>().await {
                Ok(progress) => {
                    self.summaries.insert(
                        key,
                        Summary {
                            seen,
                            progress,
                            modified: meta.last_modified,
                        },
                    );
                }
                Err(e) if e.is_not_found() || e.kind() == ErrorKind::Corrupt => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One refresh: lists and changed summaries only (see the module docs).
    pub(crate) async fn refresh(&mut self) -> cloudmux::Result<Snapshot> {
        let mut requests = 0;
        let claimed = self
            .count(&self.session.claims()?, None, &mut requests)
            .await?;
        let mut finished = vec![false; self.total];
        let mut failed = self
            .count(&self.session.failed()?, Some(&mut finished), &mut requests)
            .await?;
        let completed = match self.terms {
            Some(_) => {
                let mut c = self
                    .count(&self.session.done()?, Some(&mut finished), &mut requests)
                    .await?;
                let (acked, lagging_failed) = self.settle_lagging(&finished, &mut requests).await?;
                c += acked;
                failed += lagging_failed;
                Some(c)
            }
            None => None,
        };
        self.read_summaries(&mut requests).await?;
        let now = self.session.dir().clock().now();
        let in_progress = completed.map(|c| claimed.saturating_sub(c + failed));
        let progress = match completed {
            Some(c) => c + failed,
            None => claimed,
        };
        let done = progress >= self.total;
        let rate = self.rate(progress);
        let eta_s = rate
            .filter(|r| *r > 0.0)
            .map(|r| (self.total - progress.min(self.total)) as f64 / r);
        let mut stopped = None;
        let workers = self
            .summaries
            .values()
            .map(|s| {
                if s.progress.stopped.is_some() {
                    stopped.clone_from(&s.progress.stopped);
                }
                WorkerRow {
                    worker: s.progress.worker.clone(),
                    claimed: s.progress.claimed,
                    completed: s.progress.completed,
                    failed: s.progress.failed,
                    finished: s.progress.finished,
                    stopped: s.progress.stopped.clone(),
                    seen_s_ago: now
                        .duration_since(s.modified)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                }
            })
            .collect();
        Ok(Snapshot {
            t: rfc3339_micros(now),
            session: self.session.id().to_string(),
            mode: if self.terms.is_some() {
                "leased"
            } else {
                "once"
            },
            total: self.total,
            claimed,
            completed,
            failed,
            in_progress,
            done,
            rate_per_s: rate,
            eta_s,
            stopped,
            requests,
            workers,
        })
    }

    /// Progress per second over the last 30 s of refreshes; before there
    /// are two, since the first claim the summaries know of.
    fn rate(&mut self, progress: usize) -> Option<f64> {
        let now = self.clock.elapsed();
        self.history.push_back((now, progress));
        while self.history.len() > 2
            && now.saturating_sub(self.history[0].0) > Duration::from_secs(30)
        {
            self.history.pop_front();
        }
        let (t0, p0) = self.history[0];
        let dt = now.saturating_sub(t0).as_secs_f64();
        if self.history.len() >= 2 && dt > 0.0 {
            return Some(progress.saturating_sub(p0) as f64 / dt);
        }
        let first = self
            .summaries
            .values()
            .filter_map(|s| s.progress.first_ms)
            .min()?;
        let since =
            unix_millis(cloudmux::clock::system().now()).saturating_sub(first) as f64 / 1000.0;
        (since > 0.0).then(|| progress as f64 / since)
    }
}

/// How the refreshes are shown.
enum Show {
    Json,
    Bar(indicatif::ProgressBar),
    Lines,
}

/// `stat --watch`.
pub(crate) async fn watch(
    mux: &Multiplexer,
    id: &MuxId,
    json: bool,
    interval: Duration,
) -> Result<ExitCode> {
    let mut w = Watcher::new(mux, id).await?;
    let show = if json {
        Show::Json
    } else if std::io::stdout().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(w.total as u64),
            indicatif::ProgressDrawTarget::stdout(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Show::Bar(bar)
    } else {
        Show::Lines
    };
    let clock = mux.path().clock().clone();
    let mut signals = crate::child::Signals::new()?;
    loop {
        let snap = w.refresh().await?;
        render(&show, &snap);
        if snap.done {
            if let Show::Bar(b) = &show {
                b.finish();
            }
            return Ok(ExitCode::SUCCESS);
        }
        if snap.stopped.is_some() && snap.in_progress == Some(0) {
            if let Show::Bar(b) = &show {
                b.abandon();
            }
            eprintln!(
                "cloudmux: the session stopped handing out elements: {}",
                snap.stopped.unwrap_or_default()
            );
            return Ok(ExitCode::from(1));
        }
        tokio::select! {
            _ = clock.sleep(interval) => {}
            sig = signals.recv() => {
                if let Show::Bar(b) = &show {
                    b.abandon();
                }
                return Ok(ExitCode::from(u8::try_from(128 + sig).unwrap_or(255)));
            }
        }
    }
}

fn fmt_eta(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

fn summary_line(s: &Snapshot) -> String {
    let rate = s.rate_per_s.map_or("-".into(), |r| format!("{r:.1}/s"));
    match s.completed {
        Some(c) => format!(
            "completed {c}/{}  in progress {}  failed {}  rate {rate}  eta {}  workers {}",
            s.total,
            s.in_progress.unwrap_or(0),
            s.failed,
            fmt_eta(s.eta_s),
            s.workers.len()
        ),
        None => format!(
            "handed out {}/{}  failed {}  rate {rate}  eta {}  workers {}",
            s.claimed,
            s.total,
            s.failed,
            fmt_eta(s.eta_s),
            s.workers.len()
        ),
    }
}

fn worker_table(s: &Snapshot) -> String {
    let w = s
        .workers
        .iter()
        .map(|w| w.worker.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<w$}  {:>8}  {:>9}  {:>6}  state",
        "worker", "claimed", "completed", "failed"
    );
    for x in &s.workers {
        let state = if let Some(r) = &x.stopped {
            format!("stopped: {r}")
        } else if x.finished {
            "finished".into()
        } else {
            format!("running (summary {:.0} s ago)", x.seen_s_ago)
        };
        let completed = if s.completed.is_some() {
            x.completed.to_string()
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "\n{:<w$}  {:>8}  {completed:>9}  {:>6}  {state}",
            x.worker, x.claimed, x.failed
        ));
    }
    out
}

fn render(show: &Show, s: &Snapshot) {
    match show {
        Show::Json => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string(s).unwrap_or_default());
            let _ = out.flush();
        }
        Show::Lines => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}  {}", s.t, summary_line(s));
            let _ = out.flush();
        }
        Show::Bar(b) => {
            b.set_position(s.completed.map_or(s.claimed, |c| c + s.failed) as u64);
            b.set_message(format!("{}\n{}", summary_line(s), worker_table(s)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudmux::mux::{SessionOptions, Worker, WorkerOptions};
    use cloudmux::{FaultConfig, Faulty, InMemory};

    /// Measures what `Multiplexer::stat` and a `--watch` refresh cost on a
    /// leased session in the middle of a run with failures.
    #[tokio::test]
    async fn a_watch_refresh_costs_lists_and_changed_summaries_only() {
        let faulty = Faulty::new(InMemory::new(), FaultConfig::default());
        let root = UPath::new(faulty.clone(), "cost").unwrap();
        let n = 3000;
        let mux = Multiplexer::new(0..n as u64, &root, None).await.unwrap();
        let id = mux
            .create_read_session_with(SessionOptions::leased(Duration::from_secs(60)))
            .await
            .unwrap();
        // 4 workers: 2,000 completed, 40 failed for good, 4 in progress.
        let mut workers = Vec::new();
        for k in 0..4 {
            let mut opts = WorkerOptions::default()
                .worker_id(format!("w{k}"))
                .manual_ack();
            opts.summary_interval = Some(Duration::from_millis(1));
            workers.push(
                Worker::<u64>::open_path(mux.path(), id.clone(), opts)
                    .await
                    .unwrap(),
            );
        }
        let mut held = Vec::new();
        for i in 0..2044 {
            let w = &mut workers[i % 4];
            let t = w.next_task().await.unwrap().unwrap();
            if i < 2000 {
                t.ack().await.unwrap();
            } else if i < 2040 {
                t.lease().unwrap().fail_permanently("test").await.unwrap();
            } else {
                held.push(t);
            }
        }
        let before = faulty.stats().total();
        let st = mux.stat(&id).await.unwrap();
        let stat_cost = faulty.stats().total() - before;
        assert_eq!(st.leased.as_ref().unwrap().completed, 2000);

        let mut w = Watcher::new(&mux, &id).await.unwrap();
        let before = faulty.stats().total();
        let first = w.refresh().await.unwrap();
        let first_cost = faulty.stats().total() - before;
        let before = faulty.stats().total();
        let second = w.refresh().await.unwrap();
        let second_cost = faulty.stats().total() - before;
        println!(
            "N={n}, 2044 claimed, 2000 completed, 40 failed, 4 workers: \
             Multiplexer::stat {stat_cost} requests; watch refresh {first_cost} (first), {second_cost} (unchanged summaries)"
        );
        assert_eq!(first.completed, Some(2000));
        assert_eq!(first.failed, 40);
        assert_eq!(first.in_progress, Some(4));
        assert_eq!(first.requests, first_cost);
        // claims (3 pages), done (2), failed (1), workers (1), + 4 summaries.
        assert_eq!(first_cost, 3 + 2 + 1 + 1 + 4);
        assert_eq!(second_cost, 3 + 2 + 1 + 1);
        assert_eq!(second.requests, second_cost);
        assert!(
            stat_cost > first_cost,
            "stat {stat_cost} vs refresh {first_cost}"
        );
        drop(held);
    }
}
