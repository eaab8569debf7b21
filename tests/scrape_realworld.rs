//! Real-world checks of `opsg-scrape`: a real `prometheus-node-exporter` and a real `prometheus`
//! (Debian packages), started on loopback ports with temporary directories, and Prometheus
//! scraping an `opsg-sim` replica so its HTTP API can be queried.
//!
//! Without the packages these tests skip with a loud message; under CI (`CI=true`) they fail.

#[path = "scrape_support/mod.rs"]
mod support;

use opsg_core::float::Float;
use opsg_core::kinds::observation::{MetricType, TargetStatus};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{record, run, tempdir};

/// Find a Debian-packaged binary, or skip (fail under CI) with a loud message.
fn require(binary: &str, package: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(binary);
        if path.exists() {
            return Some(path);
        }
    }
    let message = format!(
        "`{binary}` not found: install the Debian package `{package}` (apt-get install -y {package}) to run this real-world check"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {message}");
    }
    let bar = "!".repeat(100);
    // Loud on purpose: a skipped real-world check must not look like a pass.
    std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n{bar}\nSKIPPED: {message}\n{bar}\n").as_bytes(),
    )
    .ok();
    None
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the child when the test ends, however it ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait (bounded) until `port` accepts connections.
fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

fn http_get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_body()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The value of an unlabelled sample line `name value` in a text exposition.
fn exposed_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("`{name}` not in the exposition"))
}

