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
    Transient,
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
    holder: Option<String>,
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
                holder: None,
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

    /// Attaches the name of a lock's current holder (for [`ErrorKind::LockTimeout`]).
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.inner.holder = Some(holder.into());
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

    /// For a [`ErrorKind::LockTimeout`]: who holds the lock.
    pub fn lock_holder(&self) -> Option<&str> {
        self.inner.holder.as_deref()
    }

    /// True when retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind == ErrorKind::Transient
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
        if let Some(h) = &i.holder {
            write!(f, " (held by {h})")?;
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
            .field("holder", &i.holder)
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
        let e = Error::new(ErrorKind::LockTimeout, "lock")
            .with_path("mem://x/a")
            .with_message("gave up after 1s")
            .with_holder("host-1/42");
        assert_eq!(
            e.to_string(),
            "lock mem://x/a: lock timeout: gave up after 1s (held by host-1/42)"
        );
        assert_eq!(e.lock_holder(), Some("host-1/42"));
        assert!(!e.is_retryable());
        assert!(Error::new(ErrorKind::Transient, "get").is_retryable());
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
