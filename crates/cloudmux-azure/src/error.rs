//! Mapping Azure's answers onto the core [`Error`].
//!
//! [`classify`] is a pure function of the operation (the core's one [`Op`]
//! taxonomy), the HTTP status and the service's error code
//! (`x-ms-error-code`): Azure's codes first, each provider quirk one tested
//! line, then [`cloudmux_core::http::classify`] for what the codes do not
//! settle. A missing container is [`Missing::Bucket`], read from the code
//! `ContainerNotFound` and never from a message; requests that certainly did
//! not take effect (no connection, throttled) are marked
//! [`Error::not_applied`]. Messages carry the status, the error code, the
//! container and the key: never the request URL, which holds the SAS.

use cloudmux_core::{Error, ErrorKind, Missing, Op, http};

/// The error of an HTTP error answer (without path and message).
pub(crate) fn classify(op: Op, status: u16, code: Option<&str>) -> Error {
    let code = code.unwrap_or_default();
    let new = |kind: ErrorKind| Error::new(kind, op.name());
    match (status, code) {
        // A missing container is a configuration problem whatever the op.
        (404, "ContainerNotFound") => Error::not_found(op.name(), Missing::Bucket),
        // The container is being deleted: it is, for our purposes, gone.
        (409, "ContainerBeingDeleted") => Error::not_found(op.name(), Missing::Bucket),
        // If-Match on a missing blob: Azure answers 404 BlobNotFound; for a
        // compare-and-swap that is a lost race (the shared rule says so).
        (404, "BlobNotFound") if !matches!(op, Op::Update | Op::DeleteIf) => {
            Error::not_found(op.name(), Missing::Object)
        }
        // Quirk: Azurite answers a create-if-absent that finds the blob with
        // 409 BlobAlreadyExists; real Azure answers 412 ConditionNotMet (the
        // shared rule for a 412 to a create).
        (409, "BlobAlreadyExists" | "ContainerAlreadyExists") => new(ErrorKind::AlreadyExists),
        // A lease on the blob blocks a write or delete that carries no lease id:
        // another writer holds it, like a lost compare-and-swap.
        (409 | 412, c) if c.starts_with("Lease") => new(ErrorKind::Precondition),
        // A multi-part download pins later parts to the first part's ETag: 412
        // means the blob changed while being read. Reading again will succeed.
        (412, _) if op == Op::Get => new(ErrorKind::Transient),
        // 503 ServerBusy and 429 are refusals at the door (not applied); 401
        // comes with a malformed or expired bearer token, 403 with a bad
        // signature (AuthenticationFailed) or a missing role
        // (AuthorizationPermissionMismatch); some emulators answer 501 for
        // features they lack; other 409s are left to the caller as Other.
        _ => match http::classify(op, status) {
            ErrorKind::Transient if http::refused_before_applying(status) => {
                new(ErrorKind::Transient).not_applied()
            }
            kind => new(kind),
        },
    }
}

/// Converts an SDK error into ours: a summary, never the SDK's own text
/// (a transport error's text quotes the request URL, SAS included).
pub(crate) fn from_azure(op: Op, container: &str, key: &str, e: &azure_core::Error) -> Error {
    use azure_core::error::ErrorKind as K;
    let transient = || Error::new(ErrorKind::Transient, op.name());
    let err = match e.kind() {
        K::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let status = u16::from(*status);
            // The header carries the code; HEAD answers have no body, others may
            // have the code only in the XML body.
            let code = error_code
                .clone()
                .filter(|c| !c.chars().all(|ch| ch.is_ascii_digit() || ch == ' '))
                .or_else(|| raw_response.as_ref().and_then(|r| xml_code(r.body())));
            let err = classify(op, status, code.as_deref());
            let mut msg = format!("HTTP {status}");
            if let Some(c) = &code {
                msg.push(' ');
                msg.push_str(c);
            }
            if err.is_bucket_missing() {
                msg.push_str(&format!(": the container '{container}' does not exist"));
            } else {
                msg.push_str(&format!(" (container '{container}')"));
            }
            err.with_message(msg)
        }
        // The transport could not connect (name resolution, TCP, TLS): the
        // request was never sent.
        K::Connection => transient()
            .not_applied()
            .with_message(format!("could not connect: {}", redact(&e.to_string()))),
        // The request may or may not have reached the service: a write's
        // outcome is open, which is what a Transient without `not_applied` says.
        K::Io => transient().with_message(format!("transport failure: {}", redact(&e.to_string()))),
        K::Credential => Error::new(ErrorKind::PermissionDenied, op.name())
            .not_applied()
            .with_message(format!("no usable credential: {}", redact(&e.to_string()))),
        K::DataConversion => Error::new(ErrorKind::Corrupt, op.name())
            .with_message(format!("unexpected answer: {}", redact(&e.to_string()))),
        _ => Error::new(ErrorKind::Other, op.name()).with_message(redact(&e.to_string())),
    };
    err.with_path(key)
}

