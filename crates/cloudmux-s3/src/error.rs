//! S3 answers mapped onto the core [`Error`].
//!
//! [`classify`] is one pure function of what the request was ([`Op`], the
//! core's one taxonomy), the HTTP status and S3's error code. S3's own codes
//! come first, each quirk commented where it is handled; for statuses the
//! codes do not settle it falls back to [`cloudmux_core::http::classify`].
//! It also says what the core needs beyond the kind: a missing bucket is
//! [`Missing::Bucket`] (read from the code `NoSuchBucket`, never from a
//! message), and a request that certainly did not take effect is marked
//! [`Error::not_applied`].
//!
//! [`from_sdk`] pulls status and code out of an SDK error (or sees that no
//! response came back) and builds the message: status, error code, bucket and
//! key only, never the provider's free text or anything from the request
//! (which may carry signatures).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use cloudmux_core::{Error, ErrorKind, Missing, Op, http};

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

/// Error codes of throttling: the request was refused at the door, so it did
/// not take effect, and it may pass later.
const THROTTLED: &[&str] = &[
    "SlowDown",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
];

/// Error codes of failures that may pass when retried and whose request may
/// nevertheless have taken effect.
const TRANSIENT: &[&str] = &[
    "InternalError",
    // A 400: S3 gave up waiting for the rest of the request.
    "RequestTimeout",
    "OperationAborted",
];

/// The error of an S3 request that was answered with `status` and, when the
/// body said one, the error `code`. Path and message are added by the caller.
pub(crate) fn classify(op: Op, status: u16, code: Option<&str>) -> Error {
    let code = code.unwrap_or("");
    let kind = |k: ErrorKind| Error::new(k, op.name());
    // S3's codes first: they are more precise than statuses.
    match code {
        // A missing bucket is NotFound for every request, a compare-and-swap
        // included: the caller must create the bucket, not re-read the object.
        "NoSuchBucket" => return Error::not_found(op.name(), Missing::Bucket),
        "BucketAlreadyOwnedByYou" | "BucketAlreadyExists" => {
            return kind(ErrorKind::AlreadyExists);
        }
        // S3 (2024-): a 409 to a conditional write that raced another
        // conditional write on the same key still in flight. Nothing was
        // written: retrying it (after re-reading) is safe. No emulator
        // produces it (see the unit tests and tests/mock_http.rs).
        "ConditionalRequestConflict" => return kind(ErrorKind::Transient).not_applied(),
        // Some compatibles send the code with another status.
        "PreconditionFailed" => return by_status(op, 412, code),
        // LocalStack answers 501 NotImplemented to a conditional delete
        // (which this backend does not send; see `Capabilities`).
        "NotImplemented" => return kind(ErrorKind::Unsupported),
        c if DENIED.contains(&c) => return kind(ErrorKind::PermissionDenied),
        c if THROTTLED.contains(&c) => return kind(ErrorKind::Transient).not_applied(),
        c if TRANSIENT.contains(&c) => return kind(ErrorKind::Transient),
        _ => {}
    }
    match status {
        // Any other 409 to an object write is a conflict with a concurrent
        // request on the key: retry (after re-reading). It may have applied.
        409 if matches!(
            op,
            Op::Put | Op::Create | Op::Update | Op::Delete | Op::DeleteIf
        ) =>
        {
            kind(ErrorKind::Transient)
        }
        // moto answers conditional writes of unsigned requests with a bare
        // 403 (no code): a credentials problem like any other 403 (and so
        // left to the shared classification).
        _ => by_status(op, status, code),
    }
}

/// The shared classification of `status`, with what S3's code adds to it.
///
/// S3's 404 `NoSuchKey` to an `If-Match` PUT (the object to replace is gone)
/// is a lost compare-and-swap: the shared rule for `Update` says exactly that.
fn by_status(op: Op, status: u16, code: &str) -> Error {
    match http::classify(op, status) {
        ErrorKind::NotFound if code == "NoSuchKey" => Error::not_found(op.name(), Missing::Object),
        // HEAD answers carry no body, so no code: object or bucket, S3 does
        // not say.
        ErrorKind::NotFound => Error::new(ErrorKind::NotFound, op.name()),
        ErrorKind::Transient if http::refused_before_applying(status) => {
            Error::new(ErrorKind::Transient, op.name()).not_applied()
        }
        kind => Error::new(kind, op.name()),
    }
}

