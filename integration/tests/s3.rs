//! S3-specific checks (only on the `s3` backend): what the conformance suite
//! cannot see through the `Store` trait.

use bytes::Bytes;
use cloudmux_core::testkit::fresh;
use cloudmux_core::{ErrorKind, PutMode, Store};
use cloudmux_integration::backend::{self, Kind};
use cloudmux_s3::{S3Config, S3Store};

/// ETags come back quoted, exactly as S3 sends them, and the same token works
/// for a compare-and-swap; a stale one loses.
#[tokio::test]
async fn etags_are_passed_back_verbatim() {
    let b = backend::setup().await;
    if b.kind != Kind::S3 {
        return;
    }
    let root = fresh(&b.root, "etag");
    let store = root.store().clone();
    let k = format!("{}/obj", root.key());
    let v1 = store
        .put(&k, Bytes::from_static(b"one"), PutMode::Create)
        .await
        .unwrap()
        .version;
    assert!(
        v1.as_str().starts_with('"') && v1.as_str().ends_with('"'),
        "quoted ETag: {v1:?}"
    );
    let listed = store
        .list(cloudmux_core::ListRequest {
            prefix: k.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.objects[0].version.as_ref(),
        Some(&v1),
        "list reports the ETag"
    );
    let v2 = store
        .put(&k, Bytes::from_static(b"two"), PutMode::Update(v1.clone()))
        .await
        .unwrap()
        .version;
    let e = store
        .put(&k, Bytes::from_static(b"three"), PutMode::Update(v1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition);
    assert!(
        e.to_string().contains("412"),
        "message names the status: {e}"
    );
    assert_eq!(store.head(&k).await.unwrap().version, Some(v2));
}

/// A bucket that does not exist is NotFound, named in the message.
#[tokio::test]
async fn missing_bucket_is_not_found() {
    let b = backend::setup().await;
    if b.kind != Kind::S3 {
        return;
    }
    let name = format!("cmx-missing-{}", &cloudmux_core::util::nonce()[..12]);
    let store = S3Store::new(&name, &backend::s3_config()).await.unwrap();
    let e = store.get("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&name), "{e}");
    let e = store
        .put("x", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = store.list(Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// Nothing listening: a Transient error that says so, without hanging.
#[tokio::test]
async fn unreachable_endpoint_is_transient() {
    let b = backend::setup().await;
    if b.kind != Kind::S3 {
        return;
    }
    // Port 9 (discard) on loopback: nothing listens there on these machines.
    let cfg = S3Config::new()
        .endpoint("http://127.0.0.1:9")
        .region("us-east-1")
        .sdk_attempts(1);
    let store = S3Store::new("any-bucket", &cfg).await.unwrap();
    let e = store.get("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("any-bucket"), "{e}");
}
