//! FIFOs, sockets and other non-regular files below the root are never
//! opened: reads answer with a clear error at once and listings skip them.

use std::fs;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use cloudmux_core::{ErrorKind, LocalFs, PutMode, Store, StoreExt};
use futures::TryStreamExt;

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo failed");
}

#[cfg(target_os = "linux")]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(target_os = "linux"))]
const O_NONBLOCK: i32 = 0x4;

/// Runs `fut` with a time limit. Should it hang on the FIFO, a writer is
/// attached to the FIFO (without blocking) and closed again, so the stuck
/// reader sees end-of-file and the test binary can still exit; the test fails.
async fn bounded<T>(fifo: PathBuf, what: &str, fut: impl Future<Output = T>) -> T {
    match cloudmux_core::clock::timeout(
        &cloudmux_core::clock::SystemClock,
        Duration::from_secs(3),
        fut,
    )
    .await
    {
        Some(v) => v,
        None => {
            if let Ok(mut f) = fs::OpenOptions::new()
                .write(true)
                .custom_flags(O_NONBLOCK)
                .open(&fifo)
            {
                let _ = f.write_all(b"");
            }
            panic!("{what} hung on a FIFO");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_is_neither_read_nor_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalFs::new(tmp.path()).unwrap();
    store
        .put("ds/a", Bytes::from_static(b"a"), PutMode::Create)
        .await
        .unwrap();
    let fifo = tmp.path().join("ds/pipe");
    mkfifo(&fifo);

    let e = bounded(fifo.clone(), "get", store.get("ds/pipe"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "get: {e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let e = bounded(fifo.clone(), "head", store.head("ds/pipe"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "head: {e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");

    let keys: Vec<String> = bounded(
        fifo.clone(),
        "list",
        store.list_all("ds/").map_ok(|m| m.key).try_collect(),
    )
    .await
    .unwrap();
    assert_eq!(keys, vec!["ds/a"], "the FIFO is not listed");

    // A compare-and-swap or an overwrite never replaces it, and a delete
    // leaves it alone.
    let v = store.head("ds/a").await.unwrap().version.unwrap();
    for mode in [PutMode::Overwrite, PutMode::Update(v), PutMode::Create] {
        let e = bounded(
            fifo.clone(),
            "put",
            store.put("ds/pipe", Bytes::from_static(b"x"), mode.clone()),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{mode:?}: {e}");
    }
    let e = bounded(fifo.clone(), "delete", store.delete("ds/pipe"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "delete: {e}");
    assert!(
        fs::symlink_metadata(&fifo).is_ok(),
        "the FIFO is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_a_deeper_directory_does_not_stall_a_recursive_listing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalFs::new(tmp.path()).unwrap();
    for k in ["ds/s/1", "ds/s/2", "ds/t/3"] {
        store
            .put(k, Bytes::from_static(b"x"), PutMode::Create)
            .await
            .unwrap();
    }
    let fifo = tmp.path().join("ds/s/15");
    mkfifo(&fifo);
    let keys: Vec<String> = bounded(
        fifo,
        "list",
        store.list_all("ds/").map_ok(|m| m.key).try_collect(),
    )
    .await
    .unwrap();
    assert_eq!(keys, vec!["ds/s/1", "ds/s/2", "ds/t/3"]);
}

#[tokio::test]
async fn a_socket_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalFs::new(tmp.path()).unwrap();
    fs::create_dir(tmp.path().join("ds")).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(tmp.path().join("ds/sock")).unwrap();
    let e = store.get("ds/sock").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let e = store.head("ds/sock").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let keys: Vec<String> = store
        .list_all("ds/")
        .map_ok(|m| m.key)
        .try_collect()
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
