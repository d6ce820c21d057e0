//! # cloudmux-integration
//!
//! The integration suite of cloudmux: one test binary (`tests/suite.rs`, run
//! by `libtest-mimic`) that runs the core conformance suite, the
//! Multiplexer, multi-process and registry checks, and backend-specific
//! checks against the backend chosen by the environment. A check that does
//! not apply to that backend is reported as **ignored, with the reason**
//! (never as passed); a backend that is selected but cannot be reached fails
//! every check. This library holds what the test binary and its helper
//! binary share:
//!
//! | item | role |
//! |---|---|
//! | [`backend`] | `CLOUDMUX_TEST_BACKEND` to a fresh root path, one arm per backend |
//! | `src/bin/cmx-helper.rs` | a small program the tests spawn as separate OS processes |
//!
//! ## Environment
//!
//! | variable | meaning |
//! |---|---|
//! | `CLOUDMUX_TEST_BACKEND` | `memory` (default), `local`, `s3`, `gcs` or `azure` |
//! | `STORAGE_EMULATOR_HOST` | fake-gcs-server for `gcs` (else Application Default Credentials) |
//! | `AZURE_STORAGE_CONNECTION_STRING` | the account for `azure` (Azurite's development string against the emulator) |
//! | `CLOUDMUX_S3_ENDPOINT` | S3 endpoint (else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` / AWS) |
//! | `CLOUDMUX_S3_REGION` | region (else `AWS_REGION`, else `us-east-1`) |
//! | `CLOUDMUX_S3_BUCKET` | use this existing bucket (with a random prefix) instead of creating a fresh bucket per run |
//!
//! Credentials come from the standard AWS chain; against emulators use dummy
//! keys (`AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test`).

#![warn(missing_docs)]

pub mod backend;
