//! The directory lock (`flock` on `.cmx-lock`) is waited for only up to a
//! bound: a process that holds it forever (stopped by SIGSTOP, say) makes
//! writes fail as `Transient` instead of hanging them.
//!
//! The holder is this test binary re-run as a child process (the `child`
//! test does nothing unless `CMX_LOCK_CHILD` is set).

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudmux_core::clock::{Clock, ManualClock};
use cloudmux_core::clock::{SystemClock, timeout};
use cloudmux_core::{ErrorKind, LocalFs, PutMode, Store};

#[test]
fn child() {
    let Ok(path) = std::env::var("CMX_LOCK_CHILD") else {
        return;
    };
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    f.lock().unwrap();
    println!("LOCKED");
    std::thread::sleep(Duration::from_secs(120));
}

/// A child process holding a directory lock, killed when dropped (also when
/// a test fails, so a writer stuck on the lock is let go).
struct Holder(Child);

impl Holder {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child process holding the lock of directory `dir`.
fn hold_lock(dir: &Path) -> Holder {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("CMX_LOCK_CHILD", dir.join(".cmx-lock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("LOCKED") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child exited");
    }
    Holder(c)
}

fn assert_lock_error(e: &cloudmux_core::Error, what: &str) {
    assert_eq!(e.kind(), ErrorKind::Transient, "{what}: {e}");
    assert!(
        e.to_string().contains("held by another process"),
        "{what}: {e}"
    );
}

async fn store_with_object(dir: &Path) -> (Arc<LocalFs>, cloudmux_core::Version) {
    let store = LocalFs::new(dir).unwrap();
    let v = store
        .put("ds/a", Bytes::from_static(b"1"), PutMode::Create)
        .await
        .unwrap()
        .version;
    (store, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_give_up_on_a_lock_held_by_a_stopped_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, v) = store_with_object(tmp.path()).await;
    let store = store.with_lock_wait(Duration::from_millis(400));
    let child = hold_lock(&tmp.path().join("ds"));
    let st = Command::new("kill")
        .args(["-STOP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());

    let body = || Bytes::from_static(b"2");
    let ops: Vec<(
        &str,
        futures::future::BoxFuture<'_, cloudmux_core::Result<()>>,
    )> = vec![
        (
            "overwrite",
            Box::pin(async {
                store
                    .put("ds/a", body(), PutMode::Overwrite)
                    .await
                    .map(|_| ())
            }),
        ),
        (
            "update",
            Box::pin(async {
                store
                    .put("ds/a", body(), PutMode::Update(v.clone()))
                    .await
                    .map(|_| ())
            }),
        ),
        ("delete", Box::pin(store.delete("ds/a"))),
    ];
    for (what, op) in ops {
        // The deadline only turns a hang into a failure.
        let r = timeout(&SystemClock, Duration::from_secs(20), op).await;
        let e = r.expect("waited for the lock without bound").unwrap_err();
        assert_lock_error(&e, what);
    }
    // Create takes no lock: it still succeeds.
    store
        .put("ds/b", body(), PutMode::Create)
        .await
        .expect("create is lock-free");
    // Nothing was changed, and no temporary file is left behind.
    assert_eq!(&store.get("ds/a").await.unwrap().bytes[..], b"1");
    let names: Vec<_> = fs::read_dir(tmp.path().join("ds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".cmx-tmp-"))
        .collect();
    assert!(names.is_empty(), "temporaries left: {names:?}");

    drop(child);
    // Once the holder is gone, the lock is free again.
    store
        .put("ds/a", body(), PutMode::Overwrite)
        .await
        .expect("lock released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_runs_on_the_injected_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_object(tmp.path()).await;
    let clock = ManualClock::fixed();
    let store = store.with_clock(clock.clone() as Arc<dyn Clock>);
    let child = hold_lock(&tmp.path().join("ds"));
    let t0 = clock.now();
    let e = store.delete("ds/a").await.unwrap_err();
    assert_lock_error(&e, "delete");
    // The default wait, ten seconds, passed on the injected clock.
    let waited = clock.now().duration_since(t0).unwrap();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "waited {waited:?} on the clock"
    );
    drop(child);
}
