//! `opsg-verify` as a real process: outcomes passed through for chains that did not execute,
//! resolved only on evidence, inconclusive (never resolved) when the target is unreachable or its
//! telemetry stale, and a failed action rolled back in reverse order. The "fleet" is a recording
//! HTTP server whose `/metrics` the test changes between the observation and the re-measurement.

mod e2e_support;

use e2e_support::{EXEC, GATE, Ran, Recorder, TempDir, VERIFY, run};
use opsg_core::float::Float;
use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::observation::{
    MetricType, ObservationBody, Point, SampleInfo, Series, TargetObservation, TargetStatus, Window,
};
use opsg_core::kinds::plan::{ActionType, ExpectedEffect, Inverse, PlanBody, SafetyClass};
use opsg_core::record::Kind;
use opsg_core::time::Timestamp;
use opsg_gate::fixture::{ChainBuilder, plan};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

fn observation(url: &str, kv: f64) -> ObservationBody {
    let now = Timestamp::now();
    ObservationBody {
        window: Window { start: now.to_rfc3339(), end: now.to_rfc3339() },
        interval_s: 0.0,
        targets: vec![TargetObservation {
            name: "canary-0".into(),
            source: url.into(),
            labels: [("deployment".to_string(), "canary".to_string())].into(),
            status: TargetStatus::Up,
            reason: None,
            samples: vec![SampleInfo {
                at: now.to_rfc3339(),
                status: TargetStatus::Up,
                duration_ms: 1.0,
                reason: None,
                stale: false,
                evidence: None,
            }],
            series: vec![Series {
                name: "vllm:kv_cache_usage_perc".into(),
                source_name: None,
                metric_type: MetricType::Gauge,
                labels: Default::default(),
                le: vec![],
                points: vec![Point {
                    t: now.millis(),
                    v: Some(Float(kv)),
                    count: None,
                    sum: None,
                    buckets: vec![],
                }],
            }],
        }],
        ..Default::default()
    }
}

fn kv_plan(actions: usize) -> PlanBody {
    let specs: Vec<(ActionType, &str, SafetyClass)> =
        (0..actions).map(|_| (ActionType::ShiftTraffic, "canary", SafetyClass::Safe)).collect();
    let mut p = plan(IncidentClass::KvCacheSaturation, 0.95, &specs);
    for (i, a) in p.actions.iter_mut().enumerate() {
        a.params.insert("weights".into(), json!({"canary": i as f64}));
        a.inverse = Some(Inverse {
            action: ActionType::ShiftTraffic,
            params: [("weights".to_string(), json!({"canary": 100 + i}))].into(),
        });
        a.expected_effect = Some(ExpectedEffect {
            signal: "vllm:kv_cache_usage_perc".into(),
            target: "canary".into(),
            direction: "decrease".into(),
            by_fraction: Some(0.2),
            below: None,
            above: None,
            within_s: 60.0,
        });
    }
    p
}

fn input(obs: ObservationBody, p: PlanBody) -> Vec<u8> {
    ChainBuilder::new(Timestamp::now())
        .push(Kind::Observation, "opsg-scrape", obs)
        .finding(p.class, true)
        .plan(p)
        .bytes()
}

