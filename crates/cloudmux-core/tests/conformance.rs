//! The conformance suite on the in-memory and local-filesystem backends.

use cloudmux_core::testkit::SuiteConfig;
use cloudmux_core::{InMemory, LocalFs, UPath};

mod memory {
    use super::*;
    cloudmux_core::conformance_tests!(async {
        let root = UPath::new(InMemory::new(), "suite").unwrap();
        (root, SuiteConfig::default())
    });
}

mod local {
    use super::*;
    cloudmux_core::conformance_tests!(async {
        // Leaked on purpose: the directory must outlive the test body.
        let dir = tempfile::tempdir().unwrap().keep();
        let root = UPath::new(LocalFs::new(&dir).unwrap(), "suite").unwrap();
        (root, SuiteConfig::default())
    });
}
