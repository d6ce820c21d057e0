//! One tokio runtime per process, and waiting on it from Python.
//!
//! # Fork safety
//! A tokio runtime owns threads, and `fork(2)` copies only the thread that
//! called it: in a child, the parent's runtime has no workers, no timer and
//! no I/O driver, and anything that waits on it waits forever. The original
//! library's users start workers with `multiprocessing`, which forks on
//! Linux, so the extension must work in a child of a parent that already
//! used it.
//!
//! - [`runtime`] keeps the runtime together with the pid that built it. A
//!   caller in another process builds a new one; the parent's is forgotten,
//!   never dropped (its shutdown would wait for threads that do not exist
//!   here). It is leaked once per fork: a few kilobytes.
//! - It is looked up only while attached to the interpreter. `os.fork()`
//!   runs attached too, so no thread of the parent can be inside the
//!   lookup when the child is made, and its lock is never copied held.
//! - A child's random number generator is reseeded (see [`reseed`]): the
//!   copied state would give every sibling the same nonces.
//! - Objects that hold storage clients, a lock or a worker remember their
//!   pid too ([`PidBound`]); a child builds its own and leaves the parent's
//!   alone, so a child never releases its parent's lock.
//!
//! # Waiting
//! [`wait`] runs a future with the interpreter released, in slices of
//! [`SIGNAL_CHECK`], checking for signals between slices: `KeyboardInterrupt`
//! interrupts a long wait, and other Python threads run meanwhile.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Duration;

use cloudmux::clock::{self, Clock, SystemClock};
use pyo3::prelude::*;

use crate::errors;

/// How often a wait looks for signals (Ctrl-C).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The runtime of this process and the pid that built it.
static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);

/// The runtime of the calling process, built on first use in each process.
///
/// # Errors
/// A `cloudmux.Error` when no runtime can be built (threads refused).
pub(crate) fn runtime(_py: Python<'_>) -> PyResult<&'static tokio::runtime::Runtime> {
    let pid = std::process::id();
    // Poisoning cannot leave the slot half-written: it holds a Copy value.
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = *slot
        && owner == pid
    {
        return Ok(rt);
    }
    let first_in_process = slot.is_some();
    // Two worker threads: lock renewals and lease heartbeats run while
    // Python works on an element; requests run on the calling thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cloudmux")
        .enable_all()
        .build()
        .map_err(|e| errors::other(format!("cannot start the I/O runtime: {e}")))?;
    if first_in_process {
        // A forked child: its random state is a copy of the parent's.
        reseed(pid);
    }
    // The old runtime, if any, belongs to the parent: leaked with the old
    // reference, never dropped here.
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// Reseeds this thread's random generator (nonces, workers' start points)
/// from the pid and the clock: siblings forked from one parent differ in pid.
pub(crate) fn reseed(pid: u32) {
    let nanos = SystemClock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // splitmix64 of the two, so that close inputs give unrelated seeds.
    let mut z = nanos ^ (u64::from(pid) << 32 | u64::from(pid)).rotate_left(17);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    fastrand::seed(z ^ (z >> 31));
}

/// Runs `fut` to completion on this process's runtime with the interpreter
/// released, checking for signals every [`SIGNAL_CHECK`]. A panic inside
/// becomes a `cloudmux.Error`; a signal handler's exception (such as
/// `KeyboardInterrupt`) stops the wait and drops the future.
///
/// # Errors
/// The signal handler's exception, or the panic as a `cloudmux.Error`.
pub(crate) fn wait<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime(py)?;
    let mut fut = std::pin::pin!(fut);
    loop {
        let slice = py.detach(|| {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(clock::timeout(&SystemClock, SIGNAL_CHECK, fut.as_mut()))
            }))
        });
        match slice {
            Ok(Some(out)) => return Ok(out),
            Ok(None) => py.check_signals()?,
            Err(panic) => return Err(errors::from_panic(panic)),
        }
    }
}

/// A value that belongs to the process that made it. Dropped in that
/// process (inside its runtime, so that background releases can start);
/// forgotten in any other, where its threads and connections do not exist.
pub(crate) struct PidBound<T> {
    pid: u32,
    value: Option<T>,
}

impl<T> PidBound<T> {
    /// `value`, made by this process.
    pub(crate) fn new(value: T) -> Self {
        PidBound {
            pid: std::process::id(),
            value: Some(value),
        }
    }

    /// The value, when this process made it.
    pub(crate) fn get(&self) -> Option<&T> {
        if self.pid == std::process::id() {
            self.value.as_ref()
        } else {
            None
        }
    }

    /// The value mutably, when this process made it.
    pub(crate) fn get_mut(&mut self) -> Option<&mut T> {
        if self.pid == std::process::id() {
            self.value.as_mut()
        } else {
            None
        }
    }

    /// Takes the value out, when this process made it (else it stays, to be
    /// forgotten).
    pub(crate) fn take(&mut self) -> Option<T> {
        if self.pid == std::process::id() {
            self.value.take()
        } else {
            None
        }
    }
}

impl<T> Drop for PidBound<T> {
    fn drop(&mut self) {
        let Some(v) = self.value.take() else { return };
        if self.pid != std::process::id() {
            std::mem::forget(v);
            return;
        }
        // Enter the runtime without the interpreter: drops may spawn tasks
        // (a lock's best-effort release) and must not block on Python.
        let rt = RUNTIME
            .lock()
            .ok()
            .and_then(|s| *s)
            .filter(|(pid, _)| *pid == self.pid)
            .map(|(_, rt)| rt);
        match rt {
            Some(rt) => {
                let _enter = rt.enter();
                drop(v);
            }
            None => drop(v),
        }
    }
}

impl<T> std::fmt::Debug for PidBound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PidBound")
            .field("pid", &self.pid)
            .field("present", &self.value.is_some())
            .finish()
    }
}
