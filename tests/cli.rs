//! Behaviour every opsg binary shares: `--help` with a worked example and the exit-code table,
//! `--version`, usage errors with exit 2, `NO_COLOR`, and a quiet exit on a broken pipe.

use std::io::Read;
use std::process::{Command, Stdio};

const TOOLS: &[(&str, &str)] = &[
    ("opsg-scrape", env!("CARGO_BIN_EXE_opsg-scrape")),
    ("opsg-triage", env!("CARGO_BIN_EXE_opsg-triage")),
    ("opsg-plan", env!("CARGO_BIN_EXE_opsg-plan")),
    ("opsg-gate", env!("CARGO_BIN_EXE_opsg-gate")),
    ("opsg-exec", env!("CARGO_BIN_EXE_opsg-exec")),
    ("opsg-verify", env!("CARGO_BIN_EXE_opsg-verify")),
    ("opsg-audit", env!("CARGO_BIN_EXE_opsg-audit")),
    ("opsg-sim", env!("CARGO_BIN_EXE_opsg-sim")),
    ("opsg-replay", env!("CARGO_BIN_EXE_opsg-replay")),
];

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("spawn")
}

#[test]
fn help_has_a_worked_example_and_the_exit_table() {
    for (name, bin) in TOOLS {
        let out = run(bin, &["--help"]);
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{name} --help has no examples:\n{text}");
        assert!(text.contains(name), "{name} --help does not show the tool in its example");
        assert!(text.contains("Exit status:"), "{name} --help lacks the exit-status table");
        assert!(!text.contains('\u{1b}'), "{name} --help printed colour under NO_COLOR");
    }
}

#[test]
fn version_prints_name_and_version() {
    for (name, bin) in TOOLS {
        let out = run(bin, &["--version"]);
        assert_eq!(out.status.code(), Some(0), "{name} --version");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), format!("{name} {}", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn unknown_flags_are_usage_errors() {
    for (name, bin) in TOOLS {
        let out = run(bin, &["--no-such-flag"]);
        assert_eq!(out.status.code(), Some(2), "{name}: unknown flag should exit 2");
        assert!(out.stdout.is_empty(), "{name}: usage error wrote to stdout");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--no-such-flag"), "{name}: error does not name the flag: {err}");
    }
}

/// Regression guard: `opsg-x --help | head -1` must not print a panic about a broken pipe.
#[test]
fn broken_pipe_ends_quietly() {
    for (name, bin) in TOOLS {
        let mut child = Command::new(bin)
            .arg("--help")
            .env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Close our end of stdout at once: the tool's writes then fail with EPIPE.
        drop(child.stdout.take());
        let mut err = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
        let status = child.wait().expect("wait");
        assert!(!err.contains("panicked"), "{name} panicked on a broken pipe: {err}");
        assert!(status.code().is_some(), "{name} was killed by a signal on a broken pipe");
    }
}

/// Regression guard: a stage writing records into a pipe whose reader is gone (`| head -0`) must
/// exit quietly, not print a panic or an error about the broken pipe.
#[test]
fn a_stage_writing_records_into_a_closed_pipe_ends_quietly() {
    use std::io::Write;
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/incidents/kv_cache_saturation-100");
    let input = std::fs::read(case.join("observation.jsonl")).expect("corpus observation");
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsg-triage"))
        .args(["--now", "2026-11-22T15:09:30.000Z"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    child.stdin.take().expect("stdin").write_all(&input).expect("write input");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Regression guard: stages start together in a pipe, so a stage that stamped its record when it
/// started dated a finding before the observation it analyses (and MTTR's detection time was 0).
/// Without `--now`, a record is stamped once the stage's input has arrived.
#[test]
fn a_stage_stamps_its_record_after_its_input_arrives() {
    use std::io::Write;
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/incidents/kv_cache_saturation-100");
    let input = std::fs::read(case.join("observation.jsonl")).expect("corpus observation");
    let state = std::env::temp_dir().join(format!("opsg-cli-stamp-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsg-triage"))
        .arg("--state-dir")
        .arg(&state)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let spawned = std::time::SystemTime::now();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let written = std::time::SystemTime::now();
    child.stdin.take().expect("stdin").write_all(&input).expect("write input");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let last = String::from_utf8_lossy(&out.stdout).lines().last().expect("a finding").to_string();
    let finding: serde_json::Value = serde_json::from_str(&last).expect("JSON");
    let created =
        opsg_core::time::Timestamp::parse_rfc3339(finding["created"].as_str().expect("created"))
            .expect("RFC 3339");
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).expect("after the epoch").as_millis() as i64
    };
    assert!(created.millis() >= ms(written) - 5, "stamped before its input arrived");
    assert!(created.millis() >= ms(spawned) + 250, "stamped at start-up");
    let _ = std::fs::remove_dir_all(state);
}
