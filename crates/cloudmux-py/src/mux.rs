//! The native side of `cloudmux.multiplexer`: a dataset for the
//! coordinator, a worker for each participant, and leased tasks.

use std::sync::Mutex;

use cloudmux::mux::{
    DestroyOptions, ElementsWriter, Lease, Multiplexer, MuxId, SessionOptions, WorkerOptions,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{IntoPy, guard, invalid, other};
use crate::path::seconds;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::{PidBound, track_lease, wait};
use crate::value::{self, Mode, Unpickle, Value};

/// Parses a mux id.
fn parse_id(mux_id: &str) -> PyResult<MuxId> {
    mux_id.parse::<MuxId>().py_err()
}

/// Splits a mux id into `(session, dataset URL)`.
///
/// # Errors
/// `ValueError` (`cloudmux.InvalidInputError`) for a malformed id.
#[pyfunction]
pub(crate) fn parse_mux_id(mux_id: &str) -> PyResult<(String, String)> {
    guard(|| {
        let id = parse_id(mux_id)?;
        Ok((id.session().to_string(), id.dataset_url().to_string()))
    })
}

/// A dataset, for the coordinator: sessions, progress, removal.
#[pyclass(module = "cloudmux._native", name = "Dataset", frozen)]
pub(crate) struct Dataset {
    url: String,
    count: usize,
    /// The opened dataset, for the process that opened it.
    live: Mutex<Option<PidBound<Multiplexer>>>,
}

impl Dataset {
    fn made(mux: Multiplexer) -> Dataset {
        Dataset {
            url: mux.path().url(),
            count: mux.len(),
            live: Mutex::new(Some(PidBound::new(mux))),
        }
    }

    /// The dataset, opened again in a process other than the one that made
    /// this object.
    fn mux(&self, py: Python<'_>) -> PyResult<Multiplexer> {
        {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = live.as_ref().and_then(PidBound::get_fresh) {
                return Ok(m.clone());
            }
        }
        let url = self.url.clone();
        let m = wait(py, async move { cloudmux::dataset(&url).await })?.py_err()?;
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(PidBound::new(m.clone()));
        Ok(m)
    }
}

#[pymethods]
impl Dataset {
    /// Encodes every element of `data` (all of them first: a bad one raises
    /// `TypeError` before anything is written), then stores them as a new
    /// dataset in a new time-named folder below `url`.
    #[staticmethod]
    #[pyo3(signature = (data, url, tag=None, pickle=false))]
    fn create(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        url: String,
        tag: Option<String>,
        pickle: bool,
    ) -> PyResult<Dataset> {
        guard(|| {
            let mode = if pickle { Mode::Pickle } else { Mode::Plain };
            let mut w = ElementsWriter::new();
            for (i, item) in data.try_iter()?.enumerate() {
                let v = value::encode_element(&item?, i, mode)?;
                w.push(&v).py_err()?;
            }
            let (bytes, count) = w.finish();
            let mux = wait(py, async move {
                let root = cloudmux::path(&url).await?;
                Multiplexer::from_encoded(bytes, count, &root, tag.as_deref()).await
            })?
            .py_err()?;
            Ok(Dataset::made(mux))
        })
    }

    /// Opens an existing dataset folder from its URL.
    #[staticmethod]
    fn open(py: Python<'_>, url: String) -> PyResult<Dataset> {
        guard(|| {
            let mux = wait(py, async move { cloudmux::dataset(&url).await })?.py_err()?;
            Ok(Dataset::made(mux))
        })
    }

    /// The dataset folder's URL.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    fn __len__(&self) -> usize {
        self.count
    }

    /// Starts a new read session and returns its mux id; with `lease`
    /// (seconds), a leased session.
    #[pyo3(signature = (lease=None, max_attempts=None, max_failed=None))]
    fn create_read_session(
        &self,
        py: Python<'_>,
        lease: Option<f64>,
        max_attempts: Option<u32>,
        max_failed: Option<u64>,
    ) -> PyResult<String> {
        guard(|| {
            let opts = SessionOptions {
                lease: lease.map(|s| seconds("lease", s)).transpose()?,
                max_attempts,
                max_failed,
            };
            let mux = self.mux(py)?;
            let id = wait(py, async move { mux.create_read_session_with(opts).await })?.py_err()?;
            Ok(id.to_string())
        })
    }

    /// The progress of a session, as a dict.
    #[pyo3(signature = (mux_id, exact=false))]
    fn stat<'py>(&self, py: Python<'py>, mux_id: &str, exact: bool) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let id = parse_id(mux_id)?;
            let mux = self.mux(py)?;
            let s = wait(py, async move {
                if exact {
                    mux.stat_exact(&id).await
                } else {
                    mux.stat(&id).await
                }
            })?
            .py_err()?;
            let json = serde_json::to_value(&s)
                .map_err(|e| other(format!("cannot represent the stat: {e}")))?;
            let d = value::json_to_py(py, &json)?;
            // The original library's name for the count handed out.
            if let Ok(d) = d.cast::<PyDict>() {
                d.set_item("next", s.claimed)?;
            }
            Ok(d)
        })
    }

    /// True when every element of the session was handed out (leased: done
    /// or failed).
    fn done(&self, py: Python<'_>, mux_id: &str) -> PyResult<bool> {
        guard(|| {
            let id = parse_id(mux_id)?;
            let mux = self.mux(py)?;
            wait(py, async move { mux.done(&id).await })?.py_err()
        })
    }

    /// The mux ids of this dataset's sessions, oldest first.
    fn sessions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        guard(|| {
            let mux = self.mux(py)?;
            let ids = wait(py, async move { mux.sessions().await })?.py_err()?;
            Ok(ids.iter().map(ToString::to_string).collect())
        })
    }

    /// Makes a leased session's failed elements available again; returns how
    /// many.
    fn retry_failed(&self, py: Python<'_>, mux_id: &str) -> PyResult<usize> {
        guard(|| {
            let id = parse_id(mux_id)?;
            let mux = self.mux(py)?;
            wait(py, async move { mux.retry_failed(&id).await })?.py_err()
        })
    }

    /// Removes the dataset and its sessions; returns the objects removed.
    #[pyo3(signature = (force=false))]
    fn destroy(&self, py: Python<'_>, force: bool) -> PyResult<usize> {
        guard(|| {
            let mux = self.mux(py)?;
            let d = wait(py, async move {
                mux.destroy_with(DestroyOptions {
                    force,
                    ..DestroyOptions::default()
                })
                .await
            })?
            .py_err()?;
            Ok(d.objects)
        })
    }

    fn __repr__(&self) -> String {
        format!("Dataset({:?}, len={})", self.url, self.count)
    }
}

