//! Sealing: how a record's hash is computed and how records link into a chain.
//!
//! The normative description is `schemas/HASHING.md`; this is its reference implementation.
//!
//! A sealed line is a compact JSON object whose last two members are, in this order and with no
//! whitespace, `"prev":"<64 hex>"` and `"hash":"<64 hex>"`:
//!
//! ```text
//! {"schema":"opsg.plan/v1", … ,"prev":"<64 lowercase hex>","hash":"<64 lowercase hex>"}
//! ```
//!
//! `hash` is SHA-256 over the exact bytes of the line with the hash member removed, i.e. over
//! `line[..len - 75] + "}"` (75 = the length of `,"hash":"` + 64 hex + `"}`). That input is itself
//! the valid JSON object the writer serialized before sealing. `prev` is the `hash` of the record
//! before it in the stream, or 64 zeros ([`GENESIS`]) for the first record of a chain.
//!
//! Hashing exact bytes instead of a canonical form (RFC 8785) is deliberate: a verifier needs no
//! JSON parser and no canonicalizer to check a seal, so it runs at SHA-256 speed (about 1.3 GB/s a
//! core) instead of canonicalization speed (about 35 MB/s), and two implementations cannot disagree
//! about canonical number formatting. The price: a record must be passed through byte for byte,
//! never re-serialized; every opsg stage does exactly that.

// `SealError` is as large as the `SealedParts` of the Ok side (two 64-byte hex digests), so boxing
// it would add an allocation to the verifier's error path and save nothing on the happy path.
#![allow(clippy::result_large_err)]

use sha2::{Digest, Sha256};

/// The `prev` of the first record of a chain: 64 zeros.
pub const GENESIS: HashHex = HashHex([b'0'; 64]);

/// Length of the hash member and closing brace: `,"hash":"` + 64 hex + `"}`.
pub const HASH_TAIL_LEN: usize = 9 + 64 + 2;

/// Length of the fixed tail: `,"prev":"` + 64 hex + `","hash":"` + 64 hex + `"}`.
pub const TAIL_LEN: usize = 9 + 64 + 10 + 64 + 2;

const PREV_MARKER: &[u8] = b",\"prev\":\"";
const HASH_MARKER: &[u8] = b"\",\"hash\":\"";

/// A SHA-256 digest as 64 lowercase hex digits (the form it has in records).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashHex(pub [u8; 64]);

impl HashHex {
    /// Hex-encode a digest.
    pub fn from_digest(digest: &[u8]) -> HashHex {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, byte) in digest.iter().take(32).enumerate() {
            out[2 * i] = HEX[(byte >> 4) as usize];
            out[2 * i + 1] = HEX[(byte & 0x0f) as usize];
        }
        HashHex(out)
    }

    /// Parse 64 lowercase hex digits.
    pub fn parse(text: &[u8]) -> Option<HashHex> {
        if text.len() != 64 || !text.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 64];
        out.copy_from_slice(text);
        Some(HashHex(out))
    }

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> HashHex {
        HashHex::from_digest(&Sha256::digest(bytes))
    }

    /// The hex digits as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// True for the all-zero [`GENESIS`] value.
    pub fn is_genesis(&self) -> bool {
        *self == GENESIS
    }

    /// The first `n` hex digits (for short ids in messages).
    pub fn short(&self, n: usize) -> &str {
        &self.as_str()[..n.min(64)]
    }
}

impl std::fmt::Debug for HashHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashHex({})", self.as_str())
    }
}

impl std::fmt::Display for HashHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for HashHex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for HashHex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<HashHex, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        HashHex::parse(text.as_bytes())
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

/// Why a line is not a valid sealed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// The line does not end with the `"prev":…,"hash":…}` tail.
    MissingTail,
    /// The stored hash does not match the bytes.
    HashMismatch {
        /// The hash stored in the line.
        stored: HashHex,
        /// The hash the bytes actually have.
        computed: HashHex,
    },
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::MissingTail => f.write_str(
                "not a sealed record: it must end with `\"prev\":\"<64 hex>\",\"hash\":\"<64 hex>\"}`",
            ),
            SealError::HashMismatch { stored, computed } => write!(
                f,
                "hash mismatch: the record says `{}`, its bytes hash to `{}` (the record was modified)",
                stored.short(16),
                computed.short(16)
            ),
        }
    }
}