fn live_policy(dir: &TempDir) -> String {
    let text = opsg_gate::policy::DEFAULT_POLICY
        .replace("\"mode\": \"dry_run\"", "\"mode\": \"live\"")
        .replace("\"replicas\": 2,", "\"replicas\": 10,")
        .replace("\"traffic_share\": 0.5", "\"traffic_share\": 1.0");
    let path = dir.join("policy.json");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A fleet stand-in: `/metrics` serves what the test sets, `/state` the weights, admin calls
/// succeed (or fail for paths containing `fail`).
struct Fleet {
    server: Recorder,
    metrics: Arc<Mutex<String>>,
}

impl Fleet {
    fn start(metrics: &str) -> Fleet {
        let text = Arc::new(Mutex::new(metrics.to_string()));
        let t2 = text.clone();
        let server = Recorder::start(move |req| match req.path.as_str() {
            "/metrics" => (200, t2.lock().unwrap().clone()),
            "/state" => (200, json!({"deployments": {"canary": {"weight": 1.0}}}).to_string()),
            p if p.contains("fail") => (500, "{}".into()),
            _ => (200, "{}".into()),
        });
        Fleet { server, metrics: text }
    }

    fn set(&self, m: &str) {
        *self.metrics.lock().unwrap() = m.to_string();
    }
}

fn kv_metrics(v: f64) -> String {
    format!("# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{engine=\"0\"}} {v}\n")
}

/// gate (live) | exec --execute, then verify with no settle.
fn pipe(dir: &TempDir, fleet_url: &str, input: &[u8], verify_args: &[&str]) -> (Ran, Ran) {
    let policy = live_policy(dir);
    let state = dir.str("state");
    let gate = run(GATE, &["--policy", &policy, "--state-dir", &state], &[], input);
    let exec =
        run(EXEC, &["--execute", "--sim", fleet_url, "--state-dir", &state], &[], &gate.stdout);
    assert_eq!(exec.code, Some(0), "{}", exec.stderr);
    let mut args = vec![
        "--settle",
        "0s",
        "--samples",
        "1",
        "--timeout",
        "2s",
        "--sim",
        fleet_url,
        "--state-dir",
        &state,
    ];
    if !verify_args.contains(&"--max-wait") {
        // Decide on the first measurement unless a test is about waiting.
        args.extend_from_slice(&["--max-wait", "0s"]);
    }
    args.extend_from_slice(verify_args);
    let verify = run(VERIFY, &args, &[], &exec.stdout);
    (exec, verify)
}

#[test]
fn resolved_only_when_the_effect_is_measured() {
    let dir = TempDir::new("verify-ok");
    let fleet = Fleet::start(&kv_metrics(0.95));
    let url = format!("{}/metrics", fleet.server.addr);
    let chain = input(observation(&url, 0.95), kv_plan(1));
    fleet.set(&kv_metrics(0.40));
    let (_, verify) = pipe(&dir, &fleet.server.addr, &chain, &[]);
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "resolved");
    assert_eq!(body["checks"][0]["before"], 0.95);
    assert_eq!(body["checks"][0]["after"], 0.4);
    assert_eq!(body["checks"][0]["expected"], "decrease by >= 20%");
    // The chain still reads back: every record is sealed, linked and valid against its schema.
    opsg_core::stream::read_chain(&verify.stdout[..], "verify", &Default::default())
        .expect("valid chain");
}

#[test]
fn a_slow_fix_is_given_its_within_s_before_it_is_judged() {
    let dir = TempDir::new("verify-slow");
    let fleet = Arc::new(Fleet::start(&kv_metrics(0.95)));
    let url = format!("{}/metrics", fleet.server.addr);
    let chain = input(observation(&url, 0.95), kv_plan(1));
    // The effect shows up a second and a half after the action.
    let f2 = fleet.clone();
    let flip = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        f2.set(&kv_metrics(0.30));
    });
    let started = std::time::Instant::now();
    let (_, verify) =
        pipe(&dir, &fleet.server.addr, &chain, &["--max-wait", "20s", "--recheck", "200ms"]);
    flip.join().unwrap();
    assert_eq!(verify.last_body()["outcome"], "resolved", "{}", verify.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_millis(1400));
    assert!(verify.stderr.contains("not there yet"), "{}", verify.stderr);
    // Without the wait, the same slow fix would have been judged failed and undone.
    let dir = TempDir::new("verify-slow-nowait");
    fleet.set(&kv_metrics(0.95));
    let (_, verify) = pipe(&dir, &fleet.server.addr, &chain, &[]);
    assert_eq!(verify.last_body()["outcome"], "rolled_back", "{}", verify.stderr);
}

#[test]
fn unreachable_targets_are_inconclusive_never_resolved() {
    let dir = TempDir::new("verify-down");
    let fleet = Fleet::start("");
    // A port nothing listens on (bound, then released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let chain = input(observation(&format!("http://{dead}/metrics"), 0.95), kv_plan(1));
    let (_, verify) = pipe(&dir, &fleet.server.addr, &chain, &[]);
    assert_eq!(verify.code, Some(15), "{}", verify.stderr);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "inconclusive");
    assert_eq!(body["checks"][0]["result"], "inconclusive");
    assert!(body["checks"][0]["reason"].as_str().unwrap().contains("unreachable"), "{body}");
    assert!(body.get("rollback").is_none(), "an unknown result is not a failure to roll back");
}

#[test]
fn stale_telemetry_is_inconclusive() {
    let dir = TempDir::new("verify-stale");
    // Exposition timestamps an hour old: the values are not current.
    let old = Timestamp::now().millis() - 3_600_000;
    let fleet = Fleet::start(&format!(
        "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0.1 {old}\n"
    ));
    let url = format!("{}/metrics", fleet.server.addr);
    let chain = input(observation(&url, 0.95), kv_plan(1));
    let (_, verify) = pipe(&dir, &fleet.server.addr, &chain, &["--stale-after", "5m"]);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "inconclusive", "{}\n{body}", verify.stderr);
    assert_eq!(verify.code, Some(15));
    assert!(body["checks"][0]["reason"].as_str().unwrap().contains("stale"), "{body}");
}

