//! What `opsg-sim` serves is real exposition: every payload parses strictly with opsg-expo and
//! passes its histogram/duplicate checks, carries vLLM's V1 names, labels and buckets, and is
//! byte-identical for the same seed and the same calls. Logs look like vLLM's.

#[path = "sim_support/mod.rs"]
mod support;

use opsg_expo::MetricKind;
use serde_json::json;
use support::{Sim, buckets, parse_valid, read_log, tempdir, value};

fn scenario(sim: &Sim) {
    sim.tick(30.0);
    sim.post("/chaos/kv_cache_saturation", json!({"target": "canary", "intensity": 0.7}));
    sim.post("/chaos/gpu_fault", json!({"target": "stable-1", "intensity": 0.5}));
    sim.tick(45.0);
    sim.post("/admin/traffic", json!({"weights": {"canary": 0.02}}));
    sim.post("/admin/deployments/stable/scale", json!({"replicas": 4}));
    sim.tick(25.5);
}

/// Every payload of a fleet, in a fixed order.
fn payloads(sim: &Sim) -> Vec<(String, String)> {
    let s = sim.state();
    let mut out = Vec::new();
    for name in s["replicas"].as_object().unwrap().keys() {
        out.push((name.clone(), sim.metrics(name)));
    }
    for node in s["nodes"].as_object().unwrap().keys() {
        out.push((format!("{node}/dcgm"), sim.node_metrics(node, "dcgm_url")));
        out.push((format!("{node}/node"), sim.node_metrics(node, "node_exporter_url")));
    }
    out
}

#[test]
fn same_seed_and_calls_give_identical_bytes_and_another_seed_differs() {
    let a = Sim::start(21, &[]);
    let b = Sim::start(21, &[]);
    let c = Sim::start(22, &[]);
    for sim in [&a, &b, &c] {
        scenario(sim);
    }
    let (pa, pb, pc) = (payloads(&a), payloads(&b), payloads(&c));
    assert_eq!(pa.len(), 9, "5 replicas + 2 nodes x 2 exporters");
    for ((name, x), (_, y)) in pa.iter().zip(&pb) {
        assert_eq!(x, y, "{name} differs between two runs of the same seed");
    }
    let differs = pa.iter().zip(&pc).filter(|((_, x), (_, y))| x != y).count();
    assert!(differs >= 5, "another seed gives other traffic ({differs} payloads differ)");
}

#[test]
fn vllm_payload_is_valid_v1_exposition_with_real_buckets() {
    let sim = Sim::start(1, &[]);
    sim.tick(60.0);
    let text = sim.metrics("stable-0");
    let expo = parse_valid(&text);
    let kind = |name: &str| expo.family(name).unwrap_or_else(|| panic!("no family {name}")).kind;
    for gauge in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "vllm:num_preemptions_created",
    ] {
        assert_eq!(kind(gauge), MetricKind::Gauge, "{gauge}");
    }
    for counter in [
        "vllm:num_preemptions",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:request_success",
        "vllm:prefix_cache_queries",
    ] {
        let family = expo.family(counter).or_else(|| expo.family(&format!("{counter}_total")));
        assert_eq!(family.map(|f| f.kind), Some(MetricKind::Counter), "{counter}");
    }
    for hist in [
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:iteration_tokens_total",
        "vllm:request_prompt_tokens",
    ] {
        assert_eq!(kind(hist), MetricKind::Histogram, "{hist}");
    }
    let le =
        |family: &str| -> Vec<f64> { buckets(&text, family).iter().map(|(le, _)| *le).collect() };
    assert_eq!(
        le("vllm:time_to_first_token_seconds"),
        vec![
            0.001,
            0.005,
            0.01,
            0.02,
            0.04,
            0.06,
            0.08,
            0.1,
            0.25,
            0.5,
            0.75,
            1.0,
            2.5,
            5.0,
            7.5,
            10.0,
            20.0,
            40.0,
            80.0,
            160.0,
            640.0,
            2560.0,
            f64::INFINITY
        ]
    );
    assert_eq!(
        le("vllm:e2e_request_latency_seconds"),
        vec![
            0.3,
            0.5,
            0.8,
            1.0,
            1.5,
            2.0,
            2.5,
            5.0,
            10.0,
            15.0,
            20.0,
            30.0,
            40.0,
            50.0,
            60.0,
            120.0,
            240.0,
            480.0,
            960.0,
            1920.0,
            7680.0,
            f64::INFINITY
        ]
    );
    assert_eq!(
        le("vllm:request_num_preemptions"),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, f64::INFINITY]
    );
    assert_eq!(
        le("vllm:request_prompt_tokens"),
        vec![
            1.0,
            2.0,
            5.0,
            10.0,
            20.0,
            50.0,
            100.0,
            200.0,
            500.0,
            1000.0,
            2000.0,
            5000.0,
            f64::INFINITY
        ]
    );
    // Labels as prometheus_client prints them (sorted), with the V1 engine label.
    assert!(text.contains(
        "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}"
    ));
    assert!(text.contains("le=\"0.001\""), "le printed as Python floats");
    for reason in ["stop", "length", "abort", "error", "repetition"] {
        assert!(
            value(&text, "vllm:request_success_total", &[("finished_reason", reason)]).is_some(),
            "{reason} is pre-created"
        );
    }
    // The load model produced plausible numbers: traffic, KV in use, fast TTFT when healthy.
    let finished =
        value(&text, "vllm:request_success_total", &[("finished_reason", "stop")]).unwrap();
    assert!(finished > 50.0, "{finished}");
    let kv = value(&text, "vllm:kv_cache_usage_perc", &[]).unwrap();
    assert!(kv > 0.0 && kv < 0.9, "{kv}");
    let ttft: Vec<(f64, f64)> = buckets(&text, "vllm:time_to_first_token_seconds");
    let p50 = opsg_expo::histogram_quantile(0.5, &ttft);
    assert!(p50 > 0.005 && p50 < 0.25, "healthy TTFT p50 {p50}");
    let count = value(&text, "vllm:time_to_first_token_seconds_count", &[]).unwrap();
    let prompt = value(&text, "vllm:prompt_tokens_total", &[]).unwrap();
    assert!(prompt > 16.0 * count, "every first token needed a prompt");
}

