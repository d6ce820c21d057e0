//! End-to-end scenarios of the `cloudmux` command with OS processes, on any
//! backend.
//!
//! Each scenario is a function of a [`Fleet`]: the `cloudmux` binary, a
//! fresh root URL on the backend under test, and the environment its
//! processes need (credentials, emulator endpoints). This crate's tests run
//! them on the local backend (`tests/e2e.rs`). To run them on an emulator,
//! include this folder from another test crate and pass its URL and env:
//!
//! ```ignore
//! #[path = "../../crates/cloudmux-cli/tests/fleet/mod.rs"]
//! mod cli_fleet;
//! let f = cli_fleet::Fleet::new(cli_fleet::find_cloudmux(), "s3://bucket/run-1", env);
//! cli_fleet::scenarios::children_run_each_element_once(&f);
//! ```
//!
//! The including crate needs `cloudmux`, `fastrand`, `serde_json` and `tempfile`, and a built
//! `cloudmux` binary ([`find_cloudmux`]: `CLOUDMUX_BIN`, else next to the
//! test executable). Scenarios assert outcomes, never timings; their waits
//! have generous deadlines that only turn a hang into a failure.

#![allow(dead_code)]

pub(crate) mod scenarios;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The `cloudmux` binary: `CLOUDMUX_BIN`, else `target/<profile>/cloudmux`
/// next to the running test executable (`target/<profile>/deps/...`).
pub(crate) fn find_cloudmux() -> PathBuf {
    if let Some(p) = std::env::var_os("CLOUDMUX_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("cloudmux");
    assert!(
        bin.exists(),
        "no cloudmux binary at {} (build it, or set CLOUDMUX_BIN)",
        bin.display()
    );
    bin
}

/// What a scenario runs against.
pub(crate) struct Fleet {
    /// The `cloudmux` binary.
    pub(crate) bin: PathBuf,
    /// A fresh folder URL on the backend under test.
    pub(crate) root: String,
    /// Environment for every process (credentials, endpoints).
    pub(crate) env: Vec<(String, String)>,
    /// A local folder for output files, counters, joblogs.
    pub(crate) scratch: tempfile::TempDir,
    /// The shortest lease a scenario may ask for, in seconds (GCS allows one
    /// write per object per second, so leases there are at least 2 s).
    pub(crate) min_lease_s: f64,
}

impl Fleet {
    /// A fleet on the local backend: the root is a folder in the scratch dir.
    pub(crate) fn local(bin: impl Into<PathBuf>) -> Fleet {
        let scratch = tempfile::tempdir().expect("a temporary folder");
        let root = scratch.path().join("store");
        std::fs::create_dir_all(&root).expect("the store folder");
        Fleet {
            bin: bin.into(),
            root: root.to_str().expect("a UTF-8 path").to_string(),
            env: Vec::new(),
            scratch,
            min_lease_s: 0.0,
        }
    }

    /// A fleet on any backend.
    pub(crate) fn new(bin: impl Into<PathBuf>, root: &str, env: Vec<(String, String)>) -> Fleet {
        Fleet {
            bin: bin.into(),
            root: root.trim_end_matches('/').to_string(),
            env,
            scratch: tempfile::tempdir().expect("a temporary folder"),
            min_lease_s: 0.0,
        }
    }

    /// True when the root is a local folder (some checks look at files).
    pub(crate) fn is_local(&self) -> bool {
        !self.root.contains("://") || self.root.starts_with("file://")
    }

    /// A `--lease` value: `s` seconds, or [`min_lease_s`](Self::min_lease_s).
    pub(crate) fn lease(&self, s: f64) -> String {
        s.max(self.min_lease_s).to_string()
    }

    /// A file in the scratch folder.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// `root/<name>`.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.root)
    }

    /// A `cloudmux` command with the fleet's environment.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("CLOUDMUX_MUX_ID")
            .current_dir(self.scratch.path());
        c
    }

    /// Runs `cloudmux args` to the end.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cloudmux")
    }

    /// Runs `cloudmux args` with this standard input.
    pub(crate) fn run_in(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut c = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cloudmux");
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    /// Runs `cloudmux args`, which must succeed; its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "cloudmux {args:?}: {}", err(&o));
        out(&o)
    }

    /// A new dataset from JSON Lines: its URL.
    pub(crate) fn dataset(&self, lines: &str) -> String {
        let o = self.run_in(&["new", &self.root], lines);
        assert!(o.status.success(), "new: {}", err(&o));
        out(&o).trim().to_string()
    }

    /// A new session: its mux id.
    pub(crate) fn session(&self, dataset: &str, extra: &[&str]) -> String {
        let mut args = vec!["session", dataset];
        args.extend_from_slice(extra);
        self.ok(&args).trim().to_string()
    }

    /// `stat --json`.
    pub(crate) fn stat(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["stat", id, "--json"])).expect("stat --json is JSON")
    }

    /// `inspect --json`.
    pub(crate) fn inspect(&self, id: &str, index: usize) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", id, &index.to_string(), "--json"]))
            .expect("inspect --json is JSON")
    }

    /// Starts `cloudmux args` with standard output to `stdout_file` (in the
    /// scratch folder) and standard error captured.
    pub(crate) fn spawn(&self, args: &[&str], stdout_file: &str, env: &[(&str, &str)]) -> Proc {
        let out = std::fs::File::create(self.file(stdout_file)).expect("an output file");
        let child = self
            .cmd(args)
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cloudmux");
        Proc {
            child: Some(child),
            stdout_file: self.file(stdout_file),
        }
    }
}

/// A running process, killed if the test ends first.
pub(crate) struct Proc {
    child: Option<Child>,
    /// Where its standard output goes.
    pub(crate) stdout_file: PathBuf,
}

/// How a [`Proc`] ended.
pub(crate) struct Ended {
    /// Its exit code (`None` when killed by a signal).
    pub(crate) code: Option<i32>,
    /// Its standard error.
    pub(crate) stderr: String,
    /// Its standard output (from the file).
    pub(crate) stdout: String,
}

impl Proc {
    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal with kill(1): `TERM`, `KILL`, `STOP`, `CONT`, `INT`.
    pub(crate) fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{name} {}", self.pid());
    }

    /// True while it runs.
    pub(crate) fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits for it to end, at most `deadline` (then kills it and panics).
    pub(crate) fn wait(mut self, what: &str, deadline: Duration) -> Ended {
        let mut child = self.child.take().expect("running");
        let start = cloudmux::clock::Stopwatch::system();
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut stderr);
                }
                let stdout = std::fs::read_to_string(&self.stdout_file).unwrap_or_default();
                return Ended {
                    code: st.code(),
                    stderr,
                    stdout,
                };
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: still running after {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Standard output of a finished command.
pub(crate) fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error of a finished command.
pub(crate) fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `cond` every 20 ms until it holds; panics after `deadline`.
pub(crate) fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = cloudmux::clock::Stopwatch::system();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A deadline for waits that only turns a hang into a failure.
pub(crate) const LONG: Duration = Duration::from_secs(90);
