//! What past runs concluded, from an `opsg-audit` ledger (schemas/HASHING.md §5).
//!
//! Triage uses it for incident continuity and opsg-plan for runbook memory. The ledger is read and
//! verified by [`opsg_core::ledger::Reader`], the one implementation every stage shares, and is
//! only learned from when it verifies completely: every line intact, sequence numbers 1, 2, 3…,
//! each line linked to the one before, every embedded record intact. One failure and the whole
//! ledger is refused (a caller says so and goes on without history): a forged "this fix worked"
//! line must not steer remediation.
//!
//! Only the records history is learned from are kept: findings, plans, verifications and reports,
//! and, when asked, the host and GPU snapshots of recent observations (a bounded number). The rest
//! of the observations (most of a ledger's bytes), decisions and executions are verified and
//! skipped without being built, so memory grows with the number of incidents, not the ledger's
//! size.

use opsg_core::kinds::observation::{ObservationBody, Window};
use opsg_core::ledger::{self, Reader};
use opsg_core::time::Timestamp;
use opsg_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
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
    Ok(read_history(path, None)?.entries)
}

/// Verify ledger bytes (see [`read_ledger`]); errors name `source`.
pub fn verify_ledger(bytes: &[u8], source: &str) -> Result<Vec<LedgerEntry>> {
    Ok(collect(Reader::new(bytes, source), None)?.entries)
}

/// What a verified ledger tells triage.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The records history is learned from, in ledger order.
    pub entries: Vec<LedgerEntry>,
    /// Host and GPU snapshots (`opsg-scrape --host --gpu`) of earlier runs' observations, oldest
    /// first: only `window`, `host` and `gpus` are kept.
    pub snapshots: Vec<ObservationBody>,
}

/// The most snapshots kept from a ledger (the latest): two hours of a cron job every minute.
pub const MAX_SNAPSHOTS: usize = 120;

/// [`read_ledger`], and with `snapshots` = `(since, until)` also the host and GPU snapshots of the
/// observations whose window ended in that span (at most [`MAX_SNAPSHOTS`], the latest), so a cron
/// run sees OOM kills and memory growth since the runs before it.
pub fn read_history(path: &Path, snapshots: Option<(Timestamp, Timestamp)>) -> Result<History> {
    match Reader::open(path)? {
        Some(reader) => collect(reader, snapshots),
        None => Ok(History::default()),
    }
}

fn collect<R: BufRead>(
    reader: Reader<R>,
    snapshots: Option<(Timestamp, Timestamp)>,
) -> Result<History> {
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    /// The parts of an observation a snapshot needs (not its targets: they can be megabytes).
    #[derive(Deserialize)]
    struct Snapshot {
        body: SnapshotBody,
    }
    #[derive(Deserialize)]
    struct SnapshotBody {
        window: Window,
        #[serde(default)]
        host: Option<Value>,
        #[serde(default)]
        gpus: Option<Value>,
    }
    let source = reader.source().to_string();
    let mut out = History::default();
    let mut recent: VecDeque<ObservationBody> = VecDeque::new();
    for entry in reader {
        let entry = entry?;
        // The kind first, without building the record (an observation can be megabytes).
        let kind: Kind = serde_json::from_slice(entry.record()).map_err(|e| {
            Error::invalid(format!("the embedded record is not a record: {e}"))
                .at_field("record")
                .in_source(&source)
                .at_line(entry.seq)
        })?;
        match kind.kind.as_deref() {
            Some(k) if LEARNED_FROM.contains(&k) => {
                out.entries.push(LedgerEntry { seq: entry.seq, record: entry.record_as(&source)? });
            }
            Some("observation") if snapshots.is_some() => {
                let Snapshot { body } = entry.record_as(&source)?;
                let ended = Timestamp::parse_rfc3339(&body.window.end).ok();
                let in_span = snapshots
                    .zip(ended)
                    .is_some_and(|((since, until), end)| since <= end && end <= until);
                if in_span && (body.host.is_some() || body.gpus.is_some()) {
                    if recent.len() == MAX_SNAPSHOTS {
                        recent.pop_front();
                    }
                    recent.push_back(ObservationBody {
                        window: body.window,
                        host: body.host,
                        gpus: body.gpus,
                        ..ObservationBody::default()
                    });
                }
            }
            _ => {}
        }
    }
    out.snapshots = recent.into();
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

    #[test]
    fn recent_snapshots_are_read_in_their_span_and_nothing_else_of_observations() {
        let observation = |end: &str, host: bool, n: u32| {
            let host = if host {
                format!(",\"host\":{{\"available\":true,\"n\":{n}}}")
            } else {
                String::new()
            };
            let unsealed = format!(
                "{{\"kind\":\"observation\",\"body\":{{\"window\":{{\"start\":\"{end}\",\"end\":\"{end}\"}},\
                 \"targets\":[]{host}}},\"prev\":\"{GENESIS}\"}}"
            );
            seal::seal(unsealed.as_bytes()).unwrap().0
        };
        let records = [
            observation("2026-11-22T05:00:00Z", true, 1),
            observation("2026-11-22T05:50:00Z", true, 2),
            observation("2026-11-22T05:55:00Z", false, 3),
            record("finding", 4),
            observation("2026-11-22T06:00:00Z", true, 5),
            observation("2026-11-22T06:30:00Z", true, 6),
        ];
        let bytes = write_ledger(&records, "2026-11-22T07:00:00.000Z").unwrap();
        let dir = std::env::temp_dir().join(format!("opsg-triage-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let h = read_history(&path, Some((t("2026-11-22T05:30:00Z"), t("2026-11-22T06:00:00Z"))))
            .unwrap();
        let seen: Vec<u64> =
            h.snapshots.iter().map(|o| o.host.as_ref().unwrap()["n"].as_u64().unwrap()).collect();
        assert_eq!(seen, [2, 5], "in the span, with a snapshot, oldest first");
        assert_eq!(h.entries.len(), 1);
        assert!(read_history(&path, None).unwrap().snapshots.is_empty());
        assert!(read_history(&dir.join("missing"), None).unwrap().entries.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
