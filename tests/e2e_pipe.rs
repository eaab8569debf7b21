//! The whole pipe, seven real processes, against a real `opsg-sim` with a fault injected:
//! `opsg-scrape | opsg-triage | opsg-plan | opsg-gate | opsg-exec | opsg-verify | opsg-audit`.
//!
//! Nothing here is built by hand: triage finds the incident, the planner chooses and sizes the
//! fix from what was scraped, the gate decides under the scenario's policy, exec calls the sim's
//! admin API, verify re-scrapes and rolls back when the effect does not show, and audit appends
//! the chain to a ledger. Each scenario is made to happen by what an operator controls (the
//! fault, its target and intensity, the policy) and asserts both sides: the records (class, first
//! action, decision, outcome, exit status = outcome) and the sim (`GET /state`: its settings before
//! and after, and its admin log, which must be exactly what the execution and rollback records
//! say ran). Every ledger must verify.
//!
//! Time: the sim runs on a manual clock that the harness advances while the pipe runs, and verify
//! waits for effects with a generous `--max-wait` (it stops as soon as they show), so a loaded
//! machine makes a test slower, not different.

mod e2e_support;

use e2e_support::{GATE, Ran, Sim, TempDir, pipe_while_ticking, run};
use serde_json::{Value, json};

const AUDIT: &str = env!("CARGO_BIN_EXE_opsg-audit");

/// Flags every verify in this file uses: settle one second, then re-measure every 300 ms for up
/// to 20 s; the sim's clock runs about two minutes per real second meanwhile.
const VERIFY_ARGS: &str =
    "--settle 1s --samples 3 --interval 200ms --max-wait 20s --recheck 300ms --timeout 5s";

/// What a policy lets through, for [`policy`].
struct Policy {
    min_confidence: f64,
    require_approval: &'static [&'static str],
}

/// A live policy that allows every reversible action type and never the destructive ones.
fn policy(p: Policy) -> Value {
    json!({
        "mode": "live",
        "allow_actions": ["shift_traffic", "set_deployment_status", "rollback_config", "restart_replica", "scale_replicas", "noop", "escalate"],
        "min_confidence": p.min_confidence,
        "max_blast_radius": {"replicas": 4, "traffic_share": 1.0},
        "require_approval": p.require_approval,
        "max_actions_per_hour": 6
    })
}

/// The sim's settings an action can change, per deployment.
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

/// One incident: a sim with a fault, the files the pipe used, and what it printed.
struct Incident {
    sim: Sim,
    dir: TempDir,
    /// The sim's settings when the pipe started (after the fault).
    start: Value,
    /// The sim's whole state when the pipe started.
    before: Value,
    out: Ran,
}

impl Incident {
    /// Start a sim, warm it up, inject `fault`, let it develop, then run the seven stages under
    /// `policy`. The plan stage's output is kept (`plan.jsonl`), as a recording to resume from.
    fn run(fault: &str, target: &str, intensity: f64, policy: Value) -> Incident {
        Incident::run_with(fault, target, intensity, policy, None)
    }

    /// [`Incident::run`] with the planner reading `catalog` (`--catalog`) instead of its
    /// built-in one.
    fn run_with(
        fault: &str,
        target: &str,
        intensity: f64,
        policy: Value,
        catalog: Option<Value>,
    ) -> Incident {
        let sim = Sim::start();
        let dir = TempDir::new(&format!("e2e-pipe-{fault}"));
        sim.tick(60.0);
        let injected =
            sim.post(&format!("/chaos/{fault}"), json!({"target": target, "intensity": intensity}));
        assert!(injected.get("error").is_none(), "inject {fault}: {injected}");
        sim.tick(60.0);
        let before = sim.state();
        let start = settings(&before);
        sim.targets_file(&dir.join("targets.json"));
        std::fs::write(dir.join("fleet-state.json"), before.to_string()).expect("snapshot");
        std::fs::write(dir.join("policy.json"), policy.to_string()).expect("policy");
        let catalog_arg = match catalog {
            Some(c) => {
                std::fs::write(dir.join("catalog.json"), c.to_string()).expect("catalog");
                format!("--catalog '{}/catalog.json'", dir.path().display())
            }
            None => String::new(),
        };
        // Six samples: the KV rules need three breaching samples in a row, and a saturated
        // cache dips for a sample after each wave of preemptions.
        let script = format!(
            "\"$SCRAPE\" --targets '{d}/targets.json' --samples 6 --interval 200ms \
             | tee '{d}/observation.jsonl' \
             | \"$TRIAGE\" \
             | \"$PLAN\" --fleet-state '{d}/fleet-state.json' {catalog_arg} \
             | tee '{d}/plan.jsonl' \
             | \"$GATE\" --policy '{d}/policy.json' --state-dir '{d}/state' \
             | \"$EXEC\" --execute --sim '{b}' --state-dir '{d}/state' \
             | \"$VERIFY\" {VERIFY_ARGS} --sim '{b}' --state-dir '{d}/state' \
             | \"$AUDIT\" --ledger '{d}/ledger.jsonl'",
            d = dir.path().display(),
            b = sim.base,
        );
        let out = pipe_while_ticking(&sim, &script, &[], b"", 3.0);
        Incident { sim, dir, start, before, out }
    }

