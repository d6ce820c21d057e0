//! The native side of `cloudmux.upathlib`: one storage path, and its lock.
//!
//! The Python classes do the pure path arithmetic (joining, names,
//! suffixes, with the original library's rules) and hand a URL to
//! [`Path`], which opens it on first use in each process through the
//! facade's client registry and runs each request with the interpreter
//! released.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use cloudmux::{ListQuery, LockGuard, LockOptions, UPath};
use futures::{StreamExt, TryStreamExt};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{IntoPy, guard, invalid};
use std::sync::Arc;

use crate::runtime::{PidBound, track_lock, wait};

/// Seconds from Python as a duration.
pub(crate) fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| invalid(format!("{what} must be a number of seconds >= 0 (not {s})")))
}

/// A storage path opened from its URL (`/abs/path`, `file://`, `mem://`,
/// `s3://`, `gs://`, `az://`), used by the classes of `cloudmux.upathlib`.
#[pyclass(module = "cloudmux._native", name = "Path", frozen)]
pub(crate) struct Path {
    url: String,
    /// The opened path, for the process that opened it.
    live: Mutex<Option<PidBound<UPath>>>,
}

impl Path {
    /// A path for `url`, opened on first use.
    pub(crate) fn from_url(url: String) -> Self {
        Path {
            url,
            live: Mutex::new(None),
        }
    }

    /// The opened path: opened once per process (a child of a fork opens
    /// its own, with its own clients).
    pub(crate) fn open(&self, py: Python<'_>) -> PyResult<UPath> {
        {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = live.as_ref().and_then(PidBound::get_fresh) {
                return Ok(p.clone());
            }
        }
        let url = self.url.clone();
        let p = wait(py, async move { cloudmux::path(&url).await })?.py_err()?;
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        // A path of another process is forgotten by PidBound, not dropped.
        *live = Some(PidBound::new(p.clone()));
        Ok(p)
    }
}

#[pymethods]
impl Path {
    /// Opens `url` lazily: nothing is read or checked until the first request.
    #[new]
    fn new(url: String) -> Self {
        Path::from_url(url)
    }

    /// The URL this path was made from.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// The URL as the backend spells it (`file:///a/b`, `s3://bucket/key`).
    fn resolved_url(&self, py: Python<'_>) -> PyResult<String> {
        guard(|| Ok(self.open(py)?.url()))
    }

    /// The key below the store's root (empty for the root).
    fn key(&self, py: Python<'_>) -> PyResult<String> {
        guard(|| Ok(self.open(py)?.key().to_string()))
    }

    /// True when an object or a directory exists here.
    fn exists(&self, py: Python<'_>) -> PyResult<bool> {
        guard(|| {
            let p = self.open(py)?;
            wait(py, async move { p.exists().await })?.py_err()
        })
    }

    /// True when an object exists at this key.
    fn is_file(&self, py: Python<'_>) -> PyResult<bool> {
        guard(|| {
            let p = self.open(py)?;
            wait(py, async move { p.is_file().await })?.py_err()
        })
    }

    /// True when objects exist below this path.
    fn is_dir(&self, py: Python<'_>) -> PyResult<bool> {
        guard(|| {
            let p = self.open(py)?;
            wait(py, async move { p.is_dir().await })?.py_err()
        })
    }

