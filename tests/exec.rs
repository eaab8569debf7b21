//! `opsg-gate | opsg-exec` as real processes against a recording HTTP server and argv commands:
//! dry-run by default, idempotency across re-runs and races, failures stopping the plan, inert
//! shell metacharacters, and secrets kept out of records and logs.

mod e2e_support;

use e2e_support::{EXEC, GATE, Recorder, TempDir, VERIFY, run};
use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::plan::{ActionType, PlanBody, SafetyClass};
use opsg_core::time::Timestamp;
use opsg_gate::fixture::{ChainBuilder, plan};
use serde_json::{Value, json};

const NOW: &str = "2026-11-22T06:00:00Z";

fn live_policy(dir: &TempDir) -> String {
    let path = dir.join("policy.json");
    let text = opsg_gate::policy::DEFAULT_POLICY
        .replace("\"mode\": \"dry_run\"", "\"mode\": \"live\"")
        .replace("\"replicas\": 2,", "\"replicas\": 10,");
    std::fs::write(&path, text).expect("write policy");
    path.display().to_string()
}

fn shift_plan(weights: Value) -> PlanBody {
    let mut p = plan(
        IncidentClass::KvCacheSaturation,
        0.92,
        &[(ActionType::ShiftTraffic, "stable", SafetyClass::Safe)],
    );
    p.actions[0].params.insert("weights".into(), weights);
    p
}

fn chain_of(p: PlanBody) -> Vec<u8> {
    let now = Timestamp::parse_rfc3339(NOW).expect("time");
    ChainBuilder::new(now).finding(p.class, true).plan(p).bytes()
}

fn actuators(dir: &TempDir, text: &Value) -> String {
    let path = dir.join("actuators.json");
    std::fs::write(&path, serde_json::to_vec_pretty(text).expect("json")).expect("write");
    path.display().to_string()
}

/// gate (live policy) then exec with `exec_args`.
fn gate_then_exec(
    dir: &TempDir,
    input: &[u8],
    exec_args: &[&str],
    env: &[(&str, &str)],
) -> (e2e_support::Ran, e2e_support::Ran) {
    let policy = live_policy(dir);
    let state = dir.str("state");
    let gate = run(GATE, &["--policy", &policy, "--state-dir", &state, "--now", NOW], env, input);
    assert_eq!(gate.code, Some(0), "gate: {}", gate.stderr);
    let mut args = vec!["--state-dir", state.as_str()];
    args.extend_from_slice(exec_args);
    let exec = run(EXEC, &args, env, &gate.stdout);
    (gate, exec)
}

fn sim_like() -> Recorder {
    Recorder::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/state") => (
            200,
            json!({"deployments": {"stable": {"weight": 1.0}, "canary": {"weight": 1.0}}})
                .to_string(),
        ),
        _ => (200, json!({"ok": true}).to_string()),
    })
}

