//! Every real capture under `tests/fixtures/` (vLLM, dcgm-exporter, node_exporter,
//! prometheus/common, prometheus/prometheus textparse) parses, and chosen values come out right.
//! Sample counts are checked against an independent count of the sample lines.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::find;
use opsg_expo::{
    Exposition, Format, MetricKind, ParseOptions, ProblemKind, Selector, detect_format,
    histogram_series, parse, summary_series, validate,
};

fn fixture(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn strict(bytes: &[u8]) -> Exposition<'_> {
    let format = detect_format(None, bytes);
    parse(bytes, &ParseOptions::new(format)).unwrap_or_else(|e| panic!("{format}: {e}"))
}

/// Sample lines counted without the parser: neither blank nor a comment.
fn sample_lines(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .count()
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn vllm_v0_capture() {
    let b = fixture("vllm/vllm_metrics_v0_opt125m_datadog.txt");
    assert_ne!(*b.last().unwrap(), b'\n', "fixture kept without its final newline");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
    let bucket = find(
        &e,
        "vllm:e2e_request_latency_seconds_bucket",
        &[("le", "1.0"), ("model_name", "facebook/opt-125m")],
    );
    assert_eq!((bucket.value, bucket.line), (1.0, 105));
    let fam = e.family("vllm:e2e_request_latency_seconds").unwrap();
    assert_eq!(fam.kind, MetricKind::Histogram);
    let series = histogram_series(fam);
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].label("model_name"), Some("facebook/opt-125m"));
    assert_eq!(series[0].count, series[0].buckets.last().map(|b| b.1));
    assert!(validate(&e).is_empty(), "{:?}", validate(&e));
    assert_eq!(e.family("vllm:cache_config_info").unwrap().kind, MetricKind::Gauge);
}