/// A participant in a read session: a blocking iterator of elements (or,
/// with `manual_ack`, of [`Task`]s).
#[pyclass(module = "cloudmux._native", name = "Worker")]
pub(crate) struct Worker {
    mux_id: String,
    opts: WorkerOptions,
    unpickle: Unpickle,
    /// Opened on first use in each process.
    inner: Option<PidBound<cloudmux::mux::Worker<Value>>>,
    /// Leased sessions: the heartbeat interval (the backend's write
    /// interval taken into account), and the lease of the element last
    /// handed out by iteration, kept so that its heartbeat survives a fork.
    heartbeat: Duration,
    current: Option<PidBound<Arc<Lease>>>,
}

impl Worker {
    /// The worker of this process, opened (the session document and the
    /// data file read) on first use.
    fn inner(&mut self, py: Python<'_>) -> PyResult<&mut cloudmux::mux::Worker<Value>> {
        if self.inner.as_ref().and_then(PidBound::get).is_none() {
            let (id, opts) = (self.mux_id.clone(), self.opts.clone());
            let w = wait(
                py,
                async move { cloudmux::worker::<Value>(&id, opts).await },
            )?
            .py_err()?;
            // One of another process is forgotten by PidBound, not dropped.
            self.inner = Some(PidBound::new(w));
        }
        self.inner
            .as_mut()
            .and_then(PidBound::get_mut)
            .ok_or_else(|| other("the worker could not be opened".into()))
    }
}

