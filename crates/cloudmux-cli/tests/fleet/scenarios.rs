//! The scenarios: each takes a [`Fleet`] and asserts outcomes only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Fleet, LONG, err, out, wait_until};

/// The elements of [`children_run_each_element_once`]: objects with
/// escapes and non-ASCII text, plain strings, numbers.
fn mixed_element(i: usize) -> Value {
    match i % 3 {
        0 => json!({
            "i": i,
            "s": "é \"quoted\" back\\slash\ttab\nline",
            "n": [1, 2.5, null, true, -7],
            "u": "日本語 ☃",
        }),
        1 => json!(format!("str-{i} with spaces & $dollar 'quote'")),
        _ => json!(i as f64 + 0.25),
    }
}

/// 500 JSON elements, 8 `cloudmux work -- CMD` processes (two of them with
/// `--jobs 3`): every element is run exactly once by the child commands,
/// with its JSON intact in `CLOUDMUX_ELEMENT` and `{}` replaced by it.
pub(crate) fn children_run_each_element_once(f: &Fleet) {
    let n = 500;
    let lines: String = (0..n).map(|i| format!("{}\n", mixed_element(i))).collect();
    let ds = f.dataset(&lines);
    let id = f.session(&ds, &[]);
    // One line per run: index, `{}`, CLOUDMUX_ELEMENT, tab-separated (JSON
    // escapes tabs, and the string elements have none).
    let script = r#"printf '%s\t%s\t%s\n' "$CLOUDMUX_INDEX" "$1" "$CLOUDMUX_ELEMENT" >> "$OUT""#;
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let jobs = if w < 2 { "3" } else { "1" };
            let out_file = f.file(&format!("runs-{w}.tsv"));
            let args = [
                "work", &id, "--jobs", jobs, "--", "sh", "-c", script, "sh", "{}",
            ];
            f.spawn(
                &args,
                &format!("stdout-{w}"),
                &[("OUT", out_file.to_str().unwrap())],
            )
        })
        .collect();
    for (w, p) in workers.into_iter().enumerate() {
        let e = p.wait("worker", LONG);
        assert_eq!(e.code, Some(0), "worker {w}: {}", e.stderr);
    }
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for w in 0..8 {
        let text = std::fs::read_to_string(f.file(&format!("runs-{w}.tsv"))).unwrap_or_default();
        for line in text.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "a run's line: {line:?}");
            let i: usize = cols[0].parse().unwrap();
            *seen.entry(i).or_default() += 1;
            let want = mixed_element(i);
            let got: Value = serde_json::from_str(cols[2]).unwrap();
            assert_eq!(got, want, "CLOUDMUX_ELEMENT of element {i}");
            match &want {
                Value::String(s) => assert_eq!(cols[1], s, "{{}} of element {i}"),
                other => assert_eq!(
                    serde_json::from_str::<Value>(cols[1]).unwrap(),
                    *other,
                    "{{}} of element {i}"
                ),
            }
        }
    }
    assert_eq!(seen.len(), n, "every element ran");
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "run more than once: {twice:?}");
    assert_eq!(f.run(&["done", &id]).status.code(), Some(0));
}