#[test]
fn vllm_v0_capture_quantiles_and_selection() {
    let b = fixture("vllm/vllm_metrics_v0_opt125m_datadog.txt");
    let e = strict(&b);
    // Six inter-token gaps, all in (0.025, 0.05]: PromQL interpolates linearly inside it.
    let tpot = histogram_series(e.family("vllm:time_per_output_token_seconds").unwrap());
    assert!((tpot[0].quantile(0.5) - (0.025 + 0.025 * 3.0 / 6.0)).abs() < 1e-12);
    assert!((tpot[0].quantile(0.9) - (0.025 + 0.025 * 5.4 / 6.0)).abs() < 1e-12);
    // One prompt of 3 to 5 tokens.
    let prompt = histogram_series(e.family("vllm:request_prompt_tokens").unwrap());
    assert_eq!(prompt[0].quantile(0.5), 3.5);
    // Selecting the same buckets by name and labels from the flat sample list.
    let sel = Selector::parse(
        r#"vllm:time_per_output_token_seconds_bucket{model_name="facebook/opt-125m",le=~"0\.0.*"}"#,
    )
    .unwrap();
    let les: Vec<&str> = e.select(&sel).filter_map(|s| s.label("le")).collect();
    assert_eq!(les, ["0.01", "0.025", "0.05", "0.075"]);
    let other_model =
        Selector::parse(r#"{__name__=~"vllm:.*", model_name!="facebook/opt-125m"}"#).unwrap();
    // PromQL semantics: a series without `model_name` has it empty, so only the info metric
    // (which carries no model label) differs from the one model.
    let others: Vec<&str> =
        e.samples().filter(|s| other_model.matches(s)).map(|s| s.name.as_ref()).collect();
    assert_eq!(others, ["vllm:cache_config_info"]);
}

#[test]
fn vllm_v0_aibrix_partial_capture_is_truncated_and_validate_says_so() {
    let b = fixture("vllm/vllm_metrics_v0_qwen2.5coder_aibrix_partial.txt");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
    let info = find(
        &e,
        "vllm:cache_config_info",
        &[
            ("block_size", "16"),
            ("cache_dtype", "auto"),
            ("calculate_kv_scales", "False"),
            ("cpu_offload_gb", "0"),
            ("enable_prefix_caching", "False"),
            ("gpu_memory_utilization", "0.9"),
            ("is_attention_free", "False"),
            ("num_cpu_blocks", "9362"),
            ("num_gpu_blocks", "81767"),
            ("num_gpu_blocks_override", "None"),
            ("sliding_window", "None"),
            ("swap_space_bytes", "4294967296"),
        ],
    );
    assert_eq!(info.value, 1.0);
    let missing: Vec<_> =
        validate(&e).into_iter().filter(|p| p.kind == ProblemKind::HistogramMissingInf).collect();
    assert!(!missing.is_empty(), "the doc author cut the last histogram before +Inf");
}

#[test]
fn vllm_v1_docs_example_has_elision_lines() {
    let b = fixture("vllm/vllm_metrics_v1_docs_design_example_elided.txt");
    // The literal `...` lines are not exposition: strict fails on the first, with its line.
    let first_dots =
        String::from_utf8_lossy(&b).lines().position(|l| l == "...").unwrap() as u64 + 1;
    let err = parse(&b, &ParseOptions::default()).unwrap_err();
    assert_eq!((err.line, err.column), (first_dots, 1));
    let e = parse(&b, &ParseOptions::default().lenient()).unwrap();
    let dots = String::from_utf8_lossy(&b).lines().filter(|l| *l == "...").count();
    assert_eq!(e.diagnostics.len(), dots);
    assert_eq!(e.samples().count(), sample_lines(&b) - dots);
    let waiting = find(
        &e,
        "vllm:request_success_total",
        &[("finished_reason", "length"), ("model_name", "meta-llama/Llama-3.1-8B-Instruct")],
    );
    assert_eq!(waiting.value, 131.0);
    let ttft = e.family("vllm:time_to_first_token_seconds").unwrap();
    let s = &histogram_series(ttft)[0];
    assert_eq!(s.count, Some(140.0));
    // The docs' histogram stops at le=0.1 (elided), so no +Inf: PromQL gives NaN.
    assert!(s.quantile(0.5).is_nan());
}

#[test]
fn node_exporter_captures() {
    let b = fixture("node_exporter/e2e-output.txt");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
    assert_eq!(find(&e, "node_load1", &[]).value, 0.21);
    assert_eq!(
        find(&e, "node_cpu_seconds_total", &[("cpu", "0"), ("mode", "idle")]).value,
        10870.69
    );
    let type_lines =
        String::from_utf8_lossy(&b).lines().filter(|l| l.starts_with("# TYPE ")).count();
    let typed =
        e.families.iter().filter(|f| f.kind != MetricKind::Unknown || f.help.is_some()).count();
    assert!(typed >= type_lines - 1, "{typed} families with metadata for {type_lines} TYPE lines");
    assert!(validate(&e).is_empty(), "{:?}", &validate(&e)[..3.min(validate(&e).len())]);
    // The e2e output masks Go runtime samples: metadata-only families are kept as such.
    let gc = e.family("go_gc_duration_seconds").unwrap();
    assert_eq!((gc.kind, gc.samples.len()), (MetricKind::Summary, 0));
    assert!(gc.help.as_deref().unwrap().starts_with("A summary of the wall-time pause"));
    assert!(summary_series(gc).is_empty());

    let b = fixture("node_exporter/e2e-output-darwin.txt");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
}

#[test]
fn dcgm_captures() {
    let b = fixture("dcgm/dcgm_exporter_t4_datadog_serve_metrics.txt");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
    let temp = e.family("DCGM_FI_DEV_GPU_TEMP").unwrap();
    assert_eq!(temp.kind, MetricKind::Gauge);
    assert_eq!(temp.samples[0].value, 25.0);
    assert_eq!(temp.samples[0].label("modelName"), Some("Tesla T4"));
    assert!(e.family("DCGM_FI_DEV_SLOWDOWN_TEMP").unwrap().help.is_none(), "empty HELP is absent");

    // The README example: `...` elisions (lenient), a space after a comma, an int64 sentinel.
    let b = fixture("dcgm/dcgm_exporter_README_curl_example.txt");
    let e = parse(&b, &ParseOptions::default().lenient()).unwrap();
    assert!(e.diagnostics.iter().all(|d| d.column == 1), "{:?}", e.diagnostics);
    let mem = e.samples().find(|s| s.name == "DCGM_FI_DEV_MEMORY_TEMP").unwrap();
    assert_eq!(mem.value, 9223372036854775794.0);
}

#[test]
fn prometheus_common_and_textparse_captures() {
    let b = fixture("prometheus_common/expfmt_testdata_text.prom");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
    for name in ["alltypes.237mfs.prom.txt", "alltypes.237mfs.nometa.prom.txt"] {
        let b = fixture(&format!("prometheus_textparse/{name}"));
        // Prometheus' test data appends `# EOF` to text files too, so sniffing would say
        // OpenMetrics: the format must come from the caller (file name, Content-Type).
        assert_eq!(detect_format(None, &b), Format::OpenMetrics);
        let e = parse(&b, &ParseOptions::new(Format::PrometheusText)).unwrap();
        assert_eq!(e.samples().count(), sample_lines(&b), "{name}");
    }
    let b = fixture("prometheus_textparse/1histogram.om.txt");
    assert_eq!(detect_format(None, &b), Format::OpenMetrics);
    let e = strict(&b);
    let h = histogram_series(e.family("golang_manual_histogram_seconds").unwrap());
    let last = h.last().unwrap();
    assert_eq!((last.label("port"), last.sum, last.count), (Some("5003"), Some(10.0), Some(1.0)));
    // client_golang's OpenMetrics output with a histogram of negative observations: its `_sum`
    // is negative, which the OpenMetrics rules forbid (conformance `bad_counter_values_5`).
    // Strict mode says where; lenient mode keeps every sample and reports each such line.
    let b = fixture("prometheus_textparse/alltypes.5mfs.om.txt");
    assert_eq!(detect_format(None, &b), Format::OpenMetrics);
    let err = parse(&b, &ParseOptions::new(Format::OpenMetrics)).unwrap_err();
    assert_eq!(err.line, 33);
    assert!(err.message.contains("rpc_durations_histogram_seconds_sum"), "{err}");
    let e = parse(&b, &ParseOptions::new(Format::OpenMetrics).lenient()).unwrap();
    assert_eq!(e.samples().count(), sample_lines(&b));
    // 33: negative `_sum`; 35 (end of that histogram): `_sum` with negative buckets;
    // 44: a negative quantile value; 47: the summary's negative `_sum`.
    assert_eq!(e.diagnostics.iter().map(|d| d.line).collect::<Vec<_>>(), [33, 35, 44, 47]);
    let h = histogram_series(e.family("rpc_durations_histogram_seconds").unwrap());
    assert_eq!(h.len(), 1);
    assert!(h[0].sum.unwrap() < 0.0);
}

#[test]
fn node_exporter_textfile_fixtures() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node_exporter/textfile");
    let mut files = Vec::new();
    all_files(&dir, &mut files);
    files.sort();
    let mut parsed = 0;
    for f in &files {
        let b = fs::read(f).unwrap();
        let e = parse(&b, &ParseOptions::default().lenient()).unwrap();
        if e.diagnostics.is_empty() {
            parsed += 1;
            assert_eq!(e.samples().count(), sample_lines(&b), "{}", f.display());
        }
    }
    assert!(parsed >= files.len() - 2, "{parsed} of {}", files.len());
    let b = fs::read(dir.join("client_side_timestamp_metrics.prom")).unwrap();
    let e = strict(&b);
    assert!(e.samples().any(|s| s.timestamp_ms.is_some()));
}

