//! Bad input to `opsg-audit append`, each its own test: one error line naming where (stdin line
//! and field, or the ledger path) and why, the documented exit code, nothing on stdout, and the
//! ledger byte for byte unchanged.

mod support;

use std::path::{Path, PathBuf};
use support::*;

/// A ledger holding one incident already, so "unchanged" means something.
struct Fixture {
    dir: TempDir,
    ledger: PathBuf,
    before: Vec<u8>,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = TempDir::new(name);
        let ledger = dir.join("ledger.jsonl");
        let out = append(&ledger, &incident_chain(Scenario::Resolved, 1, T0));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let before = std::fs::read(&ledger).unwrap();
        Fixture { dir, ledger, before }
    }

    /// Append `input`; assert the failure contract; return the one error line.
    fn rejects(&self, input: &[u8], code: i32) -> String {
        let out = append(&self.ledger, input);
        rejected(&out, code);
        assert_eq!(std::fs::read(&self.ledger).unwrap(), self.before, "the ledger changed");
        let entries: Vec<_> = std::fs::read_dir(&self.dir.0).unwrap().collect();
        assert_eq!(entries.len(), 1, "files appeared next to the ledger: {entries:?}");
        error_lines(&out).remove(0)
    }
}

fn rejected(out: &std::process::Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    assert!(
        out.stdout.is_empty(),
        "something reached stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let errors = error_lines(out);
    assert_eq!(errors.len(), 1, "expected one error line: {}", stderr(out));
}

fn chain_lines() -> Vec<Vec<u8>> {
    lines(&incident_chain(Scenario::Resolved, 2, T0))
}

fn replace(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    assert!(text.contains(from), "`{from}` not in the line");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn malformed_json() {
    let fx = Fixture::new("malformed");
    let mut l = chain_lines();
    l[1] = b"{\"schema\":\"opsg.finding/v1\",\"kind\":".to_vec();
    let e = fx.rejects(&join(&l), 3);
    assert!(e.contains("stdin:2:"), "{e}");
    assert!(e.contains("malformed JSON"), "{e}");
}

#[test]
fn truncated_last_line() {
    let fx = Fixture::new("truncated");
    let input = incident_chain(Scenario::Resolved, 2, T0);
    let e = fx.rejects(&input[..input.len() - 40], 3);
    assert!(e.contains("stdin:6:"), "{e}");
    assert!(e.contains("truncated record"), "{e}");
}

#[test]
fn empty_stream() {
    let fx = Fixture::new("empty");
    let e = fx.rejects(b"", 3);
    assert!(e.contains("stdin"), "{e}");
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn wrong_schema_version() {
    let fx = Fixture::new("version");
    let mut l = chain_lines();
    l[1] = replace(&l[1], "\"opsg.finding/v1\"", "\"opsg.finding/v2\"");
    let e = fx.rejects(&join(&l), 3);
    assert!(e.contains("stdin:2: field `schema`"), "{e}");
    assert!(e.contains("unsupported schema version"), "{e}");
}

#[test]
fn record_whose_hash_does_not_match() {
    let fx = Fixture::new("hash");
    let mut l = chain_lines();
    l[2] = replace(&l[2], "\"confidence\":0.9", "\"confidence\":0.8");
    let e = fx.rejects(&join(&l), 5);
    assert!(e.contains("stdin:3: field `hash`"), "{e}");
    assert!(e.contains("hash mismatch"), "{e}");
}

#[test]
fn chain_whose_prev_does_not_link() {
    let fx = Fixture::new("link");
    let mut l = chain_lines();
    l.remove(2);
    let e = fx.rejects(&join(&l), 5);
    assert!(e.contains("stdin:3: field `prev`"), "{e}");
    assert!(e.contains("does not link"), "{e}");
}

#[test]
fn record_over_the_size_bound() {
    let fx = Fixture::new("bound");
    // About 12 MB of series points in one observation: over the default 8 MiB bound.
    let mut chain = ChainBuilder::new("run-big");
    let body = observation_body(1, T0, 1, 400_000);
    chain.push(opsg_core::Kind::Observation, "opsg-scrape", T0, body);
    let input = chain.bytes();
    assert!(input.len() > 8 << 20);
    let e = fx.rejects(&input, 3);
    assert!(e.contains("stdin:1:"), "{e}");
    assert!(e.contains("8388608-byte bound"), "{e}");
}

#[test]
fn ledger_that_is_not_writable() {
    // The parent is a regular file: fails for root too (permissions would not stop root).
    let dir = TempDir::new("unwritable");
    let parent = dir.join("not-a-directory");
    std::fs::write(&parent, b"plain file").unwrap();
    let ledger = parent.join("ledger.jsonl");
    let out = append(&ledger, &incident_chain(Scenario::Resolved, 3, T0));
    rejected(&out, 4);
    let e = &error_lines(&out)[0];
    assert!(e.contains(&format!("`{}`", ledger.display())), "{e}");
    assert_eq!(std::fs::read(&parent).unwrap(), b"plain file");
}

#[test]
fn disk_full_during_append() {
    // Every write to /dev/full fails with ENOSPC.
    if !Path::new("/dev/full").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/dev/full is required under CI=true"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n!!! SKIPPED: no /dev/full; the ENOSPC test did not run !!!\n\n",
        );
        return;
    }
    let dir = TempDir::new("enospc");
    let ledger = dir.join("ledger.jsonl");
    std::os::unix::fs::symlink("/dev/full", &ledger).unwrap();
    let out = append(&ledger, &incident_chain(Scenario::Resolved, 4, T0));
    rejected(&out, 4);
    let e = &error_lines(&out)[0];
    assert!(e.contains("ledger.jsonl"), "{e}");
    assert!(e.contains("No space left on device"), "{e}");
    assert!(std::fs::symlink_metadata(&ledger).unwrap().file_type().is_symlink());
}

#[test]
fn a_damaged_ledger_is_not_chained_onto() {
    let fx = Fixture::new("damaged");
    let mut l = lines(&fx.before);
    let last = l.len() - 1;
    l[last] = replace(&l[last], "\"outcome\":\"resolved\"", "\"outcome\":\"failed\"");
    let damaged = join(&l);
    std::fs::write(&fx.ledger, &damaged).unwrap();
    let out = append(&fx.ledger, &incident_chain(Scenario::Resolved, 5, T0));
    rejected(&out, 5);
    let e = &error_lines(&out)[0];
    assert!(e.contains("refusing to chain onto it"), "{e}");
    assert_eq!(std::fs::read(&fx.ledger).unwrap(), damaged);
}

/// Run `opsg-audit append` with a file-size limit: the kernel lets the write through up to the
/// limit, then kills the process with SIGXFSZ, as a crash or power cut mid-write would.
fn append_with_fsize_limit(
    ledger: &Path,
    input: &[u8],
    limit: u64,
) -> Option<std::process::Output> {
    let found = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prlimit (util-linux) is required under CI=true"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n!!! SKIPPED: prlimit not found; the crash-mid-append test did not run !!!\n\n",
        );
        return None;
    }
    let mut child = std::process::Command::new("prlimit")
        .arg(format!("--fsize={limit}"))
        .arg(AUDIT)
        .args(["append", "--ledger", ledger.to_str().unwrap()])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, input).unwrap();
    drop(stdin);
    Some(child.wait_with_output().unwrap())
}