/// The message of an error that came with an HTTP response.
pub(crate) fn http_message(e: &Error, status: u16, code: Option<&str>, bucket: &str) -> String {
    let code = code.filter(|c| !c.is_empty()).unwrap_or("no error code");
    if e.is_bucket_missing() {
        return format!("the bucket '{bucket}' does not exist (HTTP {status} {code})");
    }
    let mut m = format!("S3 answered HTTP {status} ({code}) in bucket '{bucket}'");
    if e.kind() == ErrorKind::InvalidInput && (status == 301 || status == 307) {
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
    let transient = || Error::new(ErrorKind::Transient, op.name());
    let e = match (&err, status) {
        (SdkError::ConstructionFailure(_), _) => Error::new(ErrorKind::InvalidInput, op.name())
            .not_applied()
            .with_message(format!("the request could not be built: {}", chain(&err))),
        (_, Some(status)) => {
            let e = classify(op, status, code.as_deref());
            let m = http_message(&e, status, code.as_deref(), bucket);
            e.with_message(m)
        }
        // The credentials chain failed before anything was sent: a
        // configuration problem, unless a provider merely timed out.
        (_, None) if let Some(kind) = credentials_failure(&err) => Error::new(kind, op.name())
            .not_applied()
            .with_message(format!(
                "no usable AWS credentials (bucket '{bucket}'): {}",
                chain(&err)
            )),
        // No connection could be opened (DNS, TCP, TLS): nothing was sent.
        (_, None) if nothing_sent(&err) => transient().not_applied().with_message(format!(
            "could not connect to S3 (bucket '{bucket}'): {}",
            chain(&err)
        )),
        // No response to a request that may have been sent: its outcome is
        // open. The error chain names the failure (reset, timeout); it holds
        // no request data.
        (SdkError::TimeoutError(_), None) => {
            transient().with_message(format!("no answer from S3 in time (bucket '{bucket}')"))
        }
        (_, None) => transient().with_message(format!(
            "no answer from S3 (bucket '{bucket}'): {}",
            chain(&err)
        )),
    };
    let path = if key.is_empty() {
        format!("s3://{bucket}")
    } else {
        key.to_string()
    };
    e.with_path(path)
}

/// True when the connection itself could not be opened (name resolution,
/// TCP connect, TLS handshake, connect timeout): the request was never sent.
fn nothing_sent(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return h.is_connect();
        }
        cur = e.source();
    }
    false
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

    fn kind(op: Op, status: u16, code: Option<&str>) -> ErrorKind {
        classify(op, status, code).kind()
    }

    #[test]
    fn precondition_failures_depend_on_the_request() {
        assert_eq!(
            kind(Op::Create, 412, Some("PreconditionFailed")),
            AlreadyExists
        );
        assert_eq!(
            kind(Op::Update, 412, Some("PreconditionFailed")),
            Precondition
        );
        // A 412 without a code (some compatibles) reads the same.
        assert_eq!(kind(Op::Create, 412, None), AlreadyExists);
        assert_eq!(kind(Op::Update, 412, None), Precondition);
        // A lost race is a definite answer.
        assert!(!classify(Op::Create, 412, None).may_have_applied());
    }

    #[test]
    fn conditional_request_conflict_is_retryable() {
        for op in [Op::Create, Op::Update, Op::Put] {
            assert_eq!(
                kind(op, 409, Some("ConditionalRequestConflict")),
                Transient,
                "{op:?}"
            );
        }
        assert_eq!(kind(Op::Update, 409, None), Transient);
        assert_eq!(kind(Op::Update, 409, Some("OperationAborted")), Transient);
    }

    #[test]
    fn conditional_request_conflict_was_not_applied() {
        for op in [Op::Create, Op::Update] {
            let e = classify(op, 409, Some("ConditionalRequestConflict"));
            assert!(e.is_retryable() && !e.may_have_applied(), "{op:?}: {e:?}");
        }
        // Other conflicts and server errors leave the outcome open.
        assert!(classify(Op::Update, 409, None).may_have_applied());
        assert!(classify(Op::Create, 500, Some("InternalError")).may_have_applied());
        assert!(classify(Op::Create, 502, None).may_have_applied());
    }

    #[test]
    fn throttling_was_not_applied() {
        for (status, code) in [
            (503, Some("SlowDown")),
            (503, None),
            (429, None),
            (400, Some("RequestLimitExceeded")),
        ] {
            let e = classify(Op::Create, status, code);
            assert!(
                e.is_retryable() && !e.may_have_applied(),
                "{status} {code:?}: {e:?}"
            );
        }
    }

    #[test]
    fn missing_keys() {
        assert_eq!(kind(Op::Get, 404, Some("NoSuchKey")), NotFound);
        assert_eq!(
            classify(Op::Get, 404, Some("NoSuchKey")).missing(),
            Some(Missing::Object)
        );
        // HEAD has no body, so no code: the SDK reports "NotFound" or nothing.
        assert_eq!(kind(Op::Head, 404, Some("NotFound")), NotFound);
        assert_eq!(kind(Op::Head, 404, None), NotFound);
        assert_eq!(classify(Op::Head, 404, None).missing(), None);
        // If-Match on a key that is gone: the compare-and-swap lost.
        assert_eq!(kind(Op::Update, 404, Some("NoSuchKey")), Precondition);
    }

    #[test]
    fn missing_bucket_is_not_found_everywhere() {
        for op in [Op::Get, Op::Head, Op::Update, Op::Create, Op::List, Op::Put] {
            let e = classify(op, 404, Some("NoSuchBucket"));
            assert_eq!(e.kind(), NotFound, "{op:?}");
            assert_eq!(e.missing(), Some(Missing::Bucket), "{op:?}");
            assert!(e.is_bucket_missing());
        }
        let e = classify(Op::Get, 404, Some("NoSuchBucket"));
        let m = http_message(&e, 404, Some("NoSuchBucket"), "my-bucket");
        assert!(m.contains("'my-bucket' does not exist"), "{m}");
        // A missing key never reads as a missing bucket, whatever the bucket
        // is called.
        let e = classify(Op::Get, 404, Some("NoSuchKey"));
        assert!(!e.is_bucket_missing());
        let m = http_message(&e, 404, Some("NoSuchKey"), "NoSuchBucket");
        assert!(!m.contains("does not exist"), "{m}");
    }

    #[test]
    fn permission_problems() {
        for code in [
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ] {
            assert_eq!(kind(Op::Get, 403, Some(code)), PermissionDenied, "{code}");
        }
        // moto: a bare 403 to an unsigned conditional write.
        assert_eq!(kind(Op::Create, 403, None), PermissionDenied);
        assert_eq!(kind(Op::List, 401, None), PermissionDenied);
    }

    #[test]
    fn transient_failures() {
        assert_eq!(kind(Op::Put, 503, Some("SlowDown")), Transient);
        assert_eq!(kind(Op::Get, 500, Some("InternalError")), Transient);
        assert_eq!(kind(Op::Get, 502, None), Transient);
        assert_eq!(kind(Op::Get, 429, None), Transient);
        // S3's RequestTimeout is a 400 but retryable.
        assert_eq!(kind(Op::Put, 400, Some("RequestTimeout")), Transient);
    }

    #[test]
    fn bad_requests_and_the_rest() {
        assert_eq!(kind(Op::Put, 400, Some("InvalidArgument")), InvalidInput);
        assert_eq!(kind(Op::Put, 400, None), InvalidInput);
        assert_eq!(kind(Op::List, 301, Some("PermanentRedirect")), InvalidInput);
        assert_eq!(kind(Op::DeleteIf, 501, Some("NotImplemented")), Unsupported);
        assert_eq!(
            kind(Op::CreateBucket, 409, Some("BucketAlreadyOwnedByYou")),
            AlreadyExists
        );
        assert_eq!(kind(Op::DeleteBucket, 409, Some("BucketNotEmpty")), Other);
        assert_eq!(kind(Op::Get, 418, None), Other);
    }

    #[test]
    fn errors_are_named_by_the_core_operation() {
        assert_eq!(classify(Op::Update, 412, None).op(), "update");
        assert_eq!(classify(Op::Put, 500, None).op(), "put");
        assert_eq!(classify(Op::CreateBucket, 409, None).op(), "create_bucket");
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
        // Not a failure to connect either: a reset says nothing about
        // whether the request got through.
        assert!(!nothing_sent(&io));
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
        let e = classify(Op::Update, 412, Some("PreconditionFailed"));
        let m = http_message(&e, 412, Some("PreconditionFailed"), "b1");
        assert_eq!(
            m,
            "S3 answered HTTP 412 (PreconditionFailed) in bucket 'b1'"
        );
        let e = classify(Op::Get, 403, None);
        let m = http_message(&e, 403, None, "b1");
        assert_eq!(m, "S3 answered HTTP 403 (no error code) in bucket 'b1'");
        let e = classify(Op::List, 301, Some("PermanentRedirect"));
        let m = http_message(&e, 301, Some("PermanentRedirect"), "b1");
        assert!(m.contains("another region"), "{m}");
    }
}
