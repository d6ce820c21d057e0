//! Mapping Azure's answers onto [`ErrorKind`].
//!
//! The mapping is a pure function of the operation, the HTTP status and the
//! service's error code (`x-ms-error-code`), so each provider quirk is one
//! tested line. Messages carry the status, the error code, the container and
//! the key: never the request URL, which holds the SAS.

use cloudmux_core::{Error, ErrorKind};

/// What was being done when Azure answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    Head,
    /// `Put` with `PutMode::Overwrite`.
    Put,
    /// `Put` with `PutMode::Create` (`If-None-Match: *`).
    Create,
    /// `Put` with `PutMode::Update` (`If-Match: <etag>`).
    Update,
    Delete,
    /// Delete with `If-Match`.
    DeleteIf,
    List,
    CreateContainer,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Put => "put",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::DeleteIf => "delete_if",
            Op::List => "list",
            Op::CreateContainer => "create_container",
        }
    }
}

/// The kind for an HTTP error answer.
pub(crate) fn kind_for_status(op: Op, status: u16, code: Option<&str>) -> ErrorKind {
    let code = code.unwrap_or_default();
    match status {
        // A missing container is a configuration problem whatever the op.
        404 if code == "ContainerNotFound" => ErrorKind::NotFound,
        // If-Match on a missing blob: Azure answers 404 BlobNotFound; for a
        // compare-and-swap that is a lost race (the object is gone).
        404 if matches!(op, Op::Update | Op::DeleteIf) => ErrorKind::Precondition,
        404 => ErrorKind::NotFound,
        // Quirk: Azurite answers a create-if-absent that finds the blob with
        // 409 BlobAlreadyExists; real Azure answers 412 ConditionNotMet.
        409 if code == "BlobAlreadyExists" => ErrorKind::AlreadyExists,
        409 if code == "ContainerAlreadyExists" => ErrorKind::AlreadyExists,
        // The container is being deleted: it is, for our purposes, gone.
        409 if code == "ContainerBeingDeleted" => ErrorKind::NotFound,
        // A lease on the blob blocks a write or delete that carries no lease id:
        // another writer holds it, like a lost compare-and-swap.
        409 | 412 if code.starts_with("Lease") => ErrorKind::Precondition,
        409 => ErrorKind::Other,
        // Real Azure's answer to If-None-Match: * on an existing blob.
        412 if op == Op::Create => ErrorKind::AlreadyExists,
        412 if matches!(op, Op::Update | Op::DeleteIf) => ErrorKind::Precondition,
        // A multi-part download pins later parts to the first part's ETag: 412
        // means the blob changed while being read. Reading again will succeed.
        412 if op == Op::Get => ErrorKind::Transient,
        412 => ErrorKind::Precondition,
        400 | 411 | 413 | 414 | 416 => ErrorKind::InvalidInput,
        // 401 appears with a malformed or expired bearer token, 403 for a bad
        // signature (AuthenticationFailed) or missing role (AuthorizationPermissionMismatch).
        401 | 403 => ErrorKind::PermissionDenied,
        408 | 429 => ErrorKind::Transient,
        // Quirk: some emulators answer 501 for features they lack; retrying
        // will not help.
        501 => ErrorKind::Unsupported,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// Converts an SDK error into ours: a summary, never the SDK's own text
/// (a transport error's text quotes the request URL, SAS included).
pub(crate) fn from_azure(op: Op, container: &str, key: &str, e: &azure_core::Error) -> Error {
    use azure_core::error::ErrorKind as K;
    let (kind, msg) = match e.kind() {
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
            let kind = kind_for_status(op, status, code.as_deref());
            let mut msg = format!("HTTP {status}");
            if let Some(c) = &code {
                msg.push(' ');
                msg.push_str(c);
            }
            if code.as_deref() == Some("ContainerNotFound") {
                msg.push_str(&format!(": the container '{container}' does not exist"));
            } else {
                msg.push_str(&format!(" (container '{container}')"));
            }
            (kind, msg)
        }
        // The request may or may not have reached the service: a write's
        // outcome is unknown, which is exactly what Transient says.
        K::Connection | K::Io => (
            ErrorKind::Transient,
            format!("transport failure: {}", redact(&e.to_string())),
        ),
        K::Credential => (
            ErrorKind::PermissionDenied,
            format!("no usable credential: {}", redact(&e.to_string())),
        ),
        K::DataConversion => (
            ErrorKind::Corrupt,
            format!("unexpected answer: {}", redact(&e.to_string())),
        ),
        _ => (ErrorKind::Other, redact(&e.to_string())),
    };
    Error::new(kind, op.name()).with_path(key).with_message(msg)
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
                Op::CreateContainer,
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
