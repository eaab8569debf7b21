//! Alert intake: the active alerts of an Alertmanager (HTTP API v2, `GET /api/v2/alerts`) or the
//! alerts of an Alertmanager webhook payload (`"version": "4"`) from a file or stdin, mapped to
//! compact alert objects:
//!
//! ```json
//! {"source": "http://am:9093", "name": "VllmKvCacheFull", "state": "active", "severity": "critical",
//!  "labels": {…}, "annotations": {…}, "startsAt": "…", "endsAt": "…", "fingerprint": "a1b2…"}
//! ```
//!
//! `state` is Alertmanager's own: `active`, `suppressed` (silenced or inhibited) or `unprocessed`
//! from the API; `firing` or `resolved` from a webhook. A source that cannot be read gives one
//! entry `{"source", "available": false, "reason"}` instead; a source with more alerts than
//! [`MAX_ALERTS`] keeps the most severe and adds `{"source", "available": true, "truncated":
//! {"total", "kept"}}`. Alert entries are told apart from these by having a `name`.

use super::procfile::unavailable;
use super::redact::redact_line;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// The most alerts kept per source: an alert storm is summarized, not copied whole.
pub const MAX_ALERTS: usize = 500;
/// The most bytes read from an Alertmanager response or a webhook payload.
pub const MAX_BODY: u64 = 8 * 1024 * 1024;
/// Connection timeout for the Alertmanager API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default total time limit for one Alertmanager request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Annotation values (long runbook descriptions) are cut to this many bytes.
const MAX_ANNOTATION: usize = 1024;

/// `GettableAlert` of the Alertmanager API v2 (openapi `alertmanager/api/v2/openapi.yaml`).
#[derive(Debug, Deserialize)]
struct ApiAlert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    status: Option<ApiStatus>,
}

#[derive(Debug, Deserialize)]
struct ApiStatus {
    #[serde(default)]
    state: Option<String>,
}

/// The webhook payload (`version: "4"`) Alertmanager POSTs to receivers.
#[derive(Debug, Deserialize)]
struct Webhook {
    version: String,
    #[serde(default)]
    alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize)]
struct WebhookAlert {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// Rank for keeping the most severe alerts when a source has too many.
fn severity_rank(severity: Option<&str>) -> u8 {
    match severity.map(str::to_ascii_lowercase).as_deref() {
        Some("critical" | "page" | "emergency" | "fatal") => 0,
        Some("error" | "high" | "major") => 1,
        Some("warning" | "warn" | "medium" | "minor") => 2,
        Some("info" | "low" | "none") => 4,
        _ => 3,
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

struct Compact<'a> {
    source: &'a str,
    state: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    fingerprint: Option<String>,
}

impl Compact<'_> {
    fn into_value(self) -> Value {
        let annotations: BTreeMap<String, String> = self
            .annotations
            .into_iter()
            .map(|(k, v)| (k, redact_line(&cut(&v, MAX_ANNOTATION))))
            .collect();
        json!({
            "source": self.source,
            "name": self.labels.get("alertname"),
            "state": self.state,
            "severity": self.labels.get("severity"),
            "labels": self.labels,
            "annotations": annotations,
            "startsAt": self.starts_at,
            "endsAt": self.ends_at,
            "fingerprint": self.fingerprint,
        })
    }
}

/// Sort by severity (most severe first, then name) and keep at most [`MAX_ALERTS`], adding a
/// truncation note when some were left out.
fn bounded(source: &str, mut alerts: Vec<Value>) -> Vec<Value> {
    alerts.sort_by(|a, b| {
        let key = |v: &Value| {
            (severity_rank(v["severity"].as_str()), v["name"].as_str().unwrap_or("").to_string())
        };
        key(a).cmp(&key(b))
    });
    let total = alerts.len();
    if total > MAX_ALERTS {
        alerts.truncate(MAX_ALERTS);
        alerts.push(json!({
            "source": source,
            "available": true,
            "truncated": { "total": total, "kept": MAX_ALERTS },
        }));
    }
    alerts
}

/// Map an API v2 `GET /api/v2/alerts` body to compact alerts.
pub fn parse_api_v2(body: &[u8], source: &str) -> Result<Vec<Value>, String> {
    let alerts: Vec<ApiAlert> = serde_json::from_slice(body)
        .map_err(|e| format!("not an Alertmanager API v2 alert list: {e}"))?;
    let compact = alerts
        .into_iter()
        .map(|a| {
            Compact {
                source,
                state: a.status.and_then(|s| s.state),
                labels: a.labels,
                annotations: a.annotations,
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                fingerprint: a.fingerprint,
            }
            .into_value()
        })
        .collect();
    Ok(bounded(source, compact))
}

/// Map an Alertmanager webhook payload (version 4) to compact alerts.
pub fn parse_webhook(body: &[u8], source: &str) -> Result<Vec<Value>, String> {
    let payload: Webhook = serde_json::from_slice(body)
        .map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
    if payload.version != "4" {
        return Err(format!(
            "webhook payload version `{}` is not supported (expected \"4\")",
            payload.version
        ));
    }
    let compact = payload
        .alerts
        .into_iter()
        .map(|a| {
            Compact {
                source,
                state: a.status,
                labels: a.labels,
                annotations: a.annotations,
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                fingerprint: a.fingerprint,
            }
            .into_value()
        })
        .collect();
    Ok(bounded(source, compact))
}

/// The API v2 alerts URL for a base URL (`http://am:9093`, `http://host/alertmanager/`).
pub fn alerts_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/api/v2/alerts") {
        format!("{base}?active=true")
    } else {
        format!("{base}/api/v2/alerts?active=true")
    }
}

