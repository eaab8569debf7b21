//! The acting half of the pipe against a real `opsg-sim`: a real observation from `opsg-scrape`,
//! then a plan built here (so each scenario tests the acting stages, not triage's ranking), then
//! `opsg-gate | opsg-exec --execute | opsg-verify` as one shell pipe while the sim's clock runs.
//! Every scenario asserts the sim's own state (`GET /state`, its admin log) as well as the records.

mod e2e_support;

use e2e_support::{GATE, Ran, Sim, TempDir, pipe_while_ticking, run};
use opsg_core::kinds::finding::{IncidentClass, Method};
use opsg_core::kinds::plan::{
    Action, ActionType, BlastRadius, ExpectedEffect, Inverse, PlanBody, SafetyClass,
};
use opsg_core::time::Timestamp;
use opsg_gate::fixture::ChainBuilder;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn policy(dir: &TempDir, require_approval: &[&str]) -> String {
    let path = dir.join("policy.json");
    let p = json!({
        "mode": "live",
        "allow_actions": ["shift_traffic", "set_deployment_status", "rollback_config", "restart_replica", "scale_replicas", "noop", "escalate"],
        "min_confidence": 0.8,
        "max_blast_radius": {"replicas": 4, "traffic_share": 1.0},
        "require_approval": require_approval,
        "cooldowns": [{"action": "*", "target": "*", "duration": "10m"}],
        "max_actions_per_hour": 6
    });
    std::fs::write(&path, p.to_string()).expect("policy");
    path.display().to_string()
}

/// A real observation of the sim's replicas (three samples while its clock runs).
fn observe(sim: &Sim, dir: &TempDir) -> Vec<u8> {
    let targets = dir.join("targets.json");
    sim.targets_file(&targets);
    let script =
        format!("\"$SCRAPE\" --targets '{}' --samples 3 --interval 200ms", targets.display());
    let out = pipe_while_ticking(sim, &script, &[], b"", 2.0);
    assert_eq!(out.code, Some(0), "scrape: {}", out.stderr);
    out.stdout
}

fn effect(signal: &str, target: &str, direction: &str, by: Option<f64>) -> ExpectedEffect {
    ExpectedEffect {
        signal: signal.into(),
        target: target.into(),
        direction: direction.into(),
        by_fraction: by,
        below: None,
        above: None,
        within_s: 300.0,
    }
}

fn action(
    kind: ActionType,
    target: &str,
    params: Value,
    safety: SafetyClass,
    effect: ExpectedEffect,
    inverse: Option<(ActionType, Value)>,
) -> Action {
    let map = |v: Value| -> BTreeMap<String, Value> {
        v.as_object().cloned().unwrap_or_default().into_iter().collect()
    };
    Action {
        index: 0,
        action: kind,
        target: target.into(),
        params: map(params),
        safety,
        blast_radius: BlastRadius { replicas: 1, traffic_share: 0.1 },
        expected_effect: Some(effect),
        inverse: inverse.clone().map(|(action, params)| Inverse { action, params: map(params) }),
        prior_state: inverse.map(|(_, p)| map(p)).unwrap_or_default(),
    }
}

/// The observation, then a finding and a one-action plan built here.
fn incident(observation: &[u8], class: IncidentClass, confidence: f64, a: Action) -> Vec<u8> {
    let plan = PlanBody {
        class,
        confidence,
        rationale: "e2e scenario".into(),
        actions: vec![a],
        precedents: vec![],
        method: Method::rules(),
    };
    ChainBuilder::after(observation, Timestamp::now()).finding(class, true).plan(plan).bytes()
}

/// `gate | tee decision | exec --execute | verify` as one shell pipe while the sim runs.
fn act(sim: &Sim, dir: &TempDir, policy: &str, input: &[u8], env: &[(&str, &str)]) -> Ran {
    let state = dir.str("state");
    let decision = dir.str("decision.jsonl");
    let script = format!(
        "\"$GATE\" --policy '{policy}' --state-dir '{state}' --explain \
         | tee '{decision}' \
         | \"$EXEC\" --execute --sim '{sim}' --state-dir '{state}' \
         | \"$VERIFY\" --settle 1s --samples 3 --interval 200ms --max-wait 2s --recheck 200ms --sim '{sim}' --state-dir '{state}'",
        sim = sim.base
    );
    pipe_while_ticking(sim, &script, env, input, 5.0)
}

fn last(ran: &Ran, kind: &str) -> Value {
    ran.records()
        .into_iter()
        .rev()
        .find(|r| r["kind"] == kind)
        .map(|r| r["body"].clone())
        .unwrap_or(Value::Null)
}

