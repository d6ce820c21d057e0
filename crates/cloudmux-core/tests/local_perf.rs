//! Cost bounds of the local backend that hold in any build: system calls
//! counted with strace. Release-build numbers come from
//! `examples/local_bench.rs`.

use std::fs;
use std::process::Command;

use bytes::Bytes;
use cloudmux_core::{LocalFs, PutMode, Store};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
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
    if !usable {
        eprintln!("skipped: strace cannot run here");
        return None;
    }
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
fn small_creates_make_no_thread_hand_offs() {
    if let Some(n) = traced_creates("futex") {
        assert!(n < 100, "{n} futex calls for 200 creates");
    }
}
