//! S3 answers mapped onto [`ErrorKind`].
//!
//! One pure function, [`classify`], decides the kind from what the request was
//! ([`Op`]), the HTTP status (none when no response came back) and S3's error
//! code. [`from_sdk`] pulls those out of an SDK error and builds the message:
//! status, error code, bucket and key only, never the provider's free text or
//! anything from the request (which may carry signatures).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use cloudmux_core::{Error, ErrorKind};

/// What kind of request failed: the same status means different things for
/// different requests (a 412 is "already exists" for a create and "lost the
/// compare-and-swap" for an update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    Head,
    /// An unconditional PUT.
    Put,
    /// A PUT with `If-None-Match: *`.
    Create,
    /// A PUT with `If-Match: <etag>`.
    Update,
    Delete,
    List,
    CreateBucket,
    DeleteBucket,
}

impl Op {
    /// The operation name used in [`Error`]s.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Put => "put",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::List => "list",
            Op::CreateBucket => "create_bucket",
            Op::DeleteBucket => "delete_bucket",
        }
    }
}

/// Error codes that mean the credentials were refused or lack a permission.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AccountProblem",
    "RequestTimeTooSkewed",
    "InvalidSecurity",
];

/// Error codes of failures that may pass when retried.
const TRANSIENT: &[&str] = &[
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "OperationAborted",
];

/// The kind of a failed S3 request.
///
/// `status` is `None` when no HTTP response came back (connection refused or
/// reset, timeout, unreadable response): the request may or may not have
/// taken effect, so it is `Transient`.
pub(crate) fn classify(op: Op, status: Option<u16>, code: Option<&str>) -> ErrorKind {
    let Some(status) = status else {
        return ErrorKind::Transient;
    };
    let code = code.unwrap_or("");
    // Codes first: they are more precise than statuses.
    match code {
        // A missing bucket is NotFound for every request, a compare-and-swap
        // included: the caller must create the bucket, not re-read the object.
        "NoSuchBucket" => return ErrorKind::NotFound,
        "BucketAlreadyOwnedByYou" | "BucketAlreadyExists" => return ErrorKind::AlreadyExists,
        // S3 (2024-): a conditional write raced another conditional write on
        // the same key that was still in flight. Nothing was written; the
        // caller re-reads and tries again, so it is retryable. No emulator
        // produces it (see the unit tests).
        "ConditionalRequestConflict" => return ErrorKind::Transient,
        "PreconditionFailed" => return precondition_kind(op),
        // LocalStack answers 501 NotImplemented to a conditional delete.
        "NotImplemented" => return ErrorKind::Unsupported,
        c if DENIED.contains(&c) => return ErrorKind::PermissionDenied,
        // RequestTimeout comes as a 400: S3 gave up waiting for the body.
        c if TRANSIENT.contains(&c) => return ErrorKind::Transient,
        _ => {}
    }
    match status {
        412 => precondition_kind(op),
        // 404 NoSuchKey on an If-Match PUT: the object we meant to replace is
        // gone, so the compare-and-swap lost.
        404 if op == Op::Update => ErrorKind::Precondition,
        404 => ErrorKind::NotFound,
        // moto answers conditional writes of unsigned requests with a bare
        // 403 (no code): a credentials problem like any other 403.
        401 | 403 => ErrorKind::PermissionDenied,
        // Any other 409 on a write is a conflict with a concurrent request
        // (S3 also uses OperationAborted): retry after re-reading.
        409 if matches!(op, Op::Put | Op::Create | Op::Update | Op::Delete) => ErrorKind::Transient,
        408 | 429 => ErrorKind::Transient,
        501 => ErrorKind::Unsupported,
        500..=599 => ErrorKind::Transient,
        // 301/307: the bucket lives in another region (or the endpoint is
        // wrong); 400 and 416: the request itself is malformed.
        301 | 307 | 400 | 411 | 413 | 414 | 416 => ErrorKind::InvalidInput,
        _ => ErrorKind::Other,
    }
}

/// A failed precondition: a lost create race or a lost compare-and-swap.
fn precondition_kind(op: Op) -> ErrorKind {
    match op {
        Op::Create => ErrorKind::AlreadyExists,
        _ => ErrorKind::Precondition,
    }
}

