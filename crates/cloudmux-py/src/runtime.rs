//! One tokio runtime per process, fork safety, and waiting from Python.
//!
//! # Fork safety
//! The original library's users start workers with `multiprocessing`,
//! which forks on Linux, so the extension must keep working in the child of
//! a parent that already used it. Two things break there:
//!
//! - **The parent's runtime is unusable in the child.** `fork(2)` copies
//!   only the calling thread: the runtime's workers, timer and I/O driver do
//!   not exist in the child, and anything that waits on them waits forever.
//! - **Threads busy at the moment of the fork corrupt shared state.** A
//!   thread of the parent caught inside a lock leaves it locked, or half
//!   updated, in the child. tokio here uses `parking_lot` (a dependency turns
//!   the feature on), whose locks share one process-wide table: a runtime
//!   thread caught parking or waking leaves that table broken, and the
//!   child hangs or crashes at its first contended lock. This was seen
//!   (about one fork in a few hundred, right after the parent's last
//!   request, as its threads went back to sleep).
//!
//! So the runtime is quiet at every fork made by `os.fork()` (which
//! `multiprocessing` uses): [`before_fork`], registered with
//! `os.register_at_fork`, shuts the runtime down and waits for its threads
//! to exit, and the runtime is built again when next needed. Background
//! work does not survive that, so [`after_fork_in_parent`] restarts the
//! renewals of the locks and leases the parent still holds. The child
//! ([`after_fork_in_child`]) forgets them (they are the parent's), reseeds
//! the random generator (the copied state would give every sibling the same
//! nonces), and builds its own runtime on first use.
//!
//! A fork that `os.register_at_fork` does not see (from C) is still
//! detected: the runtime and every object that holds clients, a lock or a
//! worker remember their pid ([`PidBound`]), and another process builds its
//! own and leaves the parent's alone: forgotten, never dropped, so a child
//! never releases its parent's lock. Only the quiet runtime cannot be had
//! then.
//!
//! Everything here runs attached to the interpreter, as `os.fork()` does, so
//! no thread of the parent can be inside it when the child is made.
//!
//! # Waiting
//! [`wait`] runs a future with the interpreter released, in slices of
//! [`SIGNAL_CHECK`], checking for signals between slices: `KeyboardInterrupt`
//! interrupts a long wait, and other Python threads run meanwhile.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cloudmux::clock::{self, Clock, SystemClock};
use cloudmux::mux::{Lease, LeaseEnd};
use cloudmux::{ErrorKind, LockGuard};
use pyo3::prelude::*;

use crate::errors;

/// How often a wait looks for signals (Ctrl-C).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// How long a fork waits for the runtime's threads to stop.
const QUIESCE: Duration = Duration::from_secs(2);

/// The runtime of this process.
struct Slot {
    pid: u32,
    rt: Arc<tokio::runtime::Runtime>,
}

static RUNTIME: Mutex<Option<Slot>> = Mutex::new(None);

/// Bumped whenever the runtime is shut down or the process changes:
/// opened paths of an older generation are opened again (their clients'
/// connections belonged to the old runtime).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Threads inside [`wait`] right now (a fork waits for them to come out).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

fn lock_slot() -> std::sync::MutexGuard<'static, Option<Slot>> {
    // Poisoning cannot leave the slot half-written.
    RUNTIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The current generation (see [`GENERATION`]).
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// The runtime of the calling process, built on first use (and again
/// after a fork).
///
/// # Errors
/// A `cloudmux.Error` when no runtime can be built (threads refused).
pub(crate) fn runtime(_py: Python<'_>) -> PyResult<Arc<tokio::runtime::Runtime>> {
    let pid = std::process::id();
    let mut slot = lock_slot();
    if let Some(s) = slot.as_ref()
        && s.pid == pid
    {
        return Ok(s.rt.clone());
    }
    if let Some(old) = slot.take() {
        // Another process's runtime (a fork not seen by the hooks): its
        // threads do not exist here; dropping it would wait for them.
        std::mem::forget(old);
        GENERATION.fetch_add(1, Ordering::SeqCst);
        reseed(pid);
    }
    // Two worker threads: lock renewals and lease heartbeats run while
    // Python works; requests run on the calling thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cloudmux")
        .enable_all()
        .build()
        .map_err(|e| errors::other(format!("cannot start the I/O runtime: {e}")))?;
    let rt = Arc::new(rt);
    *slot = Some(Slot {
        pid,
        rt: rt.clone(),
    });
    Ok(rt)
}

/// The runtime of this process if one runs, without building one.
fn current_runtime() -> Option<Arc<tokio::runtime::Runtime>> {
    let pid = std::process::id();
    lock_slot()
        .as_ref()
        .filter(|s| s.pid == pid)
        .map(|s| s.rt.clone())
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
    let mut z = nanos ^ ((u64::from(pid) << 32) | u64::from(pid)).rotate_left(17);
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
    let mut fut = std::pin::pin!(fut);
    loop {
        // Looked up for every slice: a fork between two slices replaces it.
        let rt = runtime(py)?;
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        let slice = py.detach(|| {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(clock::timeout(&SystemClock, SIGNAL_CHECK, fut.as_mut()))
            }));
            drop(rt);
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            r
        });
        match slice {
            Ok(Some(out)) => return Ok(out),
            Ok(None) => py.check_signals()?,
            Err(panic) => return Err(errors::from_panic(panic)),
        }
    }
}