    /// `(size, modified as POSIX seconds, version)`, or None when there is no
    /// object here.
    fn file_info(&self, py: Python<'_>) -> PyResult<Option<(u64, f64, Option<String>)>> {
        guard(|| {
            let p = self.open(py)?;
            if p.is_root() {
                return Ok(None);
            }
            match wait(py, async move { p.file_info().await })? {
                Ok(m) => {
                    let mtime = m
                        .last_modified
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0);
                    Ok(Some((
                        m.size,
                        mtime,
                        m.version.map(|v| v.as_str().to_string()),
                    )))
                }
                Err(e) if e.is_not_found() && !e.is_bucket_missing() => Ok(None),
                Err(e) => Err(crate::errors::to_py(e)),
            }
        })
    }

    /// The object's bytes.
    fn read_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| {
            let p = self.open(py)?;
            let b = wait(py, async move { p.read_bytes().await })?.py_err()?;
            Ok(PyBytes::new(py, &b))
        })
    }

    /// Writes the object: create-only unless `overwrite`.
    fn write_bytes(&self, py: Python<'_>, data: &[u8], overwrite: bool) -> PyResult<()> {
        guard(|| {
            let p = self.open(py)?;
            let b = Bytes::copy_from_slice(data);
            wait(py, async move {
                if overwrite {
                    p.overwrite_bytes(b).await
                } else {
                    p.write_bytes(b).await
                }
            })?
            .py_err()
            .map(|_| ())
        })
    }

    /// Deletes the object; a missing one is an error unless `missing_ok`.
    fn remove_file(&self, py: Python<'_>, missing_ok: bool) -> PyResult<()> {
        guard(|| {
            let p = self.open(py)?;
            wait(py, async move {
                if !missing_ok {
                    // The store deletes missing objects silently; the
                    // original library says FileNotFoundError.
                    p.file_info().await?;
                }
                p.remove_file().await
            })?
            .py_err()
        })
    }

    /// Deletes every object below this directory (not one at the path
    /// itself); returns how many.
    fn remove_below(&self, py: Python<'_>) -> PyResult<usize> {
        guard(|| {
            let p = self.open(py)?;
            wait(py, async move {
                if p.is_root() {
                    return Err(cloudmux::Error::invalid(
                        "remove_dir",
                        "refusing to remove everything in a store",
                    )
                    .with_path(p.to_string()));
                }
                let mut n = 0;
                loop {
                    let page = p.list_page(&ListQuery::default()).await?;
                    if page.objects.is_empty() {
                        return Ok(n);
                    }
                    let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
                    n += keys.len();
                    let p = &p;
                    futures::stream::iter(keys)
                        .map(|k| async move { p.with_key(&k)?.remove_file().await })
                        .buffer_unordered(16)
                        .try_collect::<Vec<()>>()
                        .await?;
                }
            })?
            .py_err()
        })
    }

    /// Deletes the object here and everything below; returns how many.
    fn rmrf(&self, py: Python<'_>) -> PyResult<usize> {
        guard(|| {
            let p = self.open(py)?;
            wait(py, async move { p.rmrf().await })?.py_err()
        })
    }

    /// One page of a listing below this directory: the objects' keys, the
    /// sub-directories' keys (one level, unless `recursive`), and the token
    /// of the next page.
    #[pyo3(signature = (recursive, token=None))]
    fn list_page(
        &self,
        py: Python<'_>,
        recursive: bool,
        token: Option<String>,
    ) -> PyResult<(Vec<String>, Vec<String>, Option<String>)> {
        guard(|| {
            let p = self.open(py)?;
            let page = wait(py, async move {
                p.list_page(&ListQuery {
                    delimiter: !recursive,
                    token,
                    ..ListQuery::default()
                })
                .await
            })?
            .py_err()?;
            let objects = page.objects.into_iter().map(|o| o.key).collect();
            let prefixes = page
                .prefixes
                .into_iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect();
            Ok((objects, prefixes, page.next))
        })
    }

    /// Copies this object to `dst` (any backend).
    fn copy_file_to(&self, py: Python<'_>, dst: &Path, overwrite: bool) -> PyResult<()> {
        guard(|| {
            let (src, dst) = (self.open(py)?, dst.open(py)?);
            wait(py, async move { src.copy_file(&dst, overwrite).await })?.py_err()
        })
    }

    /// Copies every object below this directory to the same relative keys
    /// below `dst`; returns how many.
    fn copy_dir_to(&self, py: Python<'_>, dst: &Path, overwrite: bool) -> PyResult<usize> {
        guard(|| {
            let (src, dst) = (self.open(py)?, dst.open(py)?);
            wait(py, async move { src.copy_dir(&dst, overwrite).await })?.py_err()
        })
    }

    /// Takes the lock on this path (the object `<path>.lock`), waiting up to
    /// `timeout` seconds, and keeps it renewed in the background.
    #[pyo3(signature = (timeout, ttl, holder=None))]
    fn lock(
        &self,
        py: Python<'_>,
        timeout: f64,
        ttl: f64,
        holder: Option<String>,
    ) -> PyResult<Lock> {
        guard(|| {
            let mut opts = LockOptions::new(seconds("timeout", timeout)?)
                .ttl(seconds("ttl", ttl)?.max(Duration::from_millis(100)));
            if let Some(h) = holder {
                opts = opts.holder(h);
            }
            let p = self.open(py)?;
            let g = wait(py, async move {
                let g = p.lock_with(opts).await?;
                // Spawned on this runtime: inside the wait, it is current.
                g.keep_renewed();
                Ok::<_, cloudmux::Error>(g)
            })?
            .py_err()?;
            let g = Arc::new(g);
            track_lock(&g);
            Ok(Lock {
                token: g.fencing_token(),
                holder: g.holder().to_string(),
                lock_url: g.lock_path().url(),
                guard: Mutex::new(Some(PidBound::new(g))),
            })
        })
    }

    fn __repr__(&self) -> String {
        format!("Path({:?})", self.url)
    }
}

/// A held lock, renewed in the background until released.
#[pyclass(module = "cloudmux._native", name = "Lock", frozen)]
pub(crate) struct Lock {
    token: u64,
    holder: String,
    lock_url: String,
    guard: Mutex<Option<PidBound<Arc<LockGuard>>>>,
}

impl Lock {
    fn current(&self) -> Option<Arc<LockGuard>> {
        let g = self.guard.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().and_then(PidBound::get).cloned()
    }
}

#[pymethods]
impl Lock {
    /// The fencing token of this acquisition: larger than every earlier
    /// acquisition's of the same lock.
    #[getter]
    fn fencing_token(&self) -> u64 {
        self.token
    }

    /// The holder name recorded in the lock.
    #[getter]
    fn holder(&self) -> &str {
        &self.holder
    }

    /// The URL of the lock object.
    #[getter]
    fn lock_url(&self) -> &str {
        &self.lock_url
    }

    /// True until released, or until a renewal found the lock taken over.
    #[getter]
    fn is_held(&self) -> bool {
        self.current().is_some_and(|g| g.is_held())
    }

    /// Releases the lock (a second release does nothing).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            let taken = {
                let mut g = self.guard.lock().unwrap_or_else(|p| p.into_inner());
                match g.as_mut() {
                    None => return Ok(()),
                    Some(b) => match b.take() {
                        Some(t) => Some(t),
                        None => {
                            return Err(crate::errors::other(
                                "this lock was taken by another process (before a fork): \
                                 only that process can release it"
                                    .into(),
                            ));
                        }
                    },
                }
            };
            let Some(g) = taken else { return Ok(()) };
            let r = wait(py, async move { g.release().await })?;
            *self.guard.lock().unwrap_or_else(|p| p.into_inner()) = None;
            r.py_err()
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Lock({:?}, holder={:?}, fencing_token={})",
            self.lock_url, self.holder, self.token
        )
    }
}
