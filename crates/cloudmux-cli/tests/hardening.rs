//! The `cloudmux` command used as a hostile user would: each test is a
//! reproduction of a defect found that way.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn cloudmux(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudmux"))
        .args(args)
        .output()
        .unwrap()
}

fn cloudmux_in(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudmux"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `new` + `session` on a fresh folder: (dataset URL, mux id).
fn dataset(root: &Path, lines: &str) -> (String, String) {
    let o = cloudmux_in(&["new", root.to_str().unwrap()], lines);
    assert!(o.status.success(), "new: {}", err(&o));
    let ds = out(&o).trim().to_string();
    let o = cloudmux(&["session", &ds]);
    assert!(o.status.success(), "session: {}", err(&o));
    (ds, out(&o).trim().to_string())
}

fn numbers(n: usize) -> String {
    (0..n).map(|i| format!("{i}\n")).collect()
}

fn local(url: &str) -> &str {
    url.strip_prefix("file://").unwrap()
}

#[test]
fn numbers_are_kept_exactly_or_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = cloudmux_in(
        &["new", dir.path().to_str().unwrap()],
        "1\n2\n123456789012345678901234567890\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("line 3"), "{}", err(&o));
    assert!(
        err(&o).contains("123456789012345678901234567890"),
        "{}",
        err(&o)
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing is written for a refused input"
    );
    let (_, id) = dataset(dir.path(), "-0\n1e2\n0.1\n{\"big\":18446744073709551615}\n");
    let o = cloudmux(&["work", &id]);
    assert!(o.status.success(), "{}", err(&o));
    let mut got: Vec<String> = out(&o).lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got, ["0", "0.1", "100.0", "{\"big\":18446744073709551615}"]);
}

#[test]
fn numeric_options_are_range_checked_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (_, id) = dataset(dir.path(), &numbers(3));
    for args in [
        vec!["work", &id, "--timeout", "2e19"],
        vec!["work", &id, "--timeout", "0"],
        vec!["work", &id, "--timeout", "-1"],
        vec!["work", &id, "--timeout", "NaN"],
        vec!["work", &id, "--sleep-ms", "99999999999999999999"],
        vec!["new", "mem://x", "--range", "0..99999999999999"],
    ] {
        let o = cloudmux(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        assert!(!err(&o).contains("panicked"), "{args:?}: {}", err(&o));
    }
}

#[test]
fn every_spelling_of_a_dataset_url_names_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, id) = dataset(dir.path(), &numbers(5));
    let session = id.split_once(':').unwrap().1.split_once('@').unwrap().0;
    let path = local(&ds);
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();
    let spellings = [
        format!("cmx1:{session}@{path}"),
        format!("cmx1:{session}@{ds}/"),
        format!("cmx1:{session}@{path}/../{name}"),
    ];
    for s in &spellings {
        for cmd in ["stat", "done"] {
            let o = cloudmux(&[cmd, s]);
            assert!(
                o.status.code() == Some(0) || o.status.code() == Some(1),
                "{cmd} {s}: {}",
                err(&o)
            );
            assert!(
                !err(&o).contains("another dataset"),
                "{cmd} {s}: {}",
                err(&o)
            );
        }
    }
    // A mux id where a dataset URL belongs says so.
    let o = cloudmux(&["destroy", &id]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("this is a mux id; destroy takes a dataset URL"),
        "{}",
        err(&o)
    );
    // `done` reports its own name.
    let o = cloudmux(&["done", &format!("cmx1:nosuch@{ds}")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!err(&o).contains("stat"), "{}", err(&o));
}

