//! GCS-specific checks against fake-gcs-server at `STORAGE_EMULATOR_HOST`:
//! what the conformance suite cannot see through the `Store` trait. (The
//! conformance suite itself runs on GCS in the integration suite, once.)
//!
//! Every test is ignored unless asked for, since it needs the emulator:
//! `localstack/run-tests.sh` starts fake-gcs-server and runs them with
//! `--ignored`. A test that runs without `STORAGE_EMULATOR_HOST` fails; by
//! hand:
//!
//! ```text
//! CLOUDMUX_EMULATORS=fakegcs bash localstack/up.sh && source localstack/.state/env
//! cargo test --workspace --test emulator -- --ignored fakegcs::
//! bash localstack/down.sh
//! ```
//!
//! Every test runs in a fresh, randomly named bucket (fake-gcs-server in
//! memory mode scans the whole bucket on every write, and parallel tests
//! must not see each other).
//!
//! The checks live in the module `fakegcs`, so that one filter (`fakegcs::`)
//! selects them when `cargo test --workspace --test emulator` runs every
//! backend crate's emulator tests.

#[path = "emulator/fakegcs.rs"]
mod fakegcs;
