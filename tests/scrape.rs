//! End-to-end tests of `opsg-scrape`: the real binary against small std::net servers that behave
//! (and misbehave) like vLLM replicas, and against recorded captures.

#[path = "scrape_support/mod.rs"]
mod support;

use opsg_core::float::Float;
use opsg_core::kinds::observation::{MetricType, TargetStatus};
use std::sync::Arc;
use support::{Reply, Server, fixture, record, refused_url, run, target, tempdir};

/// A vLLM V1 (0.11-style) page: gauges, a counter, a histogram, a `_created` gauge and Python GC
/// noise, with values that depend on `n`.
fn vllm_v1(n: u64, kv: f64) -> Vec<u8> {
    format!(
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
# TYPE vllm:num_requests_waiting gauge\n\
vllm:num_requests_waiting{{engine=\"0\",model_name=\"llama\"}} {w}.0\n\
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
# TYPE vllm:kv_cache_usage_perc gauge\n\
vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"llama\"}} {kv}\n\
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n\
# TYPE vllm:prompt_tokens_total counter\n\
vllm:prompt_tokens_total{{engine=\"0\",model_name=\"llama\"}} {p}.0\n\
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.\n\
# TYPE vllm:prompt_tokens_created gauge\n\
vllm:prompt_tokens_created{{engine=\"0\",model_name=\"llama\"}} 1.7636e+09\n\
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.\n\
# TYPE vllm:time_to_first_token_seconds histogram\n\
vllm:time_to_first_token_seconds_sum{{engine=\"0\",model_name=\"llama\"}} {s}\n\
vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"0.1\",model_name=\"llama\"}} {b1}.0\n\
vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"1.0\",model_name=\"llama\"}} {b2}.0\n\
vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"+Inf\",model_name=\"llama\"}} {b3}.0\n\
vllm:time_to_first_token_seconds_count{{engine=\"0\",model_name=\"llama\"}} {b3}.0\n\
# HELP python_gc_objects_collected_total Objects collected during gc\n\
# TYPE python_gc_objects_collected_total counter\n\
python_gc_objects_collected_total{{generation=\"0\"}} 1234.0\n",
        w = n,
        kv = kv,
        p = 100 * n,
        s = 0.5 * n as f64,
        b1 = n,
        b2 = 2 * n,
        b3 = 3 * n,
    )
    .into_bytes()
}

#[test]
fn scrapes_a_replica_with_gzip_labels_and_evidence() {
    let page = vllm_v1(2, 0.75);
    let server = Server::start(vec![(
        "/metrics",
        Reply::Fixed {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/plain; version=0.0.4; charset=utf-8".into()),
                ("Content-Encoding".into(), "gzip".into()),
            ],
            body: support::gzip_stored(&page),
        },
    )]);
    let dir = tempdir("evidence");
    let targets = dir.join("fleet.json");
    std::fs::write(
        &targets,
        format!(
            r#"{{"targets":[{{"name":"canary-0","url":"{}","labels":{{"deployment":"llama","role":"canary","route":"chat","node":"n1"}}}}]}}"#,
            server.url("/metrics")
        ),
    )
    .unwrap();
    let evidence = dir.join("evidence");
    let out = run(
        &[
            "--targets",
            targets.to_str().unwrap(),
            "--evidence-dir",
            evidence.to_str().unwrap(),
            "--run-id",
            "run-test-1",
        ],
        None,
    );
    let (rec, body) = record(&out);
    assert_eq!(rec.envelope.run, "run-test-1");
    assert!(!rec.envelope.replay);
    let t = target(&body, "canary-0");
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    assert_eq!(t.labels["role"], "canary");
    assert_eq!(t.labels["node"], "n1");
    assert_eq!(t.samples.len(), 1);
    assert!(!t.samples[0].stale);

    let kv = t.series.iter().find(|s| s.name == "vllm:kv_cache_usage_perc").expect("kv series");
    assert_eq!(kv.metric_type, MetricType::Gauge);
    assert_eq!(kv.labels["model_name"], "llama");
    assert_eq!(kv.points[0].v, Some(Float(0.75)));
    let ttft =
        t.series.iter().find(|s| s.name == "vllm:time_to_first_token_seconds").expect("ttft");
    assert_eq!(ttft.metric_type, MetricType::Histogram);
    assert_eq!(ttft.le, vec![Float(0.1), Float(1.0), Float(f64::INFINITY)]);
    assert_eq!(ttft.points[0].buckets, vec![Float(2.0), Float(4.0), Float(6.0)]);
    assert_eq!(ttft.points[0].count, Some(Float(6.0)));
    assert_eq!(ttft.points[0].sum, Some(Float(1.0)));
    assert!(!ttft.labels.contains_key("le"));
    assert!(t.series.iter().all(|s| !s.name.starts_with("python_")), "GC noise is dropped");
    assert!(t.series.iter().all(|s| !s.name.ends_with("_created")), "_created is dropped");

    // The raw (decompressed) payload is stored content-addressed and referenced twice.
    let hash = t.samples[0].evidence.expect("sample evidence");
    let stored =
        std::fs::read(evidence.join("sha256").join(hash.as_str())).expect("stored payload");
    assert_eq!(stored, page);
    let env = rec.envelope.evidence.iter().find(|e| e.sha256 == hash).expect("envelope evidence");
    assert_eq!(env.bytes, page.len() as u64);
    assert_eq!(env.about.as_deref(), Some("canary-0"));
    assert!(env.media_type.starts_with("text/plain"), "{}", env.media_type);
}

#[test]
fn one_target_of_ten_down_is_data_not_failure() {
    let server = Server::start(vec![("/metrics", Reply::text(vllm_v1(1, 0.5)))]);
    let mut args: Vec<String> = Vec::new();
    for _ in 0..9 {
        args.push("--target".into());
        args.push(server.url("/metrics"));
    }
    let down = refused_url();
    args.extend([
        "--target".into(),
        down.clone(),
        "--retries".into(),
        "1".into(),
        "--backoff".into(),
        "10ms".into(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&argv, None);
    let (_, body) = record(&out);
    assert_eq!(body.targets.len(), 10);
    let up = body.targets.iter().filter(|t| t.status == TargetStatus::Up).count();
    assert_eq!(up, 9);
    let d = body.targets.iter().find(|t| t.source == down).expect("down target");
    assert_eq!(d.status, TargetStatus::Down);
    let reason = d.reason.as_deref().unwrap_or("");
    assert!(reason.contains("connection refused") && reason.contains("2 attempts"), "{reason}");
    assert!(d.series.is_empty());
    // Same URL nine times: names are made unique.
    let mut names: Vec<&str> = body.targets.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 10);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is down: connection refused"), "{stderr}");
}

#[test]
fn several_samples_make_a_window() {
    let server = Server::start(vec![(
        "/metrics",
        Reply::Counting(Arc::new(|n| vllm_v1(n, 0.1 * n as f64))),
    )]);
    let url = server.url("/metrics");
    let out = run(&["--target", &url, "--samples", "3", "--interval", "100ms"], None);
    let (_, body) = record(&out);
    assert_eq!(body.interval_s, 0.1);
    let t = &body.targets[0];
    assert_eq!(t.samples.len(), 3);
    assert!(body.window.start < body.window.end, "{:?}", body.window);
    let waiting = t.series.iter().find(|s| s.name == "vllm:num_requests_waiting").unwrap();
    let values: Vec<f64> = waiting.points.iter().map(|p| p.v.unwrap().0).collect();
    assert_eq!(values, [1.0, 2.0, 3.0]);
    let times: Vec<i64> = waiting.points.iter().map(|p| p.t).collect();
    assert!(times[0] < times[1] && times[1] < times[2], "{times:?}");
    let counter = t.series.iter().find(|s| s.name == "vllm:prompt_tokens_total").unwrap();
    assert_eq!(counter.metric_type, MetricType::Counter);
    assert_eq!(counter.points.len(), 3);
    assert_eq!(server.hits("/metrics"), 3);
}

/// Scrape one misbehaving route (with short bounds) and return its observation.
fn scrape_bad(
    reply: Reply,
    extra: &[&str],
) -> (opsg_core::kinds::observation::TargetObservation, Server) {
    // A generous bound for well-behaved routes (a loaded CI machine is slow); the hang test gets
    // a short one.
    let timeout = if matches!(reply, Reply::Hang) { "1500ms" } else { "20s" };
    let server = Server::start(vec![("/metrics", reply)]);
    let url = server.url("/metrics");
    let mut args = vec![
        "--target",
        url.as_str(),
        "--timeout",
        timeout,
        "--retries",
        "0",
        "--max-bytes",
        "1MiB",
    ];
    args.extend_from_slice(extra);
    let out = run(&args, None);
    let (_, body) = record(&out);
    assert_eq!(body.targets.len(), 1);
    (body.targets[0].clone(), server)
}

/// The target is recorded with `status` and a reason containing `needle`, and nothing from the
/// refused payload is kept.
fn assert_refused(
    t: &opsg_core::kinds::observation::TargetObservation,
    status: TargetStatus,
    needle: &str,
) {
    let reason = t.reason.clone().unwrap_or_default();
    assert_eq!(t.status, status, "{reason}");
    assert!(reason.contains(needle), "`{reason}` lacks `{needle}`");
    assert_eq!(t.samples[0].status, status);
    assert!(t.series.is_empty(), "nothing kept from a refused payload: {:?}", t.series);
}

#[test]
fn bad_input_invalid_exposition_line() {
    let (t, _s) = scrape_bad(Reply::text("# TYPE a gauge\na 1\na{x=\"1\" 3\n"), &[]);
    assert_refused(&t, TargetStatus::Error, "line 3");
}

#[test]
fn bad_input_a_1_gib_payload_is_stopped_by_the_cap() {
    let (t, server) = scrape_bad(Reply::Endless { len: 1 << 30 }, &[]);
    assert_refused(&t, TargetStatus::Error, "1048576-byte cap");
    // The cap stopped the stream long before its end (socket buffers hold a few MiB at most).
    let streamed = server.streamed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(streamed < 64 << 20, "server wrote {streamed} bytes");
}

#[test]
fn bad_input_a_target_that_accepts_and_never_answers() {
    let (t, _s) = scrape_bad(Reply::Hang, &[]);
    assert_refused(&t, TargetStatus::Timeout, "no complete answer within 1500 ms");
}

#[test]
fn bad_input_connection_refused() {
    let url = refused_url();
    let out = run(&["--target", &url, "--retries", "0"], None);
    let (_, body) = record(&out);
    assert_refused(&body.targets[0], TargetStatus::Down, "connection refused");
}

#[test]
fn bad_input_http_500() {
    let reply = Reply::Fixed { status: 500, headers: vec![], body: b"engine dead\n".to_vec() };
    let (t, _s) = scrape_bad(reply, &[]);
    assert_refused(&t, TargetStatus::Error, "HTTP 500: engine dead");
}

#[test]
fn bad_input_redirect_loop() {
    let (t, server) = scrape_bad(Reply::Redirect { to: "/metrics".into() }, &[]);
    assert_refused(&t, TargetStatus::Error, "redirect loop: more than 5 redirects");
    assert_eq!(server.hits("/metrics"), 6, "the first request and five redirects");
}

#[test]
fn bad_input_non_utf8_bytes() {
    let (t, _s) = scrape_bad(
        Reply::text(b"# TYPE a gauge\na{x=\"\xff\xfe\"} 1\n".to_vec()),
        &["--keep", "*"],
    );
    assert_refused(&t, TargetStatus::Error, "invalid UTF-8 at line 2:");
}

#[test]
fn bad_input_duplicate_series() {
    let text = "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\"} 1\nvllm:num_requests_running{engine=\"0\"} 2\n";
    let (t, _s) = scrape_bad(Reply::text(text), &[]);
    assert_refused(&t, TargetStatus::Error, "duplicate_series");
    assert!(t.reason.as_deref().unwrap_or("").contains("line 3"), "{:?}", t.reason);
}

#[test]
fn bad_input_histogram_with_non_monotonic_buckets() {
    let text = "# TYPE vllm:e2e_request_latency_seconds histogram\n\
vllm:e2e_request_latency_seconds_bucket{le=\"0.5\"} 9\n\
vllm:e2e_request_latency_seconds_bucket{le=\"1\"} 7\n\
vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\"} 9\n\
vllm:e2e_request_latency_seconds_count 9\n\
vllm:e2e_request_latency_seconds_sum 3\n";
    let (t, _s) = scrape_bad(Reply::text(text), &[]);
    assert_refused(&t, TargetStatus::Error, "not cumulative");
}

#[test]
fn replaying_a_capture_is_deterministic_and_stale() {
    let path = fixture("node_exporter_e2e-output.txt");
    let args = [
        "--file",
        path.to_str().unwrap(),
        "--now",
        "2026-11-22T06:00:00Z",
        "--run-id",
        "run-replay",
    ];
    let a = run(&args, None);
    let b = run(&args, None);
    assert_eq!(a.stdout, b.stdout, "same input and clock, same bytes");
    let (rec, body) = record(&a);
    assert!(rec.envelope.replay);
    assert_eq!(rec.envelope.created, "2026-11-22T06:00:00.000Z");
    let t = &body.targets[0];
    assert_eq!(t.name, "node_exporter_e2e-output.txt");
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    assert!(t.samples[0].stale, "a replayed capture is not current");
    assert_eq!(t.samples[0].duration_ms, 0.0);
    // node_exporter's fixture: MemAvailable_bytes is 1.4e+10... check against the capture itself.
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| l.starts_with("node_load1 ")).expect("node_load1 in capture");
    let want: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let s = t.series.iter().find(|s| s.name == "node_load1").expect("node_load1 kept");
    assert_eq!(s.points[0].v, Some(Float(want)));
    assert!(
        t.series.iter().all(|s| !s.name.starts_with("node_netstat_")),
        "not in the default selection"
    );
}

#[test]
fn stdin_capture_and_v0_names() {
    let text = "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.93\n\
# TYPE vllm:time_per_output_token_seconds histogram\n\
vllm:time_per_output_token_seconds_bucket{le=\"0.05\",model_name=\"m\"} 1.0\n\
vllm:time_per_output_token_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 4.0\n\
vllm:time_per_output_token_seconds_count{model_name=\"m\"} 4.0\n\
vllm:time_per_output_token_seconds_sum{model_name=\"m\"} 0.9\n";
    let out = run(&["--file", "-", "--now", "2026-11-22T06:00:00Z"], Some(text.as_bytes()));
    let (rec, body) = record(&out);
    assert!(rec.envelope.replay);
    let t = target(&body, "stdin");
    assert_eq!(t.source, "-");
    let kv = t.series.iter().find(|s| s.name == "vllm:kv_cache_usage_perc").expect("normalized");
    assert_eq!(kv.source_name.as_deref(), Some("vllm:gpu_cache_usage_perc"));
    assert_eq!(kv.points[0].v, Some(Float(0.93)));
    let itl =
        t.series.iter().find(|s| s.name == "vllm:inter_token_latency_seconds").expect("normalized");
    assert_eq!(itl.source_name.as_deref(), Some("vllm:time_per_output_token_seconds"));
    assert_eq!(itl.points[0].count, Some(Float(4.0)));
}

#[test]
fn stale_exposition_timestamps_are_marked() {
    // A sample timestamp an hour before the sample time.
    let server = Server::start(vec![(
        "/metrics",
        Reply::text(
            "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3 1700000000000\n",
        ),
    )]);
    let out = run(&["--target", &server.url("/metrics"), "--now", "2023-11-14T22:13:20Z"], None);
    let (_, body) = record(&out);
    assert!(!body.targets[0].samples[0].stale, "exactly at the sample time");
    let out = run(&["--target", &server.url("/metrics"), "--now", "2023-11-14T23:13:20Z"], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert!(t.samples[0].stale);
    assert_eq!(t.series[0].points[0].t, 1_700_000_000_000, "the exposition's own timestamp");
}

#[test]
fn prometheus_api_results_become_series() {
    let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"vllm:num_requests_waiting","instance":"r1"},"value":[1763791200,"7"]}]}}"#;
    let bad = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
    let server = Server::start(vec![
        (
            "/api/v1/query",
            Reply::Fixed { status: 200, headers: vec![], body: vector.as_bytes().to_vec() },
        ),
        (
            "/api/v1/query_range",
            Reply::Fixed { status: 400, headers: vec![], body: bad.as_bytes().to_vec() },
        ),
    ]);
    let base = format!("http://{}", server.addr);
    let out = run(&["--prometheus", &base, "--query", "vllm:num_requests_waiting"], None);
    let (_, body) = record(&out);
    assert!(body.targets.is_empty());
    let q = &body.queries[0];
    assert_eq!(q.status, "ok");
    assert_eq!(q.series[0].name, "vllm:num_requests_waiting");
    assert_eq!(q.series[0].labels["instance"], "r1");
    assert_eq!(q.series[0].points[0].t, 1_763_791_200_000);
    assert_eq!(q.series[0].points[0].v, Some(Float(7.0)));

    let out =
        run(&["--prometheus", &base, "--query", "rate(", "--range", "5m", "--retries", "0"], None);
    let (_, body) = record(&out);
    let q = &body.queries[0];
    assert_eq!(q.status, "error");
    assert_eq!(q.reason.as_deref(), Some("bad_data: 1:5: parse error: unexpected end of input"));
}