fn describe_ureq(err: &ureq::Error, timeout: Duration) -> String {
    match err {
        ureq::Error::Timeout(what) => {
            format!("timed out ({what}) within {} ms", timeout.as_millis())
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            format!("timed out within {} ms", timeout.as_millis())
        }
        ureq::Error::BodyExceedsLimit(limit) => format!("response body over the {limit}-byte cap"),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::TooManyRedirects => "too many redirects".to_string(),
        other => other.to_string(),
    }
}

/// Fetch the active alerts of the Alertmanager at `base`, bounded by `timeout` and [`MAX_BODY`].
pub fn fetch_alertmanager(base: &str, timeout: Duration) -> Result<Vec<Value>, String> {
    let url = alerts_url(base);
    // Credentials in the URL (`http://user:pass@am:9093`, sent by ureq as basic auth) never
    // reach the record or an error message.
    let shown = redact_line(&url);
    let source = redact_line(base);
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(3)
        .user_agent(concat!("opsg-scrape/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = agent
        .get(&url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("`{shown}`: {}", describe_ureq(&e, timeout)))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("`{shown}`: {}", describe_ureq(&e, timeout)))?;
    if status != 200 {
        let snippet = redact_line(&cut(String::from_utf8_lossy(&body).trim(), 200));
        return Err(format!("`{shown}`: HTTP {status}: {snippet}"));
    }
    parse_api_v2(&body, &source).map_err(|e| format!("`{shown}`: {e}"))
}

/// Read a webhook payload from `path` (`-` for stdin), at most [`MAX_BODY`] bytes.
pub fn read_webhook(path: &Path) -> Result<Vec<Value>, String> {
    if path == Path::new("-") {
        return read_webhook_from(std::io::stdin().lock(), "stdin");
    }
    match std::fs::File::open(path) {
        Ok(file) => read_webhook_from(file, &path.display().to_string()),
        Err(e) => Err(super::procfile::describe_io(path, &e)),
    }
}

/// Read a webhook payload from `reader` (named `source` in records and errors), at most
/// [`MAX_BODY`] bytes.
pub fn read_webhook_from(reader: impl Read, source: &str) -> Result<Vec<Value>, String> {
    let mut bytes = Vec::new();
    reader.take(MAX_BODY + 1).read_to_end(&mut bytes).map_err(|e| format!("`{source}`: {e}"))?;
    if bytes.len() as u64 > MAX_BODY {
        return Err(format!("`{source}`: payload over the {MAX_BODY}-byte cap"));
    }
    parse_webhook(&bytes, source).map_err(|e| format!("`{source}`: {e}"))
}

fn or_unavailable(source: &str, result: Result<Vec<Value>, String>) -> Vec<Value> {
    result.unwrap_or_else(|reason| {
        let mut entry = unavailable(reason);
        if let Some(obj) = entry.as_object_mut() {
            obj.insert("source".into(), json!(source));
        }
        vec![entry]
    })
}

/// Alerts from the configured Alertmanager and/or webhook file.
pub fn collect_alerts(
    alertmanager: Option<&str>,
    webhook: Option<&Path>,
    timeout: Duration,
) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(base) = alertmanager {
        out.extend(or_unavailable(&redact_line(base), fetch_alertmanager(base, timeout)));
    }
    if let Some(path) = webhook {
        out.extend(or_unavailable(&path.display().to_string(), read_webhook(path)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::path::PathBuf;

    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/signals/alerts")
            .join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn api_v2_body_from_a_real_alertmanager() {
        let alerts = parse_api_v2(&fixture("api_v2_alerts.json"), "http://am:9093").unwrap();
        assert_eq!(alerts.len(), 2);
        let kv = &alerts[0];
        assert_eq!(kv["source"], "http://am:9093");
        assert_eq!(kv["name"], "VllmKvCacheSaturated");
        assert_eq!(kv["state"], "active");
        assert_eq!(kv["severity"], "critical");
        assert_eq!(kv["labels"]["deployment"], "canary");
        assert_eq!(kv["annotations"]["runbook_url"], "https://runbooks.example/vllm-kv");
        assert_eq!(kv["fingerprint"], "7e95fe58579f4105");
        assert_eq!(kv["startsAt"], "2026-11-22T06:49:10.076Z");
        assert_eq!(alerts[1]["name"], "VllmQueueBacklog");
        assert_eq!(alerts[1]["severity"], "warning");
    }

    #[test]
    fn webhook_payload_from_a_real_alertmanager() {
        let alerts = parse_webhook(&fixture("webhook_v4.json"), "hook.json").unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["name"], "VllmKvCacheSaturated");
        assert_eq!(alerts[0]["state"], "firing");
        assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(alerts[0]["fingerprint"], "7e95fe58579f4105");
        assert_eq!(alerts[0]["labels"]["instance"], "10.0.0.12:8000");
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let v3 = br#"{"version": "3", "alerts": []}"#;
        assert!(parse_webhook(v3, "x").unwrap_err().contains("version `3`"));
        assert!(parse_webhook(b"\xff\x00garbage", "x").is_err());
        assert!(parse_api_v2(br#"{"status": "success"}"#, "x").is_err());
        // An API body is not a webhook and vice versa.
        assert!(parse_webhook(&fixture("api_v2_alerts.json"), "x").is_err());
        assert!(parse_api_v2(&fixture("webhook_v4.json"), "x").is_err());
    }

    #[test]
    fn an_alert_storm_keeps_the_most_severe() {
        let mut storm = Vec::new();
        for i in 0..600 {
            let severity = if i % 100 == 7 { "critical" } else { "info" };
            storm.push(json!({"labels": {"alertname": format!("A{i:03}"), "severity": severity}}));
        }
        let body = serde_json::to_vec(&storm).unwrap();
        let alerts = parse_api_v2(&body, "am").unwrap();
        assert_eq!(alerts.len(), MAX_ALERTS + 1);
        assert!(alerts[..6].iter().all(|a| a["severity"] == "critical"));
        let note = alerts.last().unwrap();
        assert_eq!(note["truncated"]["total"], 600);
        assert_eq!(note["truncated"]["kept"], MAX_ALERTS);
        assert!(note.get("name").is_none());
    }

    #[test]
    fn secrets_in_annotations_are_redacted() {
        let body = br#"[{"labels":{"alertname":"X"},"annotations":{"description":"probe failed with Authorization: Bearer abcdefghijklmnopqrstuvwx"}}]"#;
        let alerts = parse_api_v2(body, "am").unwrap();
        let text = alerts[0]["annotations"]["description"].as_str().unwrap();
        assert!(!text.contains("abcdefghijklmnopqrstuvwx"), "{text}");
    }

    #[test]
    fn urls_for_base_and_full_paths() {
        assert_eq!(alerts_url("http://am:9093"), "http://am:9093/api/v2/alerts?active=true");
        assert_eq!(alerts_url("http://h/am/"), "http://h/am/api/v2/alerts?active=true");
        assert_eq!(
            alerts_url("http://am:9093/api/v2/alerts"),
            "http://am:9093/api/v2/alerts?active=true"
        );
    }

    /// A one-connection HTTP server on loopback: reads the request head, answers `response` (or
    /// nothing, holding the connection open, when `None`), and returns the request head.
    fn stub(response: Option<Vec<u8>>) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return String::new();
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            match response {
                Some(bytes) => {
                    let _ = stream.write_all(&bytes);
                }
                // Hold the connection until the client gives up.
                None => {
                    let _ = stream.read(&mut [0u8; 1]);
                }
            }
            String::from_utf8_lossy(&head).into_owned()
        });
        (base, handle)
    }

    fn http(status: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn stub_server_speaking_real_v2_json() {
        let (base, server) = stub(Some(http("200 OK", &fixture("api_v2_alerts.json"))));
        let alerts = fetch_alertmanager(&base, DEFAULT_TIMEOUT).unwrap();
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /api/v2/alerts?active=true HTTP/1.1\r\n"), "{head}");
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0]["source"], base.as_str());
    }

    #[test]
    fn url_credentials_are_sent_but_never_recorded() {
        let (base, server) = stub(Some(http("200 OK", &fixture("api_v2_alerts.json"))));
        let with_auth = base.replace("http://", "http://opsg:s3cretpass@");
        let out = collect_alerts(Some(&with_auth), None, DEFAULT_TIMEOUT);
        let head = server.join().unwrap();
        // ureq turns the userinfo into basic auth: base64("opsg:s3cretpass").
        assert!(head.contains("Basic b3BzZzpzM2NyZXRwYXNz"), "{head}");
        assert_eq!(out.len(), 2);
        let record = serde_json::to_string(&out).unwrap();
        assert!(!record.contains("s3cretpass"), "{record}");
        assert!(out[0]["source"].as_str().unwrap().contains("opsg:[REDACTED]@"));

        let (base, server) = stub(Some(http("503 Service Unavailable", b"down")));
        let with_auth = base.replace("http://", "http://opsg:s3cretpass@");
        let out = collect_alerts(Some(&with_auth), None, DEFAULT_TIMEOUT);
        server.join().unwrap();
        let record = serde_json::to_string(&out).unwrap();
        assert!(record.contains("HTTP 503"), "{record}");
        assert!(!record.contains("s3cretpass"), "{record}");
    }

    #[test]
    fn http_500_is_unavailable_with_status_and_body() {
        let (base, server) = stub(Some(http("500 Internal Server Error", b"{\"error\":\"boom\"}")));
        let out = collect_alerts(Some(&base), None, DEFAULT_TIMEOUT);
        server.join().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["available"], false);
        assert_eq!(out[0]["source"], base.as_str());
        let reason = out[0]["reason"].as_str().unwrap();
        assert!(reason.contains("HTTP 500") && reason.contains("boom"), "{reason}");
    }

    #[test]
    fn garbage_body_is_unavailable() {
        let (base, server) = stub(Some(http("200 OK", b"<html>not json</html>")));
        let err = fetch_alertmanager(&base, DEFAULT_TIMEOUT).unwrap_err();
        server.join().unwrap();
        assert!(err.contains("not an Alertmanager API v2 alert list"), "{err}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let (base, server) = stub(None);
        let err = fetch_alertmanager(&base, Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        drop(server);
    }

    #[test]
    fn connection_refused_is_unavailable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err =
            fetch_alertmanager(&format!("http://127.0.0.1:{port}"), DEFAULT_TIMEOUT).unwrap_err();
        assert!(err.contains("connection refused"), "{err}");
    }

    #[test]
    fn an_oversized_body_hits_the_cap() {
        let mut head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n[",
            MAX_BODY + 1024
        )
        .into_bytes();
        head.extend(std::iter::repeat_n(b' ', (MAX_BODY + 1023) as usize));
        let (base, server) = stub(Some(head));
        let err = fetch_alertmanager(&base, DEFAULT_TIMEOUT).unwrap_err();
        let _ = server.join();
        assert!(err.contains("cap"), "{err}");
    }

    #[test]
    fn webhook_from_a_stream_and_a_failing_stream() {
        let alerts = read_webhook_from(&fixture("webhook_v4.json")[..], "stdin").unwrap();
        assert_eq!(alerts[0]["source"], "stdin");
        assert_eq!(alerts[0]["name"], "VllmKvCacheSaturated");

        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("stream reset"))
            }
        }
        let err = read_webhook_from(Broken, "stdin").unwrap_err();
        assert!(err.contains("stream reset"), "{err}");
        let err = read_webhook_from(&b""[..], "stdin").unwrap_err();
        assert!(err.contains("not an Alertmanager webhook payload"), "{err}");
    }

    #[test]
    fn webhook_file_missing_or_too_big() {
        let out = collect_alerts(None, Some(Path::new("/nonexistent/hook.json")), DEFAULT_TIMEOUT);
        assert_eq!(out[0]["available"], false);
        assert_eq!(out[0]["source"], "/nonexistent/hook.json");
        let dir = std::env::temp_dir().join(format!("opsg-alerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_BODY + 10) as usize]).unwrap();
        let err = read_webhook(&big).unwrap_err();
        std::fs::remove_dir_all(&dir).ok();
        assert!(err.contains("cap"), "{err}");
    }

    /// Kills the Alertmanager the test started (by its own handle) however the test ends.
    struct Running(std::process::Child);

    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn find_on_path(program: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
    }

    #[test]
    fn real_alertmanager_active_and_silenced_alerts() {
        let Some(binary) = find_on_path("prometheus-alertmanager") else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "prometheus-alertmanager is required under CI=true (apt-get install prometheus-alertmanager)"
                );
            }
            opsg_core::cli::warn(
                "SKIPPED real_alertmanager_active_and_silenced_alerts: prometheus-alertmanager not installed \
                 (apt-get install prometheus-alertmanager)",
            );
            return;
        };
        let dir = std::env::temp_dir().join(format!("opsg-am-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("am.yml"),
            "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("am.log")).unwrap();
        let child = std::process::Command::new(binary)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // An empty cluster address turns off the gossip listener (no second port to clash).
            .arg("--cluster.listen-address=")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut am = Running(child);
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(2)))
                .http_status_as_error(false)
                .build(),
        );
        let am_log = || std::fs::read_to_string(dir.join("am.log")).unwrap_or_default();
        let mut ready = false;
        for _ in 0..150 {
            if let Ok(Some(status)) = am.0.try_wait() {
                panic!("alertmanager exited with {status}: {}", am_log());
            }
            if agent.get(format!("{base}/-/ready")).call().is_ok_and(|r| r.status() == 200) {
                ready = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(ready, "alertmanager never became ready: {}", am_log());

        let alerts = json!([
            {"labels": {"alertname": "VllmKvCacheSaturated", "severity": "critical", "deployment": "canary"},
             "annotations": {"summary": "KV cache above 98% for 5m"}},
            {"labels": {"alertname": "VllmQueueBacklog", "severity": "warning", "deployment": "stable"},
             "annotations": {"summary": "waiting requests > 50"}},
        ]);
        let posted = agent
            .post(format!("{base}/api/v2/alerts"))
            .header("Content-Type", "application/json")
            .send(alerts.to_string())
            .unwrap();
        assert_eq!(posted.status(), 200);
        let now = opsg_core::time::Timestamp::now();
        let silence = json!({
            "matchers": [{"name": "alertname", "value": "VllmQueueBacklog", "isRegex": false, "isEqual": true}],
            "startsAt": now.plus_millis(-60_000).to_rfc3339(),
            "endsAt": now.plus_millis(3_600_000).to_rfc3339(),
            "createdBy": "opsg-scrape tests",
            "comment": "known backlog during the test",
        });
        let silenced = agent
            .post(format!("{base}/api/v2/silences"))
            .header("Content-Type", "application/json")
            .send(silence.to_string())
            .unwrap();
        assert_eq!(silenced.status(), 200);

        // Alertmanager marks alerts asynchronously: poll (bounded) until both carry their state.
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = fetch_alertmanager(&base, DEFAULT_TIMEOUT).unwrap();
            let state_of = |name: &str| {
                seen.iter()
                    .find(|a| a["name"] == name)
                    .and_then(|a| a["state"].as_str().map(str::to_string))
            };
            if state_of("VllmKvCacheSaturated").as_deref() == Some("active")
                && state_of("VllmQueueBacklog").as_deref() == Some("suppressed")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(am);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let kv = &seen[0];
        assert_eq!(kv["name"], "VllmKvCacheSaturated");
        assert_eq!(kv["state"], "active");
        assert_eq!(kv["severity"], "critical");
        assert_eq!(kv["labels"]["deployment"], "canary");
        assert_eq!(kv["annotations"]["summary"], "KV cache above 98% for 5m");
        let fingerprint = kv["fingerprint"].as_str().unwrap();
        assert_eq!(fingerprint.len(), 16);
        assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(kv["startsAt"].as_str().unwrap().starts_with("20"));
        assert_eq!(seen[1]["name"], "VllmQueueBacklog");
        assert_eq!(seen[1]["state"], "suppressed");
    }
}
