//! S3-specific checks (only on the `s3` backend): what the conformance suite
//! cannot see through the `Store` trait.

use bytes::Bytes;
use cloudmux_core::testkit::fresh;
use cloudmux_core::{ErrorKind, PutMode, Store};
use cloudmux_integration::backend::{self, Backend, Kind};
use cloudmux_s3::S3Store;
use libtest_mimic::Trial;

use crate::common::{Needs, check};

pub(crate) fn trials(kind: Kind) -> Vec<Trial> {
    vec![
        check(
            "s3::etags_are_passed_back_verbatim",
            kind,
            Needs::Only(Kind::S3),
            etags_are_passed_back_verbatim,
        ),
        check(
            "s3::missing_bucket_is_not_found",
            kind,
            Needs::Only(Kind::S3),
            missing_bucket_is_not_found,
        ),
    ]
}

/// ETags come back quoted, exactly as S3 sends them, and the same token works
/// for a compare-and-swap; a stale one loses.
async fn etags_are_passed_back_verbatim(b: Backend) {
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
async fn missing_bucket_is_not_found(_: Backend) {
    let name = format!("cmx-missing-{}", &cloudmux_core::util::nonce()[..12]);
    let store = S3Store::new(&name, &backend::s3_config()).await.unwrap();
    let e = store.get("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.is_bucket_missing(), "{e:?}");
    assert!(e.to_string().contains(&name), "{e}");
    let e = store
        .put("x", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.is_bucket_missing(), "{e:?}");
    let e = store.list(Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.is_bucket_missing(), "{e:?}");
}