#[test]
fn bad_command_lines_exit_with_documented_codes() {
    let out = run(&[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to scrape"));

    let out = run(&["--query", "up"], None);
    assert_eq!(out.status.code(), Some(2));

    let out = run(&["--target", "localhost:9100"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an http:// or https:// URL"));

    let out = run(&["--file", "/nonexistent/capture.prom"], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty(), "nothing partial on stdout");

    let dir = tempdir("badtargets");
    let path = dir.join("t.json");
    std::fs::write(&path, "{\"targets\": [\n  {\"url\": \"http://h:1/metrics\",}\n]}").unwrap();
    let out = run(&["--targets", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:2:", path.display())), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    std::fs::write(&path, r#"{"targets":[{"url":"http://h:1/metrics","labels":{"role":"blue"}}]}"#)
        .unwrap();
    let out = run(&["--targets", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("targets[0].labels.role"));
}

#[test]
fn help_has_examples_and_exit_status() {
    let out = run(&["--help"], None);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:\n"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
    assert!(help.contains("--samples"), "{help}");
}

#[test]
fn signal_flags_reach_the_collectors_and_evidence() {
    let dir = tempdir("signals");
    let log = dir.join("vllm.log");
    std::fs::write(
        &log,
        "INFO 11-22 06:00:00 engine.py:1 started\n\
         ERROR 11-22 06:00:05 worker.py:9 torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
    )
    .unwrap();
    let proc_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/opsg-scrape/tests/fixtures/signals/proc");
    let evidence = dir.join("evidence");
    let out = run(
        &[
            "--host",
            "--proc-root",
            proc_root.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--evidence-dir",
            evidence.to_str().unwrap(),
            "--now",
            "2026-11-22T06:00:10Z",
        ],
        None,
    );
    let (rec, body) = record(&out);
    assert!(body.targets.is_empty());
    assert!(body.host.as_ref().is_some_and(|h| h.is_object()), "{:?}", body.host);
    assert_eq!(body.logs.len(), 1, "{:?}", body.logs);
    assert_eq!(body.logs[0]["counts"]["cuda_oom"], 1, "{}", body.logs[0]);
    // The log excerpt is evidence, referenced from the envelope and stored under its hash.
    let excerpt = rec.envelope.evidence.first().expect("log excerpt evidence");
    assert!(evidence.join("sha256").join(excerpt.sha256.as_str()).exists());
    assert_eq!(body.window.start, "2026-11-22T06:00:10.000Z");
}

#[test]
fn an_oversized_record_is_flagged_where_it_can_be_fixed() {
    let dir = tempdir("oversized");
    let path = dir.join("wide.prom");
    let mut text = String::from("# TYPE wide_metric gauge\n");
    for i in 0..160_000 {
        text.push_str(&format!("wide_metric{{replica=\"replica-{i:06}\"}} {i}\n"));
    }
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap();
    let out = run(&["--file", p, "--keep", "*", "--now", "2026-11-22T06:00:00Z"], None);
    assert!(out.status.success());
    assert!(out.stdout.len() > 8 << 20, "{} bytes", out.stdout.len());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("over the 8388608-byte record bound"), "{stderr}");
    // The default selection leaves the unknown family out: a small record, no warning.
    let out = run(&["--file", p, "--now", "2026-11-22T06:00:00Z"], None);
    let (_, body) = record(&out);
    assert!(body.targets[0].series.is_empty());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("record bound"));
}

#[test]
fn asks_for_openmetrics_first_and_reads_what_comes_back() {
    // An OpenMetrics answer: counter family without `_total`, a `_created` sample, `# EOF`.
    let om = "# TYPE vllm:num_preemptions counter\n\
# HELP vllm:num_preemptions Cumulative number of preemption from the engine.\n\
vllm:num_preemptions_total{engine=\"0\",model_name=\"m\"} 17.0\n\
vllm:num_preemptions_created{engine=\"0\",model_name=\"m\"} 1.7636e+09\n\
# TYPE vllm:num_requests_running gauge\n\
vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 4.0\n\
# EOF\n";
    let server = Server::start(vec![(
        "/metrics",
        Reply::Fixed {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
            )],
            body: om.as_bytes().to_vec(),
        },
    )]);
    let out = run(&["--target", &server.url("/metrics")], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    let accept = server.header("/metrics", "accept").expect("an Accept header");
    assert!(accept.starts_with("application/openmetrics-text;version=1.0.0"), "{accept}");
    // Regression guard: without `escaping=allow-utf-8`, prometheus_client (vLLM's exporter)
    // answers OpenMetrics whose sample names do not match their `# TYPE` lines.
    assert!(accept.contains("version=1.0.0;escaping=allow-utf-8"), "{accept}");
    let om_at = accept.find("openmetrics").unwrap();
    let text_at = accept.find("text/plain;version=0.0.4").expect("text 0.0.4 accepted too");
    assert!(om_at < text_at, "OpenMetrics preferred: {accept}");
    let encoding = server.header("/metrics", "accept-encoding").unwrap_or_default();
    assert!(encoding.contains("gzip"), "{encoding}");
    let pre = t.series.iter().find(|s| s.name == "vllm:num_preemptions_total").expect("counter");
    assert_eq!(pre.metric_type, MetricType::Counter);
    assert_eq!(pre.points[0].v, Some(Float(17.0)));
    assert_eq!(t.series.len(), 2, "no `_created` series: {:?}", t.series);
}

#[test]
fn transient_failures_are_retried_with_backoff() {
    let server = Server::start(vec![
        ("/flaky", Reply::FailFirst { failures: 2, then: Box::new(Reply::text(vllm_v1(1, 0.3))) }),
        (
            "/down-for-good",
            Reply::FailFirst { failures: 100, then: Box::new(Reply::text(vllm_v1(1, 0.3))) },
        ),
        ("/404", Reply::Fixed { status: 404, headers: vec![], body: b"no such page\n".to_vec() }),
    ]);
    let out = run(
        &[
            "--target",
            &server.url("/flaky"),
            "--target",
            &server.url("/down-for-good"),
            "--target",
            &server.url("/404"),
            "--retries",
            "2",
            "--backoff",
            "20ms",
        ],
        None,
    );
    let (_, body) = record(&out);
    let flaky = &body.targets[0];
    assert_eq!(flaky.status, TargetStatus::Up, "{:?}", flaky.reason);
    assert_eq!(server.hits("/flaky"), 3, "two 503s, then the answer");
    let down = &body.targets[1];
    assert_eq!(down.status, TargetStatus::Error);
    assert_eq!(down.reason.as_deref(), Some("HTTP 503: warming up (after 3 attempts)"));
    assert_eq!(server.hits("/down-for-good"), 3);
    // A 404 will not fix itself: no retry.
    assert_eq!(server.hits("/404"), 1);
    assert_eq!(body.targets[2].reason.as_deref(), Some("HTTP 404: no such page"));
}

#[test]
fn an_unwritable_evidence_dir_is_an_io_error() {
    let dir = tempdir("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let server = Server::start(vec![("/metrics", Reply::text(vllm_v1(1, 0.3)))]);
    let evidence = file.join("evidence");
    let out = run(
        &["--target", &server.url("/metrics"), "--evidence-dir", evidence.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing partial on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("opsg-scrape: error: "), "{stderr}");
}

#[test]
fn headers_and_bearer_token_reach_targets_and_prometheus_but_not_the_record() {
    let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let server = Server::start(vec![
        ("/metrics", Reply::text(vllm_v1(1, 0.3))),
        (
            "/api/v1/query",
            Reply::Fixed { status: 200, headers: vec![], body: vector.as_bytes().to_vec() },
        ),
    ]);
    let dir = tempdir("token");
    let token = dir.join("token");
    std::fs::write(&token, "s3cr3t-t0ken\n").unwrap();
    let base = format!("http://{}", server.addr);
    let out = run(
        &[
            "--target",
            &server.url("/metrics"),
            "--prometheus",
            &base,
            "--query",
            "up",
            "--header",
            "X-Scope-OrgID: fleet-a",
            "--bearer-token-file",
            token.to_str().unwrap(),
        ],
        None,
    );
    let (rec, body) = record(&out);
    assert_eq!(body.targets[0].status, TargetStatus::Up);
    assert_eq!(body.queries[0].status, "ok");
    for path in ["/metrics", "/api/v1/query"] {
        assert_eq!(
            server.header(path, "authorization").as_deref(),
            Some("Bearer s3cr3t-t0ken"),
            "{path}"
        );
        assert_eq!(server.header(path, "x-scope-orgid").as_deref(), Some("fleet-a"), "{path}");
    }
    let line = String::from_utf8_lossy(&rec.bytes);
    assert!(!line.contains("s3cr3t"), "the token never reaches the record");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cr3t"));

    let out = run(&["--target", &server.url("/metrics"), "--header", "no colon here"], None);
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(&token, "").unwrap();
    let out = run(
        &["--target", &server.url("/metrics"), "--bearer-token-file", token.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(token.to_str().unwrap()));
}

#[test]
fn the_cap_counts_decompressed_bytes() {
    // 2 MiB of valid exposition, gzip-encoded: the 1 MiB cap applies after decoding, so a small
    // compressed answer cannot smuggle a large payload in.
    let line = "# filler comment line to make the payload large enough\n";
    let mut page = vllm_v1(1, 0.2);
    while page.len() < 2 << 20 {
        page.extend_from_slice(line.as_bytes());
    }
    let gz = support::gzip_stored(&page);
    let server = Server::start(vec![(
        "/metrics",
        Reply::Fixed {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/plain; version=0.0.4".into()),
                ("Content-Encoding".into(), "gzip".into()),
            ],
            body: gz,
        },
    )]);
    let url = server.url("/metrics");
    let out = run(&["--target", &url, "--max-bytes", "1MiB"], None);
    let (_, body) = record(&out);
    assert_eq!(body.targets[0].status, TargetStatus::Error);
    assert!(body.targets[0].reason.as_deref().unwrap_or("").contains("1048576-byte cap"));
    let out = run(&["--target", &url, "--max-bytes", "4MiB"], None);
    let (_, body) = record(&out);
    assert_eq!(body.targets[0].status, TargetStatus::Up, "{:?}", body.targets[0].reason);
}

#[test]
fn a_prometheus_file_sd_file_is_a_targets_file() {
    let server = Server::start(vec![("/vllm/metrics", Reply::text(vllm_v1(3, 0.4)))]);
    let dir = tempdir("filesd");
    let sd = dir.join("sd.json");
    std::fs::write(
        &sd,
        format!(
            r#"[{{"targets":["{}"],"labels":{{"__metrics_path__":"/vllm/metrics","deployment":"llama","role":"stable","job":"vllm"}}}}]"#,
            server.addr
        ),
    )
    .unwrap();
    let out = run(&["--targets", sd.to_str().unwrap()], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert_eq!(t.name, server.addr.to_string());
    assert_eq!(t.source, server.url("/vllm/metrics"));
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    assert_eq!(t.labels.get("job").map(String::as_str), Some("vllm"));
    assert!(!t.labels.contains_key("__metrics_path__"));
    assert_eq!(server.hits("/vllm/metrics"), 1);
}
