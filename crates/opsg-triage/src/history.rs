//! Reading an `opsg-audit` ledger (schemas/HASHING.md §5) for what past runs concluded.
//!
//! Triage uses it for incident continuity and opsg-plan for runbook memory. A ledger is only
//! learned from when it verifies completely: every line intact, sequence numbers 1, 2, 3…, each
//! line linked to the one before, every embedded record intact. One failure and the whole ledger
//! is refused (a caller says so and goes on without history): a forged "this fix worked" line must
//! not steer remediation.

use opsg_core::seal::{self, GENESIS};
use opsg_core::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// One record from a verified ledger.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    /// The ledger sequence number (= line number).
    pub seq: u64,
    /// The embedded record, parsed.
    pub record: Value,
}

const RECORD_MARKER: &[u8] = b",\"record\":";

/// Read and verify a ledger. A missing file is an empty history (the first run, before
/// `opsg-audit` created it); anything that fails verification is a tamper error (exit 5) naming
/// the line and the reason.
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    verify_ledger(&bytes, &path.display().to_string())
}

/// Verify ledger bytes (see [`read_ledger`]).
pub fn verify_ledger(bytes: &[u8], source: &str) -> Result<Vec<LedgerEntry>> {
    let mut out = Vec::new();
    let mut prev = GENESIS;
    let mut rest = bytes;
    let mut k: u64 = 0;
    while !rest.is_empty() {
        k += 1;
        let at = |e: Error| e.in_source(source).at_line(k);
        let (line, tail) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => return Err(at(Error::tamper("torn line: the last line has no newline"))),
        };
        rest = tail;
        let parts = seal::verify(line).map_err(|e| at(Error::tamper(e.to_string())))?;
        if parts.prev != prev {
            return Err(at(Error::tamper(format!(
                "does not link: `prev` is `{}` but line {} hashes to `{}`",
                parts.prev.short(16),
                k - 1,
                prev.short(16)
            ))));
        }
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| at(Error::tamper(format!("not JSON: {e}"))))?;
        if value.get("ledger").and_then(Value::as_str) != Some("opsg.ledger/v1") {
            return Err(at(Error::tamper("not an `opsg.ledger/v1` line")));
        }
        let seq = value.get("seq").and_then(Value::as_u64);
        if seq != Some(k) {
            return Err(at(Error::tamper(format!(
                "sequence number is {} where {k} was expected (a line was removed, inserted or reordered)",
                seq.map_or("missing".to_string(), |s| s.to_string())
            ))));
        }
        let start = line
            .windows(RECORD_MARKER.len())
            .position(|w| w == RECORD_MARKER)
            .map(|i| i + RECORD_MARKER.len())
            .ok_or_else(|| at(Error::tamper("no embedded `record`")))?;
        let end = line.len().saturating_sub(seal::TAIL_LEN);
        if start >= end {
            return Err(at(Error::tamper("no embedded `record`")));
        }
        seal::verify(&line[start..end])
            .map_err(|e| at(Error::tamper(format!("embedded record: {e}"))))?;
        let record = value.get("record").cloned().unwrap_or(Value::Null);
        out.push(LedgerEntry { seq: k, record });
        prev = parts.hash;
    }
    Ok(out)
}

/// Build ledger bytes from records (each a sealed line): for tests and tools that need a ledger
/// without running `opsg-audit`. `appended` is the same for every line.
pub fn write_ledger(records: &[Vec<u8>], appended: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut prev = GENESIS;
    for (i, record) in records.iter().enumerate() {
        let mut unsealed = format!(
            "{{\"ledger\":\"opsg.ledger/v1\",\"seq\":{},\"appended\":\"{appended}\",\"record\":",
            i + 1
        )
        .into_bytes();
        unsealed.extend_from_slice(record);
        unsealed.extend_from_slice(format!(",\"prev\":\"{prev}\"}}").as_bytes());
        let (line, hash) =
            seal::seal(&unsealed).ok_or_else(|| Error::internal("cannot seal a ledger line"))?;
        out.extend_from_slice(&line);
        out.push(b'\n');
        prev = hash;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> Vec<u8> {
        let (line, _) =
            seal::seal(format!("{{\"n\":{n},\"prev\":\"{GENESIS}\"}}").as_bytes()).unwrap();
        line
    }

    #[test]
    fn a_written_ledger_verifies_and_tampering_is_named() {
        let bytes =
            write_ledger(&[record(1), record(2), record(3)], "2026-01-01T00:00:00.000Z").unwrap();
        let entries = verify_ledger(&bytes, "l").unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].record["n"], 3);

        let text = String::from_utf8(bytes.clone()).unwrap();
        let modified = text.replacen("\"n\":2", "\"n\":7", 1);
        let err = verify_ledger(modified.as_bytes(), "l").unwrap_err();
        assert_eq!(err.status().code(), 5);
        assert!(err.to_string().starts_with("l:2:"), "{err}");

        let lines: Vec<&str> = text.lines().collect();
        let dropped = format!("{}\n{}\n", lines[0], lines[2]);
        let err = verify_ledger(dropped.as_bytes(), "l").unwrap_err();
        assert!(err.to_string().contains("l:2:"), "{err}");

        let torn = &bytes[..bytes.len() - 1];
        assert!(verify_ledger(torn, "l").unwrap_err().to_string().contains("torn"));
    }
}
