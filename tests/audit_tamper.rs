//! The tamper suite: on a ledger of more than 1,000 records written by `opsg-audit append`,
//! EVERY single-line modification, re-sealed rewrite, deletion, insertion, duplication and
//! adjacent swap is detected at the right line; truncation and rewriting of the tail against a
//! checkpoint; forged checkpoints are refused. The exhaustive loops verify in-process through the
//! crate's library (the same code the binary runs); a sample of each goes through the binary, and
//! an independent Python verifier written from HASHING.md must agree with it.

mod support;

use opsg_audit::checkpoint::Checkpoint;
use opsg_audit::line;
use opsg_audit::verify::{self, Options, ProblemKind, Summary};
use opsg_core::seal::{self, GENESIS, HashHex};
use std::path::Path;
use std::sync::OnceLock;
use support::*;

const KEY: &str = "correct horse battery staple";

/// The shared ledger: 10 appends of 100 observations (plus each append's report) = 1,010 lines.
fn ledger() -> &'static Vec<Vec<u8>> {
    static LEDGER: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let dir = TempDir::new("tamper-gen");
        let path = dir.join("ledger.jsonl");
        for seed in 0..10 {
            let out = append(&path, &observation_chain(100, seed, 1));
            assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
        }
        let lines = lines(&std::fs::read(&path).unwrap());
        assert!(lines.len() >= 1000);
        lines
    })
}

fn hash_of(line: &[u8]) -> HashHex {
    seal::parts(line).unwrap().hash
}

fn verify_lines(lines: &[Vec<u8>], checkpoint: Option<&Checkpoint>) -> Summary {
    let bytes = join(lines);
    let options = Options { checkpoint: checkpoint.cloned(), quiet: true, max_line_bytes: 0 };
    verify::verify_reader(&bytes[..], None, &options).unwrap()
}

/// Run `check(k)` for every k in `range`, on two threads.
fn for_each_line(range: std::ops::RangeInclusive<usize>, check: impl Fn(usize) + Sync) {
    let ks: Vec<usize> = range.collect();
    std::thread::scope(|scope| {
        for part in ks.chunks(ks.len().div_ceil(2).max(1)) {
            let check = &check;
            scope.spawn(move || part.iter().for_each(|&k| check(k)));
        }
    });
}

/// Assert the first problem is at `line` (and the first failing rule at `first_bad`).
fn expect(summary: Summary, line: usize, first_bad: usize, kinds: &[ProblemKind], what: &str) {
    let p = summary.problem.unwrap_or_else(|| panic!("{what}: went unnoticed"));
    assert_eq!(p.line, line as u64, "{what}: reported at the wrong line: {p:?}");
    assert_eq!(p.first_bad_line, first_bad as u64, "{what}: {p:?}");
    assert!(kinds.contains(&p.kind), "{what}: reported as {:?}: {}", p.kind, p.message);
}

/// Replace `"replay":false` in a ledger line's record and re-seal the ledger line only.
fn record_changed(line: &[u8], reseal_record: bool) -> Vec<u8> {
    let parts = line::parse(line).unwrap();
    let record = String::from_utf8(parts.record.to_vec()).unwrap();
    assert!(record.contains("\"replay\":false"));
    let changed = record.replacen("\"replay\":false", "\"replay\":true", 1).into_bytes();
    let record = if reseal_record {
        let mut unsealed = changed[..changed.len() - seal::HASH_TAIL_LEN].to_vec();
        unsealed.push(b'}');
        seal::seal(&unsealed).unwrap().0
    } else {
        changed
    };
    let appended = std::str::from_utf8(parts.appended).unwrap();
    line::build(parts.seq, appended, &record, parts.prev).0
}

#[test]
fn the_generated_ledger_verifies() {
    let lines = ledger();
    let summary = verify_lines(lines, None);
    assert!(summary.ok(), "{:?}", summary.problem);
    assert_eq!(summary.lines, lines.len() as u64);
    assert_eq!(summary.head, hash_of(lines.last().unwrap()));
}

#[test]
fn every_modified_byte_is_found_at_its_line() {
    let lines = ledger();
    let n = lines.len();
    for_each_line(1..=n, |k| {
        let mut t = lines.clone();
        let line = &mut t[k - 1];
        let at = (k * 7919) % line.len();
        line[at] ^= 0x01;
        let kinds = [ProblemKind::Modified, ProblemKind::Malformed];
        expect(verify_lines(&t, None), k, k, &kinds, &format!("byte {at} of line {k} flipped"));
    });
}

