//! The S3 store against a scripted HTTP server on loopback: the answers no
//! emulator gives (409 ConditionalRequestConflict, 5xx) and how many times the
//! SDK sends each request.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cloudmux_core::{ErrorKind, PutMode, Store, Version};
use cloudmux_s3::{S3Config, S3Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the server saw it: method, path and the lowercased headers.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves every request with the same status and S3 error code (one request
/// per connection) and records what it saw.
async fn serve(status: u16, code: Option<&'static str>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Read the head, then the body by Content-Length.
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
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let method = lines
                    .next()
                    .unwrap_or("")
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                log.lock().unwrap().push(Seen { method, headers });
                let body = match code {
                    Some(c) => format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{c}</Code>\
                         <Message>scripted</Message><RequestId>r1</RequestId></Error>"
                    ),
                    None => String::new(),
                };
                let resp = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), seen)
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
async fn conditional_request_conflict_is_transient_and_not_retried_by_the_sdk() {
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
    assert!(e.to_string().contains("409"), "{e}");
    let seen = seen.lock().unwrap().clone();
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
    let seen = seen.lock().unwrap().clone();
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
    // Deleting a missing key succeeds.
    s.delete("k").await.unwrap();
}

#[tokio::test]
async fn server_errors_are_retried_by_the_sdk_except_conditional_writes() {
    let (ep, seen) = serve(500, Some("InternalError")).await;
    let s = store(&ep).await;
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Overwrite)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    let plain = seen.lock().unwrap().len();
    assert_eq!(
        plain,
        cloudmux_s3::DEFAULT_SDK_ATTEMPTS as usize,
        "an unconditional put gets the SDK's capped retries"
    );
    let e = s
        .put("k", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(
        seen.lock().unwrap().len(),
        plain + 1,
        "a conditional put is sent once: our layer retries and reads back"
    );
}
