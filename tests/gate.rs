//! `opsg-gate` as a real process: each refusal the issue lists (an action outside the allowlist,
//! a target outside the blast radius, a cooldown still running, an approval forged, expired,
//! replayed or for another plan) blocks with its reason and nothing reaches the actuator; the
//! ledger written by `opsg-audit` carries cooldowns and spent approvals across runs; `--explain`
//! never shows the key or the token.

mod e2e_support;

use e2e_support::{EXEC, GATE, Ran, Recorder, TempDir, run};
use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::plan::{ActionType, PlanBody, SafetyClass};
use opsg_core::time::Timestamp;
use opsg_gate::fixture::{ChainBuilder, plan};
use serde_json::{Value, json};

const AUDIT: &str = env!("CARGO_BIN_EXE_opsg-audit");
const KEY: &str = "gate-test-key-0123456789";
const NOW: &str = "2026-11-22T06:00:00Z";

fn chain_of(p: PlanBody) -> Vec<u8> {
    ChainBuilder::new(Timestamp::parse_rfc3339(NOW).unwrap()).finding(p.class, true).plan(p).bytes()
}

fn live_policy(dir: &TempDir, edit: impl FnOnce(&mut Value)) -> String {
    let mut p: Value = serde_json::from_str(opsg_gate::policy::DEFAULT_POLICY).unwrap();
    p["mode"] = json!("live");
    edit(&mut p);
    let path = dir.join("policy.json");
    std::fs::write(&path, p.to_string()).unwrap();
    path.display().to_string()
}

fn recorder() -> Recorder {
    Recorder::start(|req| match req.path.as_str() {
        "/state" => (
            200,
            json!({"deployments": {"canary": {"config_version": 2, "weight": 0.1}}}).to_string(),
        ),
        _ => (200, "{}".into()),
    })
}

/// gate with `args` (plus --now), then exec --execute against `sim`.
fn gate_exec(
    input: &[u8],
    args: &[&str],
    env: &[(&str, &str)],
    state: &str,
    sim: &Recorder,
) -> (Ran, Ran) {
    let mut a = vec!["--now", NOW, "--state-dir", state];
    a.extend_from_slice(args);
    let gate = run(GATE, &a, env, input);
    assert_eq!(gate.code, Some(0), "{}", gate.stderr);
    let exec =
        run(EXEC, &["--execute", "--sim", &sim.addr, "--state-dir", state], env, &gate.stdout);
    assert_eq!(exec.code, Some(0), "{}", exec.stderr);
    (gate, exec)
}

