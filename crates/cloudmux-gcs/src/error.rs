//! From a failed GCS request to a [`cloudmux_core::Error`].
//!
//! The mapping works in two steps so that it can be tested without a server:
//! [`Cause::of`] summarizes an SDK error into a credential-free [`Cause`]
//! (a status code and the provider's reason, "nothing sent", or "no
//! response"), and [`classify`] builds the error from the cause *and the
//! operation* (the core's one [`Op`] taxonomy): the same status means
//! different things to a create and to an update. GCS's own rules come first,
//! each quirk commented where it is handled; statuses they do not settle fall
//! back to [`cloudmux_core::http::classify`].
//!
//! A missing bucket is told apart from a missing object here and nowhere
//! else: [`Cause::of`] reads it (GCS says so only in its message) and the
//! error carries [`Missing::Bucket`]. Requests that certainly did not take
//! effect (no connection, throttled) are marked [`Error::not_applied`].
//!
//! No SDK error value ever leaves this module: messages carry the status,
//! the provider's reason code, the bucket and the key, nothing else.

use cloudmux_core::{Error, ErrorKind, Missing, Op, http};
use gcloud_storage::client::google_cloud_auth::error::Error as AuthError;
use gcloud_storage::http::Error as GcsError;

/// A credential-free summary of why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The service answered with this status.
    Status {
        /// The HTTP status code.
        code: u16,
        /// The provider's reason code (`conditionNotMet`, `notFound`, ...),
        /// when the body was a JSON error.
        reason: Option<String>,
        /// The service said that the bucket itself does not exist.
        bucket_missing: bool,
    },
    /// The request was never sent: no connection could be opened (name
    /// resolution, TCP, TLS), or no token could be fetched for it.
    NotSent(String),
    /// No usable response to a request that may have been sent: the
    /// connection broke or timed out afterwards.
    Transport(String),
    /// A response arrived but could not be understood.
    BadResponse(String),
    /// No access token could be obtained, for a reason retrying will not fix.
    Auth(String),
}

/// GCS says "The specified bucket does not exist." for a missing bucket and
/// "No such object: ..." for a missing object, both with reason `notFound`:
/// only the message tells them apart, so this is the one place that reads
/// it. (fake-gcs-server says "Not Found" for both, so against it a missing
/// bucket reads as a missing object.)
fn says_bucket_missing(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("bucket does not exist")
}

impl Cause {
    /// Summarizes an SDK error.
    pub(crate) fn of(e: &GcsError) -> Cause {
        match e {
            GcsError::Response(r) => Cause::Status {
                code: r.code,
                reason: r.errors.first().map(|i| i.reason.clone()),
                bucket_missing: r.code == 404 && says_bucket_missing(&r.message),
            },
            // The body was not a JSON error (fake-gcs-server answers media
            // downloads of missing objects with a plain "Not Found"), or the
            // request never got an answer.
            GcsError::HttpClient(e) | GcsError::RawResponse(e, _) => Cause::of_reqwest(e),
            GcsError::HttpMiddleware(_) => Cause::BadResponse("HTTP middleware failed".into()),
            GcsError::TokenSource(e) => match e.downcast_ref::<AuthError>() {
                Some(a) => Cause::of_auth(a),
                None => Cause::Auth("the token source failed".into()),
            },
            GcsError::InvalidRangeHeader(_) => Cause::BadResponse("invalid range header".into()),
        }
    }

    /// Summarizes a transport-level error. The URL is dropped: it names only
    /// the bucket and key, but nothing from a URL belongs in a message.
    pub(crate) fn of_reqwest(e: &reqwest::Error) -> Cause {
        if let Some(s) = e.status() {
            return Cause::Status {
                code: s.as_u16(),
                reason: None,
                bucket_missing: false,
            };
        }
        if e.is_decode() && source_is_json(e) {
            return Cause::BadResponse("the response body is not the expected JSON".into());
        }
        let with_root = |what: &str| match innermost(e) {
            Some(root) => format!("{what}: {root}"),
            None => what.to_string(),
        };
        // Connecting (resolving the name, opening TCP, TLS, and their
        // timeout) comes before a single byte of the request.
        if e.is_connect() {
            return Cause::NotSent(with_root("could not connect"));
        }
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_body() || e.is_decode() {
            "the response body broke off"
        } else {
            "the request failed"
        };
        Cause::Transport(with_root(what))
    }

