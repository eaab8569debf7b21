//! Harness for the `opsg-sim` end-to-end tests: spawn the real binary on an ephemeral port with a
//! manual clock, talk HTTP to it, parse what it serves with opsg-expo, and kill it on drop.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

pub const SIM: &str = env!("CARGO_BIN_EXE_opsg-sim");

/// A running simulator; killed (and reaped) when dropped.
pub struct Sim {
    child: Child,
    _stdin: Option<ChildStdin>,
    /// `127.0.0.1:PORT` of the control API.
    pub addr: String,
    /// The start-up line.
    pub hello: Value,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    /// Start with `--manual-clock`, seed `seed` and extra flags.
    pub fn start(seed: u64, extra: &[&str]) -> Sim {
        let seed = seed.to_string();
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--seed",
            &seed,
            "--manual-clock",
            "--exit-on-stdin-eof",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(SIM)
            .args(&args)
            .env_clear()
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opsg-sim");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("start-up line");
        let hello: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("`{line}`: {e}"));
        let addr = hello["listen"].as_str().expect("listen").to_string();
        Sim { child, _stdin: stdin, addr, hello }
    }

    /// A request to the control API: (status, parsed JSON body).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let resp = request(&self.addr, method, path, body.as_deref().map(str::as_bytes));
        let json = serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&resp.body)
            )
        });
        (resp.status, json)
    }

    /// POST that must succeed; returns the body.
    pub fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", path, Some(&body));
        assert_eq!(status, 200, "POST {path} {body}: {v}");
        v
    }

    /// Advance sim time.
    pub fn tick(&self, seconds: f64) {
        self.post("/tick", json!({"seconds": seconds}));
    }

    /// `GET /state`.
    pub fn state(&self) -> Value {
        let (status, v) = self.call("GET", "/state", None);
        assert_eq!(status, 200);
        v
    }

    /// `host:port` of a replica's metrics listener.
    pub fn replica_addr(&self, replica: &str) -> String {
        let url = self.state()["replicas"][replica]["metrics_url"]
            .as_str()
            .expect("metrics_url")
            .to_string();
        url_addr(&url)
    }

    /// A replica's `/metrics` text (panics when it does not answer 200).
    pub fn metrics(&self, replica: &str) -> String {
        get_text(&self.replica_addr(replica), "/metrics")
    }

    /// A node's dcgm-exporter or node_exporter text (`key` = `dcgm_url` / `node_exporter_url`).
    pub fn node_metrics(&self, node: &str, key: &str) -> String {
        let url = self.state()["nodes"][node][key].as_str().expect("node url").to_string();
        get_text(&url_addr(&url), "/metrics")
    }
}

/// `http://host:port/metrics` -> `host:port`.
pub fn url_addr(url: &str) -> String {
    url.trim_start_matches("http://").split('/').next().expect("host").to_string()
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Send one request (HTTP/1.1, Connection: close) and read the whole response.
pub fn request(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        raw.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&bytes).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read response");
    parse_response(&out, method == "HEAD")
}

/// Send raw bytes and parse the response.
pub fn raw_request(addr: &str, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read response");
    parse_response(&out, false)
}

fn parse_response(out: &[u8], head_only: bool) -> Resp {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(out)));
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = out[split + 4..].to_vec();
    let resp = Resp { status, headers, body };
    if let Some(len) = resp.header("Content-Length").filter(|_| !head_only) {
        assert_eq!(
            len.parse::<usize>().unwrap(),
            resp.body.len(),
            "Content-Length matches the body"
        );
    }
    resp
}

/// GET a text body that must be 200.
pub fn get_text(addr: &str, path: &str) -> String {
    let r = request(addr, "GET", path, None);
    assert_eq!(r.status, 200, "GET {addr}{path}");
    String::from_utf8(r.body).expect("UTF-8")
}

/// Parse an exposition strictly with opsg-expo and check it has no rule violations.
pub fn parse_valid(text: &str) -> opsg_expo::Exposition<'_> {
    let expo = opsg_expo::parse(text.as_bytes(), &opsg_expo::ParseOptions::default())
        .unwrap_or_else(|e| panic!("invalid exposition: {e}"));
    let problems = opsg_expo::validate(&expo);
    assert!(problems.is_empty(), "exposition problems: {problems:?}");
    expo
}

/// The value of the sample `name` whose labels include all of `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let expo = parse_valid(text);
    expo.samples()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
}

/// Sum over samples called `name` matching `labels`.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let expo = parse_valid(text);
    expo.samples()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// Cumulative buckets `(le, count)` of a histogram in a replica's payload.
pub fn buckets(text: &str, family: &str) -> Vec<(f64, f64)> {
    let expo = parse_valid(text);
    let name = format!("{family}_bucket");
    expo.samples()
        .filter(|s| s.name == name)
        .map(|s| {
            let le = s.label("le").expect("le");
            (if le == "+Inf" { f64::INFINITY } else { le.parse().expect("le number") }, s.value)
        })
        .collect()
}

/// A quantile of the observations between two scrapes of a histogram (PromQL interpolation).
pub fn window_quantile(before: &str, after: &str, family: &str, q: f64) -> f64 {
    let a = buckets(before, family);
    let b = buckets(after, family);
    let delta: Vec<(f64, f64)> = b
        .iter()
        .map(|(le, v)| (*le, v - a.iter().find(|(l, _)| l == le).map(|(_, v)| *v).unwrap_or(0.0)))
        .collect();
    opsg_expo::histogram_quantile(q, &delta)
}

/// A fresh temp dir.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("opsg-sim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Read a log file (empty when missing).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