#[test]
fn every_modified_record_is_found_even_when_the_ledger_line_is_resealed() {
    let lines = ledger();
    for_each_line(1..=lines.len(), |k| {
        let mut t = lines.clone();
        t[k - 1] = record_changed(&lines[k - 1], false);
        expect(
            verify_lines(&t, None),
            k,
            k,
            &[ProblemKind::RecordModified],
            &format!("record {k}"),
        );
    });
}

#[test]
fn every_rewritten_and_resealed_line_is_named_not_its_successor() {
    let lines = ledger();
    let n = lines.len();
    let cp = Checkpoint::new(None, n as u64, hash_of(&lines[n - 1]), "t".into(), None);
    for_each_line(1..=n, |k| {
        let mut t = lines.clone();
        t[k - 1] = record_changed(&lines[k - 1], true);
        if k < n {
            // Line k is intact in itself; line k+1 still records its old hash.
            expect(
                verify_lines(&t, None),
                k,
                k + 1,
                &[ProblemKind::Rewritten],
                &format!("rewrite {k}"),
            );
        } else {
            assert!(verify_lines(&t, None).ok(), "the chain alone cannot see the head rewritten");
            let kinds = [ProblemKind::CheckpointMismatch];
            expect(verify_lines(&t, Some(&cp)), n, n, &kinds, "head rewritten");
        }
    });
}

#[test]
fn every_deleted_line_is_found_and_the_last_one_by_the_checkpoint() {
    let lines = ledger();
    let n = lines.len();
    let cp = Checkpoint::new(None, n as u64, hash_of(&lines[n - 1]), "t".into(), None);
    for_each_line(1..=n, |k| {
        let mut t = lines.clone();
        t.remove(k - 1);
        if k < n {
            expect(verify_lines(&t, None), k, k, &[ProblemKind::Deleted], &format!("delete {k}"));
        } else {
            assert!(verify_lines(&t, None).ok());
            expect(verify_lines(&t, Some(&cp)), n, n, &[ProblemKind::Truncated], "delete last");
        }
    });
}

#[test]
fn every_inserted_line_is_found_forged_foreign_or_copied() {
    let lines = ledger();
    let n = lines.len();
    let foreign_record = lines::record_of(&lines[0]);
    for_each_line(1..=n, |k| {
        let prev = if k == 1 { GENESIS } else { hash_of(&lines[k - 2]) };
        // A forgery that links perfectly: right seq, right prev, sealed. Line k+1 (the original
        // line k) is what shows it.
        let mut t = lines.clone();
        t.insert(k - 1, line::build(k as u64, "2030-01-01T00:00:00.000Z", &foreign_record, prev).0);
        expect(verify_lines(&t, None), k, k + 1, &[ProblemKind::Inserted], &format!("forged {k}"));
        // A line from another ledger: right seq, wrong prev.
        let mut t = lines.clone();
        let other = HashHex::of(format!("other ledger {k}").as_bytes());
        t.insert(
            k - 1,
            line::build(k as u64, "2030-01-01T00:00:00.000Z", &foreign_record, other).0,
        );
        expect(verify_lines(&t, None), k, k, &[ProblemKind::Inserted], &format!("foreign {k}"));
        // A copy of a line from elsewhere in the ledger.
        let j = (k + n / 2) % n + 1;
        if j + 1 != k && j != k {
            let mut t = lines.clone();
            t.insert(k - 1, lines[j - 1].clone());
            let kinds = [ProblemKind::OutOfPlace, ProblemKind::Swapped];
            expect(verify_lines(&t, None), k, k, &kinds, &format!("copy of {j} at {k}"));
        }
    });
}

#[test]
fn every_duplicated_line_and_every_adjacent_swap_is_found() {
    let lines = ledger();
    let n = lines.len();
    for_each_line(1..=n, |k| {
        let mut t = lines.clone();
        t.insert(k, lines[k - 1].clone());
        expect(
            verify_lines(&t, None),
            k + 1,
            k + 1,
            &[ProblemKind::Duplicated],
            &format!("dup {k}"),
        );
        if k < n {
            let mut t = lines.clone();
            t.swap(k - 1, k);
            expect(verify_lines(&t, None), k, k, &[ProblemKind::Swapped], &format!("swap {k}"));
        }
    });
}

#[test]
fn every_truncation_is_found_against_a_checkpoint() {
    let lines = ledger();
    let n = lines.len();
    let cp =
        Checkpoint::new(None, n as u64, hash_of(&lines[n - 1]), "t".into(), Some(KEY.as_bytes()));
    for_each_line(0..=n - 1, |kept| {
        let summary = verify_lines(&lines[..kept], Some(&cp));
        expect(summary, kept + 1, kept + 1, &[ProblemKind::Truncated], &format!("cut to {kept}"));
    });
    // A longer ledger (appended to since) still matches its older checkpoint.
    let older = Checkpoint::new(None, 500, hash_of(&lines[499]), "t".into(), None);
    assert!(verify_lines(lines, Some(&older)).ok());
}

