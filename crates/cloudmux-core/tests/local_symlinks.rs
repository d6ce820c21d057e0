//! The local backend never follows a symbolic link below its root: listings
//! neither report nor descend into them, reads refuse them, and no write or
//! delete goes through them. The root itself may be a symbolic link.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use bytes::Bytes;
use cloudmux_core::{ErrorKind, ListRequest, LocalFs, PutMode, Store, StoreExt, UPath};
use futures::TryStreamExt;

/// A store at `<tmp>/store` holding `ds/a`, `ds/sessions/s1/claim`, and the
/// links `ds/sessions/evil -> <tmp>/outside` (a directory holding `victim`)
/// and `ds/link -> <tmp>/outside/victim`.
fn setup(tmp: &Path) -> std::sync::Arc<LocalFs> {
    let outside = tmp.join("outside");
    fs::create_dir_all(outside.join("deeper")).unwrap();
    fs::write(outside.join("victim"), b"precious").unwrap();
    fs::write(outside.join("deeper/victim2"), b"precious too").unwrap();
    let root = tmp.join("store");
    fs::create_dir_all(root.join("ds/sessions/s1")).unwrap();
    fs::write(root.join("ds/a"), b"a").unwrap();
    fs::write(root.join("ds/sessions/s1/claim"), b"c").unwrap();
    symlink(&outside, root.join("ds/sessions/evil")).unwrap();
    symlink(outside.join("victim"), root.join("ds/link")).unwrap();
    // Let the clock move on, so that any later change to the outside
    // directories shows in their modification times.
    std::thread::sleep(std::time::Duration::from_millis(30));
    LocalFs::new(&root).unwrap()
}

/// Modification times of the outside directories: a file made and removed
/// again through a link still changes them.
fn outside_times(tmp: &Path) -> Vec<std::time::SystemTime> {
    ["outside", "outside/deeper"]
        .iter()
        .map(|d| fs::metadata(tmp.join(d)).unwrap().modified().unwrap())
        .collect()
}

fn assert_outside_intact(tmp: &Path, times: &[std::time::SystemTime]) {
    assert_eq!(
        outside_times(tmp),
        times,
        "nothing was written outside the store, even for a moment"
    );
    let outside = tmp.join("outside");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");
    assert_eq!(
        fs::read(outside.join("deeper/victim2")).unwrap(),
        b"precious too"
    );
    let mut names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["deeper", "victim"],
        "nothing was created or removed outside the store"
    );
    assert_eq!(fs::read_dir(outside.join("deeper")).unwrap().count(), 1);
}

