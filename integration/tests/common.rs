//! Checks as libtest-mimic trials: what each needs of the backend, and the
//! runtime it runs on.

use std::future::Future;

use cloudmux_integration::backend::{self, Backend, Kind};
use libtest_mimic::{Completion, Trial};

/// What a check needs of the selected backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Any backend.
    Any,
    /// Objects that other OS processes see (not the in-memory store).
    SharedAcrossProcesses,
    /// An object store reached through a cloud SDK (S3, GCS, Azure).
    Cloud,
    /// This backend only.
    Only(Kind),
}

impl Needs {
    /// Why a check does not apply to `kind`, or `None` when it does.
    pub(crate) fn unmet(self, kind: Kind) -> Option<String> {
        let run_by = "run by localstack/run-tests.sh";
        match self {
            Needs::Any => None,
            Needs::SharedAcrossProcesses if kind == Kind::Memory => Some(format!(
                "needs a backend other processes can see, not '{}' \
                 (CLOUDMUX_TEST_BACKEND=local, or an emulator: {run_by})",
                kind.name()
            )),
            Needs::Cloud if !kind.is_cloud() => Some(format!(
                "needs a cloud backend, not '{}' (CLOUDMUX_TEST_BACKEND=s3, gcs or azure: {run_by})",
                kind.name()
            )),
            Needs::Only(k) if k != kind => Some(format!(
                "needs CLOUDMUX_TEST_BACKEND={}, not '{}' ({run_by})",
                k.name(),
                kind.name()
            )),
            _ => None,
        }
    }
}

/// A runtime like `#[tokio::test(flavor = "multi_thread")]` builds.
pub(crate) fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A check that gets the backend, on a runtime of its own. Ignored, with
/// the reason, when the backend is not what it `needs`.
pub(crate) fn check<F, Fut>(name: &str, kind: Kind, needs: Needs, body: F) -> Trial
where
    F: FnOnce(Backend) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    plain(name, kind, needs, move || {
        runtime(4).block_on(async move { body(backend::setup().await).await })
    })
}

/// A check that builds its own runtimes (it is given none).
pub(crate) fn plain<F>(name: &str, kind: Kind, needs: Needs, body: F) -> Trial
where
    F: FnOnce() + Send + 'static,
{
    Trial::ignorable_test(name, move || {
        if let Some(reason) = needs.unmet(kind) {
            return Ok(Completion::ignored_with(reason));
        }
        // A panic is a failure (libtest-mimic catches it).
        body();
        Ok(Completion::Completed)
    })
    .with_kind(kind.name())
}