#[test]
fn counters_never_decrease_without_a_restart() {
    let sim = Sim::start(12, &[]);
    let mut last: Vec<f64> = Vec::new();
    for _ in 0..6 {
        sim.tick(17.0);
        let text = sim.metrics("stable-2");
        let expo = parse_valid(&text);
        let now: Vec<f64> = expo
            .families
            .iter()
            .filter(|f| matches!(f.kind, MetricKind::Counter | MetricKind::Histogram))
            .flat_map(|f| f.samples.iter().map(|s| s.value))
            .collect();
        if !last.is_empty() {
            assert_eq!(now.len(), last.len());
            for (i, (a, b)) in last.iter().zip(&now).enumerate() {
                assert!(b >= a, "sample {i} went from {a} to {b}");
            }
        }
        last = now;
    }
}

#[test]
fn dcgm_and_node_exporter_payloads_look_like_the_real_exporters() {
    let sim = Sim::start(1, &[]);
    sim.tick(20.0);
    let s = sim.state();
    let node = "gpu-node-a";
    let dcgm = sim.node_metrics(node, "dcgm_url");
    let expo = parse_valid(&dcgm);
    let xid = expo.family("DCGM_FI_DEV_XID_ERRORS").expect("XID family");
    assert_eq!(xid.kind, MetricKind::Gauge);
    assert_eq!(xid.samples.len(), 8, "one series per GPU");
    for sample in &xid.samples {
        for label in ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"] {
            assert!(sample.label(label).is_some(), "{label} missing");
        }
        assert_eq!(sample.label("Hostname"), Some(node));
        assert!(sample.label("UUID").unwrap().starts_with("GPU-"));
    }
    for counter in ["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"] {
        assert_eq!(expo.family(counter).map(|f| f.kind), Some(MetricKind::Counter), "{counter}");
    }
    // Pods are mapped to the GPUs that host them, and busy GPUs draw more power.
    let tenants: Vec<&str> = s["nodes"][node]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for tenant in &tenants {
        let power = value(&dcgm, "DCGM_FI_DEV_POWER_USAGE", &[("pod", tenant)]).expect("pod label");
        let idle = value(&dcgm, "DCGM_FI_DEV_POWER_USAGE", &[("gpu", "7")]).unwrap();
        assert!(power > idle, "{tenant}: {power} W vs idle {idle} W");
    }

    let node_text = sim.node_metrics(node, "node_exporter_url");
    let expo = parse_valid(&node_text);
    let avail = expo.family("node_filesystem_avail_bytes").expect("filesystem family");
    assert_eq!(avail.kind, MetricKind::Gauge);
    let root = avail.samples.iter().find(|s| s.label("mountpoint") == Some("/")).expect("/");
    assert_eq!(root.label("fstype"), Some("ext4"));
    let size = value(&node_text, "node_filesystem_size_bytes", &[("mountpoint", "/")]).unwrap();
    assert!(root.value > 0.0 && root.value < size);
    let mem = value(&node_text, "node_memory_MemAvailable_bytes", &[]).unwrap();
    let total = value(&node_text, "node_memory_MemTotal_bytes", &[]).unwrap();
    assert!(mem > 0.0 && mem < total);
    assert!(node_text.contains("node_memory_MemTotal_bytes 2.163688394752e+12"), "Go float format");
}

