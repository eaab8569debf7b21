//! `opsg-scrape` against the simulated vLLM fleet (`opsg-sim`): every replica, node_exporter and
//! dcgm-exporter endpoint, values checked against the simulator's own `/state`, and a crashed
//! replica recorded as down while the rest of the fleet is still observed.

#[path = "scrape_support/mod.rs"]
mod support;

use opsg_core::float::Float;
use opsg_core::kinds::observation::{MetricType, TargetStatus};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use support::{record, run, target, tempdir};

struct Sim {
    child: Child,
    base: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsg-sim"))
            .args(["--listen", "127.0.0.1:0", "--seed", "1", "--manual-clock"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start opsg-sim");
        let stdout = child.stdout.take().expect("sim stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("sim prints where it listens");
        let hello: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("`{line}`: {e}"));
        let listen = hello["listen"].as_str().unwrap_or_else(|| panic!("no `listen` in `{line}`"));
        Sim { base: format!("http://{listen}"), child }
    }

    fn state(&self) -> Value {
        let text = ureq::get(&format!("{}/state", self.base))
            .call()
            .expect("GET /state")
            .into_body()
            .read_to_string()
            .expect("state body");
        serde_json::from_str(&text).expect("state is JSON")
    }

    fn post(&self, path: &str, body: Value) {
        let resp = ureq::post(&format!("{}{path}", self.base))
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&body).expect("JSON body"))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
    }
}

/// A targets file for the whole fleet, labelled from `/state`.
fn fleet_targets(state: &Value, path: &std::path::Path) -> usize {
    let mut targets = Vec::new();
    for (name, r) in state["replicas"].as_object().expect("replicas") {
        let Some(url) = r["metrics_url"].as_str() else { continue };
        let deployment = r["deployment"].as_str().unwrap_or("");
        targets.push(json!({
            "name": name,
            "url": url,
            "labels": {
                "deployment": deployment,
                "role": if deployment == "canary" { "canary" } else { "stable" },
                "node": r["node"],
            }
        }));
    }
    for (name, n) in state["nodes"].as_object().expect("nodes") {
        for (key, kind) in [("node_exporter_url", "node_exporter"), ("dcgm_url", "dcgm")] {
            if let Some(url) = n[key].as_str() {
                targets.push(
                    json!({"name": format!("{name}/{kind}"), "url": url, "labels": {"node": name}}),
                );
            }
        }
    }
    std::fs::write(path, serde_json::to_vec(&json!({ "targets": targets })).unwrap()).unwrap();
    targets.len()
}

#[test]
fn scrapes_the_whole_simulated_fleet_and_records_a_crash() {
    let sim = Sim::start();
    sim.post("/tick", json!({"seconds": 60}));
    let state = sim.state();
    let dir = tempdir("sim");
    let file = dir.join("fleet.json");
    let n = fleet_targets(&state, &file);
    assert!(n >= 4, "a fleet has replicas and exporters: {n}");

    let out =
        run(&["--targets", file.to_str().unwrap(), "--samples", "2", "--interval", "50ms"], None);
    let (_, body) = record(&out);
    assert_eq!(body.targets.len(), n);
    for t in &body.targets {
        assert_eq!(t.status, TargetStatus::Up, "{}: {:?}", t.name, t.reason);
        assert_eq!(t.samples.len(), 2);
    }
    for (name, r) in state["replicas"].as_object().unwrap() {
        let t = target(&body, name);
        assert_eq!(t.labels["deployment"], r["deployment"].as_str().unwrap());
        let kv = t.series.iter().find(|s| s.name == "vllm:kv_cache_usage_perc").expect("kv gauge");
        let want = r["kv_cache_usage"].as_f64().expect("kv_cache_usage in /state");
        let got = kv.points[0].v.unwrap().0;
        assert!((got - want).abs() < 0.0006, "{name}: scraped {got}, /state says {want}");
        let ttft =
            t.series.iter().find(|s| s.name == "vllm:time_to_first_token_seconds").expect("ttft");
        assert_eq!(ttft.metric_type, MetricType::Histogram);
        assert_eq!(ttft.le.last(), Some(&Float(f64::INFINITY)));
        assert_eq!(ttft.points.len(), 2);
    }
    for (name, node) in state["nodes"].as_object().unwrap() {
        let t = target(&body, &format!("{name}/node_exporter"));
        let avail = t
            .series
            .iter()
            .find(|s| s.name == "node_filesystem_avail_bytes")
            .expect("node_filesystem_avail_bytes");
        let want =
            node["filesystem_avail_bytes"].as_f64().expect("filesystem_avail_bytes in /state");
        assert!(
            t.series.iter().any(|s| s.name == "node_filesystem_avail_bytes"
                && (s.points[0].v.unwrap().0 - want).abs() < 1.0),
            "{name}: {:?} vs {want}",
            avail.points
        );
        let dcgm = target(&body, &format!("{name}/dcgm"));
        assert!(
            dcgm.series.iter().any(|s| s.name.starts_with("DCGM_FI_DEV_")),
            "{name}: dcgm series"
        );
    }

    // Crash one replica: it is recorded as down, the rest of the fleet is still observed.
    let victim = state["replicas"].as_object().unwrap().keys().next().unwrap().clone();
    sim.post("/chaos/replica_crash", json!({"target": victim}));
    let out = run(&["--targets", file.to_str().unwrap(), "--retries", "0"], None);
    let (_, body) = record(&out);
    let crashed = target(&body, &victim);
    assert_eq!(crashed.status, TargetStatus::Down, "{:?}", crashed.reason);
    assert!(crashed.reason.as_deref().unwrap_or("").contains("connection refused"));
    let up = body.targets.iter().filter(|t| t.status == TargetStatus::Up).count();
    assert_eq!(up, n - 1);
}

#[test]
fn the_observation_is_what_triage_reads() {
    // The contract with the next stage: opsg-triage accepts the record and passes it on byte for
    // byte (its seal covers its exact bytes), appending its own after it.
    let sim = Sim::start();
    sim.post("/tick", json!({"seconds": 30}));
    let dir = tempdir("pipe");
    let file = dir.join("fleet.json");
    fleet_targets(&sim.state(), &file);
    let scrape = run(&["--targets", file.to_str().unwrap()], None);
    let (_, body) = record(&scrape);
    assert!(body.targets.iter().all(|t| t.status == TargetStatus::Up));
    let mut triage = Command::new(env!("CARGO_BIN_EXE_opsg-triage"))
        .env_clear()
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start opsg-triage");
    std::io::Write::write_all(&mut triage.stdin.take().expect("stdin"), &scrape.stdout)
        .expect("pipe");
    let out = triage.wait_with_output().expect("opsg-triage");
    assert!(out.status.success(), "triage: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.starts_with(&scrape.stdout), "the observation passes through unchanged");
    assert!(out.stdout.len() > scrape.stdout.len(), "triage appends its finding");
}
