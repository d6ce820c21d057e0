//! The integration suite: the core conformance suite and multi-process checks
//! on the backend selected by `CLOUDMUX_TEST_BACKEND` (see the
//! `cloudmux_integration::backend` module).

mod conformance {
    cloudmux_core::conformance_tests!(cloudmux_integration::backend::suite_root());
}

mod mux;
mod processes;
mod s3;
