//! Reading the elements of `cloudmux new`: JSON Lines, a JSON array, or a
//! range, encoded one element at a time (the input never sits in memory
//! twice), with numbers kept exactly or refused.
//!
//! # Numbers
//! JSON does not say how big a number may be; a dataset stores each number
//! as a 64-bit integer (written without fraction or exponent) or a 64-bit
//! float (otherwise). A number is **kept exactly or refused** with its line:
//!
//! - integers from -2^63 to 2^64-1 are kept; larger ones are refused (write
//!   them as strings to keep them);
//! - `-0` is the integer 0;
//! - other numbers are floats and are kept when the float prints back as the
//!   same decimal value (`1e2` is 100.0, `0.1` is 0.1); a decimal that a
//!   64-bit float cannot hold (`0.10000000000000000001`, `1e400`) is refused.
//!
//! Objects are stored with their keys sorted, and a key given twice keeps
//! its last value.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use cloudmux::mux::ElementsWriter;

/// Where the elements come from.
pub(crate) enum Source {
    /// A file, or `-` for standard input: JSON Lines, or one JSON array
    /// (when the first non-blank character is `[`).
    Reader(String),
    /// `a..b`: the integers from a up to b (b excluded).
    Range(i64, i64),
}

/// Parses `a..b` (b excluded) or `a..=b`.
pub(crate) fn parse_range(s: &str) -> std::result::Result<(i64, i64), String> {
    let bad = || format!("'{s}' is not a range (expected A..B or A..=B, integers)");
    let (a, b, incl) = if let Some((a, b)) = s.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = s.split_once("..") {
        (a, b, false)
    } else {
        return Err(bad());
    };
    let a: i64 = a.trim().parse().map_err(|_| bad())?;
    let b: i64 = b.trim().parse().map_err(|_| bad())?;
    let b = if incl {
        b.checked_add(1).ok_or_else(bad)?
    } else {
        b
    };
    if b <= a {
        return Err(format!("'{s}' is an empty range"));
    }
    if (b - a) as u64 > u32::MAX as u64 {
        return Err(format!("'{s}' has more than 2^32-1 elements"));
    }
    Ok((a, b))
}

/// Encodes every element of `src`.
pub(crate) fn encode(src: &Source) -> Result<(Vec<u8>, usize)> {
    let mut w = ElementsWriter::new();
    match src {
        Source::Range(a, b) => {
            for i in *a..*b {
                w.push(&i)?;
            }
        }
        Source::Reader(from) => {
            let reader: Box<dyn BufRead> = if from == "-" {
                Box::new(std::io::BufReader::new(std::io::stdin()))
            } else {
                let f = std::fs::File::open(from).with_context(|| format!("cannot read {from}"))?;
                if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
                    bail!("{from} is not a regular file");
                }
                Box::new(std::io::BufReader::new(f))
            };
            read_into(reader, from, &mut w)?;
        }
    }
    if w.is_empty() {
        bail!("no elements (expected one JSON value per line, a JSON array, or --range A..B)");
    }
    Ok(w.finish())
}

fn read_into(mut reader: Box<dyn BufRead>, from: &str, w: &mut ElementsWriter) -> Result<()> {
    // A JSON array when the first non-blank byte is '[': read it whole
    // (arrays are one value), element by element.
    let first = loop {
        let buf = reader
            .fill_buf()
            .with_context(|| format!("cannot read {from}"))?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let c = buf[i];
                reader.consume(i);
                break c;
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if first == b'[' {
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read {from}"))?;
        let text = exact_numbers(&text).map_err(|m| anyhow::anyhow!("{from}: {m}"))?;
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&text).with_context(|| format!("{from} is not a JSON array"))?;
        for x in &v {
            w.push(x)?;
        }
        return Ok(());
    }
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {from}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let line =
            exact_numbers(&line).map_err(|m| anyhow::anyhow!("{from}: line {}: {m}", n + 1))?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{from}: line {} is not JSON", n + 1))?;
        w.push(&v)
            .with_context(|| format!("{from}: line {}", n + 1))?;
    }
    Ok(())
}

use std::io::Read as _;

/// Checks every number literal of a JSON text (outside strings) and returns
/// the text with `-0` written as `0`; a number that cannot be kept exactly
/// is an error naming it.
pub(crate) fn exact_numbers(text: &str) -> std::result::Result<String, String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let lit = &text[start..i];
                check_number(lit)?;
                if lit == "-0" {
                    out.push_str(&text[last..start]);
                    out.push('0');
                    last = i;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[last.min(text.len())..]);
    Ok(out)
}

fn check_number(lit: &str) -> std::result::Result<(), String> {
    let is_int = !lit.contains(['.', 'e', 'E']);
    if is_int {
        if lit.parse::<i64>().is_ok() || lit.parse::<u64>().is_ok() {
            return Ok(());
        }
        if lit
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            return Err(format!(
                "the number {lit} does not fit a 64-bit integer; write it as a string to keep it exactly"
            ));
        }
        // Not a number at all: the JSON parser reports it.
        return Ok(());
    }
    let Ok(f) = lit.parse::<f64>() else {
        return Ok(());
    };
    if !f.is_finite() {
        return Err(format!("the number {lit} is beyond a 64-bit float"));
    }
    if decimal(lit) != decimal(&format!("{f:e}")) {
        return Err(format!(
            "the number {lit} cannot be kept exactly as a 64-bit float (it would become {f}); write it as a string to keep it"
        ));
    }
    Ok(())
}

/// A decimal literal as (negative, significant digits, exponent of the
/// first digit), with leading and trailing zeros removed: two literals
/// denote the same value when these are equal.
fn decimal(lit: &str) -> (bool, String, i64) {
    let (neg, rest) = match lit.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, lit.strip_prefix('+').unwrap_or(lit)),
    };
    let (mant, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let all: String = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string();
    if digits.is_empty() {
        return (false, String::new(), 0);
    }
    // Value = 0.digits x 10^(int.len() - lead + exp)
    (neg, digits, int.len() as i64 - lead as i64 + exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_kept_exactly_or_refused() {
        for ok in [
            "1",
            "-1",
            "0",
            "18446744073709551615",
            "-9223372036854775808",
            "1e2",
            "1E2",
            "0.1",
            "2.5",
            "-3.25e-7",
            "1.7976931348623157e308",
            "0.30000000000000004",
            "100.000",
        ] {
            check_number(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "123456789012345678901234567890",
            "18446744073709551616",
            "-9223372036854775809",
            "0.10000000000000000001",
            "1e400",
            "0.30000000000000001",
        ] {
            assert!(check_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn minus_zero_is_the_integer_zero_and_strings_are_untouched() {
        let t = exact_numbers(r#"{"a":-0,"b":"-0 123456789012345678901234567890","c":[-0, 10]}"#)
            .unwrap();
        assert_eq!(
            t,
            r#"{"a":0,"b":"-0 123456789012345678901234567890","c":[0, 10]}"#
        );
        assert!(exact_numbers(r#"{"x": 123456789012345678901234567890}"#).is_err());
        assert_eq!(exact_numbers(r#""\"-0""#).unwrap(), r#""\"-0""#);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0..1000"), Ok((0, 1000)));
        assert_eq!(parse_range("-5..=5"), Ok((-5, 6)));
        assert!(parse_range("5..5").is_err());
        assert!(parse_range("a..b").is_err());
        assert!(parse_range("0..9999999999999").is_err());
    }
}
