//! Recorded captures through the real `opsg-scrape`: gzip-compressed files and stdin (found by
//! their magic bytes), the decompression cap, and `--format` when a capture's format cannot be
//! told from its body.

#[path = "scrape_support/mod.rs"]
mod support;

use opsg_core::kinds::observation::{ObservationBody, TargetStatus};
use opsg_scrape::capture::gzip;
use support::{record, run, target, tempdir};

const NOW: &str = "2026-11-22T06:00:00Z";

const PAGE: &str = "# HELP vllm:num_requests_waiting Requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name=\"m\"} 7
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name=\"m\"} 42
";

fn value(body: &ObservationBody, target_name: &str, series: &str) -> f64 {
    let t = target(body, target_name);
    let s = t.series.iter().find(|s| s.name == series).unwrap_or_else(|| {
        panic!("no `{series}` in {:?}", t.series.iter().map(|s| &s.name).collect::<Vec<_>>())
    });
    s.points.last().and_then(|p| p.v).expect("a value").0
}

#[test]
fn gzip_files_and_stdin_read_like_plain_captures() {
    let dir = tempdir("gz");
    let plain = dir.join("replica.prom");
    let packed = dir.join("replica-gz.prom.gz");
    std::fs::write(&plain, PAGE).unwrap();
    std::fs::write(&packed, gzip(PAGE.as_bytes())).unwrap();
    let out = run(
        &["--file", plain.to_str().unwrap(), "--file", packed.to_str().unwrap(), "--now", NOW],
        None,
    );
    let (_, body) = record(&out);
    for name in ["replica.prom", "replica-gz.prom.gz"] {
        assert_eq!(target(&body, name).status, TargetStatus::Up, "{name}");
        assert_eq!(value(&body, name, "vllm:num_requests_waiting"), 7.0);
        assert_eq!(value(&body, name, "vllm:num_preemptions_total"), 42.0);
    }
    let (a, b) = (target(&body, "replica.prom"), target(&body, "replica-gz.prom.gz"));
    assert_eq!(a.series, b.series, "compression changes nothing in the record");

    // stdin: `curl --compressed`-less captures piped in as they came.
    let out = run(&["--file", "-", "--now", NOW], Some(&gzip(PAGE.as_bytes())));
    let (_, body) = record(&out);
    assert_eq!(value(&body, "stdin", "vllm:num_requests_waiting"), 7.0);
    std::fs::remove_dir_all(dir).ok();
}

/// A decompression bomb (a small file that inflates far past `--max-bytes`) is stopped at the cap
/// and recorded as that capture's error; the run and the other captures go on.
#[test]
fn a_gzip_bomb_is_stopped_at_the_cap_and_recorded() {
    let dir = tempdir("gzbomb");
    let bomb = dir.join("bomb.prom.gz");
    std::fs::write(&bomb, bomb_bytes()).unwrap();
    let size = std::fs::metadata(&bomb).unwrap().len();
    assert!(size * 100 < 256 << 20, "the bomb is small on disk: {size}");
    let good = dir.join("good.prom");
    std::fs::write(&good, PAGE).unwrap();
    let out = run(
        &[
            "--file",
            bomb.to_str().unwrap(),
            "--file",
            good.to_str().unwrap(),
            "--max-bytes",
            "1MiB",
            "--now",
            NOW,
        ],
        None,
    );
    let (_, body) = record(&out);
    let t = target(&body, "bomb.prom.gz");
    assert_eq!(t.status, TargetStatus::Error);
    let reason = t.reason.as_deref().unwrap();
    assert!(reason.contains("1048576-byte cap") && reason.contains("gzip"), "{reason}");
    assert!(t.series.is_empty());
    assert_eq!(target(&body, "good.prom").status, TargetStatus::Up);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bomb.prom.gz"), "warned");

    // The same bomb on stdin.
    let out = run(
        &["--file", "-", "--max-bytes", "1MiB", "--now", NOW],
        Some(&std::fs::read(&bomb).unwrap()),
    );
    let (_, body) = record(&out);
    assert_eq!(target(&body, "stdin").status, TargetStatus::Error);

    // Truncated gzip: a reason, not a crash.
    let packed = gzip(PAGE.as_bytes());
    let cut = dir.join("cut.prom.gz");
    std::fs::write(&cut, &packed[..packed.len() / 2]).unwrap();
    let out = run(&["--file", cut.to_str().unwrap(), "--now", NOW], None);
    let (_, body) = record(&out);
    let t = target(&body, "cut.prom.gz");
    assert_eq!(t.status, TargetStatus::Error);
    assert!(t.reason.as_deref().unwrap().contains("not a valid gzip stream"), "{:?}", t.reason);
    std::fs::remove_dir_all(dir).ok();
}

/// 256 MiB of repeated exposition lines, gzip-compressed (well under 1% of that), built from one
/// 1 MiB member repeated, so the test never holds the inflated bytes.
fn bomb_bytes() -> Vec<u8> {
    let line = "filler_metric{i=\"0\"} 1\n".repeat((1 << 20) / 24);
    let one = gzip(line.as_bytes());
    // Concatenated gzip members are one stream (RFC 1952 §2.2): 256 copies inflate to 256 MiB.
    let mut out = Vec::with_capacity(one.len() * 256);
    for _ in 0..256 {
        out.extend_from_slice(&one);
    }
    out
}

