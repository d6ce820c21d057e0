//! One classification of HTTP answers, shared by every HTTP backend.
//!
//! A backend maps a failed request in two steps: first its provider's own
//! error codes (each quirk commented where it is handled: S3's
//! `ConditionalRequestConflict`, Azurite's 409 `BlobAlreadyExists`, GCS's 429
//! per-object rate limit, ...), then, for anything its codes do not settle,
//! [`classify`] on the operation and the status. The rules here are the ones
//! every provider agrees on.

use crate::error::ErrorKind;
use crate::store::Op;

/// The kind of a failed request from its operation and HTTP status alone.
///
/// | status | kind |
/// |---|---|
/// | 404 | `NotFound`; for `Update`/`DeleteIf`: `Precondition` (the object to replace is gone) |
/// | 412 | `AlreadyExists` for `Create`, `Precondition` otherwise |
/// | 401, 403 | `PermissionDenied` |
/// | 408, 429, 500-599 (but 501) | `Transient` |
/// | 501 | `Unsupported` |
/// | 301, 307, 400, 411, 413, 414, 416 | `InvalidInput` (wrong region or endpoint, malformed request) |
/// | 409 | `Other`: providers give it several meanings; backends decide by code first |
/// | anything else | `Other` |
pub fn classify(op: Op, status: u16) -> ErrorKind {
    match status {
        404 if matches!(op, Op::Update | Op::DeleteIf) => ErrorKind::Precondition,
        404 => ErrorKind::NotFound,
        412 if op == Op::Create => ErrorKind::AlreadyExists,
        412 => ErrorKind::Precondition,
        401 | 403 => ErrorKind::PermissionDenied,
        408 | 429 => ErrorKind::Transient,
        501 => ErrorKind::Unsupported,
        500..=599 => ErrorKind::Transient,
        301 | 307 | 400 | 411 | 413 | 414 | 416 => ErrorKind::InvalidInput,
        _ => ErrorKind::Other,
    }
}

/// True when a transient answer with this status says the request was
/// refused before it took effect: 429 (throttled) and 503 (slow down /
/// unavailable) are rejections at the door, so a write answered with them
/// was not applied. Other 5xx answers and timeouts leave the outcome open.
pub fn refused_before_applying(status: u16) -> bool {
    matches!(status, 429 | 503)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::*;

    #[test]
    fn the_same_status_means_different_things_per_operation() {
        assert_eq!(classify(Op::Create, 412), AlreadyExists);
        assert_eq!(classify(Op::Update, 412), Precondition);
        assert_eq!(classify(Op::DeleteIf, 412), Precondition);
        assert_eq!(classify(Op::Get, 404), NotFound);
        assert_eq!(classify(Op::Update, 404), Precondition);
        assert_eq!(classify(Op::DeleteIf, 404), Precondition);
    }

    #[test]
    fn the_rest() {
        assert_eq!(classify(Op::Get, 403), PermissionDenied);
        assert_eq!(classify(Op::List, 401), PermissionDenied);
        assert_eq!(classify(Op::Put, 503), Transient);
        assert_eq!(classify(Op::Get, 429), Transient);
        assert_eq!(classify(Op::Get, 500), Transient);
        assert_eq!(classify(Op::DeleteIf, 501), Unsupported);
        assert_eq!(classify(Op::List, 301), InvalidInput);
        assert_eq!(classify(Op::Put, 400), InvalidInput);
        assert_eq!(classify(Op::Put, 409), Other);
        assert_eq!(classify(Op::Get, 418), Other);
        assert!(refused_before_applying(503) && refused_before_applying(429));
        assert!(!refused_before_applying(500));
    }
}
