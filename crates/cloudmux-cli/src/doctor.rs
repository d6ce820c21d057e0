//! `cloudmux doctor`: does this store honour what cloudmux relies on?
//!
//! Several S3-compatible stores accept `If-None-Match` and `If-Match` and
//! silently ignore them: every create then "wins" and every lock is no lock.
//! The doctor proves the opposite with a few requests under a random prefix
//! `<url>/.cloudmux-doctor-<8 hex>/` that it removes afterwards:
//!
//! | check | requests | passes when |
//! |---|---|---|
//! | create-if-absent | create `k-1`, read its metadata, create `k-1` again | the second create is refused (`AlreadyExists`) |
//! | compare-and-swap | create `k-10`, swap it from its version, swap again from the old version | the first swap succeeds, the second is refused (`Precondition`) and the object holds the first swap's bytes |
//! | ordered listing | create `k-2`, list with pages of 2 | `k-1`, `k-10`, `k-2` come back in byte order over two pages |
//! | clock skew | (the metadata read above) | always reported: the storage's `last_modified` of the object just written against this machine's clock |
//!
//! About a dozen requests in all, then the clean-up (a listing and three
//! deletes).
//!
//! # The check `session` runs
//! `cloudmux session` runs the same checks once, under the dataset's parent
//! folder (where `new` was pointed), and caches a pass in the object
//! `<parent>/.cloudmux-store-check.json` (`{"v":1,"checked":...,"skew_s":...}`).
//! Later sessions below the same folder read that one object (one request)
//! instead. Delete it to check again; `--no-check` skips the check.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cloudmux::clock::rfc3339_micros;
use cloudmux::{ListQuery, PutMode, UPath};
use serde::Serialize;

/// The name of the cached result of a pass, in the dataset's parent.
pub(crate) const CHECK_CACHE: &str = ".cloudmux-store-check.json";

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

/// What the doctor found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) checks: Vec<Check>,
    /// Storage clock minus this machine's clock, in seconds (positive: the
    /// storage is ahead).
    pub(crate) skew_s: Option<f64>,
    /// How precise that figure is, in seconds.
    pub(crate) skew_uncertainty_s: Option<f64>,
    /// Objects removed afterwards.
    pub(crate) cleaned: usize,
}

impl Report {
    pub(crate) fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The first failed check, as one line.
    pub(crate) fn failure(&self) -> Option<String> {
        self.checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
    }
}

/// Skews above this are worth a warning: leases and locks judge expiry
/// partly by the storage's timestamps and tolerate a skew of one lease.
pub(crate) const SKEW_WARNING: Duration = Duration::from_secs(5);

/// Runs every check under a fresh prefix below `root`, and removes it.
///
/// # Errors
/// Storage errors (a refused permission, an unreachable store): those are
/// not a verdict on the store.
pub(crate) async fn run(root: &UPath) -> cloudmux::Result<Report> {
    let dir = root.join(&format!(
        ".cloudmux-doctor-{}",
        &cloudmux::util::nonce()[..8]
    ))?;
    let mut report = Report {
        url: root.to_string(),
        checks: Vec::new(),
        skew_s: None,
        skew_uncertainty_s: None,
        cleaned: 0,
    };
    let r = checks(&dir, &mut report).await;
    match dir.rmrf().await {
        Ok(n) => report.cleaned = n,
        Err(e) => tracing::warn!(dir = %dir, error = %e, "could not clean up after the checks"),
    }
    r.map(|()| report)
}