    fn of_auth(a: &AuthError) -> Cause {
        // Tokens are fetched before the storage request is sent: a token
        // endpoint that cannot be reached leaves the request unsent.
        match a {
            AuthError::HttpError(e) => match Cause::of_reqwest(e) {
                Cause::Transport(m) | Cause::NotSent(m) => {
                    Cause::NotSent(format!("token endpoint: {m}"))
                }
                other => other,
            },
            // The token endpoint itself failing is worth another try.
            AuthError::TokenErrorResponse { status, error, .. } if *status >= 500 => {
                Cause::NotSent(format!("token endpoint answered {status} {error}"))
            }
            AuthError::TokenErrorResponse { status, error, .. } => {
                Cause::Auth(format!("token endpoint answered {status} {error}"))
            }
            other => Cause::Auth(other.to_string()),
        }
    }
}

/// True when a decode error comes from JSON parsing (not from a broken body).
fn source_is_json(e: &reqwest::Error) -> bool {
    let mut s: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = s {
        if err.is::<serde_json::Error>() {
            return true;
        }
        s = err.source();
    }
    false
}

/// The innermost cause (an I/O error such as "Connection refused").
fn innermost(e: &reqwest::Error) -> Option<String> {
    let mut s: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut last = None;
    while let Some(err) = s {
        last = Some(err.to_string());
        s = err.source();
    }
    last
}

/// The error of a failed request (without path and message): its kind by
/// what the caller should do next, what is missing, and whether it
/// certainly did not take effect.
pub(crate) fn classify(op: Op, cause: &Cause) -> Error {
    let new = |kind: ErrorKind| Error::new(kind, op.name());
    let (code, bucket_missing) = match cause {
        Cause::Status {
            code,
            bucket_missing,
            ..
        } => (*code, *bucket_missing),
        Cause::NotSent(_) => return new(ErrorKind::Transient).not_applied(),
        // No response: the outcome of a write is open. Transient is the
        // core's word for that; the Retry layer settles retried writes.
        Cause::Transport(_) => return new(ErrorKind::Transient),
        Cause::BadResponse(_) => return new(ErrorKind::Other),
        Cause::Auth(_) => return new(ErrorKind::PermissionDenied).not_applied(),
    };
    match code {
        // A missing bucket is NotFound for every operation, a
        // compare-and-swap included.
        404 if bucket_missing => Error::not_found(op.name(), Missing::Bucket),
        // GCS allows about one write per second to one object name and
        // answers faster rewrites with 429 (see `MIN_WRITE_INTERVAL`); like
        // any 429 it is a refusal at the door: nothing was written.
        429 => new(ErrorKind::Transient).not_applied(),
        // 409 to a bucket insert: the name is taken.
        409 if op == Op::CreateBucket => new(ErrorKind::AlreadyExists),
        // 409 to an object request: "a conflicting concurrent change to the
        // same resource" was not committed; retrying settles it (a retried
        // create that lost then gets 412). Kept "may have applied": the
        // cost of being wrong the other way is a false lost race.
        409 => new(ErrorKind::Transient),
        // Everything else as every provider agrees: 412 conditionNotMet is a
        // lost create race for ifGenerationMatch=0 and a lost
        // compare-and-swap for ifGenerationMatch=<g>; a 404 to an update
        // means the same (no such version); 408, 5xx are transient; 401 and
        // 403 will not pass by waiting.
        _ => match http::classify(op, code) {
            ErrorKind::Transient if http::refused_before_applying(code) => {
                new(ErrorKind::Transient).not_applied()
            }
            kind => new(kind),
        },
    }
}

/// The message of a failure: status and reason, or the transport summary.
pub(crate) fn message_for(cause: &Cause, bucket: &str) -> String {
    match cause {
        Cause::Status {
            bucket_missing: true,
            code,
            ..
        } => format!("bucket '{bucket}' does not exist (HTTP {code})"),
        Cause::Status {
            code,
            reason: Some(r),
            ..
        } => format!("HTTP {code} {r} (bucket '{bucket}')"),
        Cause::Status { code, .. } => format!("HTTP {code} (bucket '{bucket}')"),
        Cause::NotSent(m) => format!("not sent: {m}"),
        Cause::Transport(m) => format!("no response: {m}"),
        Cause::BadResponse(m) => format!("unexpected response: {m}"),
        Cause::Auth(m) => format!(
            "no usable Google credentials: {m} (set GOOGLE_APPLICATION_CREDENTIALS, run \
             `gcloud auth application-default login`, or set STORAGE_EMULATOR_HOST for an emulator)"
        ),
    }
}

/// Builds the core error of a failed operation on `key` (empty for bucket-level
/// operations).
pub(crate) fn to_error(op: Op, cause: &Cause, bucket: &str, key: &str) -> Error {
    let e = classify(op, cause).with_message(message_for(cause, bucket));
    if key.is_empty() {
        e.with_path(format!("gs://{bucket}"))
    } else {
        e.with_path(key)
    }
}

