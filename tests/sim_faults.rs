//! Every `opsg-sim` fault shows up where an SRE would look (vLLM, DCGM, node_exporter metrics,
//! logs), and the remediation a good SRE would apply makes it go away: measured on the real
//! binary's HTTP endpoints, parsed with opsg-expo.

#[path = "sim_support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::{Sim, read_log, request, sum, tempdir, value, window_quantile};

const TTFT: &str = "vllm:time_to_first_token_seconds";

fn waiting(sim: &Sim, replica: &str) -> f64 {
    value(&sim.metrics(replica), "vllm:num_requests_waiting", &[]).unwrap()
}

fn kv(sim: &Sim, replica: &str) -> f64 {
    value(&sim.metrics(replica), "vllm:kv_cache_usage_perc", &[]).unwrap()
}

fn preemptions(sim: &Sim, replica: &str) -> f64 {
    value(&sim.metrics(replica), "vllm:num_preemptions_total", &[]).unwrap()
}

#[test]
fn kv_cache_saturation_is_relieved_by_shifting_traffic_away() {
    let sim = Sim::start(42, &[]);
    sim.tick(60.0);
    assert!(kv(&sim, "canary-0") < 0.3, "healthy canary KV: {}", kv(&sim, "canary-0"));
    let out = sim.post("/chaos/kv_cache_saturation", json!({"target": "canary", "intensity": 0.3}));
    assert_eq!(out["fault"]["fault"], json!("kv_cache_saturation"));
    let p0 = preemptions(&sim, "canary-0");
    sim.tick(120.0);
    let saturated_kv = kv(&sim, "canary-0");
    let p1 = preemptions(&sim, "canary-0");
    assert!(saturated_kv > 0.85, "KV saturated: {saturated_kv}");
    assert!(p1 - p0 >= 10.0, "preemption storm: {p0} -> {p1}");
    assert!(waiting(&sim, "canary-0") > 5.0, "queue builds up");
    assert!(kv(&sim, "stable-0") < 0.7, "stable unaffected");

    // Most of the canary's traffic to stable: the burst moves with it, and three stable
    // replicas absorb what one canary could not.
    sim.post("/admin/traffic", json!({"weights": {"stable": 0.9, "canary": 0.03}}));
    sim.tick(240.0);
    let p2 = preemptions(&sim, "canary-0");
    sim.tick(60.0);
    let relieved = preemptions(&sim, "canary-0") - p2;
    assert!(relieved * 4.0 < p1 - p0, "preemptions a minute: {relieved} vs {}", (p1 - p0) / 2.0);
    assert!(kv(&sim, "canary-0") < 0.85, "KV relieved: {}", kv(&sim, "canary-0"));
    assert_eq!(waiting(&sim, "canary-0"), 0.0);
    for r in ["stable-0", "stable-1", "stable-2"] {
        assert_eq!(waiting(&sim, r), 0.0, "stable absorbs the canary's share");
    }
}

#[test]
fn traffic_surge_backlog_is_relieved_by_scaling_up() {
    let sim = Sim::start(42, &[]);
    sim.tick(60.0);
    sim.post("/chaos/traffic_surge", json!({"intensity": 0.8}));
    sim.tick(60.0);
    let backlog: f64 = (0..3).map(|i| waiting(&sim, &format!("stable-{i}"))).sum();
    assert!(backlog > 100.0, "a surge queues requests: {backlog}");
    let surged = sim.metrics("stable-0");

    let out = sim.post("/admin/deployments/stable/scale", json!({"replicas": 8}));
    assert_eq!(out["replicas"].as_array().unwrap().len(), 8);
    sim.post("/admin/deployments/canary/scale", json!({"replicas": 2}));
    sim.tick(180.0);
    let before = sim.metrics("stable-5");
    sim.tick(30.0);
    let after = sim.metrics("stable-5");
    let backlog: f64 = (0..8).map(|i| waiting(&sim, &format!("stable-{i}"))).sum();
    assert_eq!(backlog, 0.0, "scaled-up fleet has no backlog");
    let p90 = window_quantile(&before, &after, "vllm:request_queue_time_seconds", 0.9);
    assert!(p90 < 1.0, "queue time p90 back to normal: {p90}");
    assert!(value(&surged, "vllm:num_requests_waiting", &[]).unwrap() > 0.0);
    // The surge is external demand: it stays listed until it ends.
    let (_, chaos) = sim.call("GET", "/chaos", None);
    assert_eq!(chaos["faults"][0]["fault"], json!("traffic_surge"));
}

