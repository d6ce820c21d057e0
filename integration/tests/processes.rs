//! Several OS processes sharing one backend, through the helper binary.

use std::collections::BTreeMap;
use std::process::Stdio;

use cloudmux_core::testkit::fresh;
use cloudmux_integration::backend::{Backend, Kind};
use libtest_mimic::Trial;

use crate::common::{Needs, check};

pub(crate) fn trials(kind: Kind) -> Vec<Trial> {
    vec![check(
        "processes::processes_race_to_create",
        kind,
        Needs::SharedAcrossProcesses,
        processes_race_to_create,
    )]
}

/// The helper binary built with this test.
const HELPER: &str = env!("CARGO_BIN_EXE_cmx-helper");

/// Four processes race to create the same 25 keys: each key has exactly one
/// winner across processes, and holds that winner's body.
async fn processes_race_to_create(b: Backend) {
    let root = fresh(&b.root, "procs");
    let keys = 25;
    let mut children = Vec::new();
    for t in 0..4 {
        let mut cmd = tokio::process::Command::new(HELPER);
        cmd.args(["race", &root.url(), &keys.to_string(), &format!("proc-{t}")])
            .envs(b.child_env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(cmd.spawn().expect("spawn the helper"));
    }
    let mut winners: BTreeMap<usize, usize> = BTreeMap::new();
    for (t, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "helper {t} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let i: usize = line.strip_prefix("won ").unwrap().parse().unwrap();
            let prev = winners.insert(i, t);
            assert!(prev.is_none(), "key {i} won by processes {prev:?} and {t}");
        }
    }
    assert_eq!(winners.len(), keys, "every key has a winner");
    for (i, t) in winners {
        let body = root
            .join(&format!("k{i:04}"))
            .unwrap()
            .read_text()
            .await
            .unwrap();
        assert!(
            body.starts_with(&format!("proc-{t} ")),
            "key {i} holds {body:?}, not proc-{t}'s body"
        );
    }
}