#[test]
fn expfmt_fuzz_corpus_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prometheus_common/fuzz_corpus");
    let mut files = Vec::new();
    all_files(&dir, &mut files);
    assert!(files.len() >= 26);
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let b = fs::read(&f).unwrap();
        let r = parse(&b, &ParseOptions::default());
        if name.starts_with("from_test_parse_error_") && name != "from_test_parse_error_0" {
            // (error_0 is `bla 3.14` without a final newline, which we accept on purpose.)
            let e = r.expect_err(&name);
            assert!(e.line >= 1 && e.column >= 1, "{name}: {e}");
        } else {
            r.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// What Python prometheus_client 0.26 (vLLM's metrics library) writes, regenerated by
/// `tests/fixtures/prometheus_client/gen.py`.
#[test]
fn prometheus_client_text_output_parses_cleanly() {
    let b = fixture("prometheus_client/vllm_like.prom");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
    assert!(validate(&e).is_empty());
    assert_eq!(e.family("vllm:prompt_tokens_total").unwrap().kind, MetricKind::Counter);
    assert_eq!(e.family("vllm:prompt_tokens_created").unwrap().kind, MetricKind::Gauge);
    let ttft = histogram_series(e.family("vllm:time_to_first_token_seconds").unwrap());
    assert_eq!(ttft.len(), 2);
    // Nine observations: 0.003 0.015 0.03 0.03 0.05 0.09 0.2 0.7 3.0; the median (rank 4.5)
    // lies in (0.04, 0.06], which holds the 5th: 0.04 + 0.02 * 0.5 / 1.
    assert!((ttft[0].quantile(0.5) - 0.05).abs() < 1e-12);
    assert_eq!(ttft[0].sum, Some(4.118));
    let engine_state = e.family("vllm:engine_state").unwrap();
    assert_eq!(engine_state.samples.len(), 3);
}

#[test]
fn prometheus_client_openmetrics_with_allow_utf8_is_conformant() {
    let b = fixture("prometheus_client/vllm_like_allow_utf8.om.txt");
    let e = strict(&b);
    assert_eq!(e.samples().count(), sample_lines(&b));
    let prompt = e.family("vllm:prompt_tokens").unwrap();
    assert_eq!((prompt.kind, prompt.samples.len()), (MetricKind::Counter, 4));
    assert_eq!(prompt.samples[1].name, "vllm:prompt_tokens_created");
    assert_eq!(prompt.samples[1].value, 1_700_000_000.25);
    assert_eq!(e.family("vllm:engine_state").unwrap().kind, MetricKind::StateSet);
    assert_eq!(e.family("vllm:cache_config").unwrap().kind, MetricKind::Info);
    assert!(validate(&e).is_empty());
}

#[test]
fn prometheus_client_default_openmetrics_escaping_is_non_conformant() {
    // Regression guard for a real interoperability problem: with a plain
    // `Accept: application/openmetrics-text`, prometheus_client 0.26 writes `# TYPE vllm:x ...`
    // but samples named `vllm_x...`. Strict mode rejects it (prometheus_client's own parser does
    // too: "Clashing name"); lenient mode keeps every sample in its declared family and type.
    let b = fixture("prometheus_client/vllm_like.om.txt");
    assert!(b.windows(30).any(|w| w == b"# TYPE vllm:prompt_tokens coun"));
    let err = parse(&b, &ParseOptions::new(Format::OpenMetrics)).unwrap_err();
    assert_eq!(err.line, 9, "{err}");
    let e = parse(&b, &ParseOptions::new(Format::OpenMetrics).lenient()).unwrap();
    assert_eq!(e.samples().count(), sample_lines(&b));
    let prompt = e.family("vllm:prompt_tokens").unwrap();
    assert_eq!((prompt.kind, prompt.samples.len()), (MetricKind::Counter, 4));
    assert_eq!(prompt.samples[0].name, "vllm_prompt_tokens_total", "sample names stay as exposed");
    let ttft = histogram_series(e.family("vllm:time_to_first_token_seconds").unwrap());
    assert!((ttft[0].quantile(0.5) - 0.05).abs() < 1e-12);
    assert_eq!(e.families.len(), 6, "one family per declared metric, no stray unknown ones");
    // Besides the escaping notes, only the stateset label (escaped too: `vllm_engine_state`).
    let other: Vec<(u64, &str)> = e
        .diagnostics
        .iter()
        .filter(|d| !d.message.contains("escaping=allow-utf-8"))
        .map(|d| (d.line, d.message.as_str()))
        .collect();
    let stateset = "stateset sample without the `vllm:engine_state` label";
    assert_eq!(other, [(60, stateset), (61, stateset), (62, stateset)]);
}
