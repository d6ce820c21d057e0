//! A scripted HTTP server on loopback, for a backend's tests of the answers
//! no emulator gives on demand (a 409 conflict, a 5xx, a connection that
//! breaks after the request was sent): each backend maps them onto typed
//! errors, and must say whether the request may have taken effect.
//!
//! Every connection carries one request; the server reads it whole (head,
//! then the body by `Content-Length`), records it, and answers with what the
//! script returns for it.
//!
//! ```
//! # tokio_test::block_on(async {
//! use cloudmux_core::testkit::http::{serve, Reply};
//! let server = serve(|_| Reply::status(503, "text/plain", "busy")).await;
//! assert!(server.url.starts_with("http://127.0.0.1:"));
//! assert_eq!(server.count(), 0);
//! # });
//! ```

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Seen {
    /// The first header of this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answers with this status, headers and body.
    Answer {
        /// The status code.
        status: u16,
        /// Headers (`Content-Length` and `Connection: close` are added).
        headers: Vec<(String, String)>,
        /// The body.
        body: String,
    },
    /// Closes the connection without answering, once the request is read:
    /// the client cannot know whether it took effect.
    HangUp,
}

impl Reply {
    /// An answer with this status, content type and body.
    pub fn status(status: u16, content_type: &str, body: impl Into<String>) -> Reply {
        Reply::Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// A running scripted server (it stops with the test's runtime).
#[derive(Debug, Clone)]
pub struct Scripted {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Starts a server on a free loopback port, answering each request with
/// `script(&request)`.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn serve<F>(script: F) -> Scripted
where
    F: Fn(&Seen) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                let reply = script(&req);
                log.lock().unwrap_or_else(|p| p.into_inner()).push(req);
                if let Reply::Answer {
                    status,
                    headers,
                    body,
                } = reply
                {
                    let mut resp = format!("HTTP/1.1 {status} Scripted\r\n");
                    for (k, v) in &headers {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str(&format!(
                        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ));
                    let _ = sock.write_all(resp.as_bytes()).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Scripted {
        url: format!("http://{addr}"),
        seen,
    }
}

/// Reads one request: its head, then its body by `Content-Length`. `None`
/// when the client closed the connection before a whole head.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
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
    Some(Seen {
        method,
        target,
        headers,
        body: buf[head_end..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_requests_and_answers_by_script() {
        let server = serve(|r: &Seen| {
            if r.method == "PUT" {
                Reply::status(412, "application/xml", "<Error/>")
                    .with_header("x-ms-error-code", "E")
            } else {
                Reply::HangUp
            }
        })
        .await;
        let addr = server.url.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nIf-None-Match: *\r\n\r\nabc",
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 412 "), "{out}");
        assert!(out.ends_with("<Error/>"), "{out}");
        assert!(out.contains("\r\nx-ms-error-code: E\r\n"), "{out}");
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        assert!(out.is_empty(), "a hang-up answers nothing");
        let seen = server.requests();
        assert_eq!(server.count(), 2);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].target.as_str()),
            ("PUT", "/b/k")
        );
        assert_eq!(seen[0].header("if-none-match"), Some("*"));
        assert_eq!(seen[0].body, b"abc");
        assert_eq!(seen[1].method, "GET");
    }
}
