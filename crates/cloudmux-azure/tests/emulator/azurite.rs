//! The Azurite checks (see the crate docs of this test).

use std::sync::Arc;

use bytes::Bytes;
use cloudmux_azure::{AzureClient, AzureConfig, AzureStore, location};
use cloudmux_core::{ErrorKind, ListRequest, PutMode, Store};

/// A fresh container on the emulator. Fails the test when the emulator is
/// not configured: an emulator test that runs must test the emulator.
async fn fresh_store() -> Arc<AzureStore> {
    let cs = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "AZURE_STORAGE_CONNECTION_STRING is not set, so this Azurite test cannot run \
                 (needs Azurite: run by localstack/run-tests.sh). Start it with: \
                 CLOUDMUX_EMULATORS=azurite bash localstack/up.sh && source localstack/.state/env"
            )
        });
    let account = cs
        .split(';')
        .find_map(|p| p.trim().strip_prefix("AccountName="))
        .unwrap_or("devstoreaccount1")
        .to_string();
    let container = format!("cmx-{}", fastrand::u64(..) % 1_000_000_000_000);
    let loc = location::parse(&format!("az://{account}/{container}")).unwrap();
    let store = Arc::new(AzureStore::new(AzureConfig::from_env(&loc).unwrap()).unwrap());
    assert!(store.create_container().await.unwrap(), "fresh container");
    store
}

#[tokio::test]
#[ignore = "needs Azurite: run by localstack/run-tests.sh"]
async fn create_conflict_and_stale_update_map_as_documented() {
    let s = fresh_store().await;
    let v1 = s
        .put("k", Bytes::from_static(b"1"), PutMode::Create)
        .await
        .unwrap()
        .version;
    assert!(
        v1.as_str().starts_with('"'),
        "ETag kept with its quotes: {v1}"
    );
    let e = s
        .put("k", Bytes::from_static(b"2"), PutMode::Create)
        .await
        .unwrap_err();
    // Azurite says 409 BlobAlreadyExists here (Azure: 412).
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("409 BlobAlreadyExists"), "{e}");
    let v2 = s
        .put("k", Bytes::from_static(b"3"), PutMode::Update(v1.clone()))
        .await
        .unwrap()
        .version;
    let e = s
        .put("k", Bytes::from_static(b"4"), PutMode::Update(v1.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
    assert!(e.to_string().contains("412"), "{e}");
    // Listing versions equal header versions (bare vs quoted ETags normalized).
    let page = s.list(ListRequest::default()).await.unwrap();
    assert_eq!(page.objects[0].version.as_ref(), Some(&v2));
    s.delete_container().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Azurite: run by localstack/run-tests.sh"]
async fn missing_container_is_not_found_with_its_name() {
    let s = fresh_store().await;
    s.delete_container().await.unwrap();
    let e = s.get("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = s
        .put("x", Bytes::from_static(b"1"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains(&format!(
            "the container '{}' does not exist",
            s.config().container
        )),
        "{e}"
    );
    let e = s.list(ListRequest::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.is_bucket_missing(), "{e:?}");
    let e = s.delete("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.is_bucket_missing(), "{e:?}");
}

#[tokio::test]
#[ignore = "needs Azurite: run by localstack/run-tests.sh"]
async fn wrong_key_is_permission_denied_and_never_shown() {
    let s = fresh_store().await;
    let bad_key =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    let cfg = AzureConfig {
        credential: cloudmux_azure::Credential::AccountKey(cloudmux_azure::Secret::new(bad_key)),
        ..s.config().clone()
    };
    let bad = AzureStore::new(cfg).unwrap();
    let e = bad.get("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let shown = format!("{e} {e:?} {bad:?}");
    assert!(
        !shown.contains("AAAAAAAA") && !shown.contains("sig="),
        "{shown}"
    );
    s.delete_container().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Azurite: run by localstack/run-tests.sh"]
async fn open_url_forms_reach_the_same_blob() {
    let s = fresh_store().await;
    let c = &s.config().container;
    let account = &s.config().account;
    let ep = s
        .config()
        .endpoint
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let a = cloudmux_azure::open_url(&format!("az://{account}/{c}/dir/file.txt"))
        .await
        .unwrap();
    assert_eq!(a.to_string(), format!("az://{account}/{c}/dir/file.txt"));
    a.write_text("hello").await.unwrap();
    // One client for every container of the account, and for both forms.
    let client = AzureClient::new(s.config()).unwrap();
    let b = client.open_url(&format!("az://{account}/{c}/dir")).unwrap();
    assert_eq!(
        b.join("file.txt").unwrap().read_text().await.unwrap(),
        "hello"
    );
    if ep.starts_with("http://") {
        let h = client.open_url(&format!("{ep}/{c}/dir/file.txt")).unwrap();
        assert_eq!(h.read_text().await.unwrap(), "hello");
    }
    let e = client
        .open_url(&format!("az://otheracct/{c}/x"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    s.delete_container().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Azurite: run by localstack/run-tests.sh"]
async fn conditional_delete_is_honoured_as_declared() {
    let s = fresh_store().await;
    assert!(s.capabilities().conditional_delete);
    assert!(
        !s.capabilities().list_start_after,
        "start-after is emulated"
    );
    let v1 = s
        .put("d", Bytes::from_static(b"1"), PutMode::Create)
        .await
        .unwrap()
        .version;
    let v2 = s
        .put("d", Bytes::from_static(b"2"), PutMode::Update(v1.clone()))
        .await
        .unwrap()
        .version;
    let e = s.delete_if("d", &v1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
    s.delete_if("d", &v2).await.unwrap();
    assert!(s.head("d").await.unwrap_err().is_not_found());
    s.delete_container().await.unwrap();
}
