#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it:
# formatting, lints, every crate's tests and doc tests, the docs, the
# integration suite against every emulator (installed and started on demand,
# once), the Python package's tests while they are up, and the benchmark's
# smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }
t0=$SECONDS

step "rustfmt"
cargo fmt --all -- --check

step "clippy (all targets, all features, warnings denied)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "tests (unit, conformance on memory and local, multi-process, CLI, doc tests)"
cargo test --workspace

step "docs (warnings denied)"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features

if [ -f localstack/run-tests.sh ]; then
  step "integration suite against the emulators, and the Python package"
  CLOUDMUX_REQUIRE_EMULATORS=1 bash localstack/run-tests.sh
fi

if [ -d crates/cloudmux-bench ]; then
  step "benchmark smoke run"
  cargo run --release -p cloudmux-bench -- --smoke
fi

printf '\nall checks passed in %ds\n' "$((SECONDS - t0))"
