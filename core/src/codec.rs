//! The one binary envelope for everything the engine persists: task snapshots, checkpoint
//! metadata and the HA record. A fixed header (magic, format version, payload length, CRC-32)
//! precedes a bincode payload, so that a truncated, corrupted or unknown-version file is
//! rejected with an error that says which, never decoded into wrong state.

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// The current format version of every envelope.
pub const FORMAT_VERSION: u16 = 1;
const HEADER_BYTES: usize = 4 + 2 + 4 + 4;
/// A bound on one encoded object, so a corrupted length can never make us allocate gigabytes.
pub const PAYLOAD_BYTES_MAX: u32 = 256 * 1024 * 1024;

/// What an envelope holds; its magic number tells a snapshot from metadata from an HA record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One task's state for one checkpoint.
    TaskSnapshot,
    /// A checkpoint's `_metadata`.
    CheckpointMetadata,
    /// The JobManager's HA record (completed checkpoints, id counter, attempt).
    HaRecord,
    /// A sorted run of the incremental backend, in `shared/`.
    SharedState,
    /// A local snapshot of a task that checkpoints without barriers: its snapshot, channel
    /// counts and log.
    LoggedSnapshot,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::TaskSnapshot => 0x534e_4150,       // "SNAP"
            Kind::CheckpointMetadata => 0x4960_672d, // Flink's _metadata magic (`Checkpoints`)
            Kind::HaRecord => 0x4841_5245,           // "HARE"
            Kind::SharedState => 0x5353_5431,        // "SST1"
            Kind::LoggedSnapshot => 0x4c53_4e50,     // "LSNP"
        }
    }
}

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than the header or than the header's length field promises.
    #[error("truncated {kind:?}: {actual} bytes, expected {expected}")]
    Truncated {
        /// What was being read.
        kind: Kind,
        /// Bytes present.
        actual: usize,
        /// Bytes needed.
        expected: usize,
    },
    /// The magic number is not this kind's.
    #[error("not a {kind:?}: magic {found:#010x}, expected {expected:#010x}")]
    WrongMagic {
        /// What was being read.
        kind: Kind,
        /// The magic found.
        found: u32,
        /// The magic expected.
        expected: u32,
    },
    /// A format version this build does not know.
    #[error("unknown {kind:?} format version {found}, this build reads version {FORMAT_VERSION}")]
    UnknownVersion {
        /// What was being read.
        kind: Kind,
        /// The version found.
        found: u16,
    },
    /// The payload does not match its checksum.
    #[error("corrupted {kind:?}: checksum {found:#010x}, expected {expected:#010x}")]
    Checksum {
        /// What was being read.
        kind: Kind,
        /// The checksum computed over the payload.
        found: u32,
        /// The checksum in the header.
        expected: u32,
    },
    /// Bytes after the payload.
    #[error("{kind:?} has {extra} bytes after its payload")]
    TrailingBytes {
        /// What was being read.
        kind: Kind,
        /// How many.
        extra: usize,
    },
    /// The checksum matched but the payload does not decode (a bug or a format change).
    #[error("{kind:?} payload does not decode: {detail}")]
    Payload {
        /// What was being read.
        kind: Kind,
        /// bincode's message.
        detail: String,
    },
}

/// A bound on the memory one decoded object may claim. A corrupted length prefix inside a payload
/// (whose checksum was forged or collided) must fail decoding, not ask the allocator for
/// exabytes: the fuzz test of the `_metadata` reader found that abort.
const DECODED_BYTES_MAX: usize = 4 * PAYLOAD_BYTES_MAX as usize;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODED_BYTES_MAX>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<DECODED_BYTES_MAX>()
}

/// Encodes `value` in an envelope of `kind`. The same value always gives the same bytes.
pub fn encode<T: Serialize>(kind: Kind, value: &T) -> Vec<u8> {
    let payload = bincode::serde::encode_to_vec(value, config())
        .expect("engine types always encode (no maps with non-string keys, no unsized data)");
    let length = u32::try_from(payload.len()).expect("payload fits u32");
    assert!(
        length <= PAYLOAD_BYTES_MAX,
        "encoded {kind:?} of {length} bytes exceeds the bound"
    );
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&kind.magic().to_be_bytes());
    bytes.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// Decodes an envelope of `kind`, checking magic, version, length and checksum first.
pub fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < HEADER_BYTES {
        return Err(DecodeError::Truncated {
            kind,
            actual: bytes.len(),
            expected: HEADER_BYTES,
        });
    }
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let magic = word(0);
    if magic != kind.magic() {
        return Err(DecodeError::WrongMagic {
            kind,
            found: magic,
            expected: kind.magic(),
        });
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion {
            kind,
            found: version,
        });
    }
    let length = word(6);
    let expected = HEADER_BYTES + length as usize;
    if length > PAYLOAD_BYTES_MAX || bytes.len() < expected {
        return Err(DecodeError::Truncated {
            kind,
            actual: bytes.len(),
            expected,
        });
    }
    if bytes.len() > expected {
        return Err(DecodeError::TrailingBytes {
            kind,
            extra: bytes.len() - expected,
        });
    }
    let payload = &bytes[HEADER_BYTES..];
    let checksum = crc32fast::hash(payload);
    if checksum != word(10) {
        return Err(DecodeError::Checksum {
            kind,
            found: checksum,
            expected: word(10),
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(payload, config()).map_err(|error| {
        DecodeError::Payload {
            kind,
            detail: error.to_string(),
        }
    })?;
    if used != payload.len() {
        return Err(DecodeError::TrailingBytes {
            kind,
            extra: payload.len() - used,
        });
    }
    Ok(value)
}

/// The checksum the envelope header carries for these bytes (used in state handles).
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: &str) {
        let actual = match decode::<Vec<u64>>(Kind::TaskSnapshot, bytes) {
            Ok(value) => format!("ok {value:?}"),
            Err(error) => error.to_string(),
        };
        assert_eq!(actual, expected);
    }

    #[test]
    fn round_trip_and_every_rejection() {
        let bytes = encode(Kind::TaskSnapshot, &vec![1u64, 2, 3]);
        check(&bytes, "ok [1, 2, 3]");
        check(&bytes[..5], "truncated TaskSnapshot: 5 bytes, expected 14");
        check(
            &bytes[..bytes.len() - 1],
            "truncated TaskSnapshot: 17 bytes, expected 18",
        );
        let mut flipped = bytes.clone();
        *flipped.last_mut().expect("payload") ^= 0x01;
        assert!(decode::<Vec<u64>>(Kind::TaskSnapshot, &flipped)
            .unwrap_err()
            .to_string()
            .starts_with("corrupted TaskSnapshot: checksum"));
        let mut version = bytes.clone();
        version[5] = 9;
        check(
            &version,
            "unknown TaskSnapshot format version 9, this build reads version 1",
        );
        assert!(decode::<Vec<u64>>(Kind::HaRecord, &bytes)
            .unwrap_err()
            .to_string()
            .starts_with("not a HaRecord: magic"));
        let mut longer = bytes.clone();
        longer.push(0);
        check(&longer, "TaskSnapshot has 1 bytes after its payload");
    }

    #[test]
    fn encoding_is_byte_deterministic() {
        assert_eq!(
            encode(Kind::HaRecord, &(7u64, "x")),
            encode(Kind::HaRecord, &(7u64, "x"))
        );
    }
}
