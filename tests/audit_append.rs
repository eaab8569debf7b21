//! `opsg-audit append` end to end: the ledger it writes, the report it computes, the exit code it
//! gives for each outcome, torn-tail recovery, and `show`/`stats` over what it appended.

mod support;

use serde_json::Value;
use support::*;

fn ledger_records(ledger: &std::path::Path) -> Vec<Value> {
    lines(&std::fs::read(ledger).unwrap()).iter().map(|l| json(l)).collect()
}

#[test]
fn resolved_incident_is_appended_reported_and_passed_through() {
    let dir = TempDir::new("resolved");
    let ledger = dir.join("ledger.jsonl");
    let input = incident_chain(Scenario::Resolved, 1, T0);
    let out = append(&ledger, &input);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // stdout: the chain byte for byte, then one report record linked after it.
    assert!(out.stdout.starts_with(&input), "the chain was not passed through unchanged");
    let extra = lines(&out.stdout[input.len()..]);
    assert_eq!(extra.len(), 1);
    let report = json(&extra[0]);
    let last_in = json(lines(&input).last().unwrap());
    assert_eq!(report["prev"], last_in["hash"]);
    assert_eq!(report["kind"], "report");
    assert_eq!(report["incident"], "inc-000001");
    assert_eq!(report["producer"]["tool"], "opsg-audit");
    opsg_core::schema::validate("report.schema.json", &report).unwrap();
    opsg_core::seal::verify(&extra[0]).unwrap();

    let body = &report["body"];
    assert_eq!(body["outcome"], "resolved");
    assert_eq!(body["class"], "kv_cache_saturation");
    assert_eq!(body["time_to_detect_s"], 62.0);
    assert_eq!(body["time_to_mitigate_s"], 65.0);
    assert_eq!(body["mttr_s"], 185.0);
    assert_eq!(body["milestones"]["first_anomalous"], opsg_core::time::Timestamp(T0).to_rfc3339());
    assert_eq!(body["actions"]["total"], 2);
    assert_eq!(body["actions"]["safe"], 1);
    assert_eq!(body["actions"]["impactful"], 1);
    assert_eq!(body["actions"]["rolled_back"], 0);
    assert_eq!(body["records"]["total"], 6);
    assert_eq!(body["ledger"]["first_seq"], 1);
    assert_eq!(body["ledger"]["last_seq"], 6);

    // The ledger: one line per record plus the report, each schema-valid, embedding the exact
    // bytes that arrived.
    let raw = std::fs::read(&ledger).unwrap();
    let ledger_lines = lines(&raw);
    assert_eq!(ledger_lines.len(), 7);
    let all_records = lines(&out.stdout);
    let mut prev = opsg_core::seal::GENESIS;
    for (i, line) in ledger_lines.iter().enumerate() {
        let value = json(line);
        opsg_core::schema::validate("ledger-line.schema.json", &value).unwrap();
        assert_eq!(value["seq"], i as u64 + 1);
        let parts = opsg_audit::line::parse(line).unwrap();
        assert_eq!(
            parts.record,
            &all_records[i][..],
            "line {} does not embed the exact bytes",
            i + 1
        );
        assert_eq!(parts.prev, prev);
        prev = opsg_core::seal::verify(line).unwrap().hash;
    }
    let verify = audit(&["verify", "--ledger", ledger.to_str().unwrap()], b"");
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert!(stderr(&verify).contains("ok: 7 lines"), "{}", stderr(&verify));
    // An audit log is created without access for others.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&ledger).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "the ledger is world-accessible: {mode:o}");
}

