//! OS processes sharing one session on the local-filesystem backend.
//!
//! The parent test re-runs this test binary as child processes (the `child`
//! test does nothing unless `CMX_CHILD` is set); children print `RESULT`
//! lines that the parent checks.

use cloudmux_core::testkit::process::spawn_children;
use cloudmux_core::{CoreResolver, UPath};
use cloudmux_mux::{Multiplexer, Worker, WorkerOptions};

const PROCS: usize = 8;

#[test]
fn child() {
    let Some((role, arg, me)) = cloudmux_core::testkit::process::role() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        match role.as_str() {
            "mux" => {
                let opts = WorkerOptions::default().worker_id(format!("proc-{me}"));
                let mut w = Worker::<u64>::open(&CoreResolver, &arg, opts)
                    .await
                    .unwrap();
                while let Some(r) = w.next().await {
                    let (i, v) = r.unwrap();
                    println!("RESULT {i} {v}");
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[tokio::test]
async fn processes_share_one_session_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = UPath::parse(dir.path().to_str().unwrap()).unwrap();
    let n = 3000u64;
    let mux = Multiplexer::new((0..n).map(|i| i * 7), &root, Some("procs"))
        .await
        .unwrap();
    let id = mux.create_read_session().await.unwrap().to_string();
    let lines = tokio::task::spawn_blocking(move || spawn_children(PROCS, "mux", &id))
        .await
        .unwrap();
    let mut seen = vec![0u32; n as usize];
    for l in &lines {
        let (i, v) = l.split_once(' ').unwrap();
        let (i, v): (usize, u64) = (i.parse().unwrap(), v.parse().unwrap());
        assert_eq!(v, i as u64 * 7);
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&s| s == 1),
        "every element exactly once across {PROCS} processes"
    );
    let id = mux.sessions().await.unwrap().remove(0);
    let st = mux.stat(&id).await.unwrap();
    assert!(st.done);
    assert_eq!(st.workers.len(), PROCS, "each process wrote its summary");
    assert!(st.workers.iter().all(|w| w.finished));
    mux.destroy().await.unwrap();
    assert!(
        !root
            .join(mux.path().name())
            .unwrap()
            .exists()
            .await
            .unwrap()
    );
}
