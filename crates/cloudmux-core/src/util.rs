//! Small helpers: nonces and the default worker / holder name.

/// A fresh 128-bit random nonce as 32 hex digits.
///
/// The process id is mixed in: a child made by `fork` inherits its parent's
/// random state, and two processes must never write the same nonce (the
/// settlement of ambiguous writes rests on it).
pub fn nonce() -> String {
    let pid = u64::from(std::process::id());
    format!(
        "{:016x}{:016x}",
        fastrand::u64(..) ^ pid.rotate_left(32),
        fastrand::u64(..)
    )
}

/// Environment variables that name a task's index on batch platforms, in the
/// order they are consulted: AWS Batch array jobs, Cloud Run jobs, Kubernetes
/// indexed jobs.
pub const TASK_INDEX_VARS: [&str; 3] = [
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "CLOUD_RUN_TASK_INDEX",
    "JOB_COMPLETION_INDEX",
];

/// The default worker (and lock holder) name: `host/pid/thread`, plus
/// `/task=N` when a batch platform sets a task index.
///
/// ```
/// let id = cloudmux_core::util::default_worker_id();
/// assert!(id.contains(&std::process::id().to_string()));
/// ```
pub fn default_worker_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host = if host.is_empty() {
        "localhost".into()
    } else {
        host
    };
    let thread = std::thread::current();
    let tname = thread.name().unwrap_or("unnamed");
    let mut id = format!("{host}/{}/{tname}", std::process::id());
    for var in TASK_INDEX_VARS {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            id.push_str(&format!("/task={}", v.trim()));
            break;
        }
    }
    id
}