/// A leased session: a command failing on some elements is retried up to
/// `--max-attempts`, then failed (listed by `stat --json`, workers exit 1);
/// `--no-retry-exit` fails at once; `--joblog` lines parse and count;
/// `retry-failed` makes the failed ones run again.
pub(crate) fn failures_retries_and_joblog(f: &Fleet) {
    let n = 60;
    let ds = f.dataset(&(0..n).map(|i| format!("{i}\n")).collect::<String>());
    let id = f.session(&ds, &["--lease", &f.lease(10.0), "--max-attempts", "2"]);
    let log = f.file("jobs.tsv");
    let script = r#"case $((CLOUDMUX_INDEX % 10)) in 3) exit 1;; 7) exit 42;; esac"#;
    let workers: Vec<_> = (0..3)
        .map(|w| {
            f.spawn(
                &[
                    "work",
                    &id,
                    "--no-retry-exit",
                    "42",
                    "--joblog",
                    log.to_str().unwrap(),
                    "--",
                    "sh",
                    "-c",
                    script,
                ],
                &format!("w{w}"),
                &[],
            )
        })
        .collect();
    let mut codes = Vec::new();
    let mut stderr = String::new();
    for p in workers {
        let e = p.wait("worker", LONG);
        codes.push(e.code);
        stderr.push_str(&e.stderr);
    }
    assert!(
        codes.iter().all(|c| *c == Some(0) || *c == Some(1)) && codes.contains(&Some(1)),
        "exit statuses {codes:?}: {stderr}"
    );
    assert!(stderr.contains("exit status 1"), "{stderr}");
    assert!(
        stderr.contains("did not succeed"),
        "the count is on stderr: {stderr}"
    );
    let st = f.stat(&id);
    assert_eq!(st["completed"], 48, "{st}");
    assert_eq!(st["failed"], 12, "{st}");
    let failed = st["failed_elements"].as_array().unwrap();
    assert_eq!(failed.len(), 12);
    for fe in failed {
        let i = fe["index"].as_u64().unwrap();
        let attempts = fe["attempts"].as_array().unwrap();
        match i % 10 {
            3 => {
                assert_eq!(attempts.len(), 2, "retried up to max-attempts: {fe}");
                assert!(attempts.iter().all(|a| a["reason"] == "exit status 1"));
            }
            7 => {
                assert_eq!(attempts.len(), 1, "--no-retry-exit fails at once: {fe}");
                assert_eq!(attempts[0]["reason"], "exit status 42");
            }
            _ => panic!("element {i} should not have failed: {fe}"),
        }
    }
    // The joblog: a header, then one line per run in GNU parallel's columns.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\tIndex\tAttempt"
        )
    );
    let mut by_exit: BTreeMap<i64, usize> = BTreeMap::new();
    let mut runs: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for line in lines {
        let c: Vec<&str> = line.split('\t').collect();
        assert_eq!(c.len(), 11, "{line:?}");
        c[0].parse::<u64>().expect("Seq");
        assert!(
            c[2].parse::<f64>().unwrap() > 1.0e9,
            "Starttime in epoch seconds"
        );
        assert!(c[3].parse::<f64>().unwrap() >= 0.0, "JobRuntime");
        assert_eq!((c[4], c[5], c[7]), ("0", "0", "0"));
        assert!(c[8].starts_with("sh -c "), "Command: {}", c[8]);
        *by_exit.entry(c[6].parse().unwrap()).or_default() += 1;
        runs.entry(c[9].parse().unwrap())
            .or_default()
            .push(c[10].parse().unwrap());
    }
    assert_eq!(by_exit, BTreeMap::from([(0, 48), (1, 12), (42, 6)]));
    assert_eq!(runs.len(), n);
    for (i, mut a) in runs {
        a.sort();
        let want: Vec<u64> = if i % 10 == 3 { vec![1, 2] } else { vec![1] };
        assert_eq!(a, want, "attempts of element {i}");
    }
    // retry-failed: the 12 run again, and now succeed.
    let said = f.ok(&["retry-failed", &id]);
    assert!(said.starts_with("12 "), "{said}");
    assert_eq!(f.run(&["done", &id]).status.code(), Some(1));
    let again = f
        .spawn(&["work", &id, "--", "true"], "again", &[])
        .wait("retry", LONG);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let st = f.stat(&id);
    assert_eq!(
        (st["completed"].as_u64(), st["failed"].as_u64()),
        (Some(60), Some(0)),
        "{st}"
    );
    assert_eq!(f.run(&["done", &id]).status.code(), Some(0));
}

