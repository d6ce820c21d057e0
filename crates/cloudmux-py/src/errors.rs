//! cloudmux errors as Python exceptions, and panics kept out of Python.
//!
//! The exception classes are defined in Python (`cloudmux/errors.py`), each
//! a subclass of `cloudmux.Error` and, where Python has one, of the builtin
//! that says the same thing:
//!
//! | [`ErrorKind`] | raised as | also a |
//! |---|---|---|
//! | `NotFound` | `NotFoundError` | `FileNotFoundError` |
//! | `AlreadyExists` | `AlreadyExistsError` | `FileExistsError` |
//! | `PermissionDenied` | `PermissionDeniedError` | `PermissionError` |
//! | `LockTimeout` | `LockTimeoutError` (with the holder) | `TimeoutError` |
//! | `InvalidInput` | `InvalidInputError` | `ValueError` |
//! | `Precondition` | `PreconditionError` | |
//! | `Transient` | `TransientError` | |
//! | `OutcomeUnknown` | `OutcomeUnknownError` | |
//! | `Fenced` | `FencedError` | |
//! | `Unsupported` | `UnsupportedError` | `NotImplementedError` |
//! | `Corrupt` | `CorruptError` | |
//! | anything else | `Error` | |
//!
//! Every one carries `kind`, `op` and `path` attributes. Messages are the
//! core's, which never hold a credential.

use std::any::Any;

use cloudmux::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The Python module that defines the exception classes.
const MODULE: &str = "cloudmux.errors";

/// The class name for a kind.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::AlreadyExists => "AlreadyExistsError",
        ErrorKind::PermissionDenied => "PermissionDeniedError",
        ErrorKind::LockTimeout => "LockTimeoutError",
        ErrorKind::InvalidInput => "InvalidInputError",
        ErrorKind::Precondition => "PreconditionError",
        ErrorKind::Transient => "TransientError",
        ErrorKind::OutcomeUnknown => "OutcomeUnknownError",
        ErrorKind::Fenced => "FencedError",
        ErrorKind::Unsupported => "UnsupportedError",
        ErrorKind::Corrupt => "CorruptError",
        _ => "Error",
    }
}

/// The exception class `name` of `cloudmux.errors`, looked up once.
fn class<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyType>> {
    static MODULE_OBJ: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let m = MODULE_OBJ.get_or_try_init(py, || PyModule::import(py, MODULE).map(Bound::unbind))?;
    m.bind(py)
        .getattr(name)?
        .cast_into::<PyType>()
        .map_err(Into::into)
}

/// Builds the exception of `class` with `message` and attributes.
fn build(
    py: Python<'_>,
    name: &'static str,
    message: String,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let cls = class(py, name)?;
        let exc = cls.call1((message.clone(),))?;
        for (k, v) in attrs {
            exc.setattr(*k, v.bind(py))?;
        }
        Ok(PyErr::from_value(exc))
    })();
    // Without the Python module (the native module imported alone) the
    // message still reaches the caller.
    made.unwrap_or_else(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("{message} (and: {e})"))
    })
}

/// A cloudmux error as the matching Python exception.
pub(crate) fn to_py(e: Error) -> PyErr {
    Python::attach(|py| to_py_in(py, &e))
}

fn to_py_in(py: Python<'_>, e: &Error) -> PyErr {
    let kind = e.kind();
    let none = || py.None();
    let s = |v: &str| -> Py<PyAny> { pyo3::types::PyString::new(py, v).into_any().unbind() };
    let mut attrs: Vec<(&str, Py<PyAny>)> = vec![
        ("kind", s(kind.as_str())),
        ("op", s(e.op())),
        ("path", e.path().map_or_else(none, s)),
    ];
    // OSError's errno, as open() sets it (`filename` stays unset: the
    // message names the path, and OSError would print it twice).
    let errno = match kind {
        ErrorKind::NotFound => Some(2),          // ENOENT
        ErrorKind::AlreadyExists => Some(17),    // EEXIST
        ErrorKind::PermissionDenied => Some(13), // EACCES
        _ => None,
    };
    if let Some(n) = errno {
        attrs.push(("errno", pyo3::types::PyInt::new(py, n).into_any().unbind()));
    }
    if let Some(info) = e.lock_info() {
        let secs = |t: std::time::SystemTime| -> Py<PyAny> {
            let f = t
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            pyo3::types::PyFloat::new(py, f).into_any().unbind()
        };
        attrs.push(("holder", s(&info.holder)));
        attrs.push((
            "token",
            pyo3::types::PyInt::new(py, info.token).into_any().unbind(),
        ));
        attrs.push(("acquired", secs(info.acquired)));
        attrs.push(("expires", secs(info.expires)));
    }
    build(py, class_name(kind), e.to_string(), &attrs)
}

/// A `cloudmux.Error` with a message, for failures of the binding itself.
pub(crate) fn other(message: String) -> PyErr {
    Python::attach(|py| build(py, "Error", message, &[]))
}

/// A `cloudmux.InvalidInputError` (a `ValueError`).
pub(crate) fn invalid(message: String) -> PyErr {
    Python::attach(|py| build(py, "InvalidInputError", message, &[]))
}

/// A panic's payload as a `cloudmux.Error`, so that no panic reaches Python.
pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    other(format!(
        "internal error in cloudmux (please report it): {what}"
    ))
}

/// Runs the body of a Python-facing function, turning a panic into a
/// `cloudmux.Error` instead of pyo3's `PanicException`.
pub(crate) fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Err(from_panic(p)))
}

/// `Result<T, cloudmux::Error>` to `PyResult<T>`.
pub(crate) trait IntoPy<T> {
    /// Maps the error to its Python exception.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for cloudmux::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// A `cloudmux.CorruptError`: stored data that cannot be decoded.
pub(crate) fn corrupt(message: String) -> PyErr {
    Python::attach(|py| build(py, "CorruptError", message, &[]))
}
