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

/// Parses a shard hint `I/N` (this worker is number `I` of `N`, `I < N`).
///
/// ```
/// use cloudmux_core::util::parse_shard;
/// assert_eq!(parse_shard("3/16"), Ok((3, 16)));
/// assert!(parse_shard("16/16").is_err());
/// assert!(parse_shard("x").is_err());
/// ```
///
/// # Errors
/// A message naming what is wrong, for anything but two integers with
/// `I < N`.
pub fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("'{s}' is not INDEX/COUNT (for example 3/16)"))?;
    let i: u64 = i
        .trim()
        .parse()
        .map_err(|_| format!("'{s}': the index is not a non-negative integer"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("'{s}': the count is not a positive integer"))?;
    if n == 0 || i >= n {
        return Err(format!("'{s}': the index must be below the count"));
    }
    Ok((i, n))
}

/// The environment variable with an explicit shard hint `I/N`.
pub const SHARD_VAR: &str = "CLOUDMUX_SHARD";
/// The fleet size, for platforms that set only a task index (AWS Batch
/// array jobs, Kubernetes indexed jobs).
pub const SHARD_COUNT_VAR: &str = "CLOUDMUX_SHARD_COUNT";

/// A worker's place in its fleet, `(index, count)`, from the environment:
/// `CLOUDMUX_SHARD=I/N`; else Cloud Run's `CLOUD_RUN_TASK_INDEX` and
/// `CLOUD_RUN_TASK_COUNT`; else a task index from [`TASK_INDEX_VARS`] with
/// `CLOUDMUX_SHARD_COUNT=N`. `None` when nothing usable is set (a malformed
/// value is ignored, with a warning: the hint only spreads workers out).
pub fn shard_from_env() -> Option<(u64, u64)> {
    shard_from(|k| std::env::var(k).ok())
}

/// The explicit hint alone: `CLOUDMUX_SHARD=I/N`, or `None`. What a library
/// worker reads by itself: one batch task may run several workers (a Python
/// `multiprocessing` pool, threads), and the platform's task index would
/// start them all at the same place. The `cloudmux` command, one worker per
/// process, reads the platform's too ([`shard_from_env`]).
pub fn explicit_shard_from_env() -> Option<(u64, u64)> {
    shard_from(|k| {
        if k == SHARD_VAR {
            std::env::var(k).ok()
        } else {
            None
        }
    })
}

/// [`shard_from_env`] over any lookup of variables.
///
/// ```
/// use cloudmux_core::util::shard_from;
/// let env = |k: &str| match k {
///     "AWS_BATCH_JOB_ARRAY_INDEX" => Some("7".to_string()),
///     "CLOUDMUX_SHARD_COUNT" => Some("64".to_string()),
///     _ => None,
/// };
/// assert_eq!(shard_from(env), Some((7, 64)));
/// assert_eq!(shard_from(|_| None), None);
/// ```
pub fn shard_from(get: impl Fn(&str) -> Option<String>) -> Option<(u64, u64)> {
    let val = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let checked = |what: &str, s: String| match parse_shard(&s) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("ignoring the shard hint from {what}: {e}");
            None
        }
    };
    if let Some(s) = val(SHARD_VAR) {
        return checked(SHARD_VAR, s);
    }
    if let (Some(i), Some(n)) = (val("CLOUD_RUN_TASK_INDEX"), val("CLOUD_RUN_TASK_COUNT")) {
        return checked("CLOUD_RUN_TASK_INDEX/COUNT", format!("{i}/{n}"));
    }
    let n = val(SHARD_COUNT_VAR)?;
    let (var, i) = TASK_INDEX_VARS
        .iter()
        .find_map(|&k| val(k).map(|v| (k, v)))?;
    checked(var, format!("{i}/{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shard_hints_come_from_the_platform_or_cloudmux() {
        assert_eq!(shard_from(env(&[("CLOUDMUX_SHARD", "2/8")])), Some((2, 8)));
        // The explicit hint wins over the platform's.
        assert_eq!(
            shard_from(env(&[
                ("CLOUDMUX_SHARD", "1/4"),
                ("CLOUD_RUN_TASK_INDEX", "3"),
                ("CLOUD_RUN_TASK_COUNT", "10"),
            ])),
            Some((1, 4))
        );
        assert_eq!(
            shard_from(env(&[
                ("CLOUD_RUN_TASK_INDEX", "3"),
                ("CLOUD_RUN_TASK_COUNT", "10")
            ])),
            Some((3, 10))
        );
        // An index alone says nothing of the fleet's size.
        assert_eq!(shard_from(env(&[("JOB_COMPLETION_INDEX", "5")])), None);
        assert_eq!(
            shard_from(env(&[
                ("JOB_COMPLETION_INDEX", "5"),
                ("CLOUDMUX_SHARD_COUNT", "6")
            ])),
            Some((5, 6))
        );
        // Malformed or out of range: ignored, not guessed.
        for bad in ["5", "5/5", "-1/4", "a/b", "1/0", " / "] {
            assert_eq!(shard_from(env(&[("CLOUDMUX_SHARD", bad)])), None, "{bad}");
        }
        assert_eq!(
            shard_from(env(&[
                ("AWS_BATCH_JOB_ARRAY_INDEX", "9"),
                ("CLOUDMUX_SHARD_COUNT", "4")
            ])),
            None
        );
        assert_eq!(shard_from(env(&[])), None);
    }
}
