//! The ledger line (`schemas/HASHING.md`, section 5): building one, and taking one apart at fixed
//! offsets without a JSON parser, so a verifier runs at hashing speed.
//!
//! ```text
//! {"ledger":"opsg.ledger/v1","seq":<S>,"appended":"<T>","record":<R>,"prev":"<P>","hash":"<H>"}
//! ```

use opsg_core::seal::{self, HashHex, SealError, TAIL_LEN};

/// The ledger format id carried by every line.
pub const LEDGER_ID: &str = "opsg.ledger/v1";

/// Everything before the sequence number.
const PREFIX: &[u8] = b"{\"ledger\":\"opsg.ledger/v1\",\"seq\":";
/// Between the sequence number and the append time.
const APPENDED: &[u8] = b",\"appended\":\"";
/// Between the append time and the embedded record.
const RECORD: &[u8] = b"\",\"record\":";
/// The longest append time accepted (RFC 3339 with nanoseconds and an offset is 35 bytes).
const MAX_APPENDED: usize = 64;
/// The most digits a `u64` sequence number can have.
const MAX_SEQ_DIGITS: usize = 20;

/// Build a sealed ledger line (without its newline) for `record`, the exact bytes of a sealed
/// record, at sequence number `seq`, linked after `prev`. Returns the line and its hash.
///
/// `appended` must be an RFC 3339 time (no quote or backslash: it is embedded as is).
pub fn build(seq: u64, appended: &str, record: &[u8], prev: HashHex) -> (Vec<u8>, HashHex) {
    let mut line = Vec::with_capacity(PREFIX.len() + 20 + APPENDED.len() + 40 + record.len() + 160);
    line.extend_from_slice(PREFIX);
    line.extend_from_slice(seq.to_string().as_bytes());
    line.extend_from_slice(APPENDED);
    line.extend_from_slice(appended.as_bytes());
    line.extend_from_slice(RECORD);
    line.extend_from_slice(record);
    line.extend_from_slice(b",\"prev\":\"");
    line.extend_from_slice(&prev.0);
    line.extend_from_slice(b"\"}");
    let hash = HashHex::of(&line);
    // Turn the unsealed object into the sealed line in place: drop its closing brace, append the
    // hash member (HASHING.md section 3 read backwards).
    line.pop();
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(&hash.0);
    line.extend_from_slice(b"\"}");
    (line, hash)
}

/// The parts of a ledger line, found at fixed places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineParts<'a> {
    /// The sequence number `S`.
    pub seq: u64,
    /// The append time `T` (not checked beyond "no quote, no backslash").
    pub appended: &'a [u8],
    /// The embedded record `R`, exact bytes.
    pub record: &'a [u8],
    /// The previous ledger line's hash `P`.
    pub prev: HashHex,
    /// This line's hash `H` as stored.
    pub hash: HashHex,
}

/// Why a line does not have the ledger-line shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeError {
    /// It does not end with the sealed tail (HASHING.md section 2).
    NotSealed,
    /// It does not begin with `{"ledger":"opsg.ledger/v1","seq":`.
    Prefix,
    /// The sequence number is not a plain positive integer.
    Seq,
    /// The append time is missing, too long, or holds a quote or backslash.
    Appended,
    /// The embedded record is empty.
    Record,
}

impl ShapeError {
    /// The member the problem is in.
    pub fn field(self) -> &'static str {
        match self {
            ShapeError::NotSealed => "hash",
            ShapeError::Prefix => "ledger",
            ShapeError::Seq => "seq",
            ShapeError::Appended => "appended",
            ShapeError::Record => "record",
        }
    }
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShapeError::NotSealed => {
                "not a sealed ledger line: it must end with `,\"prev\":\"<64 hex>\",\"hash\":\"<64 hex>\"}`"
            }
            ShapeError::Prefix => {
                "not a ledger line: it must begin with `{\"ledger\":\"opsg.ledger/v1\",\"seq\":`"
            }
            ShapeError::Seq => "`seq` is not a positive integer without sign or leading zeros",
            ShapeError::Appended => "`appended` is not a plain string followed by `,\"record\":`",
            ShapeError::Record => "the embedded `record` is empty",
        })
    }
}

