//! # cloudmux-py
//!
//! The native module `cloudmux._native` of the Python package `cloudmux`
//! (its Python sources are in `python/cloudmux/`, built with maturin into
//! one abi3 wheel for CPython 3.9 and later). Python users see
//! `cloudmux.upathlib` and `cloudmux.multiplexer`, modelled on the original
//! library's modules of the same names; this crate is what they call.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | `runtime` | one tokio runtime per process (rebuilt after a `fork`), waiting with the interpreter released and signals checked |
//! | `errors` | cloudmux errors as Python exceptions; panics kept out of Python |
//! | `value` | Python objects as MessagePack elements and back (and the opt-in pickle mode) |
//! | `path` | a storage path and its lock |
//! | `mux` | the coordinator's dataset, the worker iterator, leased tasks |
//!
//! ## Rules every entry point follows
//!
//! - Every storage request runs with the interpreter released
//!   (`runtime::wait`), in slices that check for signals, so other Python
//!   threads run and `KeyboardInterrupt` stops a long wait.
//! - Every body runs inside `errors::guard`: a panic becomes a
//!   `cloudmux.Error`, never pyo3's `PanicException`.
//! - Objects that hold clients, locks or workers are bound to the process
//!   that made them (`runtime::PidBound`): a forked child opens its own.

pub(crate) mod errors;
pub(crate) mod mux;
pub(crate) mod path;
pub(crate) mod runtime;
pub(crate) mod value;

use pyo3::prelude::*;

/// The environment variables that name a task's index on batch platforms,
/// in the order the default worker id consults them.
#[pyfunction]
fn task_index_vars() -> Vec<&'static str> {
    cloudmux::util::TASK_INDEX_VARS.to_vec()
}

/// Sends the Rust side's logs to stderr when `CLOUDMUX_LOG` holds a filter
/// (`info`, `debug`, `cloudmux_mux=trace`, ...).
fn init_logging() {
    let Ok(filter) = std::env::var("CLOUDMUX_LOG") else {
        return;
    };
    let Ok(filter) = tracing_subscriber::EnvFilter::try_new(filter.trim()) else {
        return;
    };
    // Another extension may have installed a subscriber: keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The native module of the `cloudmux` Python package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("PICKLE_EXT_TYPE", value::PICKLE_EXT)?;
    m.add_class::<path::Path>()?;
    m.add_class::<path::Lock>()?;
    m.add_class::<mux::Dataset>()?;
    m.add_class::<mux::Worker>()?;
    m.add_class::<mux::Task>()?;
    m.add_function(wrap_pyfunction!(mux::parse_mux_id, m)?)?;
    m.add_function(wrap_pyfunction!(task_index_vars, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::after_fork_in_parent, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::after_fork_in_child, m)?)?;
    // Quiet the runtime around every os.fork() (see the runtime module).
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("before", m.getattr("before_fork")?)?;
    kwargs.set_item("after_in_parent", m.getattr("after_fork_in_parent")?)?;
    kwargs.set_item("after_in_child", m.getattr("after_fork_in_child")?)?;
    m.py()
        .import("os")?
        .getattr("register_at_fork")?
        .call((), Some(&kwargs))?;
    Ok(())
}
