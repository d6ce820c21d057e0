//! Cost bounds of the local backend, loose enough for a debug build on a
//! busy machine yet far below what a quadratic listing or a directory scan
//! per delete costs. Release-build numbers come from `examples/local_bench.rs`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use cloudmux_core::clock::Stopwatch;
use cloudmux_core::{ListRequest, LocalFs, PutMode, Store};
use futures::{StreamExt, TryStreamExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `n` empty files `<dir>/<i:09>` directly, without the store. Empty,
/// so that the disk's cost of freeing data blocks (a discard per file on
/// some virtual disks) does not drown the backend's own.
fn fill(dir: &Path, n: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        fs::File::create(dir.join(format!("{i:09}"))).unwrap();
    }
}

async fn list_page_by_page(store: &LocalFs, prefix: &str) -> Vec<String> {
    let mut token = None;
    let mut keys = Vec::new();
    loop {
        let page = store
            .list(ListRequest {
                prefix: prefix.into(),
                token,
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap();
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(t) => token = Some(t),
            None => return keys,
        }
    }
}

#[test]
fn listing_page_by_page_is_linear() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 60_000;
    fill(&tmp.path().join("s/claims"), n);
    let store = LocalFs::new(tmp.path()).unwrap();
    let rt = runtime();
    // A directory at rest, and one still being written to (each page then
    // sees the directory as it is).
    for round in ["at rest", "changing"] {
        if round == "at rest" {
            std::thread::sleep(Duration::from_millis(200));
        }
        let t = Stopwatch::system();
        let keys = rt.block_on(async {
            if round == "changing" {
                let s = store.clone();
                let writer = tokio::spawn(async move {
                    for i in 0..2_000 {
                        s.put(
                            &format!("s/claims/w{i:05}"),
                            Bytes::from_static(b"w"),
                            PutMode::Create,
                        )
                        .await
                        .unwrap();
                    }
                });
                let keys = list_page_by_page(&store, "s/claims/").await;
                writer.await.unwrap();
                keys
            } else {
                list_page_by_page(&store, "s/claims/").await
            }
        });
        let took = t.elapsed();
        eprintln!("{round}: listing {n} keys page by page took {took:?}");
        assert!(keys.len() >= n, "{round}: {} keys", keys.len());
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{round}: sorted");
    }
}

/// Deletes every key below `s/` page by page, 16 deletes in flight: from the
/// first page each time (as `UPath::rmrf` does), or continuing by the token.
fn delete_page_by_page(store: &LocalFs, by_token: bool) -> usize {
    runtime().block_on(async {
        let mut deleted = 0;
        let mut token = None;
        loop {
            let page = store
                .list(ListRequest {
                    prefix: "s/".into(),
                    token: token.take(),
                    limit: Some(1000),
                    ..Default::default()
                })
                .await
                .unwrap();
            deleted += page.objects.len();
            futures::stream::iter(page.objects)
                .map(|o| async move { store.delete(&o.key).await })
                .buffer_unordered(16)
                .try_collect::<Vec<()>>()
                .await
                .unwrap();
            match page.next {
                Some(t) if by_token => token = Some(t),
                Some(_) => {}
                None => return deleted,
            }
        }
    })
}

/// Fills a session's claims with `n` keys and deletes them page by page
/// (following tokens, or from the first page each time): every key goes,
/// and so do the emptied directories.
fn delete_all_page_by_page(n: usize, by_token: bool) {
    let tmp = tempfile::tempdir().unwrap();
    fill(&tmp.path().join("s/claims"), n);
    let store = LocalFs::new(tmp.path()).unwrap();
    let t = Stopwatch::system();
    let deleted = delete_page_by_page(&store, by_token);
    let took = t.elapsed();
    let how = if by_token {
        "by token"
    } else {
        "from the first page"
    };
    eprintln!("deleting {n} keys page by page, {how}, took {took:?}");
    assert_eq!(deleted, n);
    assert!(!tmp.path().join("s").exists(), "emptied directories pruned");
}

#[test]
fn recursive_delete_by_token_is_linear() {
    delete_all_page_by_page(40_000, true);
}

/// Starting over at each page reads the directory whole for each page (it
/// changes between pages, so no snapshot may serve): bounded, not linear.
#[test]
fn recursive_delete_from_the_first_page_each_time() {
    delete_all_page_by_page(20_000, false);
}

#[test]
fn child_creates() {
    let Ok(dir) = std::env::var("CMX_PERF_CHILD") else {
        return;
    };
    let store = LocalFs::new(&dir).unwrap();
    runtime().block_on(async {
        for i in 0..200 {
            store
                .put(
                    &format!("s/claims/{i:05}"),
                    Bytes::from_static(b"claim"),
                    PutMode::Create,
                )
                .await
                .unwrap();
        }
    });
}

/// Runs `child_creates` in a child process under strace, counting the calls
/// of `syscalls` (strace's `-e trace=` syntax); `None` where strace is
/// missing or may not trace (no ptrace).
fn traced_creates(syscalls: &str) -> Option<usize> {
    let usable = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        usable,
        "strace cannot run here (this check was asked for with --ignored)"
    );
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("s/claims")).unwrap();
    let trace = tmp.path().join("trace");
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={syscalls}"), "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child_creates", "--test-threads=1"])
        .env("CMX_PERF_CHILD", tmp.path())
        .status()
        .unwrap();
    assert!(st.success(), "the traced child failed");
    assert_eq!(
        fs::read_dir(tmp.path().join("s/claims")).unwrap().count(),
        200,
        "the child made its creates"
    );
    let text = fs::read_to_string(&trace).unwrap();
    Some(text.lines().filter(|l| !l.contains("exited with")).count())
}

/// Creates into an existing directory make no `mkdir` calls (the directory
/// is created only when a write finds it missing).
#[test]
#[ignore = "needs strace (not on a fresh machine): cargo test --test local_perf -- --ignored"]
fn creates_make_no_mkdir_calls() {
    if let Some(n) = traced_creates("mkdir,mkdirat") {
        assert!(
            n <= 2,
            "{n} mkdir calls for 200 creates into an existing directory"
        );
    }
}

/// Small creates run on the calling task: no hand-off to the blocking pool
/// and back (two futex wake-ups or more each).
#[test]
#[ignore = "needs strace (not on a fresh machine): cargo test --test local_perf -- --ignored"]
fn small_creates_make_no_thread_hand_offs() {
    if let Some(n) = traced_creates("futex") {
        assert!(n < 100, "{n} futex calls for 200 creates");
    }
}