#[test]
fn a_failed_fix_is_rolled_back_in_reverse_order() {
    let dir = TempDir::new("verify-reverse");
    let fleet = Fleet::start(&kv_metrics(0.95));
    let url = format!("{}/metrics", fleet.server.addr);
    let chain = input(observation(&url, 0.95), kv_plan(2));
    let (_, verify) = pipe(&dir, &fleet.server.addr, &chain, &[]);
    assert_eq!(verify.code, Some(13), "{}", verify.stderr);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "rolled_back");
    e2e_support::check_acting_records(&verify.stdout);
    let rb: Vec<Value> = body["rollback"]["actions"].as_array().unwrap().clone();
    assert_eq!(rb.iter().map(|a| a["index"].clone()).collect::<Vec<_>>(), vec![json!(1), json!(0)]);
    // The inverses' weights were refreshed from the state captured before acting.
    assert_eq!(rb[0]["request"]["body"], json!({"weights": {"canary": 1.0}}));
    let posts: Vec<String> = fleet
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(posts.len(), 4, "two actions, then two inverses: {posts:?}");
    assert!(
        posts[2].contains("\"canary\":1.0") && posts[3].contains("\"canary\":1.0"),
        "{posts:?}"
    );

    // Verifying the same execution again rolls nothing back twice.
    let exec_out = run(
        EXEC,
        &["--execute", "--sim", &fleet.server.addr, "--state-dir", &dir.str("state")],
        &[],
        &{
            let gate = run(
                GATE,
                &["--policy", &live_policy(&dir), "--state-dir", &dir.str("other")],
                &[],
                &chain,
            );
            gate.stdout
        },
    );
    let again = run(
        VERIFY,
        &[
            "--settle",
            "0s",
            "--max-wait",
            "0s",
            "--samples",
            "1",
            "--sim",
            &fleet.server.addr,
            "--state-dir",
            &dir.str("state"),
        ],
        &[],
        &exec_out.stdout,
    );
    assert_eq!(
        again.last_body()["rollback"]["actions"][0]["outcome"],
        "already_done",
        "{}",
        again.stderr
    );
    assert_eq!(fleet.server.requests().iter().filter(|r| r.method == "POST").count(), 4);
}

#[test]
fn a_failed_action_rolls_back_what_ran_before_it_and_the_outcome_is_failed() {
    let dir = TempDir::new("verify-failed");
    let fleet = Fleet::start(&kv_metrics(0.95));
    let url = format!("{}/metrics", fleet.server.addr);
    let mut p = kv_plan(2);
    // The second action's actuator answers 500: its target's URL contains `fail`.
    p.actions[1].action = ActionType::RestartReplica;
    p.actions[1].target = "fail-me".into();
    p.actions[1].inverse = None;
    let chain = input(observation(&url, 0.95), p);
    let (exec, verify) = pipe(&dir, &fleet.server.addr, &chain, &[]);
    assert_eq!(exec.last_body()["status"], "failed");
    assert_eq!(exec.last_body()["handed_to_rollback"], json!([0]));
    assert_eq!(verify.code, Some(14), "{}", verify.stderr);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "failed");
    assert_eq!(body["rollback"]["actions"][0]["index"], 0);
    assert_eq!(body["rollback"]["actions"][0]["outcome"], "succeeded");
    assert!(body["reason"].as_str().unwrap().contains("rolled back"), "{body}");
}

#[test]
fn chains_that_did_not_execute_pass_through_with_their_outcome() {
    let dir = TempDir::new("verify-pass");
    let fleet = Fleet::start(&kv_metrics(0.9));
    let url = format!("{}/metrics", fleet.server.addr);
    let state = dir.str("state");
    // Dry run (the built-in policy): 16.
    let chain = input(observation(&url, 0.9), kv_plan(1));
    let gate = run(GATE, &["--state-dir", &state], &[], &chain);
    let exec = run(
        EXEC,
        &["--execute", "--sim", &fleet.server.addr, "--state-dir", &state],
        &[],
        &gate.stdout,
    );
    let verify = run(VERIFY, &["--settle", "0s"], &[], &exec.stdout);
    assert_eq!((verify.code, verify.last_body()["outcome"].clone()), (Some(16), json!("dry_run")));
    // Blocked (low confidence): 12.
    let mut low = kv_plan(1);
    low.confidence = 0.1;
    let gate = run(GATE, &["--state-dir", &state], &[], &input(observation(&url, 0.9), low));
    let exec = run(EXEC, &["--sim", &fleet.server.addr, "--state-dir", &state], &[], &gate.stdout);
    let verify = run(VERIFY, &["--settle", "0s"], &[], &exec.stdout);
    assert_eq!((verify.code, verify.last_body()["outcome"].clone()), (Some(12), json!("blocked")));
    // Awaiting approval (impactful): 11.
    let mut imp = kv_plan(1);
    imp.actions[0].safety = SafetyClass::Impactful;
    let gate = run(GATE, &["--state-dir", &state], &[], &input(observation(&url, 0.9), imp));
    let exec = run(EXEC, &["--sim", &fleet.server.addr, "--state-dir", &state], &[], &gate.stdout);
    let verify = run(VERIFY, &["--settle", "0s"], &[], &exec.stdout);
    assert_eq!(
        (verify.code, verify.last_body()["outcome"].clone()),
        (Some(11), json!("awaiting_approval"))
    );
    // No incident: 10.
    let none = ChainBuilder::new(Timestamp::now())
        .finding(IncidentClass::None, false)
        .plan(plan(IncidentClass::None, 1.0, &[]))
        .bytes();
    let gate = run(GATE, &["--state-dir", &state], &[], &none);
    let exec = run(EXEC, &["--sim", &fleet.server.addr, "--state-dir", &state], &[], &gate.stdout);
    let verify = run(VERIFY, &["--settle", "0s"], &[], &exec.stdout);
    assert_eq!(
        (verify.code, verify.last_body()["outcome"].clone()),
        (Some(10), json!("no_incident"))
    );
    assert!(fleet.server.requests().iter().all(|r| r.method == "GET"), "nothing was executed");
}

