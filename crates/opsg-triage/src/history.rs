//! What past runs concluded, from an `opsg-audit` ledger (schemas/HASHING.md §5).
//!
//! Triage uses it for incident continuity and opsg-plan for runbook memory. The ledger is read and
//! verified by [`opsg_core::ledger::Reader`], the one implementation every stage shares, and is
//! only learned from when it verifies completely: every line intact, sequence numbers 1, 2, 3…,
//! each line linked to the one before, every embedded record intact. One failure and the whole
//! ledger is refused (a caller says so and goes on without history): a forged "this fix worked"
//! line must not steer remediation.
//!
//! Only the records history is learned from are kept: findings, plans, verifications and reports.
//! Observations (most of a ledger's bytes), decisions and executions are verified and skipped
//! without being parsed, so memory grows with the number of incidents, not the ledger's size.

use opsg_core::ledger::{self, Reader};
use opsg_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

/// One record from a verified ledger.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    /// The ledger sequence number (= line number).
    pub seq: u64,
    /// The embedded record, parsed.
    pub record: Value,
}

/// The kinds history is learned from.
const LEARNED_FROM: [&str; 4] = ["finding", "plan", "verification", "report"];

/// Read and verify a ledger. A missing file is an empty history (the first run, before
/// `opsg-audit` created it); anything that fails verification is a tamper error (exit 5) naming
/// the line and the reason.
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>> {
    match Reader::open(path)? {
        Some(reader) => collect(reader),
        None => Ok(Vec::new()),
    }
}

/// Verify ledger bytes (see [`read_ledger`]); errors name `source`.
pub fn verify_ledger(bytes: &[u8], source: &str) -> Result<Vec<LedgerEntry>> {
    collect(Reader::new(bytes, source))
}

fn collect<R: BufRead>(reader: Reader<R>) -> Result<Vec<LedgerEntry>> {
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    let source = reader.source().to_string();
    let mut out = Vec::new();
    for entry in reader {
        let entry = entry?;
        // The kind first, without building the record (an observation can be megabytes).
        let kind: Kind = serde_json::from_slice(entry.record()).map_err(|e| {
            Error::invalid(format!("the embedded record is not a record: {e}"))
                .at_field("record")
                .in_source(&source)
                .at_line(entry.seq)
        })?;
        if kind.kind.is_some_and(|k| LEARNED_FROM.contains(&k.as_str())) {
            out.push(LedgerEntry { seq: entry.seq, record: entry.record_as(&source)? });
        }
    }
    Ok(out)
}

/// Build ledger bytes from records (each a sealed line): for tests and tools that need a ledger
/// without running `opsg-audit`. `appended` is the same for every line.
pub fn write_ledger(records: &[Vec<u8>], appended: &str) -> Result<Vec<u8>> {
    if appended.contains(['"', '\\']) {
        return Err(Error::invalid(format!("`{appended}` is not an append time")));
    }
    Ok(ledger::build_all(records, appended))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsg_core::seal::{self, GENESIS};

    fn record(kind: &str, n: u32) -> Vec<u8> {
        let unsealed = format!("{{\"kind\":\"{kind}\",\"n\":{n},\"prev\":\"{GENESIS}\"}}");
        seal::seal(unsealed.as_bytes()).unwrap().0
    }

    #[test]
    fn a_written_ledger_verifies_and_tampering_is_named() {
        let records = [record("finding", 1), record("plan", 2), record("report", 3)];
        let bytes = write_ledger(&records, "2026-01-01T00:00:00.000Z").unwrap();
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
        assert!(err.to_string().contains("deleted"), "{err}");

        let torn = &bytes[..bytes.len() - 1];
        assert!(verify_ledger(torn, "l").unwrap_err().to_string().contains("torn"));
    }

    #[test]
    fn only_the_records_history_learns_from_are_kept_but_all_are_verified() {
        let records = [record("observation", 1), record("finding", 2), record("execution", 3)];
        let bytes = write_ledger(&records, "2026-01-01T00:00:00.000Z").unwrap();
        let kept: Vec<u64> = verify_ledger(&bytes, "l").unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(kept, [2]);
        // A skipped record is still checked: changing it refuses the whole ledger.
        let text = String::from_utf8(bytes).unwrap().replacen("\"n\":1", "\"n\":9", 1);
        let err = verify_ledger(text.as_bytes(), "l").unwrap_err();
        assert!(err.to_string().starts_with("l:1:"), "{err}");
    }
}