fn weights(sim: &Sim) -> (f64, f64) {
    let s = sim.state();
    (
        s["deployments"]["stable"]["weight"].as_f64().unwrap(),
        s["deployments"]["canary"]["weight"].as_f64().unwrap(),
    )
}

#[test]
fn kv_cache_saturation_is_resolved_by_shifting_traffic_and_a_rerun_executes_nothing() {
    let sim = Sim::start();
    let dir = TempDir::new("e2e-kv");
    sim.tick(60.0);
    sim.post("/chaos/kv_cache_saturation", json!({"target": "canary", "intensity": 0.9}));
    sim.tick(60.0);
    let obs = observe(&sim, &dir);
    let a = action(
        ActionType::ShiftTraffic,
        "canary",
        json!({"weights": {"stable": 1.0, "canary": 0.0}, "from": "canary"}),
        SafetyClass::Safe,
        effect("vllm:kv_cache_usage_perc", "canary", "decrease", Some(0.2)),
        Some((ActionType::ShiftTraffic, json!({"weights": {"stable": 0.9, "canary": 0.1}}))),
    );
    let input = incident(&obs, IncidentClass::KvCacheSaturation, 0.93, a);
    let policy = policy(&dir, &["impactful", "destructive"]);
    let out = act(&sim, &dir, &policy, &input, &[]);
    let v = last(&out, "verification");
    assert_eq!(v["outcome"], "resolved", "{}\n{v}", out.stderr);
    assert_eq!(out.code, Some(0));
    assert_eq!(v["checks"][0]["result"], "pass");
    assert!(v["checks"][0]["before"].as_f64().unwrap() > v["checks"][0]["after"].as_f64().unwrap());
    assert_eq!(weights(&sim), (1.0, 0.0), "the sim's router really moved");
    let exec = last(&out, "execution");
    assert_eq!(
        exec["actions"][0]["prior_state"]["weights"],
        json!({"stable": 0.9, "canary": 0.1}),
        "captured before acting"
    );
    assert_eq!(sim.admin_calls(), vec!["POST /admin/traffic"]);

    // The recorded decision through exec and verify again: nothing runs twice.
    let decision = std::fs::read(dir.join("decision.jsonl")).expect("tee'd decision");
    let state = dir.str("state");
    let script = format!(
        "\"$EXEC\" --execute --sim '{b}' --state-dir '{state}' | \"$VERIFY\" --settle 0s --samples 2 --interval 200ms --max-wait 0s --sim '{b}' --state-dir '{state}'",
        b = sim.base
    );
    let again = pipe_while_ticking(&sim, &script, &[], &decision, 5.0);
    assert_eq!(
        last(&again, "execution")["actions"][0]["outcome"],
        "already_done",
        "{}",
        again.stderr
    );
    assert_eq!(sim.admin_calls(), vec!["POST /admin/traffic"], "a re-run called the sim again");
    // And the whole recorded pipe again: the gate refuses while the cooldown runs.
    let rerun = act(&sim, &dir, &policy, &input, &[]);
    assert_eq!(last(&rerun, "decision")["verdict"], "blocked");
    assert_eq!(rerun.code, Some(12));
    assert_eq!(sim.admin_calls().len(), 1);
}

#[test]
fn a_fix_that_does_not_work_is_rolled_back_to_where_the_sim_started() {
    let sim = Sim::start();
    let dir = TempDir::new("e2e-rollback");
    sim.tick(60.0);
    let before = weights(&sim);
    sim.post("/chaos/kv_cache_saturation", json!({"target": "stable", "intensity": 0.9}));
    sim.tick(60.0);
    let obs = observe(&sim, &dir);
    // A fifth of stable's traffic to the canary cannot halve stable's KV usage.
    let a = action(
        ActionType::ShiftTraffic,
        "stable",
        json!({"weights": {"stable": 0.72, "canary": 0.28}, "from": "stable"}),
        SafetyClass::Safe,
        effect("vllm:kv_cache_usage_perc", "stable", "decrease", Some(0.5)),
        Some((ActionType::ShiftTraffic, json!({"weights": {"stable": 0.9, "canary": 0.1}}))),
    );
    let input = incident(&obs, IncidentClass::KvCacheSaturation, 0.9, a);
    let out = act(&sim, &dir, &policy(&dir, &["impactful"]), &input, &[]);
    let v = last(&out, "verification");
    assert_eq!(v["outcome"], "rolled_back", "{}\n{v}", out.stderr);
    assert_eq!(out.code, Some(13));
    assert_eq!(v["checks"][0]["result"], "fail");
    let rb = &v["rollback"];
    assert_eq!(rb["actions"][0]["outcome"], "succeeded");
    assert_eq!(
        rb["actions"][0]["request"]["body"],
        json!({"weights": {"stable": 0.9, "canary": 0.1}})
    );
    assert_eq!(rb["verified"], true, "{rb}");
    e2e_support::check_acting_records(&out.stdout);
    assert_eq!(weights(&sim), before, "the sim is back where it started");
    assert_eq!(sim.admin_calls(), vec!["POST /admin/traffic", "POST /admin/traffic"]);
}

