//! Elements as the command line shows them: JSON.
//!
//! Datasets hold MessagePack, which has two kinds of value JSON lacks. They
//! are shown as tagged objects, so that no element makes a worker stop (an
//! element a worker claimed and could not show would be lost to the session):
//!
//! | MessagePack | JSON |
//! |---|---|
//! | binary (Python `bytes`) | `{"$bytes": "<base64>"}` |
//! | extension type T (a pickled Python object is type 80) | `{"$ext": T, "$bytes": "<base64>"}` |
//! | a map key that is not a string | the key as JSON text (`1`, `true`, `null`) |
//! | NaN or an infinity | `null`, as JSON has no such number |

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// An element decoded for the command line (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Element(pub(crate) Value);

impl<'de> serde::Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Any).map(Element)
    }
}

fn bytes_object(bytes: &[u8]) -> Value {
    let mut m = Map::new();
    m.insert(
        "$bytes".into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    );
    Value::Object(m)
}

/// Any MessagePack value, as JSON.
struct Any;

impl<'de> Visitor<'de> for Any {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MessagePack value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(bytes_object(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(Any)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Element(v)) = seq.next_element::<Element>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Element(k)) = map.next_key::<Element>()? {
            let key = match k {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let Element(v) = map.next_value::<Element>()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
    /// MessagePack extension types reach serde as a newtype struct holding
    /// `(type, data)`.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_tuple(2, Ext)
    }
}

/// An extension type's `(type, data)`.
struct Ext;

impl<'de> Visitor<'de> for Ext {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MessagePack extension (type, data)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let ty: i8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let Blob(data) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let Value::Object(mut m) = bytes_object(&data) else {
            unreachable!("bytes_object makes an object")
        };
        m.insert("$ext".into(), Value::from(ty));
        Ok(Value::Object(m))
    }
}

/// Raw bytes.
struct Blob(Vec<u8>);

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(V).map(Blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Value {
        rmp_serde::from_slice::<Element>(bytes).unwrap().0
    }

    #[test]
    fn json_values_come_through_unchanged() {
        let v = serde_json::json!({"a": [1, -2, 2.5, "s", true, null], "b": {"c": 18446744073709551615u64}});
        let packed = rmp_serde::to_vec_named(&v).unwrap();
        assert_eq!(decode(&packed), v);
    }

    #[test]
    fn binary_extension_and_odd_keys_are_tagged() {
        // bin8 of 3 bytes
        assert_eq!(
            decode(&[0xc4, 3, 0x00, 0xff, b'a']),
            serde_json::json!({"$bytes": "AP9h"})
        );
        // fixext1, type 80 ('P'), one byte
        assert_eq!(
            decode(&[0xd4, 80, 0x2a]),
            serde_json::json!({"$ext": 80, "$bytes": "Kg=="})
        );
        // ext8 of 2 bytes, type -3, inside an array
        assert_eq!(
            decode(&[0x91, 0xc7, 2, 0xfd, 1, 2]),
            serde_json::json!([{"$ext": -3, "$bytes": "AQI="}])
        );
        // {1: "x", true: nil}
        assert_eq!(
            decode(&[0x82, 0x01, 0xa1, b'x', 0xc3, 0xc0]),
            serde_json::json!({"1": "x", "true": null})
        );
        // NaN (float64)
        let mut nan = vec![0xcb];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert_eq!(decode(&nan), Value::Null);
    }
}
