//! Versioned postcard encoding used for everything this crate writes to disk.
//!
//! Every record starts with one format-version byte followed by the postcard
//! body. Decoding checks the version, decodes, and refuses trailing bytes, so
//! a truncated or corrupted record is an error, never a panic or a silent
//! misread.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version byte written in front of every record produced by [`encode`].
pub const FORMAT_VERSION: u8 = 1;

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input was empty, so not even the version byte was there.
    #[error("empty record: missing format version byte")]
    Empty,
    /// The record was written in a format this build does not understand.
    #[error("unsupported format version {found} (this build reads version {expected})")]
    Version {
        /// Version byte found in the record.
        found: u8,
        /// Version this build understands.
        expected: u8,
    },
    /// The postcard body could not be decoded (truncated or corrupted).
    #[error("malformed {what} record: {source}")]
    Malformed {
        /// Human name of the record type being decoded.
        what: &'static str,
        /// The postcard error.
        source: postcard::Error,
    },
    /// The body decoded but bytes were left over.
    #[error("malformed {what} record: {extra} trailing bytes")]
    Trailing {
        /// Human name of the record type being decoded.
        what: &'static str,
        /// Number of unread bytes.
        extra: usize,
    },
    /// The value could not be serialized.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// Human name of the record type being encoded.
        what: &'static str,
        /// The postcard error.
        source: postcard::Error,
    },
}

/// Encodes `value` as `[version byte][postcard body]` with the given version.
pub fn encode_versioned<T: Serialize>(
    version: u8,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    let out = vec![version];
    postcard::to_extend(value, out).map_err(|source| CodecError::Encode { what, source })
}

/// Decodes a record written by [`encode_versioned`] with the same version.
pub fn decode_versioned<T: DeserializeOwned>(
    version: u8,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let (&found, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if found != version {
        return Err(CodecError::Version {
            found,
            expected: version,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|source| CodecError::Malformed { what, source })?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}

/// Encodes a storage record with [`FORMAT_VERSION`].
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    encode_versioned(FORMAT_VERSION, what, value)
}

/// Decodes a storage record written by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    decode_versioned(FORMAT_VERSION, what, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode("pair", &(7u64, "x".to_string())).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode("pair", &bytes).unwrap();
        assert_eq!(back, (7, "x".to_string()));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(decode::<u64>("n", &[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<u64>("n", &[9, 1]),
            Err(CodecError::Version { found: 9, .. })
        ));
        let mut bytes = encode("s", &"hello".to_string()).unwrap();
        bytes.truncate(3);
        assert!(matches!(
            decode::<String>("s", &bytes),
            Err(CodecError::Malformed { .. })
        ));
        let mut bytes = encode("n", &5u64).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u64>("n", &bytes),
            Err(CodecError::Trailing { extra: 1, .. })
        ));
    }
}
