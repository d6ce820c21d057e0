//! Races between OS processes, from a test binary that runs itself again.
//!
//! The parent test calls [`spawn_children`]; the test binary's `child` test
//! (which returns at once unless `CMX_CHILD` is set) reads [`role`] and does
//! that role's work, printing `RESULT <line>` for the parent to check.
//!
//! ```no_run
//! // In the test binary, beside the parent test:
//! fn child() {
//!     let Some((role, arg, index)) = cloudmux_core::testkit::process::role() else {
//!         return;
//!     };
//!     println!("RESULT {index} {role} {arg}");
//! }
//! # child();
//! ```

use std::process::{Command, Stdio};

/// Runs this test binary's `child` test in `procs` processes at once, with
/// `CMX_CHILD=role`, `CMX_ARG=arg` and `CMX_INDEX=0..procs`, and returns
/// every `RESULT` line they printed (the text after the marker).
///
/// # Panics
/// When a child cannot be started or fails.
pub fn spawn_children(procs: usize, role: &str, arg: &str) -> Vec<String> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let children: Vec<_> = (0..procs)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "child", "--nocapture", "--test-threads=1"])
                .env("CMX_CHILD", role)
                .env("CMX_ARG", arg)
                .env("CMX_INDEX", i.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start a child process")
        })
        .collect();
    let mut lines = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("wait for a child process");
        assert!(out.status.success(), "a child process failed");
        let text = String::from_utf8_lossy(&out.stdout);
        // libtest prints "test child ... " without a newline before the
        // child's own output, so a marker may start mid-line.
        lines.extend(
            text.lines()
                .filter_map(|l| l.find("RESULT ").map(|i| l[i + 7..].to_string())),
        );
    }
    lines
}

/// In a child started by [`spawn_children`]: its role, argument and index;
/// `None` in an ordinary test run.
///
/// # Panics
/// When `CMX_CHILD` is set but the other variables are missing or bad.
pub fn role() -> Option<(String, String, usize)> {
    let role = std::env::var("CMX_CHILD").ok()?;
    let arg = std::env::var("CMX_ARG").expect("CMX_ARG beside CMX_CHILD");
    let index = std::env::var("CMX_INDEX")
        .expect("CMX_INDEX beside CMX_CHILD")
        .parse()
        .expect("CMX_INDEX is a number");
    Some((role, arg, index))
}
