//! The core conformance suite (`cloudmux_core::testkit`) on the selected
//! backend: every check runs on every backend; what a backend can do is read
//! from its own capabilities by the checks themselves.

use cloudmux_core::testkit;
use cloudmux_integration::backend::Kind;
use libtest_mimic::Trial;

use crate::common::{Needs, check};

macro_rules! checks {
    ($kind:expr; $($name:ident),* $(,)?) => {
        vec![$(
            check(
                concat!("conformance::", stringify!($name)),
                $kind,
                Needs::Any,
                |b| async move { testkit::$name(&b.root, &b.suite).await },
            )
        ),*]
    };
}

pub(crate) fn trials(kind: Kind) -> Vec<Trial> {
    checks!(kind;
        round_trip, create_race, cas_counter, listing, odd_keys, large_object,
        lock_counter, lock_timeout_zero, lock_takeover, faults,
    )
}