#[test]
fn canary_regression_comes_with_a_config_version_and_rollback_fixes_it() {
    let sim = Sim::start(42, &[]);
    sim.tick(30.0);
    let out = sim.post("/chaos/canary_regression", json!({"intensity": 0.8}));
    assert_eq!(out["fault"]["target"], json!("canary"));
    assert_eq!(out["fault"]["bad_config_version"], json!(2));
    let s = sim.state();
    assert_eq!(s["deployments"]["canary"]["config_version"], json!(2));
    assert_eq!(s["deployments"]["canary"]["config"]["enforce_eager"], json!(true));
    assert_eq!(s["deployments"]["stable"]["config_version"], json!(1));
    // Service discovery labels each replica with the version it runs (how triage tells a
    // canary's config change from load).
    let (_, targets) = sim.call("GET", "/targets", None);
    let version = |name: &str| {
        targets["targets"].as_array().unwrap().iter().find(|t| t["name"] == json!(name)).unwrap()
            ["labels"]["config_version"]
            .clone()
    };
    assert_eq!((version("canary-0"), version("stable-0")), (json!("2"), json!("1")));
    let in_state =
        s["targets"].as_array().unwrap().iter().find(|t| t["replica"] == json!("canary-0"));
    assert_eq!(in_state.unwrap()["config_version"], json!("2"), "/state lists it too");

    let (c0, s0) = (sim.metrics("canary-0"), sim.metrics("stable-0"));
    sim.tick(60.0);
    let (c1, s1) = (sim.metrics("canary-0"), sim.metrics("stable-0"));
    let canary = window_quantile(&c0, &c1, TTFT, 0.5);
    let stable = window_quantile(&s0, &s1, TTFT, 0.5);
    assert!(canary > 5.0 * stable, "canary TTFT p50 {canary} vs stable {stable}");
    let canary_itl = window_quantile(&c0, &c1, "vllm:inter_token_latency_seconds", 0.5);
    let stable_itl = window_quantile(&s0, &s1, "vllm:inter_token_latency_seconds", 0.5);
    assert!(canary_itl > 1.5 * stable_itl, "ITL {canary_itl} vs {stable_itl}");

    let out = sim.post("/admin/deployments/canary/rollback", json!({"to_version": 1}));
    assert_eq!(out["config_version"], json!(1));
    let (_, chaos) = sim.call("GET", "/chaos", None);
    assert_eq!(chaos["faults"], json!([]), "the regression ends with its config version");
    let (c2, s2) = (sim.metrics("canary-0"), sim.metrics("stable-0"));
    sim.tick(60.0);
    let (c3, s3) = (sim.metrics("canary-0"), sim.metrics("stable-0"));
    let canary = window_quantile(&c2, &c3, TTFT, 0.5);
    let stable = window_quantile(&s2, &s3, TTFT, 0.5);
    assert!(canary < 2.0 * stable, "after rollback: canary {canary} vs stable {stable}");
}

#[test]
fn a_crashed_replica_refuses_connections_until_restarted_on_the_same_port() {
    let sim = Sim::start(7, &[]);
    sim.tick(20.0);
    let addr = sim.replica_addr("stable-1");
    let before = sim.metrics("stable-1");
    sim.post("/chaos/replica_crash", json!({"target": "stable-1"}));
    let err = std::net::TcpStream::connect(&addr).expect_err("a crashed replica's port is closed");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let s = sim.state();
    assert_eq!(s["replicas"]["stable-1"]["up"], json!(false));
    assert!(s["replicas"]["stable-1"]["down_reason"].as_str().unwrap().contains("crashed"));
    assert_eq!(s["replicas"]["stable-1"]["metrics_url"], json!(format!("http://{addr}/metrics")));
    assert!(s["router"]["failed_total"].as_u64().unwrap() > 0, "in-flight requests were lost");
    sim.tick(20.0);
    let shares = &sim.state()["router"]["traffic_shares"];
    assert_eq!(shares["stable"], json!(0.9), "the other stable replicas keep serving");

    let out = sim.post("/admin/replicas/stable-1/restart", json!({}));
    assert_eq!(out["up"], json!(true));
    assert_eq!(out["restarts"], json!(1));
    assert_eq!(out["metrics_url"], json!(format!("http://{addr}/metrics")));
    let after = sim.metrics("stable-1");
    assert_eq!(sum(&after, "vllm:request_success_total", &[]), 0.0, "counters reset");
    assert!(
        value(&after, "process_start_time_seconds", &[]).unwrap()
            > value(&before, "process_start_time_seconds", &[]).unwrap()
    );
    let (_, chaos) = sim.call("GET", "/chaos", None);
    assert_eq!(chaos["faults"], json!([]));
}

