//! Many writers at once (overlapping cron jobs): 8 `opsg-audit append` processes started together,
//! 500 records each, on one ledger. No record may be lost, no append interleaved with another,
//! and the chain must verify. Then 8 writers each making 5 appends of 100 records, for more
//! contention on the lock.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use support::*;

/// Start one `append` per input at once (all spawned, then fed together), wait for all.
fn append_all_at_once(ledger: &std::path::Path, inputs: Vec<Vec<u8>>) -> Vec<std::process::Output> {
    let barrier = Arc::new(Barrier::new(inputs.len()));
    let handles: Vec<_> = inputs
        .into_iter()
        .map(|input| {
            let mut child = Command::new(AUDIT)
                .args(["append", "--ledger", ledger.to_str().unwrap()])
                .env_clear()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().unwrap();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                stdin.write_all(&input).unwrap();
                drop(stdin);
                child.wait_with_output().unwrap()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Check the ledger holds every input's records, each input's run contiguous and in order and
/// followed by its report; return the number of lines.
fn check_ledger(
    ledger: &std::path::Path,
    inputs: &[Vec<u8>],
    outputs: &[std::process::Output],
) -> usize {
    let raw = std::fs::read(ledger).unwrap();
    let ledger_lines = lines(&raw);
    let embedded: Vec<Vec<u8>> = ledger_lines
        .iter()
        .map(|l| opsg_audit::line::parse(l).expect("a ledger line").record.to_vec())
        .collect();
    let position: HashMap<&[u8], usize> =
        embedded.iter().enumerate().map(|(i, r)| (r.as_slice(), i)).collect();
    assert_eq!(position.len(), embedded.len(), "a record was appended twice");
    let mut total = 0;
    for (input, out) in inputs.iter().zip(outputs) {
        assert_eq!(out.status.code(), Some(10), "{}", stderr(out));
        let records = lines(input);
        let report = lines(&out.stdout).pop().unwrap();
        let first = *position.get(records[0].as_slice()).expect("a record was lost");
        for (i, record) in records.iter().chain([&report]).enumerate() {
            assert_eq!(&embedded[first + i], record, "an append was interleaved or reordered");
        }
        let body = json(&report);
        assert_eq!(body["body"]["ledger"]["first_seq"], first as u64 + 1);
        assert_eq!(body["body"]["ledger"]["last_seq"], (first + records.len()) as u64);
        total += records.len() + 1;
    }
    assert_eq!(embedded.len(), total, "the ledger holds records nobody appended");
    let summary = opsg_audit::verify::verify_path(ledger, &Default::default()).unwrap();
    assert!(summary.ok(), "{:?}", summary.problem);
    assert_eq!(summary.lines, total as u64);
    total
}

#[test]
fn eight_processes_append_500_records_each_at_once() {
    let dir = TempDir::new("concurrent");
    let ledger = dir.join("ledger.jsonl");
    let inputs: Vec<Vec<u8>> = (0..8).map(|seed| observation_chain(500, seed, 1)).collect();
    let outputs = append_all_at_once(&ledger, inputs.clone());
    assert_eq!(check_ledger(&ledger, &inputs, &outputs), 8 * 501);
}

#[test]
fn eight_writers_make_five_appends_each_under_contention() {
    let dir = TempDir::new("contention");
    let ledger = dir.join("ledger.jsonl");
    let inputs: Vec<Vec<Vec<u8>>> = (0..8)
        .map(|w| (0..5).map(|i| observation_chain(100, 100 + w * 10 + i, 1)).collect())
        .collect();
    let barrier = Arc::new(Barrier::new(8));
    let writers: Vec<_> = inputs
        .iter()
        .cloned()
        .map(|mine| {
            let ledger = ledger.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                mine.iter().map(|input| append(&ledger, input)).collect::<Vec<_>>()
            })
        })
        .collect();
    let outputs: Vec<std::process::Output> =
        writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let flat: Vec<Vec<u8>> = inputs.into_iter().flatten().collect();
    assert_eq!(check_ledger(&ledger, &flat, &outputs), 40 * 101);
}

#[test]
fn verify_waits_for_an_append_in_progress_instead_of_calling_it_torn() {
    let dir = TempDir::new("verify-during-append");
    let ledger = dir.join("ledger.jsonl");
    let out = append(&ledger, &observation_chain(20, 1, 1));
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let raw = std::fs::read(&ledger).unwrap();
    let last = lines(&raw).pop().unwrap();
    let parts = opsg_audit::line::parse(&last).unwrap();
    let record = parts.record.to_vec();
    let (next, _) =
        opsg_audit::line::build(parts.seq + 1, "2030-01-01T00:00:00.000Z", &record, parts.hash);

    // Play a writer: take the lock, write half the line, and start a verification meanwhile.
    let mut file = std::fs::OpenOptions::new().append(true).open(&ledger).unwrap();
    file.lock().unwrap();
    file.write_all(&next[..next.len() / 2]).unwrap();
    let mut verify = Command::new(AUDIT)
        .args(["verify", "--ledger", ledger.to_str().unwrap()])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(verify.try_wait().unwrap().is_none(), "verify did not wait for the writer's lock");
    file.write_all(&next[next.len() / 2..]).unwrap();
    file.write_all(b"\n").unwrap();
    file.unlock().unwrap();
    let out = verify.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("ok: 22 lines"), "{}", stderr(&out));
}
