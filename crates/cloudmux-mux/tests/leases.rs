//! Leased sessions in virtual time on the in-memory store: expiry, renewal,
//! reclaim races, fencing, attempt budgets and failure limits, with no real
//! sleeping (tokio's paused clock jumps to the next timer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cloudmux_core::clock::{Clock, TokioClock};
use cloudmux_core::{ErrorKind, FaultConfig, Faulty, InMemory, RetryPolicy, Store, UPath};
use cloudmux_mux::{
    ClaimState, FailOutcome, LeaseEnd, Multiplexer, MuxId, SessionOptions, Task, Worker,
    WorkerOptions,
};

const LEASE: Duration = Duration::from_secs(30);

struct Setup {
    clock: Arc<TokioClock>,
    mem: Arc<InMemory>,
    mux: Multiplexer,
    id: MuxId,
}

async fn setup(n: u64, opts: SessionOptions) -> Setup {
    let clock = TokioClock::fixed();
    let mem = InMemory::with_clock(clock.clone());
    let root = UPath::new(mem.clone(), "jobs")
        .unwrap()
        .with_clock(clock.clone());
    let mux = Multiplexer::new(0..n, &root, None).await.unwrap();
    let id = mux.create_read_session_with(opts).await.unwrap();
    Setup {
        clock,
        mem,
        mux,
        id,
    }
}

impl Setup {
    fn on(&self, store: Arc<dyn Store>) -> UPath {
        UPath::new(store, self.mux.path().key())
            .unwrap()
            .with_clock(self.clock.clone())
    }

    async fn worker(&self, name: &str) -> Worker<u64> {
        self.worker_on(self.mem.clone(), name, WorkerOptions::default())
            .await
    }

    async fn worker_on(
        &self,
        store: Arc<dyn Store>,
        name: &str,
        opts: WorkerOptions,
    ) -> Worker<u64> {
        Worker::open_path(&self.on(store), self.id.clone(), opts.worker_id(name))
            .await
            .unwrap()
    }
}

/// Runs a worker to the end; returns the indices it completed.
async fn drain(mut w: Worker<u64>) -> Vec<usize> {
    let mut got = Vec::new();
    while let Some(r) = w.next_task().await {
        let t = r.unwrap();
        assert_eq!(t.value, t.index as u64);
        got.push(t.index);
    }
    got
}

#[tokio::test(start_paused = true)]
async fn a_dead_workers_element_is_reclaimed_after_its_lease() {
    let s = setup(50, SessionOptions::leased(LEASE)).await;
    // A takes one element and dies (its handles and heartbeat are gone).
    let mut a = s.worker("a").await;
    let lost = a.next_task().await.unwrap().unwrap();
    let lost_index = lost.index;
    drop(lost);
    drop(a);
    let t0 = s.clock.elapsed();
    let got = drain(s.worker("b").await).await;
    let waited = s.clock.elapsed() - t0;
    let mut all = got.clone();
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<_>>(), "b completed everything");
    assert!(
        waited >= LEASE,
        "reclaimed only after a whole lease ({waited:?})"
    );
    assert!(s.mux.done(&s.id).await.unwrap());
    let st = s.mux.stat(&s.id).await.unwrap();
    let l = st.leased.unwrap();
    assert_eq!((l.completed, l.failed), (50, 0));
    assert_eq!(l.attempts, 51, "50 first claims and one take-over");
    // The reclaimed element's claim records the expired first attempt.
    let claim = claim_of(&s, lost_index).await;
    assert_eq!(claim.stamp.epoch, 2);
    assert_eq!(claim.body.history.len(), 1);
    assert_eq!(claim.body.history[0].worker, "a");
}