/// Shorthand: maps an SDK error of `op` on `key`.
pub(crate) fn map(op: Op, e: &GcsError, bucket: &str, key: &str) -> Error {
    to_error(op, &Cause::of(e), bucket, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_storage::http::error::{ErrorResponse, ErrorResponseItem};

    fn kind_for(op: Op, cause: &Cause) -> ErrorKind {
        classify(op, cause).kind()
    }

    fn status(code: u16) -> Cause {
        Cause::Status {
            code,
            reason: None,
            bucket_missing: false,
        }
    }

    fn response(code: u16, reason: &str, message: &str) -> GcsError {
        GcsError::Response(ErrorResponse {
            code,
            message: message.into(),
            errors: vec![ErrorResponseItem {
                domain: "global".into(),
                location: None,
                location_type: None,
                message: message.into(),
                reason: reason.into(),
            }],
        })
    }

    #[test]
    fn precondition_failed_depends_on_the_write_mode() {
        assert_eq!(kind_for(Op::Create, &status(412)), ErrorKind::AlreadyExists);
        assert_eq!(kind_for(Op::Update, &status(412)), ErrorKind::Precondition);
        assert_eq!(kind_for(Op::Put, &status(412)), ErrorKind::Precondition);
    }

    #[test]
    fn not_found() {
        assert_eq!(kind_for(Op::Get, &status(404)), ErrorKind::NotFound);
        assert_eq!(kind_for(Op::Head, &status(404)), ErrorKind::NotFound);
        assert_eq!(kind_for(Op::List, &status(404)), ErrorKind::NotFound);
        // An update of a missing object lost its compare-and-swap...
        assert_eq!(kind_for(Op::Update, &status(404)), ErrorKind::Precondition);
        // ...unless the bucket is what is missing.
        let gone = Cause::of(&response(
            404,
            "notFound",
            "The specified bucket does not exist.",
        ));
        assert_eq!(kind_for(Op::Update, &gone), ErrorKind::NotFound);
        assert_eq!(kind_for(Op::Create, &gone), ErrorKind::NotFound);
        for op in [Op::Get, Op::Update, Op::Create, Op::List, Op::Delete] {
            assert_eq!(
                classify(op, &gone).missing(),
                Some(Missing::Bucket),
                "{op:?}"
            );
        }
        // A missing object is no missing bucket.
        let obj = Cause::of(&response(404, "notFound", "No such object: b/a"));
        assert!(!classify(Op::Get, &obj).is_bucket_missing());
    }

    #[test]
    fn missing_bucket_is_named_in_the_message() {
        let e = map(
            Op::List,
            &response(404, "notFound", "The specified bucket does not exist."),
            "my-bucket",
            "",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.is_bucket_missing());
        assert_eq!(
            e.message(),
            Some("bucket 'my-bucket' does not exist (HTTP 404)")
        );
        assert_eq!(e.path(), Some("gs://my-bucket"));
        // A missing object in a bucket whose name contains "bucket" is not a
        // missing bucket.
        let e = map(
            Op::Get,
            &response(404, "notFound", "No such object: test-bucket/a"),
            "test-bucket",
            "a",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!e.is_bucket_missing());
        assert_eq!(
            e.message(),
            Some("HTTP 404 notFound (bucket 'test-bucket')")
        );
        assert_eq!(e.path(), Some("a"));
    }

    #[test]
    fn permissions_and_input() {
        for code in [401, 403] {
            assert_eq!(
                kind_for(Op::Get, &status(code)),
                ErrorKind::PermissionDenied
            );
            assert_eq!(
                kind_for(Op::Create, &status(code)),
                ErrorKind::PermissionDenied
            );
        }
        assert_eq!(kind_for(Op::Create, &status(400)), ErrorKind::InvalidInput);
        assert_eq!(kind_for(Op::Get, &status(414)), ErrorKind::InvalidInput);
        assert_eq!(
            kind_for(Op::Get, &Cause::Auth("no file".into())),
            ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn retryable_statuses_are_transient() {
        for code in [408, 429, 500, 502, 503, 504] {
            for op in [Op::Get, Op::Create, Op::Update, Op::List, Op::Delete] {
                assert_eq!(
                    kind_for(op, &status(code)),
                    ErrorKind::Transient,
                    "{code} {op:?}"
                );
            }
        }
        assert_eq!(kind_for(Op::Create, &status(409)), ErrorKind::Transient);
        assert_eq!(
            kind_for(Op::CreateBucket, &status(409)),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind_for(Op::Update, &Cause::Transport("reset".into())),
            ErrorKind::Transient
        );
        assert_eq!(kind_for(Op::Get, &status(418)), ErrorKind::Other);
        assert_eq!(
            kind_for(Op::Get, &Cause::BadResponse("x".into())),
            ErrorKind::Other
        );
    }

    #[test]
    fn refusals_were_not_applied_and_the_rest_may_have() {
        // The per-object rate limit, and any throttling or unavailability.
        for code in [429, 503] {
            let e = classify(Op::Update, &status(code));
            assert!(e.is_retryable() && !e.may_have_applied(), "{code}: {e:?}");
        }
        let e = classify(Op::Create, &Cause::NotSent("could not connect".into()));
        assert!(e.is_retryable() && !e.may_have_applied(), "{e:?}");
        // Other server errors, conflicts and lost responses leave it open.
        for cause in [
            status(500),
            status(502),
            status(408),
            status(409),
            Cause::Transport("timed out".into()),
        ] {
            let e = classify(Op::Create, &cause);
            assert!(e.is_retryable() && e.may_have_applied(), "{cause:?}: {e:?}");
        }
        // Definite answers are no "may have applied" either.
        assert!(!classify(Op::Create, &status(412)).may_have_applied());
    }

    #[test]
    fn errors_are_named_by_the_core_operation() {
        assert_eq!(classify(Op::Put, &status(500)).op(), "put");
        assert_eq!(
            classify(Op::CreateBucket, &status(409)).op(),
            "create_bucket"
        );
        assert_eq!(
            classify(Op::Connect, &Cause::Auth("x".into())).op(),
            "connect"
        );
    }

    #[test]
    fn response_errors_keep_status_and_reason_only() {
        let e = map(
            Op::Create,
            &response(412, "conditionNotMet", "Precondition failed: secret detail"),
            "b",
            "k/1",
        );
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(e.op(), "create");
        assert_eq!(e.message(), Some("HTTP 412 conditionNotMet (bucket 'b')"));
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn token_failures() {
        let boxed = |a: AuthError| GcsError::TokenSource(Box::new(a));
        let e = boxed(AuthError::TokenErrorResponse {
            status: 400,
            error: "invalid_grant".into(),
            error_description: "Token has been expired or revoked.".into(),
        });
        assert_eq!(
            kind_for(Op::Get, &Cause::of(&e)),
            ErrorKind::PermissionDenied
        );
        let e = boxed(AuthError::TokenErrorResponse {
            status: 503,
            error: "unavailable".into(),
            error_description: String::new(),
        });
        assert_eq!(kind_for(Op::Get, &Cause::of(&e)), ErrorKind::Transient);
        // The storage request itself was not sent yet.
        assert!(!classify(Op::Create, &Cause::of(&e)).may_have_applied());
        let e = boxed(AuthError::NoCredentialsFileFound);
        let err = map(Op::Connect, &e, "b", "");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("STORAGE_EMULATOR_HOST"), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_is_transient_and_not_applied() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = reqwest::Client::new();
        let e = client
            .get(format!("http://127.0.0.1:{port}/x"))
            .send()
            .await
            .unwrap_err();
        let cause = Cause::of(&GcsError::HttpClient(e));
        assert!(matches!(cause, Cause::NotSent(_)), "{cause:?}");
        assert_eq!(kind_for(Op::Create, &cause), ErrorKind::Transient);
        assert!(!classify(Op::Create, &cause).may_have_applied());
        let msg = message_for(&cause, "b");
        assert!(msg.starts_with("not sent: could not connect"), "{msg}");
        assert!(!msg.contains("127.0.0.1"), "no URL in the message: {msg}");
    }

    #[tokio::test]
    async fn unknown_host_is_not_applied_and_a_hang_up_may_have_applied() {
        let client = reqwest::Client::new();
        // `.invalid` never resolves (RFC 6761).
        let e = client
            .get("http://cmx-test.invalid:4443/x")
            .send()
            .await
            .unwrap_err();
        let cause = Cause::of(&GcsError::HttpClient(e));
        assert!(matches!(cause, Cause::NotSent(_)), "{cause:?}");
        // A server that reads the request and closes the connection.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            if let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
            }
        });
        let e = client
            .post(format!("http://{addr}/upload"))
            .body("x")
            .send()
            .await
            .unwrap_err();
        let cause = Cause::of(&GcsError::HttpClient(e));
        assert!(matches!(cause, Cause::Transport(_)), "{cause:?}");
        assert!(classify(Op::Create, &cause).may_have_applied());
    }
}
