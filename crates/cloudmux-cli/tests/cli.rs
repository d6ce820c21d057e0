//! End-to-end tests of the `cloudmux` command.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn cloudmux(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudmux"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn demo_hands_out_each_element_once_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let o = cloudmux(&["demo", "--root", root, "--sleep-ms", "20-40"]);
    assert!(o.status.success(), "demo failed: {}", stderr(&o));
    let out = stdout(&o);
    let mut per_element: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        if let Some((el, worker)) = line.split_once(" done in ") {
            per_element
                .entry(el.parse().unwrap())
                .or_default()
                .push(worker.to_string());
        }
    }
    assert_eq!(
        per_element.keys().copied().collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    assert!(
        per_element.values().all(|w| w.len() == 1),
        "an element was done twice:\n{out}"
    );
    let workers: BTreeSet<&String> = per_element.values().flatten().collect();
    assert!(
        workers.len() > 1 && workers.len() <= 5,
        "work spread over {} processes",
        workers.len()
    );
    let pids: BTreeSet<&str> = workers
        .iter()
        .map(|w| w.split('/').nth(1).unwrap())
        .collect();
    assert_eq!(
        pids.len(),
        workers.len(),
        "worker ids name distinct processes"
    );
    assert_eq!(out.lines().last(), Some("done: true"));
    // The demo destroys its data.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "demo left {left:?}");
}

#[test]
fn new_session_work_stat_done_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("items.jsonl");
    let mut f = std::fs::File::create(&data).unwrap();
    for i in 0..30 {
        writeln!(f, "{{\"x\": {i}, \"name\": \"p{i}\"}}").unwrap();
    }
    writeln!(f).unwrap();
    drop(f);
    let root = dir.path().join("store");
    let o = cloudmux(&[
        "new",
        root.to_str().unwrap(),
        "--tag",
        "grid",
        "--from",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = stdout(&o).trim().to_string();
    assert!(ds.starts_with("file://") && ds.ends_with("-grid"), "{ds}");

    let o = cloudmux(&["session", &ds]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert!(id.starts_with("cmx1:"), "{id}");

    let o = cloudmux(&["done", &id]);
    assert_eq!(o.status.code(), Some(1), "not done before any work");

    // Two workers in parallel through the command.
    let spawn = |w: &str| {
        Command::new(env!("CARGO_BIN_EXE_cloudmux"))
            .args(["work", &id, "--worker-id", w])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("alpha"), spawn("beta"));
    let mut xs = Vec::new();
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            xs.push(v["x"].as_u64().unwrap());
        }
    }
    xs.sort();
    assert_eq!(xs, (0..30).collect::<Vec<_>>());

    let o = cloudmux(&["done", &id]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "done: true");

    let o = cloudmux(&["stat", &id, "--json", "--exact"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["total"], 30);
    assert_eq!(st["claimed"], 30);
    let per: u64 = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["claimed"].as_u64().unwrap())
        .sum();
    assert_eq!(per, 30);
    let o = cloudmux(&["stat", &id]);
    assert!(stdout(&o).contains("claimed   30 / 30"), "{}", stdout(&o));

    let o = cloudmux(&["destroy", &ds]);
    assert!(o.status.success());
    let o = cloudmux(&["stat", &id]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let bad_json = dir.path().join("bad.jsonl");
    std::fs::write(&bad_json, "1\n{oops\n").unwrap();
    let root = dir.path().join("store");
    let root = root.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["work", "not-a-mux-id"], "not a cloudmux mux id"),
        (vec!["stat", "cmx7:x@mem://a"], "unsupported mux id version"),
        (vec!["work", "cmx1:s@ftp://host/x"], "scheme 'ftp'"),
        (
            vec!["session", "/nonexistent/dataset"],
            "manifest.json is missing",
        ),
        (
            vec!["new", root, "--from", empty.to_str().unwrap()],
            "no elements",
        ),
        (
            vec!["new", root, "--from", bad_json.to_str().unwrap()],
            "line 2 is not JSON",
        ),
        (
            vec!["new", "mem://x/../y", "--from", empty.to_str().unwrap()],
            "leave their root",
        ),
        (vec!["demo", "--sleep-ms", "9-1"], "MIN is larger than MAX"),
    ];
    for (args, want) in cases {
        let o = cloudmux(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}: {err}"
        );
        assert!(err.trim().lines().count() <= 6, "{args:?}: too long: {err}");
    }
}

