//! End-to-end: the real `opsg-triage` binary on sealed observations.

mod triage_support;

use opsg_core::float::Float;
use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::observation::TargetStatus;
use opsg_triage::synth::Scenario;
use serde_json::Value;
use triage_support::*;

fn triage(input: &[u8], seed: u64, extra: &[&str]) -> Ran {
    let now = now_for(seed);
    let mut args = vec!["--now", now.as_str()];
    args.extend_from_slice(extra);
    run("opsg-triage", &args, input)
}

#[test]
fn kv_saturation_is_one_incident_and_the_observation_passes_through() {
    let input = observation(Scenario::Fault(IncidentClass::KvCacheSaturation), 1);
    let out = triage(&input, 1, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The observation passes through byte for byte, then one finding follows.
    assert!(out.stdout.starts_with(&input));
    let records = out.records();
    assert_eq!(records.len(), 2);
    let f = &records[1];
    assert_valid(f);
    assert_eq!(f["kind"], "finding");
    assert_eq!(f["body"]["status"], "incident");
    assert_eq!(f["body"]["class"], "kv_cache_saturation");
    assert_eq!(f["consumes"][0], records[0]["id"]);
    assert_eq!(f["run"], records[0]["run"]);
    assert_eq!(f["replay"], true, "an input from a recording marks the finding as a replay");
    let incident = f["incident"].as_str().expect("incident id");
    assert!(incident.starts_with("inc-"), "{incident}");
    let hyp = &f["body"]["hypotheses"][0];
    assert!(hyp["confidence"].as_f64().unwrap() >= 0.8, "{hyp}");
    // Anomalies say which series, values and thresholds fired.
    let kv = f["body"]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "kv_cache_usage_high")
        .expect("kv rule fired");
    assert!(kv["value"].as_f64().unwrap() > kv["threshold"].as_f64().unwrap());
    assert!(kv["samples_breaching"].as_u64().unwrap() >= kv["for_samples"].as_u64().unwrap());
    assert!(out.stderr.contains("kv_cache_saturation"), "{}", out.stderr);
}