#[test]
fn each_outcome_has_its_exit_code() {
    let dir = TempDir::new("outcomes");
    let ledger = dir.join("ledger.jsonl");
    let cases = [
        (Scenario::NoIncident, "no_incident", 10),
        (Scenario::RolledBack, "rolled_back", 13),
        (Scenario::Blocked, "blocked", 12),
        (Scenario::AwaitingApproval, "awaiting_approval", 11),
        (Scenario::DryRun, "dry_run", 16),
        (Scenario::Resolved, "resolved", 0),
    ];
    let mut expected_lines = 0;
    for (seed, (scenario, outcome, code)) in cases.into_iter().enumerate() {
        let input = incident_chain(scenario, 10 + seed as u64, T0);
        let out = append(&ledger, &input);
        assert_eq!(out.status.code(), Some(code), "{scenario:?}: {}", stderr(&out));
        let report = json(lines(&out.stdout).last().unwrap());
        assert_eq!(report["body"]["outcome"], outcome, "{scenario:?}");
        let executed = matches!(scenario, Scenario::Resolved | Scenario::RolledBack);
        assert_eq!(
            report["body"]["actions"]["total"],
            if executed { 2 } else { 0 },
            "{scenario:?}"
        );
        assert_eq!(report["body"]["mttr_s"].is_number(), scenario == Scenario::Resolved);
        if scenario == Scenario::RolledBack {
            assert_eq!(report["body"]["actions"]["rolled_back"], 1);
        }
        // The ledger chain continues across appends.
        let first = expected_lines + 1;
        expected_lines += lines(&input).len() as u64 + 1;
        assert_eq!(report["body"]["ledger"]["first_seq"], first);
        assert_eq!(report["body"]["ledger"]["last_seq"], expected_lines - 1);
    }
    assert_eq!(ledger_records(&ledger).len() as u64, expected_lines);
    let summary = opsg_audit::verify::verify_path(&ledger, &Default::default()).unwrap();
    assert!(summary.ok(), "{:?}", summary.problem);
}

#[test]
fn observations_only_is_no_incident_with_a_note() {
    let dir = TempDir::new("obs-only");
    let ledger = dir.join("ledger.jsonl");
    let out = append(&ledger, &observation_chain(3, 1, 2));
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let report = json(lines(&out.stdout).last().unwrap());
    assert_eq!(report["body"]["outcome"], "no_incident");
    assert!(report["body"]["note"].as_str().unwrap().contains("nothing was triaged"));
    assert_eq!(report["body"]["records"]["observation"], 3);
}