/// The parts of a sealed line, found at fixed offsets from its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedParts {
    /// The `prev` member.
    pub prev: HashHex,
    /// The `hash` member.
    pub hash: HashHex,
}

/// Split a sealed line (without its trailing newline) into its `prev` and `hash`, without parsing
/// the JSON and without checking the hash.
pub fn parts(line: &[u8]) -> Result<SealedParts, SealError> {
    let n = line.len();
    if n < TAIL_LEN + 1 || line[0] != b'{' || &line[n - 2..] != b"\"}" {
        return Err(SealError::MissingTail);
    }
    let tail = &line[n - TAIL_LEN..];
    if &tail[..9] != PREV_MARKER || &tail[73..83] != HASH_MARKER {
        return Err(SealError::MissingTail);
    }
    let prev = HashHex::parse(&tail[9..73]).ok_or(SealError::MissingTail)?;
    let hash = HashHex::parse(&tail[83..147]).ok_or(SealError::MissingTail)?;
    Ok(SealedParts { prev, hash })
}

/// The hash a sealed line's bytes actually have: SHA-256 of `line[..len-75] + "}"`.
pub fn compute(line: &[u8]) -> Result<HashHex, SealError> {
    if line.len() < HASH_TAIL_LEN + 1 {
        return Err(SealError::MissingTail);
    }
    let mut hasher = Sha256::new();
    hasher.update(&line[..line.len() - HASH_TAIL_LEN]);
    hasher.update(b"}");
    Ok(HashHex::from_digest(&hasher.finalize()))
}

/// Check a sealed line's hash against its bytes; returns its parts when it holds.
pub fn verify(line: &[u8]) -> Result<SealedParts, SealError> {
    let parts = parts(line)?;
    let computed = compute(line)?;
    if computed != parts.hash {
        return Err(SealError::HashMismatch { stored: parts.hash, computed });
    }
    Ok(parts)
}

/// Seal the compact JSON of an object whose last member is `"prev":"<64 hex>"`: hash it and append
/// the hash member. Returns the sealed line (no newline) and its hash.
///
/// Panics never; returns `None` when the input does not end with a `prev` member, which would be a
/// bug in the caller's serialization.
pub fn seal(unsealed: &[u8]) -> Option<(Vec<u8>, HashHex)> {
    let n = unsealed.len();
    // `,"prev":"` + 64 + `"}`
    if n < 9 + 64 + 2 + 1 || &unsealed[n - 75..n - 66] != PREV_MARKER || unsealed[n - 1] != b'}' {
        return None;
    }
    let hash = HashHex::of(unsealed);
    let mut line = Vec::with_capacity(n + HASH_TAIL_LEN - 1);
    line.extend_from_slice(&unsealed[..n - 1]);
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(&hash.0);
    line.extend_from_slice(b"\"}");
    Some((line, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsealed(body: &str, prev: HashHex) -> Vec<u8> {
        format!("{{{body},\"prev\":\"{prev}\"}}").into_bytes()
    }

    #[test]
    fn seal_then_verify() {
        let (line, hash) = seal(&unsealed("\"a\":1", GENESIS)).unwrap();
        let parts = verify(&line).unwrap();
        assert_eq!(parts.hash, hash);
        assert_eq!(parts.prev, GENESIS);
        // The hash input is the object without its hash member: independently recomputable.
        let expected = HashHex::of(format!("{{\"a\":1,\"prev\":\"{GENESIS}\"}}").as_bytes());
        assert_eq!(hash, expected);
    }

    #[test]
    fn any_changed_byte_is_detected() {
        let (line, _) = seal(&unsealed("\"a\":1,\"b\":\"xyz\"", GENESIS)).unwrap();
        for i in 1..line.len() - HASH_TAIL_LEN {
            let mut bad = line.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn rejects_lines_without_the_tail() {
        assert_eq!(parts(b"{\"a\":1}"), Err(SealError::MissingTail));
        assert_eq!(verify(b""), Err(SealError::MissingTail));
        let (line, _) = seal(&unsealed("\"a\":1", GENESIS)).unwrap();
        assert_eq!(verify(&line[..line.len() - 1]), Err(SealError::MissingTail));
        let upper = String::from_utf8(line).unwrap().replace("\"prev\":\"0000", "\"prev\":\"000A");
        assert!(verify(upper.as_bytes()).is_err());
    }

    #[test]
    fn seal_refuses_objects_without_prev_last() {
        assert!(seal(b"{\"a\":1}").is_none());
    }
}