    /// Feed the recorded plan (`plan.jsonl`) through `gate | exec | verify | audit` again, with
    /// the same state dir and ledger, as a second cron run of the same recording would.
    fn resume(&self, env: &[(&str, &str)]) -> Ran {
        let script = format!(
            "\"$GATE\" --policy '{d}/policy.json' --state-dir '{d}/state' < '{d}/plan.jsonl' \
             | \"$EXEC\" --execute --sim '{b}' --state-dir '{d}/state' \
             | \"$VERIFY\" {VERIFY_ARGS} --sim '{b}' --state-dir '{d}/state' \
             | \"$AUDIT\" --ledger '{d}/ledger.jsonl'",
            d = self.dir.path().display(),
            b = self.sim.base,
        );
        pipe_while_ticking(&self.sim, &script, env, b"", 3.0)
    }

    /// The whole recording again from the scrape on: the recorded observation and fleet
    /// snapshot through all six stages after scrape (triage and plan stamp new records, so this
    /// is a new plan for the same evidence).
    fn replay_recording(&self) -> Ran {
        let script = format!(
            "\"$TRIAGE\" < '{d}/observation.jsonl' \
             | \"$PLAN\" --fleet-state '{d}/fleet-state.json' \
             | \"$GATE\" --policy '{d}/policy.json' --state-dir '{d}/state' \
             | \"$EXEC\" --execute --sim '{b}' --state-dir '{d}/state' \
             | \"$VERIFY\" {VERIFY_ARGS} --sim '{b}' --state-dir '{d}/state' \
             | \"$AUDIT\" --ledger '{d}/ledger.jsonl'",
            d = self.dir.path().display(),
            b = self.sim.base,
        );
        pipe_while_ticking(&self.sim, &script, &[], b"", 3.0)
    }

    fn body(&self, kind: &str) -> Value {
        body(&self.out, kind)
    }

    fn first_action(&self) -> Value {
        self.body("plan")["actions"][0].clone()
    }
}

/// The body of the last record of `kind`.
fn body(out: &Ran, kind: &str) -> Value {
    out.records()
        .into_iter()
        .rev()
        .find(|r| r["kind"] == kind)
        .map(|r| r["body"].clone())
        .unwrap_or_else(|| panic!("no {kind} record\n{}", out.stderr))
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
        "stale_plan" => 17,
        other => panic!("unknown outcome {other}"),
    }
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

/// The sim's admin calls (method, path, body), in order.
fn admin_log(sim: &Sim) -> Vec<(String, Value)> {
    sim.state()["admin_log"]
        .as_array()
        .expect("admin_log")
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/admin/")))
        .map(|e| {
            (
                format!("{} {}", e["method"].as_str().unwrap(), e["path"].as_str().unwrap()),
                e["body"].clone(),
            )
        })
        .collect()
}

