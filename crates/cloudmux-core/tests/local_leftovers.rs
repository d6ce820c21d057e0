//! Leftovers of killed writers: stale temporary files, lock files of empty
//! directories, and empty directories, reported and removed below a key
//! prefix, never through a symbolic link and never at the prune floor.

use std::fs::{self, File};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cloudmux_core::{LocalFs, PutMode, Store};

const HOUR: Duration = Duration::from_secs(3600);

/// A file of `len` bytes whose modification time is long past.
fn old_file(path: &Path, len: usize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, vec![b'x'; len]).unwrap();
    let f = File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
}

/// The store of these tests, at `<tmp>/store`:
///
/// ```text
/// ds/s1/claims/1, ds/s1/claims/2    objects
/// ds/s1/claims/.cmx-lock            the lock of a live directory
/// ds/s1/claims/.cmx-tmp-111         stale, 100 bytes
/// ds/s1/.cmx-tmp-333                fresh, 7 bytes
/// ds/s2/.cmx-tmp-222                stale, 50 bytes, alone in its directory
/// ds/s3/.cmx-lock                   alone in its directory
/// ds/s4/a/b/                        empty directories
/// ds/evil -> <tmp>/outside          holding a stale temporary, a lock file
///                                   and an empty directory
/// other/.cmx-tmp-444                stale, 10 bytes, outside the prefix
/// ```
async fn setup(tmp: &Path) -> std::sync::Arc<LocalFs> {
    let root = tmp.join("store");
    let store = LocalFs::new(&root).unwrap();
    for k in ["ds/s1/claims/1", "ds/s1/claims/2"] {
        store
            .put(k, Bytes::from_static(b"claim"), PutMode::Create)
            .await
            .unwrap();
    }
    fs::write(root.join("ds/s1/claims/.cmx-lock"), b"").unwrap();
    old_file(&root.join("ds/s1/claims/.cmx-tmp-111"), 100);
    fs::write(root.join("ds/s1/.cmx-tmp-333"), b"partial").unwrap();
    old_file(&root.join("ds/s2/.cmx-tmp-222"), 50);
    fs::create_dir_all(root.join("ds/s3")).unwrap();
    fs::write(root.join("ds/s3/.cmx-lock"), b"").unwrap();
    fs::create_dir_all(root.join("ds/s4/a/b")).unwrap();
    let outside = tmp.join("outside");
    fs::create_dir_all(outside.join("empty")).unwrap();
    old_file(&outside.join(".cmx-tmp-999"), 1000);
    fs::write(outside.join(".cmx-lock"), b"").unwrap();
    symlink(&outside, root.join("ds/evil")).unwrap();
    old_file(&root.join("other/.cmx-tmp-444"), 10);
    store
}

fn exists(p: impl AsRef<Path>) -> bool {
    fs::symlink_metadata(p).is_ok()
}

#[tokio::test]
async fn stale_temporaries_are_reported_by_prefix_and_age() {
    let tmp = tempfile::tempdir().unwrap();
    let store = setup(tmp.path()).await;
    let r = store.stale_temporaries("ds/", HOUR).await.unwrap();
    assert_eq!((r.count, r.bytes), (2, 150), "{r:?}");
    let r = store.stale_temporaries("ds/s1/", HOUR).await.unwrap();
    assert_eq!((r.count, r.bytes), (1, 100), "{r:?}");
    // A prefix is a plain string prefix, as in listings.
    let r = store.stale_temporaries("ds/s", HOUR).await.unwrap();
    assert_eq!((r.count, r.bytes), (2, 150), "{r:?}");
    let r = store.stale_temporaries("", HOUR).await.unwrap();
    assert_eq!((r.count, r.bytes), (3, 160), "{r:?}");
    // With no minimum age the fresh one counts too.
    let r = store
        .stale_temporaries("ds/", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((r.count, r.bytes), (3, 157), "{r:?}");
    let r = store.stale_temporaries("nothing/", HOUR).await.unwrap();
    assert_eq!((r.count, r.bytes), (0, 0));
    // Through the link: nothing.
    let r = store.stale_temporaries("ds/evil/", HOUR).await.unwrap();
    assert_eq!((r.count, r.bytes), (0, 0), "{r:?}");
}

#[tokio::test]
async fn leftovers_are_removed_without_touching_live_data() {
    let tmp = tempfile::tempdir().unwrap();
    let store = setup(tmp.path()).await;
    let root = tmp.path().join("store");
    let r = store.remove_leftovers("ds/", HOUR).await.unwrap();
    assert_eq!(r.temporaries, 2, "{r:?}");
    assert_eq!(r.temporary_bytes, 150, "{r:?}");
    assert_eq!(r.lock_files, 1, "{r:?}");
    // ds/s2, ds/s3, ds/s4/a/b, ds/s4/a, ds/s4
    assert_eq!(r.directories, 5, "{r:?}");

    for gone in ["ds/s1/claims/.cmx-tmp-111", "ds/s2", "ds/s3", "ds/s4"] {
        assert!(!exists(root.join(gone)), "{gone} is still there");
    }
    for kept in [
        "ds/s1/claims/1",
        "ds/s1/claims/2",
        "ds/s1/claims/.cmx-lock",
        "ds/s1/.cmx-tmp-333",
        "ds/evil",
        "other/.cmx-tmp-444",
    ] {
        assert!(exists(root.join(kept)), "{kept} was removed");
    }
    let outside = tmp.path().join("outside");
    for kept in [".cmx-tmp-999", ".cmx-lock", "empty"] {
        assert!(exists(outside.join(kept)), "outside/{kept} was removed");
    }
    assert_eq!(
        &store.get("ds/s1/claims/2").await.unwrap().bytes[..],
        b"claim"
    );
    // Nothing is left to do.
    let again = store.remove_leftovers("ds/", HOUR).await.unwrap();
    assert_eq!(again, Default::default(), "{again:?}");
}

#[tokio::test]
async fn removal_climbs_to_the_prune_floor_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    old_file(&root.join("keep/x/y/.cmx-tmp-1"), 5);
    let store = LocalFs::new(&root)
        .unwrap()
        .with_prune_floor(root.join("keep"));
    let r = store.remove_leftovers("keep/x/y/", HOUR).await.unwrap();
    assert_eq!((r.temporaries, r.directories), (1, 2), "{r:?}");
    assert!(!exists(root.join("keep/x")));
    assert!(exists(root.join("keep")), "the prune floor is kept");

    // The root is kept too, even when it is empty.
    let r = store.remove_leftovers("", HOUR).await.unwrap();
    assert_eq!(r.directories, 0, "{r:?}");
    assert!(exists(root.join("keep")) && exists(&root));
}

#[tokio::test]
async fn a_directory_in_use_is_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = LocalFs::new(&root).unwrap();
    fs::create_dir_all(root.join("busy")).unwrap();
    let lock = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join("busy/.cmx-lock"))
        .unwrap();
    lock.lock().unwrap();
    let r = store.remove_leftovers("", HOUR).await.unwrap();
    assert_eq!((r.lock_files, r.directories), (0, 0), "{r:?}");
    assert!(exists(root.join("busy/.cmx-lock")));
    drop(lock);
    let r = store.remove_leftovers("", HOUR).await.unwrap();
    assert_eq!((r.lock_files, r.directories), (1, 1), "{r:?}");
    assert!(!exists(root.join("busy")));
}