async fn checks(dir: &UPath, report: &mut Report) -> cloudmux::Result<()> {
    let clock = dir.clock().clone();
    // Create-if-absent, and the clock.
    let a = dir.join("k-1")?;
    let before = clock.now();
    a.write_bytes(Bytes::from_static(b"first")).await?;
    let after = clock.now();
    let meta = a.file_info().await?;
    let (skew, uncertainty) = skew(before, after, meta.last_modified);
    report.skew_s = Some(skew);
    report.skew_uncertainty_s = Some(uncertainty);
    let check = match a.write_bytes(Bytes::from_static(b"second")).await {
        Err(e) if e.is_already_exists() => Check {
            name: "create-if-absent",
            ok: true,
            detail: "a second create of one key was refused".into(),
        },
        Ok(_) => Check {
            name: "create-if-absent",
            ok: false,
            detail: "the store accepted a second create of one key: it ignores If-None-Match, \
                     so claims and locks would not be exclusive on it"
                .into(),
        },
        Err(e) => return Err(e),
    };
    report.checks.push(check);

    // Compare-and-swap.
    let b = dir.join("k-10")?;
    let v1 = b.write_bytes(Bytes::from_static(b"v1")).await?;
    let check = match b
        .put(Bytes::from_static(b"v2"), PutMode::Update(v1.clone()))
        .await
    {
        Err(e) if e.is_precondition() => Check {
            name: "compare-and-swap",
            ok: false,
            detail: "a swap from the current version was refused".into(),
        },
        Err(e) => return Err(e),
        Ok(_) => match b.put(Bytes::from_static(b"v3"), PutMode::Update(v1)).await {
            Err(e) if e.is_precondition() => {
                let now = b.read_bytes().await?;
                if now.as_ref() == b"v2" {
                    Check {
                        name: "compare-and-swap",
                        ok: true,
                        detail: "a write from a stale version was refused".into(),
                    }
                } else {
                    Check {
                        name: "compare-and-swap",
                        ok: false,
                        detail: "the object does not hold the last successful write".into(),
                    }
                }
            }
            Ok(_) => Check {
                name: "compare-and-swap",
                ok: false,
                detail: "the store accepted a write from a stale version: it ignores If-Match, \
                         so leases and locks could be taken twice"
                    .into(),
            },
            Err(e) => return Err(e),
        },
    };
    report.checks.push(check);

    // Ordered listing, page by page.
    dir.join("k-2")?
        .write_bytes(Bytes::from_static(b"x"))
        .await?;
    let mut names = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = dir
            .list_page(&ListQuery {
                prefix: "k-".into(),
                limit: Some(2),
                token,
                ..ListQuery::default()
            })
            .await?;
        pages += 1;
        names.extend(
            page.objects
                .iter()
                .filter_map(|o| dir.relative(&o.key).map(str::to_string)),
        );
        match page.next {
            Some(t) if pages < 10 => token = Some(t),
            _ => break,
        }
    }
    let want = ["k-1", "k-10", "k-2"];
    report.checks.push(if names == want {
        Check {
            name: "ordered listing",
            ok: true,
            detail: format!("keys come back in byte order ({pages} pages of at most 2)"),
        }
    } else {
        Check {
            name: "ordered listing",
            ok: false,
            detail: format!("expected {want:?} in order, got {names:?}"),
        }
    });
    Ok(())
}

/// Storage time minus this machine's time around the write, and how
/// precise that is: half the request's duration, plus a second when the
/// store's timestamps have whole seconds only (S3, Azure).
fn skew(before: SystemTime, after: SystemTime, storage: SystemTime) -> (f64, f64) {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let mid = (secs(before) + secs(after)) / 2.0;
    let half = (secs(after) - secs(before)).max(0.0) / 2.0;
    let coarse = storage
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() == 0)
        .unwrap_or(false);
    let s = secs(storage);
    if coarse {
        // The store truncated to the second: the write happened in [s, s + 1).
        (s + 0.5 - mid, half + 0.5)
    } else {
        (s - mid, half)
    }
}