/// Something that must be renewed in the background while held: restarted
/// on the new runtime after a fork.
enum Renewable {
    Lock(Weak<LockGuard>),
    Lease { lease: Weak<Lease>, every: Duration },
}

static RENEWABLES: Mutex<Vec<Renewable>> = Mutex::new(Vec::new());

fn renewables() -> std::sync::MutexGuard<'static, Vec<Renewable>> {
    RENEWABLES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps `guard`'s renewal going across forks of this process.
pub(crate) fn track_lock(guard: &Arc<LockGuard>) {
    let mut r = renewables();
    r.retain(alive);
    r.push(Renewable::Lock(Arc::downgrade(guard)));
}

/// Keeps `lease`'s heartbeat (every `every`) going across forks.
pub(crate) fn track_lease(lease: &Arc<Lease>, every: Duration) {
    let mut r = renewables();
    r.retain(alive);
    r.push(Renewable::Lease {
        lease: Arc::downgrade(lease),
        every,
    });
}

fn alive(r: &Renewable) -> bool {
    match r {
        Renewable::Lock(g) => g.upgrade().is_some_and(|g| g.is_held()),
        Renewable::Lease { lease, .. } => {
            lease.upgrade().is_some_and(|l| l.end() == LeaseEnd::Held)
        }
    }
}

/// A lease heartbeat of our own (the worker's stopped with the runtime).
async fn heartbeat(lease: Weak<Lease>, every: Duration) {
    loop {
        SystemClock.sleep(every).await;
        let Some(l) = lease.upgrade() else { return };
        if l.end() != LeaseEnd::Held {
            return;
        }
        match l.renew().await {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Fenced | ErrorKind::InvalidInput) => return,
            Err(_) => {} // transient: the next beat tries again
        }
    }
}

/// `os.register_at_fork(before=...)`: stops this process's runtime and
/// waits for its threads to exit, so that no thread is inside a lock when
/// the child is made.
#[pyfunction]
pub(crate) fn before_fork(py: Python<'_>) {
    // Threads inside a wait come out within one slice (then they wait for
    // the interpreter, which the forking thread holds).
    let start = SystemClock.elapsed();
    while ACTIVE.load(Ordering::SeqCst) > 0 && SystemClock.elapsed() - start < QUIESCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = std::process::id();
    let taken = {
        let mut slot = lock_slot();
        match slot.as_ref() {
            Some(s) if s.pid == pid => slot.take(),
            _ => None,
        }
    };
    let Some(s) = taken else { return };
    match Arc::try_unwrap(s.rt) {
        Ok(rt) => {
            GENERATION.fetch_add(1, Ordering::SeqCst);
            // Without the interpreter: a dropped task may hold Python objects.
            py.detach(|| rt.shutdown_timeout(QUIESCE));
        }
        Err(rt) => {
            // Still in use by a thread that did not come out in time: keep
            // it (the child builds its own; a busy thread may still break it).
            *lock_slot() = Some(Slot { pid, rt });
        }
    }
}

/// `os.register_at_fork(after_in_parent=...)`: restarts the renewals of
/// the locks and leases this process holds, on a new runtime.
#[pyfunction]
pub(crate) fn after_fork_in_parent(py: Python<'_>) -> PyResult<()> {
    let live: Vec<Renewable> = {
        let mut r = renewables();
        r.retain(alive);
        if r.is_empty() {
            return Ok(());
        }
        r.iter()
            .map(|x| match x {
                Renewable::Lock(g) => Renewable::Lock(g.clone()),
                Renewable::Lease { lease, every } => Renewable::Lease {
                    lease: lease.clone(),
                    every: *every,
                },
            })
            .collect()
    };
    let rt = runtime(py)?;
    let _enter = rt.enter();
    for x in live {
        match x {
            Renewable::Lock(g) => {
                if let Some(g) = g.upgrade() {
                    g.keep_renewed();
                }
            }
            Renewable::Lease { lease, every } => {
                rt.spawn(heartbeat(lease, every));
            }
        }
    }
    Ok(())
}

/// `os.register_at_fork(after_in_child=...)`: forgets the parent's
/// renewals and runtime, and reseeds the random generator.
#[pyfunction]
pub(crate) fn after_fork_in_child() {
    let pid = std::process::id();
    reseed(pid);
    GENERATION.fetch_add(1, Ordering::SeqCst);
    // The parent's: neither renewed nor dropped here (Weak handles only;
    // the objects themselves are forgotten by their PidBound).
    renewables().clear();
    if let Some(old) = lock_slot().take() {
        std::mem::forget(old);
    }
}

/// A value that belongs to the process that made it. Dropped in that
/// process (inside its runtime, so that background releases can start);
/// forgotten in any other, where its threads and connections do not exist.
pub(crate) struct PidBound<T> {
    pid: u32,
    generation: u64,
    value: Option<T>,
}

impl<T> PidBound<T> {
    /// `value`, made by this process now.
    pub(crate) fn new(value: T) -> Self {
        PidBound {
            pid: std::process::id(),
            generation: generation(),
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

    /// The value, when this process made it on the current runtime (an
    /// opened path: its clients' connections belong to that runtime).
    pub(crate) fn get_fresh(&self) -> Option<&T> {
        if self.generation == generation() {
            self.get()
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
        // Inside the runtime, if one runs: drops may spawn tasks (a lock's
        // best-effort release).
        match current_runtime() {
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
            .field("generation", &self.generation)
            .field("present", &self.value.is_some())
            .finish()
    }
}
