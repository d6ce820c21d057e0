//! The one error type of the project.
//!
//! Every fallible operation returns [`Error`]. Its [`ErrorKind`] is chosen by
//! **what the caller does next**, not by which backend produced it:
//!
//! | kind | the caller... |
//! |---|---|
//! | [`NotFound`](ErrorKind::NotFound) | treats the object as absent |
//! | [`AlreadyExists`](ErrorKind::AlreadyExists) | lost a create race (or the object was there before) |
//! | [`Precondition`](ErrorKind::Precondition) | lost a compare-and-swap: re-read and decide again |
//! | [`PermissionDenied`](ErrorKind::PermissionDenied) | fixes credentials; retrying will not help |
//! | [`InvalidInput`](ErrorKind::InvalidInput) | fixes the input (a path, a URL, a mux id, a config) |
//! | [`Transient`](ErrorKind::Transient) | retries later (timeouts, 5xx, throttling, lost responses) |
//! | [`OutcomeUnknown`](ErrorKind::OutcomeUnknown) | settles it: a write may or may not have happened; read back (by a nonce) or re-send the *same* body |
//! | [`Fenced`](ErrorKind::Fenced) | stops: a newer holder (a higher fencing token) owns the resource now |
//! | [`LockTimeout`](ErrorKind::LockTimeout) | gives up or waits longer: somebody else holds the lock |
//! | [`Unsupported`](ErrorKind::Unsupported) | uses another way: the backend lacks this capability |
//! | [`Corrupt`](ErrorKind::Corrupt) | investigates: stored data could not be decoded |
//! | [`Other`](ErrorKind::Other) | reports it |
//!
//! Messages name the operation and the path (as a URL), never a credential:
//! backends only ever hand this type a bucket, a key, a status code and the
//! provider's error code.

use std::fmt;

/// What went wrong, chosen by what the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object (or bucket, or container) does not exist.
    NotFound,
    /// A create-only write found the key already present.
    AlreadyExists,
    /// A compare-and-swap found a different version than expected (or no object).
    Precondition,
    /// The credentials were refused or lack a permission.
    PermissionDenied,
    /// A path, URL, mux id or configuration value is malformed or not allowed.
    InvalidInput,
    /// A temporary failure: a timeout, a 5xx, throttling, a connection reset, or a
    /// response that was lost after the request was sent. Retrying may succeed.
    /// For a write, [`Error::may_have_applied`] says whether it may have taken
    /// effect anyway.
    Transient,
    /// A conditional write whose outcome cannot be known: an attempt may have
    /// been applied (its response was lost, or it timed out and may still be
    /// applied later), and what could be read afterwards does not settle it.
    /// Never a success and never a lost race: re-send the same body, or read
    /// the object back and compare a nonce it carries.
    OutcomeUnknown,
    /// A write was refused because a newer holder owns the resource: the lock
    /// or lease was taken over (its fencing token is no longer the newest).
    Fenced,
    /// A lock could not be acquired in time; [`Error::lock_holder`] names the holder.
    LockTimeout,
    /// The backend does not offer this capability (for example conditional delete).
    Unsupported,
    /// Stored bytes could not be decoded (a corrupt dataset, manifest or claim).
    Corrupt,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// A short lowercase name, used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Precondition => "precondition failed",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Transient => "transient failure",
            ErrorKind::OutcomeUnknown => "outcome unknown",
            ErrorKind::Fenced => "fenced off",
            ErrorKind::LockTimeout => "lock timeout",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Corrupt => "corrupt data",
            ErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a [`NotFound`](ErrorKind::NotFound) error says is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Missing {
    /// The object (key) does not exist.
    Object,
    /// The bucket or container itself does not exist: a configuration
    /// problem, not an absent object.
    Bucket,
}

