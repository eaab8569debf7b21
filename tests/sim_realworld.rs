//! `opsg-sim` checked against the real tools: Prometheus' own `promtool check metrics` parses every
//! payload, and the node_exporter families carry exactly the HELP, TYPE and label names of a real
//! `prometheus-node-exporter` (Debian packages). Without the packages these tests skip loudly,
//! except under CI (`CI=true`), where they fail: `.ci/run` installs them.

#[path = "sim_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use support::Sim;

/// The binary's path, or `None` (with a loud message) when it is not installed outside CI.
fn tool(name: &str) -> Option<String> {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = format!("{dir}/{name}");
        if std::path::Path::new(&path).exists() {
            return Some(path);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "`{name}` is required under CI (apt-get install prometheus prometheus-node-exporter)"
        );
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "SKIPPED: `{name}` is not installed; install the Debian package to run this test"
    );
    None
}

/// (exit code, stdout + stderr) of `promtool check metrics` over `payload`.
fn promtool_check(promtool: &str, payload: &str) -> (Option<i32>, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(payload.as_bytes()).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn promtool_parses_every_payload() {
    let Some(promtool) = tool("promtool") else { return };
    let sim = Sim::start(8, &[]);
    sim.tick(40.0);
    sim.post("/chaos/gpu_fault", serde_json::json!({"target": "stable-0", "intensity": 0.6}));
    sim.tick(10.0);
    let node = sim.state()["replicas"]["stable-0"]["node"].as_str().unwrap().to_string();
    for (what, payload) in [
        ("vllm", sim.metrics("stable-0")),
        ("dcgm", sim.node_metrics(&node, "dcgm_url")),
        ("node", sim.node_metrics(&node, "node_exporter_url")),
    ] {
        let (code, text) = promtool_check(&promtool, &payload);
        // 0 = clean, 3 = lint findings only; 1 = the payload did not parse.
        assert!(matches!(code, Some(0) | Some(3)), "{what}: promtool exit {code:?}: {text}");
        assert!(!text.contains("error while linting"), "{what}: {text}");
        // Lint findings are only the ones the real exporters trigger too.
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let known = [
                "metric names should not contain ':'",
                "label names should be written in 'snake_case' not 'camelCase'",
                "metric names should be written in 'snake_case' not 'camelCase'",
                "counter metrics should have \"_total\" suffix",
                "non-counter metrics should not have \"_total\" suffix",
                "metric name should not include type 'counter'",
            ];
            assert!(known.iter().any(|k| line.contains(k)), "{what}: unexpected finding `{line}`");
        }
    }
}

/// family -> (TYPE, HELP, sorted label names of its first sample).
fn families(text: &str) -> BTreeMap<String, (String, String, Vec<String>)> {
    let expo = support::parse_valid(text);
    expo.families
        .iter()
        .map(|f| {
            let labels = f
                .samples
                .first()
                .map(|s| {
                    let mut names: Vec<String> =
                        s.labels.iter().map(|(n, _)| n.to_string()).collect();
                    names.sort();
                    names
                })
                .unwrap_or_default();
            (
                f.name.to_string(),
                (f.kind.as_str().to_string(), f.help.as_deref().unwrap_or("").to_string(), labels),
            )
        })
        .collect()
}

#[test]
fn node_exporter_families_match_the_real_node_exporter() {
    let Some(exporter) = tool("prometheus-node-exporter") else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(exporter)
        .args([
            &format!("--web.listen-address={listen}"),
            "--collector.disable-defaults",
            "--collector.filesystem",
            "--collector.meminfo",
            "--collector.loadavg",
            "--collector.stat",
            "--collector.time",
            "--collector.uname",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node_exporter");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let mut real_text = None;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&listen).is_ok() {
            // ureq: node_exporter answers with chunked transfer encoding. A listener that is up
            // may still answer its first request with an error while it starts: try again.
            let url = format!("http://{listen}/metrics");
            if let Ok(response) = ureq::get(&url).call() {
                let body = response.into_body();
                real_text =
                    Some(body.into_with_config().limit(64 << 20).read_to_string().expect("body"));
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let real = families(&real_text.expect("node_exporter came up"));

    let sim = Sim::start(1, &[]);
    let ours_text = sim.node_metrics("gpu-node-a", "node_exporter_url");
    let ours = families(&ours_text);
    assert!(ours.len() >= 15);
    for (name, (kind, help, labels)) in &ours {
        let (real_kind, real_help, real_labels) =
            real.get(name).unwrap_or_else(|| panic!("node_exporter has no family `{name}`"));
        assert_eq!(kind, real_kind, "{name} TYPE");
        assert_eq!(help, real_help, "{name} HELP");
        if !real_labels.is_empty() || !labels.is_empty() {
            assert_eq!(labels, real_labels, "{name} label names");
        }
    }
    let names: Vec<&String> = ours.keys().collect();
    let in_order: Vec<String> =
        support::parse_valid(&ours_text).families.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(
        in_order.iter().collect::<Vec<_>>(),
        names,
        "families sorted by name, as client_golang writes them"
    );
}
