//! Python objects as MessagePack values, and back.
//!
//! The dataset file holds one MessagePack array, so that workers in Python,
//! in Rust and `cloudmux work` share one session. The types that cross:
//!
//! | Python | MessagePack | back in Python |
//! |---|---|---|
//! | `None` | nil | `None` |
//! | `bool` | bool | `bool` |
//! | `int` (64 bits, signed or not) | int | `int` |
//! | `float` | float 64 | `float` |
//! | `str` | str | `str` |
//! | `bytes`, `bytearray` | bin | `bytes` |
//! | `list`, `tuple` | array | `list` |
//! | `dict` (keys: `str`, `int`, `float`, `bool`, `None`, `bytes`) | map | `dict` |
//! | anything, in pickle mode | ext type 80 holding a pickle | the object |
//!
//! Subclasses count as their base (an `IntEnum` is stored as its `int`).
//! Anything else is refused with a `TypeError` that names the element and
//! where inside it the offending value sits.

use std::fmt;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// The MessagePack extension type of a pickled element (`'P'`).
pub(crate) const PICKLE_EXT: i8 = 80;

/// Deepest nesting accepted when encoding (deeper is most likely a cycle).
const MAX_DEPTH: usize = 200;

/// A MessagePack value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Ext(i8, Vec<u8>),
}

/// Where inside an element a value sits: `[2]['key']`.
#[derive(Debug, Default)]
struct Trail(Vec<String>);

impl fmt::Display for Trail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.0 {
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// Why an object could not be encoded, and where.
struct Refused {
    trail: Trail,
    why: String,
}

/// How elements are encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// MessagePack types only.
    Plain,
    /// Every element pickled (ext type [`PICKLE_EXT`]).
    Pickle,
}

/// Encodes element `index` of a dataset.
///
/// # Errors
/// `TypeError` naming the element and the position inside it.
pub(crate) fn encode_element(obj: &Bound<'_, PyAny>, index: usize, mode: Mode) -> PyResult<Value> {
    match mode {
        Mode::Pickle => {
            let dumps = obj.py().import("pickle")?.getattr("dumps")?;
            let b = dumps.call1((obj,)).map_err(|e| {
                PyTypeError::new_err(format!(
                    "element {index} cannot be pickled: {}",
                    e.value(obj.py())
                ))
            })?;
            let b = b.cast_into::<PyBytes>()?;
            Ok(Value::Ext(PICKLE_EXT, b.as_bytes().to_vec()))
        }
        Mode::Plain => {
            let mut trail = Trail::default();
            from_py(obj, &mut trail, 0).map_err(|r| {
                let at = if r.trail.0.is_empty() {
                    String::new()
                } else {
                    format!(" (at {})", r.trail)
                };
                PyTypeError::new_err(format!(
                    "element {index} cannot be stored as MessagePack{at}: {}; \
                     elements may be None, bool, int, float, str, bytes, list, tuple \
                     and dict, or pass pickle=True to store any picklable object",
                    r.why
                ))
            })
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn from_py(obj: &Bound<'_, PyAny>, trail: &mut Trail, depth: usize) -> Result<Value, Refused> {
    let refuse = |trail: &Trail, why: String| Refused {
        trail: Trail(trail.0.clone()),
        why,
    };
    if depth > MAX_DEPTH {
        return Err(refuse(
            trail,
            format!("nested more than {MAX_DEPTH} levels deep (a cycle?)"),
        ));
    }
    if obj.is_none() {
        return Ok(Value::Nil);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::UInt(u));
        }
        return Err(refuse(
            trail,
            "int outside the 64-bit range of MessagePack".into(),
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_cow().map(|s| Value::Str(s.into_owned())).map_err(|_| {
            refuse(
                trail,
                "str that is not valid UTF-8 (a lone surrogate)".into(),
            )
        });
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Bytes(b.to_vec()));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for (i, item) in l.iter().enumerate() {
            trail.0.push(format!("[{i}]"));
            out.push(from_py(&item, trail, depth + 1)?);
            trail.0.pop();
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for (i, item) in t.iter().enumerate() {
            trail.0.push(format!("[{i}]"));
            out.push(from_py(&item, trail, depth + 1)?);
            trail.0.pop();
        }
        return Ok(Value::Array(out));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = key_from_py(&k).ok_or_else(|| {
                refuse(
                    trail,
                    format!(
                        "a dict key of type {} (keys may be str, int, float, bool, None or bytes)",
                        type_name(&k)
                    ),
                )
            })?;
            let label = k
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| "?".into());
            trail.0.push(format!("[{label}]"));
            let value = from_py(&v, trail, depth + 1)?;
            trail.0.pop();
            out.push((key, value));
        }
        return Ok(Value::Map(out));
    }
    Err(refuse(
        trail,
        format!("{} is not a MessagePack type", type_name(obj)),
    ))
}

/// A dict key: a scalar only, so that it is hashable again when decoded.
fn key_from_py(k: &Bound<'_, PyAny>) -> Option<Value> {
    let scalar = k.is_none()
        || k.is_instance_of::<PyInt>()
        || k.is_instance_of::<PyFloat>()
        || k.is_instance_of::<PyString>()
        || k.is_instance_of::<PyBytes>();
    if !scalar {
        return None;
    }
    from_py(k, &mut Trail::default(), 0).ok()
}

/// Whether a worker may unpickle pickled elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unpickle {
    /// Refuse them with a clear error.
    Refuse,
    /// Run `pickle.loads` on them.
    Allow,
}

