//! `opsg-sim`'s HTTP API end to end: the start-up line, `/state`, admin calls and their effects,
//! the admin log, reset, and bad requests answered with 400/404/405 JSON errors (never a hang or
//! a crash).

#[path = "sim_support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::{Sim, raw_request, request, sum, value};

#[test]
fn startup_line_names_the_bound_address_and_state_lists_the_fleet() {
    let sim = Sim::start(3, &[]);
    assert!(sim.addr.starts_with("127.0.0.1:"), "{}", sim.hello);
    assert_ne!(sim.addr, "127.0.0.1:0", "the real port is printed");
    assert_eq!(sim.hello["state"], json!(format!("http://{}/state", sim.addr)));
    assert_eq!(sim.hello["seed"], json!(3));

    let (status, index) = sim.call("GET", "/", None);
    assert_eq!(status, 200);
    let faults = index["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 8, "{index}");
    let crash = faults.iter().find(|f| f["fault"] == json!("replica_crash")).unwrap();
    assert_eq!(crash["target"], json!("replica"));
    assert!(crash["remediation"].as_str().unwrap().contains("/restart"));
    assert!(index["endpoints"]["GET /state"].is_string());

    let (status, health) = sim.call("GET", "/healthz", None);
    assert_eq!((status, health), (200, json!({"status": "ok"})));

    let s = sim.state();
    assert_eq!(s["seed"], json!(3));
    assert_eq!(s["sim_time"], json!(0.0));
    assert_eq!(s["deployments"]["stable"]["weight"], json!(0.9));
    assert_eq!(s["deployments"]["canary"]["weight"], json!(0.1));
    assert_eq!(s["deployments"]["stable"]["replicas"], json!(["stable-0", "stable-1", "stable-2"]));
    assert_eq!(s["deployments"]["canary"]["config_version"], json!(1));
    let replicas = s["replicas"].as_object().unwrap();
    assert_eq!(replicas.len(), 4);
    let mut ports = Vec::new();
    for (name, r) in replicas {
        assert_eq!(r["up"], json!(true), "{name}");
        assert_eq!(r["restarts"], json!(0), "{name}");
        let url = r["metrics_url"].as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{url}");
        ports.push(r["port"].as_u64().unwrap());
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "each replica has its own listener");
    // 4 vLLM targets + dcgm and node_exporter for each of 2 nodes.
    assert_eq!(s["targets"].as_array().unwrap().len(), 8);
    assert_eq!(s["admin_log"], json!([]));
}

#[test]
fn admin_calls_change_state_metrics_and_are_logged() {
    let sim = Sim::start(5, &[]);
    sim.tick(30.0);

    // Shift all traffic to stable: the canary stops receiving requests.
    let out = sim.post("/admin/traffic", json!({"weights": {"stable": 1.0, "canary": 0.0}}));
    assert_eq!(out["weights"]["canary"], json!(0.0));
    assert_eq!(out["traffic_shares"]["stable"], json!(1.0));
    sim.tick(30.0); // let in-flight canary work finish
    let before = sim.metrics("canary-0");
    sim.tick(30.0);
    let after = sim.metrics("canary-0");
    let finished = |t: &str| sum(t, "vllm:request_success_total", &[]);
    assert!(finished(&before) > 0.0, "the canary served traffic before the shift");
    assert_eq!(finished(&before), finished(&after), "no new canary requests after weight 0");
    assert_eq!(value(&after, "vllm:num_requests_running", &[]), Some(0.0));

    // A config change bumps the version and restarts the deployment's replicas.
    let out = sim.post("/admin/deployments/canary/config", json!({"max_num_seqs": 64}));
    assert_eq!(out["config_version"], json!(2));
    assert_eq!(out["config"]["max_num_seqs"], json!(64));
    let s = sim.state();
    assert_eq!(s["replicas"]["canary-0"]["restarts"], json!(1));
    assert_eq!(s["replicas"]["canary-0"]["config_version"], json!(2));
    let restarted = sim.metrics("canary-0");
    assert_eq!(finished(&restarted), 0.0, "counters reset on restart, as real vLLM does");
    let start_before = value(&before, "process_start_time_seconds", &[]).unwrap();
    let start_after = value(&restarted, "process_start_time_seconds", &[]).unwrap();
    assert!(start_after > start_before, "{start_after} > {start_before}");

    let out = sim.post("/admin/deployments/canary/rollback", json!({"to_version": 1}));
    assert_eq!(out["config_version"], json!(1));
    assert_eq!(out["config"]["max_num_seqs"], json!(48));

    let out = sim.post("/admin/deployments/canary/status", json!({"status": "drain"}));
    assert_eq!(out["status"], json!("drain"));
    assert_eq!(out["traffic_share"], json!(0.0));

    // Scale stable to 5: two new replicas with their own serving listeners.
    let out = sim.post("/admin/deployments/stable/scale", json!({"replicas": 5}));
    assert_eq!(out["replicas"].as_array().unwrap().len(), 5);
    sim.tick(20.0);
    let m = sim.metrics("stable-4");
    assert!(sum(&m, "vllm:request_success_total", &[]) > 0.0, "the new replica takes traffic");
    let out = sim.post("/admin/deployments/stable/scale", json!({"replicas": 3}));
    assert_eq!(out["replicas"], json!(["stable-0", "stable-1", "stable-2"]));

    let out = sim.post("/admin/replicas/stable-1/restart", json!({}));
    assert_eq!(out["restarts"], json!(1));
    assert_eq!(out["up"], json!(true));

    let s = sim.state();
    let log: Vec<(String, String, u64)> = s["admin_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = [
        "/admin/traffic",
        "/admin/deployments/canary/config",
        "/admin/deployments/canary/rollback",
        "/admin/deployments/canary/status",
        "/admin/deployments/stable/scale",
        "/admin/deployments/stable/scale",
        "/admin/replicas/stable-1/restart",
    ];
    assert_eq!(log.len(), expect.len(), "{log:?}");
    for ((method, path, status), want) in log.iter().zip(expect) {
        assert_eq!((method.as_str(), path.as_str(), *status), ("POST", want, 200));
    }
    assert_eq!(s["admin_log"][0]["body"], json!({"weights": {"stable": 1.0, "canary": 0.0}}));
    assert_eq!(s["admin_log_total"], json!(7));
}

#[test]
fn reset_returns_to_the_seeded_state_on_the_same_ports() {
    let sim = Sim::start(9, &[]);
    let fresh = sim.metrics("stable-0");
    let port = sim.state()["replicas"]["stable-0"]["port"].clone();
    sim.tick(40.0);
    sim.post("/chaos/replica_crash", json!({"target": "stable-0"}));
    sim.post("/admin/deployments/canary/scale", json!({"replicas": 2}));
    let out = sim.post("/reset", json!({}));
    assert_eq!(out["reset"], json!(true));
    let s = sim.state();
    assert_eq!(s["sim_time"], json!(0.0));
    assert_eq!(s["faults"], json!([]));
    assert_eq!(s["replicas"].as_object().unwrap().len(), 4);
    assert_eq!(s["replicas"]["stable-0"]["up"], json!(true));
    assert_eq!(s["replicas"]["stable-0"]["port"], port, "a replica keeps its port across reset");
    assert_eq!(sim.metrics("stable-0"), fresh, "reset is the seeded initial state, byte for byte");
    let log = s["admin_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "the log restarts with the reset itself: {log:?}");
    assert_eq!(log[0]["path"], json!("/reset"));
    assert_eq!(s["admin_log_total"], json!(3));

    // Reseeding gives another fleet; the same seed again gives the same one.
    sim.post("/reset", json!({"seed": 10}));
    assert_eq!(sim.state()["seed"], json!(10));
    sim.tick(20.0);
    let ten = sim.metrics("stable-0");
    sim.post("/reset", json!({"seed": 9}));
    sim.tick(20.0);
    let nine = sim.metrics("stable-0");
    assert_ne!(ten, nine);
    sim.post("/reset", json!({"seed": 10}));
    sim.tick(20.0);
    assert_eq!(sim.metrics("stable-0"), ten);
    let (status, _) = sim.call("POST", "/reset", Some(&json!({"seed": "x"})));
    assert_eq!(status, 400);
}

fn error_of(sim: &Sim, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let resp = request(&sim.addr, method, path, body.map(str::as_bytes));
    let v: Value = serde_json::from_slice(&resp.body).expect("errors are JSON");
    assert_eq!(v["status"], json!(resp.status));
    (resp.status, v["error"].as_str().unwrap_or_default().to_string())
}

#[test]
fn bad_requests_get_json_errors_and_change_nothing() {
    let sim = Sim::start(11, &[]);
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        ("POST", "/admin/traffic", Some("{not json"), 400, "not valid JSON"),
        ("POST", "/admin/traffic", Some("[1,2]"), 400, "JSON object"),
        ("POST", "/admin/traffic", Some(r#"{"weights":{"nope":1}}"#), 404, "no deployment `nope`"),
        ("POST", "/admin/traffic", Some(r#"{"weights":{"stable":-1}}"#), 400, "weight of `stable`"),
        (
            "POST",
            "/admin/traffic",
            Some(r#"{"weights":{"stable":0,"canary":0}}"#),
            400,
            "all be zero",
        ),
        ("POST", "/admin/traffic", Some(r#"{"weight":{}}"#), 400, "unknown field"),
        ("POST", "/admin/deployments/nope/scale", Some(r#"{"replicas":2}"#), 404, "no deployment"),
        ("POST", "/admin/deployments/stable/scale", Some(r#"{"replicas":99}"#), 400, "0..=16"),
        (
            "POST",
            "/admin/deployments/stable/scale",
            Some(r#"{"replicas":"two"}"#),
            400,
            "invalid body",
        ),
        (
            "POST",
            "/admin/deployments/stable/status",
            Some(r#"{"status":"paused"}"#),
            400,
            "`active` or `drain`",
        ),
        (
            "POST",
            "/admin/deployments/stable/rollback",
            Some(r#"{"to_version":7}"#),
            400,
            "does not exist",
        ),
        ("POST", "/admin/deployments/stable/rollback", None, 409, "version 1"),
        (
            "POST",
            "/admin/deployments/stable/config",
            Some(r#"{"max_num_seqs":0}"#),
            400,
            "max_num_seqs",
        ),
        (
            "POST",
            "/admin/deployments/stable/config",
            Some(r#"{"tensor_parallel":2}"#),
            400,
            "unknown field",
        ),
        ("POST", "/admin/replicas/ghost-0/restart", None, 404, "no replica `ghost-0`"),
        ("POST", "/admin/nodes/ghost/drain", None, 404, "no node `ghost`"),
        ("POST", "/admin/frobnicate", None, 404, "no admin route"),
        ("POST", "/chaos/meteor_strike", Some("{}"), 404, "unknown fault"),
        ("POST", "/chaos/replica_crash", Some("{}"), 400, "needs a `target`"),
        ("POST", "/chaos/replica_crash", Some(r#"{"target":"ghost"}"#), 404, "no replica"),
        ("POST", "/chaos/traffic_surge", Some(r#"{"intensity":1.5}"#), 400, "0..=1"),
        ("DELETE", "/chaos/gpu_fault", None, 404, "no active `gpu_fault`"),
        ("POST", "/tick", Some(r#"{"seconds":-1}"#), 400, "seconds"),
        ("POST", "/tick", None, 400, "missing field"),
        ("GET", "/admin/traffic", None, 405, "method not allowed"),
        ("DELETE", "/state", None, 405, "method not allowed"),
        ("GET", "/nowhere", None, 404, "no route"),
    ];
    for (method, path, body, status, needle) in cases {
        let (got, message) = error_of(&sim, method, path, body);
        assert_eq!(got, status, "{method} {path} {body:?}: {message}");
        assert!(message.contains(needle), "{method} {path}: `{message}` lacks `{needle}`");
    }
    let resp = request(&sim.addr, "GET", "/admin/traffic", None);
    assert_eq!(resp.header("Allow"), Some("POST"));

    // Malformed HTTP: answered, not hung.
    for (raw, status) in [
        (&b"NONSENSE\r\n\r\n"[..], 400),
        (&b"POST /tick HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"[..], 413),
        (&b"POST /tick HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..], 501),
        (&b"GET /state HTTP/2.0\r\n\r\n"[..], 505),
    ] {
        assert_eq!(
            raw_request(&sim.addr, raw).status,
            status,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }

    // Nothing above changed the fleet; the failed admin calls are logged with their status.
    let s = sim.state();
    assert_eq!(s["deployments"]["stable"]["weight"], json!(0.9));
    assert_eq!(s["replicas"].as_object().unwrap().len(), 4);
    assert_eq!(s["faults"], json!([]));
    let statuses: Vec<u64> =
        s["admin_log"].as_array().unwrap().iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s >= 400), "{statuses:?}");
    assert!(statuses.contains(&404) && statuses.contains(&400) && statuses.contains(&409));
    assert_eq!(
        s["admin_log"][0]["body"],
        json!("{not json"),
        "unparseable bodies are kept as text"
    );
}

#[test]
fn replica_endpoints_serve_metrics_and_health_only() {
    let sim = Sim::start(2, &[]);
    let addr = sim.replica_addr("stable-0");
    let resp = request(&addr, "GET", "/metrics", None);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let head = request(&addr, "HEAD", "/metrics", None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(request(&addr, "GET", "/health", None).status, 200);
    let models: Value =
        serde_json::from_slice(&request(&addr, "GET", "/v1/models", None).body).unwrap();
    assert_eq!(models["data"][0]["id"], json!("meta-llama/Llama-3.1-8B-Instruct"));
    assert_eq!(models["data"][0]["max_model_len"], json!(8192));
    assert_eq!(request(&addr, "POST", "/metrics", Some(b"{}")).status, 405);
    assert_eq!(request(&addr, "GET", "/admin/traffic", None).status, 404);
}

#[test]
fn ureq_reads_the_metrics_like_a_real_scraper() {
    // An independent HTTP client agrees with the hand-written server's framing.
    let sim = Sim::start(4, &[]);
    sim.tick(10.0);
    let url = sim.state()["replicas"]["canary-0"]["metrics_url"].as_str().unwrap().to_string();
    let body = ureq::get(&url).call().expect("GET").into_body().read_to_string().expect("body");
    assert_eq!(body, sim.metrics("canary-0"), "same bytes through ureq and a raw socket");
}

/// Send bytes, close the write side, read whatever comes back.
fn send_and_close(addr: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn random_bytes_and_random_bodies_never_take_the_server_down() {
    let sim = Sim::start(1, &[]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let paths = ["/admin/traffic", "/chaos/gpu_fault", "/tick", "/admin/deployments/stable/scale"];
    for i in 0..120 {
        let len = (next() % 300) as usize;
        let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 {
            // Pure garbage: any answer or none, but never a crash.
            let _ = send_and_close(&sim.addr, &noise);
        } else {
            // A well-formed request with a garbage body: a JSON 400.
            let path = paths[(next() % paths.len() as u64) as usize];
            let mut req =
                format!("POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", noise.len())
                    .into_bytes();
            req.extend_from_slice(&noise);
            let out = send_and_close(&sim.addr, &req);
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1.1 400 "), "{path}: {text}");
            assert!(text.contains("\"error\""), "{text}");
        }
    }
    let (status, _) = sim.call("GET", "/healthz", None);
    assert_eq!(status, 200, "still serving");
    let s = sim.state();
    assert_eq!(s["deployments"]["stable"]["weight"], json!(0.9));
    assert_eq!(s["replicas"].as_object().unwrap().len(), 4);
}

#[test]
fn a_stalled_client_does_not_block_others() {
    use std::io::Write;
    let sim = Sim::start(1, &[]);
    let mut stalled = std::net::TcpStream::connect(&sim.addr).expect("connect");
    stalled.write_all(b"GET /state HTTP/1.1\r\nHost: x\r\n").expect("partial head");
    let metrics_addr = sim.replica_addr("stable-0");
    let mut stalled_replica = std::net::TcpStream::connect(&metrics_addr).expect("connect");
    stalled_replica.write_all(b"GET /metr").expect("partial");
    // Both listeners keep serving while those connections hang.
    assert_eq!(sim.call("GET", "/healthz", None).0, 200);
    assert_eq!(request(&metrics_addr, "GET", "/metrics", None).status, 200);
    drop(stalled);
    drop(stalled_replica);
}

#[test]
fn targets_endpoint_feeds_opsg_scrape_and_prometheus_file_sd() {
    let sim = Sim::start(6, &[]);
    sim.tick(20.0);
    let (status, targets) = sim.call("GET", "/targets", None);
    assert_eq!(status, 200);
    opsg_core::schema::validate("targets.schema.json", &targets)
        .unwrap_or_else(|e| panic!("opsg targets file: {e}"));
    let list = targets["targets"].as_array().unwrap();
    assert_eq!(list.len(), 8);
    let canary = list.iter().find(|t| t["name"] == json!("canary-0")).unwrap();
    assert_eq!(canary["labels"]["role"], json!("canary"));
    assert_eq!(canary["url"], sim.state()["replicas"]["canary-0"]["metrics_url"]);
    let (status, file_sd) = sim.call("GET", "/targets?format=file_sd", None);
    assert_eq!(status, 200);
    opsg_core::schema::validate("targets.schema.json", &file_sd)
        .unwrap_or_else(|e| panic!("file_sd: {e}"));
    assert_eq!(file_sd.as_array().unwrap().len(), 8);
    assert_eq!(sim.call("GET", "/targets?format=yaml", None).0, 400);

    // The real opsg-scrape reads it as is; a crashed replica is recorded as not up.
    sim.post("/chaos/replica_crash", json!({"target": "stable-1"}));
    let dir = support::tempdir("targets");
    let file = dir.join("fleet.json");
    std::fs::write(&file, targets.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsg-scrape"))
        .args(["--targets", file.to_str().unwrap()])
        .env_clear()
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run opsg-scrape");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let record: Value = serde_json::from_slice(&out.stdout).expect("one observation record");
    let status_of = |name: &str| {
        record["body"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == json!(name))
            .map(|t| t["status"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(status_of("stable-0"), json!("up"));
    assert_eq!(status_of("gpu-node-b/dcgm"), json!("up"));
    assert_ne!(status_of("stable-1"), json!("up"), "the crashed replica");
    let _ = std::fs::remove_dir_all(&dir);
}
