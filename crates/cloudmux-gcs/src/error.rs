//! From a failed GCS request to a [`cloudmux_core::Error`].
//!
//! The mapping works in two steps so that it can be tested without a server:
//! [`Cause::of`] summarizes an SDK error into a credential-free [`Cause`]
//! (a status code and the provider's reason, or "no response"), and
//! [`kind_for`] chooses the [`ErrorKind`] from the cause *and the operation*:
//! the same status means different things to a create and to an update.
//! No SDK error value ever leaves this module: messages carry the status,
//! the provider's reason code, the bucket and the key, nothing else.

use cloudmux_core::{Error, ErrorKind};
use gcloud_storage::client::google_cloud_auth::error::Error as AuthError;
use gcloud_storage::http::Error as GcsError;

/// What a request was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Object metadata or media read.
    Get,
    /// Object metadata read.
    Head,
    /// Upload with `ifGenerationMatch=0`.
    Create,
    /// Upload with `ifGenerationMatch=<generation>`.
    Update,
    /// Upload without a precondition.
    Overwrite,
    /// Object delete.
    Delete,
    /// Object listing.
    List,
    /// Bucket creation.
    CreateBucket,
    /// Building a client (credentials).
    Connect,
}

impl Op {
    /// The verb used in error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Create => "create",
            Op::Update => "update",
            Op::Overwrite => "put",
            Op::Delete => "delete",
            Op::List => "list",
            Op::CreateBucket => "create bucket",
            Op::Connect => "connect",
        }
    }
}

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
    /// No usable response: the connection failed, timed out or broke.
    Transport(String),
    /// A response arrived but could not be understood.
    BadResponse(String),
    /// No access token could be obtained, for a reason retrying will not fix.
    Auth(String),
}

/// GCS says "The specified bucket does not exist." for a missing bucket and
/// "No such object: ..." for a missing object, both with reason `notFound`:
/// only the message tells them apart. (fake-gcs-server says "Not Found" for
/// both, so against it a missing bucket reads as a missing object.)
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
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "the response body broke off"
        } else {
            "the request failed"
        };
        Cause::Transport(match innermost(e) {
            Some(root) => format!("{what}: {root}"),
            None => what.to_string(),
        })
    }

    fn of_auth(a: &AuthError) -> Cause {
        match a {
            AuthError::HttpError(e) => match Cause::of_reqwest(e) {
                Cause::Transport(m) => Cause::Transport(format!("token endpoint: {m}")),
                other => other,
            },
            // The token endpoint itself failing is worth another try.
            AuthError::TokenErrorResponse { status, error, .. } if *status >= 500 => {
                Cause::Transport(format!("token endpoint answered {status} {error}"))
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

/// Chooses the kind of a failure by what the caller should do next.
pub(crate) fn kind_for(op: Op, cause: &Cause) -> ErrorKind {
    let (code, bucket_missing) = match cause {
        Cause::Status {
            code,
            bucket_missing,
            ..
        } => (*code, *bucket_missing),
        // No response: the outcome of a write is unknown. Transient is the
        // core's word for that; the path layer reads back on a retried write.
        Cause::Transport(_) => return ErrorKind::Transient,
        Cause::BadResponse(_) => return ErrorKind::Other,
        Cause::Auth(_) => return ErrorKind::PermissionDenied,
    };
    match code {
        400 => ErrorKind::InvalidInput,
        // 401: missing or expired token; 403: the principal lacks a
        // permission (or billing is off). Neither passes by waiting.
        401 | 403 => ErrorKind::PermissionDenied,
        // A missing bucket is NotFound for every operation.
        404 if bucket_missing => ErrorKind::NotFound,
        // GCS answers `ifGenerationMatch=<g>` on a missing object with 412,
        // but a 404 on an update means the same thing: no such version.
        404 if op == Op::Update => ErrorKind::Precondition,
        404 => ErrorKind::NotFound,
        // 408 request timeout, 429 rate limit (also the ~1 write/s per object
        // name limit), 5xx: documented as retryable by GCS.
        408 | 429 | 500..=599 => ErrorKind::Transient,
        // 409 on an object: "a conflicting concurrent change to the same
        // resource" was not committed; retrying settles it (a retried create
        // that lost then gets 412). On a bucket insert: the name is taken.
        409 if op == Op::CreateBucket => ErrorKind::AlreadyExists,
        409 => ErrorKind::Transient,
        // 412 conditionNotMet: for ifGenerationMatch=0 the object exists (a
        // lost create race); for ifGenerationMatch=<g> the generation moved on
        // or the object is gone (a lost compare-and-swap).
        412 if op == Op::Create => ErrorKind::AlreadyExists,
        412 => ErrorKind::Precondition,
        // 413 payload too large; 414 URI (key) too long.
        413 | 414 => ErrorKind::InvalidInput,
        _ => ErrorKind::Other,
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
    let e = Error::new(kind_for(op, cause), op.name()).with_message(message_for(cause, bucket));
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
        assert_eq!(
            kind_for(Op::Overwrite, &status(412)),
            ErrorKind::Precondition
        );
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
        let e = boxed(AuthError::NoCredentialsFileFound);
        let err = map(Op::Connect, &e, "b", "");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("STORAGE_EMULATOR_HOST"), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_is_transient() {
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
        assert!(matches!(cause, Cause::Transport(_)), "{cause:?}");
        assert_eq!(kind_for(Op::Create, &cause), ErrorKind::Transient);
        let msg = message_for(&cause, "b");
        assert!(msg.starts_with("no response: could not connect"), "{msg}");
        assert!(!msg.contains("127.0.0.1"), "no URL in the message: {msg}");
    }
}
