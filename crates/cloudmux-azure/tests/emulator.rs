//! Azure-specific checks against Azurite: what the conformance suite cannot
//! see through the `Store` trait. (The conformance suite itself runs on
//! Azure in the integration suite, once.)
//!
//! Every test is ignored unless asked for, since it needs the emulator:
//! `localstack/run-tests.sh` starts Azurite and runs them with `--ignored`.
//! A test that runs without `AZURE_STORAGE_CONNECTION_STRING` fails; by hand:
//!
//! ```text
//! CLOUDMUX_EMULATORS=azurite bash localstack/up.sh && source localstack/.state/env
//! cargo test --workspace --test emulator -- --ignored azurite::
//! bash localstack/down.sh
//! ```
//!
//! Each test works in a fresh, randomly named container.
//!
//! The checks live in the module `azurite`, so that one filter (`azurite::`)
//! selects them when `cargo test --workspace --test emulator` runs every
//! backend crate's emulator tests.

#[path = "emulator/azurite.rs"]
mod azurite;