/// The message of an error that came with an HTTP response.
pub(crate) fn http_message(
    kind: ErrorKind,
    status: u16,
    code: Option<&str>,
    bucket: &str,
) -> String {
    let code = code.filter(|c| !c.is_empty()).unwrap_or("no error code");
    let mut m = format!("S3 answered HTTP {status} ({code}) in bucket '{bucket}'");
    if code == "NoSuchBucket" {
        m = format!("the bucket '{bucket}' does not exist (HTTP {status} NoSuchBucket)");
    } else if kind == ErrorKind::InvalidInput && (status == 301 || status == 307) {
        m.push_str(": the bucket is in another region, or the endpoint is wrong");
    }
    m
}

/// Converts an SDK error into an [`Error`] about `key` in `bucket`.
pub(crate) fn from_sdk<E, R>(op: Op, bucket: &str, key: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus + 'static,
{
    let status = err.raw_response().map(|r| r.status_u16());
    let code = err.code().map(str::to_string);
    let (kind, message) = match (&err, status) {
        (SdkError::ConstructionFailure(_), _) => (
            ErrorKind::InvalidInput,
            format!("the request could not be built: {}", chain(&err)),
        ),
        (_, Some(status)) => {
            let kind = classify(op, Some(status), code.as_deref());
            (kind, http_message(kind, status, code.as_deref(), bucket))
        }
        // The credentials chain failed before anything was sent: a
        // configuration problem, unless a provider merely timed out.
        (_, None) if let Some(kind) = credentials_failure(&err) => (
            kind,
            format!(
                "no usable AWS credentials (bucket '{bucket}'): {}",
                chain(&err)
            ),
        ),
        // No response: the error chain names the transport failure (refused,
        // reset, timeout); it holds no request data.
        (SdkError::TimeoutError(_), None) => (
            ErrorKind::Transient,
            format!("no answer from S3 in time (bucket '{bucket}')"),
        ),
        (_, None) => (
            ErrorKind::Transient,
            format!("no answer from S3 (bucket '{bucket}'): {}", chain(&err)),
        ),
    };
    let path = if key.is_empty() {
        format!("s3://{bucket}")
    } else {
        key.to_string()
    };
    Error::new(kind, op.name())
        .with_path(path)
        .with_message(message)
}

/// When a credentials provider failed somewhere in the error's causes: the
/// kind to report (`Transient` for a provider that timed out, as IMDS may
/// under load; `PermissionDenied` otherwise).
fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(match c {
                CredentialsError::ProviderTimedOut(_) => ErrorKind::Transient,
                _ => ErrorKind::PermissionDenied,
            });
        }
        cur = e.source();
    }
    None
}

