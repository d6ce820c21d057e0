//! What a listing of the local backend promises while directories change:
//! a first page shows the directory as it is; the later pages of a listing
//! show every key that existed when it began and still exists, in order.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use cloudmux_core::{ListPage, ListRequest, LocalFs, PutMode, Store};

/// Writes `n` files `<dir>/<i:06>` directly, and lets the directory come to
/// rest (so that listings may keep a snapshot of it).
fn fill(dir: &Path, n: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("{i:06}")), b"x").unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
}

async fn page(store: &LocalFs, token: Option<String>, limit: usize) -> ListPage {
    store
        .list(ListRequest {
            prefix: "d/".into(),
            token,
            limit: Some(limit),
            ..Default::default()
        })
        .await
        .unwrap()
}

fn keys(p: &ListPage) -> Vec<String> {
    p.objects.iter().map(|o| o.key.clone()).collect()
}

async fn put(store: &LocalFs, key: &str) {
    store
        .put(key, Bytes::from_static(b"y"), PutMode::Create)
        .await
        .unwrap();
}

#[tokio::test]
async fn later_pages_leave_out_deleted_keys_and_keep_every_other() {
    let tmp = tempfile::tempdir().unwrap();
    fill(&tmp.path().join("d"), 5_000);
    let store = LocalFs::new(tmp.path()).unwrap();
    let first = page(&store, None, 1000).await;
    assert_eq!(first.objects.len(), 1000);
    // Changes after the first page: deletions ahead of the cursor, and
    // additions ahead of it and behind it.
    for i in (1500..2500).step_by(3) {
        store.delete(&format!("d/{i:06}")).await.unwrap();
    }
    put(&store, "d/000000a").await;
    put(&store, "d/004000a").await;
    let mut seen: Vec<String> = keys(&first);
    let mut token = first.next.clone();
    while let Some(t) = token {
        let p = page(&store, Some(t), 700).await;
        seen.extend(keys(&p));
        token = p.next;
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    let seen: BTreeSet<String> = seen.into_iter().collect();
    for i in 0..5_000 {
        let k = format!("d/{i:06}");
        let deleted = (1500..2500).contains(&i) && (i - 1500) % 3 == 0;
        assert_eq!(seen.contains(&k), !deleted, "{k}");
    }
    // The addition behind the cursor cannot show (it sorts before the
    // token); the one ahead may or may not.
    assert!(!seen.contains("d/000000a"));
}

#[tokio::test]
async fn a_first_page_sees_every_change() {
    let tmp = tempfile::tempdir().unwrap();
    fill(&tmp.path().join("d"), 3_000);
    let store = LocalFs::new(tmp.path()).unwrap();
    // Page through once, so that the store keeps a snapshot of the directory.
    let mut token = None;
    loop {
        let p = page(&store, token, 500).await;
        match p.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    put(&store, "d/000000a").await;
    store.delete("d/000001").await.unwrap();
    let p = page(&store, None, 3).await;
    assert_eq!(keys(&p), vec!["d/000000", "d/000000a", "d/000002"]);
    // So does a page that starts after a key (it begins a listing too).
    let p = store
        .list(ListRequest {
            prefix: "d/".into(),
            start_after: Some("d/000000".into()),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&p), vec!["d/000000a", "d/000002"]);
}

#[tokio::test]
async fn a_plain_key_works_as_a_token() {
    // Tokens are opaque, but one that is just a key (from another process,
    // or an older version) continues after that key.
    let tmp = tempfile::tempdir().unwrap();
    fill(&tmp.path().join("d"), 10);
    let store = LocalFs::new(tmp.path()).unwrap();
    let p = page(&store, Some("d/000006".into()), 10).await;
    assert_eq!(keys(&p), vec!["d/000007", "d/000008", "d/000009"]);
    assert!(p.next.is_none());
}

#[tokio::test]
async fn delimiter_pages_through_a_large_directory_report_each_prefix_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    for i in 0..2_500 {
        fs::create_dir_all(d.join(format!("s{i:05}"))).unwrap();
        fs::write(d.join(format!("s{i:05}/k")), b"x").unwrap();
        fs::write(d.join(format!("f{i:05}")), b"x").unwrap();
    }
    // An empty directory is no prefix.
    fs::create_dir_all(d.join("s99999")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let store = LocalFs::new(tmp.path()).unwrap();
    let mut token = None;
    let (mut prefixes, mut objects) = (Vec::new(), Vec::new());
    loop {
        let p = store
            .list(ListRequest {
                prefix: "d/".into(),
                delimiter: true,
                token,
                limit: Some(333),
                ..Default::default()
            })
            .await
            .unwrap();
        prefixes.extend(p.prefixes);
        objects.extend(keys(&ListPage {
            objects: p.objects,
            ..Default::default()
        }));
        match p.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let want_p: Vec<String> = (0..2_500).map(|i| format!("d/s{i:05}/")).collect();
    let want_o: Vec<String> = (0..2_500).map(|i| format!("d/f{i:05}")).collect();
    assert_eq!(prefixes, want_p);
    assert_eq!(objects, want_o);
}
