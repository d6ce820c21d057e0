//! The dataset file: one MessagePack array of the elements.
//!
//! Writing encodes each element with `rmp_serde` (named fields, so element
//! types can gain optional fields later) behind an array header. Reading does
//! not decode the elements up front: [`Elements`] keeps the file's bytes and
//! the offset of each element, found by a small, non-recursive MessagePack
//! skipper, and decodes one element when it is handed out. A worker's memory
//! is the file plus 4 bytes per element, whatever it has processed.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use cloudmux_core::{Error, Result};

/// Encodes elements into a MessagePack array; returns the bytes and the count.
///
/// # Errors
/// `InvalidInput` naming the first element that cannot be encoded.
pub fn encode_elements<T, I>(data: I) -> Result<(Vec<u8>, usize)>
where
    T: Serialize,
    I: IntoIterator<Item = T>,
{
    let mut w = ElementsWriter::new();
    for item in data {
        w.push(&item)?;
    }
    Ok(w.finish())
}

/// Builds a dataset file one element at a time, holding only the encoded
/// bytes (a stream of input never sits in memory twice).
///
/// ```
/// use cloudmux_mux::codec::{Elements, ElementsWriter};
/// let mut w = ElementsWriter::new();
/// w.push(&"a")?;
/// w.push(&42u8)?;
/// let (bytes, n) = w.finish();
/// let el = Elements::parse(bytes.into(), Some(n))?;
/// assert_eq!(el.get::<u8>(1)?, 42);
/// # Ok::<_, cloudmux_core::Error>(())
/// ```
#[derive(Debug)]
pub struct ElementsWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ElementsWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ElementsWriter {
    /// An empty dataset file.
    pub fn new() -> Self {
        // A 32-bit array header, filled in by `finish`: always five bytes,
        // so that nothing is moved at the end (any reader accepts it).
        ElementsWriter {
            buf: vec![0xdd, 0, 0, 0, 0],
            count: 0,
        }
    }

    /// Appends one element.
    ///
    /// # Errors
    /// `InvalidInput` naming the element's position when it cannot be
    /// encoded (nothing of it is kept), or past 2^32-1 elements.
    pub fn push<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<()> {
        if self.count == u32::MAX as usize {
            return Err(Error::invalid("new", "more than 2^32-1 elements"));
        }
        let len = self.buf.len();
        if let Err(e) = rmp_serde::encode::write_named(&mut self.buf, item) {
            self.buf.truncate(len);
            return Err(Error::invalid(
                "new",
                format!("element {} cannot be encoded: {e}", self.count),
            ));
        }
        self.count += 1;
        Ok(())
    }

    /// Elements so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True before the first element.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The file's bytes and the element count.
    pub fn finish(mut self) -> (Vec<u8>, usize) {
        self.buf[1..5].copy_from_slice(&(self.count as u32).to_be_bytes());
        (self.buf, self.count)
    }
}

/// The elements of a dataset file, decoded one at a time.
#[derive(Debug, Clone)]
pub struct Elements {
    bytes: Bytes,
    /// offsets[i]..offsets[i+1] is element i; one extra entry at the end.
    offsets: Vec<u32>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn be(&mut self, n: usize) -> Option<usize> {
        let s = self.take(n)?;
        Some(s.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize))
    }

    /// Skips one complete value (with everything nested in it).
    fn skip_value(&mut self) -> Option<()> {
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.u8()?;
            let (skip, nested) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * (m & 0x0f) as usize),
                0x90..=0x9f => (0, (m & 0x0f) as usize),
                0xa0..=0xbf => ((m & 0x1f) as usize, 0),
                0xc4 | 0xd9 => (self.be(1)?, 0),
                0xc5 | 0xda => (self.be(2)?, 0),
                0xc6 | 0xdb => (self.be(4)?, 0),
                0xc7 => (self.be(1)? + 1, 0),
                0xc8 => (self.be(2)? + 1, 0),
                0xc9 => (self.be(4)? + 1, 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc | 0xd0 => (1, 0),
                0xcd | 0xd1 => (2, 0),
                0xce | 0xd2 => (4, 0),
                0xcf | 0xd3 => (8, 0),
                0xd4 => (2, 0),
                0xd5 => (3, 0),
                0xd6 => (5, 0),
                0xd7 => (9, 0),
                0xd8 => (17, 0),
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
                0xc1 => return None,
            };
            self.take(skip)?;
            // Every nested value takes at least one byte: refuse counts the
            // rest of the file cannot hold (a cheap guard against bombs).
            if nested > self.b.len() - self.pos {
                return None;
            }
            pending += nested;
        }
        Some(())
    }
}

