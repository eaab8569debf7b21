//! Shared harness for the triage, plan and advisor end-to-end tests: run the real binaries with a
//! clean environment, build sealed observations from the synthetic fleet, parse and check records,
//! and a std::net stub for LLM endpoints (also the campaign test's advisor arms).
#![allow(dead_code)]

use opsg_core::kinds::observation::ObservationBody;
use opsg_core::record::Kind;
use opsg_core::time::Timestamp;
use opsg_triage::synth::{self, Scenario};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

pub const START: i64 = 1_795_000_000_000;

/// What a process did.
pub struct Ran {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub code: i32,
}

impl Ran {
    pub fn records(&self) -> Vec<Value> {
        parse_records(&self.stdout)
    }

    pub fn last(&self) -> Value {
        self.records().pop().expect("at least one record")
    }
}

pub fn parse_records(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is JSON"))
        .collect()
}

pub fn bin(tool: &str) -> PathBuf {
    match tool {
        "opsg-triage" => PathBuf::from(env!("CARGO_BIN_EXE_opsg-triage")),
        "opsg-plan" => PathBuf::from(env!("CARGO_BIN_EXE_opsg-plan")),
        other => panic!("unknown tool {other}"),
    }
}

/// Run a tool with only the given environment (plus PATH).
pub fn run_env(tool: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(bin(tool));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    Ran {
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

pub fn run(tool: &str, args: &[&str], stdin: &[u8]) -> Ran {
    run_env(tool, args, stdin, &[])
}

/// The clock a case is replayed with: 5 s after the window's last sample.
pub fn now_for(seed: u64) -> String {
    let start = START + seed as i64 * 3_600_000;
    Timestamp(start + (synth::POINTS as i64 - 1) * synth::INTERVAL_S * 1000 + 5_000).to_rfc3339()
}

pub fn body(scenario: Scenario, seed: u64) -> ObservationBody {
    synth::observation(scenario, seed, START + seed as i64 * 3_600_000)
}

/// A sealed observation record (one line) for a body.
pub fn sealed(body: &ObservationBody, seed: u64) -> Vec<u8> {
    let start = START + seed as i64 * 3_600_000;
    let end = start + (synth::POINTS as i64 - 1) * synth::INTERVAL_S * 1000;
    synth::sealed(body, Timestamp(end + 1_000), &format!("run-test-{seed}")).expect("seal")
}

pub fn observation(scenario: Scenario, seed: u64) -> Vec<u8> {
    sealed(&body(scenario, seed), seed)
}

/// Check a record against its kind's schema.
pub fn assert_valid(record: &Value) {
    let kind = Kind::from_name(record["kind"].as_str().expect("kind")).expect("known kind");
    if let Err(e) = opsg_core::schema::validate_record(kind, record) {
        panic!("record does not match its schema: {e}\n{record}");
    }
}

/// A recorded HTTP request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: String,
}

/// A one-shot HTTP stub: answers each connection with `status` and `body` after `delay_ms`.
pub struct Stub {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub fn stub(status: u16, body: String, delay_ms: u64) -> Stub {
    stub_with(move |_| {
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        (status, body.clone())
    })
}

/// A stub whose answer depends on the request: `answer` gets each request (after it is
/// recorded) and returns the status and body to send, e.g. a triage answer to triage's prompt
/// and a plan answer to plan's.
pub fn stub_with(answer: impl Fn(&Seen) -> (u16, String) + Send + 'static) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let Ok(n) = conn.read(&mut chunk) else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let Ok(n) = conn.read(&mut chunk) else { break };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let req_body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
            let request = Seen { head, body: req_body };
            if let Ok(mut l) = log.lock() {
                l.push(request.clone());
            }
            let (status, body) = answer(&request);
            let reason = if status == 200 { "OK" } else { "Error" };
            let resp = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    Stub { url, seen }
}

/// An OpenAI chat.completions reply whose message content is `content`.
pub fn openai_reply(content: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "stub-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
    .to_string()
}

/// An Anthropic Messages reply whose text block is `content`.
pub fn anthropic_reply(content: &str) -> String {
    serde_json::json!({
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "stub-model",
        "content": [{"type": "text", "text": content}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1}
    })
    .to_string()
}