/// Who holds a lock, as a busy lock reports it
/// ([`ErrorKind::LockTimeout`], [`Error::lock_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The holder's name (by default `host/pid/thread`).
    pub holder: String,
    /// When the holder acquired the lock, by the holder's clock.
    pub acquired: std::time::SystemTime,
    /// When the holder's lease runs out unless renewed, by the holder's clock.
    pub expires: std::time::SystemTime,
    /// The fencing token of this acquisition (see [`crate::lock`]).
    pub token: u64,
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} since {} until {} (token {})",
            self.holder,
            crate::clock::rfc3339_secs(self.acquired),
            crate::clock::rfc3339_secs(self.expires),
            self.token
        )
    }
}

/// The error type of every cloudmux operation.
///
/// Display reads as `<operation> <path>: <kind>: <detail>`, for example
/// `create mem://demo/a.txt: already exists`.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    op: &'static str,
    path: Option<String>,
    message: Option<String>,
    missing: Option<Missing>,
    not_applied: bool,
    lock: Option<LockInfo>,
    source: Option<Source>,
}

impl Error {
    /// A new error of `kind` raised by operation `op` (a verb such as `"get"`).
    pub fn new(kind: ErrorKind, op: &'static str) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                op,
                path: None,
                message: None,
                missing: None,
                not_applied: false,
                lock: None,
                source: None,
            }),
        }
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error with a message.
    pub fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, op).with_message(message)
    }

    /// Shorthand for an [`ErrorKind::Corrupt`] error with a message.
    pub fn corrupt(op: &'static str, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, op).with_message(message)
    }

    /// A [`NotFound`](ErrorKind::NotFound) error saying what is missing.
    pub fn not_found(op: &'static str, missing: Missing) -> Self {
        let mut e = Error::new(ErrorKind::NotFound, op);
        e.inner.missing = Some(missing);
        e
    }

    /// Attaches the path (a URL or a key) the operation was about.
    ///
    /// A path already set is kept: the innermost layer knows best.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        if self.inner.path.is_none() {
            self.inner.path = Some(path.into());
        }
        self
    }

    /// Replaces the path, for layers that know a fuller name (a URL instead of a key).
    pub fn set_path(mut self, path: impl Into<String>) -> Self {
        self.inner.path = Some(path.into());
        self
    }

    /// Attaches a human-readable detail.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.inner.message = Some(message.into());
        self
    }

    /// Attaches the underlying cause. It must not carry secrets: backends pass
    /// their own summaries, never an SDK error that may echo a signed URL.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Says that the failed request certainly did not take effect (it was
    /// refused before anything was written: connection refused, throttled,
    /// S3's 409 ConditionalRequestConflict). Retrying it is then as safe as
    /// sending it the first time.
    pub fn not_applied(mut self) -> Self {
        self.inner.not_applied = true;
        self
    }

    /// Attaches the current holder of a busy lock.
    pub fn with_lock_info(mut self, info: LockInfo) -> Self {
        self.inner.lock = Some(info);
        self
    }

    /// Changes the kind, keeping everything else.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.inner.kind = kind;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The operation that failed (`"get"`, `"create"`, `"lock"`, ...).
    pub fn op(&self) -> &'static str {
        self.inner.op
    }

    /// The path the operation was about, when known.
    pub fn path(&self) -> Option<&str> {
        self.inner.path.as_deref()
    }

    /// The detail message, when any.
    pub fn message(&self) -> Option<&str> {
        self.inner.message.as_deref()
    }

    /// For a [`NotFound`](ErrorKind::NotFound): whether the object or the
    /// bucket is missing, when the backend could tell.
    pub fn missing(&self) -> Option<Missing> {
        self.inner.missing
    }

    /// True for a `NotFound` that names a missing bucket or container.
    pub fn is_bucket_missing(&self) -> bool {
        self.inner.missing == Some(Missing::Bucket)
    }

    /// For a [`ErrorKind::LockTimeout`]: who holds the lock, since and until when.
    pub fn lock_info(&self) -> Option<&LockInfo> {
        self.inner.lock.as_ref()
    }

    /// For a [`ErrorKind::LockTimeout`]: who holds the lock.
    pub fn lock_holder(&self) -> Option<&str> {
        self.inner.lock.as_ref().map(|l| l.holder.as_str())
    }

    /// True when retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind == ErrorKind::Transient
    }

    /// True when a failed write may nevertheless have taken effect (now, or
    /// later: a request that timed out on the client can still be applied by
    /// the server). False for errors that are definite answers (a lost race,
    /// a refusal) and for transient failures marked [`not_applied`](Self::not_applied).
    pub fn may_have_applied(&self) -> bool {
        match self.inner.kind {
            ErrorKind::OutcomeUnknown => true,
            ErrorKind::Transient => !self.inner.not_applied,
            _ => false,
        }
    }

    /// True for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.inner.kind == ErrorKind::NotFound
    }

    /// True for [`ErrorKind::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        self.inner.kind == ErrorKind::AlreadyExists
    }

    /// True for [`ErrorKind::Precondition`].
    pub fn is_precondition(&self) -> bool {
        self.inner.kind == ErrorKind::Precondition
    }

    /// True for [`ErrorKind::OutcomeUnknown`].
    pub fn is_outcome_unknown(&self) -> bool {
        self.inner.kind == ErrorKind::OutcomeUnknown
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.write_str(i.op)?;
        if let Some(p) = &i.path {
            write!(f, " {p}")?;
        }
        write!(f, ": {}", i.kind)?;
        if let Some(m) = &i.message {
            write!(f, ": {m}")?;
        }
        if let Some(l) = &i.lock {
            write!(f, " (held by {l})")?;
        }
        if let Some(s) = &i.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Error")
            .field("kind", &i.kind)
            .field("op", &i.op)
            .field("path", &i.path)
            .field("message", &i.message)
            .field("missing", &i.missing)
            .field("not_applied", &i.not_applied)
            .field("lock", &i.lock)
            .field("source", &i.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// The result type of cloudmux operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an I/O error onto a kind. Used by the local backend and by helpers.
pub(crate) fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::PermissionDenied | K::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
        K::InvalidInput | K::InvalidFilename | K::NotADirectory | K::IsADirectory => {
            ErrorKind::InvalidInput
        }
        K::TimedOut | K::Interrupted | K::WouldBlock | K::ResourceBusy => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_op_path_kind_and_holder() {
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_993_302);
        let e = Error::new(ErrorKind::LockTimeout, "lock")
            .with_path("mem://x/a")
            .with_message("gave up after 1s")
            .with_lock_info(LockInfo {
                holder: "host-1/42".into(),
                acquired: t,
                expires: t + std::time::Duration::from_secs(60),
                token: 7,
            });
        assert_eq!(
            e.to_string(),
            "lock mem://x/a: lock timeout: gave up after 1s (held by host-1/42 \
             since 2026-11-29T23:01:42Z until 2026-11-29T23:02:42Z (token 7))"
        );
        assert_eq!(e.lock_holder(), Some("host-1/42"));
        assert!(!e.is_retryable());
        assert!(Error::new(ErrorKind::Transient, "get").is_retryable());
    }

    #[test]
    fn applied_or_not() {
        assert!(Error::new(ErrorKind::Transient, "put").may_have_applied());
        assert!(
            !Error::new(ErrorKind::Transient, "put")
                .not_applied()
                .may_have_applied()
        );
        assert!(Error::new(ErrorKind::OutcomeUnknown, "put").may_have_applied());
        assert!(!Error::new(ErrorKind::OutcomeUnknown, "put").is_retryable());
        assert!(!Error::new(ErrorKind::AlreadyExists, "put").may_have_applied());
        let e = Error::not_found("list", Missing::Bucket);
        assert!(e.is_not_found() && e.is_bucket_missing());
    }

    #[test]
    fn inner_path_wins_over_outer() {
        let e = Error::new(ErrorKind::NotFound, "get")
            .with_path("inner")
            .with_path("outer");
        assert_eq!(e.path(), Some("inner"));
        let e = e.set_path("url");
        assert_eq!(e.path(), Some("url"));
    }
}