fn start_node_exporter(bin: &Path) -> (Reaper, u16) {
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Collectors that need hardware or systemd add noise, not coverage.
        .args(["--no-collector.systemd", "--no-collector.hwmon", "--no-collector.thermal_zone"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-node-exporter");
    let mut reaper = Reaper(child);
    wait_listening(port, &mut reaper.0, "prometheus-node-exporter");
    (reaper, port)
}

#[test]
fn scrapes_a_real_node_exporter() {
    let Some(bin) = require("prometheus-node-exporter", "prometheus-node-exporter") else { return };
    let (_exporter, port) = start_node_exporter(&bin);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let out = run(&["--target", &url, "--samples", "2", "--interval", "200ms"], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    assert_eq!(t.samples.len(), 2);
    // Constant values must equal what the exporter itself reports.
    let exposed = http_get(&url);
    for name in ["node_memory_MemTotal_bytes", "node_boot_time_seconds"] {
        let want = exposed_value(&exposed, name);
        let series =
            t.series.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} kept"));
        assert_eq!(series.points.len(), 2, "{name}: one point per sample");
        for p in &series.points {
            assert_eq!(p.v, Some(Float(want)), "{name}");
        }
    }
    // And MemTotal is what the kernel says.
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in /proc/meminfo");
    let mem = t.series.iter().find(|s| s.name == "node_memory_MemTotal_bytes").unwrap();
    assert_eq!(mem.points[0].v, Some(Float(kib * 1024.0)));
    // Counters only go up between the two samples.
    let cpu = t
        .series
        .iter()
        .find(|s| {
            s.name == "node_cpu_seconds_total" && s.labels.get("mode").is_some_and(|m| m == "idle")
        })
        .expect("node_cpu_seconds_total{mode=idle}");
    assert!(cpu.points[1].v.unwrap().0 >= cpu.points[0].v.unwrap().0);
    // The default selection leaves node_exporter's many other families out.
    assert!(t.series.iter().all(|s| !s.name.starts_with("go_")), "go runtime series dropped");
}

fn prometheus_config(dir: &Path, scrape_targets: &[String]) -> PathBuf {
    let targets: Vec<String> = scrape_targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sim\n    scrape_interval: 1s\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("write prometheus.yml");
    path
}

fn start_prometheus(bin: &Path, dir: &Path, scrape_targets: &[String]) -> (Reaper, u16) {
    let port = free_port();
    let config = prometheus_config(dir, scrape_targets);
    let data = dir.join("data");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let mut reaper = Reaper(child);
    wait_listening(port, &mut reaper.0, "prometheus");
    // Listening is not ready: the API answers 503 until the TSDB is open.
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&ready).call().is_err() {
        assert!(Instant::now() < deadline, "prometheus not ready within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    (reaper, port)
}

#[test]
fn scrapes_a_real_prometheus_server() {
    let Some(bin) = require("prometheus", "prometheus") else { return };
    let dir = tempdir("prom-self");
    let (_prom, port) = start_prometheus(&bin, &dir, &[]);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let out = run(&["--target", &url, "--keep", "prometheus_*"], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    let reload = t
        .series
        .iter()
        .find(|s| s.name == "prometheus_config_last_reload_successful")
        .expect("prometheus_config_last_reload_successful kept by --keep");
    assert_eq!(reload.points[0].v, Some(Float(1.0)));
    // The build info labels are what `prometheus --version` prints.
    let version = Command::new(&bin).arg("--version").output().expect("prometheus --version");
    let text = String::from_utf8_lossy(&version.stdout).to_string()
        + &String::from_utf8_lossy(&version.stderr);
    let info = t.series.iter().find(|s| s.name == "prometheus_build_info").expect("build info");
    let v = info.labels.get("version").expect("version label");
    assert!(text.contains(v.as_str()), "`{v}` not in `{text}`");
    // Histograms come out as le + cumulative buckets.
    let hist = t
        .series
        .iter()
        .find(|s| s.metric_type == opsg_core::kinds::observation::MetricType::Histogram)
        .expect("a histogram family among prometheus_*");
    assert_eq!(hist.le.last(), Some(&Float(f64::INFINITY)));
    let buckets = &hist.points[0].buckets;
    assert!(buckets.windows(2).all(|w| w[0].0 <= w[1].0), "cumulative");
}

/// Start `opsg-sim` and return it with the `/metrics` URL of one replica.
fn start_sim() -> (Reaper, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsg-sim"))
        .args(["--listen", "127.0.0.1:0", "--seed", "1", "--manual-clock"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start opsg-sim");
    let stdout = child.stdout.take().expect("sim stdout");
    let reaper = Reaper(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("sim prints its address");
    let hello: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("sim said `{line}`: {e}"));
    let addr =
        hello["listen"].as_str().unwrap_or_else(|| panic!("no `listen` in `{line}`")).to_string();
    let state: serde_json::Value = serde_json::from_str(&http_get(&format!("http://{addr}/state")))
        .expect("GET /state is JSON");
    let url = state["replicas"]
        .as_object()
        .and_then(|r| r.values().find_map(|v| v["metrics_url"].as_str()))
        .unwrap_or_else(|| panic!("no replica metrics_url in /state: {state}"))
        .to_string();
    (reaper, addr, url)
}

#[test]
fn queries_prometheus_for_a_series_it_scraped_from_the_sim() {
    let Some(bin) = require("prometheus", "prometheus") else { return };
    let (_sim, _addr, metrics_url) = start_sim();
    let host_port =
        metrics_url.trim_start_matches("http://").split('/').next().unwrap_or("").to_string();
    let path = metrics_url.trim_start_matches("http://").split_once('/').map_or("metrics", |x| x.1);
    assert_eq!(path, "metrics", "Prometheus scrapes /metrics by default");
    let dir = tempdir("prom-sim");
    let (_prom, port) = start_prometheus(&bin, &dir, std::slice::from_ref(&host_port));
    let base = format!("http://127.0.0.1:{port}");
    // Wait (bounded) for Prometheus to have scraped the replica once.
    let query = format!("{base}/api/v1/query?query=up%7Bjob%3D%22sim%22%7D");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = http_get(&query);
        if answer.contains("\"value\":[") && answer.contains("\"1\"]") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the sim within 60 s: {answer}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The same series, read directly from the replica and through Prometheus, agree: the sim's
    // manual clock keeps its gauges still.
    let direct = run(&["--target", &metrics_url], None);
    let (_, direct) = record(&direct);
    let replica = &direct.targets[0];
    assert_eq!(replica.status, TargetStatus::Up, "{:?}", replica.reason);
    let gauge = replica
        .series
        .iter()
        .find(|s| s.name == "vllm:num_requests_running")
        .expect("the sim exposes vllm:num_requests_running");
    let out =
        run(&["--prometheus", &base, "--query", "vllm:num_requests_running{job=\"sim\"}"], None);
    let (_, body) = record(&out);
    let q = &body.queries[0];
    assert_eq!(q.status, "ok", "{:?}", q.reason);
    let series = q
        .series
        .iter()
        .find(|s| {
            s.labels == {
                let mut l = gauge.labels.clone();
                l.insert("job".into(), "sim".into());
                l.insert("instance".into(), host_port.clone());
                l
            }
        })
        .unwrap_or_else(|| panic!("no series with the replica's labels in {:?}", q.series));
    assert_eq!(series.name, "vllm:num_requests_running");
    assert_eq!(series.points[0].v, gauge.points[0].v);
    // A bare selector's type comes from Prometheus' metadata API, as the replica declared it.
    assert_eq!(series.metric_type, MetricType::Gauge);
    assert_eq!(series.metric_type, gauge.metric_type);
    // A range query over the last minute returns the scraped points.
    let out = run(
        &["--prometheus", &base, "--query", "up{job=\"sim\"}", "--range", "1m", "--step", "1s"],
        None,
    );
    let (_, body) = record(&out);
    let q = &body.queries[0];
    assert_eq!(q.status, "ok", "{:?}", q.reason);
    assert!(!q.series[0].points.is_empty());
    assert!(q.series[0].points.iter().all(|p| p.v == Some(Float(1.0))));

    // --as-targets: the replica as Prometheus saw it, shaped like a direct scrape.
    let out = run(
        &[
            "--prometheus",
            &base,
            "--query",
            "{job=\"sim\"}",
            "--range",
            "30s",
            "--step",
            "1s",
            "--as-targets",
        ],
        None,
    );
    let (_, body) = record(&out);
    let via = body
        .targets
        .iter()
        .find(|t| t.name == host_port)
        .expect("a target named after the instance");
    assert_eq!(via.status, TargetStatus::Up, "{:?}", via.reason);
    assert_eq!(via.labels["job"], "sim");
    let running = via
        .series
        .iter()
        .find(|s| s.name == "vllm:num_requests_running" && s.labels == gauge.labels)
        .expect("the gauge, with the replica's own labels");
    assert_eq!(running.points.last().and_then(|p| p.v), gauge.points[0].v);
    assert_eq!(running.metric_type, MetricType::Gauge);
    let ttft = via
        .series
        .iter()
        .find(|s| s.name == "vllm:time_to_first_token_seconds")
        .expect("TTFT rebuilt as a histogram");
    assert_eq!(ttft.metric_type, opsg_core::kinds::observation::MetricType::Histogram);
    assert_eq!(ttft.le.last(), Some(&Float(f64::INFINITY)));
    let direct_ttft = replica
        .series
        .iter()
        .find(|s| s.name == "vllm:time_to_first_token_seconds" && s.labels == ttft.labels)
        .expect("the same histogram scraped directly");
    assert_eq!(ttft.le, direct_ttft.le, "same bucket layout");
    assert_eq!(
        ttft.points.last().map(|p| &p.buckets),
        direct_ttft.points.first().map(|p| &p.buckets)
    );
}

/// Run `openssl` with `args` in `dir`, failing the test on error.
fn openssl(bin: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new(bin).args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn scrapes_over_tls_with_an_internal_ca() {
    let Some(bin) = require("openssl", "openssl") else { return };
    let dir = tempdir("tls");
    // A CA and a leaf for 127.0.0.1 signed by it (rustls refuses a CA certificate as the leaf).
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=opsg test CA"]);
    openssl(&bin, &dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(&bin, &dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &bin,
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
        ],
    );
    // `openssl s_server -WWW` serves files of its working directory: ./metrics is the page.
    std::fs::write(
        dir.join("metrics"),
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\"} 5\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(&bin)
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert", "leaf.pem"])
        .args(["-key", "leaf.key", "-WWW", "-quiet"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let mut server = Reaper(child);
    wait_listening(port, &mut server.0, "openssl s_server");
    let url = format!("https://127.0.0.1:{port}/metrics");

    let ca = dir.join("ca.pem");
    let out = run(&["--target", &url, "--ca-file", ca.to_str().unwrap()], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    assert_eq!(t.series[0].points[0].v, Some(Float(5.0)));

    // The same CA named by the target itself in a targets file (relative to the file), with no
    // run-wide --ca-file: only that target trusts it.
    std::fs::write(
        dir.join("fleet.json"),
        format!(r#"{{"targets":[{{"name":"internal","url":"{url}","ca_file":"ca.pem"}}]}}"#),
    )
    .unwrap();
    let out = run(&["--targets", dir.join("fleet.json").to_str().unwrap()], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert_eq!(t.status, TargetStatus::Up, "{:?}", t.reason);
    assert_eq!(body.scrape_configs["internal"].ca_file.as_deref(), ca.to_str());

    // Without the internal CA the certificate is not trusted: an error, with a reason.
    let out = run(&["--target", &url, "--retries", "3", "--backoff", "10ms"], None);
    let (_, body) = record(&out);
    let t = &body.targets[0];
    assert_eq!(t.status, TargetStatus::Error);
    let reason = t.reason.as_deref().unwrap_or("");
    assert!(reason.contains("invalid peer certificate"), "{reason}");
    assert!(!reason.contains("attempts"), "a certificate error is not retried: {reason}");

    // A PEM file without certificates is bad input naming the file.
    let key = dir.join("leaf.key");
    let out = run(&["--target", &url, "--ca-file", key.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no PEM certificate"));
}

/// Every replica `/metrics` URL of a running sim.
fn sim_replicas(addr: &str) -> Vec<String> {
    let state: serde_json::Value = serde_json::from_str(&http_get(&format!("http://{addr}/state")))
        .expect("GET /state is JSON");
    let mut urls: Vec<String> = state["replicas"]
        .as_object()
        .map(|r| r.values().filter_map(|v| v["metrics_url"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    urls.sort();
    urls
}

/// `--federate`: a real Prometheus scraping two sim replicas, federated back as one target per
/// instance, each agreeing with a direct scrape of that replica, with the types Prometheus'
/// federation drops restored (from its metadata API: a gauge cannot be told from its name).
#[test]
fn federates_a_real_prometheus_into_one_target_per_replica() {
    let Some(bin) = require("prometheus", "prometheus") else { return };
    let (_sim, addr, _) = start_sim();
    let replicas: Vec<String> = sim_replicas(&addr).into_iter().take(2).collect();
    assert_eq!(replicas.len(), 2, "the sim has at least two replicas");
    let host_ports: Vec<String> = replicas
        .iter()
        .map(|u| u.trim_start_matches("http://").split('/').next().unwrap_or("").to_string())
        .collect();
    let dir = tempdir("prom-federate");
    let (_prom, port) = start_prometheus(&bin, &dir, &host_ports);
    let base = format!("http://127.0.0.1:{port}");
    // Wait (bounded) until Prometheus has scraped both replicas and knows their metadata.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = http_get(&format!("{base}/api/v1/query?query=sum(up%7Bjob%3D%22sim%22%7D)"));
        let meta = http_get(&format!("{base}/api/v1/metadata?metric=vllm:num_requests_running"));
        if up.contains("\"2\"]") && meta.contains("gauge") {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape both replicas: {up} {meta}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = run(
        &["--federate", &base, "--match", "{job=\"sim\"}", "--samples", "2", "--interval", "1s"],
        None,
    );
    let (_, body) = record(&out);
    let call = body.queries.iter().find(|q| q.query.starts_with("/federate?")).expect("the call");
    assert_eq!(call.status, "ok", "{:?}", call.reason);
    assert_eq!(call.query, "/federate?match[]={job=\"sim\"}");
    assert!(call.reason.is_none(), "types came from the metadata: {:?}", call.reason);
    let mut names: Vec<&str> = body.targets.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = host_ports.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(names, expected, "one target per federated instance");
    for (url, host_port) in replicas.iter().zip(&host_ports) {
        let via = body.targets.iter().find(|t| &t.name == host_port).unwrap();
        assert_eq!(via.status, TargetStatus::Up, "{:?}", via.reason);
        assert_eq!(via.samples.len(), 2);
        assert_eq!(via.labels["job"], "sim");
        assert_eq!(via.source, format!("federate:{base}"));
        let (_, direct) = record(&run(&["--target", url], None));
        let replica = &direct.targets[0];
        let gauge = replica
            .series
            .iter()
            .find(|s| s.name == "vllm:num_requests_running")
            .expect("the sim exposes vllm:num_requests_running");
        let federated = via
            .series
            .iter()
            .find(|s| s.name == gauge.name && s.labels == gauge.labels)
            .expect("the gauge, with the replica's own labels (no instance, no job)");
        assert_eq!(federated.metric_type, MetricType::Gauge, "from the metadata API");
        assert_eq!(federated.points.last().and_then(|p| p.v), gauge.points[0].v);
        // Prometheus stamps federated samples with its scrape time: two rounds within one
        // scrape interval must not count a point twice.
        let times: Vec<i64> = federated.points.iter().map(|p| p.t).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        let counter = via
            .series
            .iter()
            .find(|s| s.name.ends_with("_total") && s.name.starts_with("vllm:"))
            .expect("a vllm counter");
        assert_eq!(counter.metric_type, MetricType::Counter, "{}", counter.name);
        let ttft = via
            .series
            .iter()
            .find(|s| s.name == "vllm:time_to_first_token_seconds")
            .expect("TTFT federated back into one histogram");
        assert_eq!(ttft.metric_type, MetricType::Histogram);
        let direct_ttft = replica
            .series
            .iter()
            .find(|s| s.name == ttft.name && s.labels == ttft.labels)
            .expect("the same histogram scraped directly");
        assert_eq!(ttft.le, direct_ttft.le, "same bucket layout");
        assert_eq!(
            ttft.points.last().map(|p| &p.buckets),
            direct_ttft.points.first().map(|p| &p.buckets)
        );
    }

    // A selector Prometheus refuses is the call's error, with Prometheus' words; not fatal.
    let out = run(&["--federate", &base, "--match", "{job=~\"(\"}"], None);
    let (_, body) = record(&out);
    let call = &body.queries[0];
    assert_eq!(call.status, "error");
    assert!(call.reason.as_deref().unwrap_or("").contains("HTTP 400"), "{:?}", call.reason);
    assert!(body.targets.is_empty());
}