/// A default session: failures are recorded so that `stat --json` lists
/// them, the work goes on, the worker exits 1; `--timeout-per-element`
/// kills a command that runs too long; `retry-failed` says it needs a
/// leased session.
pub(crate) fn default_session_failures_and_timeout(f: &Fleet) {
    let ds = f.dataset(&(0..20).map(|i| format!("{i}\n")).collect::<String>());
    let id = f.session(&ds, &[]);
    let script = r#"[ "$CLOUDMUX_INDEX" = 7 ] && exec sleep 60; [ $((CLOUDMUX_INDEX % 5)) != 0 ]"#;
    let e = f
        .spawn(
            &[
                "work",
                &id,
                "--jobs",
                "2",
                "--timeout-per-element",
                "1",
                "--",
                "sh",
                "-c",
                script,
            ],
            "w",
            &[],
        )
        .wait("worker", LONG);
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(
        e.stderr
            .contains("5 of this worker's 20 runs did not succeed"),
        "{}",
        e.stderr
    );
    let st = f.stat(&id);
    assert_eq!(st["claimed"], 20);
    assert_eq!(st["failed"], 5, "{st}");
    let mut reasons: BTreeMap<u64, String> = BTreeMap::new();
    for fe in st["failed_elements"].as_array().unwrap() {
        reasons.insert(
            fe["index"].as_u64().unwrap(),
            fe["attempts"][0]["reason"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(
        reasons.keys().copied().collect::<Vec<_>>(),
        [0, 5, 7, 10, 15]
    );
    assert!(reasons[&7].contains("timed out after 1 s"), "{reasons:?}");
    assert_eq!(reasons[&5], "exit status 1");
    let o = f.run(&["retry-failed", &id]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("not leased"), "{}", err(&o));
}

/// SIGTERM to a worker of a leased session: its running element is
/// released at once (the claim's history says `released`) and completed by
/// another worker long before the 60 s lease could have expired.
pub(crate) fn sigterm_releases_the_running_element(f: &Fleet) {
    let ds = f.dataset("\"a\"\n\"b\"\n\"c\"\n");
    let id = f.session(&ds, &["--lease", &f.lease(60.0)]);
    let started = f.file("started");
    let slow = format!(
        "echo \"$CLOUDMUX_INDEX\" > '{}'; exec sleep 60",
        started.display()
    );
    let a = f.spawn(
        &["work", &id, "--worker-id", "slow", "--", "sh", "-c", &slow],
        "a",
        &[],
    );
    wait_until("the slow worker starts its command", LONG, || {
        std::fs::read_to_string(&started).is_ok_and(|s| s.ends_with('\n'))
    });
    let index: usize = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    a.signal("TERM");
    let ea = a.wait("the stopped worker", LONG);
    assert_eq!(ea.code, Some(143), "{}", ea.stderr);
    assert!(ea.stderr.contains("given back"), "{}", ea.stderr);
    let b = f
        .spawn(
            &["work", &id, "--worker-id", "fast", "--", "true"],
            "b",
            &[],
        )
        .wait("the other worker", Duration::from_secs(45));
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    let c = f.inspect(&id, index);
    assert_eq!(c["state"], "done", "{c}");
    assert_eq!(c["worker"], "fast", "{c}");
    assert_eq!(c["attempt"], 2, "{c}");
    assert_eq!(c["history"][0]["outcome"], "released", "{c}");
    assert_eq!(c["history"][0]["worker"], "slow", "{c}");
    assert_eq!(f.stat(&id)["completed"], 3);
}

/// The leases issue's kill -9 test: 8 workers on 400 elements of about
/// 50 ms, three killed with SIGKILL at random moments and replaced. Every
/// element ends completed; the only elements processed twice are those a
/// killed worker held (its last line).
pub(crate) fn kill9_workers_lose_nothing(f: &Fleet) {
    let n = 400;
    let ds = f.dataset(&(0..n).map(|i| format!("{i}\n")).collect::<String>());
    let id = f.session(&ds, &["--lease", &f.lease(2.0)]);
    let args = ["work", id.as_str(), "--sleep-ms", "50"];
    let mut workers: Vec<(String, super::Proc)> = (0..8)
        .map(|w| {
            let name = format!("w{w}");
            let p = f.spawn(&args, &name, &[]);
            (name, p)
        })
        .collect();
    let mut killed: Vec<String> = Vec::new();
    let mut rng = fastrand::Rng::new();
    for k in 0..3 {
        std::thread::sleep(Duration::from_millis(rng.u64(200..900)));
        let victim = rng.usize(..workers.len());
        let (name, mut p) = workers.remove(victim);
        if p.running() {
            p.signal("KILL");
            let _ = p.wait("a killed worker", LONG);
            killed.push(name);
        } else {
            workers.push((name, p));
        }
        let name = format!("r{k}");
        let p = f.spawn(&args, &name, &[]);
        workers.push((name, p));
    }
    let mut outputs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (name, p) in workers {
        let e = p.wait("a worker", LONG);
        assert_eq!(e.code, Some(0), "{name}: {}", e.stderr);
        outputs.insert(name, e.stdout.lines().map(|l| l.parse().unwrap()).collect());
    }
    let mut held_by_killed = BTreeSet::new();
    for name in &killed {
        let text = std::fs::read_to_string(f.file(name)).unwrap();
        let lines: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
        if let Some(last) = lines.last() {
            held_by_killed.insert(*last);
        }
        outputs.insert(name.clone(), lines);
    }
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for v in outputs.values().flatten() {
        *seen.entry(*v).or_default() += 1;
    }
    assert_eq!(seen.len(), n, "every element was processed");
    for (v, c) in &seen {
        if *c > 1 {
            assert!(
                held_by_killed.contains(v),
                "element {v} processed {c} times but no killed worker held it (killed: {killed:?}, held {held_by_killed:?})"
            );
            assert!(*c <= 1 + killed.len());
        }
    }
    assert!(
        !killed.is_empty(),
        "at least one worker was killed while running"
    );
    let o = f.run(&["done", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let st = f.stat(&id);
    assert_eq!(st["completed"], n, "{st}");
    assert_eq!(st["failed"], 0, "{st}");
}

/// The leases issue's SIGSTOP test: a worker stopped past its lease has its
/// element reclaimed and completed by another; continued, its
/// acknowledgement is refused (stderr says so, exit 1), and the element is
/// completed exactly once.
pub(crate) fn sigstop_past_the_lease_is_fenced(f: &Fleet) {
    let n = 5;
    let ds = f.dataset(&(0..n).map(|i| format!("{i}\n")).collect::<String>());
    let id = f.session(&ds, &["--lease", &f.lease(1.0)]);
    let a = f.spawn(
        &["work", &id, "--worker-id", "stopped", "--sleep-ms", "3000"],
        "a",
        &[],
    );
    let a_out = f.file("a");
    wait_until("the first worker obtains an element", LONG, || {
        std::fs::read_to_string(&a_out).is_ok_and(|s| s.ends_with('\n'))
    });
    a.signal("STOP");
    let held: usize = std::fs::read_to_string(&a_out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let b = f
        .spawn(&["work", &id, "--worker-id", "other"], "b", &[])
        .wait("the other worker", LONG);
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    let mut got: Vec<usize> = b.stdout.lines().map(|l| l.parse().unwrap()).collect();
    got.sort();
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "the other did all, the reclaimed one too"
    );
    a.signal("CONT");
    let ea = a.wait("the continued worker", LONG);
    assert_eq!(ea.code, Some(1), "{}", ea.stderr);
    assert!(
        ea.stderr.contains("acknowledgement refused"),
        "says its acknowledgement was refused: {}",
        ea.stderr
    );
    let c = f.inspect(&id, held);
    assert_eq!(c["state"], "done", "{c}");
    assert_eq!(c["worker"], "other", "{c}");
    assert_eq!(c["attempt"], 2, "{c}");
    assert_eq!(c["history"][0]["outcome"], "expired", "{c}");
    let st = f.stat(&id);
    assert_eq!(st["completed"], n, "completed exactly once each: {st}");
}

/// 4 concurrent `cloudmux lock` loops guard a non-atomic counter file
/// (read, increment, write in `sh -c`), 25 increments each: exactly 100.
pub(crate) fn lock_guards_a_counter(f: &Fleet) {
    let counter = f.file("counter");
    std::fs::write(&counter, "0\n").unwrap();
    let lock = f.url("counter");
    let script = format!(
        "n=$(cat '{c}'); sleep 0.01; echo $((n + 1)) > '{c}'",
        c = counter.display()
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    let o = f.run(&["lock", &lock, "--timeout", "60", "--", "sh", "-c", &script]);
                    assert!(o.status.success(), "{}", err(&o));
                }
            });
        }
    });
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "100");
    let info: Value = serde_json::from_str(&f.ok(&["lock-info", &lock, "--json"])).unwrap();
    assert_eq!(info["state"], "free");
    assert_eq!(info["token"], 100, "one acquisition each: {info}");
}