#[test]
fn append_is_the_default_and_the_ledger_can_come_from_the_environment() {
    let dir = TempDir::new("default");
    let ledger = dir.join("ledger.jsonl");
    let path = ledger.to_str().unwrap();
    let out = audit(&["--ledger", path], &incident_chain(Scenario::Resolved, 2, T0));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = audit_env(&[], &incident_chain(Scenario::Blocked, 3, T0), &[("OPSG_LEDGER", path)]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    let records = ledger_records(&ledger);
    assert_eq!(records.len(), 7 + 5);
    assert_eq!(records[7]["seq"], 8);
    assert_eq!(records[7]["prev"], records[6]["hash"]);
    // No ledger at all is a usage error.
    let out = audit(&[], &incident_chain(Scenario::Resolved, 4, T0));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_torn_last_line_is_moved_aside_and_reported_until_then() {
    let dir = TempDir::new("torn");
    let ledger = dir.join("ledger.jsonl");
    append(&ledger, &incident_chain(Scenario::Resolved, 5, T0));
    let good = std::fs::read(&ledger).unwrap();
    // A crash mid-write: half a line, no newline.
    let half = &lines(&good)[3][..200];
    let mut torn = good.clone();
    torn.extend_from_slice(half);
    std::fs::write(&ledger, &torn).unwrap();

    let verify = audit(&["verify", "--ledger", ledger.to_str().unwrap()], b"");
    assert_eq!(verify.status.code(), Some(5));
    let errors = error_lines(&verify);
    assert_eq!(errors.len(), 1, "{}", stderr(&verify));
    assert!(errors[0].contains("ledger.jsonl:8:"), "{}", errors[0]);
    assert!(errors[0].contains("torn"), "{}", errors[0]);

    let out = append(&ledger, &incident_chain(Scenario::Resolved, 6, T0));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("torn"), "no warning: {}", stderr(&out));
    let aside = dir.join(&format!("ledger.jsonl.torn-{}", good.len()));
    assert_eq!(std::fs::read(&aside).unwrap(), half, "the torn bytes were not kept");
    let now = std::fs::read(&ledger).unwrap();
    assert!(now.starts_with(&good), "a complete line was damaged");
    let records = ledger_records(&ledger);
    assert_eq!(records.len(), 14);
    assert_eq!(records[7]["seq"], 8);
    let summary = opsg_audit::verify::verify_path(&ledger, &Default::default()).unwrap();
    assert!(summary.ok(), "{:?}", summary.problem);

    // A torn tail longer than the step it is copied in (64 KiB) is kept whole.
    let good = std::fs::read(&ledger).unwrap();
    let garbage: Vec<u8> = (0..150_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut torn = good.clone();
    torn.extend_from_slice(&garbage);
    std::fs::write(&ledger, &torn).unwrap();
    let out = append(&ledger, &incident_chain(Scenario::Resolved, 9, T0));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let aside = dir.join(&format!("ledger.jsonl.torn-{}", good.len()));
    assert_eq!(std::fs::read(&aside).unwrap(), garbage);
    assert_eq!(ledger_records(&ledger).len(), 21);
}

#[test]
fn show_prints_the_timeline_in_three_formats() {
    let dir = TempDir::new("show");
    let ledger = dir.join("ledger.jsonl");
    append(&ledger, &incident_chain(Scenario::Resolved, 7, T0));
    append(&ledger, &incident_chain(Scenario::Blocked, 8, T0 + 3_600_000));
    let path = ledger.to_str().unwrap();

    let out = audit(&["show", "--ledger", path], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let stages =
        ["observed", "inferred", "proposed", "decided", "executed", "verified", "reported"];
    let first = text.split("\n\n").next().unwrap();
    assert!(first.starts_with("incident inc-000007"), "{text}");
    let mut at = 0;
    for stage in stages {
        let found =
            first[at..].find(stage).unwrap_or_else(|| panic!("no `{stage}` in order:\n{first}"));
        at += found;
    }
    assert!(first.contains("incident `kv_cache_saturation`"), "{first}");
    assert!(first.contains("MTTR 3m05s"), "{first}");
    assert!(text.contains("incident inc-000008"));
    assert!(text.contains("blocked (live)"), "{text}");

    let out =
        audit(&["show", "--ledger", path, "--incident", "inc-000008", "--format", "json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events: Vec<Value> = lines(&out.stdout).iter().map(|l| json(l)).collect();
    assert_eq!(events.len(), 5);
    assert_eq!(
        events.iter().map(|e| e["stage"].as_str().unwrap()).collect::<Vec<_>>(),
        ["observed", "inferred", "proposed", "decided", "reported"]
    );
    assert_eq!(events[4]["seq"], 12);
    assert!(events.iter().skip(1).all(|e| e["incident"] == "inc-000008"));

    let out = audit(&["show", "--ledger", path, "--format", "csv"], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("incident,run,seq,time,stage,kind,id,summary\n"), "{text}");
    // Summaries hold commas, so they are quoted: one row per event whatever they say.
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 12, "{text}");
    assert!(rows[1].starts_with("inc-000007,run-"), "{}", rows[1]);
    assert!(rows[2].contains(",proposed,plan,"), "{}", rows[2]);
    assert!(rows[2].ends_with("(impactful)\""), "the summary is not quoted: {}", rows[2]);

    let out = audit(&["show", "--ledger", path, "--incident", "inc-nope"], b"");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn stats_measure_each_incident_and_class() {
    let dir = TempDir::new("stats");
    let ledger = dir.join("ledger.jsonl");
    append(&ledger, &incident_chain(Scenario::Resolved, 20, T0));
    append(&ledger, &incident_chain(Scenario::RolledBack, 21, T0));
    append(&ledger, &incident_chain(Scenario::NoIncident, 22, T0));
    let path = ledger.to_str().unwrap();

    let out = audit(&["stats", "--ledger", path, "--format", "json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats = json(&out.stdout);
    let incidents = stats["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 3);
    assert_eq!(incidents[0]["incident"], "inc-000020");
    assert_eq!(incidents[0]["time_to_detect_s"], 62.0);
    assert_eq!(incidents[0]["time_to_mitigate_s"], 65.0);
    assert_eq!(incidents[0]["mttr_s"], 185.0);
    assert_eq!(incidents[1]["outcome"], "rolled_back");
    assert_eq!(incidents[1]["mttr_s"], Value::Null);
    assert_eq!(incidents[2]["class"], "none");
    let classes = stats["classes"].as_array().unwrap();
    let kv = classes.iter().find(|c| c["class"] == "kv_cache_saturation").unwrap();
    assert_eq!(kv["incidents"], 2);
    assert_eq!(kv["outcomes"]["resolved"], 1);
    assert_eq!(kv["outcomes"]["rolled_back"], 1);
    assert_eq!(kv["mttr_s"], 185.0);
    assert_eq!(kv["actions"]["total"], 4);
    assert_eq!(kv["actions"]["rolled_back"], 1);

    let out = audit(&["stats", "--ledger", path, "--format", "csv", "--by", "class"], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!(rows[0][..3], ["class", "incidents", "resolved"]);
    assert_eq!(rows[1][0], "kv_cache_saturation");
    assert_eq!(rows[1][6], "185.000", "{text}");

    let out = audit(&["stats", "--ledger", path], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("INCIDENT"), "{text}");
    assert!(text.contains("3m05s"), "{text}");
}

#[test]
fn the_output_is_a_chain_a_later_reader_accepts() {
    // The report is linked after the chain, so `opsg-audit`'s output is itself a recording that
    // can be fed again (replay, or a second ledger kept elsewhere).
    let dir = TempDir::new("reaudit");
    let first = append(&dir.join("a.jsonl"), &incident_chain(Scenario::RolledBack, 30, T0));
    assert_eq!(first.status.code(), Some(13), "{}", stderr(&first));
    let second = append(&dir.join("b.jsonl"), &first.stdout);
    assert_eq!(second.status.code(), Some(13), "{}", stderr(&second));
    assert!(second.stdout.starts_with(&first.stdout));
    let report = json(lines(&second.stdout).last().unwrap());
    assert_eq!(report["body"]["records"]["report"], 1);
    assert_eq!(report["body"]["outcome"], "rolled_back");
}

#[test]
fn show_and_stats_refuse_a_tampered_ledger_unless_told_not_to_verify() {
    let dir = TempDir::new("show-tampered");
    let ledger = dir.join("ledger.jsonl");
    append(&ledger, &incident_chain(Scenario::Resolved, 40, T0));
    let mut l = lines(&std::fs::read(&ledger).unwrap());
    l.remove(2);
    std::fs::write(&ledger, join(&l)).unwrap();
    let path = ledger.to_str().unwrap();
    for sub in ["show", "stats"] {
        let out = audit(&[sub, "--ledger", path], b"");
        assert_eq!(out.status.code(), Some(5), "{sub}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{sub} printed a tampered history");
        assert!(
            error_lines(&out)[0].contains("ledger.jsonl:3: field `seq`: deleted"),
            "{}",
            stderr(&out)
        );
        let out = audit(&[sub, "--ledger", path, "--no-verify"], b"");
        assert_eq!(out.status.code(), Some(0), "{sub}: {}", stderr(&out));
    }
    let out = audit(&["verify", "--ledger", dir.join("missing.jsonl").to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(4));
    assert!(error_lines(&out)[0].contains("missing.jsonl`: not found"), "{}", stderr(&out));
}

#[test]
fn an_unsigned_checkpoint_goes_to_stdout_with_a_warning() {
    let dir = TempDir::new("cp-unsigned");
    let ledger = dir.join("ledger.jsonl");
    append(&ledger, &incident_chain(Scenario::Resolved, 50, T0));
    let path = ledger.to_str().unwrap();
    let out = audit(&["checkpoint", "--ledger", path], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("OPSG_CHECKPOINT_KEY is not set"), "{}", stderr(&out));
    let cp = json(&out.stdout);
    assert_eq!(cp["records"], 7);
    assert_eq!(cp["mac"], Value::Null);
    let cp_path = dir.join("cp.json");
    std::fs::write(&cp_path, &out.stdout).unwrap();
    let args = ["verify", "--ledger", path, "--checkpoint", cp_path.to_str().unwrap()];
    assert_eq!(audit(&args, b"").status.code(), Some(0));
    // With a key in the environment, an unsigned checkpoint proves nothing.
    let out = audit_env(&args, b"", &[("OPSG_CHECKPOINT_KEY", "k")]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    // A tampered ledger is never checkpointed.
    let mut l = lines(&std::fs::read(&ledger).unwrap());
    l.swap(1, 2);
    std::fs::write(&ledger, join(&l)).unwrap();
    let out = audit(&["checkpoint", "--ledger", path], b"");
    assert_eq!(out.status.code(), Some(5));
    assert!(out.stdout.is_empty());
}
