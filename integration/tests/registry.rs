//! The facade's client registry against a real backend: clients outlive
//! neither the runtime that built them nor a `fork`, and a registry used
//! across both keeps working.

use std::process::Stdio;
use std::time::Duration;

use cloudmux::{Registry, Resolver};
use cloudmux_core::testkit::fresh;
use cloudmux_integration::backend::{self, Backend, Kind};
use libtest_mimic::Trial;

use crate::common::{Needs, check, plain};

const HELPER: &str = env!("CARGO_BIN_EXE_cmx-helper");

pub(crate) fn trials(kind: Kind) -> Vec<Trial> {
    vec![
        plain(
            "registry::two_runtimes_in_sequence",
            kind,
            Needs::Cloud,
            move || two_runtimes_in_sequence(kind),
        ),
        check(
            "registry::use_after_fork",
            kind,
            Needs::Cloud,
            use_after_fork,
        ),
    ]
}

/// A registry configured like the suite's backend (for S3 the endpoint and
/// region come from `CLOUDMUX_S3_*`; the others read the same environment
/// as the suite).
fn registry(kind: Kind) -> Registry {
    match kind {
        Kind::S3 => Registry::new().with_s3_config(backend::s3_config()),
        _ => Registry::new(),
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Writes through a registry on one runtime, shuts that runtime down (with a
/// connection of the client still pooled), then reads and writes through the
/// same registry on a second runtime.
fn two_runtimes_in_sequence(kind: Kind) {
    let registry = registry(kind);
    let first = current_thread();
    let url = first.block_on(async {
        let b = backend::setup().await;
        let url = fresh(&b.root, "registry").join("a.txt").unwrap().url();
        let p = registry.resolve(&url).await.unwrap();
        p.write_text("from the first runtime").await.unwrap();
        // A second request leaves a kept-alive connection in the pool.
        assert_eq!(p.read_text().await.unwrap(), "from the first runtime");
        url
    });
    assert_eq!(registry.len(), 1, "{registry:?}");
    drop(first);
    let second = current_thread();
    second.block_on(async {
        let p = registry.resolve(&url).await.unwrap();
        assert_eq!(p.read_text().await.unwrap(), "from the first runtime");
        p.overwrite_text("from the second runtime").await.unwrap();
        assert_eq!(p.read_text().await.unwrap(), "from the second runtime");
    });
    assert_eq!(
        registry.len(),
        1,
        "the stale client was replaced: {registry:?}"
    );
}

/// A helper process writes through `cloudmux::path` (the global registry),
/// forks while its runtime and its client's pooled connection are alive, and
/// its child writes and reads through the same registry and exits 0.
async fn use_after_fork(b: Backend) {
    let dir = fresh(&b.root, "fork");
    let mut cmd = tokio::process::Command::new(HELPER);
    cmd.args(["fork", &dir.url()])
        .envs(b.child_env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn the helper");
    let clock = cloudmux_core::clock::system();
    // The forked child gives up by itself after 60 s; this is the last resort.
    let out = cloudmux_core::clock::timeout(
        clock.as_ref(),
        Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the helper and its forked child finish")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fork helper failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("child read: written by the child; parent's: written by the parent"),
        "{stdout}"
    );
    let child_obj = dir.join("child.txt").unwrap();
    assert_eq!(child_obj.read_text().await.unwrap(), "written by the child");
}