/// Take a ledger line (without its newline) apart. Checks the shape only, not the hashes.
pub fn parse(line: &[u8]) -> Result<LineParts<'_>, ShapeError> {
    let sealed = seal::parts(line).map_err(|_| ShapeError::NotSealed)?;
    let body_end = line.len() - TAIL_LEN;
    let rest = line.strip_prefix(PREFIX).ok_or(ShapeError::Prefix)?;
    let digits = rest.iter().take(MAX_SEQ_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_SEQ_DIGITS || rest[0] == b'0' {
        return Err(ShapeError::Seq);
    }
    let seq = rest[..digits]
        .iter()
        .try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or(ShapeError::Seq)?;
    let rest = rest[digits..].strip_prefix(APPENDED).ok_or(ShapeError::Appended)?;
    let quote = rest
        .iter()
        .take(MAX_APPENDED + 1)
        .position(|&b| b == b'"' || b == b'\\')
        .ok_or(ShapeError::Appended)?;
    if quote == 0 || rest[quote] != b'"' {
        return Err(ShapeError::Appended);
    }
    let appended = &rest[..quote];
    let rest = rest[quote..].strip_prefix(RECORD).ok_or(ShapeError::Appended)?;
    let record_start = line.len() - rest.len();
    if record_start >= body_end {
        return Err(ShapeError::Record);
    }
    Ok(LineParts {
        seq,
        appended,
        record: &line[record_start..body_end],
        prev: sealed.prev,
        hash: sealed.hash,
    })
}

/// What is wrong with one line on its own (before looking at its neighbours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFault {
    /// Not a ledger line at all (rule 2, shape).
    Shape(ShapeError),
    /// The line's bytes do not hash to the `hash` it carries (rule 2, intact).
    NotIntact {
        /// The hash stored in the line.
        stored: HashHex,
        /// The hash its bytes have.
        computed: HashHex,
    },
    /// The embedded record is not a sealed line (rule 5, shape).
    RecordShape,
    /// The embedded record's bytes do not hash to its own `hash` (rule 5, intact).
    RecordNotIntact {
        /// The hash stored in the record.
        stored: HashHex,
        /// The hash its bytes have.
        computed: HashHex,
    },
    /// The line is longer than the verifier's bound (not examined further).
    Oversized,
}

/// The per-line facts the chain checks need: computed independently for every line (in parallel),
/// then linked in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineFacts {
    /// Byte offset of the line in the ledger.
    pub offset: u64,
    /// Length without the newline.
    pub len: u32,
    /// `S`, when the line has the shape.
    pub seq: u64,
    /// `P`, when the line has the shape.
    pub prev: HashHex,
    /// `H` as stored, when the line has the shape.
    pub hash: HashHex,
    /// The first thing wrong with the line on its own.
    pub fault: Option<LineFault>,
}