#[pymethods]
impl Worker {
    /// A worker for the session `mux_id`. Nothing is read until the first
    /// element is asked for.
    #[new]
    #[pyo3(signature = (mux_id, worker_id=None, timeout=None, manual_ack=false, pickle=false, shard=None))]
    fn new(
        mux_id: String,
        worker_id: Option<String>,
        timeout: Option<f64>,
        manual_ack: bool,
        pickle: bool,
        shard: Option<(u64, u64)>,
    ) -> PyResult<Self> {
        guard(|| {
            parse_id(&mux_id)?;
            if let Some((i, n)) = shard
                && i >= n
            {
                return Err(invalid(format!(
                    "shard must be (i, n) with 0 <= i < n, not ({i}, {n})"
                )));
            }
            let mut opts = WorkerOptions {
                worker_id,
                manual_ack,
                shard,
                ..WorkerOptions::default()
            };
            if let Some(t) = timeout {
                let t = seconds("timeout", t)?;
                if t.is_zero() {
                    return Err(invalid("timeout must be more than 0 seconds".into()));
                }
                opts.timeout = Some(t);
            }
            Ok(Worker {
                mux_id,
                opts,
                unpickle: if pickle {
                    Unpickle::Allow
                } else {
                    Unpickle::Refuse
                },
                inner: None,
                heartbeat: Duration::from_secs(1),
                current: None,
            })
        })
    }

    /// The mux id.
    #[getter]
    fn mux_id(&self) -> &str {
        &self.mux_id
    }

    /// The worker id recorded in claims (after the first element).
    #[getter]
    fn worker_id(&self) -> Option<String> {
        self.inner
            .as_ref()
            .and_then(PidBound::get)
            .map(|w| w.worker_id().to_string())
            .or_else(|| self.opts.worker_id.clone())
    }

    /// This worker's counters so far, as a dict.
    fn progress<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let p = self.inner(py)?.progress();
            let json = serde_json::to_value(&p)
                .map_err(|e| other(format!("cannot represent the progress: {e}")))?;
            value::json_to_py(py, &json)
        })
    }

    /// Writes this worker's progress summary now, if it changed (what
    /// `stat` reads without `exact`). Iteration writes it every few seconds
    /// and at the end of the session; call this after leaving the loop
    /// early. A worker not yet started, or inherited across a fork, has
    /// nothing to write.
    fn flush(&mut self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            if let Some(w) = self.inner.as_mut().and_then(PidBound::get_mut) {
                wait(py, w.flush())?;
            }
            Ok(())
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next element, or `StopIteration` when the session has none left.
    /// In a leased session, asking for it acknowledges the previous one.
    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        guard(|| {
            let unpickle = self.unpickle;
            let heartbeat = self.heartbeat;
            let w = self.inner(py)?;
            match wait(py, w.next_task())? {
                None => {
                    self.current = None;
                    Ok(None)
                }
                Some(Err(e)) => Err(crate::errors::to_py(e)),
                Some(Ok(t)) => {
                    self.current = t.lease().cloned().map(|l| {
                        let l = Arc::new(l);
                        track_lease(&l, heartbeat);
                        PidBound::new(l)
                    });
                    Ok(Some(
                        value::to_py(py, &t.value, t.index, unpickle)?.unbind(),
                    ))
                }
            }
        })
    }

    /// The next element as a [`Task`] (its lease to acknowledge or fail, in
    /// a leased session), or None when the session has none left.
    fn next_task(&mut self, py: Python<'_>) -> PyResult<Option<Task>> {
        guard(|| {
            let unpickle = self.unpickle;
            let heartbeat = self.heartbeat;
            let w = self.inner(py)?;
            match wait(py, w.next_task())? {
                None => Ok(None),
                Some(Err(e)) => Err(crate::errors::to_py(e)),
                Some(Ok(t)) => {
                    let value = value::to_py(py, &t.value, t.index, unpickle)?.unbind();
                    let lease = t.lease().cloned().map(|l| {
                        let l = Arc::new(l);
                        track_lease(&l, heartbeat);
                        PidBound::new(l)
                    });
                    Ok(Some(Task {
                        index: t.index,
                        attempt: t.attempt(),
                        value,
                        lease: Mutex::new(lease),
                    }))
                }
            }
        })
    }

    fn __repr__(&self) -> String {
        format!("Worker({:?})", self.mux_id)
    }
}

