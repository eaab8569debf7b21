//! A fleet whose `/metrics` needs a bearer token, end to end through real processes: `opsg-scrape`
//! reads the token from the environment as its targets file says, the observation records only
//! where it comes from, and `opsg-verify`, after `opsg-gate | opsg-exec`, re-measures with the
//! token from its own environment. Without the token it must not call the fix resolved.

mod e2e_support;

use e2e_support::{EXEC, GATE, Ran, Recorder, SCRAPE, TempDir, VERIFY, run};
use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::observation::ObservationBody;
use opsg_core::kinds::plan::{ActionType, ExpectedEffect, Inverse, PlanBody, SafetyClass};
use opsg_core::record::Kind;
use opsg_core::time::Timestamp;
use opsg_gate::fixture::{ChainBuilder, plan};
use serde_json::json;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "pipe-t0ken-c41d2e";

fn kv_metrics(v: f64) -> String {
    format!("# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{engine=\"0\"}} {v}\n")
}

/// `/metrics` answers 401 without `Authorization: Bearer TOKEN`; admin calls succeed.
fn fleet(metrics: Arc<Mutex<String>>) -> Recorder {
    Recorder::start(move |req| match req.path.as_str() {
        "/metrics" => {
            let authorized = req.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("authorization") && *v == format!("Bearer {TOKEN}")
            });
            if authorized {
                (200, metrics.lock().unwrap().clone())
            } else {
                (401, "{\"error\":\"unauthorized\"}".into())
            }
        }
        "/state" => (200, json!({"deployments": {"canary": {"weight": 1.0}}}).to_string()),
        _ => (200, "{}".into()),
    })
}

fn kv_plan() -> PlanBody {
    let mut p = plan(
        IncidentClass::KvCacheSaturation,
        0.95,
        &[(ActionType::ShiftTraffic, "canary", SafetyClass::Safe)],
    );
    let a = &mut p.actions[0];
    a.params.insert("weights".into(), json!({"canary": 0.0}));
    a.inverse = Some(Inverse {
        action: ActionType::ShiftTraffic,
        params: [("weights".to_string(), json!({"canary": 100}))].into(),
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
    p
}

/// gate (live) | exec --execute | verify, verify with `env`.
fn act_and_verify(dir: &TempDir, fleet_url: &str, chain: &[u8], env: &[(&str, &str)]) -> Ran {
    let text = opsg_gate::policy::DEFAULT_POLICY
        .replace("\"mode\": \"dry_run\"", "\"mode\": \"live\"")
        .replace("\"replicas\": 2,", "\"replicas\": 10,")
        .replace("\"traffic_share\": 0.5", "\"traffic_share\": 1.0");
    let policy = dir.join("policy.json");
    std::fs::write(&policy, text).unwrap();
    let policy = policy.display().to_string();
    let state = dir.str("state");
    let gate = run(GATE, &["--policy", &policy, "--state-dir", &state], &[], chain);
    let exec =
        run(EXEC, &["--execute", "--sim", fleet_url, "--state-dir", &state], &[], &gate.stdout);
    assert_eq!(exec.code, Some(0), "{}", exec.stderr);
    run(
        VERIFY,
        &[
            "--settle",
            "0s",
            "--samples",
            "1",
            "--timeout",
            "2s",
            "--max-wait",
            "0s",
            "--no-rollback",
            "--sim",
            fleet_url,
            "--state-dir",
            &state,
        ],
        env,
        &exec.stdout,
    )
}

#[test]
fn verify_re_measures_an_authenticated_fleet_with_the_recorded_header_sources() {
    let metrics = Arc::new(Mutex::new(kv_metrics(0.95)));
    let fleet = fleet(metrics.clone());
    let dir = TempDir::new("scrape-verify-auth");
    let targets = dir.join("fleet.json");
    std::fs::write(
        &targets,
        format!(
            r#"{{"targets":[{{"name":"canary-0","url":"{}/metrics",
                "labels":{{"deployment":"canary"}},
                "headers":{{"Authorization":{{"env":"VLLM_TOKEN","prefix":"Bearer "}}}}}}]}}"#,
            fleet.addr
        ),
    )
    .unwrap();
    let scrape =
        run(SCRAPE, &["--targets", &targets.display().to_string()], &[("VLLM_TOKEN", TOKEN)], b"");
    assert_eq!(scrape.code, Some(0), "{}", scrape.stderr);
    assert!(!String::from_utf8_lossy(&scrape.stdout).contains(TOKEN), "token in the record");
    let observed: ObservationBody = serde_json::from_value(scrape.last_body()).unwrap();
    assert_eq!(observed.targets[0].status, opsg_core::kinds::observation::TargetStatus::Up);
    let chain = ChainBuilder::new(Timestamp::now())
        .push(Kind::Observation, "opsg-scrape", observed)
        .finding(IncidentClass::KvCacheSaturation, true)
        .plan(kv_plan())
        .bytes();

    // The fix worked: verify, holding the token, measures it.
    *metrics.lock().unwrap() = kv_metrics(0.40);
    let verify = act_and_verify(&dir, &fleet.addr, &chain, &[("VLLM_TOKEN", TOKEN)]);
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "resolved", "{}", verify.stderr);
    assert_eq!(body["checks"][0]["after"], 0.4);
    for text in [String::from_utf8_lossy(&verify.stdout).to_string(), verify.stderr.clone()] {
        assert!(!text.contains(TOKEN), "token in verify's output");
    }

    // Same fix, verify without the token: it cannot measure, so it must not say resolved.
    let dir = TempDir::new("scrape-verify-noauth");
    let verify = act_and_verify(&dir, &fleet.addr, &chain, &[]);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "inconclusive", "{}", verify.stderr);
    assert!(verify.stderr.contains("VLLM_TOKEN"), "says which variable: {}", verify.stderr);
}