/// A `lock` whose command outlives the TTL keeps the lock (a contender
/// gives up with status 75, naming the holder and how to force it);
/// `force-unlock` with a wrong token changes nothing; the lock is released
/// when the command exits.
pub(crate) fn lock_outlives_its_ttl(f: &Fleet) {
    let lock = f.url("resource");
    let token_file = f.file("token");
    let release = f.file("release");
    let script = format!(
        "echo $CLOUDMUX_FENCING_TOKEN > '{t}'; while [ ! -e '{r}' ]; do sleep 0.05; done",
        t = token_file.display(),
        r = release.display()
    );
    let holder = f.spawn(
        &["lock", &lock, "--ttl", "1", "--", "sh", "-c", &script],
        "holder",
        &[],
    );
    wait_until("the holder runs its command", LONG, || {
        std::fs::read_to_string(&token_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    // Past twice the TTL, the holder still has it.
    std::thread::sleep(Duration::from_millis(2500));
    let o = f.run(&["lock", &lock, "--timeout", "1.5", "--", "true"]);
    assert_eq!(o.status.code(), Some(75), "{}", err(&o));
    let line = err(&o);
    assert_eq!(line.trim().lines().count(), 1, "one line: {line}");
    assert!(
        line.contains("is locked by") && line.contains(" since ") && line.contains(" until "),
        "{line}"
    );
    assert!(
        line.contains("lock-info") && line.contains("force-unlock"),
        "{line}"
    );
    let info = |f: &Fleet| -> Value {
        serde_json::from_str(&f.ok(&["lock-info", &lock, "--json"])).unwrap()
    };
    let before = info(f);
    assert_eq!(before["state"], "held");
    assert_eq!(before["token"].to_string(), token);
    let wrong = (token.parse::<u64>().unwrap() + 5).to_string();
    let o = f.run(&["force-unlock", &lock, "--token", &wrong]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("nothing changed"), "{}", err(&o));
    let after = info(f);
    for k in ["state", "token", "holder", "acquired"] {
        assert_eq!(before[k], after[k], "{k} after a wrong force-unlock");
    }
    std::fs::write(&release, "").unwrap();
    let e = holder.wait("the holder", LONG);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert_eq!(info(f)["state"], "free");
}

/// A lock forced free while its command runs: the command gets SIGTERM and
/// `lock` exits 76, saying the lock was lost.
pub(crate) fn a_lost_lock_stops_its_command(f: &Fleet) {
    let lock = f.url("lost");
    let token_file = f.file("lost-token");
    let got_term = f.file("got-term");
    let script = format!(
        "trap 'echo term > \"{g}\"; exit 9' TERM; echo $CLOUDMUX_FENCING_TOKEN > '{t}'; while true; do sleep 0.05; done",
        g = got_term.display(),
        t = token_file.display()
    );
    let holder = f.spawn(
        &["lock", &lock, "--ttl", "1", "--", "sh", "-c", &script],
        "lost-holder",
        &[],
    );
    wait_until("the holder runs its command", LONG, || {
        std::fs::read_to_string(&token_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    f.ok(&["force-unlock", &lock, "--token", &token]);
    let e = holder.wait("the holder", LONG);
    assert_eq!(e.code, Some(76), "{}", e.stderr);
    assert!(e.stderr.contains("was lost"), "{}", e.stderr);
    assert!(got_term.exists(), "the command got SIGTERM");
}

/// `lock --timeout 0` on a held lock: one attempt, status 75.
pub(crate) fn lock_timeout_is_75(f: &Fleet) {
    let lock = f.url("busy");
    let flag = f.file("busy-running");
    let script = format!("touch '{}'; sleep 30", flag.display());
    let _holder = f.spawn(&["lock", &lock, "--", "sh", "-c", &script], "busy", &[]);
    wait_until("the holder runs", LONG, || flag.exists());
    let o = f.run(&["lock", &lock, "--timeout", "0", "--", "true"]);
    assert_eq!(o.status.code(), Some(75), "{}", err(&o));
}

/// `doctor` passes and cleans up after itself.
pub(crate) fn doctor_passes(f: &Fleet) {
    let o = f.run(&["doctor", &f.root]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let text = out(&o);
    for check in [
        "create-if-absent",
        "compare-and-swap",
        "ordered listing",
        "clock",
    ] {
        assert!(text.contains(check), "{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    let v: Value = serde_json::from_str(&f.ok(&["doctor", &f.root, "--json"])).unwrap();
    assert_eq!(v["checks"].as_array().unwrap().len(), 3);
    assert!(v["skew_s"].as_f64().unwrap().abs() < 60.0, "{v}");
    if f.is_local() {
        let left: Vec<_> = std::fs::read_dir(&f.root).unwrap().collect();
        assert!(left.is_empty(), "doctor left {left:?}");
    }
}

/// `stat --watch --json` prints several objects during a run and exits 0
/// when the session is done.
pub(crate) fn stat_watch_follows_a_run(f: &Fleet) {
    let n = 240;
    let ds = f.dataset(&(0..n).map(|i| format!("{i}\n")).collect::<String>());
    let id = f.session(&ds, &["--lease", &f.lease(10.0)]);
    let watch = f.spawn(
        &["stat", &id, "--watch", "--json", "--interval", "0.3"],
        "watch",
        &[],
    );
    let workers: Vec<_> = (0..3)
        .map(|w| f.spawn(&["work", &id, "--sleep-ms", "30"], &format!("ww{w}"), &[]))
        .collect();
    for p in workers {
        let e = p.wait("a worker", LONG);
        assert_eq!(e.code, Some(0), "{}", e.stderr);
    }
    let e = watch.wait("stat --watch", LONG);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let snaps: Vec<Value> = e
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(snaps.len() >= 3, "{} refreshes: {}", snaps.len(), e.stdout);
    let last = snaps.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["completed"], n);
    assert!(snaps[..snaps.len() - 1].iter().all(|s| s["done"] == false));
    for s in &snaps {
        assert_eq!(s["total"], n);
        assert!(s["requests"].as_u64().unwrap() >= 4, "{s}");
    }
    let done: Vec<u64> = snaps
        .iter()
        .map(|s| s["completed"].as_u64().unwrap())
        .collect();
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]),
        "completed never goes back: {done:?}"
    );
}

/// A worker stopped by SIGTERM still writes its progress summary: `stat`
/// (which reads summaries, not every claim) counts what it claimed, the
/// same as `stat --exact`.
pub(crate) fn a_stopped_worker_leaves_its_summary(f: &Fleet) {
    let n = 300;
    let ds = f.dataset(&(0..n).map(|i| format!("{i}\n")).collect::<String>());
    for lease in [None, Some(f.lease(60.0))] {
        let extra: Vec<&str> = match &lease {
            Some(l) => vec!["--lease", l.as_str()],
            None => vec![],
        };
        let id = f.session(&ds, &extra);
        let name = format!("stopped-{}", lease.is_some());
        let w = f.spawn(
            &["work", &id, "--worker-id", &name, "--sleep-ms", "30"],
            &name,
            &[],
        );
        wait_until("twenty elements handed out", LONG, || {
            std::fs::read_to_string(&w.stdout_file).is_ok_and(|s| s.lines().count() >= 20)
        });
        w.signal("TERM");
        let e = w.wait("the stopped worker", LONG);
        assert_eq!(e.code, Some(143), "{}", e.stderr);
        let printed = e.stdout.lines().count() as u64;
        let st = f.stat(&id);
        let exact: serde_json::Value =
            serde_json::from_str(&f.ok(&["stat", &id, "--json", "--exact"])).unwrap();
        let claimed = exact["claimed"].as_u64().unwrap();
        assert!(claimed >= 20 && claimed <= printed + 1, "{exact}");
        let workers = st["workers"].as_array().unwrap();
        let mine = workers
            .iter()
            .find(|w| w["worker"] == name.as_str())
            .unwrap_or_else(|| panic!("no summary of {name}: {st}"));
        assert_eq!(mine["claimed"].as_u64(), Some(claimed), "{st}");
        if lease.is_none() {
            assert_eq!(st["claimed"].as_u64(), Some(claimed), "{st}");
        }
    }
}