/// The report as lines for people.
pub(crate) fn print(r: &Report) {
    for c in &r.checks {
        println!(
            "{:<5} {}: {}",
            if c.ok { "ok" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    if let (Some(s), Some(u)) = (r.skew_s, r.skew_uncertainty_s) {
        let mark = if s.abs() > SKEW_WARNING.as_secs_f64() + u {
            "WARN"
        } else {
            "ok"
        };
        let dir = if s >= 0.0 { "ahead of" } else { "behind" };
        println!(
            "{mark:<5} clock: the storage's clock is {:.1} s {dir} this machine's (±{u:.1} s)",
            s.abs()
        );
        if mark == "WARN" {
            println!(
                "      leases and locks tolerate a skew of one lease or TTL; keep clocks in sync (NTP)"
            );
        }
    }
    println!("ok    cleaned up {} objects", r.cleaned);
}

/// The cached pass of `session`'s check, if any.
pub(crate) async fn cached(parent: &UPath) -> cloudmux::Result<bool> {
    match parent
        .join(CHECK_CACHE)?
        .read_json::<serde_json::Value>()
        .await
    {
        Ok(v) => Ok(v["v"] == 1 && v["ok"] == true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) if e.kind() == cloudmux::ErrorKind::Corrupt => Ok(false),
        Err(e) => Err(e),
    }
}

/// Records a pass of `session`'s check.
pub(crate) async fn remember(parent: &UPath, r: &Report) -> cloudmux::Result<()> {
    let body = serde_json::json!({
        "v": 1,
        "ok": true,
        "checked": rfc3339_micros(parent.clock().now()),
        "by": cloudmux::util::default_worker_id(),
        "skew_s": r.skew_s,
        "checks": r.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
    });
    match parent.join(CHECK_CACHE)?.write_json(&body).await {
        Ok(_) => Ok(()),
        // Another session's check got there first.
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_passes_and_leaves_nothing() {
        let root = UPath::parse("mem://doctor-unit/here").unwrap();
        let r = run(&root).await.unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.checks.len(), 3);
        assert_eq!(r.cleaned, 3);
        assert!(r.skew_s.unwrap().abs() < 1.0);
        assert!(root.ls().await.unwrap().is_empty());
    }

    /// A store that takes every conditional write as a plain overwrite, as
    /// some S3-compatible stores do with conditional headers.
    #[derive(Debug)]
    struct IgnoresConditions(std::sync::Arc<cloudmux::InMemory>);

    #[async_trait::async_trait]
    impl cloudmux::Store for IgnoresConditions {
        fn root_url(&self) -> String {
            self.0.root_url()
        }
        fn capabilities(&self) -> cloudmux::Capabilities {
            self.0.capabilities()
        }
        async fn get(&self, key: &str) -> cloudmux::Result<cloudmux::GetResult> {
            self.0.get(key).await
        }
        async fn head(&self, key: &str) -> cloudmux::Result<cloudmux::ObjectMeta> {
            self.0.head(key).await
        }
        async fn put(
            &self,
            key: &str,
            bytes: Bytes,
            _mode: PutMode,
        ) -> cloudmux::Result<cloudmux::PutResult> {
            self.0.put(key, bytes, PutMode::Overwrite).await
        }
        async fn delete(&self, key: &str) -> cloudmux::Result<()> {
            self.0.delete(key).await
        }
        async fn list(&self, req: cloudmux::ListRequest) -> cloudmux::Result<cloudmux::ListPage> {
            self.0.list(req).await
        }
    }

    #[tokio::test]
    async fn a_store_ignoring_conditional_writes_fails_in_one_line() {
        let store = std::sync::Arc::new(IgnoresConditions(cloudmux::InMemory::new()));
        let root = UPath::new(store, "x").unwrap();
        let r = run(&root).await.unwrap();
        assert!(!r.ok());
        let line = r.failure().unwrap();
        assert!(line.contains("ignores If-None-Match"), "{line}");
        assert!(!line.contains('\n'));
        assert!(!r.checks[1].ok, "the stale swap is not refused either");
        assert!(root.ls().await.unwrap().is_empty(), "cleaned up");
    }

    #[test]
    fn skew_from_coarse_and_fine_timestamps() {
        let t = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let (s, u) = skew(t(10_200), t(10_400), t(10_300));
        assert!(s.abs() < 1e-6 && (u - 0.1).abs() < 1e-6);
        // Whole seconds: 10 s means somewhere in [10, 11).
        let (s, u) = skew(t(10_200), t(10_400), t(10_000));
        assert!((s - 0.2).abs() < 1e-6 && (u - 0.6).abs() < 1e-6);
        let (s, _) = skew(t(100_000), t(100_000), t(40_000));
        assert!(s < -59.0);
    }
}