fn codes(gate: &Ran) -> Vec<String> {
    gate.last_body()["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

fn assert_blocked_nothing_ran(gate: &Ran, exec: &Ran, sim: &Recorder, code: &str) {
    assert_eq!(gate.last_body()["verdict"], "blocked", "{}", gate.stderr);
    assert!(codes(gate).iter().any(|c| c == code), "no `{code}` in {:?}", codes(gate));
    let reason = gate.last_body()["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .cloned()
        .unwrap();
    assert_eq!(reason["effect"], "blocks");
    assert!(!reason["message"].as_str().unwrap().is_empty());
    assert_eq!(exec.last_body()["status"], "nothing_to_do");
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "an actuator was called: {:?}",
        sim.requests()
    );
}

fn canary_rollback() -> PlanBody {
    let mut p = plan(
        IncidentClass::CanaryRegression,
        0.9,
        &[(ActionType::RollbackConfig, "canary", SafetyClass::Impactful)],
    );
    p.actions[0].params.insert("to_version".into(), json!(1));
    p
}

#[test]
fn an_action_outside_the_allowlist_is_blocked() {
    let dir = TempDir::new("gate-allow");
    let sim = recorder();
    let policy = live_policy(&dir, |p| p["allow_destructive"] = json!(true));
    let input = chain_of(plan(
        IncidentClass::GpuFault,
        0.95,
        &[(ActionType::DrainNode, "gpu-node-a", SafetyClass::Destructive)],
    ));
    let (gate, exec) = gate_exec(&input, &["--policy", &policy], &[], &dir.str("s"), &sim);
    assert_blocked_nothing_ran(&gate, &exec, &sim, "not_allowlisted");
}

#[test]
fn a_destructive_action_is_blocked_unless_policy_allows_it() {
    let dir = TempDir::new("gate-destr");
    let sim = recorder();
    let policy =
        live_policy(&dir, |p| p["allow_actions"].as_array_mut().unwrap().push(json!("drain_node")));
    let input = chain_of(plan(
        IncidentClass::GpuFault,
        0.95,
        &[(ActionType::DrainNode, "gpu-node-a", SafetyClass::Destructive)],
    ));
    let (gate, exec) = gate_exec(&input, &["--policy", &policy], &[], &dir.str("s"), &sim);
    assert_blocked_nothing_ran(&gate, &exec, &sim, "destructive_blocked");
}

#[test]
fn a_target_outside_the_blast_radius_is_blocked() {
    let dir = TempDir::new("gate-blast");
    let sim = recorder();
    let policy = live_policy(&dir, |p| p["targets"]["deny"] = json!(["canary*"]));
    let mut p = plan(
        IncidentClass::KvCacheSaturation,
        0.95,
        &[(ActionType::ShiftTraffic, "canary", SafetyClass::Safe)],
    );
    p.actions[0].blast_radius.replicas = 12;
    p.actions[0].blast_radius.traffic_share = 0.9;
    let (gate, exec) = gate_exec(&chain_of(p), &["--policy", &policy], &[], &dir.str("s"), &sim);
    assert_blocked_nothing_ran(&gate, &exec, &sim, "blast_radius_replicas");
    for c in ["blast_radius_traffic", "target_not_allowed", "blast_radius_plan"] {
        assert!(
            codes(&gate).iter().any(|x| x == c),
            "every reason is reported: {c} missing from {:?}",
            codes(&gate)
        );
    }
}

#[test]
fn cooldowns_hold_across_runs_through_the_ledger() {
    let dir = TempDir::new("gate-ledger");
    let sim = recorder();
    let policy = live_policy(&dir, |_| {});
    let ledger = dir.str("ledger.jsonl");
    let mut p = plan(
        IncidentClass::ReplicaDown,
        0.95,
        &[(ActionType::RestartReplica, "stable-1", SafetyClass::Safe)],
    );
    p.actions[0].params.insert("replica".into(), json!("stable-1"));
    let input = chain_of(p.clone());
    // First run, on the real clock (exec stamps when an action really started): executes, and
    // opsg-audit appends the chain to the ledger.
    let started = Timestamp::now();
    let gate = run(GATE, &["--policy", &policy, "--state-dir", &dir.str("s1")], &[], &input);
    let exec = run(
        EXEC,
        &["--execute", "--sim", &sim.addr, "--state-dir", &dir.str("s1")],
        &[],
        &gate.stdout,
    );
    assert_eq!(exec.last_body()["actions"][0]["outcome"], "succeeded", "{}", exec.stderr);
    let audit = run(AUDIT, &["--ledger", &ledger], &[], &exec.stdout);
    assert!(
        std::fs::metadata(&ledger).map(|m| m.len() > 0).unwrap_or(false),
        "audit wrote no ledger: {}",
        audit.stderr
    );

    // A later cron run on another host (fresh state dir), five minutes on: the ledger alone
    // keeps the restart storm away. The plan differs (new rationale) so no key is shared.
    p.rationale = "again".into();
    let input = chain_of(p);
    let later = started.plus_millis(5 * 60_000).to_rfc3339();
    let gate = run(
        GATE,
        &["--policy", &policy, "--ledger", &ledger, "--state-dir", &dir.str("s2"), "--now", &later],
        &[],
        &input,
    );
    assert_eq!(gate.last_body()["verdict"], "blocked", "{}", gate.stderr);
    let cooldown = gate.last_body()["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "cooldown")
        .cloned()
        .unwrap();
    let message = cooldown["message"].as_str().unwrap();
    assert!(
        message.contains("cooldown 15m00s has 9m") || message.contains("cooldown 15m00s has 10m"),
        "{cooldown}"
    );
    // Without the ledger (and a fresh state dir) nothing remembers it: the ledger did the work.
    let gate = run(
        GATE,
        &["--policy", &policy, "--state-dir", &dir.str("s3"), "--now", &later],
        &[],
        &input,
    );
    assert_eq!(gate.last_body()["verdict"], "approved", "{}", gate.stderr);
    // After the cooldown it may run again.
    let after = started.plus_millis(16 * 60_000).to_rfc3339();
    let gate = run(
        GATE,
        &["--policy", &policy, "--ledger", &ledger, "--state-dir", &dir.str("s2"), "--now", &after],
        &[],
        &input,
    );
    assert_eq!(gate.last_body()["verdict"], "approved", "{}", gate.stderr);
}

fn approve(plan_hash: &str, key: &str, extra: &[&str]) -> String {
    let mut args = vec!["approve", "--plan-hash", plan_hash, "--approver", "alice"];
    args.extend_from_slice(extra);
    let out = run(GATE, &args, &[("OPSG_APPROVAL_KEY", key)], b"");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn forged_expired_replayed_and_other_plan_approvals_are_refused() {
    let dir = TempDir::new("gate-approval");
    let sim = recorder();
    let policy = live_policy(&dir, |_| {});
    let input = chain_of(canary_rollback());
    let env = [("OPSG_APPROVAL_KEY", KEY)];
    let state = dir.str("s");
    let waiting =
        run(GATE, &["--policy", &policy, "--now", NOW, "--state-dir", &state], &env, &input);
    assert_eq!(waiting.last_body()["verdict"], "awaiting_approval");
    let plan_hash = waiting.last_body()["plan_hash"].as_str().unwrap().to_string();

    let forged = approve(&plan_hash, "some-other-key", &["--now", NOW]);
    let (gate, exec) =
        gate_exec(&input, &["--policy", &policy, "--approval", &forged], &env, &state, &sim);
    assert_blocked_nothing_ran(&gate, &exec, &sim, "approval_forged");

    let expired = approve(&plan_hash, KEY, &["--now", "2026-11-22T05:00:00Z", "--expires", "30m"]);
    let (gate, exec) =
        gate_exec(&input, &["--policy", &policy, "--approval", &expired], &env, &state, &sim);
    assert_blocked_nothing_ran(&gate, &exec, &sim, "approval_expired");

    let other = approve(&"0123456789abcdef".repeat(4), KEY, &["--now", NOW]);
    let (gate, exec) =
        gate_exec(&input, &["--policy", &policy, "--approval", &other], &env, &state, &sim);
    assert_blocked_nothing_ran(&gate, &exec, &sim, "approval_other_plan");

    // A hand-edited token (approver changed, signature kept) is a forgery too.
    let (payload, mac) =
        forged.trim_start_matches(opsg_gate::approval::PREFIX).split_once('.').unwrap();
    let mut claims: Value =
        serde_json::from_slice(&opsg_gate::approval::b64url_decode(payload).unwrap()).unwrap();
    claims["approver"] = json!("mallory");
    let edited = format!(
        "{}{}.{mac}",
        opsg_gate::approval::PREFIX,
        opsg_gate::approval::b64url_encode(claims.to_string().as_bytes())
    );
    let (gate, exec) =
        gate_exec(&input, &["--policy", &policy, "--approval", &edited], &env, &state, &sim);
    assert_blocked_nothing_ran(&gate, &exec, &sim, "approval_forged");

    // A valid token runs once (via the environment, as cron would pass it) ...
    let valid = approve(&plan_hash, KEY, &["--now", NOW]);
    let env2 = [("OPSG_APPROVAL_KEY", KEY), ("OPSG_APPROVAL", valid.as_str())];
    let (gate, exec) = gate_exec(&input, &["--policy", &policy], &env2, &state, &sim);
    assert_eq!(gate.last_body()["verdict"], "approved", "{}", gate.stderr);
    assert_eq!(exec.last_body()["actions"][0]["outcome"], "succeeded");
    let ledger = dir.str("ledger.jsonl");
    run(AUDIT, &["--ledger", &ledger], &[], &exec.stdout);
    let posts = sim.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1);

    // ... and is refused when replayed: by the state dir, and by the ledger on a fresh host.
    let (gate, _) = gate_exec(&input, &["--policy", &policy], &env2, &state, &sim);
    assert_eq!(gate.last_body()["verdict"], "blocked");
    assert!(codes(&gate).contains(&"approval_replayed".to_string()), "{:?}", codes(&gate));
    let gate = run(
        GATE,
        &["--policy", &policy, "--ledger", &ledger, "--state-dir", &dir.str("fresh"), "--now", NOW],
        &env2,
        &input,
    );
    let replay = gate.last_body()["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "approval_replayed")
        .cloned();
    assert!(
        replay.is_some_and(|r| r["message"].as_str().unwrap().contains("ledger line")),
        "{}",
        gate.stdout.len()
    );
    assert_eq!(
        sim.requests().iter().filter(|r| r.method == "POST").count(),
        1,
        "nothing ran twice"
    );
}

#[test]
fn explain_shows_every_check_but_never_the_key_or_the_token() {
    let dir = TempDir::new("gate-explain");
    let policy = live_policy(&dir, |_| {});
    let input = chain_of(canary_rollback());
    let probe =
        run(GATE, &["--policy", &policy, "--now", NOW, "--state-dir", &dir.str("s")], &[], &input);
    let plan_hash = probe.last_body()["plan_hash"].as_str().unwrap().to_string();
    let token = approve(&plan_hash, KEY, &["--now", NOW]);
    let out = run(
        GATE,
        &[
            "--policy",
            &policy,
            "--now",
            NOW,
            "--state-dir",
            &dir.str("s"),
            "--explain",
            "--approval",
            &token,
        ],
        &[("OPSG_APPROVAL_KEY", KEY)],
        &input,
    );
    assert_eq!(out.last_body()["verdict"], "approved", "{}", out.stderr);
    for want in [
        "confidence 0.90 >= 0.80",
        "needs_approval",
        "approval_valid",
        "verdict: approved (mode live)",
        "memory: 0 past action(s) from state dir",
    ] {
        assert!(out.stderr.contains(want), "--explain lacks `{want}`:\n{}", out.stderr);
    }
    let everything = format!("{}{}", out.stderr, String::from_utf8_lossy(&out.stdout));
    assert!(!everything.contains(KEY), "the HMAC key leaked");
    assert!(!everything.contains(&token), "the bearer token leaked");
    assert!(!everything.contains(token.rsplit('.').next().unwrap()), "the token's MAC leaked");
}

#[test]
fn a_bad_policy_is_one_line_naming_file_and_field_and_nothing_on_stdout() {
    let dir = TempDir::new("gate-badpolicy");
    let policy = live_policy(&dir, |p| p["min_confidence"] = json!("high"));
    let out = run(GATE, &["--policy", &policy], &[], &chain_of(canary_rollback()));
    assert_eq!(out.code, Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("policy.json") && out.stderr.contains("field `min_confidence`"),
        "{}",
        out.stderr
    );
}

#[test]
fn approve_needs_the_key_and_a_real_plan_hash() {
    let out =
        run(GATE, &["approve", "--plan-hash", &"a".repeat(64), "--approver", "alice"], &[], b"");
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("OPSG_APPROVAL_KEY"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let out = run(
        GATE,
        &["approve", "--plan-hash", "nothex", "--approver", "alice"],
        &[("OPSG_APPROVAL_KEY", KEY)],
        b"",
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("--plan-hash"), "{}", out.stderr);
}

#[test]
fn no_incident_chains_pass_through_with_no_action() {
    let input = ChainBuilder::new(Timestamp::parse_rfc3339(NOW).unwrap())
        .finding(IncidentClass::None, false)
        .plan(plan(IncidentClass::None, 1.0, &[]))
        .bytes();
    let out = run(GATE, &["--now", NOW, "--state-dir", "/nonexistent/never-written"], &[], &input);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.last_body()["verdict"], "no_action");
    assert!(out.stdout.starts_with(&input), "records pass through byte for byte");
}

#[test]
fn approve_from_a_recorded_chain_shows_the_plan_and_binds_to_it() {
    let dir = TempDir::new("gate-from");
    let policy = live_policy(&dir, |_| {});
    let input = chain_of(canary_rollback());
    let waiting =
        run(GATE, &["--policy", &policy, "--now", NOW, "--state-dir", &dir.str("s")], &[], &input);
    assert_eq!(waiting.last_body()["verdict"], "awaiting_approval");
    let recorded = dir.join("awaiting.jsonl");
    std::fs::write(&recorded, &waiting.stdout).unwrap();
    let approve = run(
        GATE,
        &["approve", "--from", &recorded.display().to_string(), "--approver", "bob", "--now", NOW],
        &[("OPSG_APPROVAL_KEY", KEY)],
        b"",
    );
    assert_eq!(approve.code, Some(0), "{}", approve.stderr);
    assert!(
        approve.stderr.contains("action 0 `rollback_config` on `canary` (Impactful"),
        "{}",
        approve.stderr
    );
    assert!(approve.stderr.contains(waiting.last_body()["plan_hash"].as_str().unwrap()));
    let token = String::from_utf8(approve.stdout).unwrap().trim().to_string();
    let out = run(
        GATE,
        &["--policy", &policy, "--now", NOW, "--state-dir", &dir.str("s"), "--approval", &token],
        &[("OPSG_APPROVAL_KEY", KEY)],
        &input,
    );
    assert_eq!(out.last_body()["verdict"], "approved", "{}", out.stderr);
    assert_eq!(out.last_body()["approval"]["approver"], "bob");
    // --from and --plan-hash together are a usage error.
    let both = run(
        GATE,
        &["approve", "--from", "x", "--plan-hash", &"a".repeat(64), "--approver", "bob"],
        &[],
        b"",
    );
    assert_eq!(both.code, Some(2));
}

#[test]
fn a_large_state_history_is_compacted_and_a_recent_cooldown_still_holds() {
    let dir = TempDir::new("gate-compact");
    let policy = live_policy(&dir, |_| {});
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // 1.5 MiB of restarts from weeks ago, then one five minutes ago on stable-1.
    let now = Timestamp::parse_rfc3339(NOW).unwrap();
    let mut history = String::new();
    let mut old = 0;
    while history.len() < 1_500_000 {
        let at = now.plus_millis(-(30 * 86_400_000 + old * 1000)).to_rfc3339();
        history.push_str(
            &json!({"at": at, "action": "restart_replica", "target": format!("old-{old}"), "key": format!("k{old}")})
                .to_string(),
        );
        history.push('\n');
        old += 1;
    }
    let recent = now.plus_millis(-5 * 60_000).to_rfc3339();
    history.push_str(
        &json!({"at": recent, "action": "restart_replica", "target": "stable-1", "key": "k-recent"})
            .to_string(),
    );
    history.push('\n');
    std::fs::write(state.join("history.jsonl"), &history).unwrap();

    let mut p = plan(
        IncidentClass::ReplicaDown,
        0.95,
        &[(ActionType::RestartReplica, "stable-1", SafetyClass::Safe)],
    );
    p.actions[0].params.insert("replica".into(), json!("stable-1"));
    let gate = run(
        GATE,
        &["--policy", &policy, "--state-dir", &dir.str("state"), "--now", NOW],
        &[],
        &chain_of(p),
    );
    assert_eq!(gate.last_body()["verdict"], "blocked", "{}", gate.stderr);
    assert!(
        gate.last_body()["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "cooldown"),
        "{}",
        gate.last_body()
    );
    assert!(gate.stderr.contains(&format!("dropped {old} action attempt(s)")), "{}", gate.stderr);
    let left = std::fs::read_to_string(state.join("history.jsonl")).unwrap();
    assert_eq!(left.lines().count(), 1, "{left}");
    assert!(left.contains("k-recent"));
}
