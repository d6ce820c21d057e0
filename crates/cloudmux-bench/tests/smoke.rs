//! Runs `cloudmux-bench --smoke --json` and checks what it reports.

use std::process::Command;

use serde_json::Value;

fn smoke() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudmux-bench"))
        .args(["--smoke", "--json"])
        .output()
        .expect("the bench runs");
    assert!(
        out.status.success(),
        "the smoke run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

#[test]
fn smoke_run_reports_every_scenario() {
    let v = smoke();
    assert_eq!(v["smoke"], true);
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);

    let rows = v["handout"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let n = r["workers"].as_u64().unwrap();
        let e = r["elements"].as_u64().unwrap();
        assert!(e >= n, "every worker can get an element");
        assert!(r["elements_per_s"].as_f64().unwrap() > 0.0);
        // Each element costs at least its own create.
        assert!(r["requests"]["put"].as_u64().unwrap() >= e);
        assert!(r["requests_per_element"].as_f64().unwrap() >= 1.0);
        assert!(r["per_worker_max"].as_u64().unwrap() <= e);
        let b = &r["baseline"];
        assert!(b["elements"].as_u64().unwrap() >= 1);
        // The baseline needs a lock round trip, a read and a write per element.
        assert!(b["requests_per_element"].as_f64().unwrap() >= 4.0);
    }

    let l = &v["localfs"];
    assert_eq!(l["processes"], 4);
    assert_eq!(l["elements"], 1000);
    assert!(l["end_to_end_per_s"].as_f64().unwrap() > 0.0);

    let k = &v["lock"];
    assert_eq!(k["uncontended"].as_array().unwrap().len(), 2);
    // At 5 ms per request an acquire + release (4 requests) cannot beat 10 ms.
    assert!(k["uncontended"][0]["steady"]["p50_ms"].as_f64().unwrap() >= 10.0);
    assert!(k["contended"]["acquisitions"].as_u64().unwrap() >= 1);

    let s = &v["sim"];
    let rows = s["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "one row per start and N of the smoke sweep");
    let starts: Vec<&str> = rows.iter().map(|r| r["start"].as_str().unwrap()).collect();
    assert_eq!(
        starts,
        ["random", "random", "random", "shard", "shard", "shard"]
    );
    for r in rows {
        let n = r["workers"].as_u64().unwrap();
        assert_eq!(r["elements"].as_u64().unwrap(), 100 * n);
        let share = r["share_of_ideal"].as_f64().unwrap();
        assert!(share > 0.0 && share <= 1.0, "{share}");
        // Each element costs at least its create.
        assert!(r["requests_per_element"].as_f64().unwrap() >= 1.0);
        assert!(r["tail_round_trips"].as_f64().unwrap() >= 0.0);
        // The slowest of N requests is at least a typical one.
        assert!(r["tail_floor_round_trips"].as_f64().unwrap() >= 0.5);
        // S3 limits: one folder per 100 claims keeps every prefix below 3,500/s.
        assert_eq!(r["throttled_prefix"], 0);
    }

    let m = &v["memory"];
    assert_eq!(m["elements"], 5000);
    assert!(m["peak_kib"].as_u64().unwrap() >= m["before_open_kib"].as_u64().unwrap());
    assert!(m["bytes_per_element"].as_f64().unwrap() > 90.0);
}