/// A federated page for instance `canary-0` with a KV-cache value (text 0.0.4, as Prometheus
/// writes it, every family untyped).
fn federated_page(kv: f64) -> String {
    format!(
        "# TYPE vllm:kv_cache_usage_perc untyped\nvllm:kv_cache_usage_perc{{deployment=\"canary\",engine=\"0\",instance=\"canary-0\",job=\"vllm\"}} {kv}\n"
    )
}

/// A fleet watched through its Prometheus' `/federate`: verify federates again with the same
/// selectors (regression: federated targets have no `/metrics` URL, so verify measured nothing
/// and every fix was inconclusive).
#[test]
fn verify_re_measures_a_federated_fleet_through_the_same_prometheus() {
    let page = Arc::new(Mutex::new(federated_page(0.95)));
    let p2 = page.clone();
    let prometheus = Recorder::start(move |req| {
        if req.path.starts_with("/federate?") && req.path.contains("match") {
            (200, p2.lock().unwrap().clone())
        } else if req.path.starts_with("/state") {
            (200, json!({"deployments": {"canary": {"weight": 1.0}}}).to_string())
        } else if req.path.starts_with("/api/v1/metadata") {
            (404, "{}".into())
        } else {
            (200, "{}".into())
        }
    });
    let scrape =
        run(SCRAPE, &["--federate", &prometheus.addr, "--match", "{job=\"vllm\"}"], &[], b"");
    assert_eq!(scrape.code, Some(0), "{}", scrape.stderr);
    let observed: ObservationBody = serde_json::from_value(scrape.last_body()).unwrap();
    assert_eq!(observed.targets[0].name, "canary-0");
    assert_eq!(observed.scrape_configs["canary-0"].federate, ["{job=\"vllm\"}"]);
    let chain = ChainBuilder::new(Timestamp::now())
        .push(Kind::Observation, "opsg-scrape", observed)
        .finding(IncidentClass::KvCacheSaturation, true)
        .plan(kv_plan())
        .bytes();
    let federations = |r: &Recorder| {
        r.seen.lock().unwrap().iter().filter(|s| s.path.starts_with("/federate?")).count()
    };
    let before = federations(&prometheus);

    *page.lock().unwrap() = federated_page(0.40);
    let dir = TempDir::new("scrape-verify-federate");
    let verify = act_and_verify(&dir, &prometheus.addr, &chain, &[]);
    let body = verify.last_body();
    assert_eq!(body["outcome"], "resolved", "{}", verify.stderr);
    assert_eq!(body["checks"][0]["after"], 0.4);
    assert!(federations(&prometheus) > before, "verify asked Prometheus again");
}