impl Elements {
    /// Indexes a dataset file.
    ///
    /// # Errors
    /// `Corrupt` when the bytes are not one MessagePack array, are truncated,
    /// have trailing bytes, or hold a different count than `expected`.
    pub fn parse(bytes: Bytes, expected: Option<usize>) -> Result<Self> {
        let corrupt = |m: &str| Error::corrupt("open", format!("dataset file: {m}"));
        if bytes.len() > u32::MAX as usize {
            return Err(corrupt("larger than 4 GiB"));
        }
        let mut c = Cursor { b: &bytes, pos: 0 };
        let count = match c.u8() {
            Some(m @ 0x90..=0x9f) => (m & 0x0f) as usize,
            Some(0xdc) => c.be(2).ok_or_else(|| corrupt("truncated header"))?,
            Some(0xdd) => c.be(4).ok_or_else(|| corrupt("truncated header"))?,
            Some(_) => return Err(corrupt("not a MessagePack array")),
            None => return Err(corrupt("empty file")),
        };
        if let Some(e) = expected
            && e != count
        {
            return Err(corrupt(&format!(
                "holds {count} elements, the manifest says {e}"
            )));
        }
        if count > bytes.len() {
            return Err(corrupt("element count larger than the file"));
        }
        let mut offsets = Vec::with_capacity(count + 1);
        for i in 0..count {
            offsets.push(c.pos as u32);
            c.skip_value()
                .ok_or_else(|| corrupt(&format!("element {i} is truncated or malformed")))?;
        }
        offsets.push(c.pos as u32);
        if c.pos != bytes.len() {
            return Err(corrupt("trailing bytes after the last element"));
        }
        Ok(Elements { bytes, offsets })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw MessagePack bytes of element `i`.
    pub fn raw(&self, i: usize) -> &[u8] {
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Decodes element `i`.
    ///
    /// # Errors
    /// `Corrupt` when it does not decode as `T`.
    pub fn get<T: DeserializeOwned>(&self, i: usize) -> Result<T> {
        rmp_serde::from_slice(self.raw(i)).map_err(|e| {
            Error::corrupt(
                "decode",
                format!("element {i} does not decode as the requested type: {e}"),
            )
        })
    }

    /// The size of the dataset file in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
    struct P {
        x: i64,
        name: String,
        tags: Vec<Option<f64>>,
        nested: std::collections::BTreeMap<String, Vec<u8>>,
    }

    #[test]
    fn round_trips_many_shapes() {
        for n in [1usize, 15, 16, 17, 300, 70_000] {
            let items: Vec<P> = (0..n)
                .map(|i| P {
                    x: (i as i64) * if i % 2 == 0 { -1_000_003 } else { 7 },
                    name: "n".repeat(i % 40),
                    tags: vec![Some(i as f64 / 3.0), None],
                    nested: [(format!("k{i}"), vec![i as u8; i % 300])]
                        .into_iter()
                        .collect(),
                })
                .collect();
            let (bytes, count) = encode_elements(items.iter()).unwrap();
            assert_eq!(count, n);
            let all: Vec<P> = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(all, items, "the file is a plain MessagePack array");
            let el = Elements::parse(Bytes::from(bytes), Some(n)).unwrap();
            assert_eq!(el.len(), n);
            for i in [0, n / 2, n - 1] {
                assert_eq!(el.get::<P>(i).unwrap(), items[i]);
            }
        }
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        let (bytes, _) = encode_elements(["a", "bb", "ccc"]).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"{\"json\": true}".to_vec(),
            bytes[..bytes.len() - 1].to_vec(),
            [&bytes[..], &[0x01]].concat(),
            vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
            vec![0x91, 0xc1],
            vec![0x91, 0xdd, 0xff, 0xff, 0xff, 0xff],
        ];
        for c in cases {
            let e = Elements::parse(Bytes::from(c.clone()), None).unwrap_err();
            assert_eq!(e.kind(), cloudmux_core::ErrorKind::Corrupt, "{c:?}");
        }
        let e = Elements::parse(Bytes::from(bytes), Some(4)).unwrap_err();
        assert!(e.to_string().contains("manifest says 4"));
    }
}
