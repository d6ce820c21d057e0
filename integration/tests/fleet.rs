//! The `cloudmux` command's fleet scenarios (OS processes: `work -- CMD`,
//! SIGKILL, SIGSTOP, SIGTERM, `lock`, `doctor`, `stat --watch`) on an
//! emulator. They take a while on an emulator, so they run on one:
//! `localstack/run-tests.sh` sets `CLOUDMUX_TEST_FLEET=1` for LocalStack.
//! Elsewhere they are ignored, with that reason; the local backend runs the
//! same scenarios in `crates/cloudmux-cli/tests/e2e.rs`.

#[path = "../../crates/cloudmux-cli/tests/fleet/mod.rs"]
mod cli_fleet;

use cli_fleet::{Fleet, find_cloudmux, scenarios};
use cloudmux_core::testkit::fresh;
use cloudmux_integration::backend::{self, Kind};
use libtest_mimic::{Completion, Trial};

use crate::common::runtime;

/// The variable that selects the emulator the scenarios run on.
const FLEET_VAR: &str = "CLOUDMUX_TEST_FLEET";

fn scenario(name: &'static str, kind: Kind, body: fn(&Fleet)) -> Trial {
    Trial::ignorable_test(format!("fleet::{name}"), move || {
        if !kind.is_cloud() || std::env::var(FLEET_VAR).as_deref() != Ok("1") {
            return Ok(Completion::ignored_with(format!(
                "the fleet scenarios run on one emulator ({FLEET_VAR}=1, set by \
                 localstack/run-tests.sh for LocalStack); the local backend runs them \
                 in crates/cloudmux-cli/tests/e2e.rs"
            )));
        }
        let b = runtime(2).block_on(backend::setup());
        let root = fresh(&b.root, "fleet").url();
        let mut f = Fleet::new(find_cloudmux(), &root, b.child_env.clone());
        if kind == Kind::Gcs {
            // One write per object per second: leases of at least 2 s.
            f.min_lease_s = 2.0;
        }
        body(&f);
        Ok(Completion::Completed)
    })
}

pub(crate) fn trials(kind: Kind) -> Vec<Trial> {
    vec![
        scenario(
            "children_run_each_element_once",
            kind,
            scenarios::children_run_each_element_once,
        ),
        scenario(
            "kill9_workers_lose_nothing",
            kind,
            scenarios::kill9_workers_lose_nothing,
        ),
        scenario(
            "sigstop_past_the_lease_is_fenced",
            kind,
            scenarios::sigstop_past_the_lease_is_fenced,
        ),
        scenario(
            "sigterm_releases_the_running_element",
            kind,
            scenarios::sigterm_releases_the_running_element,
        ),
        scenario(
            "a_stopped_worker_leaves_its_summary",
            kind,
            scenarios::a_stopped_worker_leaves_its_summary,
        ),
        scenario(
            "failures_retries_and_joblog",
            kind,
            scenarios::failures_retries_and_joblog,
        ),
        scenario(
            "lock_guards_a_counter",
            kind,
            scenarios::lock_guards_a_counter,
        ),
        scenario("doctor_passes", kind, scenarios::doctor_passes),
        scenario(
            "stat_watch_follows_a_run",
            kind,
            scenarios::stat_watch_follows_a_run,
        ),
    ]
}
