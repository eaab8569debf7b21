//! opsg-replay end to end: the corpus runs, a wrong expectation fails with a diff and exit 6, the
//! replayed chain is byte-for-byte what the stage binaries write, and `record` turns a pipe's
//! output into a case that replays.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const REPLAY: &str = env!("CARGO_BIN_EXE_opsg-replay");
const TRIAGE: &str = env!("CARGO_BIN_EXE_opsg-triage");
const PLAN: &str = env!("CARGO_BIN_EXE_opsg-plan");
const GATE: &str = env!("CARGO_BIN_EXE_opsg-gate");

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/incidents")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opsg-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_case(name: &str, to: &Path) -> PathBuf {
    let from = corpus().join(name);
    let dest = to.join(name);
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    dest
}

fn replay(args: &[&str]) -> Output {
    Command::new(REPLAY).args(args).env_clear().stdin(Stdio::null()).output().unwrap()
}

fn pipe(bin: &str, args: &[&str], input: &[u8], state: &Path) -> Vec<u8> {
    let mut child = Command::new(bin)
        .args(args)
        .env_clear()
        .env("OPSG_STATE_DIR", state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{bin} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn the_corpus_meets_its_expectations() {
    let dir = temp_dir("corpus");
    let csv = dir.join("results.csv");
    let out = replay(&[corpus().to_str().unwrap(), "--csv", csv.to_str().unwrap(), "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let cases = std::fs::read_dir(corpus()).unwrap().count();
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), cases, "one CSV row per case");
    assert!(rows.iter().all(|r| r.split(',').nth(1) == Some("true")), "{text}");
    assert!(stderr.contains(&format!("{cases} case(s): {cases} passed, 0 failed")), "{stderr}");
    assert!(stderr.contains("false incidents on healthy windows: 0/"), "{stderr}");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff_and_exit_6() {
    let dir = temp_dir("wrong");
    copy_case("healthy-quiet-200", &dir);
    let wrong = copy_case("kv_cache_saturation-100", &dir);
    let case_path = wrong.join("case.json");
    let mut case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&case_path).unwrap()).unwrap();
    case["expected_class"] = "gpu_fault".into();
    std::fs::write(&case_path, serde_json::to_string_pretty(&case).unwrap()).unwrap();

    let out = replay(&[dir.to_str().unwrap(), "--format", "json", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("- class: gpu_fault\n+ class: kv_cache_saturation"), "{stderr}");
    assert!(stderr.contains("2 case(s): 1 passed, 1 failed"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["failed"], 1);
    assert_eq!(json["summary"]["confusion"]["gpu_fault"]["kv_cache_saturation"], 1);
}

/// Guards against a second implementation drifting: replay must write the very bytes that
/// `opsg-triage | opsg-plan | opsg-gate` write for the same recording and clock.
#[test]
fn replayed_chain_equals_the_stage_binaries_output() {
    let dir = temp_dir("bytes");
    // The sim-recorded case carries a fleet-state snapshot, which plan reads (--fleet-state).
    for case in [
        "canary_regression-100",
        "healthy-quiet-200",
        "replica_down-100",
        "sim-canary_regression-11",
    ] {
        let case_dir = copy_case(case, &dir.join("corpus"));
        let chains = dir.join("chains");
        let out = replay(&[case_dir.to_str().unwrap(), "--chains", chains.to_str().unwrap(), "-q"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let replayed = std::fs::read(chains.join(format!("{case}.jsonl"))).unwrap();

        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case_dir.join("case.json")).unwrap())
                .unwrap();
        let now = meta["now"].as_str().unwrap();
        let input = std::fs::read(case_dir.join("observation.jsonl")).unwrap();
        let state = dir.join(format!("state-{case}"));
        let finding = pipe(TRIAGE, &["--now", now], &input, &state);
        let fleet = case_dir.join("fleet-state.json");
        let fleet = fleet.to_string_lossy().into_owned();
        let mut plan_args = vec!["--now", now];
        if case_dir.join("fleet-state.json").exists() {
            plan_args.extend(["--fleet-state", fleet.as_str()]);
        }
        let plan = pipe(PLAN, &plan_args, &finding, &state);
        let decision = pipe(GATE, &["--now", now], &plan, &state);
        assert_eq!(
            String::from_utf8_lossy(&replayed),
            String::from_utf8_lossy(&decision),
            "{case}: replay and the binaries disagree"
        );
    }
}

#[test]
fn record_turns_a_pipe_into_a_case_that_replays() {
    let dir = temp_dir("record");
    let case = corpus().join("memory_leak-100");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    let now = meta["now"].as_str().unwrap();
    let state = dir.join("state");
    let input = std::fs::read(case.join("observation.jsonl")).unwrap();
    let chain = pipe(
        GATE,
        &["--now", now],
        &pipe(PLAN, &["--now", now], &pipe(TRIAGE, &["--now", now], &input, &state), &state),
        &state,
    );

    let new_case = dir.join("cases/leak");
    let passed = pipe(REPLAY, &["record", "--out", new_case.to_str().unwrap()], &chain, &state);
    assert_eq!(passed, chain, "record passes the chain through unchanged");
    assert_eq!(std::fs::read(new_case.join("recording.jsonl")).unwrap(), chain);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(new_case.join("case.json")).unwrap())
            .unwrap();
    assert_eq!(written["expected_class"], "memory_leak");
    assert_eq!(written["expected_first_action"], meta["expected_first_action"]);
    assert!(written["expected_decision"].is_string());

    let out = replay(&[dir.join("cases").to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Recording over an existing case is refused, and nothing is overwritten.
    let mut child = Command::new(REPLAY)
        .args(["record", "--out", new_case.to_str().unwrap()])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&chain).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "nothing on stdout after a refused record");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a case.json"));
}

#[test]
fn bad_corpora_are_one_line_errors() {
    let dir = temp_dir("bad");
    let out = replay(&[dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no cases found"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let case = dir.join("broken");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(
        case.join("case.json"),
        "{\n  \"expected_class\": \"kv_cache_saturation\",\n  oops\n}\n",
    )
    .unwrap();
    let out = replay(&[dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken/case.json:3"), "names file and line: {err}");

    // A tampered recording fails its case (with the reason), never silently passes.
    std::fs::remove_dir_all(&case).unwrap();
    let tampered = copy_case("gpu_fault-100", &dir);
    let path = tampered.join("observation.jsonl");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "\"interval_s\":15.0",
        "\"interval_s\":16.0",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let out = replay(&[dir.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not run") && err.contains("hash mismatch"), "{err}");
}
