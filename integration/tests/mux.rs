//! The Multiplexer on the selected backend: threads in this process, and
//! several OS processes sharing one session through the backend.

use std::process::Stdio;

use cloudmux::mux::{Multiplexer, Worker, WorkerOptions};
use cloudmux_core::clock::Stopwatch;
use cloudmux_core::testkit::fresh;
use cloudmux_integration::backend::{Backend, Kind};
use libtest_mimic::Trial;

use crate::common::{Needs, check};

const HELPER: &str = env!("CARGO_BIN_EXE_cmx-helper");

pub(crate) fn trials(kind: Kind) -> Vec<Trial> {
    vec![
        check(
            "mux::tasks_share_a_session_exactly_once",
            kind,
            Needs::Any,
            tasks_share_a_session_exactly_once,
        ),
        check(
            "mux::processes_share_a_session_exactly_once",
            kind,
            Needs::SharedAcrossProcesses,
            processes_share_a_session_exactly_once,
        ),
    ]
}

/// Appends a measurement line that `localstack/run-tests.sh` prints in its summary.
fn record(line: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../localstack/.state");
    if std::fs::create_dir_all(&dir).is_ok() {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("measurements.txt"))
        {
            let _ = writeln!(f, "{line}");
        }
    }
    eprintln!("{line}");
}

async fn tasks_share_a_session_exactly_once(b: Backend) {
    let root = fresh(&b.root, "mux-tasks");
    let n = 120u64;
    let mux = Multiplexer::new((0..n).map(|i| i + 1000), &root, Some("tasks"))
        .await
        .unwrap();
    let id = mux.create_read_session().await.unwrap();
    let mut handles = Vec::new();
    for w in 0..4 {
        let ds = mux.path().clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            let opts = WorkerOptions::default().worker_id(format!("task-{w}"));
            let mut worker = Worker::<u64>::open_path(&ds, id, opts).await.unwrap();
            let mut got = Vec::new();
            while let Some(r) = worker.next().await {
                got.push(r.unwrap());
            }
            got
        }));
    }
    let mut seen = vec![0; n as usize];
    for h in handles {
        for (i, v) in h.await.unwrap() {
            assert_eq!(v, i as u64 + 1000);
            seen[i] += 1;
        }
    }
    assert!(seen.iter().all(|&c| c == 1), "exactly once: {seen:?}");
    assert!(mux.done(&id).await.unwrap());
    let st = mux.stat_exact(&id).await.unwrap();
    assert_eq!(st.claimed, n as usize);
    assert_eq!(st.workers.iter().map(|w| w.claimed).sum::<u64>(), n);
    mux.destroy().await.unwrap();
}

/// Eight OS processes join one session by its mux id alone (resolving the
/// dataset URL through the facade with their ambient configuration).
/// A measurement is recorded, never asserted: timing and request counts
/// vary with the machine and the emulator.
async fn processes_share_a_session_exactly_once(b: Backend) {
    let root = fresh(&b.root, "mux-procs");
    let n = 400u64;
    let procs = 8;
    let mux = Multiplexer::new((0..n).map(|i| i * 3), &root, Some("procs"))
        .await
        .unwrap();
    let id = mux.create_read_session().await.unwrap();
    let started = Stopwatch::system();
    let mut children = Vec::new();
    for p in 0..procs {
        let mut cmd = tokio::process::Command::new(HELPER);
        cmd.args(["mux", &id.to_string(), &format!("proc-{p}")])
            .envs(b.child_env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(cmd.spawn().expect("spawn the helper"));
    }
    let mut seen = vec![0u32; n as usize];
    let (mut claimed, mut collisions, mut lists, mut markers) = (0u64, 0u64, 0u64, 0u64);
    for (p, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "worker process {p} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f[..] {
                ["got", i, v] => {
                    let (i, v): (usize, u64) = (i.parse().unwrap(), v.parse().unwrap());
                    assert_eq!(v, i as u64 * 3);
                    seen[i] += 1;
                }
                ["progress", a, b, c, d] => {
                    claimed += a.parse::<u64>().unwrap();
                    collisions += b.parse::<u64>().unwrap();
                    lists += c.parse::<u64>().unwrap();
                    markers += d.parse::<u64>().unwrap();
                }
                _ => panic!("unexpected helper output: {line}"),
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let missing = seen.iter().filter(|&&c| c == 0).count();
    let doubled = seen.iter().filter(|&&c| c > 1).count();
    assert_eq!(
        (missing, doubled),
        (0, 0),
        "exactly once across {procs} processes"
    );
    assert_eq!(claimed, n);
    assert!(mux.done(&id).await.unwrap());
    // Requests per element handed out, as counted by the workers: one create
    // per claim and per collision, the listings and marker requests, and the
    // two reads of joining (session document, data file) per process.
    let requests = claimed + collisions + lists + markers + 2 * procs as u64;
    let label = match std::env::var("CLOUDMUX_S3_ENDPOINT") {
        Ok(e) if b.kind.name() == "s3" => format!("s3 at {e}"),
        _ => b.kind.name().to_string(),
    };
    record(&format!(
        "mux on {label}: {procs} processes, {n} elements in {secs:.2} s = {:.0} elements/s (process start included); \
         {:.3} requests/element ({collisions} collisions, {lists} lists, {markers} marker requests)",
        n as f64 / secs,
        requests as f64 / n as f64
    ));
    mux.destroy().await.unwrap();
}