#[test]
fn a_canary_regression_waits_for_approval_then_a_signed_token_rolls_its_config_back() {
    const KEY: &str = "e2e-approval-key";
    let sim = Sim::start();
    let dir = TempDir::new("e2e-canary");
    sim.tick(60.0);
    sim.post("/chaos/canary_regression", json!({"target": "canary", "intensity": 0.9}));
    sim.tick(60.0);
    assert_eq!(sim.state()["deployments"]["canary"]["config_version"], 2);
    let obs = observe(&sim, &dir);
    let a = action(
        ActionType::RollbackConfig,
        "canary",
        json!({"deployment": "canary", "to_version": 1}),
        SafetyClass::Impactful,
        effect("vllm:time_to_first_token_seconds:p95", "canary", "decrease", Some(0.5)),
        Some((ActionType::RollbackConfig, json!({"deployment": "canary", "to_version": 2}))),
    );
    let input = incident(&obs, IncidentClass::CanaryRegression, 0.9, a);
    let policy = policy(&dir, &["impactful", "destructive"]);
    let env = [("OPSG_APPROVAL_KEY", KEY)];

    // Impactful: the pipe stops at the gate, and says how to approve.
    let first = act(&sim, &dir, &policy, &input, &env);
    let d = last(&first, "decision");
    assert_eq!(d["verdict"], "awaiting_approval", "{}", first.stderr);
    assert_eq!(first.code, Some(11));
    assert!(sim.admin_calls().is_empty(), "nothing may run before approval");
    let plan_hash = d["plan_hash"].as_str().unwrap().to_string();
    assert!(first.stderr.contains(&plan_hash), "--explain says which plan to approve");

    // A token for another plan is refused with the reason, nothing runs.
    let other =
        run(GATE, &["approve", "--plan-hash", &"ab".repeat(32), "--approver", "alice"], &env, b"");
    let other_token = String::from_utf8_lossy(&other.stdout).trim().to_string();
    let refused = act(&sim, &dir, &policy, &input, &[env[0], ("OPSG_APPROVAL", &other_token)]);
    assert_eq!(last(&refused, "decision")["verdict"], "blocked");
    assert!(refused.stderr.contains("approval_other_plan"), "{}", refused.stderr);
    assert!(sim.admin_calls().is_empty());

    // Signed for this plan: it runs and resolves the regression.
    let approve = run(
        GATE,
        &["approve", "--plan-hash", &plan_hash, "--approver", "alice", "--expires", "30m"],
        &env,
        b"",
    );
    assert_eq!(approve.code, Some(0), "{}", approve.stderr);
    let token = String::from_utf8_lossy(&approve.stdout).trim().to_string();
    assert!(!approve.stderr.contains(KEY));
    let second = act(&sim, &dir, &policy, &input, &[env[0], ("OPSG_APPROVAL", &token)]);
    let d = last(&second, "decision");
    assert_eq!(d["verdict"], "approved", "{}", second.stderr);
    assert_eq!(d["approval"]["approver"], "alice");
    let v = last(&second, "verification");
    assert_eq!(v["outcome"], "resolved", "{}\n{v}", second.stderr);
    e2e_support::check_acting_records(&second.stdout);
    assert_eq!(
        sim.state()["deployments"]["canary"]["config_version"],
        1,
        "the sim runs the old config"
    );
    assert_eq!(sim.admin_calls(), vec!["POST /admin/deployments/canary/rollback"]);
    let text = format!("{}{}", String::from_utf8_lossy(&second.stdout), second.stderr);
    assert!(!text.contains(KEY) && !text.contains(&token), "the key or the bearer token leaked");

    // The same token again is a replay.
    let replay = act(&sim, &dir, &policy, &input, &[env[0], ("OPSG_APPROVAL", &token)]);
    assert_eq!(last(&replay, "decision")["verdict"], "blocked");
    assert!(replay.stderr.contains("approval_replayed"), "{}", replay.stderr);
    assert_eq!(sim.admin_calls().len(), 1);
}