mod lines {
    /// The record embedded in a ledger line.
    pub fn record_of(line: &[u8]) -> Vec<u8> {
        opsg_audit::line::parse(line).unwrap().record.to_vec()
    }
}

/// Write `lines` as a ledger file in `dir` and run the binary's `verify --format json`.
fn verify_binary(
    dir: &TempDir,
    name: &str,
    lines: &[Vec<u8>],
    extra: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let path = dir.join(name);
    std::fs::write(&path, join(lines)).unwrap();
    let mut args = vec!["verify", "--ledger", path.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = audit_env(&args, b"", &[("OPSG_CHECKPOINT_KEY", KEY)]);
    let report = json(&out.stdout);
    (out, report)
}

/// The tampered variants the binary and the Python verifier are checked on: (name, lines,
/// line reported, first bad line).
fn samples() -> Vec<(&'static str, Vec<Vec<u8>>, u64, u64)> {
    let lines = ledger();
    let mut out = Vec::new();
    let mut t = lines.clone();
    t[499][300] ^= 0x01;
    out.push(("modified", t, 500, 500));
    let mut t = lines.clone();
    t[99] = record_changed(&lines[99], true);
    out.push(("rewritten", t, 100, 101));
    let mut t = lines.clone();
    t.remove(700);
    out.push(("deleted", t, 701, 701));
    let mut t = lines.clone();
    t.insert(10, lines[10].clone());
    out.push(("duplicated", t, 12, 12));
    let mut t = lines.clone();
    t.swap(41, 42);
    out.push(("swapped", t, 42, 42));
    let mut t = lines.clone();
    t.insert(900, lines[3].clone());
    out.push(("inserted", t, 901, 901));
    let mut t = lines.clone();
    let mut torn = t.pop().unwrap();
    torn.truncate(torn.len() / 2);
    let mut joined = join(&t);
    joined.extend_from_slice(&torn);
    out.push(("torn", vec![joined], 0, 0));
    out
}

#[test]
fn the_binary_names_line_and_field_with_exit_5() {
    let dir = TempDir::new("tamper-bin");
    let n = ledger().len() as u64;
    for (name, lines, line, first_bad) in samples() {
        let (out, report) = if name == "torn" {
            // `lines` holds the raw bytes of a ledger whose last line has no newline.
            let path = dir.join(name);
            std::fs::write(&path, &lines[0]).unwrap();
            let args = ["verify", "--ledger", path.to_str().unwrap(), "--format", "json"];
            let out = audit(&args, b"");
            let report = json(&out.stdout);
            (out, report)
        } else {
            verify_binary(&dir, name, &lines, &[])
        };
        assert_eq!(out.status.code(), Some(5), "{name}: {}", stderr(&out));
        assert_eq!(report["ok"], false);
        let (line, first_bad) = if name == "torn" { (n, n) } else { (line, first_bad) };
        assert_eq!(report["problem"]["line"], line, "{name}: {report}");
        assert_eq!(report["problem"]["first_bad_line"], first_bad, "{name}: {report}");
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{name}: {}", stderr(&out));
        assert!(errors[0].contains(&format!("/{name}:{line}: field `")), "{name}: {}", errors[0]);
    }
    let (out, report) = verify_binary(&dir, "intact", ledger(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report["lines"], n);
    assert_eq!(report["problem"], serde_json::Value::Null);
}

#[test]
fn checkpoints_catch_truncation_and_forgery_through_the_binary() {
    let dir = TempDir::new("checkpoint-bin");
    let path = dir.join("ledger.jsonl");
    let cp_path = dir.join("cp.json");
    std::fs::write(&path, join(ledger())).unwrap();
    let (ledger_arg, cp_arg) = (path.to_str().unwrap(), cp_path.to_str().unwrap());
    let key = [("OPSG_CHECKPOINT_KEY", KEY)];
    let out = audit_env(&["checkpoint", "--ledger", ledger_arg, "--out", cp_arg], b"", &key);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cp = json(&std::fs::read(&cp_path).unwrap());
    opsg_core::schema::validate("checkpoint.schema.json", &cp).unwrap();
    assert_eq!(cp["records"], ledger().len());
    assert_eq!(cp["head"], hash_of(ledger().last().unwrap()).to_string());
    assert!(cp["mac"].as_str().unwrap().starts_with("hmac-sha256:"));

    let verify = |env: &[(&str, &str)]| {
        audit_env(&["verify", "--ledger", ledger_arg, "--checkpoint", cp_arg], b"", env)
    };
    assert_eq!(verify(&key).status.code(), Some(0), "{}", stderr(&verify(&key)));

    // Cut the last 10 lines off: truncated, named at the first missing line.
    let kept = ledger().len() - 10;
    std::fs::write(&path, join(&ledger()[..kept])).unwrap();
    let out = verify(&key);
    assert_eq!(out.status.code(), Some(5));
    let errors = error_lines(&out);
    assert!(errors[0].contains(&format!("ledger.jsonl:{}:", kept + 1)), "{}", errors[0]);
    assert!(errors[0].contains("truncated"), "{}", errors[0]);

    // A forger who rewrites the ledger must forge the checkpoint too: without the key, the MAC
    // gives them away.
    let mut forged = cp.clone();
    forged["records"] = serde_json::json!(kept);
    forged["head"] = serde_json::json!(hash_of(&ledger()[kept - 1]).to_string());
    std::fs::write(&cp_path, forged.to_string()).unwrap();
    let out = verify(&key);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("forged checkpoint"), "{}", stderr(&out));
    assert!(stderr(&out).contains("field `mac`"), "{}", stderr(&out));
    // A wrong key is a forgery too; no key at all cannot check a signed checkpoint (usage).
    assert_eq!(verify(&[("OPSG_CHECKPOINT_KEY", "guess")]).status.code(), Some(5));
    assert_eq!(verify(&[]).status.code(), Some(2));
    // Stripping the MAC does not help while the key is set.
    forged.as_object_mut().unwrap().remove("mac");
    std::fs::write(&cp_path, forged.to_string()).unwrap();
    assert_eq!(verify(&key).status.code(), Some(5));
}

fn python() -> Option<&'static str> {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("python3");
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "python3 is required under CI=true");
    // Loud on purpose: a skipped cross-check must not look like a pass.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"\n!!! SKIPPED: python3 not found; the independent verifier did not run !!!\n\n",
    );
    None
}