#[test]
fn verify_refuses_a_chain_without_an_execution() {
    let chain = input(observation("http://127.0.0.1:9/metrics", 0.9), kv_plan(1));
    let out = run(VERIFY, &["--settle", "0s"], &[], &chain);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("opsg-gate"), "{}", out.stderr);
}

#[test]
fn secrets_stay_out_of_the_rollback_records_and_logs() {
    const SECRET: &str = "rollback-s3cr3t-token-77";
    let dir = TempDir::new("verify-secret");
    let fleet = Fleet::start(&kv_metrics(0.95));
    let url = format!("{}/metrics", fleet.server.addr);
    let config = json!({
        "base_url": fleet.server.addr,
        "actuators": {
            "shift_traffic": {
                "type": "http", "method": "POST", "url": "{base_url}/admin/traffic?token=${env:FLEET_TOKEN}",
                "headers": {"Authorization": "Bearer ${env:FLEET_TOKEN}"},
                "body": {"weights": "{params.weights}"},
                "capture": {"url": "{base_url}/state", "pointers": {"weights": "/deployments/*/weight"}}
            }
        }
    });
    let cfg = dir.join("actuators.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let cfg = cfg.display().to_string();
    let chain = input(observation(&url, 0.95), kv_plan(1));
    let env = [("FLEET_TOKEN", SECRET), ("OPSG_ACTUATORS", cfg.as_str())];
    let state = dir.str("state");
    let gate = run(GATE, &["--policy", &live_policy(&dir), "--state-dir", &state], &env, &chain);
    let exec = run(EXEC, &["--execute", "--state-dir", &state], &env, &gate.stdout);
    let verify = run(
        VERIFY,
        &["--settle", "0s", "--max-wait", "0s", "--samples", "1", "--state-dir", &state],
        &env,
        &exec.stdout,
    );
    assert_eq!(verify.last_body()["outcome"], "rolled_back", "{}", verify.stderr);
    let rb = &verify.last_body()["rollback"]["actions"][0];
    assert_eq!(rb["request"]["headers"]["Authorization"], "Bearer <redacted:FLEET_TOKEN>");
    assert!(rb["request"]["url"].as_str().unwrap().contains("token=<redacted:FLEET_TOKEN>"));
    for (what, text) in [
        ("exec stdout", String::from_utf8_lossy(&exec.stdout).into_owned()),
        ("exec stderr", exec.stderr.clone()),
        ("verify stdout", String::from_utf8_lossy(&verify.stdout).into_owned()),
        ("verify stderr", verify.stderr.clone()),
    ] {
        assert!(!text.contains(SECRET), "the secret leaked into {what}");
    }
    // The fleet did receive it (twice: the action and its inverse).
    let sent = fleet
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains(SECRET))
        .count();
    assert_eq!(sent, 2);
}

#[test]
fn no_rollback_leaves_a_failed_fix_in_place_and_says_so() {
    let dir = TempDir::new("verify-norollback");
    let fleet = Fleet::start(&kv_metrics(0.95));
    let url = format!("{}/metrics", fleet.server.addr);
    let chain = input(observation(&url, 0.95), kv_plan(1));
    let (_, verify) = pipe(&dir, &fleet.server.addr, &chain, &["--no-rollback"]);
    assert_eq!(verify.code, Some(14), "{}", verify.stderr);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "failed");
    assert!(body.get("rollback").is_none());
    assert!(body["reason"].as_str().unwrap().contains("--no-rollback"), "{body}");
    assert_eq!(fleet.server.requests().iter().filter(|r| r.method == "POST").count(), 1);
}