#[test]
fn a_crash_mid_append_leaves_only_a_torn_line_which_the_next_append_moves_aside() {
    let fx = Fixture::new("crash");
    let limit = fx.before.len() as u64 + 1500;
    let Some(out) =
        append_with_fsize_limit(&fx.ledger, &incident_chain(Scenario::Resolved, 6, T0), limit)
    else {
        return;
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(25), "expected death by SIGXFSZ: {:?}", out.status);
    assert!(out.stdout.is_empty(), "stdout must stay empty when the append did not complete");
    let crashed = std::fs::read(&fx.ledger).unwrap();
    assert_eq!(crashed.len() as u64, limit);
    assert!(crashed.starts_with(&fx.before), "a complete record was damaged");
    let summary = opsg_audit::verify::verify_path(&fx.ledger, &Default::default()).unwrap();
    let problem = summary.problem.expect("the torn line went unnoticed");
    assert_eq!(problem.kind, opsg_audit::verify::ProblemKind::Torn);
    assert_eq!(problem.line, lines(&fx.before).len() as u64 + 1);

    let out = append(&fx.ledger, &incident_chain(Scenario::Resolved, 7, T0));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let aside = fx.dir.join(&format!("ledger.jsonl.torn-{}", fx.before.len()));
    assert_eq!(std::fs::read(aside).unwrap(), &crashed[fx.before.len()..]);
    let summary = opsg_audit::verify::verify_path(&fx.ledger, &Default::default()).unwrap();
    assert!(summary.ok(), "{:?}", summary.problem);
    assert_eq!(summary.lines, 14);
}

#[test]
fn a_record_bound_the_verifier_could_not_read_back_is_refused() {
    let fx = Fixture::new("bound-flag");
    let args =
        ["append", "--ledger", fx.ledger.to_str().unwrap(), "--max-record-bytes", "1000000000"];
    let out = audit(&args, &incident_chain(Scenario::Resolved, 8, T0));
    rejected(&out, 2);
    assert!(error_lines(&out)[0].contains("--max-record-bytes"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&fx.ledger).unwrap(), fx.before);
}

#[test]
fn record_failing_its_kinds_schema() {
    // Sealed and linked, but the ledger keeps records for good: the full schema must hold.
    let fx = Fixture::new("schema");
    let mut chain = ChainBuilder::new("run-bad-schema");
    chain.push(opsg_core::Kind::Observation, "opsg-scrape", T0, observation_body(1, T0, 1, 1));
    let finding = serde_json::json!({
        "status": "maybe", "class": "none", "fingerprint": "f", "summary": "s",
        "method": {"kind": "rules"},
    });
    chain.push(opsg_core::Kind::Finding, "opsg-triage", T0 + 1000, finding);
    let e = fx.rejects(&chain.bytes(), 3);
    assert!(e.contains("stdin:2: field `body.status`"), "{e}");
}