/// Checks every run of the pipe must pass: one record per stage, typed bodies, exit status =
/// outcome = audit's outcome, the admin calls this run made = what its records say ran (`skip`
/// calls made by earlier runs), and the ledger verifies. Returns the outcome.
fn records_tell_the_truth(sim: &Sim, out: &Ran, dir: &TempDir, skip: usize) -> String {
    let records = out.records();
    let kinds: Vec<&str> = records.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    let chain =
        ["observation", "finding", "plan", "decision", "execution", "verification", "report"];
    assert_eq!(kinds, chain, "one record per stage\n{}", out.stderr);
    e2e_support::check_acting_records(&out.stdout);
    let verification = body(out, "verification");
    let outcome = verification["outcome"].as_str().unwrap().to_string();
    assert_eq!(
        out.code,
        Some(outcome_code(&outcome)),
        "the pipe's exit status is the outcome\n{}",
        out.stderr
    );
    assert_eq!(body(out, "report")["outcome"], outcome.as_str(), "audit reports what verify found");

    // What the records say ran is exactly what the sim received, bodies included.
    // An action reached the sim when exec attempted the call (a failed call did too; a
    // refusal before calling did not).
    let ran = |a: &&Value| {
        (a["outcome"] == "succeeded" || a["outcome"] == "failed")
            && a["attempts"].as_u64().is_some_and(|n| n > 0)
    };
    let execution = body(out, "execution");
    let rollback = &verification["rollback"]["actions"];
    let claimed: Vec<(String, Value)> = execution["actions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rollback.as_array().into_iter().flatten())
        .filter(ran)
        .map(|a| {
            let req = &a["request"];
            (
                format!(
                    "{} {}",
                    req["method"].as_str().unwrap_or("POST"),
                    path_of(req["url"].as_str().unwrap())
                ),
                req["body"].clone(),
            )
        })
        .collect();
    let log = admin_log(sim);
    assert!(log.len() >= skip, "{log:?}");
    let calls: Vec<&str> = log[skip..].iter().map(|(c, _)| c.as_str()).collect();
    let want: Vec<&str> = claimed.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(calls, want, "records and sim disagree\n{}", out.stderr);
    for ((_, got), (_, said)) in log[skip..].iter().zip(&claimed) {
        if !said.is_null() {
            assert_eq!(got, said, "the sim received another body than the record says");
        }
    }
    if outcome == "resolved" {
        let checks = verification["checks"].as_array().unwrap();
        assert!(
            !checks.is_empty() && checks.iter().all(|c| c["result"] == "pass"),
            "resolved only with every check passed: {verification}"
        );
    }
    let verify = run(AUDIT, &["verify", "--ledger", &dir.str("ledger.jsonl")], &[], b"");
    assert_eq!(verify.code, Some(0), "the ledger verifies: {}", verify.stderr);
    outcome
}

fn weights(state: &Value) -> Value {
    let d = &state["deployments"];
    json!({"canary": d["canary"]["weight"], "stable": d["stable"]["weight"]})
}

#[test]
fn kv_saturation_on_the_canary_is_resolved_by_a_shift_sized_from_the_evidence_and_a_rerun_runs_nothing_twice()
 {
    let permissive = policy(Policy { min_confidence: 0.5, require_approval: &["destructive"] });
    let i = Incident::run("kv_cache_saturation", "canary", 0.3, permissive);
    let outcome = records_tell_the_truth(&i.sim, &i.out, &i.dir, 0);
    assert_eq!(i.body("finding")["class"], "kv_cache_saturation", "{}", i.out.stderr);
    let a = i.first_action();
    assert_eq!(a["action"], "shift_traffic", "{a}");
    assert_eq!(a["target"], "canary");
    assert_eq!(a["prior_state"]["weights"], json!({"canary": 0.1, "stable": 0.9}));
    // Sized from the canary's KV usage and queue, not a fixed fifth: most of its traffic.
    let rationale = i.body("plan")["rationale"].as_str().unwrap().to_string();
    assert!(rationale.contains("shift sized from the evidence"), "{rationale}");
    let moved = a["blast_radius"]["traffic_share"].as_f64().unwrap();
    assert!(moved > 0.05 && moved <= 0.1, "moved {moved} of the route: {rationale}");
    assert_eq!(i.body("decision")["verdict"], "approved");
    assert_eq!(outcome, "resolved", "{}\n{}", i.body("verification"), i.out.stderr);
    let check = &i.body("verification")["checks"][0];
    assert_eq!(check["signal"], "vllm:kv_cache_usage_perc");
    // Not just a dip: the planner expects the cache to end well below full, and it did.
    assert_eq!(a["expected_effect"]["below"], 0.85, "{a}");
    assert!(check["after"].as_f64().unwrap() < 0.85, "{check}");
    assert!(check["after"].as_f64().unwrap() < check["before"].as_f64().unwrap(), "{check}");

    // The sim: its router runs the planned weights, and the canary's cache came down.
    let after = i.sim.state();
    assert_eq!(weights(&after), a["params"]["weights"], "the router runs exactly the plan");
    let kv = |s: &Value| s["replicas"]["canary-0"]["kv_cache_usage"].as_f64().unwrap();
    assert!(kv(&after) < kv(&i.before), "canary KV {} -> {}", kv(&i.before), kv(&after));
    assert_eq!(admin_log(&i.sim).len(), 1);

    // The same recording through gate | exec | verify | audit again: the gate lets it through
    // (this policy has no cooldown), and exec's idempotency key stops it from running twice.
    let again = i.resume(&[]);
    records_tell_the_truth(&i.sim, &again, &i.dir, 1);
    assert_eq!(body(&again, "decision")["verdict"], "approved", "{}", again.stderr);
    assert_eq!(body(&again, "decision")["plan_hash"], i.body("decision")["plan_hash"]);
    assert_eq!(
        body(&again, "execution")["actions"][0]["outcome"],
        "already_done",
        "{}",
        again.stderr
    );
    assert_eq!(admin_log(&i.sim).len(), 1, "a re-run called the sim again");
    assert_eq!(weights(&i.sim.state()), a["params"]["weights"]);

    // The recorded observation through triage onwards: a new plan for the same evidence, whose
    // prior state (the recorded weights) is no longer the sim's; exec refuses to act on it.
    // Refused as a stale plan (17, run the pipe again), not a failed action (14, page someone).
    let replayed = i.replay_recording();
    let outcome = records_tell_the_truth(&i.sim, &replayed, &i.dir, 1);
    assert_eq!(outcome, "stale_plan", "{}", replayed.stderr);
    assert_ne!(body(&replayed, "decision")["plan_hash"], i.body("decision")["plan_hash"]);
    let action = &body(&replayed, "execution")["actions"][0];
    assert_eq!(action["outcome"], "stale_plan", "{action}");
    assert!(action["error"].as_str().unwrap_or("").contains("fleet changed"), "{action}");
    assert_eq!(admin_log(&i.sim).len(), 1, "the replayed recording called the sim again");
    assert_eq!(weights(&i.sim.state()), a["params"]["weights"]);
}

#[test]
fn a_canary_regression_is_resolved_by_rolling_its_config_back() {
    // The regression shows in the canary's TTFT alone, so triage's confidence is modest (about
    // 0.5): this operator accepts that for reversible actions.
    let permissive = policy(Policy { min_confidence: 0.4, require_approval: &["destructive"] });
    let i = Incident::run("canary_regression", "canary", 0.9, permissive);
    assert_eq!(i.before["deployments"]["canary"]["config_version"], 2, "the fault's bad config");
    let outcome = records_tell_the_truth(&i.sim, &i.out, &i.dir, 0);
    assert_eq!(i.body("finding")["class"], "canary_regression", "{}", i.out.stderr);
    let a = i.first_action();
    assert_eq!(a["action"], "rollback_config", "{a}");
    assert_eq!(a["params"], json!({"deployment": "canary", "to_version": 1}));
    assert_eq!(a["inverse"]["params"], json!({"deployment": "canary", "to_version": 2}));
    assert_eq!(a["safety"], "impactful");
    assert_eq!(i.body("decision")["verdict"], "approved");
    assert_eq!(outcome, "resolved", "{}\n{}", i.body("verification"), i.out.stderr);
    let after = i.sim.state();
    assert_eq!(after["deployments"]["canary"]["config_version"], 1, "the sim runs the old config");
    assert_eq!(after["replicas"]["canary-0"]["config_version"], 1, "its replica restarted on it");
    assert_eq!(
        admin_log(&i.sim),
        vec![("POST /admin/deployments/canary/rollback".to_string(), json!({"to_version": 1}))]
    );
}

/// The repository's catalog as a fleet that may not scale would have it: for KV saturation only
/// the traffic shift, allowed to move whatever the peers' headroom takes even when that cannot
/// cover the saturated deployment's excess (`min_cover` 0).
fn shift_only_catalog() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/catalog.json");
    let mut catalog: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("catalog")).expect("json");
    let plans = catalog["plans"].as_array_mut().expect("plans");
    plans.retain(|p| {
        p["class"] != "kv_cache_saturation" || p["steps"][0]["action"] == "shift_traffic"
    });
    for p in plans.iter_mut().filter(|p| p["class"] == "kv_cache_saturation") {
        p["steps"][0]["params"]["min_cover"] = json!(0.0);
    }
    catalog
}