/// `<Code>...</Code>` of an XML error body.
fn xml_code(body: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let start = s.find("<Code>")? + "<Code>".len();
    let end = s[start..].find("</Code>")? + start;
    Some(s[start..end].trim().to_string()).filter(|c| !c.is_empty())
}

/// Removes any query string from URLs quoted in a text (the SAS lives there).
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(q) = rest.find('?') {
        // Only a '?' inside a URL-looking word is a query start.
        let word_start = rest[..q]
            .rfind(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '\'')
            .map_or(0, |i| i + 1);
        let is_url = rest[word_start..q].contains("://");
        out.push_str(&rest[..q]);
        let after = &rest[q..];
        if is_url {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '\'')
                .unwrap_or(after.len());
            out.push_str("?<redacted>");
            rest = &after[end..];
        } else {
            out.push('?');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind as K;

    fn kind_for_status(op: Op, status: u16, code: Option<&str>) -> ErrorKind {
        classify(op, status, code).kind()
    }

    #[test]
    fn status_mapping_covers_each_quirk() {
        let cases: &[(Op, u16, &str, ErrorKind)] = &[
            // Azurite's create conflict and real Azure's: both "already exists".
            (Op::Create, 409, "BlobAlreadyExists", K::AlreadyExists),
            (Op::Create, 412, "ConditionNotMet", K::AlreadyExists),
            // Stale If-Match, and If-Match on a missing blob.
            (Op::Update, 412, "ConditionNotMet", K::Precondition),
            (Op::Update, 404, "BlobNotFound", K::Precondition),
            (Op::DeleteIf, 412, "ConditionNotMet", K::Precondition),
            (Op::DeleteIf, 404, "BlobNotFound", K::Precondition),
            // A missing container is NotFound for every operation.
            (Op::Update, 404, "ContainerNotFound", K::NotFound),
            (Op::Create, 404, "ContainerNotFound", K::NotFound),
            (Op::List, 404, "ContainerNotFound", K::NotFound),
            (Op::Get, 404, "BlobNotFound", K::NotFound),
            (Op::Head, 404, "", K::NotFound),
            (Op::Get, 412, "ConditionNotMet", K::Transient),
            (Op::Put, 409, "LeaseIdMissing", K::Precondition),
            (Op::Put, 409, "SomethingElse", K::Other),
            (
                Op::CreateBucket,
                409,
                "ContainerAlreadyExists",
                K::AlreadyExists,
            ),
            (Op::Get, 403, "AuthenticationFailed", K::PermissionDenied),
            (
                Op::Get,
                403,
                "AuthorizationPermissionMismatch",
                K::PermissionDenied,
            ),
            (Op::Get, 401, "", K::PermissionDenied),
            (Op::Put, 400, "InvalidHeaderValue", K::InvalidInput),
            (Op::Put, 429, "", K::Transient),
            (Op::Put, 500, "InternalError", K::Transient),
            (Op::Put, 503, "ServerBusy", K::Transient),
            (Op::Get, 408, "", K::Transient),
            (Op::DeleteIf, 501, "NotImplemented", K::Unsupported),
            (Op::Get, 302, "", K::Other),
        ];
        for &(op, status, code, want) in cases {
            let code = (!code.is_empty()).then_some(code);
            assert_eq!(
                kind_for_status(op, status, code),
                want,
                "{op:?} {status} {code:?}"
            );
        }
    }

    #[test]
    fn missing_container_and_missing_blob() {
        for op in [
            Op::Get,
            Op::Head,
            Op::Put,
            Op::Create,
            Op::Update,
            Op::List,
            Op::Delete,
        ] {
            let e = classify(op, 404, Some("ContainerNotFound"));
            assert_eq!(e.missing(), Some(Missing::Bucket), "{op:?}");
        }
        assert!(classify(Op::Put, 409, Some("ContainerBeingDeleted")).is_bucket_missing());
        let e = classify(Op::Get, 404, Some("BlobNotFound"));
        assert_eq!(e.missing(), Some(Missing::Object));
        assert!(!classify(Op::Delete, 404, None).is_bucket_missing());
    }

    #[test]
    fn refusals_were_not_applied_and_the_rest_may_have() {
        for (status, code) in [(503, "ServerBusy"), (429, "")] {
            let code = (!code.is_empty()).then_some(code);
            let e = classify(Op::Create, status, code);
            assert!(e.is_retryable() && !e.may_have_applied(), "{status}: {e:?}");
        }
        for (status, code) in [
            (500, "InternalError"),
            (500, "OperationTimedOut"),
            (408, ""),
        ] {
            let code = (!code.is_empty()).then_some(code);
            let e = classify(Op::Create, status, code);
            assert!(e.is_retryable() && e.may_have_applied(), "{status}: {e:?}");
        }
        let e = from_azure(
            Op::Create,
            "c",
            "k",
            &azure_core::Error::with_message(azure_core::error::ErrorKind::Connection, "refused"),
        );
        assert!(e.is_retryable() && !e.may_have_applied(), "{e:?}");
        let e = from_azure(
            Op::Create,
            "c",
            "k",
            &azure_core::Error::with_message(azure_core::error::ErrorKind::Io, "reset"),
        );
        assert!(e.is_retryable() && e.may_have_applied(), "{e:?}");
        assert_eq!(e.op(), "create");
    }

    fn http_error(status: u16, code: Option<&str>, body: &'static [u8]) -> azure_core::Error {
        use azure_core::http::{RawResponse, StatusCode, headers::Headers};
        let raw = RawResponse::from_bytes(StatusCode::from(status), Headers::new(), body);
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::HttpResponse {
                status: StatusCode::from(status),
                error_code: code.map(str::to_string),
                raw_response: Some(Box::new(raw)),
            },
            "service said no",
        )
    }

    #[test]
    fn sdk_errors_become_summaries() {
        let e = from_azure(
            Op::Create,
            "ctr",
            "a/b",
            &http_error(409, Some("BlobAlreadyExists"), b""),
        );
        assert_eq!(e.kind(), K::AlreadyExists);
        assert_eq!(e.path(), Some("a/b"));
        assert_eq!(
            e.message(),
            Some("HTTP 409 BlobAlreadyExists (container 'ctr')")
        );

        let e = from_azure(
            Op::List,
            "ctr",
            "",
            &http_error(404, Some("ContainerNotFound"), b""),
        );
        assert_eq!(e.kind(), K::NotFound);
        assert!(e.is_bucket_missing());
        assert!(
            e.to_string().contains("the container 'ctr' does not exist"),
            "{e}"
        );

        // No header code (the SDK then puts the status text there): read the body.
        let e = from_azure(
            Op::Update,
            "ctr",
            "k",
            &http_error(
                412,
                Some("412"),
                b"<?xml version=\"1.0\"?><Error><Code>ConditionNotMet</Code></Error>",
            ),
        );
        assert_eq!(e.kind(), K::Precondition);
        assert!(e.to_string().contains("ConditionNotMet"), "{e}");
    }

    #[test]
    fn transport_errors_are_transient_and_hide_the_sas() {
        let inner = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Io,
            "error sending request for url (http://127.0.0.1:10000/devstoreaccount1/c/k?sv=2022&sig=SECRET%3D): connection refused",
        );
        let e = from_azure(Op::Get, "c", "k", &inner);
        assert_eq!(e.kind(), K::Transient);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("connection refused"), "{shown}");
        let e = from_azure(
            Op::Get,
            "c",
            "k",
            &azure_core::Error::with_message(azure_core::error::ErrorKind::Connection, "refused"),
        );
        assert_eq!(e.kind(), K::Transient);
    }

    #[test]
    fn redact_keeps_plain_question_marks() {
        assert_eq!(redact("why? because"), "why? because");
        assert_eq!(
            redact("at https://a.b/c?sig=x&sv=1 and (http://h/p?q=1)"),
            "at https://a.b/c?<redacted> and (http://h/p?<redacted>)"
        );
    }
}
