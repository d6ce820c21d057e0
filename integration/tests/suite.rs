//! The integration suite: the core conformance suite, the Multiplexer,
//! multi-process, registry and backend-specific checks on the backend
//! selected by `CLOUDMUX_TEST_BACKEND` (see the `cloudmux_integration::backend`
//! module).
//!
//! One test binary with its own `main` (`harness = false`, on
//! `libtest-mimic`), so that a check is marked **ignored, with its reason**,
//! when it does not apply to the selected backend: nothing counts as passed
//! that did not run. Filters and flags are libtest's (`--list`, `--ignored`,
//! `--test-threads N`, a name filter).

mod common;
mod conformance;
mod fleet;
mod mux;
mod processes;
mod registry;
mod s3;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let kind = cloudmux_integration::backend::Kind::from_env();
    let mut trials = Vec::new();
    trials.extend(conformance::trials(kind));
    trials.extend(fleet::trials(kind));
    trials.extend(mux::trials(kind));
    trials.extend(processes::trials(kind));
    trials.extend(registry::trials(kind));
    trials.extend(s3::trials(kind));
    libtest_mimic::run(&args, trials).exit();
}