/// Each action's outcome in an execution body, in order.
fn outcomes(body: &Value) -> Vec<&str> {
    body["actions"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect()
}

#[test]
fn dry_run_is_the_default_and_calls_nothing() {
    let dir = TempDir::new("exec-dry");
    let sim = sim_like();
    let input = chain_of(shift_plan(json!({"stable": 3.0, "canary": 1.0})));
    let (_, exec) = gate_then_exec(&dir, &input, &["--sim", &sim.addr], &[]);
    assert_eq!(exec.code, Some(0), "{}", exec.stderr);
    assert!(sim.requests().is_empty(), "dry-run called the actuator: {:?}", sim.requests());
    let body = exec.last_body();
    assert_eq!(body["mode"], "dry_run");
    assert_eq!(body["status"], "dry_run");
    let action = &body["actions"][0];
    assert_eq!(action["outcome"], "dry_run");
    assert_eq!(action["request"]["method"], "POST");
    assert_eq!(action["request"]["url"], format!("{}/admin/traffic", sim.addr));
    assert_eq!(action["request"]["body"], json!({"weights": {"stable": 3.0, "canary": 1.0}}));
    assert!(exec.stderr.contains("would POST"), "stderr says what it would call: {}", exec.stderr);
    // Records pass through byte for byte: the gate's output is a prefix of exec's.
    let gate_lines = exec.records().len() - 1;
    assert_eq!(gate_lines, 3);
}

#[test]
fn live_runs_once_and_a_rerun_executes_nothing() {
    let dir = TempDir::new("exec-live");
    let sim = sim_like();
    let input = chain_of(shift_plan(json!({"stable": 3.0, "canary": 1.0})));
    let (gate, exec) = gate_then_exec(&dir, &input, &["--execute", "--sim", &sim.addr], &[]);
    assert_eq!(exec.code, Some(0), "{}", exec.stderr);
    let posts: Vec<_> = sim.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/admin/traffic");
    let sent: Value = serde_json::from_slice(&posts[0].body).expect("json body");
    assert_eq!(sent, json!({"weights": {"stable": 3.0, "canary": 1.0}}));
    let body = exec.last_body();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["handed_to_rollback"], json!([0]));
    let a = &body["actions"][0];
    assert_eq!(a["outcome"], "succeeded");
    assert_eq!(a["status"], 200);
    assert_eq!(
        a["prior_state"]["weights"],
        json!({"stable": 1.0, "canary": 1.0}),
        "prior state captured first"
    );
    assert!(a["idempotency_key"].as_str().unwrap().ends_with("-0"));

    // The same recorded pipe again (the decision as recorded, through exec): nothing is called
    // twice.
    let state = dir.str("state");
    let again =
        run(EXEC, &["--execute", "--state-dir", &state, "--sim", &sim.addr], &[], &gate.stdout);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let posts = sim.requests().into_iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "a re-run executed the action again");
    let a = &again.last_body()["actions"][0];
    assert_eq!(a["outcome"], "already_done");
    assert_eq!(
        a["prior_state"]["weights"],
        json!({"stable": 1.0, "canary": 1.0}),
        "the earlier capture is carried"
    );
    // And the whole pipe again: the gate itself now refuses, the cooldown is running.
    let (gate2, exec2) = gate_then_exec(&dir, &input, &["--execute", "--sim", &sim.addr], &[]);
    assert_eq!(gate2.last_body()["verdict"], "blocked");
    let reasons = gate2.last_body()["reasons"].clone();
    let codes: Vec<&str> =
        reasons.as_array().unwrap().iter().filter_map(|r| r["code"].as_str()).collect();
    assert!(codes.contains(&"cooldown"), "{}", gate2.stderr);
    assert_eq!(exec2.last_body()["status"], "nothing_to_do");
    assert_eq!(sim.requests().into_iter().filter(|r| r.method == "POST").count(), 1);
}

