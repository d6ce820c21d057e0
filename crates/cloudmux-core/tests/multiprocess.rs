//! Races between OS processes on the local-filesystem backend.
//!
//! The parent test re-runs this test binary as child processes (the `child`
//! test does nothing unless `CMX_CHILD` is set); children print `RESULT`
//! lines that the parent checks.

use cloudmux_core::testkit::process::spawn_children;
use cloudmux_core::{PutMode, UPath};
use serde::{Deserialize, Serialize};

const PROCS: usize = 8;

#[derive(Serialize, Deserialize)]
struct Counter {
    n: u64,
    nonce: String,
}

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
            "race" => {
                let root = UPath::parse(&arg).unwrap();
                for k in 0..200 {
                    let body = format!("process {me}");
                    match root
                        .join(&format!("key{k:03}"))
                        .unwrap()
                        .write_text(&body)
                        .await
                    {
                        Ok(_) => println!("RESULT won {k}"),
                        Err(e) if e.is_already_exists() => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                let counter = root.join("counter").unwrap();
                let mut done = 0;
                while done < 50 {
                    let g = counter.get().await.unwrap();
                    let c: Counter = serde_json::from_slice(&g.bytes).unwrap();
                    let next = Counter {
                        n: c.n + 1,
                        nonce: cloudmux_core::util::nonce(),
                    };
                    match counter
                        .put(
                            serde_json::to_vec(&next).unwrap().into(),
                            PutMode::Update(g.version()),
                        )
                        .await
                    {
                        Ok(_) => done += 1,
                        Err(e) if e.is_precondition() => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[tokio::test]
async fn processes_race_create_and_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let root = UPath::parse(dir.path().to_str().unwrap()).unwrap();
    root.join("counter")
        .unwrap()
        .write_json(&Counter {
            n: 0,
            nonce: String::new(),
        })
        .await
        .unwrap();
    let url = root.url();
    let lines = tokio::task::spawn_blocking(move || spawn_children(PROCS, "race", &url))
        .await
        .unwrap();
    let mut winners = vec![0; 200];
    for l in &lines {
        let k: usize = l.strip_prefix("won ").unwrap().parse().unwrap();
        winners[k] += 1;
    }
    assert!(
        winners.iter().all(|&w| w == 1),
        "each key has exactly one winner: {winners:?}"
    );
    let c: Counter = root.join("counter").unwrap().read_json().await.unwrap();
    assert_eq!(
        c.n,
        (PROCS * 50) as u64,
        "compare-and-swap across processes lost an update"
    );
    for k in 0..200 {
        let body = root
            .join(&format!("key{k:03}"))
            .unwrap()
            .read_text()
            .await
            .unwrap();
        assert!(body.starts_with("process "));
    }
    // No temporary or lock file is visible to listings.
    let names: Vec<String> = root
        .ls()
        .await
        .unwrap()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(names.len(), 201);
    assert!(names.iter().all(|n| !n.starts_with(".cmx-")));
}
