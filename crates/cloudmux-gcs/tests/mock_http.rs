//! The GCS store against a scripted HTTP server on loopback: statuses no
//! emulator gives on demand, what each means for whether the request took
//! effect, and that every request is sent exactly once (the client makes no
//! retries of its own; the core's Retry layer does).

use std::sync::Arc;

use bytes::Bytes;
use cloudmux_core::testkit::http::{Reply, Scripted, serve as serve_script};
use cloudmux_core::{ErrorKind, PutMode, Store};
use cloudmux_gcs::{Credentials, GcsOptions, GcsStore};

/// Answers every request with `status` and a GCS JSON error body.
async fn serve(status: u16) -> (String, Scripted) {
    let body = format!(
        "{{\"error\":{{\"code\":{status},\"message\":\"scripted\",\
         \"errors\":[{{\"domain\":\"global\",\"reason\":\"scripted\",\"message\":\"scripted\"}}]}}}}"
    );
    let server =
        serve_script(move |_| Reply::status(status, "application/json", body.clone())).await;
    (server.url.clone(), server)
}

async fn store(endpoint: &str) -> Arc<GcsStore> {
    let opts = GcsOptions::new()
        .endpoint(endpoint)
        .credentials(Credentials::Anonymous);
    GcsStore::connect("cmx-bucket", &opts).await.unwrap()
}

#[tokio::test]
async fn unavailable_is_not_applied_and_sent_once() {
    let (ep, count) = serve(503).await;
    let s = store(&ep).await;
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(!e.may_have_applied(), "refused at the door: {e:?}");
    assert_eq!(count.count(), 1);
}

#[tokio::test]
async fn per_object_rate_limit_is_not_applied() {
    let (ep, count) = serve(429).await;
    let s = store(&ep).await;
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Overwrite)
        .await
        .unwrap_err();
    assert!(e.is_retryable() && !e.may_have_applied(), "{e:?}");
    assert_eq!(count.count(), 1);
}

#[tokio::test]
async fn server_errors_may_have_applied_and_every_request_is_sent_once() {
    let (ep, count) = serve(500).await;
    let s = store(&ep).await;
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.may_have_applied(), "{e:?}");
    assert_eq!(count.count(), 1);
    s.head("k").await.unwrap_err();
    s.list(Default::default()).await.unwrap_err();
    s.delete("k").await.unwrap_err();
    assert_eq!(count.count(), 4, "one attempt each");
}
