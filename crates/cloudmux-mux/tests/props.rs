//! Property tests: the parsers of everything a worker reads from outside
//! (a mux id, the dataset file, claim and session documents) take arbitrary
//! input without panicking, and every failure is a typed error.

use bytes::Bytes;
use cloudmux_core::ErrorKind;
use cloudmux_core::cond::decode;
use cloudmux_mux::{Claim, Elements, MuxId, SessionDoc, encode_elements};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mux_ids_parse_or_are_invalid_input(s in ".{0,200}") {
        match s.parse::<MuxId>() {
            Ok(id) => {
                // What parses prints back to something that parses the same.
                let again: MuxId = id.to_string().parse().unwrap();
                prop_assert_eq!(again, id);
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidInput),
        }
    }

    #[test]
    fn mux_ids_with_the_prefix_parse_or_are_invalid_input(
        session in "[A-Za-z0-9._/@-]{0,40}",
        url in ".{0,80}",
    ) {
        let s = format!("cmx1:{session}@{url}");
        if let Err(e) = s.parse::<MuxId>() {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn dataset_files_parse_or_are_corrupt(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        match Elements::parse(Bytes::from(b), None) {
            Ok(el) => {
                for i in 0..el.len() {
                    // Decoding as a generic value never panics either.
                    let _ = el.get::<serde_json::Value>(i);
                }
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Corrupt),
        }
    }

    #[test]
    fn damaged_dataset_files_are_corrupt_or_decode(
        items in proptest::collection::vec(".{0,20}", 1..20),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let (mut bytes, n) = encode_elements(items.iter()).unwrap();
        let el = Elements::parse(Bytes::from(bytes.clone()), Some(n)).unwrap();
        prop_assert_eq!(el.get::<String>(0).unwrap(), items[0].clone());
        let at = flip.0 % bytes.len();
        bytes[at] ^= flip.1 | 1;
        let cut = cut % (bytes.len() + 1);
        bytes.truncate(cut);
        if let Err(e) = Elements::parse(Bytes::from(bytes), Some(n)) {
            prop_assert_eq!(e.kind(), ErrorKind::Corrupt);
        }
    }

    #[test]
    fn claim_and_session_documents_decode_or_are_corrupt(s in ".{0,300}") {
        if let Err(e) = decode::<Claim>(s.as_bytes()) {
            prop_assert_eq!(e.kind(), ErrorKind::Corrupt);
        }
        if let Err(e) = decode::<SessionDoc>(s.as_bytes()) {
            prop_assert_eq!(e.kind(), ErrorKind::Corrupt);
        }
    }

    #[test]
    fn json_shaped_documents_decode_or_are_corrupt(
        nonce in proptest::option::of("[a-f0-9]{0,40}"),
        epoch in proptest::option::of(any::<i64>()),
        worker in proptest::option::of(".{0,20}"),
        t in proptest::option::of(any::<i64>()),
        count in proptest::option::of(any::<i64>()),
    ) {
        let mut m = serde_json::Map::new();
        if let Some(n) = nonce { m.insert("nonce".into(), n.into()); }
        if let Some(e) = epoch { m.insert("epoch".into(), e.into()); }
        if let Some(w) = worker { m.insert("worker".into(), w.into()); }
        if let Some(t) = t { m.insert("t_ms".into(), t.into()); }
        if let Some(c) = count { m.insert("count".into(), c.into()); }
        m.insert("v".into(), 2.into());
        let b = serde_json::to_vec(&m).unwrap();
        if let Err(e) = decode::<Claim>(&b) {
            prop_assert_eq!(e.kind(), ErrorKind::Corrupt);
        }
        if let Err(e) = decode::<SessionDoc>(&b) {
            prop_assert_eq!(e.kind(), ErrorKind::Corrupt);
        }
    }
}