/// Elements printed by one `cloudmux work` run, in order.
fn worked(o: &Output) -> Vec<u64> {
    assert!(o.status.success(), "work failed: {}", stderr(o));
    stdout(o)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[test]
fn shard_hints_set_where_a_worker_starts_and_never_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n.jsonl");
    let n = 2000u64;
    let lines: String = (0..n).map(|i| format!("{i}\n")).collect();
    std::fs::write(&data, lines).unwrap();
    let root = dir.path().join("store");
    let o = cloudmux(&[
        "new",
        root.to_str().unwrap(),
        "--from",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = stdout(&o).trim().to_string();
    let session = || {
        let o = cloudmux(&["session", &ds]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let work = |id: &str, args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cloudmux"));
        c.args(["work", id]).args(args);
        for v in [
            "CLOUDMUX_SHARD",
            "CLOUDMUX_SHARD_COUNT",
            "CLOUD_RUN_TASK_INDEX",
            "CLOUD_RUN_TASK_COUNT",
            "AWS_BATCH_JOB_ARRAY_INDEX",
            "JOB_COMPLETION_INDEX",
        ] {
            c.env_remove(v);
        }
        c.envs(env.iter().copied());
        c
    };

    // Alone in a session, worker 3 of 4 starts at 3/4 of the range and
    // walks on round the circle: the order is exactly 1500..2000, 0..1500.
    let id = session();
    let got = worked(&work(&id, &["--shard", "3/4"], &[]).output().unwrap());
    let want: Vec<u64> = (1500..n).chain(0..1500).collect();
    assert_eq!(got, want);
    // Cloud Run's task index and count are read by themselves.
    let id = session();
    let env = [("CLOUD_RUN_TASK_INDEX", "1"), ("CLOUD_RUN_TASK_COUNT", "4")];
    let got = worked(&work(&id, &[], &env).output().unwrap());
    assert_eq!(got[0], 500);
    // A batch index counts with CLOUDMUX_SHARD_COUNT; the walk still goes
    // round to every element once.
    let id = session();
    let env = [
        ("AWS_BATCH_JOB_ARRAY_INDEX", "1"),
        ("CLOUDMUX_SHARD_COUNT", "8"),
    ];
    let got = worked(&work(&id, &[], &env).output().unwrap());
    assert_eq!(got[0], 250);
    let mut all = got.clone();
    all.sort();
    assert_eq!(all, (0..n).collect::<Vec<_>>());

    // A fleet mixing right, wrong and absent hints gives each element once.
    let id = session();
    let mut kids = Vec::new();
    for i in 0..4 {
        let s = format!("{i}/4");
        kids.push(
            work(&id, &["--shard", &s], &[])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for env in [
        vec![("CLOUDMUX_SHARD", "0/1")],
        vec![("CLOUDMUX_SHARD", "2/3")],
        vec![("CLOUD_RUN_TASK_INDEX", "5"), ("CLOUD_RUN_TASK_COUNT", "6")],
        vec![],
    ] {
        kids.push(work(&id, &[], &env).stdout(Stdio::piped()).spawn().unwrap());
    }
    let mut all = Vec::new();
    for k in kids {
        all.extend(worked(&k.wait_with_output().unwrap()));
    }
    all.sort();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "each element exactly once");

    // A malformed hint given on purpose is a usage error, not ignored.
    let o = work(&id, &[], &[("CLOUDMUX_SHARD", "4/4")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("index must be below the count"),
        "{}",
        stderr(&o)
    );
}