#[test]
fn a_crashed_replica_is_resolved_by_a_restart() {
    let sim = Sim::start();
    let dir = TempDir::new("e2e-crash");
    sim.tick(60.0);
    sim.post("/chaos/replica_crash", json!({"target": "stable-1"}));
    sim.tick(30.0);
    assert_eq!(sim.state()["replicas"]["stable-1"]["up"], false);
    let obs = observe(&sim, &dir);
    let a = action(
        ActionType::RestartReplica,
        "stable-1",
        json!({"replica": "stable-1", "deployment": "stable"}),
        SafetyClass::Impactful,
        effect("up", "stable-1", "recover", None),
        None,
    );
    let input = incident(&obs, IncidentClass::ReplicaDown, 0.95, a);
    let out = act(&sim, &dir, &policy(&dir, &["destructive"]), &input, &[]);
    let v = last(&out, "verification");
    assert_eq!(v["outcome"], "resolved", "{}\n{v}", out.stderr);
    assert_eq!(v["checks"][0]["before"], 0.0);
    assert_eq!(v["checks"][0]["after"], 1.0);
    let replica = &sim.state()["replicas"]["stable-1"];
    assert_eq!(replica["up"], true);
    assert_eq!(replica["restarts"], 1);
    assert_eq!(sim.admin_calls(), vec!["POST /admin/replicas/stable-1/restart"]);
}

#[test]
fn a_low_confidence_plan_is_blocked_and_nothing_is_executed() {
    let sim = Sim::start();
    let dir = TempDir::new("e2e-lowconf");
    sim.tick(60.0);
    let state_before = sim.state()["deployments"].clone();
    let obs = observe(&sim, &dir);
    let a = action(
        ActionType::ShiftTraffic,
        "canary",
        json!({"weights": {"stable": 1.0, "canary": 0.0}}),
        SafetyClass::Safe,
        effect("vllm:kv_cache_usage_perc", "canary", "decrease", Some(0.2)),
        Some((ActionType::ShiftTraffic, json!({"weights": {"stable": 0.9, "canary": 0.1}}))),
    );
    let input = incident(&obs, IncidentClass::KvCacheSaturation, 0.42, a);
    let out = act(&sim, &dir, &policy(&dir, &["impactful"]), &input, &[]);
    let d = last(&out, "decision");
    assert_eq!(d["verdict"], "blocked");
    assert!(d["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "below_confidence"));
    assert_eq!(last(&out, "execution")["status"], "nothing_to_do");
    assert_eq!(last(&out, "verification")["outcome"], "blocked");
    assert_eq!(out.code, Some(12));
    assert!(sim.admin_calls().is_empty());
    let after = sim.state()["deployments"].clone();
    // Traffic shares are recomputed from live weights; compare what an action could change.
    for d in ["stable", "canary"] {
        for k in ["weight", "config_version", "status"] {
            assert_eq!(after[d][k], state_before[d][k], "{d}.{k} changed");
        }
    }
}

#[test]
fn a_destructive_drain_allowed_by_policy_is_undone_with_its_own_inverse_call() {
    let sim = Sim::start();
    let dir = TempDir::new("e2e-drain");
    sim.tick(60.0);
    assert_eq!(sim.state()["nodes"]["gpu-node-a"]["cordoned"], false);
    let obs = observe(&sim, &dir);
    // Draining a node cannot make stable's KV usage vanish: the fix fails and is undone.
    let a = action(
        ActionType::DrainNode,
        "gpu-node-a",
        json!({"node": "gpu-node-a"}),
        SafetyClass::Destructive,
        effect("vllm:kv_cache_usage_perc", "stable", "decrease", Some(0.99)),
        Some((ActionType::DrainNode, json!({"node": "gpu-node-a", "uncordon": true}))),
    );
    let input = incident(&obs, IncidentClass::GpuFault, 0.95, a);
    let path = dir.join("policy.json");
    std::fs::write(
        &path,
        json!({
            "mode": "live", "allow_actions": ["drain_node"], "allow_destructive": true,
            "min_confidence": 0.8, "max_blast_radius": {"replicas": 4, "traffic_share": 1.0},
            "require_approval": [], "max_actions_per_hour": 6
        })
        .to_string(),
    )
    .unwrap();
    let out = act(&sim, &dir, &path.display().to_string(), &input, &[]);
    let v = last(&out, "verification");
    assert_eq!(v["outcome"], "rolled_back", "{}\n{v}", out.stderr);
    assert_eq!(
        sim.admin_calls(),
        vec!["POST /admin/nodes/gpu-node-a/drain", "POST /admin/nodes/gpu-node-a/uncordon"],
        "the inverse of a drain is an uncordon, not a second drain"
    );
    assert_eq!(sim.state()["nodes"]["gpu-node-a"]["cordoned"], false);
}