/// A Prometheus text capture whose last line is a `# EOF` comment (some exporters and capture
/// scripts append one; in text 0.0.4 it is only a comment): `auto` takes it for OpenMetrics,
/// whose rules refuse a counter sample named like its family; `--format prometheus` reads it.
const TEXT_ENDING_IN_EOF: &str = "# HELP vllm:num_preemptions_total Preemptions.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name=\"m\"} 3 1763791200000
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name=\"m\"} 5 1763791200000
# EOF
";

#[test]
fn format_overrides_a_wrong_auto_detection() {
    let dir = tempdir("format");
    let capture = dir.join("text.prom");
    std::fs::write(&capture, TEXT_ENDING_IN_EOF).unwrap();
    let path = capture.to_str().unwrap();

    let out = run(&["--file", path, "--now", NOW], None);
    let (_, body) = record(&out);
    let t = target(&body, "text.prom");
    assert_eq!(t.status, TargetStatus::Error, "auto-detection misreads it");
    assert!(t.reason.as_deref().unwrap().contains("openmetrics"), "{:?}", t.reason);

    let out = run(&["--file", path, "--format", "prometheus", "--now", NOW], None);
    let (_, body) = record(&out);
    let t = target(&body, "text.prom");
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    assert_eq!(value(&body, "text.prom", "vllm:num_preemptions_total"), 3.0);
    assert_eq!(value(&body, "text.prom", "vllm:num_requests_waiting"), 5.0);
    // Text 0.0.4 timestamps are milliseconds, kept as they are.
    assert_eq!(t.series[0].points[0].t, 1_763_791_200_000);

    // The same on stdin, gzip-compressed.
    let out = run(
        &["--file", "-", "--format", "prometheus", "--now", NOW],
        Some(&gzip(TEXT_ENDING_IN_EOF.as_bytes())),
    );
    let (_, body) = record(&out);
    assert_eq!(value(&body, "stdin", "vllm:num_requests_waiting"), 5.0);

    // An OpenMetrics capture cut short (no `# EOF`): auto reads it as text and trips over its
    // seconds timestamps; --format openmetrics names the real problem.
    let cut = dir.join("cut.om");
    std::fs::write(
        &cut,
        "# TYPE vllm:num_preemptions counter\nvllm:num_preemptions_total 3 1763791200.250\n",
    )
    .unwrap();
    let cut = cut.to_str().unwrap();
    let out = run(&["--file", cut, "--now", NOW], None);
    let (_, body) = record(&out);
    let reason = target(&body, "cut.om").reason.clone().unwrap();
    assert!(reason.contains("prometheus-text"), "{reason}");
    let out = run(&["--file", cut, "--format", "openmetrics", "--now", NOW], None);
    let (_, body) = record(&out);
    let reason = target(&body, "cut.om").reason.clone().unwrap();
    assert!(reason.contains("does not end with `# EOF`"), "{reason}");

    let out = run(&["--file", path, "--format", "protobuf"], None);
    assert_eq!(out.status.code(), Some(2), "an unknown format is a usage error");
    std::fs::remove_dir_all(dir).ok();
}

/// HTTP targets keep Content-Type negotiation: --format is for captures only.
#[test]
fn format_does_not_override_a_servers_content_type() {
    let server = support::Server::start(vec![(
        "/metrics",
        support::Reply::text(TEXT_ENDING_IN_EOF.as_bytes().to_vec()),
    )]);
    let out = run(&["--target", &server.url("/metrics"), "--format", "openmetrics"], None);
    let (_, body) = record(&out);
    assert_eq!(body.targets[0].status, TargetStatus::Up, "{:?}", body.targets[0].reason);
}

/// A gzip file served as it is (no `Content-Encoding`, e.g. captures kept in a bucket) is inflated
/// under the same cap as a gzip-encoded answer.
#[test]
fn a_gzip_file_served_over_http_is_inflated_under_the_cap() {
    let server = support::Server::start(vec![
        (
            "/capture.prom.gz",
            support::Reply::Fixed {
                status: 200,
                headers: vec![("Content-Type".into(), "application/gzip".into())],
                body: gzip(PAGE.as_bytes()),
            },
        ),
        (
            "/bomb.prom.gz",
            support::Reply::Fixed {
                status: 200,
                headers: vec![("Content-Type".into(), "application/gzip".into())],
                body: bomb_bytes(),
            },
        ),
    ]);
    let out = run(
        &[
            "--target",
            &server.url("/capture.prom.gz"),
            "--target",
            &server.url("/bomb.prom.gz"),
            "--max-bytes",
            "1MiB",
        ],
        None,
    );
    let (_, body) = record(&out);
    let good = &body.targets[0];
    assert_eq!(good.status, TargetStatus::Up, "{:?}", good.reason);
    let waiting = good.series.iter().find(|s| s.name == "vllm:num_requests_waiting").unwrap();
    assert_eq!(waiting.points[0].v.map(|v| v.0), Some(7.0));
    let bomb = &body.targets[1];
    assert_eq!(bomb.status, TargetStatus::Error);
    assert!(bomb.reason.as_deref().unwrap().contains("1048576-byte cap"), "{:?}", bomb.reason);
}