#[tokio::test]
async fn listing_neither_reports_nor_descends_into_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = setup(tmp.path());
    let times = outside_times(tmp.path());
    let all: Vec<String> = store
        .list_all("ds/")
        .map_ok(|m| m.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, vec!["ds/a", "ds/sessions/s1/claim"]);
    let page = store
        .list(ListRequest {
            prefix: "ds/sessions/".into(),
            delimiter: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.prefixes, vec!["ds/sessions/s1/"]);
    assert!(page.objects.is_empty());
    // Listing a prefix through the link finds nothing either.
    let page = store
        .list(ListRequest {
            prefix: "ds/sessions/evil/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.objects.is_empty(), "listed through a link: {page:?}");
    assert_outside_intact(tmp.path(), &times);
}

#[tokio::test]
async fn recursive_delete_stays_inside_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = setup(tmp.path());
    let times = outside_times(tmp.path());
    let ds = UPath::new(store.clone(), "ds").unwrap();
    // rmrf lists everything below the dataset and deletes each key.
    let n = ds.rmrf().await.unwrap();
    assert_eq!(n, 2, "only the two objects of the dataset were deleted");
    assert_outside_intact(tmp.path(), &times);
    // The links themselves are left alone (they are not objects).
    assert!(
        fs::symlink_metadata(tmp.path().join("store/ds/sessions/evil"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[tokio::test]
async fn reads_through_or_of_a_symlink_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = setup(tmp.path());
    let times = outside_times(tmp.path());
    for key in ["ds/sessions/evil/victim", "ds/sessions/evil/deeper/victim2"] {
        let e = store.get(key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "get {key}: {e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = store.head(key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "head {key}: {e}");
    }
    let e = store.get("ds/link").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "get of a link: {e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let e = store.head("ds/link").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "head of a link: {e}");
    // Ordinary objects still read.
    assert_eq!(&store.get("ds/a").await.unwrap().bytes[..], b"a");
    assert_outside_intact(tmp.path(), &times);
}

#[tokio::test]
async fn writes_never_go_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let store = setup(tmp.path());
    let times = outside_times(tmp.path());
    let v = store.head("ds/a").await.unwrap().version.unwrap();
    let body = || Bytes::from_static(b"evil");
    for key in [
        "ds/sessions/evil/new",
        "ds/sessions/evil/victim",
        "ds/sessions/evil/sub/new",
        "ds/sessions/evil/deeper/victim2",
    ] {
        for mode in [
            PutMode::Create,
            PutMode::Overwrite,
            PutMode::Update(v.clone()),
        ] {
            let e = store.put(key, body(), mode.clone()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{mode:?} {key}: {e}");
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
    }
    // The key is itself a link: neither replaced nor written through.
    for mode in [PutMode::Create, PutMode::Overwrite, PutMode::Update(v)] {
        let e = store
            .put("ds/link", body(), mode.clone())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{mode:?} ds/link: {e}");
    }
    assert!(
        fs::symlink_metadata(tmp.path().join("store/ds/link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_outside_intact(tmp.path(), &times);
}

#[tokio::test]
async fn deletes_never_go_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let store = setup(tmp.path());
    let times = outside_times(tmp.path());
    for key in ["ds/sessions/evil/victim", "ds/sessions/evil/deeper/victim2"] {
        let e = store.delete(key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "delete {key}: {e}");
    }
    let e = store.delete("ds/link").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "delete of a link: {e}");
    assert_outside_intact(tmp.path(), &times);
    assert!(fs::symlink_metadata(tmp.path().join("store/ds/link")).is_ok());
}

#[tokio::test]
async fn a_symlinked_root_is_resolved_once() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    symlink(&real, &link).unwrap();
    let store = LocalFs::new(&link).unwrap();
    assert_eq!(store.root(), fs::canonicalize(&real).unwrap());
    store
        .put("x/y", Bytes::from_static(b"1"), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(fs::read(real.join("x/y")).unwrap(), b"1");
    assert_eq!(&store.get("x/y").await.unwrap().bytes[..], b"1");
    let keys: Vec<String> = store
        .list_all("")
        .map_ok(|m| m.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys, vec!["x/y"]);
    store.delete("x/y").await.unwrap();
    assert!(!real.join("x").exists(), "the emptied directory was pruned");
    assert!(real.exists(), "the root is never pruned");
}

#[tokio::test]
async fn a_path_opened_through_a_symlinked_ancestor_works() {
    // UPath::parse roots the store at `/`, the directory given being the prune
    // floor: the components down to it are the user's choice and may be links.
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    symlink(&real, tmp.path().join("link")).unwrap();
    let dir = UPath::parse(tmp.path().join("link/data").to_str().unwrap()).unwrap();
    let f = dir.join("sub/file").unwrap();
    f.write_text("hello").await.unwrap();
    assert_eq!(f.read_text().await.unwrap(), "hello");
    f.overwrite_text("again").await.unwrap();
    assert_eq!(f.read_text().await.unwrap(), "again");
    let all: Vec<String> = dir
        .riterdir()
        .map_ok(|p| p.name().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, vec!["file"]);
    assert_eq!(dir.rmrf().await.unwrap(), 1);
    // rmrf removes the whole tree, like `rm -rf`: the directory itself too,
    // and nothing through the link beyond it.
    assert!(!real.join("data").exists(), "the removed tree is gone");
    assert!(real.is_dir(), "the link's target itself stays");
    // Below the opened directory, links are not followed.
    fs::create_dir(real.join("data")).unwrap();
    symlink(tmp.path().join("real"), real.join("data/loop")).unwrap();
    let e = dir
        .join("loop/data/x")
        .unwrap()
        .write_text("no")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!real.join("data/x").exists());
}
