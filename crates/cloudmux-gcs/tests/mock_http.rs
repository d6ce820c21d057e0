//! The GCS store against a scripted HTTP server on loopback: statuses no
//! emulator gives on demand, what each means for whether the request took
//! effect, and that every request is sent exactly once (the client makes no
//! retries of its own; the core's Retry layer does).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use cloudmux_core::{ErrorKind, PutMode, Store};
use cloudmux_gcs::{Credentials, GcsOptions, GcsStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request with `status` and a GCS JSON error body; counts the
/// requests (one per connection).
async fn serve(status: u16) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    "{{\"error\":{{\"code\":{status},\"message\":\"scripted\",\
                     \"errors\":[{{\"domain\":\"global\",\"reason\":\"scripted\",\"message\":\"scripted\"}}]}}}}"
                );
                let resp = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), count)
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
    assert_eq!(count.load(Ordering::SeqCst), 1);
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
    assert_eq!(count.load(Ordering::SeqCst), 1);
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
    assert_eq!(count.load(Ordering::SeqCst), 1);
    s.head("k").await.unwrap_err();
    s.list(Default::default()).await.unwrap_err();
    s.delete("k").await.unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 4, "one attempt each");
}
