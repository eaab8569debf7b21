//! End-to-end: `opsg-triage | opsg-plan` with the real binaries.

mod e2e_support;
mod triage_support;

use opsg_core::kinds::finding::IncidentClass;
use opsg_triage::synth::Scenario;
use serde_json::{Value, json};
use triage_support::*;

fn pipe(input: &[u8], seed: u64, plan_args: &[&str]) -> Ran {
    let now = now_for(seed);
    let found = run("opsg-triage", &["--now", &now], input);
    assert_eq!(found.code, 0, "{}", found.stderr);
    let mut args = vec!["--now", now.as_str()];
    args.extend_from_slice(plan_args);
    run("opsg-plan", &args, &found.stdout)
}

fn first_action(plan: &Value) -> &Value {
    &plan["body"]["actions"][0]
}

#[test]
fn kv_saturation_on_stable_scales_up_with_an_exact_inverse() {
    let input = observation(Scenario::Fault(IncidentClass::KvCacheSaturation), 21);
    let out = pipe(&input, 21, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    assert_eq!(records.len(), 3, "observation, finding, plan");
    assert!(out.stdout.starts_with(&input));
    let plan = &records[2];
    assert_valid(plan);
    assert_eq!(plan["consumes"][0], records[1]["id"]);
    assert_eq!(plan["incident"], records[1]["incident"]);
    assert_eq!(plan["body"]["class"], "kv_cache_saturation");
    assert_eq!(plan["body"]["confidence"], records[1]["body"]["hypotheses"][0]["confidence"]);
    // One canary's headroom cannot take what three saturated stable replicas must shed, so
    // the shift is skipped (it would only move the saturation) and the plan adds replicas.
    let why = plan["body"]["rationale"].as_str().unwrap();
    assert!(why.contains("plan `kv-scale-up`"), "{why}");
    assert!(why.contains("`kv-shift-traffic` skipped") && why.contains("min_cover"), "{why}");
    assert!(why.contains("scale-up sized from the evidence"), "{why}");
    assert_eq!(plan["body"]["actions"].as_array().unwrap().len(), 1);
    let scale = first_action(plan);
    assert_eq!(scale["action"], "scale_replicas");
    assert_eq!(scale["target"], "llama-stable");
    assert_eq!(scale["safety"], "safe");
    let (from, to) = (
        scale["prior_state"]["replicas"].as_u64().unwrap(),
        scale["params"]["replicas"].as_u64().unwrap(),
    );
    assert!(to > from && to - from <= 8, "at least one, at most max_delta more: {scale}");
    assert_eq!(scale["inverse"]["action"], "scale_replicas");
    assert_eq!(scale["inverse"]["params"]["replicas"], from, "the inverse restores the count");
    assert_eq!(scale["blast_radius"]["replicas"], to - from);
    assert_eq!(scale["expected_effect"]["signal"], "vllm:kv_cache_usage_perc");
    assert_eq!(scale["expected_effect"]["direction"], "decrease");
}

#[test]
fn every_class_gets_its_first_action_and_valid_records() {
    let expected = [
        (IncidentClass::QueueBacklog, "scale_replicas", "safe"),
        (IncidentClass::TrafficSurge, "scale_replicas", "safe"),
        (IncidentClass::CanaryRegression, "rollback_config", "impactful"),
        (IncidentClass::ReplicaDown, "restart_replica", "impactful"),
        (IncidentClass::GpuFault, "cordon_node", "impactful"),
        (IncidentClass::MemoryLeak, "restart_replica", "impactful"),
        (IncidentClass::NetworkLatency, "cordon_node", "impactful"),
        (IncidentClass::DiskPressure, "cleanup_node", "impactful"),
        (IncidentClass::HostMemoryPressure, "restart_replica", "impactful"),
    ];
    for (class, action, safety) in expected {
        let out = pipe(&observation(Scenario::Fault(class), 22), 22, &[]);
        assert_eq!(out.code, 0, "{class}: {}", out.stderr);
        let plan = out.last();
        assert_valid(&plan);
        assert_eq!(plan["body"]["class"], class.as_str());
        let a = first_action(&plan);
        assert_eq!(a["action"], action, "{class}: {plan}");
        assert_eq!(a["safety"], safety, "{class}");
    }
}

#[test]
fn replica_down_restarts_the_replica_and_expects_it_back() {
    let plan = pipe(&observation(Scenario::Fault(IncidentClass::ReplicaDown), 23), 23, &[]).last();
    let a = first_action(&plan);
    let down = plan["body"]["rationale"].as_str().unwrap();
    assert!(down.contains("replica-restart"), "{down}");
    assert_eq!(a["params"]["replica"], a["target"]);
    assert_eq!(a["blast_radius"]["replicas"], 1);
    assert_eq!(a["expected_effect"]["signal"], "up");
    assert_eq!(a["expected_effect"]["direction"], "recover");
}

#[test]
fn disk_pressure_cleans_the_node_up_and_expects_free_space_back() {
    // Regression: no catalog action freed disk, so every disk-pressure plan escalated.
    let plan = pipe(&observation(Scenario::Fault(IncidentClass::DiskPressure), 25), 25, &[]).last();
    let a = first_action(&plan);
    assert_eq!(a["action"], "cleanup_node", "{plan}");
    assert_eq!(a["params"]["node"], a["target"]);
    let node = a["target"].as_str().unwrap();
    assert!(node.starts_with("node-") || node.starts_with("gpu-node-"), "a node: {a}");
    assert_eq!(a["blast_radius"], json!({"replicas": 0, "traffic_share": 0.0}));
    assert!(a.get("inverse").is_none_or(Value::is_null), "deleted files cannot come back: {a}");
    let e = &a["expected_effect"];
    assert_eq!(e["signal"], "node_filesystem_avail_bytes/node_filesystem_size_bytes");
    assert_eq!((&e["direction"], &e["target"]), (&json!("increase"), &a["target"]));
    assert_eq!(e["above"], 0.1, "a tenth of the disk free, not merely twice 1%");
}

#[test]
fn a_gpu_fault_cordons_the_node_and_moves_only_the_replica_on_it() {
    // Regression: the only fix was draining the whole node (destructive), which the autonomous
    // policy rightly blocks; cordon + restart moves one replica and leaves its neighbours be.
    let plan = pipe(&observation(Scenario::Fault(IncidentClass::GpuFault), 26), 26, &[]).last();
    let why = plan["body"]["rationale"].as_str().unwrap();
    assert!(why.contains("plan `gpu-cordon-and-move`"), "{why}");
    assert!(why.contains("alternatives: gpu-drain-node"), "{why}");
    let actions = plan["body"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{plan}");
    let (cordon, restart) = (&actions[0], &actions[1]);
    assert_eq!(cordon["action"], "cordon_node");
    assert_eq!(cordon["safety"], "impactful");
    assert_eq!(cordon["blast_radius"]["replicas"], 0);
    assert_eq!(cordon["inverse"]["action"], "cordon_node");
    assert_eq!(cordon["inverse"]["params"], json!({"node": cordon["target"], "uncordon": true}));
    assert_eq!(restart["action"], "restart_replica");
    assert_eq!(restart["blast_radius"]["replicas"], 1);
    // The replica the evidence is on, and an effect verification can measure on it.
    let finding_anomalies = plan["body"]["actions"][1]["expected_effect"].clone();
    assert_eq!(finding_anomalies["target"], restart["target"], "{restart}");
    assert_eq!(finding_anomalies["direction"], "decrease");
}

#[test]
fn no_incident_gives_an_empty_plan() {
    let out = pipe(&observation(Scenario::Healthy { variant: 0 }, 24), 24, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = out.last();
    assert_valid(&plan);
    assert_eq!(plan["body"]["class"], "none");
    assert_eq!(plan["body"]["actions"], json!([]));
    assert_eq!(plan["incident"], Value::Null);
}

#[test]
fn same_input_and_clock_give_the_same_bytes() {
    let input = observation(Scenario::Fault(IncidentClass::CanaryRegression), 25);
    let a = pipe(&input, 25, &[]);
    let b = pipe(&input, 25, &[]);
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn fleet_state_snapshot_gives_exact_prior_state() {
    let dir = std::env::temp_dir().join(format!("opsg-plan-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // opsg-sim's GET /state shape: numeric config versions with history, weights per deployment.
    let state = json!({
        "deployments": {
            "llama-stable": {"name": "llama-stable", "weight": 3.0, "status": "active", "config_version": 1,
                "config_history": [{"version": 1, "config": {}}], "replicas": ["stable-0", "stable-1", "stable-2"]},
            "llama-canary": {"name": "llama-canary", "weight": 1.0, "status": "active", "config_version": 3,
                "config_history": [{"version": 1, "config": {}}, {"version": 2, "config": {}}, {"version": 3, "config": {}}],
                "replicas": ["canary-0"]}
        },
        "replicas": {"canary-0": {"deployment": "llama-canary", "node": "node-d"}}
    });
    let path = dir.join("state.json");
    std::fs::write(&path, state.to_string()).unwrap();
    let p = path.to_str().unwrap();
    let plan = pipe(
        &observation(Scenario::Fault(IncidentClass::CanaryRegression), 26),
        26,
        &["--fleet-state", p],
    )
    .last();
    let a = first_action(&plan);
    assert_eq!(a["action"], "rollback_config");
    assert_eq!(a["params"], json!({"deployment": "llama-canary", "to_version": 2}));
    assert_eq!(a["prior_state"], json!({"config_version": 3}));
    assert_eq!(a["inverse"]["params"], json!({"deployment": "llama-canary", "to_version": 3}));
    assert_eq!(a["blast_radius"]["traffic_share"], 0.25, "weight 1 of 4");

    let plan = pipe(
        &observation(Scenario::Fault(IncidentClass::KvCacheSaturation), 26),
        26,
        &["--fleet-state", p],
    )
    .last();
    let a = first_action(&plan);
    assert_eq!(a["prior_state"]["weights"], json!({"llama-canary": 1.0, "llama-stable": 3.0}));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_plan_that_cannot_be_built_exactly_is_skipped_for_the_next() {
    // No weights anywhere: shift_traffic cannot know its inverse, so the scale-up plan is used.
    let mut b = body(Scenario::Fault(IncidentClass::KvCacheSaturation), 27);
    for t in &mut b.targets {
        t.labels.remove("weight");
    }
    let plan = pipe(&sealed(&b, 27), 27, &[]).last();
    let a = first_action(&plan);
    assert_eq!(a["action"], "scale_replicas");
    assert_eq!(a["params"]["replicas"], 4);
    assert_eq!(a["inverse"]["params"]["replicas"], 3);
    let why = plan["body"]["rationale"].as_str().unwrap();
    assert!(why.contains("kv-shift-traffic") && why.contains("weight"), "{why}");
}

/// Ledger lines for a past incident: finding, plan (first action) and report (outcome).
fn past_incident(
    id: &str,
    class: &str,
    fingerprint: &str,
    action: &str,
    outcome: &str,
    t: i64,
) -> Vec<Vec<u8>> {
    let stamp = opsg_core::record::Stamp {
        tool: "opsg-audit",
        version: "0",
        now: opsg_core::time::Timestamp(t),
    };
    let seal = |kind, body: Value| {
        let mut rec = opsg_core::record::Record::new(
            kind,
            &stamp,
            format!("run-{id}"),
            Some(id.to_string()),
            body,
        );
        rec.seal(opsg_core::seal::GENESIS).unwrap().0
    };
    use opsg_core::record::Kind;
    vec![
        seal(
            Kind::Finding,
            json!({"status": "incident", "class": class, "fingerprint": fingerprint, "summary": "", "method": {"kind": "rules"}}),
        ),
        seal(
            Kind::Plan,
            json!({"class": class, "confidence": 0.9, "rationale": "", "actions": [{"index": 0, "action": action, "target": "x", "safety": "safe", "blast_radius": {"replicas": 1, "traffic_share": 0.1}}], "method": {"kind": "rules"}}),
        ),
        seal(
            Kind::Report,
            json!({"outcome": outcome, "mttr_s": 120.0, "milestones": {}, "actions": {"total": 1, "safe": 1, "impactful": 0, "destructive": 0, "rolled_back": 0}}),
        ),
    ]
}

#[test]
fn runbook_memory_ranks_what_worked_and_cites_it() {
    let dir = std::env::temp_dir().join(format!("opsg-plan-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = observation(Scenario::Fault(IncidentClass::QueueBacklog), 28);
    let fresh = pipe(&input, 28, &[]).last();
    assert_eq!(first_action(&fresh)["action"], "scale_replicas");
    let fp = fresh["body"]["precedents"].clone();
    assert_eq!(fp, json!([]));
    // Scaling up was rolled back three times; shifting traffic resolved twice.
    let mut lines = Vec::new();
    for (i, (action, outcome)) in [
        ("scale_replicas", "rolled_back"),
        ("scale_replicas", "rolled_back"),
        ("scale_replicas", "failed"),
        ("shift_traffic", "resolved"),
        ("shift_traffic", "resolved"),
    ]
    .iter()
    .enumerate()
    {
        lines.extend(past_incident(
            &format!("inc-past{i}"),
            "queue_backlog",
            "f",
            action,
            outcome,
            1_790_000_000_000 + i as i64,
        ));
    }
    let ledger = opsg_triage::history::write_ledger(&lines, "2026-11-01T00:00:00.000Z").unwrap();
    let path = dir.join("ledger.jsonl");
    std::fs::write(&path, &ledger).unwrap();
    let p = path.to_str().unwrap();
    let out = pipe(&input, 28, &["--history", p]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = out.last();
    assert_valid(&plan);
    assert_eq!(first_action(&plan)["action"], "shift_traffic", "{}", plan["body"]["rationale"]);
    let precedents = plan["body"]["precedents"].as_array().unwrap();
    assert_eq!(precedents.len(), 5);
    assert!(precedents.iter().any(|p| p["incident"] == "inc-past3"
        && p["outcome"] == "resolved"
        && p["time_to_resolve_s"] == 120.0));

    // The same ledger with one byte changed is refused: the plan says so and learns nothing.
    let text = String::from_utf8(ledger).unwrap().replacen("rolled_back", "resolved!!!", 1);
    std::fs::write(&path, text).unwrap();
    let out = pipe(&input, 28, &["--history", p]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("history ledger refused"), "{}", out.stderr);
    let plan = out.last();
    assert_eq!(first_action(&plan)["action"], "scale_replicas");
    assert_eq!(plan["body"]["precedents"], json!([]));
    assert!(plan["body"]["rationale"].as_str().unwrap().contains("refused"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn catalog_errors_name_the_field_and_exit_3() {
    let dir = std::env::temp_dir().join(format!("opsg-plan-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let found = run(
        "opsg-triage",
        &["--now", &now_for(29)],
        &observation(Scenario::Fault(IncidentClass::ReplicaDown), 29),
    );
    let mut cat = serde_json::to_value(opsg_plan::Catalog::builtin()).unwrap();
    cat["plans"][7]["steps"][0]["paramz"] = json!({});
    let path = dir.join("catalog.json");
    std::fs::write(&path, cat.to_string()).unwrap();
    let out = run("opsg-plan", &["--catalog", path.to_str().unwrap()], &found.stdout);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("catalog.json") && out.stderr.contains("plans[7].steps[0]"),
        "{}",
        out.stderr
    );
    // A catalog that lists nothing for the class: the plan escalates.
    let mut cat = serde_json::to_value(opsg_plan::Catalog::builtin()).unwrap();
    cat["plans"] = json!([]);
    std::fs::write(&path, cat.to_string()).unwrap();
    let out = run("opsg-plan", &["--catalog", path.to_str().unwrap()], &found.stdout);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(first_action(&out.last())["action"], "escalate");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn input_without_a_finding_is_refused() {
    let out = run("opsg-plan", &[], &observation(Scenario::Healthy { variant: 0 }, 30));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("no finding record"), "{}", out.stderr);
}

#[test]
fn help_has_examples_and_exit_status() {
    let out = run("opsg-plan", &["--help"], b"");
    assert_eq!(out.code, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:\n") && text.contains("Exit status:"), "{text}");
    opsg_plan::command().debug_assert();
}

#[test]
fn a_surge_on_enough_replicas_holds_and_the_rest_of_the_pipe_does_nothing_without_error() {
    // Regression: the run after a right-sized scale-up (here 3 -> 9, the snapshot listing the
    // new replicas) still saw the old replicas' queues and planned one replica more, and again
    // at every run while they drained. The plan now holds: no actions, and why.
    let dir = std::env::temp_dir().join(format!("opsg-plan-hold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = observation(Scenario::Fault(IncidentClass::TrafficSurge), 31);
    let snapshot = |n: usize| {
        let replicas: Vec<String> = (0..n).map(|i| format!("stable-{i}")).collect();
        let state = json!({"deployments": {"llama-stable": {"weight": 0.9, "status": "active", "replicas": replicas}}});
        let path = dir.join(format!("state-{n}.json"));
        std::fs::write(&path, state.to_string()).unwrap();
        path.to_str().unwrap().to_string()
    };
    // On the 3 replicas the observation shows, the demand (5 replicas) is a scale-up.
    let three = snapshot(3);
    let plan = pipe(&input, 31, &["--fleet-state", &three]).last();
    assert_eq!(first_action(&plan)["params"]["replicas"], 5, "{plan}");

    let nine = snapshot(9);
    let held = pipe(&input, 31, &["--fleet-state", &nine]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    assert!(held.stderr.contains("no actions"), "{}", held.stderr);
    let plan = held.last();
    assert_valid(&plan);
    assert_eq!(plan["body"]["class"], "traffic_surge");
    assert_eq!(plan["body"]["actions"], json!([]));
    let why = plan["body"]["rationale"].as_str().unwrap();
    for part in [
        "plan `surge-scale-up`: hold, no scale-up",
        "5 replicas for 9 now",
        "waiting requests on 3 replica(s)",
    ] {
        assert!(why.contains(part), "`{part}` not in: {why}");
    }

    // Gate, exec (dry run), verify and audit take a plan with no actions as nothing to do.
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy.json");
    let state_dir = dir.join("state");
    let state_dir = state_dir.to_str().unwrap();
    let gate = e2e_support::run(
        e2e_support::GATE,
        &["--policy", policy, "--state-dir", state_dir],
        &[],
        &held.stdout,
    );
    assert_eq!(gate.code, Some(0), "{}", gate.stderr);
    assert_eq!(gate.last_body()["verdict"], "no_action", "{}", gate.stderr);
    let exec = e2e_support::run(e2e_support::EXEC, &["--state-dir", state_dir], &[], &gate.stdout);
    assert_eq!(exec.code, Some(0), "{}", exec.stderr);
    assert_eq!(exec.last_body()["status"], "nothing_to_do");
    let verify =
        e2e_support::run(e2e_support::VERIFY, &["--state-dir", state_dir], &[], &exec.stdout);
    // Exit 10 is the "no incident or no action" outcome, not an error.
    assert_eq!(verify.code, Some(10), "{}", verify.stderr);
    assert!(verify.stderr.contains("nothing to do"), "{}", verify.stderr);
    let ledger = dir.join("ledger.jsonl");
    let audit = e2e_support::run(
        env!("CARGO_BIN_EXE_opsg-audit"),
        &["--ledger", ledger.to_str().unwrap()],
        &[],
        &verify.stdout,
    );
    assert_eq!(audit.code, Some(10), "{}", audit.stderr);
    let report = audit.last_body();
    assert_eq!(report["outcome"], "no_incident", "{report}");
    assert_eq!(report["actions"]["total"], 0);
    std::fs::remove_dir_all(dir).ok();
}