#[test]
fn a_shift_that_cannot_relieve_a_saturated_stable_is_rolled_back_to_where_it_started() {
    // Three saturated stable replicas and one canary, and a catalog that may only shift: the
    // planner moves only what the canary's KV headroom takes (more would just saturate the
    // canary), which cannot drain stable's queue. Verification sees no relief and undoes the
    // shift. (With the built-in catalog the planner scales stable up instead.)
    let permissive = policy(Policy { min_confidence: 0.5, require_approval: &["destructive"] });
    let i = Incident::run_with(
        "kv_cache_saturation",
        "stable",
        0.9,
        permissive,
        Some(shift_only_catalog()),
    );
    let outcome = records_tell_the_truth(&i.sim, &i.out, &i.dir, 0);
    assert_eq!(i.body("finding")["class"], "kv_cache_saturation", "{}", i.out.stderr);
    let a = i.first_action();
    assert_eq!(a["action"], "shift_traffic", "{a}");
    assert_eq!(a["target"], "stable");
    let rationale = i.body("plan")["rationale"].as_str().unwrap().to_string();
    assert!(rationale.contains("what the peers' KV headroom takes"), "{rationale}");
    let moved = a["blast_radius"]["traffic_share"].as_f64().unwrap();
    assert!(moved > 0.0 && moved < 0.5, "bounded by the canary's headroom: {moved}");
    assert_eq!(i.body("decision")["verdict"], "approved");
    assert_eq!(outcome, "rolled_back", "{}\n{}", i.body("verification"), i.out.stderr);
    let v = i.body("verification");
    assert_eq!(v["checks"][0]["result"], "fail", "{v}");
    assert_eq!(v["rollback"]["verified"], true, "{v}");
    assert_eq!(v["rollback"]["actions"][0]["outcome"], "succeeded");
    // The sim is back where it started, through exactly two calls: the shift and its inverse.
    assert_eq!(settings(&i.sim.state()), i.start, "a rollback leaves the sim where it started");
    assert_eq!(
        admin_log(&i.sim),
        vec![
            ("POST /admin/traffic".to_string(), json!({"weights": a["params"]["weights"]})),
            ("POST /admin/traffic".to_string(), json!({"weights": {"canary": 0.1, "stable": 0.9}})),
        ]
    );
}