#[test]
fn gpu_fault_shows_in_dcgm_and_draining_the_node_moves_the_replica() {
    let sim = Sim::start(8, &[]);
    sim.tick(10.0);
    let s = sim.state();
    let node = s["replicas"]["stable-0"]["node"].as_str().unwrap().to_string();
    let gpu = s["replicas"]["stable-0"]["gpu"].to_string();
    sim.post("/chaos/gpu_fault", json!({"target": "stable-0", "intensity": 0.6}));
    sim.tick(60.0);
    let dcgm = sim.node_metrics(&node, "dcgm_url");
    let on_gpu = [("gpu", gpu.as_str()), ("pod", "stable-0")];
    assert_eq!(value(&dcgm, "DCGM_FI_DEV_XID_ERRORS", &on_gpu), Some(48.0));
    assert!(value(&dcgm, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", &on_gpu).unwrap() >= 1.0);
    assert!(value(&dcgm, "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", &on_gpu).unwrap() > 100.0);
    assert!(value(&dcgm, "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", &on_gpu).unwrap() >= 1.0);
    let healthy = value(&dcgm, "DCGM_FI_DEV_XID_ERRORS", &[("gpu", "7")]);
    assert_eq!(healthy, Some(0.0), "other GPUs are clean");
    let errors = value(
        &sim.metrics("stable-0"),
        "vllm:request_success_total",
        &[("finished_reason", "error")],
    );
    assert!(errors.unwrap() > 0.0, "requests fail on the faulty GPU");

    let out = sim.post(&format!("/admin/nodes/{node}/drain"), json!({}));
    assert_eq!(out["cordoned"], json!(true));
    let moved = &out["moved"];
    assert!(moved.as_array().unwrap().iter().any(|m| m["replica"] == json!("stable-0")), "{out}");
    let s = sim.state();
    assert_ne!(s["replicas"]["stable-0"]["node"], json!(node), "moved to a healthy node");
    assert_eq!(s["replicas"]["stable-0"]["up"], json!(true));
    sim.tick(60.0);
    let m = sim.metrics("stable-0");
    assert_eq!(value(&m, "vllm:request_success_total", &[("finished_reason", "error")]), Some(0.0));
    assert!(sum(&m, "vllm:request_success_total", &[]) > 0.0, "serving again");
    // The bad GPU keeps its XID (hardware stays broken) but hosts nobody now.
    let dcgm = sim.node_metrics(&node, "dcgm_url");
    assert_eq!(value(&dcgm, "DCGM_FI_DEV_XID_ERRORS", &[("gpu", gpu.as_str())]), Some(48.0));
    assert_eq!(value(&dcgm, "DCGM_FI_DEV_XID_ERRORS", &on_gpu), None, "no pod on it");
}

#[test]
fn a_gpu_that_fell_off_the_bus_cannot_restart_in_place() {
    let dir = tempdir("xid79");
    let sim = Sim::start(8, &["--log-dir", dir.to_str().unwrap()]);
    sim.tick(10.0);
    let node = sim.state()["replicas"]["canary-0"]["node"].as_str().unwrap().to_string();
    let addr = sim.replica_addr("canary-0");
    let dcgm = sim.node_metrics(&node, "dcgm_url");
    let expo = support::parse_valid(&dcgm);
    let bus = expo
        .samples()
        .find(|s| s.name == "DCGM_FI_DEV_XID_ERRORS" && s.label("pod") == Some("canary-0"))
        .and_then(|s| s.label("pci_bus_id").map(str::to_string))
        .expect("the canary's GPU");
    // DCGM's `00000000:3B:00.0` is the kernel's `0000:3b:00`.
    let kernel_bus = bus[4..].trim_end_matches(".0").to_lowercase();
    sim.post("/chaos/gpu_fault", json!({"target": "canary-0", "intensity": 1.0}));
    assert!(std::net::TcpStream::connect(&addr).is_err(), "Xid 79 kills the engine");
    let (status, err) = sim.call("POST", "/admin/replicas/canary-0/restart", Some(&json!({})));
    assert_eq!(status, 409, "{err}");
    assert!(err["error"].as_str().unwrap().contains("fallen off the bus"));
    let out = sim.post(&format!("/admin/nodes/{node}/drain"), json!({}));
    assert_eq!(out["pending"], json!([]));
    assert_eq!(sim.state()["replicas"]["canary-0"]["up"], json!(true));
    sim.tick(5.0);
    assert!(sim.metrics("canary-0").contains("vllm:kv_cache_usage_perc"));
    let kern = read_log(&dir.join(format!("{node}-kern.log")));
    let xid = format!("NVRM: Xid (PCI:{kernel_bus}): 79, GPU has fallen off the bus.");
    assert!(kern.contains(&xid), "`{xid}` in {kern}");
    let log = read_log(&dir.join("canary-0.log"));
    assert!(log.contains("EngineDeadError"), "{log}");
    assert!(log.contains("RuntimeError: No CUDA GPUs are available"), "failed restart logged");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Cordoning the node and restarting the one replica on the faulty GPU moves just that replica
/// to a healthy GPU elsewhere: its neighbours on the node keep serving (a drain would restart
/// them all), and a lost GPU no longer blocks the restart.
#[test]
fn cordon_then_restart_moves_one_replica_off_a_faulty_gpu() {
    let sim = Sim::start(8, &[]);
    sim.tick(10.0);
    let state = sim.state();
    let node = state["replicas"]["stable-0"]["node"].as_str().unwrap().to_string();
    let neighbours: Vec<String> = state["replicas"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, r)| *n != "stable-0" && r["node"] == json!(node))
        .map(|(n, _)| n.clone())
        .collect();
    assert!(!neighbours.is_empty(), "a neighbour to keep serving: {state}");
    let pids = |sim: &Sim| -> Vec<Value> {
        neighbours.iter().map(|n| sim.state()["replicas"][n]["pid"].clone()).collect()
    };
    let before = pids(&sim);
    sim.post("/chaos/gpu_fault", json!({"target": "stable-0", "intensity": 1.0}));
    assert_eq!(sim.state()["replicas"]["stable-0"]["up"], json!(false), "Xid 79");
    let out = sim.post(&format!("/admin/nodes/{node}/cordon"), json!({}));
    assert_eq!(out["cordoned"], json!(true), "{out}");
    let out = sim.post("/admin/replicas/stable-0/restart", json!({}));
    assert_eq!(out["up"], json!(true), "{out}");
    assert_ne!(out["node"], json!(node), "moved off the cordoned node: {out}");
    assert_eq!(pids(&sim), before, "its neighbours were not restarted");
    sim.tick(5.0);
    assert!(sim.metrics("stable-0").contains("vllm:kv_cache_usage_perc"));
    // Nothing is placed on a cordoned node until it is uncordoned.
    let out = sim.post("/admin/deployments/stable/scale", json!({"replicas": 4}));
    let added = out["replicas"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
    assert_ne!(sim.state()["replicas"][&added]["node"], json!(node));
    sim.post(&format!("/admin/nodes/{node}/uncordon"), json!({}));
    assert_eq!(sim.state()["nodes"][&node]["cordoned"], json!(false));
}

#[test]
fn memory_leak_grows_rss_until_oom_and_a_restart_fixes_it() {
    let dir = tempdir("leak");
    let sim = Sim::start(5, &["--log-dir", dir.to_str().unwrap()]);
    sim.tick(10.0);
    let node = sim.state()["replicas"]["canary-0"]["node"].as_str().unwrap().to_string();
    let rss =
        |sim: &Sim| value(&sim.metrics("canary-0"), "process_resident_memory_bytes", &[]).unwrap();
    let mem = |sim: &Sim| {
        value(&sim.node_metrics(&node, "node_exporter_url"), "node_memory_MemAvailable_bytes", &[])
            .unwrap()
    };
    let (rss0, mem0) = (rss(&sim), mem(&sim));
    sim.post("/chaos/memory_leak", json!({"target": "canary-0", "intensity": 1.0}));
    sim.tick(60.0);
    let grown = rss(&sim) - rss0;
    assert!(grown > 3.0e9, "RSS grows about 64 MiB/s: +{grown}");
    assert!(mem0 - mem(&sim) > 3.0e9, "the node's available memory falls with it");

    let out = sim.post("/admin/replicas/canary-0/restart", json!({}));
    assert_eq!(out["restarts"], json!(1));
    assert!((rss(&sim) - rss0).abs() < 1.0e8, "restart frees the leak");
    let (_, chaos) = sim.call("GET", "/chaos", None);
    assert_eq!(chaos["faults"], json!([]));

    // Left alone, a leak ends in an out-of-memory death.
    sim.post("/chaos/memory_leak", json!({"target": "canary-0", "intensity": 1.0}));
    sim.tick(400.0);
    let s = sim.state();
    assert_eq!(s["replicas"]["canary-0"]["up"], json!(false));
    assert!(s["replicas"]["canary-0"]["down_reason"].as_str().unwrap().contains("OOM"));
    // The kernel's OOM killer ends it: its own log just stops, the node's kernel log says why.
    let kern = read_log(&dir.join(format!("{node}-kern.log")));
    let pid = s["replicas"]["canary-0"]["pid"].as_u64().unwrap();
    assert!(
        kern.contains(&format!("Memory cgroup out of memory: Killed process {pid} (python3)")),
        "{kern}"
    );
    let log = read_log(&dir.join("canary-0.log"));
    assert!(!log.contains("Traceback"), "a SIGKILLed process leaves no traceback: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_that_leaves_no_gpu_memory_crash_loops_until_rolled_back() {
    let dir = tempdir("cudaoom");
    let sim = Sim::start(5, &["--log-dir", dir.to_str().unwrap()]);
    sim.tick(10.0);
    let addr = sim.replica_addr("canary-0");
    let out = sim.post("/admin/deployments/canary/config", json!({"gpu_memory_utilization": 0.98}));
    assert_eq!(out["config_version"], json!(2));
    let s = sim.state();
    assert_eq!(s["replicas"]["canary-0"]["up"], json!(false));
    assert!(std::net::TcpStream::connect(&addr).is_err(), "nothing listens");
    assert_eq!(s["router"]["traffic_shares"]["stable"], json!(1.0), "the router skips it");
    let log = read_log(&dir.join("canary-0.log"));
    assert!(log.contains("torch.OutOfMemoryError: CUDA out of memory"), "{log}");
    assert!(log.contains("EngineCore failed to start"), "{log}");
    let (status, _) = sim.call("POST", "/admin/replicas/canary-0/restart", None);
    assert_eq!(status, 409, "a restart on the same config fails again");

    sim.post("/admin/deployments/canary/rollback", json!({"to_version": 1}));
    let s = sim.state();
    assert_eq!(s["replicas"]["canary-0"]["up"], json!(true));
    assert_eq!(s["router"]["traffic_shares"]["canary"], json!(0.1));
    assert_eq!(request(&addr, "GET", "/metrics", None).status, 200, "back on its port");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn network_latency_slows_one_replica_until_it_moves_off_the_node() {
    let sim = Sim::start(6, &[]);
    sim.tick(20.0);
    let node = sim.state()["replicas"]["stable-2"]["node"].as_str().unwrap().to_string();
    // Intensity 0.25: /metrics answers 0.5 s late, steps +20 ms.
    sim.post("/chaos/network_latency", json!({"target": "stable-2", "intensity": 0.3}));
    let (a0, b0) = (sim.metrics("stable-2"), sim.metrics("stable-0"));
    sim.tick(60.0);
    let (a1, b1) = (sim.metrics("stable-2"), sim.metrics("stable-0"));
    let slow = window_quantile(&a0, &a1, "vllm:inter_token_latency_seconds", 0.5);
    let fast = window_quantile(&b0, &b1, "vllm:inter_token_latency_seconds", 0.5);
    assert!(slow > 1.5 * fast, "ITL on the bad link {slow} vs {fast}");

    let out = sim.post(&format!("/admin/nodes/{node}/drain"), json!({}));
    assert!(out["moved"].as_array().unwrap().iter().any(|m| m["replica"] == json!("stable-2")));
    let (_, chaos) = sim.call("GET", "/chaos", None);
    assert_eq!(chaos["faults"], json!([]), "the fault stays with the link, not the replica");
    let (a2, b2) = (sim.metrics("stable-2"), sim.metrics("stable-0"));
    sim.tick(60.0);
    let (a3, b3) = (sim.metrics("stable-2"), sim.metrics("stable-0"));
    let slow = window_quantile(&a2, &a3, "vllm:inter_token_latency_seconds", 0.5);
    let fast = window_quantile(&b2, &b3, "vllm:inter_token_latency_seconds", 0.5);
    assert!(slow < 1.3 * fast, "after the move: {slow} vs {fast}");
}

#[test]
fn disk_pressure_fills_the_root_filesystem_until_cleanup() {
    let dir = tempdir("disk");
    let sim = Sim::start(4, &["--log-dir", dir.to_str().unwrap()]);
    let node = "gpu-node-a";
    let fs = |sim: &Sim, name: &str| {
        value(&sim.node_metrics(node, "node_exporter_url"), name, &[("mountpoint", "/")]).unwrap()
    };
    let size = fs(&sim, "node_filesystem_size_bytes");
    assert!(fs(&sim, "node_filesystem_avail_bytes") > 0.5 * size);
    sim.post("/chaos/disk_pressure", json!({"target": node, "intensity": 1.0}));
    sim.tick(90.0);
    let avail = fs(&sim, "node_filesystem_avail_bytes");
    assert!(avail < 0.01 * size, "disk full: {avail} of {size}");
    let victim = sim.state()["nodes"][node]["replicas"][0].as_str().unwrap().to_string();
    let (status, err) = sim.call("POST", &format!("/admin/replicas/{victim}/restart"), None);
    assert_eq!(status, 409, "a replica cannot start on a full disk: {err}");
    assert!(read_log(&dir.join(format!("{victim}.log"))).contains("No space left on device"));

    let out = sim.post(&format!("/admin/nodes/{node}/cleanup"), json!({}));
    assert!(out["freed_bytes"].as_f64().unwrap() > 0.3 * size);
    assert!(fs(&sim, "node_filesystem_avail_bytes") > 0.5 * size);
    let (_, chaos) = sim.call("GET", "/chaos", None);
    assert_eq!(chaos["faults"], json!([]));
    let out = sim.post(&format!("/admin/replicas/{victim}/restart"), json!({}));
    assert_eq!(out["up"], json!(true));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delete_chaos_undoes_a_fault_for_the_next_test() {
    let sim = Sim::start(3, &[]);
    sim.post("/chaos/replica_crash", json!({"target": "stable-0"}));
    sim.post("/chaos/canary_regression", json!({}));
    let (status, out) = sim.call("DELETE", "/chaos/replica_crash?target=stable-0", None);
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["cleared"][0]["target"], json!("stable-0"));
    let (status, _) = sim.call("DELETE", "/chaos/canary_regression", None);
    assert_eq!(status, 200);
    let s = sim.state();
    assert_eq!(s["replicas"]["stable-0"]["up"], json!(true));
    assert_eq!(s["deployments"]["canary"]["config_version"], json!(1));
    assert_eq!(s["faults"], json!([]));
    assert_eq!(request(&sim.replica_addr("stable-0"), "GET", "/metrics", None).status, 200);
}

#[test]
fn a_transient_fault_ends_by_itself_after_its_duration() {
    let sim = Sim::start(9, &[]);
    let addr = sim.replica_addr("stable-2");
    let out = sim.post("/chaos/replica_crash", json!({"target": "stable-2", "duration_s": 15}));
    assert_eq!(out["fault"]["ends_at"], json!(1_767_225_615.0));
    sim.tick(10.0);
    assert!(std::net::TcpStream::connect(&addr).is_err(), "still down at t=10");
    sim.tick(5.0);
    assert_eq!(request(&addr, "GET", "/metrics", None).status, 200, "back at t=15 on its port");
    let s = sim.state();
    assert_eq!(s["faults"], json!([]));
    assert_eq!(s["replicas"]["stable-2"]["restarts"], json!(1));
    let log: Vec<&str> =
        s["admin_log"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(log, ["/chaos/replica_crash"], "expiry is not an admin call");
}
