//! Key rules shared by every backend.
//!
//! A key is a `/`-separated string relative to a store's root. To keep one
//! meaning on every backend, including a local directory where a key becomes
//! a file path, keys are checked before any backend sees them:
//!
//! - no empty segment (no leading, trailing or doubled `/`),
//! - no `.` or `..` segment (a key can never escape its root),
//! - no NUL and no other ASCII control character,
//! - at most 1,024 bytes (the S3 and GCS limit).
//!
//! Spaces, unicode and many slashes are fine.

use crate::error::{Error, Result};

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Checks a key against the rules above.
///
/// The empty key is the root; it is valid only where `allow_root` is true
/// (listing, the path API), never for an object.
///
/// # Errors
/// `InvalidInput` naming the offending part.
pub fn validate_key(key: &str, allow_root: bool) -> Result<()> {
    if key.is_empty() {
        return if allow_root {
            Ok(())
        } else {
            Err(Error::invalid("key", "the root is not an object"))
        };
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(
            "key",
            format!("key is {} bytes, more than {MAX_KEY_LEN}", key.len()),
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_ascii_control()) {
        return Err(
            Error::invalid("key", format!("control character {c:?} in key")).with_path(key),
        );
    }
    for seg in key.split('/') {
        match seg {
            "" => {
                return Err(Error::invalid(
                    "key",
                    "empty segment (leading, trailing or doubled '/')",
                )
                .with_path(key));
            }
            "." | ".." => {
                return Err(Error::invalid(
                    "key",
                    format!("'{seg}' segment: keys cannot leave their root"),
                )
                .with_path(key));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks one name (a single segment) for use with `join`/`with_name`.
pub(crate) fn validate_segment(seg: &str) -> Result<()> {
    if seg.contains('/') {
        return Err(Error::invalid("name", format!("'{seg}' contains '/'")));
    }
    validate_key(seg, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in [
            "a",
            "a/b/c",
            "with space/ünïcödé/日本",
            "x/y/z/1/2/3/4/5/6/7/8/9",
            "a.b",
            "..a",
            "a..",
        ] {
            validate_key(k, false).unwrap();
        }
        validate_key("", true).unwrap();
    }

    #[test]
    fn rejects_escapes_and_junk() {
        for k in [
            "", "/a", "a/", "a//b", "..", "a/../b", "./a", "a/.", "a\0b", "a\nb",
        ] {
            let e = validate_key(k, false).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{k:?}");
        }
        let long = "a".repeat(MAX_KEY_LEN + 1);
        assert!(validate_key(&long, false).is_err());
    }
}