#[test]
fn a_low_confidence_plan_is_blocked_by_policy_and_nothing_runs() {
    // The same TTFT-only canary regression under a conservative policy (confidence 0.80, as
    // examples/policy.json): the gate blocks it and says why; the sim is untouched.
    let conservative =
        policy(Policy { min_confidence: 0.8, require_approval: &["impactful", "destructive"] });
    let i = Incident::run("canary_regression", "canary", 0.9, conservative);
    let outcome = records_tell_the_truth(&i.sim, &i.out, &i.dir, 0);
    let confidence = i.body("plan")["confidence"].as_f64().unwrap();
    assert!(
        confidence < 0.8,
        "this scenario needs a finding below the policy's 0.80 (triage now says {confidence}): pick another"
    );
    assert_eq!(i.first_action()["action"], "rollback_config");
    let d = i.body("decision");
    assert_eq!(d["verdict"], "blocked", "{d}");
    assert!(
        d["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "below_confidence"),
        "{d}"
    );
    assert_eq!(i.body("execution")["status"], "nothing_to_do");
    assert_eq!(outcome, "blocked");
    assert_eq!(i.out.code, Some(12));
    assert!(admin_log(&i.sim).is_empty(), "nothing may run");
    assert_eq!(settings(&i.sim.state()), i.start, "the sim is untouched");
    assert_eq!(i.sim.state()["deployments"]["canary"]["config_version"], 2);
}

#[test]
fn an_impactful_restart_waits_for_approval_then_runs_with_a_signed_token() {
    const KEY: &str = "e2e-pipe-approval-key";
    let env = [("OPSG_APPROVAL_KEY", KEY)];
    let strict =
        policy(Policy { min_confidence: 0.8, require_approval: &["impactful", "destructive"] });
    let i = Incident::run("memory_leak", "stable-2", 0.8, strict);
    let outcome = records_tell_the_truth(&i.sim, &i.out, &i.dir, 0);
    assert_eq!(i.body("finding")["class"], "memory_leak", "{}", i.out.stderr);
    let a = i.first_action();
    assert_eq!(a["action"], "restart_replica", "{a}");
    assert_eq!(a["target"], "stable-2");
    assert_eq!(a["safety"], "impactful");
    let d = i.body("decision");
    assert_eq!(d["verdict"], "awaiting_approval", "{d}");
    assert_eq!(outcome, "awaiting_approval");
    assert_eq!(i.out.code, Some(11));
    assert!(admin_log(&i.sim).is_empty(), "nothing may run before approval");

    // An approver signs the awaiting pipe's plan.
    let awaiting = i.dir.join("awaiting.jsonl");
    std::fs::write(&awaiting, &i.out.stdout).expect("awaiting");
    let approve = run(
        GATE,
        &[
            "approve",
            "--from",
            &awaiting.display().to_string(),
            "--approver",
            "alice",
            "--expires",
            "30m",
        ],
        &env,
        b"",
    );
    assert_eq!(approve.code, Some(0), "{}", approve.stderr);
    let token = String::from_utf8_lossy(&approve.stdout).trim().to_string();
    let rss = |s: &Value| s["replicas"]["stable-2"]["rss_bytes"].as_f64().unwrap();
    let leaked = rss(&i.sim.state());

    let approved = i.resume(&[env[0], ("OPSG_APPROVAL", &token)]);
    let outcome = records_tell_the_truth(&i.sim, &approved, &i.dir, 0);
    let d = body(&approved, "decision");
    assert_eq!(d["verdict"], "approved", "{}", approved.stderr);
    assert_eq!(d["approval"]["approver"], "alice");
    assert_eq!(d["plan_hash"], i.body("decision")["plan_hash"], "the token's plan");
    assert_eq!(outcome, "resolved", "{}\n{}", body(&approved, "verification"), approved.stderr);
    let after = i.sim.state();
    assert_eq!(after["replicas"]["stable-2"]["restarts"], 1);
    assert!(rss(&after) < leaked, "the restart freed the leak: {} -> {}", leaked, rss(&after));
    assert_eq!(admin_log(&i.sim).len(), 1);
    let text = format!("{}{}", String::from_utf8_lossy(&approved.stdout), approved.stderr);
    assert!(!text.contains(KEY) && !text.contains(&token), "the key or the token leaked");

    // The same token again is a replay: blocked, nothing runs.
    let replay = i.resume(&[env[0], ("OPSG_APPROVAL", &token)]);
    records_tell_the_truth(&i.sim, &replay, &i.dir, 1);
    let d = body(&replay, "decision");
    assert_eq!(d["verdict"], "blocked", "{d}");
    assert!(
        d["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "approval_replayed"),
        "{d}"
    );
    assert_eq!(admin_log(&i.sim).len(), 1);
}

#[test]
fn a_crashed_replica_is_resolved_by_a_restart() {
    let usual = policy(Policy { min_confidence: 0.8, require_approval: &["destructive"] });
    let i = Incident::run("replica_crash", "stable-1", 0.8, usual);
    assert_eq!(i.before["replicas"]["stable-1"]["up"], false);
    let outcome = records_tell_the_truth(&i.sim, &i.out, &i.dir, 0);
    assert_eq!(i.body("finding")["class"], "replica_down", "{}", i.out.stderr);
    let a = i.first_action();
    assert_eq!(a["action"], "restart_replica");
    assert_eq!(a["target"], "stable-1");
    assert_eq!(i.body("decision")["verdict"], "approved");
    assert_eq!(outcome, "resolved", "{}", i.out.stderr);
    let check = &i.body("verification")["checks"][0];
    assert_eq!(
        (check["signal"].as_str(), check["before"].as_f64(), check["after"].as_f64()),
        (Some("up"), Some(0.0), Some(1.0))
    );
    let replica = &i.sim.state()["replicas"]["stable-1"];
    assert_eq!(replica["up"], true);
    assert_eq!(replica["restarts"], 1);
    assert_eq!(
        admin_log(&i.sim),
        vec![("POST /admin/replicas/stable-1/restart".to_string(), json!({}))]
    );
    assert_eq!(settings(&i.sim.state()), i.start, "a restart changes no setting");
}
