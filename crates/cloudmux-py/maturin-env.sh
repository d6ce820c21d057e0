# shellcheck shell=bash
# Sourced by ci.sh and bench/bench.sh: `maturin_cargo DIR` writes DIR/cargo,
# a cargo for maturin to find first on PATH, that runs the real cargo with
# the environment of a workspace build. maturin adds PYO3_CONFIG_FILE,
# PYO3_PYTHON, PYO3_ENVIRONMENT_SIGNATURE, PYTHON_SYS_EXECUTABLE and
# PYO3_BUILD_EXTENSION_MODULE, and pyo3's build scripts rerun (and pyo3 and
# this crate are compiled again) whenever one of them, or PATH, differs from
# the last build's: so a maturin build and the workspace's clippy or doc
# would recompile them in turn. The crate asks for pyo3's extension-module
# feature itself, and for abi3 the interpreter found on PATH (as in a
# workspace build) gives the same configuration.
maturin_cargo() {
    local dir="$1" real
    real="$(command -v cargo)"
    mkdir -p "$dir"
    cat >"$dir/cargo" <<WRAPPER
#!/bin/sh
unset PYO3_CONFIG_FILE PYO3_PYTHON PYO3_ENVIRONMENT_SIGNATURE PYTHON_SYS_EXECUTABLE PYO3_BUILD_EXTENSION_MODULE
PATH='$PATH'
export PATH
exec '$real' "\$@"
WRAPPER
    chmod +x "$dir/cargo"
}