/// Check one line on its own: shape, its seal (rule 2) and its record's seal (rule 5).
pub fn examine(line: &[u8], offset: u64) -> LineFacts {
    let mut facts = LineFacts {
        offset,
        len: u32::try_from(line.len()).unwrap_or(u32::MAX),
        seq: 0,
        prev: seal::GENESIS,
        hash: seal::GENESIS,
        fault: None,
    };
    let parts = match parse(line) {
        Ok(parts) => parts,
        Err(e) => {
            facts.fault = Some(LineFault::Shape(e));
            return facts;
        }
    };
    facts.seq = parts.seq;
    facts.prev = parts.prev;
    facts.hash = parts.hash;
    match seal::compute(line) {
        Ok(computed) if computed == parts.hash => {}
        Ok(computed) => {
            facts.fault = Some(LineFault::NotIntact { stored: parts.hash, computed });
            return facts;
        }
        Err(_) => {
            facts.fault = Some(LineFault::Shape(ShapeError::NotSealed));
            return facts;
        }
    }
    match seal::verify(parts.record) {
        Ok(_) => {}
        Err(SealError::MissingTail) => facts.fault = Some(LineFault::RecordShape),
        Err(SealError::HashMismatch { stored, computed }) => {
            facts.fault = Some(LineFault::RecordNotIntact { stored, computed })
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsg_core::seal::GENESIS;

    fn record() -> Vec<u8> {
        seal::seal(format!("{{\"a\":1,\"prev\":\"{GENESIS}\"}}").as_bytes()).unwrap().0
    }

    #[test]
    fn built_lines_parse_back_and_are_intact() {
        let rec = record();
        let (line, hash) = build(42, "2026-11-22T06:24:23.123Z", &rec, GENESIS);
        let parts = parse(&line).unwrap();
        assert_eq!(parts.seq, 42);
        assert_eq!(parts.appended, b"2026-11-22T06:24:23.123Z");
        assert_eq!(parts.record, &rec[..]);
        assert_eq!(parts.prev, GENESIS);
        assert_eq!(parts.hash, hash);
        assert_eq!(seal::verify(&line).unwrap().hash, hash);
        assert_eq!(examine(&line, 0).fault, None);
        // The line is JSON with the members in the documented order.
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["ledger"], LEDGER_ID);
        assert_eq!(value["seq"], 42);
        assert_eq!(value["record"]["a"], 1);
    }

    #[test]
    fn the_worked_example_in_hashing_md_holds() {
        // HASHING.md section 7 quotes these bytes: the spec and the code cannot drift apart.
        let record = seal::seal(format!("{{\"a\":1,\"prev\":\"{GENESIS}\"}}").as_bytes()).unwrap();
        assert_eq!(
            record.1.as_str(),
            "377e001479caf256112dd83b12144e8c782371b3b8fd00555725ed20c0550048"
        );
        let (line, hash) = build(1, "2026-01-01T00:00:00.000Z", &record.0, GENESIS);
        let expected = format!(
            "{{\"ledger\":\"opsg.ledger/v1\",\"seq\":1,\"appended\":\"2026-01-01T00:00:00.000Z\",\
             \"record\":{},\"prev\":\"{GENESIS}\",\"hash\":\"{hash}\"}}",
            String::from_utf8(record.0.clone()).unwrap()
        );
        assert_eq!(String::from_utf8(line).unwrap(), expected);
        assert_eq!(
            hash.as_str(),
            "8b305883592eef2cee973006f9cf5c87ab0c9f43ec339b0014ba6085ed2c1313"
        );
    }

    #[test]
    fn shape_errors_name_the_member() {
        let rec = record();
        let (line, _) = build(7, "2026-11-22T06:24:23.123Z", &rec, GENESIS);
        let text = String::from_utf8(line).unwrap();
        let bad = |from: &str, to: &str| parse(text.replacen(from, to, 1).as_bytes()).unwrap_err();
        assert_eq!(bad("\"seq\":7", "\"seq\":07"), ShapeError::Seq);
        assert_eq!(bad("\"seq\":7", "\"seq\":-7"), ShapeError::Seq);
        assert_eq!(bad("\"seq\":7", "\"seq\":7.0"), ShapeError::Appended);
        assert_eq!(bad("opsg.ledger/v1", "opsg.ledger/v2"), ShapeError::Prefix);
        assert_eq!(bad("06:24:23.123Z", "06:24:23\\\"Z"), ShapeError::Appended);
        assert_eq!(parse(b"{}"), Err(ShapeError::NotSealed));
        assert_eq!(
            parse(&build(u64::MAX, "t", &rec, GENESIS).0).map(|p| p.seq),
            Ok(u64::MAX),
            "the largest sequence number parses"
        );
    }

    #[test]
    fn examine_tells_line_and_record_faults_apart() {
        let rec = record();
        let (line, _) = build(1, "t", &rec, GENESIS);
        let mut flipped = line.clone();
        flipped[60] ^= 1;
        assert!(matches!(examine(&flipped, 0).fault, Some(LineFault::NotIntact { .. })));
        // Change the record and reseal the ledger line only: the record's own seal catches it.
        let forged = String::from_utf8(rec).unwrap().replace("\"a\":1", "\"a\":2");
        let (line, _) = build(1, "t", forged.as_bytes(), GENESIS);
        assert!(matches!(examine(&line, 0).fault, Some(LineFault::RecordNotIntact { .. })));
        let (line, _) = build(1, "t", b"{\"a\":1}", GENESIS);
        assert_eq!(examine(&line, 0).fault, Some(LineFault::RecordShape));
    }
}