#[test]
fn racing_runs_execute_each_action_once() {
    let dir = TempDir::new("exec-race");
    let sim = sim_like();
    let input = chain_of(shift_plan(json!({"stable": 2.0})));
    let policy = live_policy(&dir);
    let state = dir.str("state");
    let gate = run(GATE, &["--policy", &policy, "--state-dir", &state, "--now", NOW], &[], &input);
    let decided = gate.stdout.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (d, s, a) = (decided.clone(), state.clone(), sim.addr.clone());
            std::thread::spawn(move || {
                run(EXEC, &["--execute", "--state-dir", &s, "--sim", &a], &[], &d)
            })
        })
        .collect();
    let outcomes: Vec<String> = handles
        .into_iter()
        .map(|h| {
            h.join().expect("join").last_body()["actions"][0]["outcome"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let posts = sim.requests().into_iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "outcomes {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "succeeded").count(), 1, "{outcomes:?}");
}

#[test]
fn a_failed_action_stops_the_plan_and_hands_what_ran_to_rollback() {
    let dir = TempDir::new("exec-fail");
    let sim = Recorder::start(|req| match req.path.as_str() {
        "/state" => (200, json!({"deployments": {"stable": {"weight": 1.0}}}).to_string()),
        p if p.contains("/restart") => (503, json!({"error": "replica is wedged"}).to_string()),
        _ => (200, "{}".into()),
    });
    let mut p = shift_plan(json!({"stable": 2.0}));
    let mut restart = p.actions[0].clone();
    restart.index = 1;
    restart.action = ActionType::RestartReplica;
    restart.target = "stable-0".into();
    let mut third = restart.clone();
    third.index = 2;
    third.target = "stable-1".into();
    p.actions.push(restart);
    p.actions.push(third);
    // No cooldowns in the way of a three-action plan.
    let (_, exec) = gate_then_exec(&dir, &chain_of(p), &["--execute", "--sim", &sim.addr], &[]);
    let body = exec.last_body();
    assert_eq!(body["status"], "failed", "{}", exec.stderr);
    let outcomes = outcomes(&body);
    assert_eq!(outcomes, vec!["succeeded", "failed", "not_run"], "{body}");
    assert_eq!(body["handed_to_rollback"], json!([0]));
    assert_eq!(body["actions"][1]["status"], 503);
    assert_eq!(body["actions"][1]["attempts"], 3, "503 is retried twice");
    assert!(body["stopped"].as_str().unwrap().contains("HTTP 503"));
    let restarts = sim.requests().iter().filter(|r| r.path.contains("stable-1")).count();
    assert_eq!(restarts, 0, "the action after the failure was called");
}

#[test]
fn shell_metacharacters_and_newlines_reach_a_command_as_inert_arguments() {
    let dir = TempDir::new("exec-argv");
    let argv_file = dir.str("argv.bin");
    let pwned = dir.str("PWNED");
    let evil_target = format!("r1; touch {pwned}");
    let evil_label =
        format!("$(touch {pwned})\n`touch {pwned}` && echo 'x' | cat > {pwned} \"quoted\" *");
    // The test's own helper records its argv, NUL-separated; the script never evaluates them.
    let config = json!({
        "actuators": {
            "restart_replica": {
                "type": "command",
                "argv": ["/bin/sh", "-c", "printf '%s\\0' \"$@\" > \"$0\"", argv_file, "{target}", "{params.label}", "--flag={params.label}"]
            }
        }
    });
    let cfg = actuators(&dir, &config);
    let mut p = plan(
        IncidentClass::ReplicaDown,
        0.95,
        &[(ActionType::RestartReplica, &evil_target, SafetyClass::Safe)],
    );
    p.actions[0].params.insert("label".into(), json!(evil_label));
    let (_, exec) = gate_then_exec(&dir, &chain_of(p), &["--execute", "--actuators", &cfg], &[]);
    let body = exec.last_body();
    assert_eq!(body["actions"][0]["outcome"], "succeeded", "{}\n{body}", exec.stderr);
    let written = std::fs::read(&argv_file).expect("the command ran");
    let args: Vec<String> = written
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    assert_eq!(args, vec![evil_target.clone(), evil_label.clone(), format!("--flag={evil_label}")]);
    assert!(!std::path::Path::new(&pwned).exists(), "a metacharacter was interpreted");
    assert_eq!(body["actions"][0]["request"]["argv"][4], json!(evil_target));
}

#[test]
fn url_path_parameters_cannot_escape_their_segment() {
    let dir = TempDir::new("exec-url");
    let sim = sim_like();
    let p = plan(
        IncidentClass::ReplicaDown,
        0.95,
        &[(ActionType::RestartReplica, "../../admin/reset?x=1#", SafetyClass::Safe)],
    );
    let (_, exec) = gate_then_exec(&dir, &chain_of(p), &["--execute", "--sim", &sim.addr], &[]);
    assert_eq!(exec.last_body()["actions"][0]["outcome"], "succeeded", "{}", exec.stderr);
    let paths: Vec<String> = sim.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec!["/admin/replicas/..%2F..%2Fadmin%2Freset%3Fx%3D1%23/restart".to_string()]
    );
}

#[test]
fn secrets_from_the_environment_never_reach_records_or_logs() {
    let dir = TempDir::new("exec-secret");
    const SECRET: &str = "tok-9f8e7d6c5b4a-very-secret";
    // The server echoes the Authorization header back: it must be scrubbed from the record too.
    let sim = Recorder::start(|req| {
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        (200, json!({"you_sent": auth}).to_string())
    });
    let config = json!({
        "base_url": sim.addr,
        "actuators": {
            "shift_traffic": {
                "type": "http", "method": "POST", "url": "{base_url}/admin/traffic",
                "headers": {"Authorization": "Bearer ${env:FLEET_TOKEN}"},
                "body": {"weights": "{params.weights}"}
            }
        }
    });
    let cfg = actuators(&dir, &config);
    let input = chain_of(shift_plan(json!({"stable": 2.0})));
    let env = [("FLEET_TOKEN", SECRET)];
    let (gate, exec) = gate_then_exec(&dir, &input, &["--execute", "--actuators", &cfg], &env);
    let req = sim.requests().pop().expect("called");
    assert!(
        req.headers.contains(&("authorization".into(), format!("Bearer {SECRET}"))),
        "the real secret is sent"
    );
    let a = &exec.last_body()["actions"][0];
    assert_eq!(a["outcome"], "succeeded", "{}", exec.stderr);
    assert_eq!(a["request"]["headers"]["Authorization"], "Bearer <redacted:FLEET_TOKEN>");
    for (what, text) in [
        ("gate stdout", String::from_utf8_lossy(&gate.stdout).into_owned()),
        ("gate stderr", gate.stderr.clone()),
        ("exec stdout", String::from_utf8_lossy(&exec.stdout).into_owned()),
        ("exec stderr", exec.stderr.clone()),
    ] {
        assert!(!text.contains(SECRET), "the secret leaked into {what}");
    }
    assert!(a["response"].as_str().unwrap().contains("<redacted>"), "echoed secret scrubbed: {a}");
}

#[test]
fn a_blocked_plan_executes_nothing_even_with_execute() {
    let dir = TempDir::new("exec-blocked");
    let sim = sim_like();
    let input = chain_of(plan(
        IncidentClass::KvCacheSaturation,
        0.3,
        &[(ActionType::ShiftTraffic, "stable", SafetyClass::Safe)],
    ));
    let (gate, exec) = gate_then_exec(&dir, &input, &["--execute", "--sim", &sim.addr], &[]);
    assert_eq!(gate.last_body()["verdict"], "blocked");
    assert_eq!(exec.last_body()["status"], "nothing_to_do");
    assert!(exec.last_body()["actions"].as_array().unwrap().is_empty());
    assert!(sim.requests().is_empty());
}

#[test]
fn a_bad_actuators_file_is_one_line_naming_file_and_field() {
    let dir = TempDir::new("exec-badcfg");
    let cfg = actuators(
        &dir,
        &json!({"actuators": {"shift_traffic": {"type": "http", "method": "POST", "url": "{base_url}/{nope}"}}}),
    );
    let input = chain_of(shift_plan(json!({"stable": 2.0})));
    let (_, exec) = gate_then_exec(&dir, &input, &["--actuators", &cfg], &[]);
    assert_eq!(exec.code, Some(3));
    assert!(exec.stdout.is_empty(), "nothing on stdout for bad input");
    assert_eq!(exec.stderr.lines().count(), 1, "{}", exec.stderr);
    assert!(
        exec.stderr.contains("actuators.json")
            && exec.stderr.contains("actuators.shift_traffic.url"),
        "{}",
        exec.stderr
    );
}

#[test]
fn commands_get_a_clean_environment_and_are_killed_at_their_timeout() {
    let dir = TempDir::new("exec-env");
    let config = json!({
        "actuators": {
            "restart_replica": {
                "type": "command",
                "argv": ["/usr/bin/env"],
                "env": {"API_TOKEN": "${env:FLEET_TOKEN}", "MODE": "restart {target}"}
            },
            "scale_replicas": {"type": "command", "argv": ["sleep", "5"], "timeout": "300ms"}
        }
    });
    let cfg = actuators(&dir, &config);
    let p = plan(
        IncidentClass::ReplicaDown,
        0.95,
        &[(ActionType::RestartReplica, "r1", SafetyClass::Safe)],
    );
    let env = [("FLEET_TOKEN", "s3cr3t-fleet-token"), ("UNRELATED_SECRET", "do-not-pass-me")];
    let (_, exec) = gate_then_exec(&dir, &chain_of(p), &["--execute", "--actuators", &cfg], &env);
    let a = &exec.last_body()["actions"][0];
    assert_eq!(a["outcome"], "succeeded", "{}", exec.stderr);
    let seen = a["response"].as_str().unwrap();
    assert!(seen.contains("MODE=restart r1"), "{seen}");
    assert!(
        seen.contains("API_TOKEN=<redacted>"),
        "the secret reached the command, scrubbed from the record: {seen}"
    );
    assert!(
        !seen.contains("do-not-pass-me") && !seen.contains("UNRELATED_SECRET"),
        "the cron environment leaked: {seen}"
    );
    assert_eq!(a["request"]["headers"]["API_TOKEN"], "<redacted:FLEET_TOKEN>");

    let dir = TempDir::new("exec-timeout");
    let cfg = actuators(&dir, &config);
    let p = plan(
        IncidentClass::QueueBacklog,
        0.95,
        &[(ActionType::ScaleReplicas, "stable", SafetyClass::Safe)],
    );
    let started = std::time::Instant::now();
    let (_, exec) = gate_then_exec(&dir, &chain_of(p), &["--execute", "--actuators", &cfg], &[]);
    let a = &exec.last_body()["actions"][0];
    assert_eq!(a["outcome"], "failed");
    assert!(a["error"].as_str().unwrap().contains("did not finish within 300 ms"), "{a}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "the command was not killed");
    assert_eq!(exec.last_body()["status"], "failed");
}

/// `opsg-audit` (the end of the pipe) appending to `ledger`.
const AUDIT: &str = env!("CARGO_BIN_EXE_opsg-audit");

/// `opsg-verify` after an exec that refused a stale plan: it exits with the documented code for a
/// stale plan (17), and its record says `stale_plan`.
fn verify_stale(dir: &TempDir, sim: &Recorder, exec: &e2e_support::Ran) -> e2e_support::Ran {
    let state = dir.str("state");
    let args = ["--settle", "0s", "--sim", &sim.addr, "--state-dir", &state];
    let verify = run(VERIFY, &args, &[], &exec.stdout);
    assert_eq!(opsg_core::Outcome::StalePlan.exit_code(), 17);
    assert_eq!(verify.code, Some(17), "{}", verify.stderr);
    assert_eq!(verify.last_body()["outcome"], "stale_plan", "{}", verify.stderr);
    verify
}

/// Regression: a plan made for a fleet that has changed since was refused (correctly, nothing was
/// called) but recorded as `failed`, and the pipe exited 14 ("an action failed": page someone).
/// It is `stale_plan`: the record says nothing ran, the pipe exits 17 (run it again), the chain
/// stays sealed and schema-valid, and the refusal does not start a cooldown that would hold back
/// the fresh run it asks for.
#[test]
fn a_fleet_that_changed_since_the_plan_is_not_acted_on() {
    let dir = TempDir::new("exec-drift");
    // The sim says both deployments weigh 1.0; the plan was made when they were 0.5 each.
    let sim = sim_like();
    let mut p = shift_plan(json!({"stable": 0.9, "canary": 0.1}));
    p.actions[0].prior_state.insert("weights".into(), json!({"stable": 0.5, "canary": 0.5}));
    let (_, exec) = gate_then_exec(&dir, &chain_of(p), &["--execute", "--sim", &sim.addr], &[]);
    assert_eq!(exec.code, Some(0), "an intermediate stage that did its job: {}", exec.stderr);
    let body = exec.last_body();
    let a = &body["actions"][0];
    assert_eq!(a["outcome"], "stale_plan", "{}", exec.stderr);
    assert_eq!(a["attempts"], 0, "the actuator was not called");
    let why = a["error"].as_str().unwrap();
    assert!(
        why.contains("changed since the plan was made") && why.contains("weights.canary"),
        "{why}"
    );
    assert_eq!(
        a["prior_state"]["weights"],
        json!({"stable": 1.0, "canary": 1.0}),
        "what was found is recorded"
    );
    assert!(sim.requests().iter().all(|r| r.method == "GET"), "nothing was changed");
    assert_eq!(body["status"], "stale_plan");
    assert_eq!(body["handed_to_rollback"], json!([]));
    assert!(!exec.stderr.contains("failed"), "{}", exec.stderr);

    // The end of the pipe: verify (nothing to verify, nothing to roll back) and audit both exit
    // with the documented code for a stale plan.
    let verify = verify_stale(&dir, &sim, &exec);
    let v = verify.last_body();
    assert!(v.get("rollback").is_none(), "nothing ran, so nothing is rolled back: {v}");
    assert!(v["reason"].as_str().unwrap().contains("nothing was executed"), "{v}");
    assert!(sim.requests().iter().all(|r| r.method == "GET"), "verify called an actuator");
    // The records validate against their schemas and round-trip through their types.
    e2e_support::check_acting_records(&verify.stdout);
    let ledger = dir.str("ledger.jsonl");
    let audit = run(AUDIT, &["--ledger", &ledger], &[], &verify.stdout);
    assert_eq!(audit.code, Some(17), "{}", audit.stderr);
    let report = audit.last_body();
    assert_eq!(report["outcome"], "stale_plan");
    assert_eq!(report["actions"]["total"], 0, "no action was executed: {report}");
    let check = run(AUDIT, &["verify", "--ledger", &ledger], &[], b"");
    assert_eq!(check.code, Some(0), "the ledger's chain stays valid: {}", check.stderr);

    // Run the pipe again, as the record says: the fresh plan (made for the fleet as it is now)
    // is not held back by a cooldown, because the refusal acted on nothing.
    let mut fresh = shift_plan(json!({"stable": 0.9, "canary": 0.1}));
    fresh.actions[0].prior_state.insert("weights".into(), json!({"stable": 1.0, "canary": 1.0}));
    let (gate, exec) =
        gate_then_exec(&dir, &chain_of(fresh), &["--execute", "--sim", &sim.addr], &[]);
    assert_eq!(gate.last_body()["verdict"], "approved", "{}", gate.stderr);
    assert_eq!(exec.last_body()["actions"][0]["outcome"], "succeeded", "{}", exec.stderr);
    assert_eq!(sim.requests().iter().filter(|r| r.method == "POST").count(), 1);
}

/// A plan refused half-way (its second action found the fleet changed): what the first action
/// did is rolled back by verify, and the outcome is still `stale_plan` (17), not `failed` (14);
/// a re-run of the same recorded decision refuses again instead of calling anything.
#[test]
fn a_plan_refused_half_way_rolls_back_its_first_half_and_is_stale_not_failed() {
    let dir = TempDir::new("exec-drift-half");
    let sim = Recorder::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/state") => (
            200,
            json!({"deployments": {
                "stable": {"weight": 1.0, "status": "serving"},
                "canary": {"weight": 1.0, "status": "serving"}}})
            .to_string(),
        ),
        _ => (200, json!({"ok": true}).to_string()),
    });
    let mut p = shift_plan(json!({"stable": 0.9, "canary": 0.1}));
    p.actions[0].prior_state.insert("weights".into(), json!({"stable": 1.0, "canary": 1.0}));
    p.actions[0].inverse = Some(opsg_core::kinds::plan::Inverse {
        action: ActionType::ShiftTraffic,
        params: [("weights".to_string(), json!({"stable": 1.0, "canary": 1.0}))].into(),
    });
    let mut second = p.actions[0].clone();
    second.index = 1;
    second.action = ActionType::SetDeploymentStatus;
    second.target = "canary".into();
    second.params = [("status".to_string(), json!("draining"))].into();
    second.prior_state = [("status".to_string(), json!("degraded"))].into();
    second.inverse = None;
    p.actions.push(second);
    let (gate, exec) = gate_then_exec(&dir, &chain_of(p), &["--execute", "--sim", &sim.addr], &[]);
    let body = exec.last_body();
    let outcomes = outcomes(&body);
    assert_eq!(outcomes, vec!["succeeded", "stale_plan"], "{body}\n{}", exec.stderr);
    assert_eq!(body["status"], "stale_plan");
    assert_eq!(body["handed_to_rollback"], json!([0]));
    assert!(body["stopped"].as_str().unwrap().contains("`status` was \"degraded\""), "{body}");
    let posts = |sim: &Recorder| sim.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts(&sim), 1, "only the first action was called");
    assert!(!sim.requests().iter().any(|r| r.path.contains("/status")), "the stale one was called");

    let verify = verify_stale(&dir, &sim, &exec);
    let v = verify.last_body();
    assert_eq!(v["rollback"]["actions"][0]["index"], 0);
    assert_eq!(v["rollback"]["actions"][0]["outcome"], "succeeded");
    assert!(v["reason"].as_str().unwrap().contains("1 earlier action(s) rolled back"), "{v}");
    assert_eq!(posts(&sim), 2, "the first action and its inverse");
    e2e_support::check_acting_records(&verify.stdout);

    // The same recorded decision again: the stale action's key says so, and nothing is called.
    let state = dir.str("state");
    let again =
        run(EXEC, &["--execute", "--state-dir", &state, "--sim", &sim.addr], &[], &gate.stdout);
    let b = again.last_body();
    assert_eq!(b["actions"][1]["outcome"], "stale_plan", "{b}");
    assert_eq!(b["status"], "stale_plan", "{b}");
    assert_eq!(posts(&sim), 2, "a re-run called an actuator");
}
