//! `opsg-audit append --notify URL` against a local HTTP receiver: a Slack-compatible summary is
//! posted; a failing, absent or silent receiver is logged and recorded in the report, never fatal,
//! and never costs the ledger its records.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::*;

/// What the receiver saw.
struct Request {
    request_line: String,
    headers: Vec<String>,
    body: Vec<u8>,
}

/// A one-shot HTTP receiver answering `status`; returns its URL base and what it received.
fn receiver(status: u16) -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            headers.push(line);
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        let reply =
            format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        stream.write_all(reply.as_bytes()).unwrap();
        let _ =
            tx.send(Request { request_line: request_line.trim_end().to_string(), headers, body });
    });
    (url, rx)
}

fn report_of(out: &std::process::Output) -> Value {
    json(lines(&out.stdout).last().unwrap())
}

fn ledger_report(ledger: &std::path::Path) -> Value {
    let raw = std::fs::read(ledger).unwrap();
    let last = lines(&raw).pop().unwrap();
    json(opsg_audit::line::parse(&last).unwrap().record)
}

#[test]
fn the_summary_is_posted_and_the_result_recorded() {
    let dir = TempDir::new("notify");
    let ledger = dir.join("ledger.jsonl");
    let (base, rx) = receiver(200);
    let url = format!("{base}/services/T000/B000/secret-token");
    let args = ["append", "--ledger", ledger.to_str().unwrap(), "--notify", &url];
    let out = audit(&args, &incident_chain(Scenario::Resolved, 1, T0));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let request = rx.recv_timeout(Duration::from_secs(10)).expect("nothing was posted");
    assert_eq!(request.request_line, "POST /services/T000/B000/secret-token HTTP/1.1");
    assert!(
        request.headers.iter().any(|h| h.eq_ignore_ascii_case("content-type: application/json"))
    );
    let posted: Value = serde_json::from_slice(&request.body).unwrap();
    let text = posted["text"].as_str().unwrap();
    assert!(text.contains("inc-000001 (kv_cache_saturation): resolved"), "{text}");
    assert!(text.contains("MTTR 3m05s"), "{text}");
    assert!(text.contains("2 action(s) (1 safe, 1 impactful, 0 destructive)"), "{text}");
    assert_eq!(posted["outcome"], "resolved");
    assert_eq!(posted["mttr_s"], 185.0);
    assert_eq!(posted["ledger"]["first_seq"], 1);
    assert_eq!(posted["ledger"]["report_seq"], 7);

    let report = report_of(&out);
    assert_eq!(posted["report"], report["id"], "the message names the report it announced");
    let n = &report["body"]["notification"];
    assert_eq!(n["status"], "sent");
    assert_eq!(n["http_status"], 200);
    assert_eq!(n["endpoint"], base);
    assert_eq!(ledger_report(&ledger), report, "the ledger holds the same report");
    let raw = String::from_utf8(std::fs::read(&ledger).unwrap()).unwrap();
    assert!(!raw.contains("secret-token"), "the webhook's secret path reached the ledger");
}

#[test]
fn a_failing_receiver_is_recorded_not_fatal() {
    let dir = TempDir::new("notify-500");
    let ledger = dir.join("ledger.jsonl");
    let (base, rx) = receiver(500);
    let args = ["append", "--ledger", ledger.to_str().unwrap(), "--notify", &base];
    let out = audit(&args, &incident_chain(Scenario::Blocked, 2, T0));
    assert_eq!(out.status.code(), Some(12), "the outcome's code, whatever the webhook did");
    rx.recv_timeout(Duration::from_secs(10)).expect("nothing was posted");
    let n = &report_of(&out)["body"]["notification"];
    assert_eq!(n["status"], "failed");
    assert_eq!(n["http_status"], 500);
    assert!(stderr(&out).contains("warning: notification to"), "{}", stderr(&out));
    assert_eq!(lines(&std::fs::read(&ledger).unwrap()).len(), 5);
}

#[test]
fn an_absent_or_silent_receiver_is_recorded_within_the_timeout() {
    let dir = TempDir::new("notify-down");
    let ledger = dir.join("ledger.jsonl");
    // Nothing listens on a port just released.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let out = audit(
        &["append", "--ledger", ledger.to_str().unwrap(), "--notify", &url],
        &incident_chain(Scenario::Resolved, 3, T0),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let n = &report_of(&out)["body"]["notification"];
    assert_eq!(n["status"], "failed");
    assert!(n["error"].as_str().is_some_and(|e| !e.is_empty()));

    // A receiver that accepts and never answers: the timeout bounds the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let started = Instant::now();
    let args = [
        "append",
        "--ledger",
        ledger.to_str().unwrap(),
        "--notify",
        &url,
        "--notify-timeout",
        "1s",
    ];
    let out = audit(&args, &incident_chain(Scenario::Resolved, 4, T0));
    assert!(started.elapsed() < Duration::from_secs(8), "the timeout was not applied");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report_of(&out)["body"]["notification"]["status"], "failed");
    drop(silent);
    let summary = opsg_audit::verify::verify_path(&ledger, &Default::default()).unwrap();
    assert!(summary.ok());
    assert_eq!(summary.lines, 14);

    // A URL that is not http(s) is a usage error before anything is read or appended.
    let out = audit(
        &["append", "--ledger", ledger.to_str().unwrap(), "--notify", "ftp://x"],
        &incident_chain(Scenario::Resolved, 5, T0),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(lines(&std::fs::read(&ledger).unwrap()).len(), 14);
}
