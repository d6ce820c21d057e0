//! The core conformance suite, plus Azure-specific checks, against Azurite.
//!
//! Needs `AZURE_STORAGE_CONNECTION_STRING` (Azurite's development string:
//! `bash localstack/emulators/azurite.sh up` starts Azurite and prints it).
//! Without it every test prints a loud SKIPPED line and passes, unless
//! `CLOUDMUX_REQUIRE_EMULATORS=1`, which turns the skip into a failure.
//! Each test works in a fresh, randomly named container.

use std::sync::Arc;

use bytes::Bytes;
use cloudmux_azure::{AzureConfig, AzureStore, location};
use cloudmux_core::testkit::SuiteConfig;
use cloudmux_core::{ErrorKind, ListRequest, PutMode, Store, UPath};

/// A fresh container on the emulator, or `None` (skip) when none is configured.
async fn fresh_store(test: &str) -> Option<Arc<AzureStore>> {
    let cs = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let Some(cs) = cs else {
        if std::env::var("CLOUDMUX_REQUIRE_EMULATORS").as_deref() == Ok("1") {
            panic!(
                "CLOUDMUX_REQUIRE_EMULATORS=1 but AZURE_STORAGE_CONNECTION_STRING is unset: \
                 start Azurite (bash localstack/emulators/azurite.sh up)"
            );
        }
        eprintln!(
            "\n*** SKIPPED {test}: AZURE_STORAGE_CONNECTION_STRING is unset, so nothing ran \
             against Azurite (start it with: bash localstack/emulators/azurite.sh up) ***\n"
        );
        return None;
    };
    let account = cs
        .split(';')
        .find_map(|p| p.trim().strip_prefix("AccountName="))
        .unwrap_or("devstoreaccount1")
        .to_string();
    let container = format!("cmx-{}", fastrand::u64(..) % 1_000_000_000_000);
    let loc = location::parse(&format!("az://{account}/{container}")).unwrap();
    let store = Arc::new(AzureStore::new(AzureConfig::from_env(&loc).unwrap()).unwrap());
    assert!(store.create_container().await.unwrap(), "fresh container");
    Some(store)
}

mod conformance {
    use super::*;

    cloudmux_core::conformance_tests!(async {
        match fresh_store("conformance").await {
            Some(store) => (
                UPath::new(store, "suite").unwrap(),
                SuiteConfig {
                    ..SuiteConfig::default()
                },
            ),
            // Skipping: run the suite on the in-memory store so the test body
            // stays honest (it still checks something) and the skip is loud above.
            None => (
                UPath::new(cloudmux_core::InMemory::new(), "suite").unwrap(),
                SuiteConfig {
                    ..SuiteConfig::default()
                },
            ),
        }
    });
}

#[tokio::test]
async fn create_conflict_and_stale_update_map_as_documented() {
    let Some(s) = fresh_store("create_conflict").await else {
        return;
    };
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
async fn missing_container_is_not_found_with_its_name() {
    let Some(s) = fresh_store("missing_container").await else {
        return;
    };
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
    let e = s.delete("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn wrong_key_is_permission_denied_and_never_shown() {
    let Some(s) = fresh_store("wrong_key").await else {
        return;
    };
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
async fn open_url_forms_reach_the_same_blob() {
    let Some(s) = fresh_store("open_url").await else {
        return;
    };
    let c = &s.config().container;
    let ep = s
        .config()
        .endpoint
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let a = cloudmux_azure::open_url(&format!("az://{}/{c}/dir/file.txt", s.config().account))
        .await
        .unwrap();
    assert_eq!(
        a.to_string(),
        format!("az://{}/{c}/dir/file.txt", s.config().account)
    );
    a.write_text("hello").await.unwrap();
    if ep.starts_with("http://") {
        let b = cloudmux_azure::open_url(&format!("{ep}/{c}/dir/file.txt"))
            .await
            .unwrap();
        assert_eq!(b.read_text().await.unwrap(), "hello");
        // One client per (endpoint, container): the same store behind both.
        assert!(Arc::ptr_eq(a.store(), b.store()));
    }
    s.delete_container().await.unwrap();
}
