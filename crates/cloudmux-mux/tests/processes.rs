//! OS processes sharing one session on the local-filesystem backend.
//!
//! The parent test re-runs this test binary as child processes (the `child`
//! test does nothing unless `CMX_CHILD` is set); children print `RESULT`
//! lines that the parent checks.

use std::process::{Command, Stdio};

use cloudmux_core::{CoreResolver, UPath};
use cloudmux_mux::{Multiplexer, Worker, WorkerOptions};

const PROCS: usize = 8;

fn spawn_children(role: &str, arg: &str) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "child", "--nocapture", "--test-threads=1"])
                .env("CMX_CHILD", role)
                .env("CMX_ARG", arg)
                .env("CMX_INDEX", i.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut lines = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a child process failed");
        let text = String::from_utf8(out.stdout).unwrap();
        // libtest prints "test child ... " without a newline before the
        // child's own output, so a marker may start mid-line.
        lines.extend(
            text.lines()
                .filter_map(|l| l.find("RESULT ").map(|i| l[i + 7..].to_string())),
        );
    }
    lines
}

#[test]
fn child() {
    let Ok(role) = std::env::var("CMX_CHILD") else {
        return;
    };
    let arg = std::env::var("CMX_ARG").unwrap();
    let me: usize = std::env::var("CMX_INDEX").unwrap().parse().unwrap();
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
    let lines = tokio::task::spawn_blocking(move || spawn_children("mux", &id))
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
