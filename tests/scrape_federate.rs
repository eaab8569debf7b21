//! `--federate` against a std::net server that answers like Prometheus' `/federate` (every family
//! `untyped`, `instance` and `job` on every series), with and without a metadata API.

#[path = "scrape_support/mod.rs"]
mod support;

use opsg_core::kinds::observation::{MetricType, TargetStatus};
use support::{Reply, Server, record, refused_url, run};

const PAGE: &str = "# TYPE up untyped
up{instance=\"r0:8000\",job=\"vllm\"} 1 1763791200000
up{instance=\"r1:8000\",job=\"vllm\"} 0 1763791200000
# TYPE vllm:num_requests_waiting untyped
vllm:num_requests_waiting{instance=\"r0:8000\",job=\"vllm\",model_name=\"m\",role=\"canary\"} 9 1763791200000
# TYPE vllm:num_preemptions_total untyped
vllm:num_preemptions_total{instance=\"r0:8000\",job=\"vllm\",model_name=\"m\"} 4 1763791200000
";

const META: &str = r#"{"status":"success","data":{"vllm:num_requests_waiting":[{"type":"gauge","help":"","unit":""}]}}"#;

fn serve(metadata: bool) -> Server {
    let mut routes = vec![("/federate", Reply::text(PAGE))];
    if metadata {
        routes.push((
            "/api/v1/metadata",
            Reply::Fixed { status: 200, headers: vec![], body: META.as_bytes().to_vec() },
        ));
    }
    Server::start(routes)
}

#[test]
fn a_federation_answer_becomes_one_target_per_instance() {
    let server = serve(true);
    let base = format!("http://{}", server.addr);
    let out = run(
        &[
            "--federate",
            &base,
            "--match",
            "{job=\"vllm\"}",
            "--match",
            "up",
            "--header",
            "X-Scope-OrgID: fleet",
            "--now",
            "2025-11-22T06:00:30Z",
        ],
        None,
    );
    let (_, body) = record(&out);
    assert_eq!(body.targets.len(), 2);
    let r0 = &body.targets[0];
    assert_eq!((r0.name.as_str(), r0.status), ("r0:8000", TargetStatus::Up));
    assert_eq!(r0.labels["job"], "vllm");
    assert_eq!(r0.labels["role"], "canary", "target labels come from the series");
    let waiting = r0.series.iter().find(|s| s.name == "vllm:num_requests_waiting").unwrap();
    assert_eq!(waiting.metric_type, MetricType::Gauge, "from the metadata");
    assert!(!waiting.labels.contains_key("instance") && !waiting.labels.contains_key("job"));
    assert_eq!(waiting.points[0].t, 1_763_791_200_000, "Prometheus' own sample time");
    let pre = r0.series.iter().find(|s| s.name == "vllm:num_preemptions_total").unwrap();
    assert_eq!(pre.metric_type, MetricType::Counter, "from the name");
    let r1 = &body.targets[1];
    assert_eq!(r1.status, TargetStatus::Down, "Prometheus reports up=0 for it");
    assert!(r1.reason.as_deref().unwrap().contains("up=0"));
    // Both selectors were sent as match[], with the run's headers, to both endpoints.
    assert_eq!(server.header("/federate", "x-scope-orgid").as_deref(), Some("fleet"));
    assert_eq!(server.header("/api/v1/metadata", "x-scope-orgid").as_deref(), Some("fleet"));
    assert_eq!(body.queries[0].query, "/federate?match[]={job=\"vllm\"}&match[]=up");
    assert_eq!(body.queries[0].status, "ok");
}

#[test]
fn no_metadata_api_means_guessed_types_not_failure() {
    let server = serve(false);
    let base = format!("http://{}", server.addr);
    let out = run(&["--federate", &base, "--match", "up"], None);
    let (_, body) = record(&out);
    let call = &body.queries[0];
    assert_eq!(call.status, "ok");
    let reason = call.reason.as_deref().unwrap();
    assert!(reason.contains("types guessed") && reason.contains("HTTP 404"), "{reason}");
    let r0 = &body.targets[0];
    let waiting = r0.series.iter().find(|s| s.name == "vllm:num_requests_waiting").unwrap();
    assert_eq!(waiting.metric_type, MetricType::Untyped, "nothing says it is a gauge");
    assert_eq!(server.hits("/api/v1/metadata"), 1, "one lookup per run, not per round");
}

#[test]
fn an_unreachable_prometheus_is_recorded_and_bad_arguments_are_usage_errors() {
    let url = refused_url();
    let base = url.trim_end_matches("/metrics");
    let out = run(&["--federate", base, "--match", "up", "--retries", "0"], None);
    let (_, body) = record(&out);
    assert!(body.targets.is_empty());
    assert_eq!(body.queries[0].status, "error");
    assert!(body.queries[0].reason.as_deref().unwrap().contains("refused"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/federate"), "warned");

    let out = run(&["--federate", base], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--match"));
    let out = run(&["--match", "up"], None);
    assert_eq!(out.status.code(), Some(2), "--match needs --federate");
    let out = run(&["--federate", "prometheus:9090", "--match", "up"], None);
    assert_eq!(out.status.code(), Some(2));
}

/// `--prometheus --query`: a bare selector's series get their types from `/api/v1/metadata`
/// (query answers carry none); a computed query's do not, and asks nothing more.
#[test]
fn query_results_of_bare_selectors_are_typed_from_the_metadata() {
    let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"vllm:num_requests_waiting","instance":"r0:8000","job":"vllm"},"value":[1763791200,"9"]},
        {"metric":{"__name__":"vllm:num_preemptions_total","instance":"r0:8000","job":"vllm"},"value":[1763791200,"4"]}]}}"#;
    let meta = r#"{"status":"success","data":{
        "vllm:num_requests_waiting":[{"type":"gauge","help":"","unit":""}],
        "vllm:num_preemptions_total":[{"type":"counter","help":"","unit":""}]}}"#;
    let json = |body: &str| Reply::Fixed {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    };
    let server =
        Server::start(vec![("/api/v1/query", json(vector)), ("/api/v1/metadata", json(meta))]);
    let base = format!("http://{}", server.addr);
    let out = run(&["--prometheus", &base, "--query", "{job=\"vllm\"}", "--as-targets"], None);
    let (_, body) = record(&out);
    let q = &body.queries[0];
    assert_eq!(q.status, "ok");
    let types: Vec<(&str, MetricType)> =
        q.series.iter().map(|s| (s.name.as_str(), s.metric_type)).collect();
    assert_eq!(
        types,
        [
            ("vllm:num_requests_waiting", MetricType::Gauge),
            ("vllm:num_preemptions_total", MetricType::Counter)
        ]
    );
    // --as-targets keeps the metadata's types.
    let waiting =
        body.targets[0].series.iter().find(|s| s.name == "vllm:num_requests_waiting").unwrap();
    assert_eq!(waiting.metric_type, MetricType::Gauge);
    assert_eq!(server.hits("/api/v1/metadata"), 1);

    // A computed query: no lookup, no type.
    let out = run(&["--prometheus", &base, "--query", "max(vllm:num_requests_waiting)"], None);
    let (_, body) = record(&out);
    assert!(body.queries[0].series.iter().all(|s| s.metric_type == MetricType::Untyped));
    assert_eq!(server.hits("/api/v1/metadata"), 1, "not asked for a computed query");

    // No metadata API (an old or restricted server): the answer stands, the reason says why
    // the types are unknown.
    let bare = Server::start(vec![("/api/v1/query", json(vector))]);
    let out = run(
        &["--prometheus", &format!("http://{}", bare.addr), "--query", "vllm:num_requests_waiting"],
        None,
    );
    let (_, body) = record(&out);
    let q = &body.queries[0];
    assert_eq!(q.status, "ok");
    assert!(q.reason.as_deref().unwrap().contains("series types unknown"), "{:?}", q.reason);
    assert!(q.series.iter().all(|s| s.metric_type == MetricType::Untyped));
}

