//! The Azure store against a scripted HTTP server on loopback (and against
//! no server at all): what each failure means for whether the request took
//! effect, and that every request is sent exactly once (neither the SDK nor
//! reqwest retries; the core's Retry layer does).

use bytes::Bytes;
use cloudmux_azure::config::{DEV_ACCOUNT, DEV_ACCOUNT_KEY};
use cloudmux_azure::{AzureConfig, AzureStore, Credential, Secret};
use cloudmux_core::testkit::http::{Reply, Scripted, serve as serve_script};
use cloudmux_core::{ErrorKind, PutMode, Store};

/// Answers every request with `status` and an Azure error code (in the
/// `x-ms-error-code` header and the XML body).
async fn serve(status: u16, code: &'static str) -> (String, Scripted) {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code>\
         <Message>scripted</Message></Error>"
    );
    let server = serve_script(move |_| {
        Reply::status(status, "application/xml", body.clone()).with_header("x-ms-error-code", code)
    })
    .await;
    (server.url.clone(), server)
}

fn store(host: &str) -> AzureStore {
    let cfg = AzureConfig::new(
        DEV_ACCOUNT,
        "ctr",
        Credential::AccountKey(Secret::new(DEV_ACCOUNT_KEY)),
    )
    .unwrap()
    .with_endpoint(format!("{host}/{DEV_ACCOUNT}").parse().unwrap());
    AzureStore::new(cfg).unwrap()
}

#[tokio::test]
async fn server_busy_is_not_applied_and_sent_once() {
    let (ep, count) = serve(503, "ServerBusy").await;
    let s = store(&ep);
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(!e.may_have_applied(), "refused at the door: {e:?}");
    assert_eq!(count.count(), 1);
}

#[tokio::test]
async fn server_errors_may_have_applied_and_every_request_is_sent_once() {
    let (ep, count) = serve(500, "InternalError").await;
    let s = store(&ep);
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert!(e.is_retryable() && e.may_have_applied(), "{e:?}");
    assert_eq!(count.count(), 1);
    s.get("k").await.unwrap_err();
    s.delete("k").await.unwrap_err();
    assert_eq!(count.count(), 3, "one attempt each");
}

#[tokio::test]
async fn a_missing_container_is_no_successful_delete() {
    let (ep, _) = serve(404, "ContainerNotFound").await;
    let s = store(&ep);
    let e = s.delete("k").await.unwrap_err();
    assert!(e.is_not_found() && e.is_bucket_missing(), "{e:?}");
}

#[tokio::test]
async fn refused_connections_and_unknown_hosts_were_not_applied() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for host in [
        format!("http://127.0.0.1:{port}"),
        "http://cmx-test.invalid:10000".to_string(),
    ] {
        let e = store(&host)
            .put("k", Bytes::from_static(b"x"), PutMode::Create)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{host}: {e}");
        assert!(!e.may_have_applied(), "{host}: nothing was sent: {e:?}");
        assert!(!format!("{e:?}").contains("sig="), "{e:?}");
    }
}