#[test]
fn same_input_and_clock_give_the_same_bytes() {
    let input = observation(Scenario::Fault(IncidentClass::CanaryRegression), 2);
    let a = triage(&input, 2, &[]);
    let b = triage(&input, 2, &[]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(a.stdout, b.stdout);
    let other_clock = run("opsg-triage", &["--now", "2030-01-01T00:00:00Z"], &input);
    assert_ne!(a.stdout, other_clock.stdout, "the clock is part of the output");
}

#[test]
fn healthy_fleet_gives_a_no_incident_finding() {
    let input = observation(Scenario::Healthy { variant: 0 }, 3);
    let out = triage(&input, 3, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let f = out.last();
    assert_valid(&f);
    assert_eq!(f["body"]["status"], "no_incident");
    assert_eq!(f["body"]["class"], "none");
    assert_eq!(f["incident"], Value::Null);
    assert_eq!(f["body"]["telemetry"]["targets_up"], 8);
}

#[test]
fn canary_alone_after_a_config_change_points_at_the_config() {
    let input = observation(Scenario::Fault(IncidentClass::CanaryRegression), 4);
    let f = triage(&input, 4, &[]).last();
    assert_eq!(f["body"]["class"], "canary_regression");
    assert_eq!(f["body"]["affected_targets"], serde_json::json!(["canary-0"]));
    let cause = f["body"]["hypotheses"][0]["cause"].as_str().unwrap();
    assert!(cause.contains("config"), "{cause}");

    // The same regression without a config difference is less certain.
    let mut b = body(Scenario::Fault(IncidentClass::CanaryRegression), 4);
    for t in &mut b.targets {
        t.labels.insert("config_version".into(), "v7".into());
        t.labels.remove("config_changed_at");
    }
    let g = triage(&sealed(&b, 4), 4, &[]).last();
    let with = f["body"]["hypotheses"][0]["confidence"].as_f64().unwrap();
    let without = g["body"]["hypotheses"][0]["confidence"].as_f64().unwrap_or(0.0);
    assert!(without < with, "{without} should be below {with}");
}

#[test]
fn observation_with_no_targets_is_said_not_judged_healthy() {
    let mut b = body(Scenario::Healthy { variant: 0 }, 5);
    b.targets.clear();
    let out = triage(&sealed(&b, 5), 5, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let f = out.last();
    assert_valid(&f);
    assert_eq!(f["body"]["status"], "no_incident");
    assert_eq!(f["body"]["telemetry"]["targets_total"], 0);
    assert!(f["body"]["summary"].as_str().unwrap().contains("no targets"), "{f}");
}

#[test]
fn all_targets_down_is_replica_down_with_lowered_confidence() {
    let mut b = body(Scenario::Healthy { variant: 0 }, 6);
    for t in &mut b.targets {
        t.status = TargetStatus::Down;
        t.reason = Some("connection refused".into());
        t.series.clear();
        for s in &mut t.samples {
            s.status = TargetStatus::Down;
        }
    }
    let f = triage(&sealed(&b, 6), 6, &[]).last();
    assert_valid(&f);
    assert_eq!(f["body"]["class"], "replica_down");
    let c = f["body"]["hypotheses"][0]["confidence"].as_f64().unwrap();
    assert!(c <= 0.5, "every target down at once is likelier the scraper's network: {c}");
    let notes = f["body"]["telemetry"]["notes"].to_string();
    assert!(notes.contains("every replica is down"), "{notes}");
}

#[test]
fn one_replica_stopping_is_replica_down_and_its_missing_series_raise_nothing_else() {
    let input = observation(Scenario::Fault(IncidentClass::ReplicaDown), 7);
    let f = triage(&input, 7, &[]).last();
    assert_eq!(f["body"]["class"], "replica_down");
    assert_eq!(f["body"]["affected_targets"].as_array().unwrap().len(), 1);
    let rules: Vec<&str> = f["body"]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["replica_down"]);
}

#[test]
fn histogram_without_inf_is_noted_and_skipped() {
    let mut b = body(Scenario::Fault(IncidentClass::CanaryRegression), 8);
    for t in &mut b.targets {
        for s in t.series.iter_mut().filter(|s| !s.le.is_empty()) {
            s.le.pop();
            for p in &mut s.points {
                p.buckets.pop();
            }
        }
    }
    let out = triage(&sealed(&b, 8), 8, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let f = out.last();
    let notes = f["body"]["telemetry"]["notes"].to_string();
    assert!(notes.contains("no `+Inf` bucket"), "{notes}");
    assert!(!f["body"]["anomalies"].to_string().contains("ttft_p95_high"));
}

#[test]
fn counter_reset_mid_window_is_not_an_incident() {
    // Variant 3 restarts one replica's process mid-window: every counter drops to zero.
    for seed in [9, 10, 11] {
        let f = triage(&observation(Scenario::Healthy { variant: 3 }, seed), seed, &[]).last();
        assert_eq!(f["body"]["status"], "no_incident", "{}", f["body"]["summary"]);
    }
}

#[test]
fn nan_samples_are_skipped_and_said() {
    let mut b = body(Scenario::Healthy { variant: 0 }, 12);
    for p in b.targets[0]
        .series
        .iter_mut()
        .find(|s| s.name == "vllm:kv_cache_usage_perc")
        .unwrap()
        .points
        .iter_mut()
    {
        p.v = Some(Float(f64::NAN));
    }
    let out = triage(&sealed(&b, 12), 12, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let f = out.last();
    assert_valid(&f);
    assert_eq!(f["body"]["status"], "no_incident");
    let notes = f["body"]["telemetry"]["notes"].to_string();
    assert!(notes.contains("NaN"), "{notes}");
}

#[test]
fn rules_file_errors_name_the_file_the_rule_and_the_field() {
    let dir = std::env::temp_dir().join(format!("opsg-triage-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = observation(Scenario::Healthy { variant: 0 }, 13);
    let mut rules: Value = serde_json::to_value(opsg_triage::Rules::builtin()).unwrap();
    rules["rules"][1]["signal"] = "vllm:kv_cache_usage_percent".into();
    let typo = dir.join("typo.json");
    std::fs::write(&typo, rules.to_string()).unwrap();
    let out = triage(&input, 13, &["--rules", typo.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "bad config writes nothing");
    assert!(out.stderr.contains("typo.json"), "{}", out.stderr);
    assert!(out.stderr.contains("rules[1].signal"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `vllm:kv_cache_usage_perc`"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);

    let mut rules: Value = serde_json::to_value(opsg_triage::Rules::builtin()).unwrap();
    rules["rules"][0]["persist"] = 3.into();
    let unknown = dir.join("unknown.json");
    std::fs::write(&unknown, rules.to_string()).unwrap();
    let out = triage(&input, 13, &["--rules", unknown.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("persist") && out.stderr.contains("rules[0]"), "{}", out.stderr);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_custom_rules_file_changes_what_fires() {
    let dir = std::env::temp_dir().join(format!("opsg-triage-custom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A fleet running hot but fine by default (kv 0.80-0.87) pages under a stricter rule.
    let input = observation(Scenario::Healthy { variant: 9 }, 14);
    assert_eq!(triage(&input, 14, &[]).last()["body"]["status"], "no_incident");
    let mut rules = opsg_triage::Rules::builtin();
    rules.rules[1].threshold = 0.75;
    let path = dir.join("strict.json");
    std::fs::write(&path, serde_json::to_string(&rules).unwrap()).unwrap();
    let f = triage(&input, 14, &["--rules", path.to_str().unwrap()]).last();
    assert_eq!(f["body"]["class"], "kv_cache_saturation");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn cron_runs_on_the_same_problem_continue_one_incident() {
    let dir = std::env::temp_dir().join(format!("opsg-triage-cont-{}", std::process::id()));
    let state = dir.to_str().unwrap().to_string();
    let input = observation(Scenario::Fault(IncidentClass::MemoryLeak), 15);
    let first =
        run("opsg-triage", &["--now", "2026-11-18T12:00:00Z", "--state-dir", &state], &input)
            .last();
    let second =
        run("opsg-triage", &["--now", "2026-11-18T12:01:00Z", "--state-dir", &state], &input)
            .last();
    let id = first["incident"].as_str().unwrap();
    assert_eq!(second["incident"], id, "one minute later: the same incident");
    assert!(second["body"]["summary"].as_str().unwrap().contains("continues"));
    // The same problem seen again two hours later (a new window, the anomaly began later): past
    // the continuity window, so a new incident.
    let start = START + 15 * 3_600_000 + 2 * 3_600_000;
    let b = opsg_triage::synth::observation(Scenario::Fault(IncidentClass::MemoryLeak), 15, start);
    let line =
        opsg_triage::synth::sealed(&b, opsg_core::time::Timestamp(start + 170_000), "run-later")
            .unwrap();
    let later = run(
        "opsg-triage",
        &["--now", "2026-11-18T14:00:00Z", "--state-dir", &state, "--continue-within", "30m"],
        &line,
    )
    .last();
    assert_eq!(later["body"]["fingerprint"], first["body"]["fingerprint"]);
    assert_ne!(later["incident"], id);
    assert!(!later["body"]["summary"].as_str().unwrap().contains("continues"));
    // Another problem is another incident.
    let other = run(
        "opsg-triage",
        &["--now", "2026-11-18T12:02:00Z", "--state-dir", &state],
        &observation(Scenario::Fault(IncidentClass::DiskPressure), 15),
    )
    .last();
    assert_ne!(other["incident"], id);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_ledger_continues_incidents_unless_resolved_and_is_refused_when_tampered() {
    let dir = std::env::temp_dir().join(format!("opsg-triage-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = observation(Scenario::Fault(IncidentClass::GpuFault), 16);
    let first = run("opsg-triage", &["--now", "2026-11-18T12:00:00Z"], &input);
    let finding_line: Vec<u8> = first.stdout.split(|b| *b == b'\n').nth(1).unwrap().to_vec();
    let id = first.last()["incident"].as_str().unwrap().to_string();
    let ledger = opsg_triage::history::write_ledger(
        std::slice::from_ref(&finding_line),
        "2026-11-18T12:00:01.000Z",
    )
    .unwrap();
    let path = dir.join("ledger.jsonl");
    std::fs::write(&path, &ledger).unwrap();
    let p = path.to_str().unwrap();
    let again = run("opsg-triage", &["--now", "2026-11-18T12:05:00Z", "--history", p], &input);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.last()["incident"], id.as_str());
    assert!(again.last()["body"]["summary"].as_str().unwrap().contains("continues"));

    // Once a report says it was resolved, the same fingerprint is a new incident.
    let stamp = opsg_core::record::Stamp {
        tool: "opsg-audit",
        version: "0",
        now: opsg_core::time::Timestamp::parse_rfc3339("2026-11-18T12:02:00Z").unwrap(),
    };
    let report = serde_json::json!({"outcome": "resolved", "milestones": {}, "actions": {"total": 1, "safe": 0, "impactful": 1, "destructive": 0, "rolled_back": 0}});
    let mut rec = opsg_core::record::Record::new(
        opsg_core::record::Kind::Report,
        &stamp,
        "run-x".into(),
        Some(id.clone()),
        report,
    );
    let (report_line, _) = rec.seal(opsg_core::seal::GENESIS).unwrap();
    let resolved_ledger = opsg_triage::history::write_ledger(
        &[finding_line.clone(), report_line],
        "2026-11-18T12:02:01.000Z",
    )
    .unwrap();
    std::fs::write(&path, &resolved_ledger).unwrap();
    let after =
        run("opsg-triage", &["--now", "2026-11-18T12:05:00Z", "--history", p], &input).last();
    assert!(
        !after["body"]["summary"].as_str().unwrap().contains("continues"),
        "resolved incidents are not continued"
    );
    std::fs::write(&path, &ledger).unwrap();

    // Tampered: refused, said on stderr and in the finding; a fresh incident id.
    let text = String::from_utf8(ledger).unwrap().replacen("gpu_fault", "gpu_fauIt", 1);
    std::fs::write(&path, text).unwrap();
    let tampered = run("opsg-triage", &["--now", "2026-11-18T12:05:00Z", "--history", p], &input);
    assert_eq!(tampered.code, 0, "{}", tampered.stderr);
    assert!(tampered.stderr.contains("history ledger refused"), "{}", tampered.stderr);
    let f = tampered.last();
    assert!(f["body"]["telemetry"]["notes"].to_string().contains("history ledger refused"));
    assert!(
        !f["body"]["summary"].as_str().unwrap().contains("continues"),
        "nothing learned from it"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn wrong_input_is_refused_with_exit_3_and_nothing_written() {
    let empty = run("opsg-triage", &[], b"");
    assert_eq!(empty.code, 3, "{}", empty.stderr);
    assert!(empty.stdout.is_empty());
    let garbage = run("opsg-triage", &[], b"{\"kind\":\n");
    assert_eq!(garbage.code, 3);
    assert!(garbage.stderr.contains("stdin:1"), "{}", garbage.stderr);
    let bad_now = run(
        "opsg-triage",
        &["--now", "yesterday"],
        &observation(Scenario::Healthy { variant: 0 }, 1),
    );
    assert_ne!(bad_now.code, 0);
    assert!(bad_now.stdout.is_empty());
}

#[test]
fn help_has_examples_and_exit_status() {
    let out = run("opsg-triage", &["--help"], b"");
    assert_eq!(out.code, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:\n"), "{text}");
    assert!(text.contains("Exit status:"), "{text}");
    opsg_triage::command().debug_assert();
}

#[test]
fn stale_telemetry_lowers_confidence_and_is_said() {
    let input = observation(Scenario::Fault(IncidentClass::ReplicaDown), 17);
    let fresh = triage(&input, 17, &[]).last();
    let mut b = body(Scenario::Fault(IncidentClass::ReplicaDown), 17);
    let victim = fresh["body"]["affected_targets"][0].as_str().unwrap().to_string();
    for t in b.targets.iter_mut().filter(|t| t.name.starts_with("exporter") || t.name == victim) {
        for s in &mut t.samples {
            s.stale = true;
        }
    }
    let stale = triage(&sealed(&b, 17), 17, &[]).last();
    assert_eq!(stale["body"]["class"], "replica_down");
    let c = |v: &Value| v["body"]["hypotheses"][0]["confidence"].as_f64().unwrap();
    assert!(c(&stale) < c(&fresh), "{} should be below {}", c(&stale), c(&fresh));
    assert!(
        stale["body"]["telemetry"]["stale_targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == victim.as_str())
    );
    assert!(stale["body"]["summary"].as_str().unwrap().contains("telemetry partial"));
}

/// A procfs snapshot as `opsg-scrape --host` writes it (the shape of `signals::host`), on `node`.
fn host_snapshot(node: &str, full_avg60: f64, available: u64, oom_kill: u64) -> Value {
    serde_json::json!({
        "available": true, "hostname": node,
        "cpu": {"cpus": 64, "procs_running": 3, "procs_blocked": 0, "context_switches": 1},
        "memory": {"total_bytes": 540_000_000_000u64, "available_bytes": available,
                   "free_bytes": available / 2, "cached_bytes": 1, "dirty_bytes": 0,
                   "used_fraction": 0.9, "swap_total_bytes": 0, "swap_free_bytes": 0,
                   "swap_used_bytes": 0},
        "pressure": {
            "cpu": {"some": {"avg10": 1.0, "avg60": 1.0, "avg300": 1.0, "total_us": 10}},
            "memory": {"some": {"avg10": full_avg60 * 2.0, "avg60": full_avg60 * 2.0,
                                "avg300": full_avg60, "total_us": 900},
                       "full": {"avg10": full_avg60, "avg60": full_avg60,
                                "avg300": full_avg60 / 2.0, "total_us": 400}},
            "io": {"some": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total_us": 0}}},
        "vm": {"oom_kill": oom_kill, "pgmajfault": 10, "pswpin": 0, "pswpout": 0}
    })
}

/// An NVML snapshot as `opsg-scrape --gpu` writes it (the shape of `signals::gpu`) with `xids`
/// raised during the watch.
fn gpu_snapshot(xids: &[u64]) -> Value {
    let device = |i: u64| {
        serde_json::json!({"index": i, "name": "NVIDIA H100 80GB HBM3", "uuid": format!("GPU-{i}"),
            "pci_bus_id": format!("00000000:3{i}:00.0"),
            "utilization": {"gpu_pct": 97, "memory_pct": 60},
            "memory": {"total_bytes": 85_899_345_920u64, "used_bytes": 80_000_000_000u64, "used_fraction": 0.9313},
            "temperature_c": 71, "power": {"draw_w": 650.0, "limit_w": 700.0},
            "clocks": {"sm_mhz": 1980, "memory_mhz": 2619, "sm_max_mhz": 1980},
            "throttle_reasons": ["sw_power_cap"],
            "ecc": {"enabled": true, "volatile": {"corrected": 0, "uncorrected": 0},
                    "aggregate": {"corrected": 3, "uncorrected": 0}},
            "retired_pages": null,
            "remapped_rows": {"corrected": 0, "uncorrected": 0, "pending": false, "failure": false},
            "processes": [], "unsupported": {"retired_pages": "not supported on this GPU"}})
    };
    serde_json::json!({
        "available": true, "driver_version": "550.54.15", "cuda_driver_version": "12.4",
        "count": 2, "devices": [device(0), device(1)],
        "xid_events": {"available": true, "window_ms": 100, "scope": "raised during the window only",
            "events": xids.iter().map(|x| serde_json::json!({"gpu_index": 1, "uuid": "GPU-1", "xid": x}))
                .collect::<Vec<_>>()}
    })
}

/// A healthy fleet's observation with snapshots added, sealed and checked against its schema.
fn with_snapshots(seed: u64, host: Option<Value>, gpus: Option<Value>) -> (Vec<u8>, String) {
    let mut body = body(Scenario::Healthy { variant: 0 }, seed);
    let node = body.targets[0].labels["node"].clone();
    body.host = host;
    body.gpus = gpus;
    let line = sealed(&body, seed);
    assert_valid(&serde_json::from_slice(&line).unwrap());
    (line, node)
}

fn rules_fired(f: &Value) -> Vec<(String, String, String)> {
    f["body"]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap().to_string();
            (s("rule"), s("target"), s("signal"))
        })
        .collect()
}

#[test]
fn a_host_snapshot_under_memory_pressure_raises_host_memory_pressure_on_its_node() {
    let seed = 40;
    let (healthy, node) =
        with_snapshots(seed, Some(host_snapshot("n", 0.0, 400_000_000_000, 3)), None);
    let f = triage(&healthy, seed, &[]).last();
    assert_eq!(f["body"]["status"], "no_incident", "a quiet host: {}", f["body"]["summary"]);
    // The snapshot is judged, and said to be, but it is not a scraped target.
    assert_eq!(f["body"]["telemetry"]["targets_total"], 8);
    let summary = f["body"]["summary"].as_str().unwrap();
    assert!(summary.contains("8 of 8 targets up (and the host snapshot)"), "{summary}");

    let host = host_snapshot(&node, 22.5, 9_000_000_000, 3);
    let (input, _) = with_snapshots(seed, Some(host), None);
    let out = triage(&input, seed, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with(&input), "the observation passes through unchanged");
    let f = out.last();
    assert_valid(&f);
    assert_eq!(f["body"]["class"], "host_memory_pressure", "{}", f["body"]["summary"]);
    let host_target = format!("host:{node}");
    let fired = rules_fired(&f);
    assert!(
        fired.contains(&(
            "host_memory_stall_full".into(),
            host_target.clone(),
            "host.pressure.memory.full.avg60".into()
        )),
        "{fired:?}"
    );
    let affected: Vec<&str> = f["body"]["affected_targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(affected.contains(&host_target.as_str()), "{affected:?}");
    // The replicas on that node are implicated, as with a node_exporter there.
    assert!(affected.len() > 1, "{affected:?}");
}

#[test]
fn an_xid_79_in_the_gpu_snapshot_is_a_gpu_fault_and_no_gpu_is_nothing() {
    let seed = 41;
    let node = body(Scenario::Healthy { variant: 0 }, seed).targets[0].labels["node"].clone();
    let host = host_snapshot(&node, 0.0, 400_000_000_000, 0);
    let (input, _) = with_snapshots(seed, Some(host.clone()), Some(gpu_snapshot(&[79])));
    let f = triage(&input, seed, &[]).last();
    assert_valid(&f);
    assert_eq!(f["body"]["class"], "gpu_fault", "{}", f["body"]["summary"]);
    let xid = f["body"]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "gpu_xid_event")
        .expect("the XID rule fired");
    assert_eq!(xid["signal"], "gpu.xid_events.xid");
    assert_eq!(xid["target"], format!("gpu:{node}"), "named after the host snapshot's hostname");
    assert_eq!(xid["value"], 79.0);
    assert!(f["body"]["hypotheses"][0]["confidence"].as_f64().unwrap() >= 0.9);
    // The replicas on that node are implicated: the plan can drain it.
    let replica = body(Scenario::Healthy { variant: 0 }, seed).targets[0].name.clone();
    assert!(
        f["body"]["affected_targets"].as_array().unwrap().iter().any(|t| *t == replica.as_str()),
        "{}",
        f["body"]["affected_targets"]
    );

    // The same host without a GPU driver: no target, no anomaly, no incident.
    let unavailable = serde_json::json!({"available": false,
        "reason": "NVML library `libnvidia-ml.so.1` could not be loaded: no NVIDIA driver on this host"});
    let (input, _) = with_snapshots(seed, Some(host), Some(unavailable));
    let f = triage(&input, seed, &[]).last();
    assert_eq!(f["body"]["status"], "no_incident", "{}", f["body"]["summary"]);
    assert_eq!(f["body"]["anomalies"], serde_json::json!([]));
}

#[test]
fn oom_kills_count_only_when_they_grow_between_chained_snapshots() {
    let seed = 42;
    let node = body(Scenario::Healthy { variant: 0 }, seed).targets[0].labels["node"].clone();
    let (first, _) =
        with_snapshots(seed, Some(host_snapshot(&node, 0.0, 400_000_000_000, 5)), None);
    // One snapshot: five OOM kills since boot say nothing about this window.
    let f = triage(&first, seed, &[]).last();
    assert_eq!(f["body"]["status"], "no_incident", "{}", f["body"]["summary"]);
    // A later observation (a stream may hold several chains, each from GENESIS) with two more.
    let (later, _) =
        with_snapshots(seed + 1, Some(host_snapshot(&node, 0.0, 400_000_000_000, 7)), None);
    let mut input = first.clone();
    input.extend_from_slice(&later);
    let f = triage(&input, seed + 1, &[]).last();
    assert_valid(&f);
    assert_eq!(f["body"]["class"], "host_memory_pressure", "{}", f["body"]["summary"]);
    let oom = f["body"]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "host_oom_kills")
        .expect("the OOM rule fired");
    assert_eq!(oom["value"], 2.0);
    assert_eq!(oom["signal"], "increase(host.vm.oom_kill)");
    // Determinism: the same chain and clock, the same bytes.
    assert_eq!(triage(&input, seed + 1, &[]).stdout, triage(&input, seed + 1, &[]).stdout);
}

/// Say loudly that a test did not run; under `CI=true` a missing tool fails instead.
fn skipped(why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why} (required under CI=true)");
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("\n!!! SKIPPED: {why} !!!\n\n").as_bytes());
}

/// What the real `opsg-scrape --gpu` writes is what triage reads: opsg-scrape driven
/// through the stand-in NVML library (crates/opsg-scrape/tests/fixtures/signals/gpu/stub_nvml.c:
/// GPU 0 slowed by `hw_slowdown`, GPU 1 lost, one XID 79 during the watch), loaded by name from
/// `LD_LIBRARY_PATH` as the real driver's library would be, piped into opsg-triage.
#[test]
fn opsg_scrape_gpu_snapshot_through_a_stub_nvml_is_a_gpu_fault() {
    let dir = std::env::temp_dir().join(format!("opsg-triage-stub-nvml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stub = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/opsg-scrape/tests/fixtures/signals/gpu/stub_nvml.c"
    );
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.join("libnvidia-ml.so.1"))
        .arg(stub)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        skipped(
            "no C compiler (`cc`) to build the stand-in NVML library; the scrape-to-triage GPU test did not run",
        );
        return;
    }
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scrape/vllm_metrics_v1_docs_design_example_elided.txt"
    );
    let scrape = std::process::Command::new(env!("CARGO_BIN_EXE_opsg-scrape"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LD_LIBRARY_PATH", &dir)
        .args(["--file", capture, "--gpu", "--now", "2026-11-22T06:00:00Z"])
        .args(["--run-id", "run-stub-nvml"])
        .output()
        .expect("run opsg-scrape");
    assert!(scrape.status.success(), "{}", String::from_utf8_lossy(&scrape.stderr));
    let observation = parse_records(&scrape.stdout).pop().unwrap();
    assert_valid(&observation);
    assert_eq!(observation["body"]["gpus"]["available"], true, "{}", observation["body"]["gpus"]);

    let out = run("opsg-triage", &["--now", "2026-11-22T06:00:05Z"], &scrape.stdout);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let f = out.last();
    assert_valid(&f);
    assert_eq!(f["body"]["class"], "gpu_fault", "{}", f["body"]["summary"]);
    let by_rule = |rule: &str| {
        f["body"]["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == rule)
            .cloned()
            .unwrap_or_else(|| panic!("`{rule}` did not fire: {}", f["body"]["anomalies"]))
    };
    assert_eq!(by_rule("gpu_xid_event")["value"], 79.0);
    assert_eq!(by_rule("gpu_lost")["signal"], "gpu.unsupported.gpu_lost");
    // One snapshot of a hardware slowdown is not yet persistent.
    assert!(!f["body"]["anomalies"].to_string().contains("gpu_clocks_throttled"));
    // Without `--host` there is no hostname to name the node by.
    assert_eq!(by_rule("gpu_lost")["target"], "gpu:local");
    std::fs::remove_dir_all(&dir).ok();
}

/// Cron runs one scrape a minute: the snapshot of the run before comes from the history ledger
/// (opsg-audit appends every observation), so OOM kills since then count; a ledger that fails
/// verification gives nothing, as for continuity.
#[test]
fn the_history_ledger_gives_the_previous_runs_snapshot() {
    let seed = 44;
    let node = body(Scenario::Healthy { variant: 0 }, seed).targets[0].labels["node"].clone();
    let (earlier, _) =
        with_snapshots(seed - 1, Some(host_snapshot(&node, 0.0, 400_000_000_000, 5)), None);
    let (now, _) = with_snapshots(seed, Some(host_snapshot(&node, 0.0, 400_000_000_000, 8)), None);
    let dir = std::env::temp_dir().join(format!("opsg-triage-snapshots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.jsonl");
    let line = earlier.strip_suffix(b"\n").unwrap().to_vec();
    let ledger = opsg_triage::history::write_ledger(&[line], "2026-11-22T06:00:00.000Z").unwrap();
    std::fs::write(&path, &ledger).unwrap();
    let p = path.to_str().unwrap();

    // Alone, the run sees 8 OOM kills since boot: nothing to say.
    assert_eq!(triage(&now, seed, &[]).last()["body"]["status"], "no_incident");
    // With the previous run's snapshot an hour before (`--continue-within 2h`): 3 more.
    let f = triage(&now, seed, &["--history", p, "--continue-within", "2h"]).last();
    assert_valid(&f);
    assert_eq!(f["body"]["class"], "host_memory_pressure", "{}", f["body"]["summary"]);
    let oom = &f["body"]["anomalies"][0];
    assert_eq!((oom["rule"].as_str(), oom["value"].as_f64()), (Some("host_oom_kills"), Some(3.0)));
    // Snapshots older than the continuity window are not compared with.
    let f = triage(&now, seed, &["--history", p, "--continue-within", "30m"]).last();
    assert_eq!(f["body"]["status"], "no_incident", "{}", f["body"]["summary"]);

    // One byte changed in the ledger: refused, nothing learned, said in the finding.
    let text = String::from_utf8(ledger).unwrap().replacen("\"oom_kill\":5", "\"oom_kill\":1", 1);
    std::fs::write(&path, text).unwrap();
    let out = triage(&now, seed, &["--history", p, "--continue-within", "2h"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let f = out.last();
    assert_eq!(f["body"]["status"], "no_incident", "{}", f["body"]["summary"]);
    let notes = f["body"]["telemetry"]["notes"].to_string();
    assert!(notes.contains("history ledger refused"), "{notes}");
    std::fs::remove_dir_all(&dir).ok();
}

// Regression: a KV burst routed to every replica that began before the window was named
// traffic_surge (no growth inside the window, the same KV per request everywhere). With
// --state-dir, healthy runs teach triage the fleet's usual traffic, and prompts 2.3x the usual
// length with arrivals only 1.24x are long contexts.
#[test]
fn the_state_dir_learns_the_usual_traffic_from_healthy_runs_and_judges_a_kv_burst_by_it() {
    use opsg_triage::synth::{sealed, steady_traffic, traffic};
    let dir = std::env::temp_dir().join(format!("opsg-triage-usual-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let state = dir.to_str().unwrap().to_string();
    let triage_at = |body: &opsg_core::kinds::observation::ObservationBody, state: Option<&str>| {
        let end = opsg_core::time::Timestamp::parse_rfc3339(&body.window.end).unwrap();
        let now = end.plus_millis(1_000).to_rfc3339();
        let line = sealed(body, end, "run-usual").unwrap();
        let mut args = vec!["--now", now.as_str()];
        if let Some(s) = state {
            args.extend(["--state-dir", s]);
        }
        let out = run("opsg-triage", &args, &line);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.last()
    };
    // Three healthy cron runs ten minutes apart: 10 req/s of 1,000 prompt tokens.
    for k in 0..3 {
        let healthy = traffic(&steady_traffic(10.0, 1000.0), START + k * 600_000);
        let f = triage_at(&healthy, Some(&state));
        assert_eq!(f["body"]["status"], "no_incident", "{f}");
    }
    let learned: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("traffic.json")).unwrap()).unwrap();
    assert_eq!(learned["runs"].as_array().unwrap().len(), 3, "{learned}");
    assert_eq!(learned["runs"][0]["arrivals_per_s"], 10.0);
    assert_eq!(learned["runs"][0]["prompt_tokens_per_request"], 1000.0);

    // Then a KV burst: 12.4 req/s of 2,300 tokens, the stable replicas' KV cache full.
    let mut replicas = steady_traffic(12.4, 2300.0);
    for r in &mut replicas {
        (r.running, r.kv) = if r.name.starts_with("stable") { (20.0, 0.97) } else { (10.0, 0.485) };
    }
    let burst = traffic(&replicas, START + 3 * 600_000);
    let without = triage_at(&burst, None);
    assert_eq!(without["body"]["class"], "traffic_surge", "without history, as before: {without}");
    let with = triage_at(&burst, Some(&state));
    assert_eq!(with["body"]["class"], "kv_cache_saturation", "{with}");
    let cause = with["body"]["hypotheses"][0]["cause"].as_str().unwrap();
    assert!(cause.contains("prompts are 2.3x the usual length (3 runs)"), "{cause}");
    assert!(
        !with["body"]["hypotheses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["class"] == "traffic_surge")
    );
    // An incident teaches nothing: the usual stays the healthy runs'.
    let learned: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("traffic.json")).unwrap()).unwrap();
    assert_eq!(learned["runs"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(dir).ok();
}