/// The record keeps what a re-measurement needs (the selectors), and `opsg_scrape::rescrape`
/// federates again and picks each target out by instance.
#[test]
fn federated_targets_can_be_read_again_from_the_record() {
    let server = serve(true);
    let base = format!("http://{}", server.addr);
    let out = run(&["--federate", &base, "--match", "{job=\"vllm\"}", "--match", "up"], None);
    let (_, body) = record(&out);
    assert_eq!(body.scrape_configs["r0:8000"].federate, ["{job=\"vllm\"}", "up"]);
    let hits = server.hits("/federate");
    let again = opsg_scrape::rescrape(
        &body.targets,
        &body.scrape_configs,
        &opsg_scrape::ScrapeOptions::default(),
    )
    .unwrap();
    assert_eq!(server.hits("/federate"), hits + 1, "one federation for both targets");
    let names: Vec<&str> = again.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["r0:8000", "r1:8000"]);
    assert_eq!(again[0].status, TargetStatus::Up);
    assert_eq!(again[1].status, TargetStatus::Down, "still up=0");
    let waiting = again[0].series.iter().find(|s| s.name == "vllm:num_requests_waiting").unwrap();
    assert_eq!(waiting.points[0].v.map(|v| v.0), Some(9.0));
    assert_eq!(again[0].labels, body.targets[0].labels, "the target keeps its identity");
}