#[test]
fn replicas_write_vllm_like_logs() {
    let dir = tempdir("logs");
    let sim = Sim::start(2, &["--log-dir", dir.to_str().unwrap()]);
    sim.tick(35.0);
    sim.post("/chaos/replica_crash", json!({"target": "stable-0"}));
    sim.post("/chaos/network_latency", json!({"target": "stable-1", "intensity": 0.9}));
    sim.tick(31.0);
    let s = sim.state();
    let path = s["replicas"]["stable-0"]["log_path"].as_str().unwrap().to_string();
    let log = read_log(std::path::Path::new(&path));
    assert!(log.contains("vLLM API server version"), "start-up lines");
    assert!(log.contains("GPU KV cache size: 40,960 tokens"));
    let stats: Vec<&str> = log.lines().filter(|l| l.contains("Avg prompt throughput:")).collect();
    assert_eq!(stats.len(), 3, "a stats line every 10 s before the crash: {stats:?}");
    assert!(stats[0].starts_with("(APIServer pid="));
    assert!(stats[0].contains(" INFO 01-01 00:00:10 [loggers.py:"), "{}", stats[0]);
    assert!(stats[0].contains("tokens/s, Running: ") && stats[0].contains("GPU KV cache usage: "));
    assert!(log.contains("Traceback (most recent call last):"));
    assert!(log.contains("vllm.v1.engine.exceptions.EngineDeadError"));
    let nccl = read_log(&dir.join("stable-1.log"));
    assert!(nccl.contains("Watchdog caught collective operation timeout"), "NCCL timeout logged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replicas_negotiate_openmetrics_and_gzip_like_prometheus_client() {
    use support::raw_request;
    let sim = Sim::start(3, &[]);
    sim.tick(30.0);
    let addr = sim.replica_addr("stable-0");
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let raw = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n");
    let om = raw_request(&addr, raw.as_bytes());
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("Content-Type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om_text = String::from_utf8(om.body).unwrap();
    assert!(om_text.ends_with("# EOF\n"));
    let opts =
        opsg_expo::ParseOptions { format: opsg_expo::Format::OpenMetrics, ..Default::default() };
    let expo =
        opsg_expo::parse(om_text.as_bytes(), &opts).unwrap_or_else(|e| panic!("OpenMetrics: {e}"));
    assert!(opsg_expo::validate(&expo).is_empty());
    let family = expo.family("vllm:num_preemptions").expect("counter family without _total");
    assert_eq!(family.kind, MetricKind::Counter);
    let names: Vec<&str> = family.samples.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, vec!["vllm:num_preemptions_total", "vllm:num_preemptions_created"]);
    assert!(expo.family("vllm:num_preemptions_created").is_none(), "no separate gauge in OM");

    // The same numbers as the text format (the clock did not move in between).
    let text = sim.metrics("stable-0");
    for name in [
        "vllm:generation_tokens_total",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_sum",
    ] {
        let om_value = expo.samples().find(|s| s.name == name).map(|s| s.value);
        assert_eq!(om_value, value(&text, name, &[]), "{name}");
    }

    // gzip when accepted: a gzip member that an independent client (ureq) decodes to the same bytes.
    let raw = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n";
    let gz = raw_request(&addr, raw.as_bytes());
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    assert_eq!(&gz.body[..2], &[0x1f, 0x8b]);
    let url = format!("http://{addr}/metrics");
    let decoded = ureq::get(&url)
        .header("Accept-Encoding", "gzip")
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert_eq!(decoded, text);
    // dcgm-exporter does not compress.
    let dcgm = sim.state()["nodes"]["gpu-node-a"]["dcgm_url"].as_str().unwrap().to_string();
    let plain = raw_request(&support::url_addr(&dcgm), raw.as_bytes());
    assert_eq!(plain.header("Content-Encoding"), None);
}