/// A decoded element as a Python object.
///
/// # Errors
/// `cloudmux.CorruptError` for a map key that cannot be a dict key or an
/// unknown extension type; `cloudmux.Error` for a pickled element when
/// unpickling is not allowed; the exception of `pickle.loads`.
pub(crate) fn to_py<'py>(
    py: Python<'py>,
    v: &Value,
    index: usize,
    unpickle: Unpickle,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Nil => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => PyInt::new(py, *i).into_any(),
        Value::UInt(u) => PyInt::new(py, *u).into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item, index, unpickle)?)?;
            }
            list.into_any()
        }
        Value::Map(pairs) => {
            let d = PyDict::new(py);
            for (k, val) in pairs {
                let key = key_to_py(py, k, index)?;
                d.set_item(key, to_py(py, val, index, unpickle)?)?;
            }
            d.into_any()
        }
        Value::Ext(PICKLE_EXT, bytes) => match unpickle {
            Unpickle::Allow => {
                let loads = py.import("pickle")?.getattr("loads")?;
                loads.call1((PyBytes::new(py, bytes),))?
            }
            Unpickle::Refuse => {
                return Err(crate::errors::other(format!(
                    "element {index} was stored pickled (Multiplexer.new(..., pickle=True)); \
                     unpickling runs whatever code the bucket holds, so it is off unless \
                     the worker passes pickle=True too"
                )));
            }
        },
        Value::Ext(tag, _) => {
            return Err(crate::errors::corrupt(format!(
                "element {index} holds a MessagePack extension of type {tag}, \
                 which this binding does not know"
            )));
        }
    })
}

/// A map key: arrays become tuples, so that they are hashable.
fn key_to_py<'py>(py: Python<'py>, k: &Value, index: usize) -> PyResult<Bound<'py, PyAny>> {
    match k {
        Value::Array(items) => {
            let parts = items
                .iter()
                .map(|i| key_to_py(py, i, index))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyTuple::new(py, parts)?.into_any())
        }
        Value::Map(_) => Err(crate::errors::corrupt(format!(
            "element {index} has a map as a map key, which Python cannot hash"
        ))),
        other => to_py(py, other, index, Unpickle::Refuse),
    }
}

/// Bytes serialized as MessagePack bin.
struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Value::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            // rmp-serde writes this newtype name as an extension value.
            Value::Ext(tag, bytes) => {
                s.serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &(tag, Bin(bytes)))
            }
        }
    }
}

/// Bytes read from any serde byte form.
struct Buf(Vec<u8>);

impl<'de> Deserialize<'de> for Buf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Buf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Buf, E> {
                Ok(Buf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Buf, E> {
                Ok(Buf(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Buf, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Buf(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MessagePack value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Value, E> {
        Ok(Value::Float(f64::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = a.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = a.next_entry::<Value, Value>()? {
            out.push((k, v));
        }
        Ok(Value::Map(out))
    }
    /// rmp-serde hands an extension value over as a newtype of (tag, bytes).
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let (tag, Buf(bytes)) = <(i8, Buf)>::deserialize(d)?;
        Ok(Value::Ext(tag, bytes))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// A JSON value (a stat report) as a Python object.
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    v: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => py.None().into_bound(py),
        J::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => PyInt::new(py, i).into_any(),
            (None, Some(u), _) => PyInt::new(py, u).into_any(),
            (None, None, Some(f)) => PyFloat::new(py, f).into_any(),
            _ => py.None().into_bound(py),
        },
        J::String(s) => PyString::new(py, s).into_any(),
        J::Array(items) => {
            let list = PyList::empty(py);
            for i in items {
                list.append(json_to_py(py, i)?)?;
            }
            list.into_any()
        }
        J::Object(m) => {
            let d = PyDict::new(py);
            for (k, val) in m {
                d.set_item(k, json_to_py(py, val)?)?;
            }
            d.into_any()
        }
    })
}
