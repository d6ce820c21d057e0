//! The fleet scenarios (`tests/fleet/`) on the local backend, with OS
//! processes; plus the help, completions and the `examples/` for loop.

mod fleet;

use fleet::{Fleet, scenarios};

fn local() -> Fleet {
    Fleet::local(env!("CARGO_BIN_EXE_cloudmux"))
}

#[test]
fn children_run_each_element_once() {
    scenarios::children_run_each_element_once(&local());
}

#[test]
fn failures_retries_and_joblog() {
    scenarios::failures_retries_and_joblog(&local());
}

#[test]
fn default_session_failures_and_timeout() {
    scenarios::default_session_failures_and_timeout(&local());
}

#[test]
fn sigterm_releases_the_running_element() {
    scenarios::sigterm_releases_the_running_element(&local());
}

#[test]
fn a_stopped_worker_leaves_its_summary() {
    scenarios::a_stopped_worker_leaves_its_summary(&local());
}

#[test]
fn kill9_workers_lose_nothing() {
    scenarios::kill9_workers_lose_nothing(&local());
}

#[test]
fn sigstop_past_the_lease_is_fenced() {
    scenarios::sigstop_past_the_lease_is_fenced(&local());
}

#[test]
fn lock_guards_a_counter() {
    scenarios::lock_guards_a_counter(&local());
}

#[test]
fn lock_outlives_its_ttl() {
    scenarios::lock_outlives_its_ttl(&local());
}

#[test]
fn a_lost_lock_stops_its_command() {
    scenarios::a_lost_lock_stops_its_command(&local());
}

#[test]
fn lock_timeout_is_75() {
    scenarios::lock_timeout_is_75(&local());
}

#[test]
fn doctor_passes_on_local_and_memory() {
    let f = local();
    scenarios::doctor_passes(&f);
    let m = Fleet::new(env!("CARGO_BIN_EXE_cloudmux"), "mem://doctor-e2e/x", vec![]);
    scenarios::doctor_passes(&m);
}

#[test]
fn stat_watch_follows_a_run() {
    scenarios::stat_watch_follows_a_run(&local());
}

#[test]
fn every_help_has_examples_and_completions_generate() {
    let f = local();
    let top = f.ok(&["--help"]);
    for want in ["Exit status:", "75", "76", "Examples:", "RUST_LOG"] {
        assert!(top.contains(want), "--help lacks {want}: {top}");
    }
    for cmd in [
        "new",
        "session",
        "work",
        "stat",
        "retry-failed",
        "inspect",
        "lock",
        "lock-info",
        "force-unlock",
        "doctor",
        "completions",
        "demo",
    ] {
        let h = f.ok(&[cmd, "--help"]);
        assert!(h.contains("Example"), "{cmd} --help has no example: {h}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let s = f.ok(&["completions", shell]);
        assert!(
            s.contains("cloudmux") && s.contains("force-unlock"),
            "{shell}: {s}"
        );
    }
    // Usage errors: status 2, one clear line.
    let o = f.run(&["work", "cmx1:s@mem://x", "--jobs", "0", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    let o = f.run(&["session", "mem://x/y", "--max-attempts", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(fleet::err(&o).contains("--lease"), "{}", fleet::err(&o));
}

#[test]
fn the_for_loop_example_runs() {
    let f = local();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/local-for-loop/run.sh");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_cloudmux"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new("bash")
        .arg(&script)
        .env("PATH", path)
        .env("ROOT", &f.root)
        .env("WORKERS", "4")
        .env("ELEMENTS", "40")
        .current_dir(f.scratch.path())
        .output()
        .unwrap();
    let text = fleet::out(&o);
    assert!(o.status.success(), "{text}{}", fleet::err(&o));
    assert!(text.contains("done: true"), "{text}");
    let results: Vec<_> = std::fs::read_dir(f.scratch.path().join("results"))
        .unwrap()
        .collect();
    assert_eq!(results.len(), 40, "one result file per element");
}
