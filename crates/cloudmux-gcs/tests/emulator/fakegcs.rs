//! The fake-gcs-server checks (see the crate docs of this test).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cloudmux_core::{ErrorKind, ListRequest, PutMode, Store};
use cloudmux_gcs::{EMULATOR_ENV, GcsClient, GcsOptions, GcsStore};

/// Why these tests are ignored by default.
const NEEDS: &str = "needs fake-gcs-server: run by localstack/run-tests.sh";

/// The emulator's options. Fails the test when the emulator is not
/// configured: an emulator test that runs must test the emulator.
fn emulator() -> GcsOptions {
    match std::env::var(EMULATOR_ENV) {
        Ok(v) if !v.trim().is_empty() => GcsOptions::from_env(),
        _ => panic!(
            "{EMULATOR_ENV} is not set, so this fake-gcs-server test cannot run ({NEEDS}). \
             Start it with: CLOUDMUX_EMULATORS=fakegcs bash localstack/up.sh && \
             source localstack/.state/env"
        ),
    }
}

/// A store on a new bucket with a random name.
async fn fresh_store(opts: &GcsOptions) -> Arc<GcsStore> {
    let bucket = format!("cmx-test-{:016x}", fastrand::u64(..));
    let store = GcsStore::connect(&bucket, opts).await.unwrap();
    store.create_bucket("cloudmux-test").await.unwrap();
    store
}

#[tokio::test]
#[ignore = "needs fake-gcs-server: run by localstack/run-tests.sh"]
async fn capabilities_are_declared() {
    let opts = emulator();
    let store = fresh_store(&opts).await;
    let caps = store.capabilities();
    assert!(!caps.conditional_delete);
    assert_eq!(caps.min_write_interval, std::time::Duration::from_secs(1));
    assert_eq!(store.root_url(), format!("gs://{}", store.bucket()));
}

#[tokio::test]
#[ignore = "needs fake-gcs-server: run by localstack/run-tests.sh"]
async fn delete_if_never_deletes() {
    let opts = emulator();
    let store = fresh_store(&opts).await;
    let v = store
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap()
        .version;
    let e = store.delete_if("k", &v).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(store.head("k").await.unwrap().version, Some(v));
}

#[tokio::test]
#[ignore = "needs fake-gcs-server: run by localstack/run-tests.sh"]
async fn missing_bucket_and_taken_bucket() {
    let opts = emulator();
    let store = GcsStore::connect("cmx-test-never-created", &opts)
        .await
        .unwrap();
    // fake-gcs-server says "Not Found" for a missing bucket and a missing
    // object alike, so only the kind can be checked here (the unit tests
    // cover GCS's own message).
    let e = store.list(ListRequest::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = store.get("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let store = fresh_store(&opts).await;
    let e = store.create_bucket("cloudmux-test").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
}

#[tokio::test]
#[ignore = "needs fake-gcs-server: run by localstack/run-tests.sh"]
async fn versions_are_generations() {
    let opts = emulator();
    let store = fresh_store(&opts).await;
    let v1 = store
        .put("g", Bytes::from_static(b"1"), PutMode::Create)
        .await
        .unwrap()
        .version;
    assert!(v1.as_str().parse::<i64>().unwrap() > 0, "{v1:?}");
    // An ETag-like token is refused without a request, as a lost swap.
    let e = store
        .put(
            "g",
            Bytes::from_static(b"2"),
            PutMode::Update(cloudmux_core::Version::new("\"etag\"")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition);
    // Listings carry the generation too.
    let page = store.list(ListRequest::default()).await.unwrap();
    assert_eq!(page.objects[0].version.as_ref(), Some(&v1));
}

/// Reads racing with rewrites always return bytes and the version that
/// belong together: the read pins the generation it saw in the metadata.
/// (The writer pauses between writes: real GCS allows one write per second
/// per object, and a writer faster than a read would starve the reader.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs fake-gcs-server: run by localstack/run-tests.sh"]
async fn reads_pair_bytes_with_their_generation() {
    let opts = emulator();
    let store = fresh_store(&opts).await;
    store
        .put("hot", Bytes::from_static(b"w0"), PutMode::Overwrite)
        .await
        .unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let clock = cloudmux_core::clock::system();
            let mut written = HashMap::new();
            for i in 1..=150 {
                clock.sleep(std::time::Duration::from_millis(5)).await;
                let body = format!("w{i}");
                let v = store
                    .put("hot", Bytes::from(body.clone()), PutMode::Overwrite)
                    .await
                    .unwrap()
                    .version;
                written.insert(v, body);
            }
            written
        })
    };
    let mut seen = Vec::new();
    while !writer.is_finished() {
        let g = store.get("hot").await.unwrap();
        seen.push((g.version(), String::from_utf8(g.bytes.to_vec()).unwrap()));
    }
    let written = writer.await.unwrap();
    let mut checked = 0;
    for (v, body) in &seen {
        if body == "w0" {
            continue;
        }
        assert_eq!(
            written.get(v),
            Some(body),
            "version {v} was read with another body"
        );
        checked += 1;
    }
    // How many reads overlapped the writes depends on the machine: reported,
    // not asserted (a correctness test makes no timing claims).
    eprintln!("{checked} reads overlapped the rewrites");
}

#[tokio::test]
#[ignore = "needs fake-gcs-server: run by localstack/run-tests.sh"]
async fn one_client_serves_many_paths_and_open_url_builds_its_own() {
    let opts = emulator();
    let store = fresh_store(&opts).await;
    let client = GcsClient::connect(&opts).await.unwrap();
    let url = format!("gs://{}/runs/1/", store.bucket());
    let p = client.open_url(&url).unwrap();
    assert_eq!(p.to_string(), format!("gs://{}/runs/1", store.bucket()));
    p.join("a.txt").unwrap().write_text("hi").await.unwrap();
    let q = cloudmux_gcs::open_url(&format!("gs://{}/runs", store.bucket()), &opts)
        .await
        .unwrap();
    assert_eq!(q.join("1/a.txt").unwrap().read_text().await.unwrap(), "hi");
}
