//! Multiplexer tests on the in-memory and local backends: exactly-once
//! hand-out under threads, faults, several sessions, late joiners, and
//! typed errors for bad input.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cloudmux_core::cond::CondDoc;
use cloudmux_core::{
    CoreResolver, ErrorKind, FaultConfig, Faulty, InMemory, LocalFs, RetryPolicy, Store, UPath,
};
use cloudmux_mux::layout::{claim_name, claim_width};
use cloudmux_mux::{Claim, DestroyOptions, Multiplexer, MuxId, Worker, WorkerOptions};
use futures::StreamExt;

/// Runs `workers` concurrent workers on `dataset` and returns what each got.
async fn run_workers(
    dataset: &UPath,
    id: &MuxId,
    workers: usize,
    seed: u64,
) -> Vec<Vec<(usize, u64)>> {
    let mut handles = Vec::new();
    for w in 0..workers {
        let dataset = dataset.clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            let opts = WorkerOptions::default()
                .worker_id(format!("w{w}"))
                .seed(seed.wrapping_mul(1000).wrapping_add(w as u64));
            // Seeds take turns: random starts, every worker given its shard,
            // and half of them given one.
            let opts = match seed % 3 {
                1 => opts.shard(w as u64, workers as u64),
                2 if w % 2 == 0 => opts.shard(w as u64, workers as u64),
                _ => opts,
            };
            // Opening is retried by the caller on transient failures.
            let mut worker = loop {
                match Worker::<u64>::open_path(&dataset, id.clone(), opts.clone()).await {
                    Ok(w) => break w,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("open: {e}"),
                }
            };
            let mut got = Vec::new();
            while let Some(r) = worker.next().await {
                match r {
                    Ok(x) => got.push(x),
                    // Storage errors are reported and the worker goes on; a
                    // claim whose outcome is unknown is settled on the next call.
                    Err(e) => assert!(
                        e.is_retryable() || e.is_outcome_unknown(),
                        "unexpected error: {e}"
                    ),
                }
            }
            got
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Asserts every element 0..n was obtained exactly once, with the right value.
fn assert_exactly_once(got: &[Vec<(usize, u64)>], n: usize, value: impl Fn(usize) -> u64) {
    let mut seen = vec![0u32; n];
    for w in got {
        for &(i, v) in w {
            assert_eq!(v, value(i), "element {i} decoded wrongly");
            seen[i] += 1;
        }
    }
    let missing: Vec<_> = (0..n).filter(|&i| seen[i] == 0).collect();
    let doubled: Vec<_> = (0..n).filter(|&i| seen[i] > 1).collect();
    assert!(missing.is_empty(), "never handed out: {missing:?}");
    assert!(doubled.is_empty(), "handed out twice: {doubled:?}");
}

fn latency(store: Arc<dyn Store>, ms: u64, seed: u64) -> Arc<Faulty> {
    Faulty::new(
        store,
        FaultConfig {
            latency: Duration::from_millis(ms),
            jitter: Duration::from_millis(ms / 2),
            seed,
            ..FaultConfig::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_with_1_to_64_threads_in_memory() {
    for workers in [1usize, 2, 7, 16, 64] {
        let mem = InMemory::new();
        let root = UPath::new(mem.clone(), "jobs").unwrap();
        let n = 600;
        let mux = Multiplexer::new((0..n as u64).map(|i| i * 3), &root, Some("t"))
            .await
            .unwrap();
        assert_eq!(mux.len(), n);
        let id = mux.create_read_session().await.unwrap();
        // A little latency so that workers really interleave.
        let f = latency(mem.clone(), 1, workers as u64);
        let ds = UPath::new(f.clone(), mux.path().key()).unwrap();
        let got = run_workers(&ds, &id, workers, 1).await;
        assert_exactly_once(&got, n, |i| i as u64 * 3);
        assert!(mux.done(&id).await.unwrap());
        let st = mux.stat(&id).await.unwrap();
        assert_eq!((st.total, st.claimed), (n, n));
        assert!(st.done);
        let per: u64 = st.workers.iter().map(|w| w.claimed).sum();
        assert_eq!(
            per, n as u64,
            "worker summaries add up after the workers finished"
        );
        assert!(st.workers.iter().all(|w| w.finished));
        let exact = mux.stat_exact(&id).await.unwrap();
        for w in &got.iter().enumerate().collect::<Vec<_>>() {
            let line = exact
                .workers
                .iter()
                .find(|s| s.worker == format!("w{}", w.0));
            assert_eq!(line.map(|l| l.claimed).unwrap_or(0), w.1.len() as u64);
        }
        assert!(f.stats().total() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_on_local_fs_with_threads() {
    let dir = tempfile::tempdir().unwrap();
    let root = UPath::new(LocalFs::new(dir.path()).unwrap(), "jobs").unwrap();
    let n = 1500;
    let mux = Multiplexer::new(0..n as u64, &root, None).await.unwrap();
    let id = mux.create_read_session().await.unwrap();
    let got = run_workers(mux.path(), &id, 16, 2).await;
    assert_exactly_once(&got, n, |i| i as u64);
    assert!(mux.done(&id).await.unwrap());
    assert!(mux.destroy().await.unwrap() > n);
    assert!(
        !root.is_dir().await.unwrap(),
        "destroy leaves nothing behind"
    );
}

/// Transient errors, lost responses and writes applied late (after the
/// caller gave up and read back nothing), over 24 seeds: no element lost, none
/// handed out twice, and every stored claim names the worker that got it;
/// with random starts, shard hints, and a mix of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_under_faults_many_seeds() {
    let mut late_total = 0;
    for seed in 0..seeds() {
        let mem = InMemory::new();
        let root = UPath::new(mem.clone(), "jobs").unwrap();
        let n = 300;
        let mux = Multiplexer::new(0..n as u64, &root, None).await.unwrap();
        let id = mux.create_read_session().await.unwrap();
        let f = Faulty::new(
            mem.clone(),
            FaultConfig {
                latency: Duration::from_micros(300),
                jitter: Duration::from_micros(300),
                transient_rate: 0.10,
                lost_rate: 0.02,
                late_rate: 0.03,
                seed,
            },
        );
        // Few retries, so that some failures reach the worker and its
        // settle-before-continuing path runs too.
        let ds = UPath::new(f.clone(), mux.path().key())
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 2,
                min_delay: Duration::from_micros(100),
                max_delay: Duration::from_millis(2),
            });
        let got = run_workers(&ds, &id, 8, seed).await;
        // Whatever the "server" still holds back is applied now.
        f.flush_late().await;
        assert_exactly_once(&got, n, |i| i as u64);
        // No claim in storage belongs to a worker that did not get it.
        let width = claim_width(n);
        let claims = mux
            .path()
            .join("sessions")
            .unwrap()
            .join(id.session())
            .unwrap()
            .join("claims")
            .unwrap();
        for (w, items) in got.iter().enumerate() {
            for &(i, _) in items {
                let c = CondDoc::<Claim>::new(claims.join(&claim_name(i, width)).unwrap())
                    .read()
                    .await
                    .unwrap()
                    .expect("a handed-out element has its claim");
                assert_eq!(c.body.worker, format!("w{w}"), "seed {seed}: claim {i}");
            }
        }
        let s = f.stats();
        assert!(
            s.injected_lost > 0 && s.injected_transient > 0 && s.injected_late > 0,
            "seed {seed}: {s:?}"
        );
        late_total += s.injected_late;
    }
    assert!(late_total > 50, "late writes injected: {late_total}");
}

/// The scenario of a lost element, step by step: a claim's create times out,
/// the read-back finds nothing, and only then does the server apply it. The
/// worker must not take the index for free and claim it anew with a new
/// nonce (that claim would collide with its own late one, and nobody would
/// ever process the element).
#[tokio::test]
async fn a_claim_applied_after_its_read_back_is_still_handed_out() {
    for seed in 0..16u64 {
        let mem = InMemory::new();
        let root = UPath::new(mem.clone(), "jobs").unwrap();
        let mux = Multiplexer::new([10u64, 11, 12], &root, None)
            .await
            .unwrap();
        let id = mux.create_read_session().await.unwrap();
        // Every write is applied late; no retries inside a request.
        let f = Faulty::new(
            mem.clone(),
            FaultConfig::default().with_late(1.0).with_seed(seed),
        );
        let ds = UPath::new(f.clone(), mux.path().key())
            .unwrap()
            .with_retry(RetryPolicy::none());
        let mut w = Worker::<u64>::open_path(&ds, id.clone(), WorkerOptions::default().seed(seed))
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..200 {
            match w.next().await {
                Some(Ok(x)) => got.push(x.0),
                Some(Err(e)) => {
                    assert!(e.is_outcome_unknown() || e.is_retryable(), "{e}");
                    // The server catches up between calls.
                    f.flush_late().await;
                }
                None => break,
            }
        }
        got.sort();
        assert_eq!(got, [0, 1, 2], "seed {seed}: every element handed out");
        assert!(f.stats().injected_late > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_are_independent_and_concurrent() {
    let mem = InMemory::new();
    let root = UPath::new(mem.clone(), "jobs").unwrap();
    let n = 400;
    let mux = Multiplexer::new(0..n as u64, &root, None).await.unwrap();
    let a = mux.create_read_session().await.unwrap();
    let b = mux.create_read_session().await.unwrap();
    assert_ne!(a, b);
    let f = latency(mem.clone(), 1, 9);
    let ds = UPath::new(f, mux.path().key()).unwrap();
    let (ga, gb) = tokio::join!(run_workers(&ds, &a, 5, 3), run_workers(&ds, &b, 3, 4));
    assert_exactly_once(&ga, n, |i| i as u64);
    assert_exactly_once(&gb, n, |i| i as u64);
    let sessions = mux.sessions().await.unwrap();
    assert_eq!(sessions.len(), 2);
    // A third session, later, starts from scratch.
    let c = mux.create_read_session().await.unwrap();
    assert!(!mux.done(&c).await.unwrap());
    assert_eq!(mux.stat(&c).await.unwrap().claimed, 0);
    let gc = run_workers(mux.path(), &c, 2, 5).await;
    assert_exactly_once(&gc, n, |i| i as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_joiners() {
    let mem = InMemory::new();
    let root = UPath::new(mem.clone(), "jobs").unwrap();
    let n = 200;
    let mux = Multiplexer::new(0..n as u64, &root, None).await.unwrap();
    let id = mux.create_read_session().await.unwrap();
    // An early worker takes 50.
    let mut early = Worker::<u64>::open_path(mux.path(), id.clone(), WorkerOptions::default())
        .await
        .unwrap();
    let mut got = vec![];
    for _ in 0..50 {
        got.push(early.next().await.unwrap().unwrap());
    }
    assert_eq!(mux.stat(&id).await.unwrap().claimed, 50);
    // A late worker takes everything else; then the early one finds nothing.
    let late: Vec<(usize, u64)> =
        Worker::<u64>::open_path(mux.path(), id.clone(), WorkerOptions::default())
            .await
            .unwrap()
            .into_stream()
            .map(|r| r.unwrap())
            .collect()
            .await;
    assert_eq!(late.len(), n - 50);
    assert!(early.next().await.is_none());
    assert_exactly_once(&[got, late], n, |i| i as u64);
    // A worker joining after everything was claimed gets nothing and
    // tries no claim.
    let mut after = Worker::<u64>::open_path(mux.path(), id.clone(), WorkerOptions::default())
        .await
        .unwrap();
    assert!(after.next().await.is_none());
    assert!(after.next().await.is_none(), "stays finished");
    assert_eq!(after.progress().claimed, 0);
}

#[tokio::test]
async fn bad_input_gives_typed_errors() {
    let mem = InMemory::named("mux-bad-input");
    let root = UPath::new(mem.clone(), "jobs").unwrap();
    // Empty dataset.
    let e = Multiplexer::new(Vec::<u32>::new(), &root, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("empty"));
    // Malformed mux ids.
    for bad in [
        "",
        "nonsense",
        "cmx2:s@mem://x",
        "cmx1:s",
        "cmx1:../x@mem://x",
        "gAN9cQAu",
    ] {
        let e = Worker::<u64>::open(&CoreResolver, bad, WorkerOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
    }
    // Unknown scheme in a well-formed id.
    let e = Worker::<u64>::open(&CoreResolver, "cmx1:s@ftp://x/y", WorkerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // A session that does not exist.
    let mux = Multiplexer::new([1u64, 2, 3], &root, Some("bad input"))
        .await
        .unwrap();
    assert!(
        mux.path().name().ends_with("-bad_input"),
        "tag is cleaned: {}",
        mux.path()
    );
    let id = mux.create_read_session().await.unwrap();
    let ghost = MuxId::new("nosuchsession", id.dataset_url()).unwrap();
    let e = Worker::<u64>::open(&CoreResolver, &ghost.to_string(), WorkerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // A corrupt data file.
    mux.path()
        .join("data.msgpack")
        .unwrap()
        .overwrite_bytes(&b"\x93\x01\x02"[..])
        .await
        .unwrap();
    let e = Worker::<u64>::open(&CoreResolver, &id.to_string(), WorkerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    // Elements of the wrong type are a typed error, and the claim is not lost silently.
    mux.path()
        .join("data.msgpack")
        .unwrap()
        .overwrite_bytes(cloudmux_mux::encode_elements(["a", "b", "c"]).unwrap().0)
        .await
        .unwrap();
    let mut w = Worker::<u64>::open(&CoreResolver, &id.to_string(), WorkerOptions::default())
        .await
        .unwrap();
    let e = w.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    // A destroyed dataset (the session is unfinished: forced).
    let e = mux.destroy().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
    mux.destroy_with(DestroyOptions {
        force: true,
        grace: Some(Duration::ZERO),
    })
    .await
    .unwrap();
    let e = Worker::<u64>::open(&CoreResolver, &id.to_string(), WorkerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = Multiplexer::open(mux.path()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn dataset_folders_sort_by_time_and_never_collide() {
    // On a clock that moves a microsecond per dataset (and a real one would
    // not be trusted to move forward at all), the folder names sort by
    // creation time; two datasets never share a folder.
    let clock = cloudmux_core::clock::ManualClock::fixed();
    let root = UPath::parse("mem://mux-folders/jobs")
        .unwrap()
        .with_clock(clock.clone());
    let mut names = Vec::new();
    for i in 0..20 {
        if i % 2 == 0 {
            clock.advance(Duration::from_micros(1));
        }
        let m = Multiplexer::new([1u8], &root, None).await.unwrap();
        names.push(m.path().name().to_string());
    }
    let set: BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(set.len(), names.len(), "two datasets got the same folder");
    let times: Vec<_> = names.iter().map(|n| n[..23].to_string()).collect();
    let mut st = times.clone();
    st.sort();
    assert_eq!(times, st, "folder names sort by creation time");
    assert!(times[0] < times[2] && times[0] == times[1]);
    let m = Multiplexer::open(&root.join(&names[0]).unwrap())
        .await
        .unwrap();
    assert_eq!(m.manifest().count, 1);
    assert_eq!(m.manifest().format, "cloudmux-dataset");
}

#[test]
fn blocking_iterator_outside_async() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let root = UPath::parse("mem://mux-blocking/jobs").unwrap();
        let mux = Multiplexer::new((0..100u64).map(|i| format!("item-{i}")), &root, None)
            .await
            .unwrap();
        mux.create_read_session().await.unwrap()
    });
    let id_s = id.to_string();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let id_s = id_s.clone();
            std::thread::spawn(move || {
                let w = cloudmux_mux::BlockingWorker::<String>::open(
                    &CoreResolver,
                    &id_s,
                    WorkerOptions::default().worker_id(format!("thread-{t}")),
                )
                .unwrap();
                w.map(|r| r.unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("item-{i}")).collect();
    want.sort();
    assert_eq!(all, want);
}

/// The indices form a circle: a lone worker walks from its random start to
/// the end and on from index 0, and never needs to list the claims.
#[tokio::test]
async fn a_lone_worker_wraps_around_without_listing() {
    let root = UPath::new(InMemory::new(), "jobs").unwrap();
    let n = 250;
    let mux = Multiplexer::new(0..n as u64, &root, None).await.unwrap();
    let id = mux.create_read_session().await.unwrap();
    for seed in [1u64, 2, 3] {
        let id = mux.create_read_session().await.unwrap();
        let opts = WorkerOptions::default().worker_id("solo").seed(seed);
        let mut w = Worker::<u64>::open_path(mux.path(), id, opts)
            .await
            .unwrap();
        let mut order = Vec::new();
        while let Some(r) = w.next().await {
            order.push(r.unwrap().0);
        }
        let start = order[0];
        let expected: Vec<usize> = (start..n).chain(0..start).collect();
        assert_eq!(order, expected, "seed {seed}");
        assert_eq!(w.progress().lists, 0, "seed {seed}");
        assert_eq!(w.progress().collisions, 0);
    }
    assert!(!mux.done(&id).await.unwrap());
}

/// A store whose `start_after` is emulated at extra cost (Azure declares
/// `list_start_after: false`): workers narrow listings by key prefix instead
/// and never send a `start_after`.
#[derive(Debug)]
struct NoStartAfter {
    inner: Arc<InMemory>,
    sent: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Store for NoStartAfter {
    fn root_url(&self) -> String {
        self.inner.root_url()
    }
    fn capabilities(&self) -> cloudmux_core::Capabilities {
        self.inner.capabilities().with_list_start_after(false)
    }
    async fn get(&self, key: &str) -> cloudmux_core::Result<cloudmux_core::GetResult> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> cloudmux_core::Result<cloudmux_core::ObjectMeta> {
        self.inner.head(key).await
    }
    async fn put(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        mode: cloudmux_core::PutMode,
    ) -> cloudmux_core::Result<cloudmux_core::PutResult> {
        self.inner.put(key, bytes, mode).await
    }
    async fn delete(&self, key: &str) -> cloudmux_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        req: cloudmux_core::ListRequest,
    ) -> cloudmux_core::Result<cloudmux_core::ListPage> {
        if req.start_after.is_some() {
            self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.list(req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_cheap_start_after_workers_list_by_prefix() {
    let store = Arc::new(NoStartAfter {
        inner: InMemory::new(),
        sent: Default::default(),
    });
    let root = UPath::new(store.clone(), "jobs").unwrap();
    let n = 3000;
    let mux = Multiplexer::new(0..n as u64, &root, None).await.unwrap();
    let id = mux.create_read_session().await.unwrap();
    let got = run_workers(mux.path(), &id, 12, 7).await;
    assert_exactly_once(&got, n, |i| i as u64);
    assert_eq!(store.sent.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(mux.done(&id).await.unwrap());
}

/// Seeds of the fault runs: 24, or `CLOUDMUX_FAULT_SEEDS` for a longer stress run.
fn seeds() -> u64 {
    std::env::var("CLOUDMUX_FAULT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}