/// An element handed out, with its lease in a leased session.
#[pyclass(module = "cloudmux._native", name = "Task", frozen)]
pub(crate) struct Task {
    index: usize,
    attempt: u64,
    value: Py<PyAny>,
    lease: Mutex<Option<PidBound<Arc<Lease>>>>,
}

impl Task {
    fn lease(&self) -> Option<Arc<Lease>> {
        let l = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        l.as_ref().and_then(PidBound::get).cloned()
    }
}

#[pymethods]
impl Task {
    /// The element's index in the dataset.
    #[getter]
    fn index(&self) -> usize {
        self.index
    }

    /// The attempt number (1 in a default session).
    #[getter]
    fn attempt(&self) -> u64 {
        self.attempt
    }

    /// The element.
    #[getter]
    fn value(&self, py: Python<'_>) -> Py<PyAny> {
        self.value.clone_ref(py)
    }

    /// True in a leased session, where the task must be acknowledged.
    #[getter]
    fn leased(&self) -> bool {
        self.lease().is_some()
    }

    /// True once the lease was found taken over by another worker.
    #[getter]
    fn lost(&self) -> bool {
        self.lease().is_some_and(|l| l.is_lost())
    }

    /// Acknowledges the element (a no-op in a default session).
    fn ack(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| match self.lease() {
            None => Ok(()),
            Some(l) => wait(py, async move { l.ack().await })?.py_err(),
        })
    }

    /// Reports a failed attempt with a reason (leased sessions only).
    /// Returns True when the element is now failed for good (its attempts
    /// are spent), False when it will be handed out again.
    fn fail(&self, py: Python<'_>, reason: String) -> PyResult<bool> {
        guard(|| match self.lease() {
            None => Err(crate::errors::to_py(
                cloudmux::Error::new(cloudmux::ErrorKind::Unsupported, "fail")
                    .with_message("failures are recorded only in leased sessions"),
            )),
            Some(l) => wait(py, async move { l.fail(&reason).await })?
                .py_err()
                .map(|o| o == cloudmux::mux::FailOutcome::Failed),
        })
    }

    /// Gives the element back without failing it (leased sessions only).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| match self.lease() {
            None => Err(crate::errors::to_py(
                cloudmux::Error::new(cloudmux::ErrorKind::Unsupported, "release")
                    .with_message("elements are released only in leased sessions"),
            )),
            Some(l) => wait(py, async move { l.release().await })?.py_err(),
        })
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Leaving a `with task:` block acknowledges the task, or, when the block
    /// raised, reports the failure with the exception (leased sessions).
    #[pyo3(signature = (exc_type=None, exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let failed = exc_type.is_some_and(|t| !t.is_none());
        if !failed {
            self.ack(py)?;
        } else if self.lease().is_some() {
            let name = exc_type
                .and_then(|t| t.getattr("__name__").ok())
                .map(|n| n.to_string())
                .unwrap_or_else(|| "exception".into());
            let text = exc
                .and_then(|e| e.str().ok())
                .map(|s| s.to_string())
                .unwrap_or_default();
            self.fail(py, format!("{name}: {text}"))?;
        }
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let v = self
            .value
            .bind(py)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        format!(
            "Task(index={}, attempt={}, value={v})",
            self.index, self.attempt
        )
    }
}