/// An error and its causes, by their `Display` only (the SDK's `Debug`
/// forms are long and may show request internals).
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// The status of a raw response (implemented for the SDK's response type, so
/// that [`from_sdk`] stays generic over operations).
pub(crate) trait HasStatus {
    /// The HTTP status code.
    fn status_u16(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::*;

    #[test]
    fn precondition_failures_depend_on_the_request() {
        assert_eq!(
            classify(Op::Create, Some(412), Some("PreconditionFailed")),
            AlreadyExists
        );
        assert_eq!(
            classify(Op::Update, Some(412), Some("PreconditionFailed")),
            Precondition
        );
        // A 412 without a code (some compatibles) reads the same.
        assert_eq!(classify(Op::Create, Some(412), None), AlreadyExists);
        assert_eq!(classify(Op::Update, Some(412), None), Precondition);
    }

    #[test]
    fn conditional_request_conflict_is_retryable() {
        for op in [Op::Create, Op::Update, Op::Put] {
            assert_eq!(
                classify(op, Some(409), Some("ConditionalRequestConflict")),
                Transient,
                "{op:?}"
            );
        }
        assert_eq!(classify(Op::Update, Some(409), None), Transient);
        assert_eq!(
            classify(Op::Update, Some(409), Some("OperationAborted")),
            Transient
        );
    }

    #[test]
    fn missing_keys() {
        assert_eq!(classify(Op::Get, Some(404), Some("NoSuchKey")), NotFound);
        // HEAD has no body, so no code: the SDK reports "NotFound" or nothing.
        assert_eq!(classify(Op::Head, Some(404), Some("NotFound")), NotFound);
        assert_eq!(classify(Op::Head, Some(404), None), NotFound);
        // If-Match on a key that is gone: the compare-and-swap lost.
        assert_eq!(
            classify(Op::Update, Some(404), Some("NoSuchKey")),
            Precondition
        );
    }

    #[test]
    fn missing_bucket_is_not_found_everywhere() {
        for op in [Op::Get, Op::Head, Op::Update, Op::Create, Op::List, Op::Put] {
            assert_eq!(
                classify(op, Some(404), Some("NoSuchBucket")),
                NotFound,
                "{op:?}"
            );
        }
        let m = http_message(NotFound, 404, Some("NoSuchBucket"), "my-bucket");
        assert!(m.contains("'my-bucket' does not exist"), "{m}");
    }

    #[test]
    fn permission_problems() {
        for code in [
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ] {
            assert_eq!(
                classify(Op::Get, Some(403), Some(code)),
                PermissionDenied,
                "{code}"
            );
        }
        // moto: a bare 403 to an unsigned conditional write.
        assert_eq!(classify(Op::Create, Some(403), None), PermissionDenied);
        assert_eq!(classify(Op::List, Some(401), None), PermissionDenied);
    }

    #[test]
    fn transient_failures() {
        assert_eq!(classify(Op::Put, Some(503), Some("SlowDown")), Transient);
        assert_eq!(
            classify(Op::Get, Some(500), Some("InternalError")),
            Transient
        );
        assert_eq!(classify(Op::Get, Some(502), None), Transient);
        assert_eq!(classify(Op::Get, Some(429), None), Transient);
        // S3's RequestTimeout is a 400 but retryable.
        assert_eq!(
            classify(Op::Put, Some(400), Some("RequestTimeout")),
            Transient
        );
        // No response at all (refused, reset, timed out).
        for op in [Op::Get, Op::Create, Op::Update, Op::List] {
            assert_eq!(classify(op, None, None), Transient, "{op:?}");
        }
    }

    #[test]
    fn bad_requests_and_the_rest() {
        assert_eq!(
            classify(Op::Put, Some(400), Some("InvalidArgument")),
            InvalidInput
        );
        assert_eq!(classify(Op::Put, Some(400), None), InvalidInput);
        assert_eq!(
            classify(Op::List, Some(301), Some("PermanentRedirect")),
            InvalidInput
        );
        assert_eq!(
            classify(Op::Delete, Some(501), Some("NotImplemented")),
            Unsupported
        );
        assert_eq!(
            classify(Op::CreateBucket, Some(409), Some("BucketAlreadyOwnedByYou")),
            AlreadyExists
        );
        assert_eq!(
            classify(Op::DeleteBucket, Some(409), Some("BucketNotEmpty")),
            Other
        );
        assert_eq!(classify(Op::Get, Some(418), None), Other);
    }

    #[test]
    fn credential_failures_are_permission_problems() {
        use aws_credential_types::provider::error::CredentialsError;
        #[derive(Debug)]
        struct Wrap(CredentialsError);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(CredentialsError::not_loaded("no keys anywhere"));
        assert_eq!(credentials_failure(&e), Some(PermissionDenied));
        let e = Wrap(CredentialsError::provider_timed_out(
            std::time::Duration::from_secs(1),
        ));
        assert_eq!(credentials_failure(&e), Some(Transient));
        let io = std::io::Error::other("reset");
        assert_eq!(credentials_failure(&io), None);
    }

    #[test]
    fn transport_failures_read_as_a_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(chain(&e), "dispatch failure: Connection refused");
    }

    #[test]
    fn messages_name_status_code_and_bucket_only() {
        let m = http_message(Precondition, 412, Some("PreconditionFailed"), "b1");
        assert_eq!(
            m,
            "S3 answered HTTP 412 (PreconditionFailed) in bucket 'b1'"
        );
        let m = http_message(PermissionDenied, 403, None, "b1");
        assert_eq!(m, "S3 answered HTTP 403 (no error code) in bucket 'b1'");
        let m = http_message(InvalidInput, 301, Some("PermanentRedirect"), "b1");
        assert!(m.contains("another region"), "{m}");
    }
}