#[test]
fn stray_names_are_not_counted_as_claims() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, id) = dataset(dir.path(), &numbers(100));
    let o = cloudmux(&["work", &id]);
    assert!(o.status.success());
    let sessions = Path::new(local(&ds)).join("sessions");
    let sdir = std::fs::read_dir(&sessions)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let claims = sdir.join("claims");
    std::fs::write(claims.join("+5"), "x").unwrap();
    std::fs::create_dir(claims.join("nested")).unwrap();
    std::fs::write(claims.join("nested").join("07"), "x").unwrap();
    std::fs::write(claims.join("100"), "x").unwrap();
    let o = cloudmux(&["stat", &id, "--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let st: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(st["claimed"], 100, "{st}");
    assert_eq!(st["total"], 100);
}

#[test]
fn destroy_during_a_run_stops_the_workers_and_hands_nothing_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, id) = dataset(dir.path(), &numbers(2000));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_cloudmux"))
                .args([
                    "work",
                    &id,
                    "--sleep-ms",
                    "50",
                    "--worker-id",
                    &format!("w{w}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    // Without --force, a running session keeps its dataset.
    let o = cloudmux(&["destroy", &ds]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(err(&o).contains("still running"), "{}", err(&o));
    let o = cloudmux(&["destroy", &ds, "--force"]);
    assert!(o.status.success(), "{}", err(&o));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for w in workers {
        let o = w.wait_with_output().unwrap();
        assert!(
            !o.status.success(),
            "a worker of a destroyed dataset exits non-zero"
        );
        assert!(err(&o).contains("being destroyed"), "{}", err(&o));
        for l in out(&o).lines() {
            *seen.entry(l.to_string()).or_default() += 1;
        }
    }
    assert!(
        !seen.is_empty(),
        "the workers got something before the destroy"
    );
    assert!(seen.len() < 2000, "the destroy stopped the run early");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handed out twice: {twice:?}");
    assert!(
        !Path::new(local(&ds)).exists(),
        "the dataset folder is gone"
    );
    // Nothing to destroy any more: a clear error.
    let o = cloudmux(&["destroy", &ds]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no cloudmux dataset here"), "{}", err(&o));
}

#[test]
fn an_interrupted_destroy_can_be_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, id) = dataset(dir.path(), &numbers(50));
    assert!(cloudmux(&["work", &id]).status.success());
    // A destroy killed after removing the manifest: its lock is still held.
    let path = Path::new(local(&ds));
    std::fs::remove_file(path.join("manifest.json")).unwrap();
    std::fs::write(
        path.join("destroying.lock"),
        r#"{"nonce":"n","epoch":1,"v":2,"state":"held","holder":"killed","acquired_ms":0,"renewed_ms":0,"ttl_ms":1000}"#,
    )
    .unwrap();
    let o = cloudmux(&["destroy", &ds]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!path.exists(), "the second destroy finished the job");
}

#[test]
fn destroy_never_follows_a_symlink_out_of_its_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, id) = dataset(&dir.path().join("r"), &numbers(5));
    assert!(cloudmux(&["work", &id]).status.success());
    let outside = dir.path().join("o");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, Path::new(local(&ds)).join("sessions/evil")).unwrap();
    let o = cloudmux(&["destroy", &ds]);
    // Whatever destroy says of the link, it never deletes through it.
    assert_eq!(
        std::fs::read_to_string(outside.join("f")).unwrap(),
        "x",
        "{}",
        err(&o)
    );
}

#[test]
fn an_error_is_never_read_as_a_lost_race() {
    for kind in ["file", "dangling symlink"] {
        let dir = tempfile::tempdir().unwrap();
        let (ds, id) = dataset(dir.path(), &numbers(100));
        let sessions = Path::new(local(&ds)).join("sessions");
        let sdir = std::fs::read_dir(&sessions)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let claims = sdir.join("claims");
        let _ = std::fs::remove_dir_all(&claims);
        if kind == "file" {
            std::fs::write(&claims, "not a folder").unwrap();
        } else {
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &claims).unwrap();
        }
        let o = cloudmux(&["work", &id]);
        assert_eq!(o.status.code(), Some(2), "{kind}: {}", err(&o));
        assert!(out(&o).is_empty(), "{kind}: nothing handed out");
        let o = cloudmux(&["done", &id]);
        assert_eq!(o.status.code(), Some(1), "{kind}: not done: {}", out(&o));
    }
}

#[test]
fn a_fifo_in_a_session_never_hangs_stat() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, id) = dataset(dir.path(), &numbers(20));
    assert!(cloudmux(&["work", &id]).status.success());
    let sessions = Path::new(local(&ds)).join("sessions");
    let sdir = std::fs::read_dir(&sessions)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for place in ["workers/fifo.json", "claims/fifo"] {
        let p = sdir.join(place);
        let made = Command::new("mkfifo").arg(&p).status().unwrap();
        assert!(made.success());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudmux"))
        .args(["stat", &id, "--json", "--exact"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A deadline that only turns a hang into a failure.
    let mut waited = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(waited < 600, "stat hung on a FIFO");
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    };
    let o = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", err(&o));
    let st: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(st["claimed"], 20);
}

#[test]
fn leftovers_of_killed_writers_are_reported_and_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, id) = dataset(dir.path(), &numbers(30));
    assert!(cloudmux(&["work", &id]).status.success());
    let sessions = Path::new(local(&ds)).join("sessions");
    let sdir = std::fs::read_dir(&sessions)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Temporary files left by a killed writer, two hours old.
    for name in ["claims/.cmx-tmp-41", "workers/.cmx-tmp-42"] {
        let p = sdir.join(name);
        std::fs::write(&p, vec![0u8; 1000]).unwrap();
        let ok = Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let o = cloudmux(&["stat", &id, "--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let st: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(st["stale_temporaries"], 2, "{st}");
    let o = cloudmux(&["destroy", &ds]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        !Path::new(local(&ds)).exists(),
        "nothing is left, the folder included"
    );
}

#[test]
fn an_unreachable_endpoint_fails_in_one_line() {
    let o = Command::new(env!("CARGO_BIN_EXE_cloudmux"))
        .args(["session", "s3://bucket/ds"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "not-printed")
        .env_remove("RUST_LOG")
        .env_remove("CLOUDMUX_LOG")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = err(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("could not connect"), "{e}");
    assert!(!e.contains("WARN") && !e.contains("not-printed"), "{e}");
}
