//! The S3 store against a scripted HTTP server on loopback: the answers no
//! emulator gives (409 ConditionalRequestConflict, 5xx, a connection that
//! breaks after the request was sent), what each means for whether the
//! request took effect, and that the SDK sends every request exactly once.

use std::sync::Arc;

use bytes::Bytes;
use cloudmux_core::testkit::http::{Reply, Scripted, serve as serve_script};
use cloudmux_core::{ErrorKind, Missing, PutMode, Store, Version};
use cloudmux_s3::{S3Config, S3Store};

/// How the scripted server answers every request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// This status, with this S3 error code in an XML body.
    Status(u16, Option<&'static str>),
    /// No answer at all: the connection is closed once the request is read.
    HangUp,
}

/// Serves every request with the same status and S3 error code (one request
/// per connection) and records what it saw.
async fn serve(status: u16, code: Option<&'static str>) -> (String, Scripted) {
    serve_with(Answer::Status(status, code)).await
}

/// Serves every request with `answer` and records what it saw.
async fn serve_with(answer: Answer) -> (String, Scripted) {
    let server = serve_script(move |_| match answer {
        Answer::HangUp => Reply::HangUp,
        Answer::Status(status, code) => {
            let body = match code {
                Some(c) => format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{c}</Code>\
                     <Message>scripted</Message><RequestId>r1</RequestId></Error>"
                ),
                None => String::new(),
            };
            Reply::status(status, "application/xml", body)
        }
    })
    .await;
    (server.url.clone(), server)
}

async fn store(endpoint: &str) -> Arc<S3Store> {
    // Dummy keys (the server checks nothing) and a fixed region.
    let cfg = S3Config::new()
        .endpoint(endpoint)
        .region("us-east-1")
        .static_credentials("test", "test");
    S3Store::new("bucket", &cfg).await.unwrap()
}

#[tokio::test]
async fn conditional_request_conflict_is_transient_not_applied_and_sent_once() {
    let (ep, seen) = serve(409, Some("ConditionalRequestConflict")).await;
    let s = store(&ep).await;
    let e = s
        .put(
            "k",
            Bytes::from_static(b"x"),
            PutMode::Update(Version::new("\"abc\"")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(!e.may_have_applied(), "nothing was written: {e:?}");
    assert!(e.to_string().contains("409"), "{e}");
    let seen = seen.requests();
    assert_eq!(seen.len(), 1, "one request: {seen:?}");
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(
        seen[0].header("if-match"),
        Some("\"abc\""),
        "ETag sent verbatim"
    );
}

#[tokio::test]
async fn precondition_failed_reads_by_request() {
    let (ep, seen) = serve(412, Some("PreconditionFailed")).await;
    let s = store(&ep).await;
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let e = s
        .put(
            "k",
            Bytes::from_static(b"x"),
            PutMode::Update(Version::new("\"v\"")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
    let seen = seen.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("if-none-match"), Some("*"));
    assert_eq!(seen[1].header("if-match"), Some("\"v\""));
}

#[tokio::test]
async fn no_such_key_on_if_match_is_a_lost_compare_and_swap() {
    let (ep, _) = serve(404, Some("NoSuchKey")).await;
    let s = store(&ep).await;
    let e = s
        .put(
            "k",
            Bytes::from_static(b"x"),
            PutMode::Update(Version::new("\"v\"")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
    let e = s.get("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!e.is_bucket_missing(), "{e:?}");
    // Deleting a missing key succeeds.
    s.delete("k").await.unwrap();
}

#[tokio::test]
async fn no_such_bucket_is_a_missing_bucket_for_every_request() {
    let (ep, _) = serve(404, Some("NoSuchBucket")).await;
    let s = store(&ep).await;
    let e = s.get("k").await.unwrap_err();
    assert_eq!(e.missing(), Some(Missing::Bucket), "{e:?}");
    let e = s
        .put(
            "k",
            Bytes::from_static(b"x"),
            PutMode::Update(Version::new("\"v\"")),
        )
        .await
        .unwrap_err();
    assert!(e.is_not_found() && e.is_bucket_missing(), "{e:?}");
    // Deleting a key of a bucket that does not exist is no success.
    let e = s.delete("k").await.unwrap_err();
    assert!(e.is_bucket_missing(), "{e:?}");
}

#[tokio::test]
async fn every_request_is_sent_once() {
    let (ep, seen) = serve(500, Some("InternalError")).await;
    let s = store(&ep).await;
    let sent = || seen.count();
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Overwrite)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.may_have_applied(), "a 500 leaves the outcome open: {e:?}");
    assert_eq!(sent(), 1, "an unconditional put: one attempt");
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(sent(), 2, "a conditional put: one attempt");
    s.get("k").await.unwrap_err();
    s.list(Default::default()).await.unwrap_err();
    s.delete("k").await.unwrap_err();
    assert_eq!(sent(), 5, "reads, listings and deletes: one attempt each");
}

#[tokio::test]
async fn throttling_was_not_applied() {
    let (ep, seen) = serve(503, Some("SlowDown")).await;
    let s = store(&ep).await;
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert!(e.is_retryable() && !e.may_have_applied(), "{e:?}");
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn a_connection_broken_after_sending_may_have_applied() {
    let (ep, seen) = serve_with(Answer::HangUp).await;
    let s = store(&ep).await;
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.may_have_applied(), "the request got through: {e:?}");
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn refused_connections_and_unknown_hosts_were_not_applied() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `.invalid` never resolves (RFC 6761): a name-resolution failure.
    for ep in [
        format!("http://127.0.0.1:{port}"),
        "http://cmx-test.invalid:9000".to_string(),
    ] {
        let s = store(&ep).await;
        let e = s
            .put("k", Bytes::from_static(b"x"), PutMode::Create)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{ep}: {e}");
        assert!(!e.may_have_applied(), "{ep}: nothing was sent: {e:?}");
        assert!(e.to_string().contains("could not connect"), "{e}");
    }
}