async fn claim_of(s: &Setup, i: usize) -> cloudmux_core::cond::Versioned<cloudmux_mux::Claim> {
    let p = s
        .mux
        .layout()
        .session(s.id.session())
        .unwrap()
        .claims()
        .unwrap()
        .join(&cloudmux_mux::layout::claim_name(
            i,
            cloudmux_mux::layout::claim_width(s.mux.len()),
        ))
        .unwrap();
    cloudmux_core::cond::CondDoc::new(p)
        .read()
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_renewed_lease_is_never_taken_over() {
    let s = setup(20, SessionOptions::leased(LEASE)).await;
    let mut a = s
        .worker_on(s.mem.clone(), "a", WorkerOptions::default().manual_ack())
        .await;
    let held = a.next_task().await.unwrap().unwrap();
    // b finishes everything else and watches; a holds its element for ten
    // leases, heartbeats renewing it.
    let b = tokio::spawn({
        let w = s.worker("b").await;
        drain(w)
    });
    s.clock.sleep(LEASE * 10).await;
    assert!(!held.lease().unwrap().is_lost());
    assert!(!b.is_finished(), "b waits for a's element");
    held.ack().await.unwrap();
    let got = b.await.unwrap();
    assert_eq!(got.len(), 19);
    assert!(!got.contains(&held.index));
    assert_eq!(
        claim_of(&s, held.index).await.stamp.epoch,
        1,
        "never reclaimed"
    );
    assert!(s.mux.done(&s.id).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn sixteen_workers_racing_to_reclaim_have_one_winner() {
    let s = setup(40, SessionOptions::leased(LEASE)).await;
    let mut a = s.worker("a").await;
    let dead = a.next_task().await.unwrap().unwrap().index;
    drop(a);
    // Someone claims everything else.
    let first = drain(s.worker("b").await);
    let rest = tokio::spawn(first);
    // 16 watchers join.
    let mut tasks = Vec::new();
    for w in 0..16 {
        let worker = s.worker(&format!("r{w}")).await;
        tasks.push(tokio::spawn(drain(worker)));
    }
    let mut per: BTreeMap<usize, usize> = BTreeMap::new();
    for i in rest.await.unwrap() {
        *per.entry(i).or_default() += 1;
    }
    for t in tasks {
        for i in t.await.unwrap() {
            *per.entry(i).or_default() += 1;
        }
    }
    assert_eq!(per.len(), 40);
    assert!(per.values().all(|&n| n == 1), "{per:?}");
    assert_eq!(claim_of(&s, dead).await.stamp.epoch, 2, "one take-over");
}

/// A store whose requests can be held up, as a stopped process's are.
#[derive(Debug)]
struct Pausable {
    inner: Arc<InMemory>,
    paused: AtomicBool,
    clock: Arc<TokioClock>,
}

impl Pausable {
    async fn gate(&self) {
        while self.paused.load(Ordering::SeqCst) {
            self.clock.sleep(Duration::from_millis(100)).await;
        }
    }
}

#[async_trait::async_trait]
impl Store for Pausable {
    fn root_url(&self) -> String {
        self.inner.root_url()
    }
    fn capabilities(&self) -> cloudmux_core::Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> cloudmux_core::Result<cloudmux_core::GetResult> {
        self.gate().await;
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> cloudmux_core::Result<cloudmux_core::ObjectMeta> {
        self.gate().await;
        self.inner.head(key).await
    }
    async fn put(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        mode: cloudmux_core::PutMode,
    ) -> cloudmux_core::Result<cloudmux_core::PutResult> {
        self.gate().await;
        self.inner.put(key, bytes, mode).await
    }
    async fn delete(&self, key: &str) -> cloudmux_core::Result<()> {
        self.gate().await;
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        req: cloudmux_core::ListRequest,
    ) -> cloudmux_core::Result<cloudmux_core::ListPage> {
        self.gate().await;
        self.inner.list(req).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_worker_that_wakes_cannot_complete_a_reclaimed_element() {
    let s = setup(10, SessionOptions::leased(LEASE)).await;
    let stall = Arc::new(Pausable {
        inner: s.mem.clone(),
        paused: AtomicBool::new(false),
        clock: s.clock.clone(),
    });
    let mut a = s
        .worker_on(
            stall.clone(),
            "stalled",
            WorkerOptions::default().manual_ack(),
        )
        .await;
    let held = a.next_task().await.unwrap().unwrap();
    // a stops (SIGSTOP): its heartbeats hang.
    stall.paused.store(true, Ordering::SeqCst);
    let got = drain(s.worker("b").await).await;
    assert_eq!(got.len(), 10, "b completed every element, a's included");
    assert!(got.contains(&held.index));
    // a is continued: its acknowledgement is refused, and nothing changes.
    stall.paused.store(false, Ordering::SeqCst);
    let e = held.ack().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    assert!(held.lease().unwrap().is_lost());
    let c = claim_of(&s, held.index).await;
    assert_eq!(c.stamp.epoch, 2);
    assert_eq!(c.body.worker, "b");
    assert_eq!(c.body.state, Some(ClaimState::Done));
    let st = s.mux.stat(&s.id).await.unwrap().leased.unwrap();
    assert_eq!(st.completed, 10);
}

#[tokio::test(start_paused = true)]
async fn an_element_failing_every_attempt_is_recorded_failed_with_its_reasons() {
    let s = setup(5, SessionOptions::leased(LEASE).max_attempts(3)).await;
    let mut w = s.worker("picky").await;
    let mut completed = Vec::new();
    let mut failures = 0;
    while let Some(r) = w.next_task().await {
        let t: Task<u64> = r.unwrap();
        if t.value == 3 {
            let attempt = t.attempt();
            let outcome = t
                .fail(&format!("element 3 fails (attempt {attempt})"))
                .await
                .unwrap();
            // The caller learns when the attempts are spent.
            let want = if attempt < 3 {
                FailOutcome::Retried
            } else {
                FailOutcome::Failed
            };
            assert_eq!(outcome, want, "attempt {attempt}");
            failures += 1;
        } else {
            completed.push(t.index);
        }
    }
    assert_eq!(failures, 3, "tried exactly max_attempts times");
    completed.sort();
    assert_eq!(completed, [0, 1, 2, 4]);
    assert!(
        s.mux.done(&s.id).await.unwrap(),
        "done: completed or failed"
    );
    let st = s.mux.stat(&s.id).await.unwrap().leased.unwrap();
    assert_eq!((st.completed, st.failed), (4, 1));
    let f = &st.failed_elements[0];
    assert_eq!(f.index, 3);
    assert_eq!(f.attempts.len(), 3);
    assert!(
        f.attempts[2]
            .reason
            .as_deref()
            .unwrap()
            .contains("attempt 3")
    );
}

#[tokio::test(start_paused = true)]
async fn max_failed_stops_handing_out_new_elements() {
    let s = setup(
        100,
        SessionOptions::leased(LEASE).max_attempts(1).max_failed(2),
    )
    .await;
    let mut w = s.worker("doomed").await;
    let mut tried = 0;
    while let Some(r) = w.next_task().await {
        let outcome = r.unwrap().fail("always fails").await.unwrap();
        assert_eq!(outcome, FailOutcome::Failed, "max_attempts 1");
        tried += 1;
    }
    assert!(tried >= 2, "tried {tried}");
    assert!(tried < 100, "stopped early, after {tried}");
    assert!(w.progress().stopped.is_some());
    assert!(!s.mux.done(&s.id).await.unwrap());
    let st = s.mux.stat(&s.id).await.unwrap().leased.unwrap();
    assert!(st.failed >= 2);
}

#[tokio::test(start_paused = true)]
async fn lease_writes_settle_by_nonce() {
    // A renewal whose response is lost meets 412 on its retry (its own
    // first attempt changed the version): settled as ours by the nonce.
    let s = setup(3, SessionOptions::leased(LEASE)).await;
    let lossy = Faulty::with_clock(
        s.mem.clone(),
        FaultConfig::faults(0.0, 1.0, 5),
        s.clock.clone(),
    );
    let mut w = s
        .worker_on(lossy.clone(), "w", WorkerOptions::default().manual_ack())
        .await;
    let t = loop {
        match w.next_task().await.unwrap() {
            Ok(t) => break t,
            Err(e) => assert!(e.is_retryable() || e.is_outcome_unknown(), "{e}"),
        }
    };
    let lease = t.lease().unwrap().clone();
    let before = lossy.stats().injected_lost;
    lease.renew().await.unwrap();
    assert!(
        lossy.stats().injected_lost > before,
        "the renewal's answer was lost"
    );
    assert!(!lease.is_lost());
    // A renewal that meets 412 and then finds the claim gone: lost.
    let claims = s
        .mux
        .layout()
        .session(s.id.session())
        .unwrap()
        .claims()
        .unwrap();
    claims
        .join(&cloudmux_mux::layout::claim_name(t.index, 1))
        .unwrap()
        .remove_file()
        .await
        .unwrap();
    let e = lease.renew().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced);
    assert_eq!(lease.end(), LeaseEnd::Lost);
}

/// Transient errors, lost responses and late writes in a leased session,
/// over 24 seeds: every element completed once, none lost.
#[tokio::test(start_paused = true)]
async fn leased_sessions_under_faults_many_seeds() {
    for seed in 0..seeds() {
        let s = setup(120, SessionOptions::leased(LEASE)).await;
        let f = Faulty::with_clock(
            s.mem.clone(),
            FaultConfig {
                latency: Duration::from_millis(20),
                jitter: Duration::from_millis(10),
                transient_rate: 0.08,
                lost_rate: 0.02,
                late_rate: 0.02,
                seed,
            },
            s.clock.clone(),
        );
        let acks = Arc::new(Vec::from_iter((0..120).map(|_| AtomicUsize::new(0))));
        let mut tasks = Vec::new();
        for w in 0..6 {
            let path = s.on(f.clone()).with_retry(RetryPolicy {
                max_attempts: 3,
                min_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(50),
            });
            let id = s.id.clone();
            let acks = acks.clone();
            tasks.push(tokio::spawn(async move {
                let opts = WorkerOptions::default()
                    .worker_id(format!("w{w}"))
                    .seed(seed * 100 + w)
                    .manual_ack();
                let mut worker = loop {
                    match Worker::<u64>::open_path(&path, id.clone(), opts.clone()).await {
                        Ok(w) => break w,
                        Err(e) if e.is_retryable() || e.is_outcome_unknown() => continue,
                        Err(e) => panic!("open: {e}"),
                    }
                };
                while let Some(r) = worker.next_task().await {
                    let t = match r {
                        Ok(t) => t,
                        Err(e) if e.is_retryable() || e.is_outcome_unknown() => continue,
                        Err(e) => panic!("next: {e}"),
                    };
                    // Acknowledge, retrying what is not known to be done.
                    loop {
                        match t.ack().await {
                            Ok(()) => {
                                acks[t.index].fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(e) if e.kind() == ErrorKind::Fenced => break,
                            Err(e) if e.is_retryable() || e.is_outcome_unknown() => continue,
                            Err(e) => panic!("ack: {e}"),
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        f.flush_late().await;
        let counts: Vec<usize> = acks.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        let lost: Vec<usize> = (0..120).filter(|&i| counts[i] == 0).collect();
        let twice: Vec<usize> = (0..120).filter(|&i| counts[i] > 1).collect();
        assert!(lost.is_empty(), "seed {seed}: never completed {lost:?}");
        assert!(twice.is_empty(), "seed {seed}: completed twice {twice:?}");
        assert!(s.mux.done(&s.id).await.unwrap(), "seed {seed}");
        let st = f.stats();
        assert!(
            st.injected_lost + st.injected_late > 0,
            "seed {seed}: {st:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_failed_gives_failed_elements_a_new_budget() {
    let s = setup(4, SessionOptions::leased(LEASE).max_attempts(1)).await;
    let mut w = s.worker("buggy").await;
    while let Some(r) = w.next_task().await {
        let t = r.unwrap();
        if t.index % 2 == 0 {
            t.fail("bug").await.unwrap();
        }
    }
    assert!(s.mux.done(&s.id).await.unwrap());
    assert_eq!(s.mux.stat(&s.id).await.unwrap().leased.unwrap().failed, 2);
    // The bug is fixed: the failed elements go round again.
    assert_eq!(s.mux.retry_failed(&s.id).await.unwrap(), 2);
    assert!(!s.mux.done(&s.id).await.unwrap());
    let got = drain(s.worker("fixed").await).await;
    let mut got = got;
    got.sort();
    assert_eq!(got, [0, 2]);
    let st = s.mux.stat(&s.id).await.unwrap().leased.unwrap();
    assert_eq!((st.completed, st.failed), (4, 0));
    assert!(s.mux.done(&s.id).await.unwrap());
    let c = claim_of(&s, 0).await;
    assert_eq!(
        c.body.earlier.len(),
        1,
        "the failed attempt is kept for the record"
    );
    assert_eq!(c.stamp.epoch, 2);
}

/// Seeds of the fault runs: 24, or `CLOUDMUX_FAULT_SEEDS` for a longer stress run.
fn seeds() -> u64 {
    std::env::var("CLOUDMUX_FAULT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}
