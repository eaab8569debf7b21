//! A small harness for the acting stages' end-to-end tests: spawn the real binaries with a clean
//! environment, pipe them, and a recording HTTP server standing in for an admin API.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const GATE: &str = env!("CARGO_BIN_EXE_opsg-gate");
pub const EXEC: &str = env!("CARGO_BIN_EXE_opsg-exec");
pub const VERIFY: &str = env!("CARGO_BIN_EXE_opsg-verify");

/// What a binary did.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Ran {
    /// Parsed records.
    pub fn records(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {e}: {l}")))
            .collect()
    }

    /// The last record's body.
    pub fn last_body(&self) -> Value {
        self.records().last().map(|r| r["body"].clone()).unwrap_or(Value::Null)
    }
}

/// Run `bin` with `args` and `env` (nothing else inherited but PATH), feeding `stdin`.
pub fn run(bin: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Ran {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_clear().env("NO_COLOR", "1");
    if let Some(p) = std::env::var_os("PATH") {
        cmd.env("PATH", p);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    Ran {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("opsg-e2e-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    pub fn str(&self, p: &str) -> String {
        self.join(p).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A recording HTTP/1.1 server: answers every request with a programmable status and JSON, and
/// keeps what it got. Stops when dropped.
pub struct Recorder {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

type Responder = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

impl Recorder {
    pub fn start(respond: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let respond: Arc<Responder> = Arc::new(respond);
        let (s2, stop2) = (seen.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve(stream, &s2, &*respond);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Recorder { addr, seen, stop, handle: Some(handle) }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, respond: &Responder) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let req = Seen { method, path, headers, body };
    let (status, text) = respond(&req);
    seen.lock().expect("lock").push(req);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

pub const SIM: &str = env!("CARGO_BIN_EXE_opsg-sim");
pub const SCRAPE: &str = env!("CARGO_BIN_EXE_opsg-scrape");

/// A real `opsg-sim` process on an ephemeral port with a manual clock; killed on drop.
pub struct Sim {
    child: std::process::Child,
    pub base: String,
    agent: ureq::Agent,
}

impl Sim {
    pub fn start() -> Sim {
        let mut child = Command::new(SIM)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--seed",
                "1",
                "--manual-clock",
                "--exit-on-stdin-eof",
            ])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opsg-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("first line");
        let hello: Value = serde_json::from_str(&line).expect("sim says where it listens");
        let base = format!("http://{}", hello["listen"].as_str().expect("listen"));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Sim { child, base, agent }
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let mut resp = self
            .agent
            .post(&format!("{}{path}", self.base))
            .content_type("application/json")
            .send(serde_json::to_vec(&body).expect("json").as_slice())
            .expect("POST");
        let text = resp.body_mut().read_to_string().expect("body");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    pub fn state(&self) -> Value {
        let mut resp = self.agent.get(&format!("{}/state", self.base)).call().expect("GET /state");
        serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("state JSON")
    }

    pub fn tick(&self, seconds: f64) {
        self.post("/tick", serde_json::json!({ "seconds": seconds }));
    }

    /// The vLLM replicas as an opsg-scrape targets file.
    pub fn targets_file(&self, path: &Path) {
        let state = self.state();
        let targets: Vec<Value> = state["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter(|t| t["job"] == "vllm")
            .map(|t| {
                serde_json::json!({
                    "name": t["replica"], "url": t["url"],
                    "labels": {"deployment": t["deployment"], "role": t["role"], "node": t["node"]}
                })
            })
            .collect();
        std::fs::write(
            path,
            serde_json::to_vec(&serde_json::json!({ "targets": targets })).expect("json"),
        )
        .expect("write targets");
    }

    /// Admin calls the sim received (method + path), in order.
    pub fn admin_calls(&self) -> Vec<String> {
        self.state()["admin_log"]
            .as_array()
            .map(|log| {
                log.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["method"].as_str().unwrap_or(""),
                            e["path"].as_str().unwrap_or("")
                        )
                    })
                    .filter(|c| c.contains("/admin/"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `script` with `sh -c` (the test composes the pipe; the tools never use a shell) while the
/// sim's clock advances `step_s` sim seconds every 25 ms, so settle times and scrape intervals
/// see time pass. Killed after 120 s.
pub fn pipe_while_ticking(
    sim: &Sim,
    script: &str,
    env: &[(&str, &str)],
    stdin: &[u8],
    step_s: f64,
) -> Ran {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script).env_clear().env("NO_COLOR", "1");
    if let Some(p) = std::env::var_os("PATH") {
        cmd.env("PATH", p);
    }
    for (k, v) in [
        ("GATE", GATE),
        ("EXEC", EXEC),
        ("VERIFY", VERIFY),
        ("SCRAPE", SCRAPE),
        ("TRIAGE", env!("CARGO_BIN_EXE_opsg-triage")),
        ("PLAN", env!("CARGO_BIN_EXE_opsg-plan")),
        ("AUDIT", env!("CARGO_BIN_EXE_opsg-audit")),
    ] {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let ereader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        sim.tick(step_s);
        std::thread::sleep(Duration::from_millis(25));
    };
    let _ = writer.join();
    Ran {
        code: status.and_then(|s| s.code()),
        stdout: reader.join().unwrap_or_default(),
        stderr: ereader.join().unwrap_or_default(),
    }
}

/// Parse a record body into its Rust type and write it back: the JSON must come out the same, so
/// a member the types do not know (an unplanned field) fails the test.
pub fn typed_round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(body: &Value) {
    let typed: T = serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{e}: {body}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(&back, body, "the body has members its type does not know");
}

/// Every record of the stdout of a stage, body round-tripped through its type.
pub fn check_acting_records(stdout: &[u8]) {
    use opsg_core::kinds::{DecisionBody, ExecutionBody, VerificationBody};
    opsg_core::stream::read_chain(stdout, "stdout", &Default::default())
        .expect("a sealed, linked, schema-valid chain");
    for line in String::from_utf8_lossy(stdout).lines() {
        let record: Value = serde_json::from_str(line).expect("JSON");
        match record["kind"].as_str() {
            Some("decision") => typed_round_trip::<DecisionBody>(&record["body"]),
            Some("execution") => typed_round_trip::<ExecutionBody>(&record["body"]),
            Some("verification") => typed_round_trip::<VerificationBody>(&record["body"]),
            _ => {}
        }
    }
}