fn run_python(python: &str, ledger: &Path, checkpoint: Option<&Path>) -> (i32, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/verify_ledger.py");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script).arg(ledger).env("OPSG_CHECKPOINT_KEY", KEY);
    if let Some(cp) = checkpoint {
        cmd.arg(cp);
    }
    let out = cmd.output().expect("run python3");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn an_independent_python_verifier_agrees() {
    let Some(python) = python() else { return };
    let dir = TempDir::new("python");
    let n = ledger().len() as u64;
    let (out, report) = verify_binary(&dir, "intact.jsonl", ledger(), &[]);
    assert_eq!(out.status.code(), Some(0));
    let (code, text) = run_python(python, &dir.join("intact.jsonl"), None);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text, format!("ok {n} {}", report["head"].as_str().unwrap()));

    for (name, lines, _, first_bad) in samples() {
        let path = dir.join(name);
        let (rust_code, first_bad) = if name == "torn" {
            std::fs::write(&path, &lines[0]).unwrap();
            (audit(&["verify", "--ledger", path.to_str().unwrap()], b"").status.code(), n)
        } else {
            (verify_binary(&dir, name, &lines, &[]).0.status.code(), first_bad)
        };
        let (code, text) = run_python(python, &path, None);
        assert_eq!((Some(code), rust_code), (Some(5), Some(5)), "{name}: python says {text}");
        assert!(
            text.starts_with(&format!("tamper {first_bad} ")),
            "{name}: python says `{text}`, opsg-audit {first_bad}"
        );
    }

    // Against a checkpoint: truncated, and an intact prefix.
    let cp_path = dir.join("cp.json");
    let cp = Checkpoint::new(
        None,
        n,
        hash_of(ledger().last().unwrap()),
        "2030-01-01T00:00:00.000Z".into(),
        Some(KEY.as_bytes()),
    );
    std::fs::write(&cp_path, cp.to_json().unwrap()).unwrap();
    let cut = dir.join("cut.jsonl");
    std::fs::write(&cut, join(&ledger()[..600])).unwrap();
    let (code, text) = run_python(python, &cut, Some(&cp_path));
    assert_eq!((code, text.as_str()), (5, "tamper 601 section 6: truncated"));
    let (rust, report) = verify_binary(
        &dir,
        "cut.jsonl",
        &ledger()[..600],
        &["--checkpoint", cp_path.to_str().unwrap()],
    );
    assert_eq!(rust.status.code(), Some(5));
    assert_eq!(report["problem"]["first_bad_line"], 601);
    let (code, _) = run_python(python, &dir.join("intact.jsonl"), Some(&cp_path));
    assert_eq!(code, 0);
}
