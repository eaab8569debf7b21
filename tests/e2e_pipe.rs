//! The whole pipe, seven real processes, against a real `opsg-sim` with a fault injected:
//! `opsg-scrape | opsg-triage | opsg-plan | opsg-gate | opsg-exec | opsg-verify | opsg-audit`.
//!
//! Which plan triage and the planner choose is their own suites' business; this one checks that
//! whatever the pipe decides, the records tell the truth about the sim: the actions the execution
//! and rollback records say ran are exactly the admin calls the sim received, in order; a rolled
//! back incident leaves the sim's settings where they started; `resolved` only with every check
//! passed; the exit status is the outcome; the ledger verifies.

mod e2e_support;

use e2e_support::{Ran, Sim, TempDir, pipe_while_ticking, run};
use serde_json::{Value, json};

const AUDIT: &str = env!("CARGO_BIN_EXE_opsg-audit");

fn settings(state: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (name, d) in state["deployments"].as_object().expect("deployments") {
        out.insert(
            name.clone(),
            json!([d["weight"], d["config_version"], d["status"], d["replicas"]]),
        );
    }
    Value::Object(out)
}

fn full_pipe(fault: &str, target: &str) -> (Sim, Ran, TempDir, Value) {
    let sim = Sim::start();
    let dir = TempDir::new(&format!("e2e-pipe-{fault}"));
    sim.tick(60.0);
    let start = settings(&sim.state());
    sim.post(&format!("/chaos/{fault}"), json!({"target": target, "intensity": 0.9}));
    sim.tick(60.0);
    let targets = dir.join("targets.json");
    sim.targets_file(&targets);
    let fleet = dir.join("fleet-state.json");
    std::fs::write(&fleet, sim.state().to_string()).expect("snapshot");
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "mode": "live",
            "allow_actions": ["shift_traffic", "set_deployment_status", "rollback_config", "restart_replica", "scale_replicas", "noop", "escalate"],
            "min_confidence": 0.5,
            "max_blast_radius": {"replicas": 4, "traffic_share": 1.0},
            "require_approval": ["destructive"],
            "max_actions_per_hour": 6
        })
        .to_string(),
    )
    .expect("policy");
    let script = format!(
        "\"$SCRAPE\" --targets '{t}' --samples 3 --interval 200ms \
         | \"$TRIAGE\" \
         | \"$PLAN\" --fleet-state '{f}' \
         | \"$GATE\" --policy '{p}' --state-dir '{s}' \
         | \"$EXEC\" --execute --sim '{b}' --state-dir '{s}' \
         | \"$VERIFY\" --settle 1s --samples 3 --interval 200ms --max-wait 2s --recheck 200ms --sim '{b}' --state-dir '{s}' \
         | \"$AUDIT\" --ledger '{l}'",
        t = targets.display(),
        f = fleet.display(),
        p = policy.display(),
        s = dir.str("state"),
        b = sim.base,
        l = dir.str("ledger.jsonl"),
    );
    let out = pipe_while_ticking(&sim, &script, &[], b"", 3.0);
    (sim, out, dir, start)
}

fn outcome_code(outcome: &str) -> i32 {
    match outcome {
        "resolved" => 0,
        "no_incident" => 10,
        "awaiting_approval" => 11,
        "blocked" => 12,
        "rolled_back" => 13,
        "failed" => 14,
        "inconclusive" => 15,
        "dry_run" => 16,
        other => panic!("unknown outcome {other}"),
    }
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

fn records_tell_the_truth(sim: &Sim, out: &Ran, dir: &TempDir, start: &Value) {
    let records = out.records();
    let kinds: Vec<&str> = records.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["observation", "finding", "plan", "decision", "execution", "verification", "report"],
        "{}",
        out.stderr
    );
    e2e_support::check_acting_records(&out.stdout);
    let verification = &records[5]["body"];
    let outcome = verification["outcome"].as_str().unwrap();
    assert_eq!(
        out.code,
        Some(outcome_code(outcome)),
        "the pipe's exit status is the outcome\n{}",
        out.stderr
    );
    assert_eq!(records[6]["body"]["outcome"], outcome, "audit reports what verify found");

    // What the records say ran is exactly what the sim received.
    let mut claimed: Vec<String> = Vec::new();
    let ran = |a: &Value| a["outcome"] == "succeeded" || a["outcome"] == "failed";
    for a in records[4]["body"]["actions"].as_array().unwrap().iter().filter(|a| ran(a)) {
        claimed.push(format!("POST {}", path_of(a["request"]["url"].as_str().unwrap())));
    }
    for a in verification["rollback"]["actions"].as_array().into_iter().flatten().filter(|a| ran(a))
    {
        claimed.push(format!("POST {}", path_of(a["request"]["url"].as_str().unwrap())));
    }
    assert_eq!(sim.admin_calls(), claimed, "records and sim disagree\n{}", out.stderr);

    match outcome {
        "resolved" => {
            let checks = verification["checks"].as_array().unwrap();
            assert!(
                !checks.is_empty() && checks.iter().all(|c| c["result"] == "pass"),
                "{verification}"
            );
        }
        "rolled_back" => {
            assert_eq!(&settings(&sim.state()), start, "a rollback leaves the sim where it started")
        }
        "no_incident" | "blocked" | "awaiting_approval" => assert!(claimed.is_empty()),
        _ => {}
    }
    let verify = run(AUDIT, &["verify", "--ledger", &dir.str("ledger.jsonl")], &[], b"");
    assert_eq!(verify.code, Some(0), "the ledger verifies: {}", verify.stderr);
}

#[test]
fn seven_processes_on_a_kv_cache_saturation() {
    let (sim, out, dir, start) = full_pipe("kv_cache_saturation", "stable");
    records_tell_the_truth(&sim, &out, &dir, &start);
    // An incident was raised and acted on (whatever its class): this is not a quiet fleet.
    assert_eq!(out.records()[1]["body"]["status"], "incident", "{}", out.stderr);
}

#[test]
fn seven_processes_on_a_replica_crash() {
    let (sim, out, dir, start) = full_pipe("replica_crash", "stable-1");
    records_tell_the_truth(&sim, &out, &dir, &start);
    // The one fix for a crashed replica, found, approved, applied and confirmed by the pipe.
    let records = out.records();
    assert_eq!(records[1]["body"]["class"], "replica_down", "{}", out.stderr);
    assert_eq!(records[2]["body"]["actions"][0]["action"], "restart_replica");
    assert_eq!(records[2]["body"]["actions"][0]["target"], "stable-1");
    assert_eq!(records[5]["body"]["outcome"], "resolved", "{}", out.stderr);
    assert_eq!(out.code, Some(0));
    assert_eq!(sim.admin_calls(), vec!["POST /admin/replicas/stable-1/restart"]);
    assert_eq!(sim.state()["replicas"]["stable-1"]["up"], true);
}
